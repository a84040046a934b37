/**
 * The operator dashboard, behind the API's tokens:
 *
 *   GET  /login, POST /login     a form that takes an API token and, for a valid one, starts a session
 *                                (auth.ts): an opaque random id in the HttpOnly, SameSite=Strict,
 *                                Path=/ `scribe_session` cookie (Secure over HTTPS, TRUST_PROXY
 *                                honoured), kept in Redis for SESSION_TTL_SECONDS. The token itself
 *                                never goes into the cookie. Attempts are limited per client address
 *                                (LOGIN_ATTEMPTS_PER_MINUTE, fleet-wide): past it 429 `RATE_LIMITED`.
 *   GET|POST /logout             ends the session in Redis and clears the cookie
 *   GET  /dashboard              the fleet page: caps in use per bucket, throughput, audio hours,
 *                                failures by code, recent batches with progress and, for a batch made
 *                                from a plan still kept, the plan beside it (server-rendered, then
 *                                refreshed from GET /v1/fleet by a small inline script)
 *   GET  /v1/fleet               the same data as JSON (auth by the API's /v1 hook)
 *   /dashboard/queues/…          Bull Board over every cap-bucket queue and the control and webhook
 *                                queues, read-only (no retry/clean/obliterate from the browser)
 *
 * Unauthenticated page requests (or an expired or revoked session) are redirected to /login;
 * unauthenticated API calls get 401. The login and logout forms pass the CSRF check's origin test
 * (csrf.ts, route config `csrfForm`).
 */
import { randomBytes } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { FastifyAdapter } from '@bull-board/fastify';
import { capBucketKey, type AttemptCounter, type CapBucket } from '@scribe-fleet/core';
import { RedisAttemptCounter } from '@scribe-fleet/core/adapters/redis/session-store';
import { apiAuth, LEGACY_TOKEN_COOKIE, SESSION_COOKIE, type ApiAuth } from './auth';
import { closeFleetReader, fleetReader, type FleetContext } from './dashboard/fleet-view';
import { csp, fleetPage, loginPage } from './dashboard/pages';
import { describeRoutes } from './openapi';
import type { ApiContext, ApiExtension } from './server';

/** The queue Bull Board shows (a BullMQ Queue: core's adapters hand them over, so this file imports no BullMQ). */
type BoardQueue = ConstructorParameters<typeof BullMQAdapter>[0];

/** A bucket queue's name on the board: mode first, then provider, model class and account (`stream · deepgram nova · default`). */
export function bucketDisplayName(b: CapBucket): string {
  return `${b.mode} · ${b.provider} ${b.modelClass} · ${b.account}`;
}

export const BULL_BOARD_PATH = '/dashboard/queues';

const ERROR_SCHEMA = {
  type: 'object',
  required: ['error'],
  properties: { error: { type: 'object', required: ['code', 'message'], properties: { code: { type: 'string' }, message: { type: 'string' } } } },
};
const COUNTS = { type: 'object', additionalProperties: { type: 'integer' } };
/** GET /v1/fleet (FleetView in dashboard/fleet-view.ts), for the OpenAPI document. */
const FLEET_VIEW_SCHEMA = {
  type: 'object',
  required: ['generatedAt', 'buckets', 'queues', 'backlog', 'throughput', 'audio', 'failures', 'batches'],
  properties: {
    generatedAt: { type: 'string', format: 'date-time' },
    buckets: {
      type: 'array',
      description: 'Every cap bucket (provider:account:class:mode) with its queue.',
      items: {
        type: 'object',
        properties: {
          bucket: { type: 'string' },
          queue: { type: 'string' },
          counts: { ...COUNTS, description: 'BullMQ job counts by state.' },
          backlog: { type: 'integer', description: 'waiting + prioritized + delayed.' },
          slots: { type: ['object', 'null'], properties: { inUse: { type: 'integer' }, effective: { type: 'integer' }, configured: { type: 'integer' } } },
          activeLimit: { type: 'integer' },
          perWorker: { type: 'integer' },
          desiredWorkers: { type: 'integer' },
        },
      },
    },
    queues: { type: 'array', description: 'The batch finalisation and webhook queues.', items: { type: 'object', properties: { name: { type: 'string' }, role: { type: 'string' }, counts: COUNTS } } },
    backlog: { type: 'object', properties: { total: { type: 'integer' } } },
    throughput: { type: 'object', description: 'Jobs finished per minute over the last hour (fleet history in Redis).' },
    audio: { type: 'object', description: 'Audio hours per hour over the last 24 hours.' },
    failures: { type: 'array', items: { type: 'object', properties: { code: { type: 'string' }, count: { type: 'integer' } } } },
    batches: { type: 'array', description: "Recent batches, newest first, with counts by state, audio seconds and ETA, and (`planProgress`, see getBatch) the plan a batch was made from beside its progress while the plan is stored." },
  },
};
/** The login rate limit's window: LOGIN_ATTEMPTS_PER_MINUTE attempts per client address in it. */
const LOGIN_WINDOW_MS = 60_000;
const POLL_MS = { default: 3000, min: 250, max: 60_000 };

/** Only local dashboard paths are valid after login (no open redirect). */
export function safeNext(next: unknown): string {
  return typeof next === 'string' && /^\/dashboard(?:[/?#][^\s\\]*)?$/.test(next) ? next : '/dashboard';
}

function loginRedirect(req: FastifyRequest, reply: FastifyReply) {
  return reply.redirect(`/login?next=${encodeURIComponent(safeNext(req.url))}`, 302);
}

/**
 * A Set-Cookie of `name` (HttpOnly, SameSite=Strict, Path=/). `Secure` when the request came over
 * HTTPS, which behind a TLS-terminating proxy is known only with TRUST_PROXY (X-Forwarded-Proto).
 */
function cookieHeader(req: FastifyRequest, name: string, value: string, maxAge: number): string {
  const secure = req.protocol === 'https' ? '; Secure' : '';
  return `${name}=${encodeURIComponent(value)}; Path=/; HttpOnly; SameSite=Strict; Max-Age=${maxAge}${secure}`;
}

/** Set the session cookie (or clear it: `value` empty), and clear the legacy raw-token cookie either way. */
function sessionCookies(req: FastifyRequest, value: string, maxAge: number): string[] {
  return [cookieHeader(req, SESSION_COOKIE, value, maxAge), cookieHeader(req, LEGACY_TOKEN_COOKIE, '', 0)];
}

const signedIn = async (auth: ApiAuth, req: FastifyRequest) => (await auth.authenticate(req)).ok;

function html(reply: FastifyReply, body: string, nonce: string, status = 200) {
  return reply
    .code(status)
    .header('content-type', 'text/html; charset=utf-8')
    .header('content-security-policy', csp(nonce))
    .header('cache-control', 'no-store')
    .header('x-content-type-options', 'nosniff')
    .header('referrer-policy', 'same-origin')
    .send(body);
}

const nonce = () => randomBytes(16).toString('base64');

async function registerPages(scope: FastifyInstance, ctx: FleetContext, attempts: AttemptCounter): Promise<void> {
  const auth = apiAuth(ctx);
  const maxAttempts = ctx.config.LOGIN_ATTEMPTS_PER_MINUTE;
  const { reader } = fleetReader(ctx);
  // The login form posts urlencoded; the parser is scoped to these routes.
  if (!scope.hasContentTypeParser('application/x-www-form-urlencoded')) {
    scope.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string', bodyLimit: 8192 }, (_req, body, done) => {
      done(null, Object.fromEntries(new URLSearchParams(String(body))));
    });
  }

  scope.get<{ Querystring: { next?: string } }>('/login', async (req, reply) => {
    if (await signedIn(auth, req)) return reply.redirect(safeNext(req.query.next), 302);
    const n = nonce();
    return html(reply, loginPage({ nonce: n, next: safeNext(req.query.next) }), n);
  });

  scope.post<{ Body: { token?: string; next?: string } | undefined }>('/login', { config: { csrfForm: true } }, async (req, reply) => {
    // Counted before the token is checked (and given back on success), so a burst of concurrent
    // guesses cannot all slip under the limit; per client address (req.ip: TRUST_PROXY honoured).
    const window = await attempts.hit(req.ip, LOGIN_WINDOW_MS);
    if (window.count > maxAttempts) {
      const retryAfter = Math.max(1, Math.ceil(window.resetMs / 1000));
      return reply
        .code(429)
        .header('retry-after', String(retryAfter))
        .send({ error: { code: 'RATE_LIMITED', message: `too many sign-in attempts from this address (${maxAttempts} per minute): retry in ${retryAfter} s` } });
    }
    const token = typeof req.body?.token === 'string' ? req.body.token.trim() : '';
    const next = safeNext(req.body?.next);
    // The API's own (constant-time) check of the token, then a new session for it.
    const session = token ? await auth.signIn(token) : null;
    if (session === null) {
      await new Promise((r) => setTimeout(r, 300)); // slows guessing a little
      const n = nonce();
      return html(reply, loginPage({ nonce: n, next, error: token ? 'That token is not valid.' : 'Enter an API token.' }), n, 401);
    }
    await attempts.forgive(req.ip);
    // 303: the browser follows with a GET; the SameSite=Strict cookie goes along (same site).
    return reply.header('set-cookie', sessionCookies(req, session, auth.sessionTtlSeconds)).redirect(next, 303);
  });

  // Ends the session in Redis (so a copy of the cookie is worthless too), then clears the cookie.
  const logout = async (req: FastifyRequest, reply: FastifyReply) => {
    await auth.signOut(req);
    return reply.header('set-cookie', sessionCookies(req, '', 0)).redirect('/login', 303);
  };
  scope.post('/logout', { config: { csrfForm: true } }, logout);
  // (GET for Bull Board's "Log out" link: a cross-site page cannot use it, the SameSite=Strict cookie stays home.)
  scope.get('/logout', logout);

  scope.get('/dashboard/', async (_req, reply) => reply.redirect('/dashboard', 301));

  scope.get<{ Querystring: { poll?: string; batches?: string } }>('/dashboard', async (req, reply) => {
    if (!(await signedIn(auth, req))) return loginRedirect(req, reply);
    const poll = Number(req.query.poll);
    const pollMs = Number.isFinite(poll) && poll > 0 ? Math.min(POLL_MS.max, Math.max(POLL_MS.min, poll)) : POLL_MS.default;
    const batches = Math.min(50, Math.max(1, Number(req.query.batches) || 10));
    const view = await reader.view({ batches });
    const n = nonce();
    return html(reply, fleetPage({ nonce: n, view, pollMs, batches }), n);
  });
}

/** Bull Board, read-only, behind the same auth; the queue list follows the registered cap buckets. */
async function registerBullBoard(scope: FastifyInstance, ctx: FleetContext): Promise<void> {
  const auth = apiAuth(ctx);
  const { fleet, controlQueues } = ctx;
  const serverAdapter = new FastifyAdapter();
  serverAdapter.setBasePath(BULL_BOARD_PATH);
  const adapter = (q: BoardQueue, description: string, displayName?: string) =>
    new BullMQAdapter(q, { readOnlyMode: true, allowRetries: false, description, ...(displayName ? { displayName } : {}) });
  const board = createBullBoard({
    queues: [adapter(controlQueues.control, 'batch finalisation (reports)'), adapter(controlQueues.webhooks, 'webhook deliveries')],
    serverAdapter,
    options: {
      uiConfig: {
        boardTitle: 'scribe-fleet',
        miscLinks: [
          { text: 'Fleet', url: '/dashboard' },
          { text: 'Log out', url: '/logout' },
        ],
        pollingInterval: { forceInterval: 5000 },
        hideDocsLink: true,
      },
    },
  });
  const shown = new Set<string>();
  let refreshedAt = 0;
  const refresh = async () => {
    if (Date.now() - refreshedAt < 2000) return;
    refreshedAt = Date.now();
    for (const b of await fleet.buckets()) {
      const { queueName: name } = fleet.resolve(b);
      if (shown.has(name)) continue;
      shown.add(name);
      // Queue names share the fleet's prefix and differ at their end (`….batch` / `….stream`), which the
      // board's list cuts off: the display name starts with what differs.
      board.addQueue(adapter(fleet.queue(b) as unknown as BoardQueue, `cap bucket ${capBucketKey(b)} (queue ${name})`, bucketDisplayName(b)));
    }
  };

  scope.addHook('onRequest', async (req, reply) => {
    if (!(await signedIn(auth, req))) {
      const path = req.url.split('?')[0] ?? '';
      if (req.method === 'GET' && !path.startsWith(`${BULL_BOARD_PATH}/api/`) && !path.startsWith(`${BULL_BOARD_PATH}/static/`)) return loginRedirect(req, reply);
      return reply.code(401).send({ error: { code: 'UNAUTHORIZED', message: 'sign in at /login or send "Authorization: Bearer <token>"' } });
    }
    await refresh().catch(() => undefined); // Redis down: the board shows what it has
    return undefined;
  });
  // Bull Board's page links a web font on a CDN; the dashboard works offline, so drop external links.
  scope.addHook('onSend', async (_req, reply, payload) => {
    if (typeof payload !== 'string' || !String(reply.getHeader('content-type') ?? '').includes('text/html')) return payload;
    return payload.replace(/<link[^>]+href="https?:\/\/[^"]*"[^>]*>/g, '');
  });
  await scope.register(serverAdapter.registerPlugin());
}

export const registerDashboard: ApiExtension = async (app: FastifyInstance, ctx: ApiContext) => {
  const { reader } = fleetReader(ctx);
  app.addHook('onClose', async () => closeFleetReader(ctx));

  describeRoutes([
    {
      method: 'get',
      path: '/v1/fleet',
      operationId: 'getFleet',
      summary: 'The fleet now: cap buckets (slots, queue counts, backlog), throughput, audio hours, failures by code, recent batches',
      description: 'What the dashboard at /dashboard polls. History (throughput, audio hours, failures) comes from per-minute counters the workers keep in Redis.',
      auth: true,
      query: { type: 'object', properties: { batches: { type: 'integer', minimum: 1, maximum: 50, default: 10, description: 'How many recent batches to include.' } } },
      responses: { '200': { description: 'The fleet now.', schema: FLEET_VIEW_SCHEMA }, '401': { description: 'Missing or invalid token (UNAUTHORIZED).', schema: ERROR_SCHEMA } },
    },
  ]);
  // Auth: the API's hook covers every /v1/ route.
  app.get<{ Querystring: { batches?: number } }>(
    '/v1/fleet',
    { schema: { querystring: { type: 'object', properties: { batches: { type: 'integer', minimum: 1, maximum: 50, default: 10 } } } } },
    async (req) => reader.view({ batches: req.query.batches ?? 10 }),
  );

  const attempts = new RedisAttemptCounter(ctx.redis, ctx.config);
  await app.register(async (scope) => registerPages(scope, ctx, attempts));
  await app.register(async (scope) => registerBullBoard(scope, ctx), { prefix: BULL_BOARD_PATH });
};
