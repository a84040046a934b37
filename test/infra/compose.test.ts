/**
 * The compose file names only real settings, gives each fleet process a configuration that loads,
 * runs files the image built from the Dockerfile really has, and starts Redis the way BullMQ needs it.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigSchema, loadConfig } from '@scribe-fleet/core';
import { compose, composeBuild, fromRoot, ignoredBy, imageLayout, interpolate, missingFromImage, ROOT } from './manifests';

const file = compose();
const known = new Set(Object.keys(ConfigSchema.shape));
const FLEET = ['api', 'worker'];

it('sets only variables the config module knows (or OTEL_* / the S3 server’s own)', () => {
  for (const name of FLEET) {
    const env = file.services[name]!.environment!;
    expect(env.REDIS_URL).toBe('redis://redis:6379'); // the shared anchor was merged in
    for (const key of Object.keys(env)) {
      expect({ service: name, key, known: known.has(key) || key.startsWith('OTEL_') }).toEqual({ service: name, key, known: true });
    }
  }
});

it('gives the API and the workers a configuration that loads, with only the variables the file requires set', () => {
  // The operator's shell sets only what the file insists on (`${X:?…}`); every other `${X:-…}` takes its default.
  const shell = { API_TOKENS: 'token-one,token-two' };
  for (const name of FLEET) {
    const raw = file.services[name]!.environment!;
    expect(() => interpolate(JSON.stringify(raw), {})).toThrow(/API_TOKENS/);
    const env = Object.fromEntries(Object.entries(raw).map(([k, v]) => [k, interpolate(String(v), shell)]));
    const config = loadConfig(env);
    expect({ service: name, redis: config.REDIS_URL, s3: config.S3_ENDPOINT, pathStyle: config.S3_FORCE_PATH_STYLE }).toEqual({ service: name, redis: 'redis://redis:6379', s3: 'http://s3:9000', pathStyle: true });
    // Same credentials on both sides of the S3 connection.
    const s3 = file.services.s3!.environment!;
    expect([config.S3_ACCESS_KEY_ID, config.S3_SECRET_ACCESS_KEY]).toEqual([interpolate(s3.MINIO_ROOT_USER!, shell), interpolate(s3.MINIO_ROOT_PASSWORD!, shell)]);
    if (name === 'api') {
      // scribe-api refuses to start without a token, and listens where the port mapping points.
      expect(config.API_TOKENS).toEqual(['token-one', 'token-two']);
      expect(config.API_HOST).toBe('0.0.0.0');
      expect(file.services.api as { ports?: string[] }).toMatchObject({ ports: [`${config.API_PORT}:${config.API_PORT}`] });
    }
  }
});

it('points SCRIBE_SECRETS_FILE at the secret compose mounts into the container', () => {
  for (const name of FLEET) {
    const svc = file.services[name]!;
    const path = svc.environment!.SCRIBE_SECRETS_FILE!;
    const [, secret] = /^\/run\/secrets\/([^/]+)$/.exec(path) ?? [];
    expect({ service: name, mounted: svc.secrets ?? [] }).toEqual({ service: name, mounted: expect.arrayContaining([secret]) });
    expect(file.secrets?.[secret!]?.file).toBeDefined();
  }
});

it('builds the fleet image from the repository’s Dockerfile and runs files that image has', () => {
  for (const name of FLEET) {
    const svc = file.services[name]!;
    const build = composeBuild(svc);
    expect({ service: name, context: build && fromRoot(build.context), dockerfile: build && fromRoot(build.dockerfile) }).toEqual({ service: name, context: '.', dockerfile: 'Dockerfile' });
    const layout = imageLayout(build!.dockerfile);
    const command = svc.entrypoint ?? svc.command!;
    expect(command[0]).toBe('node');
    expect({ service: name, script: command[1], missing: missingFromImage(layout, command[1]!) }).toEqual({ service: name, script: command[1], missing: null });
    // The repository is built before the tests run, so the file is there locally too.
    expect(existsSync(join(ROOT, command[1]!))).toBe(true);
  }
});

it('reads the Dockerfile’s layout right (the image check can fail)', () => {
  const layout = imageLayout();
  expect(layout.workdir).toBe('/app');
  expect(layout.compiles).toBe(true);
  expect(missingFromImage(layout, layout.cmd[1]!)).toBeNull();
  // Everything it copies is in the build context.
  for (const c of layout.copies) expect({ copy: c.from, exists: existsSync(join(ROOT, c.from)), ignored: ignoredBy(layout.ignored, c.from) }).toEqual({ copy: c.from, exists: true, ignored: false });
  expect(ignoredBy(layout.ignored, 'apps/worker/dist/main.js')).toBe(true);
  expect(missingFromImage(layout, 'apps/worker/dist/mian.js')).toMatch(/apps\/worker\/src\/mian\.ts, which does not exist/);
  expect(missingFromImage(layout, 'test/helpers/env.ts')).toMatch(/none of the Dockerfile's COPY destinations/);
  expect(missingFromImage(layout, '/usr/src/app/apps/worker/dist/main.js')).toMatch(/none of the Dockerfile's COPY destinations/);
});

it('runs Redis with AOF and noeviction', () => {
  const cmd = file.services.redis!.command!.join(' ');
  expect(cmd).toMatch(/--appendonly yes/);
  expect(cmd).toMatch(/--maxmemory-policy noeviction/);
});
