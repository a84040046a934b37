/**
 * HTTP answers from a provider as typed errors (Appendix A), shared by the batch clients and by the
 * WebSocket upgrade of the streaming ones: the status classification, Retry-After, and the error a
 * cancelled session throws.
 */
import {
  InputTooLargeError,
  JobCancelledError,
  ProviderAuthError,
  ProviderPaymentError,
  ProviderRateLimitedError,
  ProviderRejectedError,
  ProviderTimeoutError,
  ProviderUnavailableError,
  ScribeError,
} from '../../../domain/errors';

/** Retry-After as milliseconds: delta-seconds or an HTTP date (RFC 9110 §10.2.3), relative to `now`. */
export function parseRetryAfter(value: string | string[] | null | undefined, now = Date.now()): number | undefined {
  const v = Array.isArray(value) ? value[0] : value;
  if (!v) return undefined;
  if (/^\d+(\.\d+)?$/.test(v.trim())) return Math.round(Number(v) * 1000);
  const at = Date.parse(v);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

/**
 * An HTTP status from a provider as a typed error (Appendix A): 401 auth, 402 payment, 413 too large,
 * 429 rate limit (Retry-After honoured), 408 / 5xx retryable, other 4xx rejected.
 */
export function httpStatusError(provider: string, status: number, detail: string, retryAfter?: string | string[] | null): ScribeError {
  const msg = `${provider}: HTTP ${status}${detail ? ` ${detail}` : ''}`;
  const opts = { status };
  if (status === 401) return new ProviderAuthError(msg, opts);
  if (status === 402) return new ProviderPaymentError(msg, opts);
  if (status === 413) return new InputTooLargeError(msg, opts);
  if (status === 429) {
    const ms = parseRetryAfter(retryAfter);
    return new ProviderRateLimitedError(msg, ms === undefined ? opts : { ...opts, retryAfterMs: ms });
  }
  if (status === 408) return new ProviderTimeoutError(msg, opts);
  if (status >= 500) return new ProviderUnavailableError(msg, opts);
  return new ProviderRejectedError(msg, opts);
}

/** The error a cancelled session throws: the signal's reason when it is one of ours. */
export function abortError(provider: string, signal: AbortSignal): ScribeError {
  const reason: unknown = signal.reason;
  if (reason instanceof ScribeError) return reason;
  return new JobCancelledError(`${provider}: session aborted`, { cause: reason });
}
