// The shared kit of the emulators (see ARCHITECTURE.md, "Providers and their emulators"), one concern per file.
export * from './audio';
export * from './auth';
export * from './concurrency';
export * from './control';
export * from './endpointer';
export * from './faults';
export * from './frame-log';
export * from './handle';
export * from './pitch';
export * from './recogniser';
export * from './recogniser-pool';
export * from './server';
export * from './tls';
export * from './util';
