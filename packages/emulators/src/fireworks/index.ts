// Fireworks streaming ASR emulator: the public names (src/index.ts re-exports this folder).
// options.ts holds only public names: its constants and types, exported whole.
export * from './options';
export { startFireworksEmulator } from './server';
