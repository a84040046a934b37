// The OpenAI-compatible batch emulator (openai, whisper.cpp and speaches modes); see server.ts.
export { OPENAI_FILE_EXTENSIONS, OPENAI_MAX_UPLOAD_BYTES, OPENAI_RESPONSE_FORMATS } from './types';
export type { OpenAIEmulatorHandle, OpenAIEmulatorMode, OpenAIEmulatorOptions, OpenAIRequestRecord, OpenAIRules } from './types';
export { toOpenAIVerboseJson } from './formats';
export { startOpenAIEmulator } from './server';
