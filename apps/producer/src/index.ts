export * from './enqueue';
export * from './status';
export * from './context';
