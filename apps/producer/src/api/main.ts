#!/usr/bin/env node
// First: OpenTelemetry must hook http/ioredis/aws-sdk before they load (CommonJS keeps this order).
import { shutdownTelemetry } from '../instrumentation';
import { ConfigError } from '@scribe-fleet/core';
import { configOrExit } from '@scribe-fleet/core/adapters/bootstrap';
import { loadPrices } from '@scribe-fleet/core/adapters/plan-services';
import { openProducer } from '../context';
import { registerDashboard } from './dashboard';
import { registerMetrics } from './metrics';
import { buildApi } from './server';

/** How long a graceful shutdown may take before the process exits anyway. */
const SHUTDOWN_GRACE_MS = 25_000;

async function main(): Promise<void> {
  const config = configOrExit('scribe-api', process.env, (c) => {
    if (!c.API_TOKENS.length) throw new ConfigError('invalid configuration:\n  API_TOKENS: empty: the HTTP API refuses to start without at least one bearer token (comma-separated)');
    loadPrices(c); // a price file that cannot be read or parsed stops the start (exit 78), not the first plan
  });
  const producer = openProducer(config);
  let redisDown = false;
  producer.redis.on('error', (e: Error) => {
    if (!redisDown) console.error(`[api] redis: ${e.message}`);
    redisDown = true;
  });
  producer.redis.on('ready', () => (redisDown = false));
  const app = await buildApi(
    { config, service: producer.service, fleet: producer.fleet, storage: producer.storage, redis: producer.redis, controlQueues: producer.controlQueues },
    { extensions: [registerMetrics, registerDashboard], logger: true },
  );
  try {
    const address = await app.listen({ host: config.API_HOST, port: config.API_PORT });
    console.log(`[api] pid ${process.pid} listening on ${address}`);
  } catch (e) {
    console.error(`scribe-api: cannot listen on ${config.API_HOST}:${config.API_PORT}: ${(e as Error).message}`);
    process.exit(1);
  }

  let closing = false;
  const shutdown = async (sig: string) => {
    if (closing) return;
    closing = true;
    console.log(`[api] ${sig}: closing (finishing in-flight requests)`);
    setTimeout(() => {
      console.error('[api] shutdown took too long; exiting');
      process.exit(1);
    }, SHUTDOWN_GRACE_MS).unref();
    // Stops accepting, waits for in-flight requests, stops background listings after their page.
    await app.close();
    await producer.close();
    await shutdownTelemetry();
    process.exit(0);
  };
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
  process.on('SIGINT', () => void shutdown('SIGINT'));
}

void main().catch((e: unknown) => {
  console.error(`scribe-api: ${e instanceof Error ? e.stack : String(e)}`);
  process.exit(1);
});
