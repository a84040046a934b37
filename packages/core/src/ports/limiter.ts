/** A held slot of a cap bucket. */
export interface Lease {
  readonly bucket: string;
  readonly id: string;
  /** Aborts if the lease is lost while held (the session must stop: its slot may be someone else's). */
  readonly signal?: AbortSignal;
  release(): Promise<void>;
}

/** Limiter port: fleet-wide concurrency caps per bucket. */
export interface Limiter {
  acquire(bucket: string, signal?: AbortSignal): Promise<Lease>;
  /** Tell the limiter the provider refused for being over its limit (429). */
  reportRateLimited?(bucket: string, retryAfterMs?: number): void;
  close?(): Promise<void>;
}
