/**
 * Errors with stable codes. Every failure that reaches a job is one of these, so a failed job always
 * carries a machine-readable `code` plus a human message, and the worker knows how to treat it:
 *
 * - `retry`         transient: BullMQ retries it with backoff, up to the job's bounded attempts;
 * - `rate_limit`    the provider said "too many": the attempt is *not* counted as a failure, the job
 *                   is re-scheduled after `retryAfterMs` (see the cap module);
 * - `unrecoverable` bad input or a permanent refusal: the job fails at once, no retries.
 */
export type ErrorKind = 'retry' | 'rate_limit' | 'unrecoverable';

export interface ScribeErrorOptions {
  cause?: unknown;
  /** For `rate_limit`: how long the provider asked us to wait. */
  retryAfterMs?: number;
  /** Provider HTTP status or WebSocket close code, when there is one. */
  status?: number;
  /** Free-form structured details (never secrets). */
  details?: Record<string, unknown>;
}

export abstract class ScribeError extends Error {
  abstract readonly code: string;
  abstract readonly kind: ErrorKind;
  readonly retryAfterMs?: number;
  readonly status?: number;
  readonly details?: Record<string, unknown>;

  constructor(message: string, opts: ScribeErrorOptions = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = new.target.name;
    Object.setPrototypeOf(this, new.target.prototype);
    if (opts.retryAfterMs !== undefined) this.retryAfterMs = opts.retryAfterMs;
    if (opts.status !== undefined) this.status = opts.status;
    if (opts.details !== undefined) this.details = opts.details;
  }
}

function define<C extends string, K extends ErrorKind>(code: C, kind: K) {
  return class extends ScribeError {
    static readonly code: C = code;
    readonly code: C = code;
    readonly kind: K = kind;
  };
}

// ---- input and job errors (unrecoverable) -------------------------------------------------------
export class InvalidJobSpecError extends define('INVALID_JOB_SPEC', 'unrecoverable') {}
export class InvalidS3UrlError extends define('INVALID_S3_URL', 'unrecoverable') {}
export class BucketNotAllowedError extends define('BUCKET_NOT_ALLOWED', 'unrecoverable') {}
export class SourceNotFoundError extends define('SOURCE_NOT_FOUND', 'unrecoverable') {}
export class SourceChangedError extends define('SOURCE_CHANGED', 'unrecoverable') {}
export class DecodeError extends define('DECODE_FAILED', 'unrecoverable') {}
export class EmptyDecodeError extends define('EMPTY_DECODE', 'unrecoverable') {}
export class InputTooLargeError extends define('INPUT_TOO_LARGE', 'unrecoverable') {}
export class UnsupportedCombinationError extends define('UNSUPPORTED_COMBINATION', 'unrecoverable') {}
export class UnknownProviderError extends define('UNKNOWN_PROVIDER', 'unrecoverable') {}
/**
 * An option the (provider, model, mode) does not take, or a value of the wrong type: refused at
 * enqueue (and by the worker, for a spec read back from Redis) instead of being silently ignored.
 * The message names the option, provider, model and mode, and what is supported.
 */
export class UnsupportedOptionError extends define('UNSUPPORTED_OPTION', 'unrecoverable') {}
export class JobCancelledError extends define('JOB_CANCELLED', 'unrecoverable') {}
export class ConfigError extends define('CONFIG_INVALID', 'unrecoverable') {}
export class InvalidManifestError extends define('INVALID_MANIFEST', 'unrecoverable') {}
/** A manifest over MANIFEST_MAX_BYTES or MANIFEST_MAX_LINES: refused unread (split it into several batches). */
export class ManifestTooLargeError extends define('MANIFEST_TOO_LARGE', 'unrecoverable') {}
export class JobNotFoundError extends define('JOB_NOT_FOUND', 'unrecoverable') {}
export class BatchNotFoundError extends define('BATCH_NOT_FOUND', 'unrecoverable') {}
export class PlanNotFoundError extends define('PLAN_NOT_FOUND', 'unrecoverable') {}
export class InvalidRequestError extends define('INVALID_REQUEST', 'unrecoverable') {}
/** The operation does not fit the target's state (redrive of a job that has not failed, cancel of a finished one). */
export class InvalidStateError extends define('INVALID_STATE', 'unrecoverable') {}
/** The file decodes to much less audio than its container declares (cut-off upload, broken copy). */
export class TruncatedInputError extends define('TRUNCATED_INPUT', 'unrecoverable') {}
/** The job's worker died (kill -9, OOM, lost host) in as many attempts as the job may spend. */
/**
 * Not an end: a job not admitted by a budget goes back to the queue without spending an attempt,
 * to be looked at again after `retryAfterMs` (its batch shows `paused: budget`).
 */
export class BudgetPausedError extends define('BUDGET_PAUSED', 'retry') {}
export class WorkerLostError extends define('WORKER_LOST', 'unrecoverable') {}

// ---- provider errors ----------------------------------------------------------------------------
export class ProviderAuthError extends define('PROVIDER_AUTH', 'unrecoverable') {}
export class ProviderRejectedError extends define('PROVIDER_REJECTED', 'unrecoverable') {}
export class ProviderPaymentError extends define('PROVIDER_PAYMENT_REQUIRED', 'unrecoverable') {}
export class ProviderProtocolError extends define('PROVIDER_PROTOCOL', 'unrecoverable') {}
export class ProviderRateLimitedError extends define('PROVIDER_RATE_LIMITED', 'rate_limit') {}
export class ProviderUnavailableError extends define('PROVIDER_UNAVAILABLE', 'retry') {}
export class ProviderTimeoutError extends define('PROVIDER_TIMEOUT', 'retry') {}
/**
 * A session made no progress (no audio read, no provider message) for SESSION_STALL_MS: aborted, its
 * slot given back, the attempt retried. A hung socket, decoder or recogniser never holds a slot for good.
 */
export class SessionStalledError extends define('SESSION_STALLED', 'retry') {}
/** The provider's checksum of what it received differs from what was sent (corruption in transit). */
export class ChecksumMismatchError extends define('CHECKSUM_MISMATCH', 'retry') {}

// ---- infrastructure errors (transient) ----------------------------------------------------------
export class RecogniserError extends define('RECOGNISER_FAILED', 'retry') {}
export class StorageUnavailableError extends define('STORAGE_UNAVAILABLE', 'retry') {}
export class InternalError extends define('INTERNAL', 'retry') {}
/** A held cap slot expired (its holder could not heartbeat): the session is aborted and retried. */
export class LeaseLostError extends define('LEASE_LOST', 'retry') {}
/**
 * The attempt's worker no longer holds the job (its lock expired while the process was starved or
 * cut off, and a stalled check gave the job to another worker): it writes nothing and records no end.
 */
export class JobLockLostError extends define('LOCK_LOST', 'retry') {}

/** Wrap anything thrown into a ScribeError; unknown errors are treated as transient. */
export function toScribeError(err: unknown): ScribeError {
  if (err instanceof ScribeError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new InternalError(message, { cause: err });
}

/** `failedReason` format stored on BullMQ jobs: `CODE: message`. */
export function formatFailedReason(err: ScribeError): string {
  return `${err.code}: ${err.message}`;
}

export function parseFailedReason(reason: string | undefined | null): { code: string; message: string } | null {
  if (!reason) return null;
  const m = /^([A-Z][A-Z0-9_]+): ([\s\S]*)$/.exec(reason);
  if (!m) return { code: 'INTERNAL', message: reason };
  return { code: m[1]!, message: m[2]! };
}
