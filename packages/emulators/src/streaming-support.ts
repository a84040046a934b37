/**
 * What the WebSocket streaming emulators share; it now lives in the kit (./kit/, one concern per file).
 * This barrel keeps every name the emulators import from './streaming-support'.
 */
export * from './kit/audio';
export * from './kit/faults';
export * from './kit/recogniser';
export * from './kit/server';
export * from './kit/util';
