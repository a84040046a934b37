export * from './common';
export * from './deepgram';
export * from './assemblyai';
export * from './fireworks';
export * from './openai';
export * from './cli';
export * from './noise-wav';
export * from './kit';
