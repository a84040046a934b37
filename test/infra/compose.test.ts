/** The compose file names only real settings and starts Redis the way BullMQ needs it. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { ConfigSchema } from '@scribe-fleet/core';

const compose = parse(readFileSync(join(__dirname, '..', '..', 'infra', 'compose', 'compose.yaml'), 'utf8'), { merge: true }) as {
  services: Record<string, { environment?: Record<string, string>; command?: string[] }>;
};
const known = new Set(Object.keys(ConfigSchema.shape));

it('sets only variables the config module knows (or OTEL_* / the S3 server’s own)', () => {
  for (const name of ['api', 'worker']) {
    const env = compose.services[name]!.environment!;
    expect(env.REDIS_URL).toBe('redis://redis:6379'); // the shared anchor was merged in
    for (const key of Object.keys(env)) {
      expect({ service: name, key, known: known.has(key) || key.startsWith('OTEL_') }).toEqual({ service: name, key, known: true });
    }
  }
});

it('runs Redis with AOF and noeviction', () => {
  const cmd = compose.services.redis!.command!.join(' ');
  expect(cmd).toMatch(/--appendonly yes/);
  expect(cmd).toMatch(/--maxmemory-policy noeviction/);
});
