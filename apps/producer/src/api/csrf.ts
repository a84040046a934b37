/**
 * Cross-site request forgery defence for what a browser signs in with the session cookie.
 *
 * SameSite=Strict alone is not enough: it depends on the browser, and "same site" is wider than
 * "same origin" (a sibling subdomain, or another port of the same host, is the same site). So a
 * state-changing request (POST, PUT, PATCH, DELETE) that carries the session cookie and no
 * `Authorization` header must also
 *   - come from this origin: `Origin` equal to the request's own `scheme://host` (honouring
 *     TRUST_PROXY for both), or, without `Origin`, a `Referer` of this origin; and
 *   - be JSON (`content-type: application/json`), which a cross-site page cannot send without a CORS
 *     preflight this server never grants. This closes `text/plain` and form posts.
 * The dashboard's own forms (POST /login, /logout; route config `csrfForm: true`) are urlencoded by
 * nature: they need only the origin check, and for them a request with neither `Origin` nor
 * `Referer` (not a browser: browsers send `Origin` on every POST) passes.
 *
 * Bearer-token requests are not checked: a browser never adds an `Authorization` header to a
 * cross-site request by itself. Refusal: 403 `CSRF_REJECTED`, in the API's error shape.
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import { SESSION_COOKIE, readCookie } from './auth';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** A urlencoded form of the dashboard's own (login, logout): the CSRF check looks at the origin only. */
    csrfForm?: boolean;
  }
}

export const CSRF_REJECTED = 'CSRF_REJECTED';

const UNSAFE = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

/** `scheme://host[:port]` normalised (default ports dropped, lower case), or null if it does not parse. */
function normalisedOrigin(url: string): string | null {
  try {
    const o = new URL(url).origin;
    return o === 'null' ? null : o;
  } catch {
    return null;
  }
}

/** The request's own origin: its scheme and Host (both from X-Forwarded-* when TRUST_PROXY says so). */
export function ownOrigin(req: FastifyRequest): string | null {
  return req.host ? normalisedOrigin(`${req.protocol}://${req.host}`) : null;
}

/** The media type of a content-type header, lower case, without parameters. */
function mediaType(header: string | undefined): string {
  return (header ?? '').split(';')[0]!.trim().toLowerCase();
}

/** Why the request is refused as a possible forgery, or null if it passes. */
export function csrfRefusal(req: FastifyRequest): string | null {
  if (!UNSAFE.has(req.method)) return null;
  if (req.headers.authorization !== undefined) return null; // judged by its bearer token alone
  const form = req.routeOptions?.config?.csrfForm === true;
  // Without the cookie there is nothing ambient to abuse: auth answers (401) if the route needs it.
  if (!form && readCookie(req.headers.cookie, SESSION_COOKIE) === undefined) return null;

  const own = ownOrigin(req);
  const origin = req.headers.origin;
  const referer = req.headers.referer;
  if (origin !== undefined) {
    // `Origin: null` (sandboxed frames, some redirects) is never this origin.
    if (own === null || normalisedOrigin(origin) !== own) return `Origin ${JSON.stringify(origin)} is not this server's origin (${own ?? 'unknown'})`;
  } else if (referer !== undefined) {
    if (own === null || normalisedOrigin(referer) !== own) return `Referer is not of this server's origin (${own ?? 'unknown'})`;
  } else if (!form) {
    return 'a request signed in by the session cookie must send Origin (or Referer)';
  }
  if (!form && mediaType(req.headers['content-type']) !== 'application/json') {
    return 'a request signed in by the session cookie must be application/json (or use "Authorization: Bearer <token>")';
  }
  return null;
}

/** An onRequest hook: 403 `CSRF_REJECTED` for a possible forgery. */
export async function csrfGuard(req: FastifyRequest, reply: FastifyReply): Promise<FastifyReply | undefined> {
  const why = csrfRefusal(req);
  if (why === null) return undefined;
  return reply.code(403).send({ error: { code: CSRF_REJECTED, message: `refused as a possible cross-site request: ${why}` } });
}
