/** GET /healthz (the process is up) and GET /readyz (Redis and S3 answer), both without auth. */
import type { FastifyInstance } from 'fastify';
import { StorageUnavailableError } from '@scribe-fleet/core';
import type { ApiContext } from './server';

const PROBE_TIMEOUT_MS = 3_000;

class ProbeTimeout extends Error {}

function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<T>((_, reject) => {
      timer = setTimeout(() => reject(new ProbeTimeout(`${what}: no answer within ${ms} ms`)), ms);
    }),
  ]);
}

/** Redis answers PING. */
async function checkRedis(ctx: ApiContext): Promise<string> {
  const pong = await within(ctx.redis.ping(), PROBE_TIMEOUT_MS, 'redis');
  if (pong !== 'PONG') throw new Error(`redis answered ${pong}`);
  return 'ok';
}

/**
 * S3 answers HTTP: a HEAD of a key that need not exist, in the first allowed bucket. Any HTTP answer
 * (found, 404, 403) means reachable; only "no answer / 5xx" (StorageUnavailableError) is down.
 */
async function checkS3(ctx: ApiContext): Promise<string> {
  const bucket = ctx.config.S3_ALLOWED_BUCKETS[0] ?? 'scribe-readyz-probe';
  try {
    await within(ctx.storage.head(bucket, '.scribe-readyz'), PROBE_TIMEOUT_MS, 's3');
  } catch (e) {
    if (e instanceof StorageUnavailableError || e instanceof ProbeTimeout) throw e;
  }
  return 'ok';
}

export async function registerHealthRoutes(app: FastifyInstance, ctx: ApiContext): Promise<void> {
  app.get('/healthz', async () => ({ status: 'ok' }));

  app.get('/readyz', async (_req, reply) => {
    const [redis, s3] = await Promise.allSettled([checkRedis(ctx), checkS3(ctx)]);
    const checks = {
      redis: redis.status === 'fulfilled' ? 'ok' : (redis.reason as Error).message,
      s3: s3.status === 'fulfilled' ? 'ok' : (s3.reason as Error).message,
    };
    if (redis.status === 'fulfilled' && s3.status === 'fulfilled') return { status: 'ready', checks };
    const code = redis.status === 'rejected' ? 'REDIS_UNAVAILABLE' : 'STORAGE_UNAVAILABLE';
    return reply.code(503).send({ error: { code, message: `not ready: ${Object.entries(checks).filter(([, v]) => v !== 'ok').map(([k, v]) => `${k}: ${v}`).join('; ')}`, details: { checks } } });
  });
}
