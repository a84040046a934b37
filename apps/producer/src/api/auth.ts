/**
 * Bearer-token auth of the HTTP API (and the dashboard): `Authorization: Bearer <token>` or the
 * HttpOnly cookie `scribe_token=<token>` the dashboard's login page sets. Tokens come from
 * API_TOKENS; the comparison is constant-time (both sides hashed to 32 bytes, every token compared).
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';

export const TOKEN_COOKIE = 'scribe_token';

const digest = (s: string) => createHash('sha256').update(s, 'utf8').digest();

function bearer(header: string | undefined): string | undefined {
  const m = /^Bearer[ \t]+(\S+)\s*$/i.exec(header ?? '');
  return m?.[1];
}

function cookie(header: string | undefined, name: string): string | undefined {
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

/** The token a request presents (bearer header first, then the cookie), if any. */
export function presentedToken(req: FastifyRequest): string | undefined {
  return bearer(req.headers.authorization) ?? cookie(req.headers.cookie, TOKEN_COOKIE);
}

/** True if the request carries one of `tokens`. Constant-time per token; no early exit. */
export function isAuthorised(req: FastifyRequest, tokens: string[]): boolean {
  const presented = presentedToken(req);
  if (!presented) return false;
  const p = digest(presented);
  let ok = false;
  for (const t of tokens) ok = timingSafeEqual(p, digest(t)) || ok;
  return ok;
}

/** A Fastify preHandler (or onRequest hook): 401 `{error:{code:'UNAUTHORIZED',message}}` unless authorised. */
export function requireAuth(tokens: string[]) {
  return async function requireAuthHook(req: FastifyRequest, reply: FastifyReply): Promise<FastifyReply | undefined> {
    if (isAuthorised(req, tokens)) return undefined;
    const message = presentedToken(req) ? 'invalid token' : 'missing token: send "Authorization: Bearer <token>" (one of API_TOKENS)';
    // Returning the reply ends the request here (Fastify's rule for async hooks).
    return reply.code(401).header('www-authenticate', 'Bearer realm="scribe"').send({ error: { code: 'UNAUTHORIZED', message } });
  };
}
