/**
 * One error shape for every HTTP answer that is not a success: `{error: {code, message, details?}}`,
 * with the status derived from the stable ScribeError code. No Fastify import: the CLI uses
 * `isRedisDown` too.
 */
import { ScribeError } from '@scribe-fleet/core';

export interface ApiErrorBody {
  error: { code: string; message: string; details?: Record<string, unknown> };
}

const BAD_REQUEST = new Set(['INVALID_S3_URL', 'INVALID_MANIFEST', 'INVALID_REQUEST', 'INVALID_JSON', 'MALFORMED_REQUEST', 'UNSUPPORTED_COMBINATION', 'UNSUPPORTED_OPTION', 'UNKNOWN_PROVIDER', 'INVALID_JOB_SPEC', 'CONFIG_INVALID']);
const UNAVAILABLE = new Set(['STORAGE_UNAVAILABLE', 'REDIS_UNAVAILABLE', 'SHUTTING_DOWN']);

/** HTTP status of an error code. */
export function statusOfCode(code: string): number {
  if (BAD_REQUEST.has(code)) return 400;
  if (code === 'UNAUTHORIZED') return 401;
  if (code === 'BUCKET_NOT_ALLOWED' || code === 'CSRF_REJECTED') return 403;
  if (code === 'REQUEST_TIMEOUT') return 408;
  if (code.endsWith('_NOT_FOUND') || code === 'NOT_FOUND') return 404;
  if (code === 'INVALID_STATE' || code === 'SOURCE_CHANGED') return 409;
  if (code === 'PAYLOAD_TOO_LARGE' || code === 'MANIFEST_TOO_LARGE') return 413;
  if (code === 'UNSUPPORTED_MEDIA_TYPE') return 415;
  if (code === 'RATE_LIMITED') return 429;
  if (code === 'HEADER_TOO_LARGE') return 431;
  if (UNAVAILABLE.has(code)) return 503;
  return 500;
}

/**
 * Redis unreachable, as ioredis and BullMQ report it (the producer connection fails fast: a few
 * retries, no offline queue), so callers can answer 503 / exit "unavailable" instead of "internal".
 */
export function isRedisDown(err: unknown): boolean {
  if (!(err instanceof Error) || err instanceof ScribeError) return false;
  const code = (err as { code?: string }).code ?? '';
  return (
    err.name === 'MaxRetriesPerRequestError' ||
    ['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'ENOTFOUND', 'EHOSTUNREACH', 'EPIPE'].includes(code) ||
    /Connection is closed|enableOfflineQueue|Reached the max retries per request|connect ECONNREFUSED|Connection timeout/i.test(err.message)
  );
}

interface FastifyLikeError {
  code?: string;
  statusCode?: number;
  validation?: Array<{ instancePath?: string; message?: string; params?: unknown }>;
  validationContext?: string;
  message: string;
}

/** Map anything thrown in a handler to a status and the error body. */
export function toApiError(err: unknown): { status: number; body: ApiErrorBody } {
  if (err instanceof ScribeError) {
    return { status: statusOfCode(err.code), body: { error: { code: err.code, message: err.message, ...(err.details ? { details: err.details } : {}) } } };
  }
  if (isRedisDown(err)) {
    return { status: 503, body: { error: { code: 'REDIS_UNAVAILABLE', message: `Redis is unreachable: ${(err as Error).message}` } } };
  }
  const e = (err ?? {}) as FastifyLikeError;
  if (Array.isArray(e.validation)) {
    const errors = e.validation.map((v) => ({ path: `${e.validationContext ?? 'body'}${v.instancePath ?? ''}`, message: v.message ?? 'invalid', ...(v.params ? { params: v.params } : {}) }));
    return { status: 400, body: { error: { code: 'INVALID_REQUEST', message: errors.map((x) => `${x.path} ${x.message}`).join('; '), details: { errors } } } };
  }
  // Fastify's own refusals (body parsing, routing), in the same shape with codes of ours.
  if (e.code === 'FST_ERR_CTP_INVALID_JSON_BODY' || e.code === 'FST_ERR_CTP_EMPTY_JSON_BODY') return { status: 400, body: { error: { code: 'INVALID_JSON', message: e.message } } };
  if (e.code === 'FST_ERR_CTP_BODY_TOO_LARGE') return { status: 413, body: { error: { code: 'PAYLOAD_TOO_LARGE', message: e.message } } };
  if (e.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') return { status: 415, body: { error: { code: 'UNSUPPORTED_MEDIA_TYPE', message: `${e.message}: send application/json` } } };
  if (typeof e.statusCode === 'number' && e.statusCode >= 400 && e.statusCode < 500) {
    const code = e.statusCode === 404 ? 'NOT_FOUND' : e.statusCode === 429 ? 'RATE_LIMITED' : 'INVALID_REQUEST';
    return { status: e.statusCode, body: { error: { code, message: e.message } } };
  }
  return { status: 500, body: { error: { code: 'INTERNAL', message: err instanceof Error ? err.message : String(err) } } };
}

/**
 * The answer to a request Node's HTTP parser refused before Fastify saw it (the server's
 * `clientError`: headers over the size limit, a request that took too long, malformed HTTP), as a raw
 * HTTP/1.1 response in the same error shape. The connection is closed after it (the parser cannot
 * read on). Undefined: nothing to answer (the peer is gone).
 */
export function clientErrorResponse(err: { code?: string }): string | undefined {
  if (err.code === 'ECONNRESET' || err.code === 'EPIPE') return undefined;
  const [status, reason, code, message] =
    err.code === 'HPE_HEADER_OVERFLOW'
      ? [431, 'Request Header Fields Too Large', 'HEADER_TOO_LARGE', 'request headers exceed the size limit']
      : err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
        ? [408, 'Request Timeout', 'REQUEST_TIMEOUT', 'the request was not received in time']
        : [400, 'Bad Request', 'MALFORMED_REQUEST', 'malformed HTTP request'];
  const body = JSON.stringify({ error: { code, message } } satisfies ApiErrorBody);
  return `HTTP/1.1 ${status} ${reason}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`;
}
