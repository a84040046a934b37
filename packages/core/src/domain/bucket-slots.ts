/**
 * Which cap buckets one worker process consumes at a time. Each consumed bucket costs the process one
 * Redis connection (its BullMQ Worker's blocking connection; everything else shares one connection),
 * so the process keeps at most `maxBuckets` open and the connection count stays bounded however many
 * buckets the fleet registers. Pure: the worker host asks for a plan at each discovery tick and
 * applies it (adapters/bullmq/worker-host.ts).
 *
 * - A bucket is opened only when it has work (jobs waiting, delayed or active in its queue), and
 *   given up after `idleMs` without any: buckets of old accounts cost nothing.
 * - With more buckets with work than slots, each open bucket keeps its slot at least `turnMs`, then
 *   gives it to the bucket that has waited longest here: every bucket with work is served in turn,
 *   so none is starved whatever the other processes do. Giving a slot up never stops a running job:
 *   the Worker stops fetching and its jobs finish (BullMQ's graceful close).
 * - A slot given up is reused at the next tick, not the same one, so the closing Worker has dropped
 *   its blocking connection (the first thing its close does) before another one connects.
 */

export interface SlotPolicy {
  /** Buckets consumed at once; 0 = no limit. */
  maxBuckets: number;
  /** A bucket without work for this long is given up. */
  idleMs: number;
  /** A bucket keeps its slot at least this long while other buckets wait for one. */
  turnMs: number;
}

export interface SlotPlan {
  /** Buckets to start consuming now. */
  open: string[];
  /** Buckets to stop consuming now (gracefully). */
  close: string[];
}

export class BucketSlots {
  /** Open buckets: since when, and since when without work (null: it has work). */
  private readonly held = new Map<string, { openedAt: number; idleSince: number | null }>();
  /** Buckets with work and no slot here, since when they have been waiting. */
  private readonly waiting = new Map<string, number>();

  constructor(private readonly policy: SlotPolicy) {}

  /** Buckets open now. */
  get open(): string[] {
    return [...this.held.keys()];
  }

  /**
   * One tick. `work`: every bucket this process may consume, with whether its queue has jobs;
   * `unavailable`: buckets that cannot be opened yet (their previous Worker is still closing).
   * The plan is recorded as applied.
   */
  plan(work: ReadonlyMap<string, boolean>, now: number, unavailable: ReadonlySet<string> = new Set()): SlotPlan {
    const { maxBuckets, idleMs, turnMs } = this.policy;
    const close: string[] = [];
    for (const [key, h] of this.held) {
      if (work.get(key)) h.idleSince = null;
      else {
        h.idleSince ??= now;
        if (now - h.idleSince >= idleMs || !work.has(key)) close.push(key);
      }
    }
    for (const key of [...this.waiting.keys()]) if (!work.get(key) || this.held.has(key)) this.waiting.delete(key);
    for (const [key, hasWork] of work) if (hasWork && !this.held.has(key) && !this.waiting.has(key)) this.waiting.set(key, now);

    // Slots free at the start of this tick (closes of this tick free theirs from the next one).
    const free = maxBuckets > 0 ? Math.max(0, maxBuckets - this.held.size) : Infinity;
    const queue = [...this.waiting].filter(([key]) => !unavailable.has(key)).sort((a, b) => a[1] - b[1] || (a[0] < b[0] ? -1 : 1));
    const open = queue.slice(0, free).map(([key]) => key);
    // Still waiting after that: the open buckets whose turn is over give their slots up, oldest first.
    const left = queue.length - open.length - close.length;
    if (left > 0) {
      const turnOver = [...this.held]
        .filter(([key, h]) => !close.includes(key) && now - h.openedAt >= turnMs)
        .sort((a, b) => a[1].openedAt - b[1].openedAt || (a[0] < b[0] ? -1 : 1))
        .slice(0, left)
        .map(([key]) => key);
      close.push(...turnOver);
    }
    for (const key of close) this.held.delete(key);
    for (const key of open) {
      this.held.set(key, { openedAt: now, idleSince: null });
      this.waiting.delete(key);
    }
    return { open, close };
  }
}
