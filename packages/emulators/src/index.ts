export * from './kit';
export * from './deepgram';
export * from './assemblyai';
export * from './fireworks';
export * from './openai';
export * from './cli';
export * from './noise-wav';
