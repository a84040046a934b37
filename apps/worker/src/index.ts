// The processor lives in core's application layer; re-exported so `@scribe-fleet/worker` keeps offering it beside createDeps.
export * from '@scribe-fleet/core/app/process-attempt';
// The BullMQ worker host lives with the BullMQ adapters; the worker package offers it with its wiring.
export * from '@scribe-fleet/core/adapters/bullmq/worker-host';
export * from './deps';
