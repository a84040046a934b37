#!/usr/bin/env node
/**
 * `npm run stack`: start a private Redis and S3 server in `.scribe/stack` and keep them running in the
 * foreground until Ctrl-C, printing the environment to point workers and the CLI at them.
 */
import { mkdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { startStack } from './services';

async function main() {
  const dir = join(resolve(__dirname, '..', '..', '..'), '.scribe', 'stack');
  await mkdir(dir, { recursive: true });
  const stack = await startStack({ dir });
  console.log('# scribe-fleet local stack is running; in another shell:');
  console.log(`export REDIS_URL=${stack.redisUrl}`);
  console.log(`export S3_ENDPOINT=${stack.s3.endpoint} S3_REGION=${stack.s3.region}`);
  console.log(`export S3_ACCESS_KEY_ID=${stack.s3.accessKeyId} S3_SECRET_ACCESS_KEY=${stack.s3.secretAccessKey}`);
  console.log('# Ctrl-C stops it (data stays in .scribe/stack).');
  const stop = async () => {
    await stack.stop();
    process.exit(0);
  };
  process.on('SIGINT', () => void stop());
  process.on('SIGTERM', () => void stop());
  await new Promise(() => {});
}

main().catch((e) => {
  console.error('[stack] failed:', e);
  process.exit(1);
});
