/**
 * The HTTP API (Fastify): bearer-token auth on /v1/*, the batch and job routes, /healthz, /readyz,
 * /openapi.json, then the extensions (dashboard, metrics). `buildApi` does not listen: main.ts (or a
 * test) calls `app.listen`.
 */
import Fastify, { type FastifyInstance } from 'fastify';
import { ConfigError, type Config } from '@scribe-fleet/core';
import type { BatchService } from '@scribe-fleet/core/app/batch-service';
import type { ControlQueues } from '@scribe-fleet/core/adapters/bullmq/control-queues';
import type { FleetQueues } from '@scribe-fleet/core/adapters/bullmq/fleet-queues';
import type { RedisClient } from '@scribe-fleet/core/adapters/redis/connection';
import type { S3Storage } from '@scribe-fleet/core/adapters/s3/s3-storage';
import { requireAuth } from './auth';
import { toApiError } from './http-errors';
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
  /** Fastify's logger (pino, JSON lines on stdout); off by default, on in main.ts. */
  logger?: boolean;
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
    logger: opts.logger ?? false,
    bodyLimit: ctx.config.API_MAX_BODY_BYTES,
    // Unknown body fields are an error (a typo such as "ouput" must not be dropped silently).
    ajv: { customOptions: { removeAdditional: false, coerceTypes: 'array', useDefaults: true } },
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

  // Everything under /v1/ needs a token, including routes extensions add there (e.g. /v1/fleet).
  const auth = requireAuth(tokens);
  app.addHook('onRequest', async (req, reply) => {
    if (req.url.startsWith('/v1/') || req.url === '/v1') return auth(req, reply);
    return undefined;
  });

  app.get('/openapi.json', async (req) => openApiDocument({ serverUrl: `${req.protocol}://${req.host}` }));
  await registerHealthRoutes(app, ctx);
  await registerV1Routes(app, ctx);
  for (const ext of opts.extensions ?? []) await ext(app, ctx);
  return app;
}
