import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Redis } from 'ioredis';
import { startRedis, startStack, type RedisServer } from '../../infra/local/src/services';

// The project-level `testTimeout` in jest.config.js is ignored by jest-circus 30 (it only reads the
// global one), so set it here.
jest.setTimeout(120_000);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function waitGone(pid: number, ms = 5000): Promise<boolean> {
  for (const end = Date.now() + ms; Date.now() < end; await sleep(50)) if (!alive(pid)) return true;
  return !alive(pid);
}

async function client(url: string): Promise<Redis> {
  const redis = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  await redis.connect();
  return redis;
}

let dir: string;
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'scribe-services-'));
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('startRedis', () => {
  let server: RedisServer;
  afterAll(() => server?.stop());

  test('answers, and keeps data across kill -9 + restart (AOF everysec)', async () => {
    server = await startRedis({ dir: path.join(dir, 'redis') });
    expect(server.url).toBe(`redis://127.0.0.1:${server.port}`);
    expect(server.port).not.toBe(6379);

    let redis = await client(server.url);
    expect(await redis.ping()).toBe('PONG');
    expect(await redis.config('GET', 'appendonly')).toEqual(['appendonly', 'yes']);
    expect(await redis.config('GET', 'maxmemory-policy')).toEqual(['maxmemory-policy', 'noeviction']);
    await redis.set('survivor', 'still here');
    await redis.rpush('list', 'a', 'b', 'c');
    await sleep(1500); // > one everysec fsync
    redis.disconnect();

    const oldPid = server.pid;
    await server.kill();
    expect(await waitGone(oldPid)).toBe(true);
    await expect(client(server.url)).rejects.toThrow();

    await server.restart();
    expect(server.pid).not.toBe(oldPid);
    redis = await client(server.url);
    expect(await redis.get('survivor')).toBe('still here');
    expect(await redis.lrange('list', 0, -1)).toEqual(['a', 'b', 'c']);
    redis.disconnect();

    await server.stop();
    await server.stop(); // idempotent
    await server.kill();
    expect(alive(oldPid)).toBe(false);
  });
});

describe('startStack', () => {
  test('starts Redis and S3 when REDIS_URL / S3_ENDPOINT are unset; stop() is idempotent', async () => {
    const saved = { REDIS_URL: process.env.REDIS_URL, S3_ENDPOINT: process.env.S3_ENDPOINT };
    delete process.env.REDIS_URL;
    delete process.env.S3_ENDPOINT;
    try {
      const stack = await startStack({ dir: path.join(dir, 'stack') });
      expect(stack.redis && stack.s3Server).toBeTruthy();
      const redis = await client(stack.redisUrl);
      expect(await redis.ping()).toBe('PONG');
      redis.disconnect();
      const res = await fetch(stack.s3.endpoint + '/');
      expect(res.status).toBeLessThan(500);
      const pids = [stack.redis!.pid, stack.s3Server!.pid];
      await Promise.all([stack.stop(), stack.stop()]);
      await stack.stop();
      for (const pid of pids) expect(alive(pid)).toBe(false);
    } finally {
      Object.assign(process.env, saved);
    }
  });

  test('uses the given servers when REDIS_URL and S3_ENDPOINT are set', async () => {
    const stack = await startStack({ dir: path.join(dir, 'unused') });
    expect(stack.redisUrl).toBe(process.env.REDIS_URL);
    expect(stack.s3.endpoint).toBe(process.env.S3_ENDPOINT);
    expect(stack.redis).toBeUndefined();
    expect(stack.s3Server).toBeUndefined();
    await stack.stop();
  });
});

describe('children do not outlive their parent', () => {
  const dist = path.resolve(__dirname, '../../infra/local/dist/services.js');

  // The parent is a separate node process using the compiled module (`tsc -b` runs before tests).
  test.each([
    ['exits normally', 'process.exit(0)'],
    ['is SIGKILLed', 'process.kill(process.pid, "SIGKILL")'],
  ])('Redis and s3rver die when the parent %s', async (_label, ending) => {
    const script = `
      const s = require(${JSON.stringify(dist)});
      const dir = ${JSON.stringify(path.join(dir, 'orphans'))};
      Promise.all([s.startRedis({ dir: dir + '/r' }), s.startS3({ dir: dir + '/s' })]).then(([r, s3]) => {
        process.stdout.write(JSON.stringify([r.pid, s3.pid]) + '\\n', () => { ${ending}; });
      });`;
    const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    await new Promise((r) => child.once('exit', r));
    const pids = JSON.parse(out) as number[];
    expect(pids).toHaveLength(2);
    for (const pid of pids) expect(await waitGone(pid)).toBe(true);
  });
});
