/**
 * The dashboard's sign-in state (Redis behind it: adapters/redis/session-store.ts), shared by every
 * API replica so a session made on one is honoured (and revoked) on all of them.
 *
 * A browser holds only an opaque session id; the API token it signed in with never leaves the login
 * request. What is stored is only what a later request needs to decide "still signed in?".
 */

/** What the API keeps of one session. */
export interface SessionRecord {
  /**
   * Which API token the session came from, as a keyed hash that only the holder of the session id
   * can recompute (HMAC-SHA256 of the token under the session id). It lets the API end a session
   * whose token was removed from API_TOKENS, yet a reader of Redis learns nothing about any token.
   */
  binding: string;
  /** When the session was created (ms since the epoch). */
  createdAt: number;
}

/** Sessions by id, each with its own expiry. Ids are never stored as such (only a hash of them). */
export interface SessionStore {
  /** Store a session under `id` for `ttlSeconds`. */
  save(id: string, record: SessionRecord, ttlSeconds: number): Promise<void>;
  /** The session of `id`, or null when it never existed, expired or was revoked. */
  load(id: string): Promise<SessionRecord | null>;
  /** Forget a session (sign-out). Unknown ids are fine. */
  revoke(id: string): Promise<void>;
}

/** One fixed window of attempts by one subject (a client address). */
export interface AttemptWindow {
  /** Attempts counted in the current window, this one included. */
  count: number;
  /** Milliseconds until the window ends and the count starts again. */
  resetMs: number;
}

/**
 * Counts attempts per subject in fixed windows (the login rate limit). Counting happens before the
 * attempt is checked, so concurrent guesses cannot all slip under the limit at once.
 */
export interface AttemptCounter {
  /** Count one attempt by `subject` in its current window of `windowMs` (the window starts at its first attempt). */
  hit(subject: string, windowMs: number): Promise<AttemptWindow>;
  /** Take one attempt back (a successful sign-in does not count against the limit). */
  forgive(subject: string): Promise<void>;
}
