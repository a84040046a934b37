/**
 * OpenAI-compatible batch API: the emulator's §7.6 rules against raw clients, and our OpenAIProvider
 * against the emulator (real transcripts, error classes, abort, and the > 25 MiB split path).
 */
import { execFile } from 'node:child_process';
import { openAsBlob, statSync } from 'node:fs';
import { copyFile, readFile, writeFile } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { join } from 'node:path';
import { once } from 'node:events';
import { promisify } from 'node:util';
import { transcriptText, wordErrorRate, type AudioInput, type ScribeError } from '@scribe-fleet/core';
import { OpenAIProvider, OPENAI_MAX_UPLOAD_BYTES } from '@scribe-fleet/core/adapters/providers/openai';
import { DEFAULT_SAMPLES, SENTENCES, type SampleSpec } from '../../infra/local/src/samples';
import { startOpenAIEmulator, type OpenAIEmulatorHandle, type OpenAIRequestRecord } from '@scribe-fleet/emulators';
import { fileAudioInput, makeFixtures, sessionContext, type FixtureSet } from './streaming-test-kit';

jest.setTimeout(60_000);
const run = promisify(execFile);
const KEY = 'sk-test-0123456789abcdef';
const CAPPED_KEY = 'sk-capped-key-000000';
const SPEECH: SampleSpec = { name: 'speech.wav', voice: 'kal16', format: 'wav', text: SENTENCES[0] };

let fx: FixtureSet;
let emu: OpenAIEmulatorHandle;
let longWav: string;

beforeAll(async () => {
  fx = await makeFixtures([...DEFAULT_SAMPLES, SPEECH]);
  // 15 minutes of 16 kHz mono WAV (28.8 MB > 25 MiB): the sentence at 0 s, 840 s and 870 s, silence
  // elsewhere (cheap to recognise). The split point (~817 s) falls in the silence.
  longWav = join(fx.dir, 'long.wav');
  await run('ffmpeg', [
    '-nostdin', '-loglevel', 'error', '-y', '-i', fx.get(SPEECH.name).path,
    '-filter_complex', '[0]asplit=3[a][b][c];[b]adelay=840000:all=1[b1];[c]adelay=870000:all=1[c1];[a][b1][c1]amix=inputs=3:normalize=0:duration=longest,apad=whole_dur=900',
    '-ar', '16000', '-ac', '1', '-c:a', 'pcm_s16le', longWav,
  ]);
  emu = await startOpenAIEmulator({ keys: [KEY, CAPPED_KEY], caps: { [CAPPED_KEY]: 1 }, retryAfterSeconds: 2 });
});
afterAll(async () => {
  await emu?.close();
  await fx?.cleanup();
});
afterEach(() => {
  emu.faults = {};
  emu.quotaExceeded = false;
});

const provider = (over: Partial<ConstructorParameters<typeof OpenAIProvider>[0]> = {}) => new OpenAIProvider({ apiKey: KEY, baseUrl: emu.baseUrl, ...over });
const request = (audio: AudioInput, options: Record<string, string | number | boolean | string[]> = {}) => ({ mode: 'batch' as const, model: 'whisper-1', options, audio });

/** The file as an AudioInput whose size is not known up front (the client must count). */
function unsizedInput(path: string): AudioInput {
  const inner = fileAudioInput(path);
  return {
    pcm: inner.pcm,
    original: async (signal) => {
      const { stream, filename } = await inner.original(signal);
      return { stream, filename };
    },
  };
}

/** A raw multipart POST built with FormData (the misbehaving client). */
async function rawPost(fields: Record<string, string | string[]>, file?: { path: string; filename: string }, opts: { key?: string | null; url?: string } = {}) {
  const form = new FormData();
  for (const [k, v] of Object.entries(fields)) for (const item of Array.isArray(v) ? v : [v]) form.append(k, item);
  if (file) form.append('file', await openAsBlob(file.path), file.filename);
  const headers: Record<string, string> = {};
  const key = opts.key === undefined ? KEY : opts.key;
  if (key !== null) headers.authorization = `Bearer ${key}`;
  const res = await fetch(opts.url ?? `${emu.baseUrl}/audio/transcriptions`, { method: 'POST', body: form, headers });
  return { res, text: await res.text() };
}

function expectOpenAIError(text: string): { message: string; type: string; param: unknown; code: unknown } {
  const body = JSON.parse(text) as { error: { message: string; type: string; param: unknown; code: unknown } };
  expect(Object.keys(body)).toEqual(['error']);
  expect(Object.keys(body.error).sort()).toEqual(['code', 'message', 'param', 'type']);
  expect(typeof body.error.message).toBe('string');
  return body.error;
}

/** Resolve when the emulator admits the next request (it is then counted in flight). */
const nextAdmitted = (e: OpenAIEmulatorHandle = emu) => once(e.events, 'admitted').then(([r]) => r as OpenAIRequestRecord);
/** Resolve when a request matching `pred` has finished at the emulator (its slot released). */
function doneWhere(pred: (r: OpenAIRequestRecord) => boolean, e: OpenAIEmulatorHandle = emu): Promise<OpenAIRequestRecord> {
  return new Promise((resolve) => {
    const on = (r: OpenAIRequestRecord) => {
      if (!pred(r)) return;
      e.events.off('done', on);
      resolve(r);
    };
    e.events.on('done', on);
  });
}

async function rejection(p: Promise<unknown>): Promise<ScribeError> {
  try {
    await p;
  } catch (e) {
    return e as ScribeError;
  }
  throw new Error('expected a rejection');
}

describe('real transcripts through OpenAIProvider', () => {
  test.each(DEFAULT_SAMPLES.map((s) => [s.format, s.name] as const))('%s fixture: WER <= 15 %%, verbose_json words with times', async (_fmt, name) => {
    const f = fx.get(name);
    const before = emu.requests.length;
    const ctx = sessionContext();
    const r = await provider().transcribe(request(fileAudioInput(f.path)), ctx);
    const text = transcriptText(r.transcript);
    expect(wordErrorRate(f.spec.text, text)).toBeLessThanOrEqual(0.15);

    const words = r.transcript.segments.flatMap((s) => s.words);
    expect(words.length).toBeGreaterThan(10);
    for (const [i, w] of words.entries()) {
      expect(w.end).toBeGreaterThan(w.start);
      expect(w.end).toBeLessThanOrEqual(r.transcript.duration + 0.01);
      if (i > 0) expect(w.start).toBeGreaterThanOrEqual(words[i - 1]!.start);
    }
    for (const s of r.transcript.segments) for (const w of s.words) expect(w.start >= s.start - 0.01 && w.end <= s.end + 0.01).toBe(true);
    expect(r.transcript.duration).toBeGreaterThan(3);

    // What went over the wire (§5.1): one streamed request, bracketed granularity keys, the file's own name.
    const seen = emu.requests.slice(before);
    expect(seen).toHaveLength(1);
    const req = seen[0]!;
    expect(req.status).toBe(200);
    expect(req.fields).toMatchObject({ model: ['whisper-1'], response_format: ['verbose_json'], 'timestamp_granularities[]': ['word', 'segment'] });
    expect(req.file).toMatchObject({ field: 'file', filename: name, bytes: statSync(f.path).size });
    expect(Number(req.headers.contentLength)).toBe(req.bodyBytes);
    expect(r.stats).toMatchObject({ requestId: req.id, chunksSent: 1, bytesSent: req.bodyBytes, reconnects: 0 });
    expect(ctx.events[0]).toEqual({ type: 'session:open', requestId: req.id });
    expect(ctx.events.filter((e) => e.type === 'session:final')).toHaveLength(r.transcript.segments.length);
    expect(ctx.events[ctx.events.length - 1]).toMatchObject({ type: 'session:closed' });
  });

  test('unknown size: the body is sent chunked; req.options become form fields', async () => {
    const f = fx.get(SPEECH.name);
    const before = emu.requests.length;
    const r = await provider().transcribe(request(unsizedInput(f.path), { language: 'en', temperature: 0, prompt: 'A fox.' }), sessionContext());
    expect(wordErrorRate(SPEECH.text, transcriptText(r.transcript))).toBeLessThanOrEqual(0.15);
    const req = emu.requests[before]!;
    expect(req.headers.transferEncoding).toBe('chunked');
    expect(req.headers.contentLength).toBeUndefined();
    expect(req.fields).toMatchObject({ language: ['en'], temperature: ['0'], prompt: ['A fox.'] });
  });

  test('the upload is streamed: the server admits the request before the client has read the whole file', async () => {
    const f = fx.get(SPEECH.name);
    const bytes = await readFile(f.path);
    const half = Math.floor(bytes.length / 2);
    const admitted = nextAdmitted();
    let secondHalfSent = false;
    // The second half is only produced once the emulator has the request: a client that buffered the
    // whole file before sending would never get there (and this test would time out).
    async function* gated(): AsyncGenerator<Buffer> {
      yield bytes.subarray(0, half);
      await admitted;
      secondHalfSent = true;
      yield bytes.subarray(half);
    }
    const audio: AudioInput = {
      size: bytes.length,
      pcm: fileAudioInput(f.path).pcm,
      original: async () => ({ stream: Readable.from(gated()), size: bytes.length, filename: 'speech.wav' }),
    };
    const r = await provider().transcribe(request(audio), sessionContext());
    expect(secondHalfSent).toBe(true);
    expect(wordErrorRate(SPEECH.text, transcriptText(r.transcript))).toBeLessThanOrEqual(0.15);
  });

  test('a file name without an accepted extension is sent as WAV instead of being refused', async () => {
    const f = fx.get(SPEECH.name);
    const odd = join(fx.dir, 'speech.audio');
    await copyFile(f.path, odd);
    const before = emu.requests.length;
    const r = await provider().transcribe(request(fileAudioInput(odd)), sessionContext());
    expect(wordErrorRate(SPEECH.text, transcriptText(r.transcript))).toBeLessThanOrEqual(0.15);
    expect(emu.requests.slice(before).map((q) => [q.status, q.file?.filename])).toEqual([[200, 'piece-0000.wav']]);
  });

  test('against whisper.cpp (/inference, serialised) and speaches (installed model) variants', async () => {
    const wcpp = await startOpenAIEmulator({ mode: 'whisper.cpp' });
    const sp = await startOpenAIEmulator({ mode: 'speaches', installedModels: ['Systran/faster-whisper-small'] });
    try {
      const f = fx.get(SPEECH.name);
      const a = await new OpenAIProvider({ apiKey: 'unused', baseUrl: wcpp.url, path: '/inference' }).transcribe(request(fileAudioInput(f.path)), sessionContext());
      expect(wordErrorRate(SPEECH.text, transcriptText(a.transcript))).toBeLessThanOrEqual(0.15);
      const b = await new OpenAIProvider({ apiKey: 'unused', baseUrl: sp.baseUrl }).transcribe(
        { ...request(fileAudioInput(f.path)), model: 'Systran/faster-whisper-small' },
        sessionContext(),
      );
      expect(b.transcript.segments.flatMap((s) => s.words).length).toBeGreaterThan(5); // bracketed key honoured
    } finally {
      await wcpp.close();
      await sp.close();
    }
  });
});

describe('§7.6 rules refuse a misbehaving raw client', () => {
  const wav = () => ({ path: fx.get(SPEECH.name).path, filename: 'speech.wav' });

  test('missing file → 400 OpenAI error object', async () => {
    const { res, text } = await rawPost({ model: 'whisper-1' });
    expect(res.status).toBe(400);
    expect(expectOpenAIError(text).type).toBe('invalid_request_error');
  });

  test('missing model → 400 naming the parameter', async () => {
    const { res, text } = await rawPost({}, wav());
    expect(res.status).toBe(400);
    const err = expectOpenAIError(text);
    expect(err.param).toBe('model');
    expect(err.message).toMatch(/model/);
  });

  test('unsupported extension → 400 listing the supported formats', async () => {
    const { res, text } = await rawPost({ model: 'whisper-1' }, { path: fx.get(SPEECH.name).path, filename: 'speech.aac' });
    expect(res.status).toBe(400);
    expect(expectOpenAIError(text).message).toMatch(/Supported formats: \['flac', 'm4a', 'mp3', 'mp4', 'mpeg', 'mpga', 'oga', 'ogg', 'wav', 'webm'\]/);
  });

  test('undecodable bytes with a valid extension → 400', async () => {
    const bogus = join(fx.dir, 'bogus.wav');
    await writeFile(bogus, 'this is not audio at all. '.repeat(200));
    const { res, text } = await rawPost({ model: 'whisper-1' }, { path: bogus, filename: 'bogus.wav' });
    expect(res.status).toBe(400);
    expect(expectOpenAIError(text)).toMatchObject({ param: 'file', code: 'invalid_value' });
  });

  test('request body over 25 MiB → 413 "Maximum content size limit (26214400) exceeded (N bytes read)"', async () => {
    const done = doneWhere((r) => r.file?.filename === 'long.wav');
    const { res, text } = await rawPost({ model: 'whisper-1' }, { path: longWav, filename: 'long.wav' });
    const rec = await done;
    expect(res.status).toBe(413);
    const err = expectOpenAIError(text);
    expect(rec.bodyBytes).toBeGreaterThan(statSync(longWav).size); // the whole body was read and counted
    expect(err.message).toBe(`Maximum content size limit (26214400) exceeded (${rec.bodyBytes} bytes read)`);
    expect(err.type).toBe('server_error');
  });

  test('response_format json / text / srt / vtt / verbose_json (words only with timestamp_granularities[]=word)', async () => {
    // Six recognitions of the same file, in parallel (the emulator answers each on its own).
    const [json, text, srt, vtt, verboseRes, withWordsRes] = await Promise.all([
      rawPost({ model: 'whisper-1' }, wav()),
      rawPost({ model: 'whisper-1', response_format: 'text' }, wav()),
      rawPost({ model: 'whisper-1', response_format: 'srt' }, wav()),
      rawPost({ model: 'whisper-1', response_format: 'vtt' }, wav()),
      rawPost({ model: 'whisper-1', response_format: 'verbose_json' }, wav()),
      rawPost({ model: 'whisper-1', response_format: 'verbose_json', 'timestamp_granularities[]': ['word', 'segment'], language: 'en' }, wav()),
    ]);
    expect(json.res.headers.get('content-type')).toMatch(/^application\/json/);
    const j = JSON.parse(json.text) as Record<string, unknown>;
    expect(Object.keys(j).sort()).toEqual(['text', 'usage']);
    expect(wordErrorRate(SPEECH.text, j.text as string)).toBeLessThanOrEqual(0.15);

    expect(text.res.headers.get('content-type')).toMatch(/^text\/plain/);
    expect(text.text.trim()).toBe(j.text);

    expect(srt.text).toMatch(/^1\n\d\d:\d\d:\d\d,\d{3} --> \d\d:\d\d:\d\d,\d{3}\n\S/);
    expect(vtt.text).toMatch(/^WEBVTT\n\n\d\d:\d\d:\d\d\.\d{3} --> \d\d:\d\d:\d\d\.\d{3}\n\S/);

    const verbose = JSON.parse(verboseRes.text) as Record<string, unknown>;
    expect(verbose).toMatchObject({ task: 'transcribe', language: 'english', text: j.text });
    expect(typeof verbose.duration).toBe('number');
    expect(verbose.words).toBeUndefined();
    const segs = verbose.segments as Array<Record<string, unknown>>;
    expect(segs.length).toBeGreaterThan(0);
    for (const s of segs) {
      expect(Object.keys(s).sort()).toEqual(['avg_logprob', 'compression_ratio', 'end', 'id', 'no_speech_prob', 'seek', 'start', 'temperature', 'text', 'tokens']);
      expect(s.text).toMatch(/^ /);
    }
    const withWords = JSON.parse(withWordsRes.text) as { words: Array<{ word: string; start: number; end: number }> };
    expect(withWords.words.length).toBeGreaterThan(5);
    expect(Object.keys(withWords.words[0]!).sort()).toEqual(['end', 'start', 'word']);

    const bad = await rawPost({ model: 'whisper-1', response_format: 'xml' }, wav());
    expect(bad.res.status).toBe(400);
    expect(expectOpenAIError(bad.text).param).toBe('response_format');
    const gpt4o = await rawPost({ model: 'gpt-4o-transcribe', response_format: 'verbose_json' }, wav());
    expect(gpt4o.res.status).toBe(400);
  });

  test('Bearer auth: missing header and wrong key → 401 OpenAI error object (key masked)', async () => {
    const none = await rawPost({ model: 'whisper-1' }, wav(), { key: null });
    expect(none.res.status).toBe(401);
    expectOpenAIError(none.text);
    const wrongKey = 'sk-wrong-key-9876543210';
    const wrong = await rawPost({ model: 'whisper-1' }, wav(), { key: wrongKey });
    expect(wrong.res.status).toBe(401);
    expect(expectOpenAIError(wrong.text).code).toBe('invalid_api_key');
    expect(wrong.text).not.toContain(wrongKey);
  });

  test('per-key concurrency cap → 429 OpenAI error object with Retry-After; other keys unaffected', async () => {
    emu.faults.neverAnswer = true;
    const holder = new AbortController();
    const admitted = nextAdmitted();
    const hold = fetch(`${emu.baseUrl}/audio/transcriptions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${CAPPED_KEY}` },
      body: (() => {
        const f = new FormData();
        f.append('model', 'whisper-1');
        return f;
      })(),
      signal: holder.signal,
    }).catch(() => null);
    const held = await admitted;
    expect(emu.concurrency.inFlight(CAPPED_KEY)).toBe(1);

    const { res, text } = await rawPost({ model: 'whisper-1' }, wav(), { key: CAPPED_KEY });
    expect(res.status).toBe(429);
    expect(res.headers.get('retry-after')).toBe('2');
    expect(expectOpenAIError(text)).toMatchObject({ type: 'requests', code: 'rate_limit_exceeded' });
    expect(emu.concurrency.refusals(CAPPED_KEY)).toBeGreaterThanOrEqual(1);
    expect(emu.concurrency.maxConcurrent(CAPPED_KEY)).toBe(1);

    const other = await rawPost({ model: 'whisper-1' }, wav());
    expect(other.res.status).toBe(200);

    const gone = doneWhere((r) => r.id === held.id);
    holder.abort();
    await hold;
    await gone;
    expect(emu.concurrency.inFlight(CAPPED_KEY)).toBe(0);
  });

  test('whisper.cpp mode: /inference, model ignored, {"error": string} bodies, requests serialised', async () => {
    const w = await startOpenAIEmulator({ mode: 'whisper.cpp' });
    try {
      const url = `${w.url}/inference`;
      const nofile = await rawPost({}, undefined, { url, key: null });
      expect(nofile.res.status).toBe(400);
      expect(JSON.parse(nofile.text)).toEqual({ error: "no 'file' field in the request" });
      const onV1 = await rawPost({ model: 'whisper-1' }, wav(), { url: `${w.url}/v1/audio/transcriptions`, key: null });
      expect(onV1.res.status).toBe(404);

      const two = await Promise.all([rawPost({}, wav(), { url, key: null }), rawPost({ model: 'whatever' }, wav(), { url, key: null })]);
      for (const r of two) {
        expect(r.res.status).toBe(200);
        expect(wordErrorRate(SPEECH.text, (JSON.parse(r.text) as { text: string }).text)).toBeLessThanOrEqual(0.15);
      }
      expect(w.inference.max).toBe(1); // one inference at a time, the other waited
      expect(w.concurrency.maxConcurrent('anonymous')).toBe(2); // both were in flight at the server
    } finally {
      await w.close();
    }
  });

  test('speaches mode: unknown model → 404 {"detail"}; only the bracketed granularity key is read', async () => {
    const sp = await startOpenAIEmulator({ mode: 'speaches', installedModels: ['Systran/faster-whisper-small'] });
    try {
      const url = `${sp.baseUrl}/audio/transcriptions`;
      const unknown = await rawPost({ model: 'whisper-1' }, wav(), { url });
      expect(unknown.res.status).toBe(404);
      expect((JSON.parse(unknown.text) as { detail: string }).detail).toMatch(/^Model 'whisper-1' is not installed locally/);
      const model = 'Systran/faster-whisper-small';
      const plain = JSON.parse((await rawPost({ model, response_format: 'verbose_json', timestamp_granularities: 'word' }, wav(), { url })).text) as { words?: unknown };
      expect(plain.words).toBeUndefined();
      const bracketed = JSON.parse((await rawPost({ model, response_format: 'verbose_json', 'timestamp_granularities[]': 'word' }, wav(), { url })).text) as { words?: unknown[] };
      expect(bracketed.words?.length).toBeGreaterThan(5);
      const nofile = await rawPost({ model }, undefined, { url });
      expect(nofile.res.status).toBe(422);
      expect(JSON.parse(nofile.text)).toHaveProperty('detail');
    } finally {
      await sp.close();
    }
  });

  test('our client never triggers a refusal', () => {
    // Every request the client tests above made was answered 200 (refusal tests use raw clients).
    const fromClient = emu.requests.filter((r) => r.headers.contentType?.includes('boundary=----scribe-'));
    expect(fromClient.length).toBeGreaterThan(0);
    expect(fromClient.filter((r) => r.status !== 200)).toEqual([]);
  });
});

describe('errors are classified (Appendix A)', () => {
  const speech = () => fileAudioInput(fx.get(SPEECH.name).path);

  test('401 → ProviderAuthError; the key never appears in the message', async () => {
    const key = 'sk-live-this-is-a-secret-key-42';
    const e = await rejection(provider({ apiKey: key }).transcribe(request(speech()), sessionContext()));
    expect(e).toMatchObject({ code: 'PROVIDER_AUTH', kind: 'unrecoverable', status: 401 });
    expect(e.message).toMatch(/^openai: HTTP 401/);
    expect(e.message).not.toContain(key);
    expect(e.message).not.toContain(key.slice(-4));
  });

  test('429 with Retry-After → ProviderRateLimitedError with retryAfterMs', async () => {
    emu.faults.neverAnswer = true;
    const holder = new AbortController();
    const admitted = nextAdmitted();
    const hold = provider({ apiKey: CAPPED_KEY }).transcribe(request(speech()), sessionContext(holder.signal)).catch((e: unknown) => e);
    const held = await admitted;
    const e = await rejection(provider({ apiKey: CAPPED_KEY }).transcribe(request(speech()), sessionContext()));
    expect(e).toMatchObject({ code: 'PROVIDER_RATE_LIMITED', kind: 'rate_limit', status: 429, retryAfterMs: 2000 });
    expect(e.message).toMatch(/^openai: HTTP 429 rate_limit_exceeded/);
    const gone = doneWhere((r) => r.id === held.id);
    holder.abort();
    expect(await hold).toMatchObject({ code: 'JOB_CANCELLED' });
    await gone;
    expect(emu.concurrency.inFlight(CAPPED_KEY)).toBe(0);
  });

  test('429 insufficient_quota → ProviderPaymentError (waiting does not help)', async () => {
    emu.quotaExceeded = true;
    const e = await rejection(provider().transcribe(request(speech()), sessionContext()));
    expect(e).toMatchObject({ code: 'PROVIDER_PAYMENT_REQUIRED', kind: 'unrecoverable', status: 429 });
  });

  test('503 once → retryable ProviderUnavailableError, then the retry succeeds', async () => {
    emu.faults.fail5xxTimes = 1;
    const e = await rejection(provider().transcribe(request(speech()), sessionContext()));
    expect(e).toMatchObject({ code: 'PROVIDER_UNAVAILABLE', kind: 'retry', status: 503 });
    expect(e.message).toMatch(/^openai: HTTP 503/);
    const r = await provider().transcribe(request(speech()), sessionContext());
    expect(wordErrorRate(SPEECH.text, transcriptText(r.transcript))).toBeLessThanOrEqual(0.15);
  });

  test('socket dropped while processing → retryable ProviderUnavailableError', async () => {
    emu.faults.dropAfterAudioMs = 500;
    const e = await rejection(provider().transcribe(request(speech()), sessionContext()));
    expect(e).toMatchObject({ code: 'PROVIDER_UNAVAILABLE', kind: 'retry' });
    expect(e.message).toMatch(/^openai: connection failed/);
  });

  test('no answer within timeoutMs → retryable ProviderTimeoutError', async () => {
    emu.faults.neverAnswer = true;
    const admitted = nextAdmitted();
    const e = await rejection(provider({ timeoutMs: 500 }).transcribe(request(speech()), sessionContext()));
    expect(e).toMatchObject({ code: 'PROVIDER_TIMEOUT', kind: 'retry' });
    const rec = await admitted;
    await doneWhere((r) => r.id === rec.id); // the emulator saw the client go away
    expect(rec.status).toBe(499);
  });

  test('413 from a server with a smaller limit → InputTooLargeError', async () => {
    const small = await startOpenAIEmulator({ keys: [KEY], maxUploadBytes: 100_000 });
    try {
      const e = await rejection(new OpenAIProvider({ apiKey: KEY, baseUrl: small.baseUrl }).transcribe(request(speech()), sessionContext()));
      expect(e).toMatchObject({ code: 'INPUT_TOO_LARGE', kind: 'unrecoverable', status: 413 });
      expect(e.message).toMatch(/^openai: HTTP 413 .*Maximum content size limit \(100000\) exceeded/);
    } finally {
      await small.close();
    }
  });

  test('400 (speaches 404 unknown model) → ProviderRejectedError with the server message', async () => {
    const sp = await startOpenAIEmulator({ mode: 'speaches' });
    try {
      const e = await rejection(new OpenAIProvider({ apiKey: KEY, baseUrl: sp.baseUrl }).transcribe(request(speech()), sessionContext()));
      expect(e).toMatchObject({ code: 'PROVIDER_REJECTED', kind: 'unrecoverable', status: 404 });
      expect(e.message).toMatch(/^openai: HTTP 404: Model 'whisper-1' is not installed locally/);
    } finally {
      await sp.close();
    }
  });

  test('abort via signal while the server works → JobCancelledError; the request is torn down', async () => {
    emu.faults.neverAnswer = true;
    const ac = new AbortController();
    const admitted = nextAdmitted();
    const p = provider().transcribe(request(speech()), sessionContext(ac.signal));
    const rec = await admitted;
    const gone = doneWhere((r) => r.id === rec.id);
    ac.abort();
    const e = await rejection(p);
    expect(e).toMatchObject({ code: 'JOB_CANCELLED' });
    expect(e.message).toMatch(/^openai:/);
    await gone;
    expect(emu.concurrency.inFlight(KEY)).toBe(0);
  });

  test('stream mode is refused (batch only)', async () => {
    const e = await rejection(provider().transcribe({ ...request(speech()), mode: 'stream' }, sessionContext()));
    expect(e).toMatchObject({ code: 'UNSUPPORTED_COMBINATION' });
  });
});

describe('input over 25 MiB', () => {
  test('size known: split into WAV pieces <= 25 MiB, word times offset by each piece start', async () => {
    expect(statSync(longWav).size).toBeGreaterThan(OPENAI_MAX_UPLOAD_BYTES);
    const before = emu.requests.length;
    const ctx = sessionContext();
    const r = await provider().transcribe(request(fileAudioInput(longWav)), ctx);
    const pieces = emu.requests.slice(before);
    expect(pieces.map((p) => p.status)).toEqual([200, 200]);
    for (const p of pieces) {
      expect(p.bodyBytes).toBeLessThanOrEqual(OPENAI_MAX_UPLOAD_BYTES);
      expect(p.file?.filename).toMatch(/\.wav$/);
    }
    const firstPieceSeconds = (pieces[0]!.file!.bytes - 44) / 32000;
    expect(firstPieceSeconds).toBeGreaterThan(780); // ~13.6 min
    expect(r.stats).toMatchObject({ chunksSent: 2, requestId: `${pieces[0]!.id}+${pieces[1]!.id}` });
    expect(r.transcript.duration).toBeCloseTo(900, 2);

    const words = r.transcript.segments.flatMap((s) => s.words);
    const first = words.filter((w) => w.start < firstPieceSeconds);
    const second = words.filter((w) => w.start >= firstPieceSeconds);
    expect(first.length).toBeGreaterThan(10);
    expect(second.length).toBeGreaterThan(10);
    // Speech starts at 0.6 s and 840.6 s (flite's own leading silence varies a little): the second
    // piece's first word sits at its audio time, not at its time within the piece (~23 s).
    expect(first[0]!.start).toBeLessThan(2);
    expect(second[0]!.start).toBeGreaterThan(840);
    expect(second[0]!.start).toBeLessThan(842);
    expect(wordErrorRate(`${SPEECH.text} ${SPEECH.text} ${SPEECH.text}`, transcriptText(r.transcript))).toBeLessThanOrEqual(0.15);
    const finals = ctx.events.filter((e) => e.type === 'session:final');
    expect(finals.map((e) => (e as { index: number }).index)).toEqual(r.transcript.segments.map((_, i) => i));
  });

  test('size unknown: the upload is abandoned at the limit and the input is split instead', async () => {
    const before = emu.requests.length;
    const r = await provider().transcribe(request(unsizedInput(longWav)), sessionContext());
    const seen = emu.requests.slice(before);
    expect(seen.map((q) => [q.status, q.file?.filename])).toEqual([
      [499, 'long.wav'], // counted past the limit while streaming, then given up
      [200, 'piece-0000.wav'],
      [200, 'piece-0001.wav'],
    ]);
    expect(seen[0]!.file!.bytes).toBeLessThanOrEqual(OPENAI_MAX_UPLOAD_BYTES);
    expect(r.stats.chunksSent).toBe(2);
    const words = r.transcript.segments.flatMap((s) => s.words);
    expect(words.find((w) => w.start > 800)!.start).toBeGreaterThan(840);
  });

  test('splitLongInput false, size known: INPUT_TOO_LARGE before anything is uploaded', async () => {
    const before = emu.requests.length;
    const e = await rejection(provider({ splitLongInput: false }).transcribe(request(fileAudioInput(longWav)), sessionContext()));
    expect(e).toMatchObject({ code: 'INPUT_TOO_LARGE', kind: 'unrecoverable' });
    expect(e.message).toMatch(/^openai: .*26214400/);
    expect(emu.requests.length).toBe(before);
  });

  test('splitLongInput false, size unknown: the upload is abandoned at the limit, INPUT_TOO_LARGE', async () => {
    const done = doneWhere((r) => r.file?.filename === 'long.wav' && r.status !== 413);
    const e = await rejection(provider({ splitLongInput: false }).transcribe(request(unsizedInput(longWav)), sessionContext()));
    expect(e).toMatchObject({ code: 'INPUT_TOO_LARGE' });
    const rec = await done;
    expect(rec.status).toBe(499); // the client went away mid-upload
    expect(rec.file!.bytes).toBeLessThanOrEqual(OPENAI_MAX_UPLOAD_BYTES);
  });
});
