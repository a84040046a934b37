/**
 * What the batch use cases run against: ports only (queues, books, storage), injected. Each use case
 * (one verb per file in app/) takes the `Pick` of these it needs, so its dependencies read off its
 * signature; the composition of the real ones is adapters/bullmq/open-services.ts, and BatchService
 * (app/batch-service.ts) holds them for the front ends and the worker.
 */
import type { Config } from '../domain/config';
import type { PriceEntry } from '../domain/prices';
import type { BatchStore, FleetLock, JobEndStore } from '../ports/batch-store';
import type { FinalizeQueue, JobQueue, WebhookOutbox } from '../ports/job-queue';
import type { Storage } from '../ports/storage';
import type { BudgetStore } from '../ports/budget-store';

/** Wall-clock time (not the monotonic `Clock` of domain/clock.ts): record and report timestamps. */
export interface WallClock {
  /** Milliseconds since the epoch. */
  now(): number;
}

export interface BatchDeps {
  config: Config;
  storage: Storage;
  /** The transcription jobs. */
  queue: JobQueue;
  /** The batches' books. */
  batches: BatchStore;
  /** The first end of each job's life. */
  jobEnds: JobEndStore;
  /** The reconciler's fleet-wide lock. */
  lock: FleetLock;
  finalizeQueue: FinalizeQueue;
  outbox: WebhookOutbox;
  /** The budget books (none: budgets are not enforced, e.g. a front end that only reads). */
  budgets?: BudgetStore;
  /** Default: the system's (Date.now). */
  clock?: WallClock;
  /** The operator's price table (PRICES_FILE), read before the shipped defaults: budgets' cost figures and a batch summary's estimated cost. */
  prices?: readonly PriceEntry[];
}

/** Now, by the deps' clock (ms since the epoch). */
export function nowMs(deps: Pick<BatchDeps, 'clock'>): number {
  return deps.clock ? deps.clock.now() : Date.now();
}

/** Now, by the deps' clock, as an ISO-8601 string. */
export function nowIso(deps: Pick<BatchDeps, 'clock'>): string {
  return new Date(nowMs(deps)).toISOString();
}
