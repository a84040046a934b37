import { createReadStream, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { VirtualClock, wordErrorRate, type AudioInput } from '@scribe-fleet/core';
import { decodeToPcm } from '@scribe-fleet/core/adapters/s3/ffmpeg-decoder';
import { LocalProvider } from '@scribe-fleet/core/adapters/local-provider';
import { recogniserStarts, shutdownRecogniser } from '@scribe-fleet/core/adapters/sphinx-recogniser';
import { systemClock } from '@scribe-fleet/core/adapters/system-clock';
import { synthesise } from '../../infra/local/src/samples';
import { repeatedSpeech } from '../helpers/fleet';
import { recogniseInOwnProcess } from '../helpers/sphinx';

jest.setTimeout(60_000);

const fileInput = (path: string): AudioInput => ({
  pcm: (signal) => decodeToPcm(createReadStream(path), signal ? { signal } : {}),
  original: async () => ({ stream: createReadStream(path), filename: 'x.wav' }),
});

afterAll(() => shutdownRecogniser());

const batch = (path: string, signal = new AbortController().signal) =>
  new LocalProvider().transcribe({ mode: 'batch', model: 'pocketsphinx-en-us', options: {}, audio: fileInput(path) }, { signal, clock: new VirtualClock() });

it('sessions share one recogniser (one model load) and each gives what a process of its own gives', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'scribe-rec-'));
  try {
    const { path: a } = await repeatedSpeech(3);
    const b = join(dir, 'b.wav');
    await synthesise({ name: 'b.wav', voice: 'rms', format: 'wav', text: 'the children played in the park until the sun went down behind the hills' }, b);
    const expectedA = recogniseInOwnProcess(a);
    const expectedB = recogniseInOwnProcess(b);
    await shutdownRecogniser();
    const before = recogniserStarts();
    // A, then B, then A again after B (a decoder reused without a fresh state would hear A differently),
    // then A and B at the same time.
    expect((await batch(a)).transcript.segments).toEqual(expectedA);
    expect((await batch(b)).transcript.segments).toEqual(expectedB);
    expect((await batch(a)).transcript.segments).toEqual(expectedA);
    const [ca, cb] = await Promise.all([batch(a), batch(b)]);
    expect(ca.transcript.segments).toEqual(expectedA);
    expect(cb.transcript.segments).toEqual(expectedB);
    expect(recogniserStarts() - before).toBe(1);
    // An aborted session ends in its own process; the recogniser stays up for the next one.
    const ac = new AbortController();
    const aborted = batch(a, ac.signal);
    setImmediate(() => ac.abort(new Error('stop')));
    await expect(aborted).rejects.toThrow();
    expect((await batch(b)).transcript.segments).toEqual(expectedB);
    expect(recogniserStarts() - before).toBe(1);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

it('word times stay in audio time across utterances and long silences (batch)', async () => {
  const { path, period, text } = await repeatedSpeech(25);
  const res = await batch(path);
  expect(res.transcript.segments.length).toBe(3);
  const first = res.transcript.segments.map((s) => s.words[0]!.start);
  // Each repeat starts one period after the previous one.
  expect(first[1]! - first[0]!).toBeCloseTo(period, 0);
  expect(first[2]! - first[0]!).toBeCloseTo(2 * period, 0);
  expect(res.transcript.segments[2]!.end).toBeLessThanOrEqual(res.transcript.duration);
  for (const s of res.transcript.segments) expect(wordErrorRate(text, s.text)).toBeLessThanOrEqual(0.15);
});

it('stream mode paces on the real clock: never early, and finishes in about the audio duration', async () => {
  const { path } = await repeatedSpeech(3);
  const t0 = performance.now();
  const res = await new LocalProvider().transcribe({ mode: 'stream', model: 'pocketsphinx-en-us', options: {}, audio: fileInput(path) }, { signal: new AbortController().signal, clock: systemClock });
  const wall = (performance.now() - t0) / 1000;
  expect(res.stats.pacing!.earlySends).toBe(0);
  expect(wall).toBeGreaterThanOrEqual(res.transcript.duration - 0.2);
  expect(res.transcript.segments.length).toBe(3);
});
