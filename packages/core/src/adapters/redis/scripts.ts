import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Redis } from 'ioredis';

/**
 * The project's Lua scripts live as files in `scripts/`, named as BullMQ names its own:
 * `<command>-<numberOfKeys>.lua`. A script's key count is stated once, in its file name, next to the
 * KEYS it uses, instead of by hand at each registration. A line `--- @include "<name>"` stands for
 * `scripts/includes/<name>.lua` (indented like the line): code two scripts share.
 */

/**
 * Where the script files are, seen from this module's directory. Always in the package's `src/`
 * tree, because the TypeScript build does not copy .lua files to `dist/`: three levels up from
 * `packages/core/dist/adapters/redis` (built) and from `packages/core/src/adapters/redis` (ts-jest)
 * alike is `packages/core`, and from there the path is `src/adapters/redis/scripts`.
 */
export function scriptsDir(moduleDir: string): string {
  return join(moduleDir, '..', '..', '..', 'src', 'adapters', 'redis', 'scripts');
}
export const SCRIPTS_DIR = scriptsDir(__dirname);

/** Every script the code registers; each has one file `<name>-<N>.lua`. */
export const SCRIPT_NAMES = ['batchMove', 'batchSeal', 'batchFeed', 'batchFeedSettle', 'batchFeedEnd', 'batchSpill', 'jobEndClaim', 'capAcquire', 'capRenew', 'capRelease', 'capDecrease', 'jobLockReassert', 'attemptHit', 'attemptForgive', 'budgetAdmit', 'budgetSettle'] as const;
export type ScriptName = (typeof SCRIPT_NAMES)[number];

export interface RedisScript {
  name: ScriptName;
  /** The file it was read from. */
  file: string;
  /** From the file name: how many of the command's arguments are keys. */
  numberOfKeys: number;
  /** The script, includes expanded. */
  lua: string;
}

/** A script file's name: `<command>-<numberOfKeys>.lua`. */
export const SCRIPT_FILE = /^([a-z][A-Za-z]*)-(\d+)\.lua$/;
const INCLUDE = /^([ \t]*)--- @include "([A-Za-z][A-Za-z0-9]*)"[ \t]*$/gm;

const loaded = new Map<string, RedisScript>();

/** The .lua files of a scripts directory (its includes are in a subdirectory, not listed). */
export function scriptFiles(dir = SCRIPTS_DIR): string[] {
  return readdirSync(dir, { withFileTypes: true })
    .filter((e) => e.isFile() && e.name.endsWith('.lua'))
    .map((e) => e.name)
    .sort();
}

/** Replace each `--- @include "<name>"` line with `includes/<name>.lua`, indented like the line. */
export function expandIncludes(lua: string, dir = SCRIPTS_DIR, within: string[] = []): string {
  return lua.replace(INCLUDE, (_, indent: string, name: string) => {
    if (within.includes(name)) throw new Error(`Lua include cycle: ${[...within, name].join(' → ')}`);
    const body = expandIncludes(readFileSync(join(dir, 'includes', `${name}.lua`), 'utf8'), dir, [...within, name]);
    return body
      .replace(/\n$/, '')
      .split('\n')
      .map((line) => (line ? indent + line : line))
      .join('\n');
  });
}

/** A script by name, read once from its file `<name>-<N>.lua` (includes expanded). */
export function loadScript(name: ScriptName, dir = SCRIPTS_DIR): RedisScript {
  const cacheKey = `${dir}\0${name}`;
  const cached = loaded.get(cacheKey);
  if (cached) return cached;
  const files = scriptFiles(dir).filter((f) => SCRIPT_FILE.exec(f)?.[1] === name);
  if (files.length !== 1) throw new Error(`Lua script ${name}: expected one file ${name}-<numberOfKeys>.lua in ${dir}, found ${files.length}`);
  const file = files[0]!;
  const script: RedisScript = { name, file, numberOfKeys: Number(SCRIPT_FILE.exec(file)![2]), lua: expandIncludes(readFileSync(join(dir, file), 'utf8'), dir) };
  loaded.set(cacheKey, script);
  return script;
}

/** Register a script as the ioredis command of the same name, with the key count of its file name. */
export function defineScript(redis: Redis, name: ScriptName): RedisScript {
  const script = loadScript(name);
  redis.defineCommand(name, { numberOfKeys: script.numberOfKeys, lua: script.lua });
  return script;
}
