/**
 * Deepgram's error answers (providers.md §1.4, §2.1): one small class with the HTTP status and the
 * `err_code`, the documented answer for each case, and the three body shapes clients must parse.
 */
import { STATUS_CODES } from 'node:http';
import type { ErrorShape, ResolvedDeepgramOptions } from './options';

export class DgError extends Error {
  constructor(
    readonly status: number,
    readonly errCode: string,
    message: string,
    readonly shape: ErrorShape = 'legacy',
    readonly details?: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }

  /** The text of the `dg-error` header (one line). */
  get headerText(): string {
    return this.message.replace(/[\r\n]+/g, ' ');
  }
}

export const badRequest = (message: string, errCode = 'Bad Request') => new DgError(400, errCode, message);
export const corrupt = () => badRequest('Bad Request: failed to process audio: corrupt or unsupported data');
export const unauthorized = () => new DgError(401, 'INVALID_AUTH', 'Invalid credentials.');
export const paymentRequired = () => new DgError(402, 'ASR_PAYMENT_REQUIRED', 'Payment Required: project does not have enough credits for this request.');
export const unavailable = () => new DgError(503, 'SERVICE_UNAVAILABLE', 'Please try again later.', 'text');
export const payloadTooLarge = (max: number, what = 'the request body') =>
  new DgError(413, 'PAYLOAD_TOO_LARGE', `Payload Too Large: ${what} exceeds the maximum of ${max} bytes.`, 'text');

/** `5xx[=S]` faults: 503 is Deepgram's transient answer (§1.4); other statuses get a generic text. */
export function serverError(status = 503): DgError {
  if (status === 503) return unavailable();
  return new DgError(status, status === 500 ? 'INTERNAL_SERVER_ERROR' : 'SERVER_ERROR', `${STATUS_CODES[status] ?? 'Server Error'}: please try again later.`, 'text');
}

/** Any failure that is not already a DgError: a plain-text 500. */
export function asDgError(err: unknown): DgError {
  if (err instanceof DgError) return err;
  return new DgError(500, 'INTERNAL_SERVER_ERROR', `Internal Server Error: ${(err as Error)?.message ?? String(err)}`, 'text');
}

/** The answers that depend on the emulator's run-time options (Retry-After, error shape rotation). */
export class DgErrors {
  private rotate = 0;
  constructor(private readonly options: ResolvedDeepgramOptions) {}

  /** Over a concurrency cap (the project's, or the emulator's recognisers): 429, never queued. */
  rateLimited(what: string): DgError {
    const headers: Record<string, string> = {};
    if (this.options.retryAfterSeconds !== undefined) headers['retry-after'] = String(this.options.retryAfterSeconds);
    return new DgError(429, 'TOO_MANY_REQUESTS', `Too Many Requests: ${what} concurrency limit reached for this project. Please try again later.`, 'legacy', undefined, headers);
  }

  /** `429-storm`: the cap refusal, always with a Retry-After (`retryAfterSeconds`, default 1). */
  stormLimited(what: string): DgError {
    const e = this.rateLimited(what);
    e.headers['retry-after'] ??= String(this.options.retryAfterSeconds ?? 1);
    return e;
  }

  /** `early=STATUS`: the documented answer for that status (§1.4). */
  early(status: number): DgError {
    switch (status) {
      case 401:
        return unauthorized();
      case 402:
        return paymentRequired();
      case 413:
        return payloadTooLarge(this.options.maxBodyBytes);
      case 429:
        return this.stormLimited('pre-recorded');
      default:
        return serverError(status);
    }
  }

  /** The body of an error answer in the documented (or forced / rotated) shape. */
  payload(e: DgError, requestId: string): { contentType: string; body: string } {
    const forced = this.options.errorShape;
    let shape: ErrorShape = forced && forced !== 'rotate' ? forced : e.shape;
    if (forced === 'rotate') shape = (['legacy', 'modern', 'text'] as const)[this.rotate++ % 3]!;
    if (shape === 'text') return { contentType: 'text/plain; charset=utf-8', body: e.message };
    const body =
      shape === 'legacy'
        ? { err_code: e.errCode, err_msg: e.message, request_id: requestId }
        : { category: e.errCode, message: e.message, details: e.details ?? e.message, request_id: requestId };
    return { contentType: 'application/json', body: JSON.stringify(body) };
  }
}
