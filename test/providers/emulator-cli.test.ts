/**
 * The emulator command (`npm run emulator -- <provider> …`): the compiled CLI starts, announces itself
 * with a JSON ready line, serves real requests, and exits 0 on SIGTERM.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { existsSync, openAsBlob } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { wordErrorRate } from '@scribe-fleet/core';
import { SENTENCES } from '../../infra/local/src/samples';
import { makeFixtures, type FixtureSet } from './streaming-test-kit';

jest.setTimeout(30_000);
const ROOT = join(__dirname, '..', '..');
const CLI = join(ROOT, 'packages', 'emulators', 'dist', 'cli.js');
const TEXT = SENTENCES[1];

let fx: FixtureSet;
beforeAll(async () => {
  fx = await makeFixtures([{ name: 'cli.wav', voice: 'kal16', format: 'wav', text: TEXT }]);
});
afterAll(() => fx?.cleanup());

interface Started {
  child: ChildProcessWithoutNullStreams;
  ready: Record<string, unknown>;
  lines: string[];
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Spawn the CLI and resolve with its parsed ready line (rejects if it exits first). */
function startCli(args: string[]): Promise<Started> {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: build first (npx tsc -b)`);
  const child = spawn(process.execPath, [CLI, ...args], { cwd: ROOT, stdio: ['pipe', 'pipe', 'pipe'] });
  const lines: string[] = [];
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  return new Promise((resolve, reject) => {
    createInterface({ input: child.stdout }).on('line', (line) => {
      lines.push(line);
      if (!line.startsWith('{')) return;
      const ready = JSON.parse(line) as Record<string, unknown>;
      if (ready.ready === true) resolve({ child, ready, lines, exited });
    });
    void exited.then(({ code }) => reject(new Error(`CLI exited (${code}) before it was ready: ${stderr}`)));
  });
}

test('openai: ready line, a real request, SIGTERM exits 0', async () => {
  const cli = await startCli(['openai', '--port', '0', '--key', 'cli-key-1', '--key', 'cli-key-2', '--cap', '3']);
  try {
    expect(cli.ready).toMatchObject({ ready: true, provider: 'openai' });
    const url = cli.ready.url as string;
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(cli.ready.port).toBe(Number(new URL(url).port));
    expect(cli.lines[0]).toContain(url); // the human line names the URL too

    const form = new FormData();
    form.append('model', 'whisper-1');
    form.append('file', await openAsBlob(fx.get('cli.wav').path), 'cli.wav');
    const res = await fetch(`${cli.ready.baseUrl as string}/audio/transcriptions`, { method: 'POST', body: form, headers: { authorization: 'Bearer cli-key-2' } });
    expect(res.status).toBe(200);
    const body = (await res.json()) as { text: string };
    expect(wordErrorRate(TEXT, body.text)).toBeLessThanOrEqual(0.15);

    const denied = await fetch(`${cli.ready.baseUrl as string}/audio/transcriptions`, { method: 'POST', body: form, headers: { authorization: 'Bearer not-a-key' } });
    expect(denied.status).toBe(401);
    await denied.text();
  } finally {
    cli.child.kill('SIGTERM');
  }
  expect(await cli.exited).toEqual({ code: 0, signal: null });
  expect(cli.lines.some((l) => l.startsWith('SIGTERM: closing'))).toBe(true);
});

test('a bad provider name is refused with a usage message and exit 1', async () => {
  const child = spawn(process.execPath, [CLI, 'nope'], { cwd: ROOT });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const code = await new Promise<number | null>((resolve) => child.once('exit', (c) => resolve(c)));
  expect(code).toBe(1);
  expect(stderr).toMatch(/Allowed choices are deepgram, assemblyai, fireworks, openai/);
});
