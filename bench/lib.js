// Shared bench helpers: a private stack (Redis + S3 server) and worker processes, from the compiled code.
'use strict';
const { spawn } = require('node:child_process');
const { mkdtempSync } = require('node:fs');
const { tmpdir } = require('node:os');
const { join } = require('node:path');

const ROOT = join(__dirname, '..');

async function stack() {
  const { startStack } = require(join(ROOT, 'infra/local/dist/services.js'));
  const dir = mkdtempSync(join(tmpdir(), 'scribe-bench-'));
  const env = { ...process.env };
  delete env.REDIS_URL;
  delete env.S3_ENDPOINT;
  const saved = { REDIS_URL: process.env.REDIS_URL, S3_ENDPOINT: process.env.S3_ENDPOINT };
  delete process.env.REDIS_URL;
  delete process.env.S3_ENDPOINT;
  const s = await startStack({ dir });
  Object.assign(process.env, saved);
  const serviceEnv = {
    REDIS_URL: s.redisUrl,
    S3_ENDPOINT: s.s3.endpoint,
    S3_ACCESS_KEY_ID: s.s3.accessKeyId,
    S3_SECRET_ACCESS_KEY: s.s3.secretAccessKey,
    S3_REGION: s.s3.region,
  };
  return { ...s, dir, serviceEnv };
}

// BENCH_WORKER_NODE_ARGS: extra node flags for worker processes, e.g. `--cpu-prof --cpu-prof-dir=/tmp/prof`
// (Node refuses --cpu-prof in NODE_OPTIONS); a profile is written when the worker exits on SIGTERM.
const workerNodeArgs = () => (process.env.BENCH_WORKER_NODE_ARGS ?? '').split(' ').filter(Boolean);

function startWorker(env) {
  const child = spawn(process.execPath, [...workerNodeArgs(), join(ROOT, 'apps/worker/dist/main.js')], {
    env: { PATH: process.env.PATH, AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true', ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (d) => {
      out += d;
      if (out.includes('[worker] pid')) resolve(child);
    });
    child.once('exit', (code) => reject(new Error(`worker exited ${code}: ${out}`)));
  });
}

/** For a scenario run alone (`node bench/<name>.js`): print its rows and section, exit 1 if a row missed. */
function printAndExit(promise) {
  promise.then(
    (r) => {
      console.log(r.section);
      for (const row of r.rows) console.log(`${row.ok ? 'met   ' : 'MISSED'} ${row.name}: ${row.value} (target ${row.target})`);
      process.exit(r.rows.every((row) => row.ok) ? 0 : 1);
    },
    (e) => {
      console.error(e);
      process.exit(1);
    },
  );
}

module.exports = { ROOT, stack, startWorker, printAndExit };
