/** AssemblyAI v3 close codes and reasons (providers.md §3.6) and the error close (§3.4 Error frame). */
import type { LiveSession } from '../live/session';

export const CLOSE_UNAUTHORIZED = 1008;
/** Catch-all server error. */
export const CLOSE_CANCELLED = 3005;
export const CANCELLED_REASON = 'Session Cancelled: An error occurred';
/** A bad text frame or query parameter. */
export const CLOSE_INVALID = 3006;
/** A frame outside 50–1000 ms, or audio faster than real time. */
export const CLOSE_INPUT = 3007;
export const CLOSE_EXPIRED = 3008;
export const EXPIRED_REASON = 'Session Expired: Maximum session duration exceeded';

export const unauthorized = (why: string): string => `Unauthorized Connection: ${why}`;

export function durationViolation(frameMs: number): string {
  return `Input duration violation: ${Math.round(frameMs * 100) / 100} ms. Expected between 50 and 1000 ms`;
}

export function rateExceeded(audioSeconds: number, elapsedSeconds: number): string {
  return `Audio Transmission Rate Exceeded: Received ${audioSeconds.toFixed(1)} sec. audio in ${elapsedSeconds.toFixed(2)} sec`;
}

/**
 * The service's error close: `{"type":"Error","error_code","error"}` first (when `errorFrame`; the limit
 * and auth closes come without one), then the close frame.
 */
export function closeWithError(session: LiveSession, code: number, reason: string, errorFrame: boolean): void {
  if (errorFrame) session.send({ type: 'Error', error_code: code, error: reason }, 'Error');
  session.close(code, reason);
}
