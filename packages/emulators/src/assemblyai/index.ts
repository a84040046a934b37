// AssemblyAI Universal Streaming v3 emulator: the public names (src/index.ts re-exports this folder).
// options.ts holds only public names: its constants and types, exported whole.
export * from './options';
export { startAssemblyAIEmulator } from './server';
