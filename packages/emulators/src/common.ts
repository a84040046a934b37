/**
 * The emulators' shared machinery as it was first gathered here; it now lives in the kit (./kit/, one
 * concern per file). This barrel keeps every name the emulators import from './common'.
 */
export * from './kit/auth';
export * from './kit/concurrency';
export * from './kit/control';
export * from './kit/faults';
export * from './kit/frame-log';
export * from './kit/handle';
export * from './kit/recogniser';
export * from './kit/util';
