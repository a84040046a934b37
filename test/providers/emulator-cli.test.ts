/**
 * The emulator command (`npm run emulator -- <provider> …`): the compiled CLI starts, announces itself
 * with a JSON ready line, serves real requests, and exits 0 on SIGTERM.
 */
import { openAsBlob } from 'node:fs';
import { join } from 'node:path';
import { wordErrorRate } from '@scribe-fleet/core';
import { SENTENCES } from '../../infra/local/src/samples';
import { makeFixtures, type FixtureSet } from './streaming-test-kit';
import { runEmulatorCli, startEmulatorCli as startCli } from '../helpers/emulator-cli';

jest.setTimeout(30_000);
const TEXT = SENTENCES[1];

let fx: FixtureSet;
beforeAll(async () => {
  fx = await makeFixtures([{ name: 'cli.wav', voice: 'kal16', format: 'wav', text: TEXT }]);
});
afterAll(() => fx?.cleanup());

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
  const { code, stderr } = await runEmulatorCli(['nope']);
  expect(code).toBe(1);
  expect(stderr).toMatch(/Allowed choices are deepgram, assemblyai, fireworks, openai/);
});
