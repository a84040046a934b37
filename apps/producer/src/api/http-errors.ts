/**
 * One error shape for every HTTP answer that is not a success: `{error: {code, message, details?}}`,
 * with the status derived from the stable ScribeError code. No Fastify import: the CLI uses
 * `isRedisDown` too.
 */
import { ScribeError } from '@scribe-fleet/core';

export interface ApiErrorBody {
  error: { code: string; message: string; details?: Record<string, unknown> };
}

const BAD_REQUEST = new Set(['INVALID_S3_URL', 'INVALID_MANIFEST', 'INVALID_REQUEST', 'UNSUPPORTED_COMBINATION', 'UNKNOWN_PROVIDER', 'INVALID_JOB_SPEC', 'CONFIG_INVALID']);
const UNAVAILABLE = new Set(['STORAGE_UNAVAILABLE', 'REDIS_UNAVAILABLE']);

/** HTTP status of an error code. */
export function statusOfCode(code: string): number {
  if (BAD_REQUEST.has(code)) return 400;
  if (code === 'UNAUTHORIZED') return 401;
  if (code === 'BUCKET_NOT_ALLOWED') return 403;
  if (code.endsWith('_NOT_FOUND') || code === 'NOT_FOUND') return 404;
  if (code === 'INVALID_STATE' || code === 'SOURCE_CHANGED') return 409;
  if (code === 'PAYLOAD_TOO_LARGE') return 413;
  if (code === 'UNSUPPORTED_MEDIA_TYPE') return 415;
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
  if (e.code === 'FST_ERR_CTP_BODY_TOO_LARGE') return { status: 413, body: { error: { code: 'PAYLOAD_TOO_LARGE', message: e.message } } };
  if (e.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') return { status: 415, body: { error: { code: 'UNSUPPORTED_MEDIA_TYPE', message: e.message } } };
  if (typeof e.statusCode === 'number' && e.statusCode >= 400 && e.statusCode < 500) {
    return { status: e.statusCode, body: { error: { code: e.statusCode === 404 ? 'NOT_FOUND' : 'INVALID_REQUEST', message: e.message } } };
  }
  return { status: 500, body: { error: { code: 'INTERNAL', message: err instanceof Error ? err.message : String(err) } } };
}
