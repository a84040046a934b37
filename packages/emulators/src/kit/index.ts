// The shared kit of the emulators (see ARCHITECTURE.md, "Providers and their emulators").
export * from './endpointer';
export * from './recogniser-pool';
