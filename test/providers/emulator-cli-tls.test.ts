/**
 * The emulator command over TLS and with a recogniser count: `--tls` makes a self-signed certificate
 * (its path in the human line and as `cert` in the ready line), `--cert/--cert-key` serve given files,
 * and clients that trust the printed certificate get real answers over https / wss (clients that do
 * not are refused by their own TLS check, so it is real TLS). `--recognisers N` sizes the pool.
 */
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import WebSocket from 'ws';
import { wordErrorRate } from '@scribe-fleet/core';
import { selfSignedCertificate } from '@scribe-fleet/emulators';
import { SENTENCES } from '../../infra/local/src/samples';
import { makeFixtures, type FixtureSet } from './streaming-test-kit';
import { runEmulatorCli as runCli, startEmulatorCli as startCli, type EmulatorCli } from '../helpers/emulator-cli';

jest.setTimeout(30_000);
const TEXT = SENTENCES[3];
const KEY = 'tls-cli-key';

let fx: FixtureSet;
beforeAll(async () => {
  fx = await makeFixtures([{ name: 'tls.wav', voice: 'kal16', format: 'wav', text: TEXT }]);
});
afterAll(() => fx?.cleanup());

async function stop(cli: EmulatorCli): Promise<void> {
  cli.child.kill('SIGTERM');
  expect(await cli.exited).toEqual({ code: 0, signal: null });
}

/** An https request trusting `ca` (node:https; fetch cannot take a CA). */
function httpsRequest(url: string, opts: { method?: string; headers?: Record<string, string>; body?: Buffer; ca?: Buffer }): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: opts.method ?? 'GET', headers: opts.headers ?? {}, ...(opts.ca ? { ca: opts.ca } : {}) }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end(opts.body);
  });
}

/** POST the fixture as multipart/form-data over https (the form encoded by the platform's Request). */
async function transcribeOverHttps(baseUrl: string, ca: Buffer | undefined): Promise<{ status: number; body: string }> {
  const form = new FormData();
  form.append('model', 'whisper-1');
  form.append('file', new Blob([await readFile(fx.get('tls.wav').path)]), 'tls.wav');
  const encoded = new Request('http://encode.invalid/', { method: 'POST', body: form });
  const body = Buffer.from(await encoded.arrayBuffer());
  return httpsRequest(`${baseUrl}/audio/transcriptions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${KEY}`, 'content-type': encoded.headers.get('content-type')!, 'content-length': String(body.length) },
    body,
    ...(ca ? { ca } : {}),
  });
}

test('openai --tls --recognisers 1: https with the printed self-signed certificate, real transcript, cert dir removed at exit', async () => {
  const cli = await startCli(['openai', '--key', KEY, '--tls', '--recognisers', '1']);
  let certPath = '';
  try {
    expect(cli.ready).toMatchObject({ ready: true, provider: 'openai' });
    const url = cli.ready.url as string;
    expect(url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    expect(cli.ready.baseUrl).toBe(`${url}/v1`);
    certPath = cli.ready.cert as string;
    expect(typeof certPath).toBe('string');
    expect(cli.lines[0]).toContain(url);
    expect(cli.lines[0]).toContain(certPath);
    const ca = await readFile(certPath);

    // Not trusting it: the client's own TLS check refuses the self-signed certificate.
    await expect(transcribeOverHttps(cli.ready.baseUrl as string, undefined)).rejects.toMatchObject({ code: 'DEPTH_ZERO_SELF_SIGNED_CERT' });

    const res = await transcribeOverHttps(cli.ready.baseUrl as string, ca);
    expect(res.status).toBe(200);
    expect(wordErrorRate(TEXT, (JSON.parse(res.body) as { text: string }).text)).toBeLessThanOrEqual(0.15);

    const stats = await httpsRequest(`${url}/_emulator/stats`, { ca });
    expect(JSON.parse(stats.body)).toMatchObject({ provider: 'openai', recognisers: { capacity: 1, inUse: 0, queued: 0, maxInUse: 1 } });
  } finally {
    await stop(cli);
  }
  expect(existsSync(dirname(certPath))).toBe(false);
});

test('assemblyai --tls: a wss session trusting the printed certificate gets Begin, then Termination', async () => {
  const cli = await startCli(['assemblyai', '--key', KEY, '--tls']);
  try {
    const wsUrl = cli.ready.wsUrl as string;
    expect(wsUrl).toMatch(/^wss:\/\/127\.0\.0\.1:\d+$/);
    expect(cli.ready.url).toBe(wsUrl.replace(/^wss/, 'https'));
    const ca = await readFile(cli.ready.cert as string);
    const ws = new WebSocket(`${wsUrl}/v3/ws?sample_rate=16000&speech_model=universal-streaming-english`, { headers: { Authorization: KEY }, ca });
    const messages: Array<{ type?: string }> = [];
    const closed = new Promise<number>((resolve, reject) => {
      ws.on('message', (d) => {
        const m = JSON.parse(String(d)) as { type?: string };
        messages.push(m);
        if (m.type === 'Begin') ws.send(JSON.stringify({ type: 'Terminate' }));
      });
      ws.on('close', (code) => resolve(code));
      ws.on('error', reject);
    });
    expect(await closed).toBe(1000);
    expect(messages[0]).toMatchObject({ type: 'Begin' });
    expect(messages.at(-1)).toMatchObject({ type: 'Termination' });
  } finally {
    await stop(cli);
  }
});

test('openai --cert FILE --cert-key FILE: serves that certificate; cert in the ready line is the file', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'scribe-cli-cert-'));
  try {
    const made = await selfSignedCertificate(dir);
    const cli = await startCli(['openai', '--key', KEY, '--cert', made.certPath, '--cert-key', made.keyPath]);
    try {
      expect(cli.ready.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
      expect(cli.ready.cert).toBe(made.certPath);
      const res = await transcribeOverHttps(cli.ready.baseUrl as string, made.cert);
      expect(res.status).toBe(200);
      expect(wordErrorRate(TEXT, (JSON.parse(res.body) as { text: string }).text)).toBeLessThanOrEqual(0.15);
    } finally {
      await stop(cli);
    }
    expect(existsSync(made.certPath)).toBe(true); // given files are the caller's: left in place
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('refusals: --cert without --cert-key, an unreadable certificate, --recognisers 0', async () => {
  const half = await runCli(['openai', '--cert', '/nonexistent/cert.pem']);
  expect(half.code).toBe(1);
  expect(half.stderr).toMatch(/--cert and --cert-key go together/);
  const missing = await runCli(['openai', '--cert', '/nonexistent/cert.pem', '--cert-key', '/nonexistent/key.pem']);
  expect(missing.code).toBe(1);
  expect(missing.stderr).toMatch(/cannot read the TLS certificate \/nonexistent\/cert\.pem: ENOENT/);
  const zero = await runCli(['openai', '--recognisers', '0']);
  expect(zero.code).toBe(1);
  expect(zero.stderr).toMatch(/--recognisers.*expected an integer >= 1/);
});
