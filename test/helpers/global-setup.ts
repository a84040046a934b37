/**
 * Jest globalSetup for the `integration` project: one private Redis and one s3rver on free ports in a
 * fresh temp dir. Test files find them through process.env (set here in the jest parent process and
 * inherited by the test workers it forks afterwards); see ./env.ts.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { startRedis, startS3, type RedisServer, type S3Server } from '../../infra/local/src/services';

export interface IntegrationServices {
  dir: string;
  redis: RedisServer;
  s3: S3Server;
}

declare global {
  // globalSetup and globalTeardown share this context (test files do not).
  var __scribeIntegration: IntegrationServices | undefined;
}

export default async function globalSetup(): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'scribe-it-'));
  const redis = await startRedis({ dir: path.join(dir, 'redis') });
  let s3: S3Server;
  try {
    s3 = await startS3({ dir: path.join(dir, 's3') });
  } catch (err) {
    await redis.stop();
    throw err;
  }
  globalThis.__scribeIntegration = { dir, redis, s3 };
  // Always our own servers: whatever REDIS_URL etc. the shell had is overridden for the tests.
  Object.assign(process.env, {
    REDIS_URL: redis.url,
    S3_ENDPOINT: s3.endpoint,
    S3_ACCESS_KEY_ID: s3.accessKeyId,
    S3_SECRET_ACCESS_KEY: s3.secretAccessKey,
    S3_REGION: s3.region,
    S3_FORCE_PATH_STYLE: 'true',
    SCRIBE_TEST_TMPDIR: dir,
  });
}
