/**
 * Auth of the HTTP API and the dashboard. A request is signed in by one credential:
 *
 *   - `Authorization: Bearer <token>`, one of API_TOKENS (scripts, the CLI, Prometheus). The
 *     comparison is constant-time: both sides hashed to 32 bytes, every token compared, no early exit.
 *   - the `scribe_session` cookie the dashboard's login sets: an opaque random id (256 bits) that
 *     POST /login hands out in exchange for a valid token, looked up in Redis (SessionStore, shared by
 *     every API replica), valid until SESSION_TTL_SECONDS or sign-out. The browser never holds the
 *     token, so a leaked cookie is revocable and expires; Redis holds no token either (only a hash of
 *     the id and a keyed hash binding it to its token, so removing a token from API_TOKENS ends its
 *     sessions).
 *
 * A request that sends an Authorization header is judged by it alone (a wrong header is not rescued
 * by a cookie). Cookie-signed state changes also pass the CSRF check (csrf.ts).
 */
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Config, SessionStore } from '@scribe-fleet/core';
import type { RedisClient } from '@scribe-fleet/core/adapters/redis/connection';
import { RedisSessionStore } from '@scribe-fleet/core/adapters/redis/session-store';

/** The session cookie (HttpOnly, SameSite=Strict, Path=/, Secure over HTTPS). */
export const SESSION_COOKIE = 'scribe_session';
/** What earlier versions set: the raw token in a cookie. Never read any more; cleared at login and logout. */
export const LEGACY_TOKEN_COOKIE = 'scribe_token';

/** A session id: 32 random bytes, base64url (43 characters). Anything else is not looked up. */
const SESSION_ID = /^[A-Za-z0-9_-]{43}$/;

export type AuthResult = { ok: true; via: 'bearer' | 'session' } | { ok: false; reason: 'missing' | 'invalid-token' | 'invalid-session' };

const digest = (s: string) => createHash('sha256').update(s, 'utf8').digest();
/** The keyed hash that binds a session to its token: only the holder of the id can recompute it. */
const binding = (sessionId: string, token: string) => createHmac('sha256', sessionId).update(token, 'utf8').digest();

/** The token of an `Authorization: Bearer <token>` header, if it is one. */
export function bearer(header: string | undefined): string | undefined {
  const m = /^Bearer[ \t]+(\S+)\s*$/i.exec(header ?? '');
  return m?.[1];
}

/** A cookie's value from a Cookie header (the first of that name), if present. */
export function readCookie(header: string | undefined, name: string): string | undefined {
  for (const part of (header ?? '').split(';')) {
    const eq = part.indexOf('=');
    if (eq < 0 || part.slice(0, eq).trim() !== name) continue;
    const raw = part.slice(eq + 1).trim().replace(/^"(.*)"$/, '$1');
    try {
      return decodeURIComponent(raw);
    } catch {
      return raw;
    }
  }
  return undefined;
}

/** The API's credentials check over API_TOKENS and the session store. One per API (see `apiAuth`). */
export class ApiAuth {
  private readonly digests: Buffer[];
  /** Each request is checked once, however many hooks ask (the /v1 hook, a page, Bull Board's hook). */
  private readonly results = new WeakMap<FastifyRequest, Promise<AuthResult>>();

  constructor(
    private readonly tokens: string[],
    private readonly sessions: SessionStore,
    /** How long a session lives (the Redis TTL and the cookie's Max-Age). */
    readonly sessionTtlSeconds: number,
  ) {
    this.digests = tokens.map(digest);
  }

  /** True if `token` is one of API_TOKENS. Constant-time per token; no early exit. */
  isToken(token: string): boolean {
    if (!token) return false;
    const p = digest(token);
    let ok = false;
    for (const d of this.digests) ok = timingSafeEqual(p, d) || ok;
    return ok;
  }

  /** How the request is signed in, if it is. Throws only if the session store is unreachable. */
  authenticate(req: FastifyRequest): Promise<AuthResult> {
    let r = this.results.get(req);
    if (!r) {
      r = this.check(req);
      this.results.set(req, r);
    }
    return r;
  }

  private async check(req: FastifyRequest): Promise<AuthResult> {
    const header = req.headers.authorization;
    if (header !== undefined) {
      const token = bearer(header);
      return token !== undefined && this.isToken(token) ? { ok: true, via: 'bearer' } : { ok: false, reason: 'invalid-token' };
    }
    const id = readCookie(req.headers.cookie, SESSION_COOKIE);
    if (id === undefined) return { ok: false, reason: 'missing' };
    return (await this.sessionValid(id)) ? { ok: true, via: 'session' } : { ok: false, reason: 'invalid-session' };
  }

  private async sessionValid(id: string): Promise<boolean> {
    if (!SESSION_ID.test(id)) return false;
    const rec = await this.sessions.load(id);
    if (!rec) return false;
    // A TTL shortened since the session was made applies to it too.
    if (Date.now() - rec.createdAt > this.sessionTtlSeconds * 1000) return false;
    const stored = Buffer.from(rec.binding, 'base64url');
    let ok = false;
    for (const t of this.tokens) {
      const b = binding(id, t);
      ok = (stored.length === b.length && timingSafeEqual(stored, b)) || ok;
    }
    return ok;
  }

  /** Exchange a token for a new session: its id (the cookie's value), or null if the token is not valid. */
  async signIn(token: string): Promise<string | null> {
    if (!this.isToken(token)) return null;
    const id = randomBytes(32).toString('base64url');
    await this.sessions.save(id, { binding: binding(id, token).toString('base64url'), createdAt: Date.now() }, this.sessionTtlSeconds);
    return id;
  }

  /** End the request's session, if it has one (the cookie is cleared by the caller). */
  async signOut(req: FastifyRequest): Promise<void> {
    const id = readCookie(req.headers.cookie, SESSION_COOKIE);
    if (id !== undefined && SESSION_ID.test(id)) await this.sessions.revoke(id);
    this.results.delete(req);
  }

  /** An onRequest hook (or preHandler): 401 `{error:{code:'UNAUTHORIZED',message}}` unless signed in. */
  readonly hook = async (req: FastifyRequest, reply: FastifyReply): Promise<FastifyReply | undefined> => {
    const r = await this.authenticate(req);
    if (r.ok) return undefined;
    const message =
      r.reason === 'invalid-token'
        ? 'invalid token'
        : r.reason === 'invalid-session'
          ? 'session expired or signed out: sign in again at /login, or send "Authorization: Bearer <token>"'
          : 'missing token: send "Authorization: Bearer <token>" (one of API_TOKENS)';
    // Returning the reply ends the request here (Fastify's rule for async hooks).
    return reply.code(401).header('www-authenticate', 'Bearer realm="scribe"').send({ error: { code: 'UNAUTHORIZED', message } });
  };
}

const byContext = new WeakMap<object, ApiAuth>();

/** The API's auth for a context (one per context, shared by the server, the dashboard and /metrics). */
export function apiAuth(ctx: { config: Config; redis: RedisClient }): ApiAuth {
  let a = byContext.get(ctx);
  if (!a) {
    a = new ApiAuth(ctx.config.API_TOKENS, new RedisSessionStore(ctx.redis, ctx.config), ctx.config.SESSION_TTL_SECONDS);
    byContext.set(ctx, a);
  }
  return a;
}
