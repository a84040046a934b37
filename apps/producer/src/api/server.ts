/**
 * The HTTP API (Fastify): auth on /v1/* (bearer token or dashboard session, auth.ts), the CSRF check
 * of cookie-signed state changes (csrf.ts), the batch and job routes, /healthz, /readyz,
 * /openapi.json, then the extensions (dashboard, metrics). Every refusal, Fastify's and Node's own
 * included, is `{"error":{"code","message"}}` (http-errors.ts). `buildApi` does not listen: main.ts
 * (or a test) calls `app.listen`.
 */
import Fastify, { type FastifyInstance, type FastifyReply } from 'fastify';
import { ConfigError, type Config } from '@scribe-fleet/core';
import type { BatchService } from '@scribe-fleet/core/app/batch-service';
import type { ControlQueues } from '@scribe-fleet/core/adapters/bullmq/control-queues';
import type { FleetQueues } from '@scribe-fleet/core/adapters/bullmq/fleet-queues';
import type { RedisClient } from '@scribe-fleet/core/adapters/redis/connection';
import type { S3Storage } from '@scribe-fleet/core/adapters/s3/s3-storage';
import { apiAuth } from './auth';
import { csrfGuard } from './csrf';
import { clientErrorResponse, toApiError } from './http-errors';
import { openApiDocument } from './openapi';
import { registerHealthRoutes } from './routes-health';
import { registerV1Routes } from './routes';

export interface ApiContext {
  config: Config;
  service: BatchService;
  fleet: FleetQueues;
  storage: S3Storage;
  redis: RedisClient;
  /** The control and webhook queues (Bull Board, the dashboard's and metrics' queue counts). */
  controlQueues: ControlQueues;
}

export type ApiExtension = (app: FastifyInstance, ctx: ApiContext) => Promise<void>;

export interface BuildApiOptions {
  extensions?: ApiExtension[];
  /**
   * Fastify's logger (pino, JSON lines): off by default; `true` = stdout (main.ts); `{ stream }` =
   * into that stream (a test reads what would be logged). Either way with `logSerializers`.
   */
  logger?: boolean | { stream: { write(line: string): void }; level?: string };
}

/** A URL's path, without its query string (which may carry anything, e.g. a `?token=`). */
export function pathOf(url: string | undefined): string {
  const u = url ?? '';
  const q = u.search(/[?#]/);
  return q < 0 ? u : u.slice(0, q);
}

/**
 * What a request and a response log: method, path without the query string, the client address
 * (the one TRUST_PROXY makes believed, the same the login rate limit counts by), and the status.
 * Never a header (Fastify's default logs the Host, its `url` the query string): tokens and cookies
 * travel in headers, and query strings are where people paste them.
 */
export const logSerializers = {
  req: (req: { method?: string; url?: string; ip?: string; socket?: { remoteAddress?: string } }) => ({
    method: req.method,
    path: pathOf(req.url),
    remoteAddress: req.ip ?? req.socket?.remoteAddress,
  }),
  res: (res: { statusCode?: number }) => ({ statusCode: res.statusCode }),
};

function loggerOptions(logger: BuildApiOptions['logger']) {
  if (!logger) return false;
  return { level: (logger !== true && logger.level) || 'info', serializers: logSerializers, ...(logger !== true ? { stream: logger.stream } : {}) };
}

/** Routes the app registered (method + URL), for the OpenAPI completeness test. */
export const REGISTERED_ROUTES = Symbol('scribe.registeredRoutes');

/**
 * Build the app. Refuses (ConfigError) when API_TOKENS is empty: the API never runs unauthenticated.
 */
export async function buildApi(ctx: ApiContext, opts: BuildApiOptions = {}): Promise<FastifyInstance> {
  const tokens = ctx.config.API_TOKENS;
  if (!tokens.length) throw new ConfigError('API_TOKENS is empty: the HTTP API refuses to start without at least one bearer token');
  const app = Fastify({
    logger: loggerOptions(opts.logger),
    bodyLimit: ctx.config.API_MAX_BODY_BYTES,
    // Behind a TLS-terminating proxy: believe X-Forwarded-Proto/-Host/-For (req.protocol, req.host, req.ip).
    trustProxy: ctx.config.TRUST_PROXY,
    // Unknown body fields are an error (a typo such as "ouput" must not be dropped silently).
    ajv: { customOptions: { removeAdditional: false, coerceTypes: 'array', useDefaults: true } },
    // Requests during shutdown are answered below in our shape (Fastify's own 503 is not).
    return503OnClosing: false,
    // A URL Fastify cannot route (bad percent-encoding, a parameter over the length limit).
    frameworkErrors: (err, _req, reply) => {
      const { status, body } = toApiError(err);
      void (reply as FastifyReply).code(status).send(body);
    },
    // Node's parser refused the request (headers too large: 431; timeout; malformed HTTP) before
    // Fastify saw it. Answered raw, in our shape; never logged with its raw bytes (they hold headers).
    clientErrorHandler: (err, socket) => {
      if (socket.destroyed) return;
      const answer = clientErrorResponse(err);
      if (answer === undefined || !socket.writable) {
        socket.destroy();
        return;
      }
      // end(), not destroy(): let the answer reach a client that is still sending (a reset would lose it).
      socket.end(answer);
      setTimeout(() => socket.destroy(), 2_000).unref();
    },
  });
  const routes: Array<{ method: string; url: string }> = [];
  app.decorate(REGISTERED_ROUTES, routes);
  app.addHook('onRoute', (r) => {
    for (const m of [r.method].flat()) if (m !== 'HEAD') routes.push({ method: m, url: r.url });
  });

  app.setErrorHandler((err, req, reply) => {
    const { status, body } = toApiError(err);
    if (status >= 500) req.log.error({ err }, 'request failed');
    void reply.code(status).send(body);
  });
  app.setNotFoundHandler((req, reply) => {
    void reply.code(404).send({ error: { code: 'NOT_FOUND', message: `no route ${req.method} ${req.url.split('?')[0]}` } });
  });

  let closing = false;
  app.addHook('preClose', async () => {
    closing = true;
  });
  app.addHook('onRequest', async (req, reply) => {
    if (!closing) return undefined;
    return reply.code(503).header('connection', 'close').send({ error: { code: 'SHUTTING_DOWN', message: 'the server is shutting down: retry on another replica' } });
  });

  // Cookie-signed state changes must be same-origin JSON, on every route (extensions' too).
  app.addHook('onRequest', csrfGuard);

  // Everything under /v1/ needs a token or a session, including routes extensions add there (e.g. /v1/fleet).
  const auth = apiAuth(ctx);
  app.addHook('onRequest', async (req, reply) => {
    if (req.url.startsWith('/v1/') || req.url === '/v1' || req.url.startsWith('/v1?')) return auth.hook(req, reply);
    return undefined;
  });

  app.get('/openapi.json', async (req) => openApiDocument({ serverUrl: `${req.protocol}://${req.host}` }));
  await registerHealthRoutes(app, ctx);
  await registerV1Routes(app, ctx);
  for (const ext of opts.extensions ?? []) await ext(app, ctx);
  return app;
}
