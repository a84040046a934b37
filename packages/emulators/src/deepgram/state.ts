/**
 * What the pre-recorded and live halves of the emulator share: options, the concurrency tracker, the
 * recogniser pool, the records, the event emitter, the fault plan and the connections to cut at close.
 */
import { EventEmitter } from 'node:events';
import type { IncomingMessage } from 'node:http';
import { ConcurrencyTracker, FaultPlan, FrameLog } from '../kit';
import type { RecogniserPool } from '../kit';
import { DgErrors } from './errors';
import {
  DEEPGRAM_DEFAULT_CAPS,
  poolKey,
  recogniserPool,
  resolveOptions,
  type DeepgramEmulatorOptions,
  type DeepgramFaults,
  type DeepgramLiveRecord,
  type DeepgramPool,
  type DeepgramRestRecord,
  type ResolvedDeepgramOptions,
} from './options';

export class DeepgramState {
  readonly options: ResolvedDeepgramOptions;
  readonly concurrency: ConcurrencyTracker;
  readonly recognisers: RecogniserPool;
  readonly frames = new FrameLog();
  readonly events = new EventEmitter();
  readonly requests: DeepgramRestRecord[] = [];
  readonly sessions: DeepgramLiveRecord[] = [];
  readonly faultPlan: FaultPlan;
  readonly errors: DgErrors;
  /** Live sessions under way (killed at close). */
  readonly live = new Set<{ kill(): void }>();
  /** Sockets held by `never-answer` faults (destroyed at close). */
  readonly held = new Set<{ destroy(): void }>();
  /** The request id of each accepted upgrade, for the 101's `dg-request-id`. */
  readonly upgradeIds = new WeakMap<IncomingMessage, string>();

  constructor(
    opts: DeepgramEmulatorOptions,
    /** The handle's current fault hooks (tests may replace the object). */
    readonly faults: () => DeepgramFaults,
  ) {
    this.options = resolveOptions(opts);
    this.recognisers = recogniserPool(opts.recognisers);
    this.concurrency = new ConcurrencyTracker((key) => this.capFor(key));
    this.faultPlan = new FaultPlan(['rest', 'ws'], opts.faultSpecs ?? []);
    this.errors = new DgErrors(this.options);
    this.events.setMaxListeners(0);
  }

  private capFor(key: string): number {
    const [project, pool] = key.split('/') as [string, DeepgramPool | undefined];
    if (!pool) return Number.POSITIVE_INFINITY; // the per-project total is only counted
    return this.options.projectCaps[project]?.[pool] ?? this.options.caps[pool] ?? DEEPGRAM_DEFAULT_CAPS[pool];
  }

  /** Enter the pool and the project total; false when the pool is full. */
  enter(project: string, pool: DeepgramPool): boolean {
    if (!this.concurrency.enter(poolKey(project, pool))) return false;
    this.concurrency.enter(project);
    return true;
  }

  leave(project: string, pool: DeepgramPool): void {
    this.concurrency.leave(poolKey(project, pool));
    this.concurrency.leave(project);
  }
}

export function waitFor<T>(events: EventEmitter, name: string, list: T[], pred: (x: T) => boolean, timeoutMs: number): Promise<T> {
  const found = list.find(pred);
  if (found) return Promise.resolve(found);
  return new Promise<T>((resolve, reject) => {
    const onEvent = (x: T) => {
      if (!pred(x)) return;
      clearTimeout(timer);
      events.off(name, onEvent);
      resolve(x);
    };
    const timer = setTimeout(() => {
      events.off(name, onEvent);
      reject(new Error(`deepgram emulator: no matching ${name} within ${timeoutMs} ms`));
    }, timeoutMs);
    events.on(name, onEvent);
  });
}
