import { createReadStream } from 'node:fs';
import { VirtualClock, wordErrorRate, type AudioInput } from '@scribe-fleet/core';
import { decodeToPcm } from '@scribe-fleet/core/adapters/s3/ffmpeg-decoder';
import { LocalProvider } from '@scribe-fleet/core/adapters/local-provider';
import { systemClock } from '@scribe-fleet/core/adapters/system-clock';
import { repeatedSpeech } from '../helpers/fleet';

jest.setTimeout(60_000);

const fileInput = (path: string): AudioInput => ({
  pcm: (signal) => decodeToPcm(createReadStream(path), signal ? { signal } : {}),
  original: async () => ({ stream: createReadStream(path), filename: 'x.wav' }),
});

it('word times stay in audio time across utterances and long silences (batch)', async () => {
  const { path, period, text } = await repeatedSpeech(25);
  const res = await new LocalProvider().transcribe({ mode: 'batch', model: 'pocketsphinx-en-us', options: {}, audio: fileInput(path) }, { signal: new AbortController().signal, clock: new VirtualClock() });
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
