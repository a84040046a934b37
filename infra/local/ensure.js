#!/usr/bin/env node
'use strict';
// Makes a checkout runnable: system packages, node_modules, build. First step of `npm run quickstart`,
// `npm test` (pretest) and `npm run bench`. Plain CommonJS with no npm dependencies, because it runs
// before `npm install`. Idempotent; about a second when everything is already in place.
//
//   SCRIBE_SKIP_APT=1   skip the Debian package check
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const ROOT = path.resolve(__dirname, '..', '..');
const log = (msg) => console.log(`[ensure] ${msg}`);

function onPath(bin) {
  return (process.env.PATH || '').split(path.delimiter).some((dir) => {
    try {
      fs.accessSync(path.join(dir, bin), fs.constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}
const exists = (file) => fs.existsSync(file);
const runs = (cmd, args) => spawnSync(cmd, args, { stdio: 'ignore' }).status === 0;

// Debian packages the project needs, each with a check that it is installed. Add new ones here.
const PACKAGES = [
  { pkg: 'redis-server', ok: () => onPath('redis-server') },
  { pkg: 'ffmpeg', ok: () => onPath('ffmpeg') },
  { pkg: 'flite', ok: () => onPath('flite') },
  { pkg: 'pocketsphinx', ok: () => onPath('pocketsphinx_continuous') },
  { pkg: 'pocketsphinx-en-us', ok: () => exists('/usr/share/pocketsphinx/model/en-us/en-us') },
  { pkg: 'python3-pocketsphinx', ok: () => runs('/usr/bin/python3', ['-c', 'import pocketsphinx']) },
  { pkg: 'chromium', ok: () => exists('/usr/bin/chromium') }, // dashboard browser test
  // The third-party clients in packages/emulators/clients (test/emulators/third-party-clients.test.ts).
  { pkg: 'python3-websockets', ok: () => runs('/usr/bin/python3', ['-c', 'import websockets']) },
  { pkg: 'python3-websocket', ok: () => runs('/usr/bin/python3', ['-c', 'import websocket']) },
];

function run(cmd, args, opts = {}) {
  const res = spawnSync(cmd, args, { cwd: ROOT, stdio: 'inherit', ...opts });
  if (res.error) throw res.error;
  return res.status === 0;
}

function fail(msg) {
  console.error(`[ensure] ${msg}`);
  process.exit(1);
}

function ensurePackages() {
  if (process.env.SCRIBE_SKIP_APT === '1') return log('SCRIBE_SKIP_APT=1: not checking Debian packages');
  const missing = () => PACKAGES.filter((p) => !p.ok()).map((p) => p.pkg);
  const need = missing();
  if (need.length === 0) return log('Debian packages present');
  const install = ['apt-get', 'install', '-y', '--no-install-recommends', ...need];
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) {
    fail(
      `missing Debian packages: ${need.join(' ')}\n` +
        `[ensure] install them with:\n\n    sudo apt-get update && sudo DEBIAN_FRONTEND=noninteractive ${install.join(' ')}\n\n` +
        `[ensure] (or set SCRIBE_SKIP_APT=1 to skip this check)`,
    );
  }
  log(`installing Debian packages: ${need.join(' ')}`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  if (!run('apt-get', ['update'], { env })) fail('apt-get update failed');
  if (!run(install[0], install.slice(1), { env })) fail(`${install.join(' ')} failed`);
  const still = missing();
  if (still.length) fail(`still missing after apt-get install: ${still.join(' ')}`);
}

/** Root package.json plus every workspace's (supports plain paths and trailing `/*` globs). */
function manifests() {
  const rootPkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8'));
  const files = [path.join(ROOT, 'package.json')];
  const ws = Array.isArray(rootPkg.workspaces) ? rootPkg.workspaces : (rootPkg.workspaces && rootPkg.workspaces.packages) || [];
  for (const pattern of ws) {
    const dirs = pattern.endsWith('/*')
      ? fs.readdirSync(path.join(ROOT, pattern.slice(0, -2)), { withFileTypes: true })
          .filter((d) => d.isDirectory())
          .map((d) => path.join(ROOT, pattern.slice(0, -2), d.name))
      : [path.join(ROOT, pattern)];
    for (const dir of dirs) if (exists(path.join(dir, 'package.json'))) files.push(path.join(dir, 'package.json'));
  }
  return files;
}

function ensureNodeModules() {
  const marker = path.join(ROOT, 'node_modules', '.package-lock.json'); // npm's record of the installed tree
  let reason;
  if (!exists(marker)) reason = 'node_modules missing';
  else {
    const installedAt = fs.statSync(marker).mtimeMs;
    const lock = path.join(ROOT, 'package-lock.json');
    const newer = [lock, ...manifests()].filter((f) => exists(f) && fs.statSync(f).mtimeMs > installedAt);
    if (newer.length) reason = `${newer.map((f) => path.relative(ROOT, f)).join(', ')} changed`;
  }
  if (!reason) return log('node_modules up to date');
  log(`npm install (${reason})`);
  const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
  if (!run(npm, ['install', '--no-audit', '--no-fund'])) fail('npm install failed');
  // npm leaves the marker untouched when nothing needed installing; touch it so the next run is fast.
  if (exists(marker)) {
    const now = new Date();
    fs.utimesSync(marker, now, now);
  }
}

/**
 * `tsc -b` never deletes what it built from a source that has since moved or gone, and Node resolves
 * `./deepgram` to a stale `dist/deepgram.js` before the new `dist/deepgram/index.js`: after an update
 * that moved sources (a file split into a folder), a checkout would quietly run old code. Remove every
 * compiled file whose `.ts` source is gone, in each package built from src/ to dist/.
 */
function removeStaleOutputs() {
  const packages = ['packages/core', 'packages/emulators', 'apps/worker', 'apps/producer', 'infra/local'];
  let removed = 0;
  const walk = (distDir, srcDir) => {
    if (!exists(distDir)) return;
    for (const entry of fs.readdirSync(distDir, { withFileTypes: true })) {
      const distPath = path.join(distDir, entry.name);
      if (entry.isDirectory()) {
        walk(distPath, path.join(srcDir, entry.name));
        continue;
      }
      const m = /^(.*?)(\.d)?\.(js|ts)(\.map)?$/.exec(entry.name);
      if (!m || (m[3] === 'ts' && !m[2])) continue;
      if (exists(path.join(srcDir, `${m[1]}.ts`))) continue;
      fs.rmSync(distPath, { force: true });
      removed += 1;
    }
  };
  for (const pkg of packages) walk(path.join(ROOT, pkg, 'dist'), path.join(ROOT, pkg, 'src'));
  if (removed) log(`removed ${removed} compiled file(s) whose source is gone`);
}

function build() {
  // `tsc -b` is incremental: a no-op build of an up-to-date tree takes well under a second.
  const tsc = path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
  const [cmd, args] = exists(tsc) ? [process.execPath, [tsc, '-b']] : ['npx', ['tsc', '-b']];
  const res = spawnSync(cmd, args, { cwd: ROOT, encoding: 'utf8' });
  if (res.error) fail(`could not run tsc: ${res.error.message}`);
  if (res.status !== 0) {
    process.stderr.write(res.stdout + res.stderr);
    fail(`build failed (tsc -b exited with ${res.status})`);
  }
  log('build up to date (tsc -b)');
}

const started = Date.now();
ensurePackages();
ensureNodeModules();
removeStaleOutputs();
build();
log(`ready in ${((Date.now() - started) / 1000).toFixed(1)} s`);
