/** A real API server on a free port, on the test Redis + S3 server, with its own queue name. */
import type { AddressInfo } from 'node:net';
import { randomBytes } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { Redis } from 'ioredis';
import type { Config } from '@scribe-fleet/core';
import type { BatchService } from '@scribe-fleet/core/app/batch-service';
import { batchServiceOver } from '@scribe-fleet/core/adapters/bullmq/open-services';
import { FleetQueues } from '@scribe-fleet/core/adapters/bullmq/fleet-queues';
import { RedisSessionStore } from '@scribe-fleet/core/adapters/redis/session-store';
import type { S3Storage } from '@scribe-fleet/core/adapters/s3/s3-storage';
import { apiAuth } from '../../apps/producer/src/api/auth';
import { buildApi, type ApiExtension, type BuildApiOptions } from '../../apps/producer/src/api/server';
import { testStorage } from '../helpers/env';
import { testConfig } from '../helpers/fleet';

export interface Answer<T = any> {
  status: number;
  body: T;
  headers: Headers;
}

export interface ApiHarness {
  config: Config;
  token: string;
  url: string;
  app: FastifyInstance;
  service: BatchService;
  fleet: FleetQueues;
  storage: S3Storage;
  redis: Redis;
  /** A request with the valid token (or `auth: null` for none, or another token). */
  /** A new dashboard session for the valid token, as POST /login makes it: the `scribe_session` cookie's value. */
  signIn(): Promise<string>;
  /** End that session (as /logout does). */
  signOut(session: string): Promise<void>;
  call<T = any>(method: string, path: string, opts?: { body?: unknown; auth?: string | null; headers?: Record<string, string> }): Promise<Answer<T>>;
  close(): Promise<void>;
}

/** `options`: the rest of buildApi's options (e.g. `logger: { stream }` to read what the API logs). */
export async function startApi(overrides: Record<string, string> = {}, extensions: ApiExtension[] = [], options: Omit<BuildApiOptions, 'extensions'> = {}): Promise<ApiHarness> {
  const token = `tok-${randomBytes(12).toString('hex')}`;
  const config = testConfig({ API_TOKENS: `other-${randomBytes(6).toString('hex')},${token}`, BUCKET_DISCOVERY_MS: '200', ...overrides });
  const storage = testStorage();
  const redis = new Redis(config.REDIS_URL, { maxRetriesPerRequest: 2 });
  redis.on('error', () => {});
  const fleet = new FleetQueues(config, redis);
  const services = batchServiceOver({ config, redis, storage, fleet });
  const { service, controlQueues } = services;
  controlQueues.onError(() => {});
  const ctx = { config, service, fleet, storage, redis, controlQueues };
  const app = await buildApi(ctx, { ...options, extensions });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const url = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
  return {
    config,
    token,
    url,
    app,
    service,
    fleet,
    storage,
    redis,
    async signIn() {
      const id = await apiAuth(ctx).signIn(token);
      if (!id) throw new Error('signIn: the harness token was refused');
      return id;
    },
    async signOut(session) {
      await new RedisSessionStore(redis, config).revoke(session);
    },
    async call(method, path, opts = {}) {
      const auth = opts.auth === undefined ? token : opts.auth;
      const res = await fetch(url + path, {
        method,
        headers: {
          ...(auth !== null ? { authorization: `Bearer ${auth}` } : {}),
          ...(opts.body !== undefined ? { 'content-type': 'application/json' } : {}),
          ...(opts.headers ?? {}),
        },
        ...(opts.body !== undefined ? { body: typeof opts.body === 'string' ? opts.body : JSON.stringify(opts.body) } : {}),
      });
      const text = await res.text();
      let body: unknown = text;
      try {
        body = JSON.parse(text);
      } catch {
        // not JSON: keep the text
      }
      return { status: res.status, body: body as never, headers: res.headers };
    },
    async close() {
      await app.close();
      await services.close();
      await fleet.close();
      storage.destroy();
      redis.disconnect();
    },
  };
}

/** Poll GET /v1/batches/:id until the batch has its report (finished or cancelled). */
export async function waitBatch(api: ApiHarness, id: string, timeoutMs = 60_000, onTick?: () => Promise<unknown>): Promise<any> {
  const t0 = Date.now();
  for (;;) {
    await onTick?.();
    const r = await api.call('GET', `/v1/batches/${id}`);
    if (r.status !== 200) throw new Error(`GET /v1/batches/${id}: ${r.status} ${JSON.stringify(r.body)}`);
    if (r.body.report && r.body.status !== 'running') return r.body;
    if (Date.now() - t0 > timeoutMs) throw new Error(`batch ${id} did not finish: ${JSON.stringify(r.body)}`);
    await new Promise((res) => setTimeout(res, 150));
  }
}
