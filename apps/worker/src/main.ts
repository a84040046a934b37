#!/usr/bin/env node
// First: OpenTelemetry must hook http/ioredis/aws-sdk before they load (CommonJS keeps this order).
import { shutdownTelemetry } from './instrumentation';
import { configOrExit } from '@scribe-fleet/core/adapters/bootstrap';
import { loadPrices } from '@scribe-fleet/core/adapters/price-table';
import { createDeps } from './deps';
import { createWorkerMetrics, serveMetrics } from './metrics';
import { startWorker } from '@scribe-fleet/core/adapters/bullmq/worker-host';

async function main() {
  // A price file that cannot be read or parsed stops the start (exit 78): budgets and batch summaries cost from it.
  const config = configOrExit('scribe-worker', process.env, (c) => void loadPrices(c));
  const metrics = config.METRICS_PORT > 0 ? createWorkerMetrics({ defaultMetrics: true }) : undefined;
  const running = startWorker(config, createDeps(config, {}, metrics));
  const metricsServer = metrics ? await serveMetrics(metrics, config.METRICS_PORT, config.METRICS_HOST) : undefined;
  if (metricsServer) console.log(`[worker] metrics on http://${config.METRICS_HOST}:${config.METRICS_PORT}/metrics`);
  console.log(`[worker] pid ${process.pid} consuming the ${config.QUEUE_PREFIX}:${config.QUEUE_NAME}.* cap-bucket queues`);
  let closing = false;
  const shutdown = async (sig: string) => {
    if (closing) return;
    closing = true;
    console.log(`[worker] ${sig}: handing streams and waiting jobs back to the queue, finishing requests in flight`);
    await running.close({ handBack: true });
    metricsServer?.close();
    await shutdownTelemetry(); // flush the last attempts' spans
    process.exit(0);
  };
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
  process.on('SIGINT', () => void shutdown('SIGINT'));
}

void main();
