/**
 * Bad and odd inputs through the real worker path: each file is put into the test S3 server and run
 * through `createProcessor` (real S3Storage, the local pocketsphinx provider, the Redis limiter) in
 * ONE attempt; the test asserts the stable error code a job would fail with (and that it is
 * unrecoverable: a retry would fail the same way), or that the job completes where it should.
 * Every fixture is generated here (flite + ffmpeg + a few hand-built headers); nothing binary is committed.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  fromDeepgramJson,
  parseJobSpec,
  toScribeError,
  transcriptText,
  transcriptWarnings,
  wordErrorRate,
  type DeepgramStyleJson,
  type JobSpec,
  type JobSpecInput,
} from '@scribe-fleet/core';
import type { JobResult } from '@scribe-fleet/core';
import { createDeps, createProcessor, type ProcessorDeps } from '@scribe-fleet/worker';
import { testStorage, uniqueBucket } from '../helpers/env';
import { readObject, testConfig } from '../helpers/fleet';
import { cut, pseudoRandom, RATE, SPEECH_TEXT, SpeechKit, wav } from '../helpers/bad-input-fixtures';

jest.setTimeout(60_000);

const TEXT = SPEECH_TEXT;

type Outcome =
  | { state: 'completed'; result: JobResult; doc: DeepgramStyleJson; text: string; words: number }
  | { state: 'failed'; code: string; kind: string; message: string };

const storage = testStorage();
const bucket = uniqueBucket('bad-inputs');
const dir = mkdtempSync(join(process.env.SCRIBE_TEST_TMPDIR ?? tmpdir(), 'bad-inputs-'));
let deps: ProcessorDeps;
let processJob: ReturnType<typeof createProcessor>;
let kit: SpeechKit;
/** The synthesised sentence (0.6 s of silence at both ends), 16 kHz mono WAV, and its raw s16le samples. */
let speechWav: string;
let speechPcm: Buffer;
let n = 0;

const encode = (name: string, args: string[], opts: { input?: string[]; seconds?: number } = {}) => kit.encode(name, args, opts);

interface RunOptions {
  key?: string;
  /** Spec fields over the defaults (mode, ...). */
  spec?: Partial<JobSpecInput>;
  /** Leave the size out of the spec, as a manifest entry without sizes does. */
  withoutSize?: boolean;
  /** Runs after the job was specified (its ETag pinned) and before it is processed. */
  afterEnqueue?: (key: string) => Promise<void>;
}

/** Put `bytes` into S3, specify the job as the producer would (ETag, size), run one attempt. */
async function run(name: string, bytes: Buffer, o: RunOptions = {}): Promise<Outcome> {
  const key = o.key ?? `in/${n++}-${name}`;
  await storage.put(bucket, key, bytes);
  const head = (await storage.head(bucket, key))!;
  const spec: JobSpec = parseJobSpec({
    source: { bucket, key, etag: head.etag, ...(o.withoutSize ? {} : { size: head.size }) },
    output: { bucket, keyBase: `out/${key}` },
    ...o.spec,
  });
  await o.afterEnqueue?.(key);
  try {
    const result = await processJob(spec, { id: `bad-${n}`, attempt: 1, signal: new AbortController().signal });
    const doc = JSON.parse((await readObject(storage, bucket, result.outputs.json!)).toString('utf8')) as DeepgramStyleJson;
    const t = fromDeepgramJson(doc);
    return { state: 'completed', result, doc, text: transcriptText(t), words: result.words };
  } catch (e) {
    // What the BullMQ glue (worker.ts) does with whatever the processor throws.
    const err = toScribeError(e);
    return { state: 'failed', code: err.code, kind: err.kind, message: err.message };
  }
}

function expectFailure(o: Outcome, code: string, message?: RegExp): void {
  // As one string, so a mismatch prints the message too.
  const got = o.state === 'failed' ? `${o.code} (${o.kind}): ${o.message}` : `completed: "${o.text}"`;
  expect(got).toMatch(new RegExp(`^${code} \\(unrecoverable\\): `));
  if (message && o.state === 'failed') expect(o.message).toMatch(message);
}

function expectSpeech(o: Outcome): void {
  expect(o.state === 'completed' ? 'completed' : o).toBe('completed');
  if (o.state !== 'completed') return;
  expect({ text: o.text, ok: wordErrorRate(TEXT, o.text) <= 0.35 }).toEqual({ text: o.text, ok: true });
}

/** Completes with some of the words (the input was cut: only what is left is recognised). */
function expectSomeSpeech(o: Outcome): void {
  expect(o.state === 'completed' ? 'completed' : o).toBe('completed');
  if (o.state === 'completed') expect({ text: o.text, words: o.words > 0 }).toEqual({ text: o.text, words: true });
}

function expectNoSpeech(o: Outcome): void {
  expect(o.state === 'completed' ? 'completed' : o).toBe('completed');
  if (o.state !== 'completed') return;
  expect(o.words).toBe(0);
  // The worker puts transcriptWarnings() into the JSON (metadata.warnings) and the job result.
  expect(o.doc.metadata.warnings).toEqual(['NO_SPEECH']);
  expect(transcriptWarnings(fromDeepgramJson(o.doc))).toEqual(['NO_SPEECH']);
}

beforeAll(async () => {
  await storage.ensureBucket(bucket);
  kit = new SpeechKit(dir);
  speechWav = kit.speechWav;
  speechPcm = kit.speechPcm;
  // createDeps: the worker's own wiring (local provider, Redis limiter) with the test S3 server.
  deps = createDeps(testConfig(), { storage });
  processJob = createProcessor(deps);
});

afterAll(async () => {
  await deps?.limiter.close?.();
  storage.destroy();
  rmSync(dir, { recursive: true, force: true });
});

describe('empty and header-only', () => {
  test('0-byte file → EMPTY_DECODE', async () => {
    expectFailure(await run('empty.wav', Buffer.alloc(0)), 'EMPTY_DECODE');
  });

  test('0-byte file whose job does not know its size (ranged GET answers 416) → EMPTY_DECODE', async () => {
    expectFailure(await run('empty-nosize.wav', Buffer.alloc(0), { withoutSize: true }), 'EMPTY_DECODE');
  });

  test('WAV header only, declaring no samples → EMPTY_DECODE', async () => {
    expectFailure(await run('header-only.wav', wav(Buffer.alloc(0))), 'EMPTY_DECODE');
  });

  test('WAV header only, declaring 10 s of samples → EMPTY_DECODE (zero samples always is), saying what was declared', async () => {
    expectFailure(await run('header-only-10s.wav', wav(Buffer.alloc(0), { declared: 10 * RATE * 2 })), 'EMPTY_DECODE', /WAV header declares 10\.00 s/);
  });
});

describe('truncated and mis-declared', () => {
  test('WAV whose header says 10 s with 1.9 s of data → TRUNCATED_INPUT (both durations in the message)', async () => {
    const o = await run('truncated.wav', wav(speechPcm.subarray(0, 1.9 * RATE * 2), { declared: 10 * RATE * 2 }));
    expectFailure(o, 'TRUNCATED_INPUT', /1\.90 s .*WAV header declares 10\.00 s/);
  });

  test('the same truncated WAV as a paced stream → TRUNCATED_INPUT at the end of the stream', async () => {
    const o = await run('truncated-stream.wav', wav(speechPcm.subarray(0, 1.2 * RATE * 2), { declared: 10 * RATE * 2 }), { spec: { mode: 'stream' } });
    expectFailure(o, 'TRUNCATED_INPUT');
  });

  test('WAV 0.3 s shorter than its header (under the 0.5 s floor) → completes', async () => {
    expectSpeech(await run('slightly-short.wav', wav(speechPcm.subarray(0, speechPcm.length - 0.3 * RATE * 2), { declared: speechPcm.length })));
  });

  test('WAV streamed by a writer that could not seek (sizes 0xFFFFFFFF) → completes', async () => {
    expectSpeech(await run('streamed.wav', wav(speechPcm, { declared: 0xffffffff, riffSize: 0xffffffff })));
  });

  test('WAV declaring a huge data size (2 GiB) over 4 s of samples → TRUNCATED_INPUT', async () => {
    expectFailure(await run('huge-declared.wav', wav(speechPcm, { declared: 0x7ffffff0 })), 'TRUNCATED_INPUT');
  });

  test('WAV with a huge chunk size before its data (the data chunk is never reached) → DECODE_FAILED', async () => {
    const list = Buffer.alloc(12);
    list.write('LIST', 0, 'latin1');
    list.writeUInt32LE(0x7ffffff0, 4);
    list.write('INFO', 8, 'latin1');
    expectFailure(await run('huge-chunk.wav', wav(speechPcm, { before: list })), 'DECODE_FAILED', /data/);
  });

  test('WAV with sample rate 0 in its header → DECODE_FAILED', async () => {
    expectFailure(await run('rate0.wav', wav(speechPcm, { rate: 0 })), 'DECODE_FAILED');
  });

  test('FLAC cut at 40 % → TRUNCATED_INPUT (STREAMINFO total)', async () => {
    expectFailure(await run('truncated.flac', cut(encode('full.flac', ['-c:a', 'flac'], { seconds: 8 }), 0.4)), 'TRUNCATED_INPUT', /container declares 8\.00 s/);
  });

  test('MP3 with a Xing header cut at 40 % → TRUNCATED_INPUT', async () => {
    expectFailure(await run('truncated.mp3', cut(encode('xing.mp3', ['-c:a', 'libmp3lame', '-b:a', '64k'], { seconds: 8 }), 0.4)), 'TRUNCATED_INPUT', /Xing/);
  });

  test('CBR MP3 without a Xing header cut at 60 % → completes (only an estimate exists: not checked)', async () => {
    expectSomeSpeech(await run('truncated-noxing.mp3', cut(encode('noxing.mp3', ['-c:a', 'libmp3lame', '-b:a', '64k', '-write_xing', '0'], { seconds: 8 }), 0.6)));
  });

  test('m4a with its index in front (faststart) cut at 50 % → TRUNCATED_INPUT', async () => {
    const m4a = encode('faststart.m4a', ['-c:a', 'aac', '-b:a', '64k', '-movflags', '+faststart'], { seconds: 8 });
    expectFailure(await run('truncated-faststart.m4a', cut(m4a, 0.5)), 'TRUNCATED_INPUT', /audio stream declares 8\.\d\d s/);
  });

  test('m4a with its index at the end, cut (no index at all) → DECODE_FAILED', async () => {
    expectFailure(await run('truncated.m4a', cut(encode('moov-last.m4a', ['-c:a', 'aac', '-b:a', '64k'], { seconds: 8 }), 0.5)), 'DECODE_FAILED', /moov/);
  });

  test('Ogg/Vorbis cut at 60 % → completes (an Ogg stream declares no duration up front)', async () => {
    expectSomeSpeech(await run('truncated.ogg', cut(encode('full.ogg', ['-c:a', 'libvorbis'], { seconds: 8 }), 0.6)));
  });
});

describe('not audio', () => {
  test('a text file renamed .wav → DECODE_FAILED', async () => {
    expectFailure(await run('notes.wav', Buffer.from('Meeting notes, 3 March.\nNothing to hear here.\n'.repeat(200))), 'DECODE_FAILED', /ffmpeg/);
  });

  test('random bytes → DECODE_FAILED', async () => {
    expectFailure(await run('random.mp3', pseudoRandom(64 * 1024, 0x5eed)), 'DECODE_FAILED');
  });

  test('1 MiB of zero bytes → DECODE_FAILED', async () => {
    expectFailure(await run('zeros.wav', Buffer.alloc(1 << 20)), 'DECODE_FAILED');
  });

  test('headerless raw PCM named .wav → DECODE_FAILED', async () => {
    expectFailure(await run('raw.wav', speechPcm), 'DECODE_FAILED');
  });

  test('a video file with no audio track → EMPTY_DECODE', async () => {
    const mp4 = encode('video-only.mp4', ['-c:v', 'libx264', '-pix_fmt', 'yuv420p', '-t', '2'], { input: ['-f', 'lavfi', '-i', 'testsrc=size=64x48:rate=5'] });
    expectFailure(await run('video-only.mp4', mp4), 'EMPTY_DECODE', /no audio stream/);
  });

  test('a zero-duration m4a → EMPTY_DECODE', async () => {
    const m4a = encode('zero.m4a', ['-c:a', 'aac', '-t', '0'], { input: ['-f', 'lavfi', '-i', `anullsrc=r=${RATE}:cl=mono`] });
    expectFailure(await run('zero.m4a', m4a), 'EMPTY_DECODE');
  });
});

describe('odd but valid', () => {
  test('0.1 s of audio → completes with no words (NO_SPEECH)', async () => {
    expectNoSpeech(await run('blip.wav', encode('blip.wav', ['-t', '0.1'], { input: ['-f', 'lavfi', '-i', `sine=frequency=440:sample_rate=${RATE}`] })));
  });

  test('pure silence → completes with no words (NO_SPEECH)', async () => {
    expectNoSpeech(await run('silence.wav', encode('silence.wav', ['-t', '3'], { input: ['-f', 'lavfi', '-i', `anullsrc=r=${RATE}:cl=mono`] })));
  });

  test('8 channels at 192 kHz → completes', async () => {
    expectSpeech(await run('8ch-192k.wav', encode('8ch.wav', ['-ac', '8', '-ar', '192000'])));
  });

  test.each([
    ['16-bit PCM', 's16.wav', ['-c:a', 'pcm_s16le'], true],
    ['24-bit PCM', 's24.wav', ['-c:a', 'pcm_s24le'], true],
    ['32-bit float', 'f32.wav', ['-c:a', 'pcm_f32le'], true],
    ['64-bit float', 'f64.wav', ['-c:a', 'pcm_f64le'], true],
    // Lossy: 8-bit quantisation noise / µ-law at telephone bandwidth hurt the recogniser, not the decoding.
    ['8-bit unsigned', 'u8.wav', ['-c:a', 'pcm_u8'], false],
    ['µ-law at 8 kHz', 'mulaw.wav', ['-c:a', 'pcm_mulaw', '-ar', '8000'], false],
  ] as Array<[string, string, string[], boolean]>)('WAV, %s → completes', async (_what, name, args, clean) => {
    const o = await run(name, encode(name, args));
    if (clean) expectSpeech(o);
    else expectSomeSpeech(o);
  });

  test('mp4 video with an audio track shorter than the video → completes (not "truncated")', async () => {
    const mp4 = encode('video.mp4', ['-map', '0:v', '-map', '1:a', '-t', '7', '-c:v', 'libx264', '-pix_fmt', 'yuv420p', '-c:a', 'aac'], {
      input: ['-f', 'lavfi', '-i', 'testsrc=size=64x48:rate=5', '-i', speechWav],
    });
    expectSpeech(await run('video.mp4', mp4));
  });

  test('Ogg/Opus → completes', async () => {
    expectSpeech(await run('speech.opus', encode('speech.opus', ['-c:a', 'libopus', '-b:a', '32k'])));
  });

  test('MP3 with a corrupt middle (resynchronises) → completes', async () => {
    const mp3 = Buffer.from(encode('middle.mp3', ['-c:a', 'libmp3lame', '-b:a', '64k']));
    pseudoRandom(1500, 0xbad).copy(mp3, Math.floor(mp3.length * 0.5));
    expectSpeech(await run('corrupt-middle.mp3', mp3));
  });

  test('MP3 with cover art (an attached picture stream) → completes', async () => {
    const mp3 = encode('cover.mp3', ['-map', '0:a', '-map', '1:v', '-c:a', 'libmp3lame', '-b:a', '64k', '-c:v', 'mjpeg', '-disposition:v', 'attached_pic', '-id3v2_version', '3'], {
      input: ['-i', speechWav, '-f', 'lavfi', '-i', 'color=c=red:size=64x64:duration=1', '-frames:v', '1'],
    });
    expectSpeech(await run('cover.mp3', mp3));
  });

  test('MP3 behind an ID3v2 tag that declares 256 MiB → completes', async () => {
    const tag = Buffer.from([0x49, 0x44, 0x33, 3, 0, 0, 0x7f, 0x7f, 0x7f, 0x7f]);
    expectSpeech(await run('huge-id3.mp3', Buffer.concat([tag, encode('plain.mp3', ['-c:a', 'libmp3lame', '-b:a', '64k'])])));
  });

  test.each([
    ['spaces', 'in/with spaces/my recording (1).wav'],
    ['unicode', 'in/ünïcødé/Ålborg-møde-会议-🎙.wav'],
    ['hash and query marks', 'in/odd/#1 what?.wav'],
    ['plus and percent', 'in/odd/a+b=c 100%25 50%.wav'],
  ])('a key with %s → completes, outputs beside the odd key', async (_what, key) => {
    const o = await run('odd.wav', readFileSync(speechWav), { key });
    expectSpeech(o);
    if (o.state === 'completed') {
      expect(o.result.outputs.json).toBe(`out/${key}.json`);
      expect(o.doc.metadata.source?.key).toBe(key);
    }
  });
});

describe('the source changes after enqueue', () => {
  test('deleted → SOURCE_NOT_FOUND', async () => {
    const o = await run('deleted.wav', readFileSync(speechWav), { afterEnqueue: (key) => storage.delete(bucket, key) });
    expectFailure(o, 'SOURCE_NOT_FOUND');
  });

  test('overwritten with other bytes → SOURCE_CHANGED (the spec pins the ETag)', async () => {
    const o = await run('overwritten.wav', readFileSync(speechWav), { afterEnqueue: async (key) => void (await storage.put(bucket, key, encode('other.wav', ['-t', '1']))) });
    expectFailure(o, 'SOURCE_CHANGED');
  });

  test('overwritten with the same bytes (same ETag) → completes', async () => {
    const bytes = readFileSync(speechWav);
    expectSpeech(await run('rewritten.wav', bytes, { afterEnqueue: async (key) => void (await storage.put(bucket, key, bytes)) }));
  });
});
