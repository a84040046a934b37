/**
 * The emulators held to the providers' wire, not to our own clients (issue 13): small Python clients
 * written straight from each provider's public guide (packages/emulators/clients/, Debian's
 * python3-websockets / python3-websocket only) run against the strict emulators started in-process,
 * on synthesised speech. Each client checks the messages its guide documents and exits non-zero on any
 * protocol error; here we check its exit, the message types the guide expects, and the transcript's
 * WER against the known text.
 *
 * The runs start together once the emulators are up (streams are real time, so they overlap) and each
 * test awaits its own.
 */
import { execFile, execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { wordErrorRate } from '@scribe-fleet/core';
import { startEmulator, type EmulatorName } from '@scribe-fleet/emulators';
import { SENTENCES, type SampleSpec } from '../../infra/local/src/samples';
import { sampleFiles } from '../helpers/fleet';

jest.setTimeout(120_000);

const PYTHON = '/usr/bin/python3';
const CLIENTS = join(__dirname, '..', '..', 'packages', 'emulators', 'clients');
const KEY = 'third-party-client-key';
const MAX_WER = 0.15; // the bound the e2e and provider tests use
/** Streams take the guides' raw 16 kHz mono 16-bit PCM, in a WAV as their examples read it. */
const SPEECH: SampleSpec = { name: 'third-party.wav', voice: 'kal16', format: 'wav', text: SENTENCES[2] };
/** Batch uploads take a container: an MP3 at 44.1 kHz stereo. */
const MP3: SampleSpec = { name: 'third-party.mp3', voice: 'rms', format: 'mp3', text: SENTENCES[3], sampleRate: 44100, channels: 2 };

interface Summary {
  ok: boolean;
  errors: string[];
  transcript: string;
  [k: string]: unknown;
}
interface Run {
  code: number | null;
  summary: Summary;
  stderr: string;
}

/** Run one client; resolves with its exit code and the JSON summary it printed (never rejects). */
function runClient(script: string, args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile(PYTHON, [join(CLIENTS, script), ...args], { timeout: 100_000, killSignal: 'SIGKILL' }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : null) : 0;
      let summary: Summary;
      try {
        summary = JSON.parse(stdout.trim().split('\n').pop() ?? '') as Summary;
      } catch {
        summary = { ok: false, errors: [`no JSON summary (${err?.message ?? 'exit 0'})`], transcript: '' };
      }
      resolve({ code, summary, stderr });
    });
  });
}

/** Fail with the client's own account of what went wrong. */
function expectClean(run: Run): void {
  expect({ code: run.code, errors: run.summary.errors, stderr: run.stderr.slice(-2000) }).toEqual({ code: 0, errors: [], stderr: '' });
}

const emulators: Array<{ close(): Promise<void> }> = [];
let fileServer: Server;
const runs = new Map<string, Promise<Run>>();
const run = (name: string): Promise<Run> => runs.get(name) ?? Promise.reject(new Error(`no run ${name}`));

beforeAll(async () => {
  // The clients use Debian's python3 packages only (infra/local/ensure.js installs them).
  execFileSync(PYTHON, ['-c', 'import websockets, websocket']);
  const [speech, mp3] = await sampleFiles([SPEECH, MP3]);
  const start = async (name: EmulatorName) => {
    const e = await startEmulator(name, { port: 0, keys: [KEY], lenient: false });
    emulators.push(e);
    return { http: e.url, ws: e.url.replace(/^http/, 'ws') };
  };
  const [dg, aai, fw, oa] = await Promise.all((['deepgram', 'assemblyai', 'fireworks', 'openai'] as const).map(start));
  // A host for Deepgram's remote-file mode (the emulator fetches the URL itself).
  const wavBytes = readFileSync(speech!.path);
  fileServer = createServer((req, res) => res.writeHead(200, { 'Content-Type': 'audio/wav' }).end(wavBytes));
  await new Promise<void>((r) => fileServer.listen(0, '127.0.0.1', r));
  const remote = `http://127.0.0.1:${(fileServer.address() as AddressInfo).port}/speech.wav`;

  const wav = speech!.path;
  const plan: Record<string, [string, string[]]> = {
    'dg-rest-wav': ['deepgram_prerecorded.py', [dg!.http, KEY, wav]],
    'dg-rest-mp3': ['deepgram_prerecorded.py', [dg!.http, KEY, mp3!.path]],
    'dg-rest-url': ['deepgram_prerecorded.py', [dg!.http, KEY, wav, '--remote-url', remote]],
    'dg-rest-bad-key': ['deepgram_prerecorded.py', [dg!.http, 'not-a-key', wav]],
    // 11 s without audio after the file, a KeepAlive every 3 s: longer than the 10 s idle window.
    'dg-live-keepalive': ['deepgram_live.py', [dg!.ws, KEY, wav, '--idle', '11', '--keepalive', '3']],
    'dg-live-idle': ['deepgram_live.py', [dg!.ws, KEY, wav, '--idle', '12', '--keepalive', '0']],
    'aai-header': ['assemblyai_streaming.py', [aai!.ws, KEY, wav]],
    'aai-token-formatted': ['assemblyai_streaming.py', [aai!.ws, KEY, wav, '--auth', 'token', '--format-turns', '--chunk-ms', '50']],
    fireworks: ['fireworks_streaming.py', [fw!.ws, KEY, wav]],
    'openai-json': ['openai_transcriptions.py', [oa!.http, KEY, mp3!.path]],
    'openai-verbose': ['openai_transcriptions.py', [oa!.http, KEY, wav, '--response-format', 'verbose_json']],
    'openai-verbose-words': ['openai_transcriptions.py', [oa!.http, KEY, mp3!.path, '--response-format', 'verbose_json', '--granularity', 'word', '--granularity', 'segment']],
    'openai-bad-key': ['openai_transcriptions.py', [oa!.http, 'not-a-key', wav]],
  };
  for (const [name, [script, args]] of Object.entries(plan)) runs.set(name, runClient(script, args));
});

afterAll(async () => {
  await Promise.allSettled([...runs.values()]);
  await Promise.all(emulators.map((e) => e.close()));
  await new Promise((r) => (fileServer ? fileServer.close(r) : r(undefined)));
});

describe('Deepgram pre-recorded (the getting-started guide)', () => {
  test.each([
    ['a local WAV (curl example)', 'dg-rest-wav', SPEECH],
    ['a local MP3 (SDK example)', 'dg-rest-mp3', MP3],
  ])('%s: 200, the documented response, smart-formatted words, WER within bound', async (_, name, spec) => {
    const r = await run(name);
    expectClean(r);
    expect(r.summary).toMatchObject({ status: 200, content_type: expect.stringMatching(/^application\/json/), punctuated: true, sha256_matches_upload: true });
    expect(r.summary.words as number).toBeGreaterThan(0);
    expect(wordErrorRate(spec.text, r.summary.transcript)).toBeLessThanOrEqual(MAX_WER);
  });

  test('a remote file ({"url"} body)', async () => {
    const r = await run('dg-rest-url');
    expectClean(r);
    expect(r.summary).toMatchObject({ status: 200, mode: 'url' });
    expect(wordErrorRate(SPEECH.text, r.summary.transcript)).toBeLessThanOrEqual(MAX_WER);
  });

  test('a wrong key is refused with 401 and the client says so', async () => {
    const r = await run('dg-rest-bad-key');
    expect(r.code).toBe(1);
    expect(r.summary).toMatchObject({ ok: false, status: 401 });
  });
});

describe('Deepgram live (streaming a file: the starter kit, KeepAlive, CloseStream)', () => {
  test('paced 250 ms frames, 11 s of KeepAlive-only silence, CloseStream → finals, Metadata, close 1000', async () => {
    const r = await run('dg-live-keepalive');
    expectClean(r);
    expect(r.summary).toMatchObject({ close_code: 1000, close_stream_sent: true, request_id: expect.stringMatching(/^[0-9a-f-]{36}$/) });
    expect(r.summary.keepalives_sent).toBe(3);
    expect(Object.keys(r.summary.message_types as object).sort()).toEqual(['Metadata', 'Results']);
    expect((r.summary.message_types as Record<string, number>).Metadata).toBe(1);
    expect(r.summary.finals as number).toBeGreaterThanOrEqual(1);
    const meta = r.summary.metadata as { duration: number; channels: number };
    expect(meta.channels).toBe(1);
    expect(Math.abs(meta.duration - (r.summary.audio_seconds as number))).toBeLessThan(0.1);
    expect(wordErrorRate(SPEECH.text, r.summary.transcript)).toBeLessThanOrEqual(MAX_WER);
  });

  test('the same silence without KeepAlive: closed with 1011 NET-0001 (the Keep Alive page)', async () => {
    const r = await run('dg-live-idle');
    expect(r.code).toBe(1);
    expect(r.summary).toMatchObject({ close_code: 1011, close_reason: expect.stringMatching(/NET-0001/i), close_stream_sent: false, metadata: null });
    // Everything spoken before the silence was still delivered as finals.
    expect(wordErrorRate(SPEECH.text, r.summary.transcript)).toBeLessThanOrEqual(MAX_WER);
  });
});

describe('AssemblyAI v3 universal streaming (message sequence, pacing guide, temporary tokens)', () => {
  test('key in Authorization, 100 ms frames by wall clock, Terminate → Termination → close 1000', async () => {
    const r = await run('aai-header');
    expectClean(r);
    expect(Object.keys(r.summary.message_types as object).sort()).toEqual(['Begin', 'Termination', 'Turn']);
    expect((r.summary.message_types as Record<string, number>).Begin).toBe(1);
    expect(r.summary.turns as number).toBeGreaterThanOrEqual(1);
    expect(r.summary.close_code).toBe(1000);
    const t = r.summary.termination as { audio_duration_seconds: number; session_duration_seconds: number };
    expect(Math.abs(t.audio_duration_seconds - (r.summary.audio_seconds as number))).toBeLessThanOrEqual(1);
    expect(t.session_duration_seconds).toBeGreaterThanOrEqual(t.audio_duration_seconds - 1);
    expect(wordErrorRate(SPEECH.text, r.summary.transcript)).toBeLessThanOrEqual(MAX_WER);
  });

  test('a temporary token (GET /v3/token, then ?token=), format_turns, 50 ms frames', async () => {
    const r = await run('aai-token-formatted');
    expectClean(r);
    expect(r.summary).toMatchObject({ auth: 'token', close_code: 1000 });
    expect(r.summary.formatted_end_of_turns as number).toBeGreaterThanOrEqual(1);
    expect(wordErrorRate(SPEECH.text, r.summary.transcript)).toBeLessThanOrEqual(MAX_WER);
  });
});

describe('Fireworks streaming (the streaming reference and its Python example)', () => {
  test('50 ms frames, segments merged by id, the final checkpoint echoed', async () => {
    const r = await run('fireworks');
    expectClean(r);
    expect(r.summary.final_checkpoint).toBe(true);
    expect(Object.keys(r.summary.message_types as object).sort()).toEqual(['checkpoint', 'transcription']);
    expect(r.summary.segments as number).toBeGreaterThanOrEqual(1);
    // The guide's state dict is keyed by the ids as sent, shown as strings ("0", "1"): one type only,
    // or the same segment would appear twice.
    expect(r.summary.segment_id_types).toEqual(['str']);
    expect(wordErrorRate(SPEECH.text, r.summary.transcript)).toBeLessThanOrEqual(MAX_WER);
  });
});

describe('OpenAI-compatible /v1/audio/transcriptions (the API reference)', () => {
  test('json: {"text"}', async () => {
    const r = await run('openai-json');
    expectClean(r);
    expect(r.summary).toMatchObject({ status: 200, content_type: expect.stringMatching(/^application\/json/) });
    expect(r.summary.keys).toContain('text');
    expect(wordErrorRate(MP3.text, r.summary.transcript)).toBeLessThanOrEqual(MAX_WER);
  });

  test('verbose_json: language, duration, segments; no words unless asked', async () => {
    const r = await run('openai-verbose');
    expectClean(r);
    expect(r.summary).toMatchObject({ status: 200, task: 'transcribe', language: 'english', words: 0 });
    expect(r.summary.segments as number).toBeGreaterThanOrEqual(1);
    expect(wordErrorRate(SPEECH.text, r.summary.transcript)).toBeLessThanOrEqual(MAX_WER);
  });

  test('verbose_json with timestamp_granularities[]=word and segment', async () => {
    const r = await run('openai-verbose-words');
    expectClean(r);
    expect(r.summary.segments as number).toBeGreaterThanOrEqual(1);
    expect(r.summary.words as number).toBeGreaterThan(0);
    expect(wordErrorRate(MP3.text, r.summary.transcript)).toBeLessThanOrEqual(MAX_WER);
  });

  test('a wrong key: 401 with an OpenAI error object', async () => {
    const r = await run('openai-bad-key');
    expect(r.code).toBe(1);
    expect(r.summary).toMatchObject({ ok: false, status: 401 });
    // The client flags a non-OpenAI error body as a further error; only the 401 itself is reported.
    expect(r.summary.errors).toHaveLength(1);
  });
});
