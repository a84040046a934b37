import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { expandIncludes, loadScript, scriptFiles, scriptsDir, SCRIPT_FILE, SCRIPT_NAMES, SCRIPTS_DIR } from '../src/adapters/redis/scripts';

// The Lua scripts are files whose names carry their key count (`<command>-<N>.lua`): check the names
// against what the scripts use, and that every script the code registers has its file. Pure: no Redis.

const SRC = join(__dirname, '..', 'src');

/**
 * Keys a script is passed but does not read (listed so Redis Cluster sees every key the call
 * touches): they count towards N without appearing in the code. batchMove's last key is the batch
 * index (batchFeed takes the same keys).
 */
const PASSED_UNREAD: Record<string, number[]> = { 'batchMove-10.lua': [10], 'batchFeed-10.lua': [10], 'batchSpill-11.lua': [10] };

/**
 * The KEYS indices a script uses, comments aside: `KEYS[n]`, and `KEYS[#KEYS]` / `KEYS[#KEYS - k]`
 * counted as N and N - k. A variable index (`KEYS[i]` in a loop) names no index of its own.
 */
function keyIndices(lua: string, n: number): number[] {
  const code = lua.replace(/--.*$/gm, '');
  const found = new Set<number>();
  for (const m of code.matchAll(/KEYS\[\s*(?:(\d+)|#KEYS\s*(?:-\s*(\d+))?)\s*\]/g)) found.add(m[1] !== undefined ? Number(m[1]) : n - Number(m[2] ?? 0));
  return [...found].sort((a, b) => a - b);
}

/** The .ts files under a directory. */
function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? sources(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : []));
}

it('reads the scripts from src/ whether it runs from dist/ or src/', () => {
  const core = join('/repo', 'packages', 'core');
  const want = join(core, 'src', 'adapters', 'redis', 'scripts');
  expect(scriptsDir(join(core, 'dist', 'adapters', 'redis'))).toBe(want);
  expect(scriptsDir(join(core, 'src', 'adapters', 'redis'))).toBe(want);
  expect(SCRIPTS_DIR).toBe(join(SRC, 'adapters', 'redis', 'scripts'));
});

it('names every script file <command>-<numberOfKeys>.lua', () => {
  const files = scriptFiles();
  expect(files.length).toBeGreaterThan(0);
  for (const f of files) expect(f).toMatch(/^[a-z][A-Za-z]*-\d+\.lua$/);
});

it('gives each script the key count it uses: no more distinct KEYS than N, and KEYS[N] the highest', () => {
  for (const f of scriptFiles()) {
    const n = Number(SCRIPT_FILE.exec(f)?.[2]);
    const read = keyIndices(expandIncludes(readFileSync(join(SCRIPTS_DIR, f), 'utf8')), n);
    const unread = PASSED_UNREAD[f] ?? [];
    const used = [...new Set([...read, ...unread])].sort((a, b) => a - b);
    expect({ file: f, distinctAtMostN: used.length <= n, highest: used[used.length - 1], unreadAreUnread: unread.every((i) => !read.includes(i)) }).toEqual({
      file: f,
      distinctAtMostN: true,
      highest: n,
      unreadAreUnread: true,
    });
  }
});

it('has a file for every script the code registers, and registers every file', () => {
  const referenced = new Set<string>();
  for (const file of sources(SRC)) {
    for (const m of readFileSync(file, 'utf8').matchAll(/\b(?:defineScript\([^,()]+,|loadScript\()\s*'([A-Za-z]+)'/g)) referenced.add(m[1]!);
  }
  expect(referenced.size).toBeGreaterThan(0);
  for (const name of referenced) expect(SCRIPT_NAMES).toContain(name);
  for (const name of SCRIPT_NAMES) {
    const s = loadScript(name);
    expect(s.file).toBe(`${name}-${s.numberOfKeys}.lua`);
    expect(s.lua).not.toContain('@include');
  }
  expect(scriptFiles().map((f) => SCRIPT_FILE.exec(f)?.[1]).sort()).toEqual([...SCRIPT_NAMES].sort());
});
