/** Helpers for integration tests: the servers started by ./global-setup.ts, read from process.env. */
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:net';
import { S3Storage } from '@scribe-fleet/core/adapters/s3/s3-storage';

function required(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: run this test in the jest "integration" project (its globalSetup sets it)`);
  return value;
}

export function redisUrl(): string {
  return required('REDIS_URL');
}

export function s3Coordinates(): { endpoint: string; accessKeyId: string; secretAccessKey: string; region: string } {
  return {
    endpoint: required('S3_ENDPOINT'),
    accessKeyId: required('S3_ACCESS_KEY_ID'),
    secretAccessKey: required('S3_SECRET_ACCESS_KEY'),
    region: required('S3_REGION'),
  };
}

/** A new S3Storage on the test S3 server (call `destroy()` when done to close its sockets). */
export function testStorage(): S3Storage {
  return new S3Storage({ ...s3Coordinates(), forcePathStyle: true });
}

let counter = 0;

/** A valid S3 bucket name (3-63 chars of [a-z0-9-], alphanumeric at both ends), unique per call. */
export function uniqueBucket(prefix = 'test'): string {
  const clean =
    prefix
      .toLowerCase()
      .replace(/[^a-z0-9-]+/g, '-')
      .replace(/^-+|-+$/g, '')
      .slice(0, 30)
      .replace(/-+$/, '') || 'test';
  return `${clean}-${process.pid.toString(36)}-${(counter++).toString(36)}-${randomBytes(3).toString('hex')}`;
}

/**
 * The environment of a child process (CLI, worker) pointed at the test servers: PATH, the S3
 * coordinates, REDIS_URL and the queue name of `config`, plus `extra`. Nothing else is inherited.
 */
export function childEnv(config: { REDIS_URL: string; QUEUE_NAME: string }, extra: Record<string, string> = {}): Record<string, string> {
  const s3 = s3Coordinates();
  return {
    PATH: process.env.PATH ?? '',
    AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
    REDIS_URL: config.REDIS_URL,
    QUEUE_NAME: config.QUEUE_NAME,
    S3_ENDPOINT: s3.endpoint,
    S3_REGION: s3.region,
    S3_ACCESS_KEY_ID: s3.accessKeyId,
    S3_SECRET_ACCESS_KEY: s3.secretAccessKey,
    S3_FORCE_PATH_STYLE: 'true',
    ...extra,
  };
}

/** A TCP port free on 127.0.0.1 right now (for a server a test starts later on a fixed port). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}
