// A prefix of many objects in a private S3 server (s3rver), created once and shared by the scenarios
// that need an archive (bench/enqueue.js, bench/manifest.js):
//
//   const archive = await createArchive();          // 100 000 objects under calls/day-NN/
//   await enqueue.run({ archive }); await manifest.run({ archive });
//   await archive.stop();
//
// Each scenario given no archive creates (and stops) its own.
//
// Objects are written with s3rver's own filesystem store, in this process, into the directory of the
// running server (it reads its directory on every request, so they are there for it at once): ~20×
// faster than PUTs through HTTP (s3rver's request handling, not the disk, was the limit: 100 000 PUTs
// took 114 s at 128 in flight with the SDK). If that store cannot be loaded, unsigned PUTs over
// keep-alive sockets are used instead (s3rver accepts anonymous requests). Either way the archive is
// checked through the S3 API before it is used (a HEAD of its last key, a listing of its first page).
'use strict';
const http = require('node:http');
const { join } = require('node:path');
const { ROOT, stack } = require('./lib');

const mib = (b) => b / 2 ** 20;

/** The keys of an archive: `calls/day-NN/rec-NNNNNN.wav`, `objects` of them under `prefixes` folders. */
function archiveKeys(objects, prefixes) {
  const perPrefix = Math.ceil(objects / prefixes);
  const keys = [];
  for (let p = 0; p < prefixes; p++) for (let i = 0; i < perPrefix && keys.length < objects; i++) keys.push(`calls/day-${String(p).padStart(2, '0')}/rec-${String(i).padStart(6, '0')}.wav`);
  return keys;
}

/** Run `fn(i)` for i in [0, n) with `concurrency` in flight. */
async function pool(n, concurrency, fn) {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(n, concurrency) }, async () => {
      while (next < n) await fn(next++);
    }),
  );
}

/** A writer of objects into the running s3rver: its filesystem store in this process, or HTTP PUTs. */
function objectWriter(s) {
  try {
    const FilesystemStore = require(join(ROOT, 'node_modules/s3rver/lib/stores/filesystem.js'));
    const S3Object = require(join(ROOT, 'node_modules/s3rver/lib/models/object.js'));
    const store = new FilesystemStore(join(s.dir, 's3'));
    return {
      method: "s3rver's filesystem store, in-process, 64 at once",
      concurrency: 64,
      put: (bucket, key, body) => store.putObject(new S3Object(bucket, key, Buffer.from(body), { 'content-type': 'audio/wav' })),
      close: () => undefined,
    };
  } catch {
    const url = new URL(s.s3.endpoint);
    const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
    return {
      method: 'unsigned HTTP PUTs over 64 keep-alive sockets',
      concurrency: 64,
      put: (bucket, key, body) =>
        new Promise((resolve, reject) => {
          const path = `/${bucket}/${key.split('/').map(encodeURIComponent).join('/')}`;
          const req = http.request({ host: url.hostname, port: url.port, method: 'PUT', path, agent, headers: { 'content-length': Buffer.byteLength(body), 'content-type': 'audio/wav' } }, (res) => {
            res.resume();
            res.on('end', () => (res.statusCode === 200 ? resolve() : reject(new Error(`PUT ${path}: HTTP ${res.statusCode}`))));
          });
          req.on('error', reject);
          req.end(body);
        }),
      close: () => agent.destroy(),
    };
  }
}

/**
 * Start a private stack (or use `opts.stack`) and fill `bucket` with `objects` small objects (`body(key)`) under
 * `prefixes` folders of `calls/`. Returns the stack, an S3Storage over it, the keys (sorted as S3
 * lists them), and `putObjects` to add more (e.g. outputs that already exist).
 */
async function createArchive({ objects = 100_000, prefixes = 10, bucket = 'bench-archive', stack: given, body: bodyOf = (k) => `audio ${k}` } = {}) {
  const { S3Storage } = require(join(ROOT, 'packages/core/dist/adapters/s3/s3-storage.js'));
  const s = given ?? (await stack());
  const storage = new S3Storage({ endpoint: s.s3.endpoint, region: s.s3.region, accessKeyId: s.s3.accessKeyId, secretAccessKey: s.s3.secretAccessKey, forcePathStyle: true });
  await storage.ensureBucket(bucket);
  const writer = objectWriter(s);
  const putObjects = async (list, body = bodyOf) => {
    const t0 = performance.now();
    await pool(list.length, writer.concurrency, (i) => writer.put(bucket, list[i], body(list[i])));
    return (performance.now() - t0) / 1000;
  };
  const keys = archiveKeys(objects, prefixes);
  console.log(`[bench] creating ${keys.length} objects under ${prefixes} prefixes (${writer.method})…`);
  const createSeconds = await putObjects(keys);
  console.log(`[bench]   ${createSeconds.toFixed(1)} s (${(keys.length / createSeconds).toFixed(0)} objects/s)`);
  // Seen through the S3 API: the last key by HEAD, the first page by listing.
  const last = await storage.head(bucket, keys[keys.length - 1]);
  const first = await storage.listPages(bucket, 'calls/', { pageSize: 1000 })[Symbol.asyncIterator]().next();
  if (!last || last.size !== Buffer.byteLength(bodyOf(keys[keys.length - 1])) || first.done || first.value.length !== Math.min(1000, keys.length) || first.value[0].key !== keys[0]) {
    throw new Error('the archive is not visible through the S3 API as written');
  }
  return {
    stack: s,
    storage,
    bucket,
    prefix: 'calls/',
    keys,
    prefixes,
    createSeconds,
    createMethod: writer.method,
    putObjects,
    async stop() {
      writer.close();
      storage.destroy();
      if (!given) await s.stop();
    },
  };
}

/** Bytes of `VmRSS` / `VmHWM` of a process (NaN once it is gone). */
function vm(pid, field) {
  try {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(require('node:fs').readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : NaN;
  } catch {
    return NaN;
  }
}

module.exports = { createArchive, archiveKeys, pool, vm, mib };

/**
 * Run a node script to its end (stdout collected, stderr passed through), sampling its peak RSS
 * every 20 ms (its VmHWM is gone once it exits). `nodeArgs` e.g. ['--cpu-prof', '--cpu-prof-dir', d].
 */
function runNode(script, args, env, { nodeArgs = [] } = {}) {
  const { spawn } = require('node:child_process');
  return new Promise((resolve) => {
    const t0 = performance.now();
    const child = spawn(process.execPath, [...nodeArgs, script, ...args], {
      env: { PATH: process.env.PATH, AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true', ...env },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let peak = 0;
    const timer = setInterval(() => {
      const hwm = vm(child.pid, 'VmHWM');
      if (hwm > peak) peak = hwm;
    }, 20);
    let stdout = '';
    child.stdout.setEncoding('utf8').on('data', (d) => (stdout += d));
    child.once('exit', (code) => {
      clearInterval(timer);
      resolve({ code, stdout, seconds: (performance.now() - t0) / 1000, peakRss: peak });
    });
  });
}

/** Redis `INFO memory` used_memory, in bytes. */
async function redisUsedMemory(redis) {
  const info = await redis.info('memory');
  return Number(/^used_memory:(\d+)/m.exec(info)[1]);
}

/** `os.loadavg()` as text. */
function loadAverage() {
  return require('node:os')
    .loadavg()
    .map((x) => x.toFixed(2))
    .join(' / ');
}

module.exports.runNode = runNode;
module.exports.redisUsedMemory = redisUsedMemory;
module.exports.loadAverage = loadAverage;
