import * as fs from 'node:fs';
import type {} from './global-setup'; // the globalThis.__scribeIntegration declaration

export default async function globalTeardown(): Promise<void> {
  const services = globalThis.__scribeIntegration;
  if (!services) return;
  globalThis.__scribeIntegration = undefined;
  await Promise.all([services.redis.stop(), services.s3.stop()]);
  if (!process.env.SCRIBE_KEEP_TEST_TMP) fs.rmSync(services.dir, { recursive: true, force: true });
}
