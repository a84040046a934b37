export * from './processor';
export * from './worker';
export * from './deps';
