#!/usr/bin/env node
import { loadConfig, ConfigError } from '@scribe-fleet/core';
import { createDeps } from './deps';
import { startWorker } from './worker';

async function main() {
  let config;
  try {
    config = loadConfig(process.env);
  } catch (e) {
    if (e instanceof ConfigError) {
      console.error(`scribe-worker: ${e.message}`);
      process.exit(78); // EX_CONFIG
    }
    throw e;
  }
  const running = startWorker(config, createDeps(config));
  console.log(`[worker] pid ${process.pid} consuming ${config.QUEUE_PREFIX}:${config.QUEUE_NAME} with concurrency ${config.WORKER_CONCURRENCY}`);
  let closing = false;
  const shutdown = async (sig: string) => {
    if (closing) return;
    closing = true;
    console.log(`[worker] ${sig}: finishing active jobs`);
    await running.close();
    process.exit(0);
  };
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
  process.on('SIGINT', () => void shutdown('SIGINT'));
}

void main();
