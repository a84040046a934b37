/**
 * The Deepgram live emulator's channels on their own (providers.md §2.2 `channels`/`multichannel`,
 * §2.4 `channel_index`): raw interleaved audio split per channel across frame boundaries, each channel
 * converted on its own or mixed to mono, the byte rate of N channels for the rate check, the pacing
 * gate keeping the channels in step, and the `[c, N]` tags of one channel's messages.
 */
import { performance } from 'node:perf_hooks';
import { deinterleave, downmix, FrameSplitter } from '../src/kit';
import { resolveOptions } from '../src/deepgram/options';
import { liveChannels, openIngest, PacingGate, RawDecoder } from '../src/deepgram/live/ingest';
import { LiveOutput } from '../src/deepgram/live/output';

/** Interleaved s16le frames of `channels` channels; sample i of channel c is `value(c, i)`. */
function interleaved(channels: number, samples: number, value: (c: number, i: number) => number): Buffer {
  const b = Buffer.alloc(samples * channels * 2);
  for (let i = 0; i < samples; i++) for (let c = 0; c < channels; c++) b.writeInt16LE(value(c, i), (i * channels + c) * 2);
  return b;
}
const samplesOf = (b: Buffer) => Array.from({ length: b.length / 2 }, (_, i) => b.readInt16LE(i * 2));

describe('splitting interleaved audio', () => {
  it('deinterleave: whole frames of N samples become N buffers (s16le and 1-byte samples)', () => {
    const stereo = interleaved(2, 4, (c, i) => (c === 0 ? i : -100 - i));
    const [l, r] = deinterleave(stereo, 2, 2);
    expect(samplesOf(l!)).toEqual([0, 1, 2, 3]);
    expect(samplesOf(r!)).toEqual([-100, -101, -102, -103]);
    const mulaw3 = Buffer.from([1, 2, 3, 11, 12, 13]);
    expect(deinterleave(mulaw3, 3, 1).map((b) => [...b])).toEqual([[1, 11], [2, 12], [3, 13]]);
    expect(deinterleave(stereo, 1, 2)[0]).toBe(stereo);
  });

  it('FrameSplitter: WebSocket frames that cut a frame (even a sample) in two give the same channels as one frame', () => {
    const audio = interleaved(3, 500, (c, i) => c * 1000 + i);
    const whole = new FrameSplitter(3, 2).split(audio);
    const split = new FrameSplitter(3, 2);
    const parts: Buffer[][] = [];
    for (const cut of [[0, 7], [7, 8], [8, 601], [601, 1800], [1800, 3000]]) parts.push(split.split(audio.subarray(cut[0], cut[1])));
    expect(split.pending).toBe(0);
    for (let c = 0; c < 3; c++) expect(Buffer.concat(parts.map((p) => p[c]!))).toEqual(whole[c]);
    expect(samplesOf(whole[2]!).slice(0, 3)).toEqual([2000, 2001, 2002]);
    expect(() => new FrameSplitter(0, 2)).toThrow(RangeError);
  });

  it('downmix: the mean of the channels, sample by sample', () => {
    const a = Buffer.alloc(6);
    const b = Buffer.alloc(6);
    [100, -200, 32767].forEach((v, i) => a.writeInt16LE(v, i * 2));
    [300, 200, 32767].forEach((v, i) => b.writeInt16LE(v, i * 2));
    expect(samplesOf(downmix([a, b]))).toEqual([200, 0, 32767]);
    expect(downmix([a])).toBe(a);
  });
});

describe('RawDecoder: raw linear16 / mulaw of N channels to 16 kHz per channel', () => {
  it('16 kHz stereo kept apart: each channel exactly; mixed: one mono buffer', () => {
    const audio = interleaved(2, 160, (c, i) => (c === 0 ? 1000 : 3000) + i);
    const kept = new RawDecoder(16000, 'linear16', 2, true).convert(audio);
    expect(kept).toHaveLength(2);
    expect(samplesOf(kept[0]!)[5]).toBe(1005);
    expect(samplesOf(kept[1]!)[5]).toBe(3005);
    const mixed = new RawDecoder(16000, 'linear16', 2, false).convert(audio);
    expect(mixed).toHaveLength(1);
    expect(samplesOf(mixed[0]!)[5]).toBe(2005);
  });

  it('8 kHz stereo: each channel resampled on its own to 16 kHz, equal lengths, no crosstalk', () => {
    const dec = new RawDecoder(8000, 'linear16', 2, true);
    const out: Buffer[][] = [];
    // 1 s in 100 ms frames: 8000 frames of 4 bytes.
    const audio = interleaved(2, 8000, (c) => (c === 0 ? 5000 : -5000));
    for (let off = 0; off < audio.length; off += 3200) out.push(dec.convert(audio.subarray(off, off + 3200)));
    const [l, r] = [0, 1].map((c) => Buffer.concat(out.map((o) => o[c]!)));
    expect(l!.length).toBe(r!.length);
    expect(Math.abs(l!.length - 32_000)).toBeLessThanOrEqual(4);
    expect(new Set(samplesOf(l!))).toEqual(new Set([5000]));
    expect(new Set(samplesOf(r!))).toEqual(new Set([-5000]));
  });

  it('mono keeps an odd byte over to the next frame, as before', () => {
    const dec = new RawDecoder(16000, 'linear16', 1, false);
    const audio = interleaved(1, 3, (_c, i) => 100 + i);
    const a = dec.convert(audio.subarray(0, 3));
    const b = dec.convert(audio.subarray(3));
    expect(samplesOf(Buffer.concat([a[0]!, b[0]!]))).toEqual([100, 101, 102]);
  });
});

describe('the channel layout and byte rate of a live session', () => {
  const q = (s: string) => new URLSearchParams(s);

  it('liveChannels: `channels` is read with a raw encoding; one output per channel only with multichannel', () => {
    expect(liveChannels(q('encoding=linear16&sample_rate=16000&channels=2&multichannel=true'))).toEqual({ channels: 2, outputs: 2 });
    expect(liveChannels(q('encoding=linear16&sample_rate=16000&channels=2'))).toEqual({ channels: 2, outputs: 1 });
    expect(liveChannels(q('encoding=mulaw&sample_rate=8000&channels=8&multichannel=true'))).toEqual({ channels: 8, outputs: 8 });
    expect(liveChannels(q('encoding=linear16&sample_rate=16000'))).toEqual({ channels: 1, outputs: 1 });
    // Containers are decoded to mono (documented deviation), whatever the query says.
    expect(liveChannels(q('channels=2&multichannel=true'))).toEqual({ channels: 1, outputs: 1 });
    expect(liveChannels(q('encoding=flac&sample_rate=16000&channels=2&multichannel=true'))).toEqual({ channels: 2, outputs: 1 });
  });

  it('openIngest: the rate check counts N × 2 × sample_rate bytes a second; the sink gets N channels or the mix', () => {
    for (const [query, rate, outputs] of [
      ['encoding=linear16&sample_rate=16000&channels=2&multichannel=true', 64_000, 2],
      ['encoding=linear16&sample_rate=16000&channels=2', 64_000, 1],
      ['encoding=linear16&sample_rate=48000&channels=4&multichannel=true', 384_000, 4],
      ['encoding=mulaw&sample_rate=8000&channels=2&multichannel=true', 16_000, 2],
    ] as const) {
      const got: Buffer[][] = [];
      const ingest = openIngest(q(query), { onPcm: (p) => got.push(p), onDecodedSeconds: () => undefined, onUndecodable: (r) => got.push([Buffer.from(r)]) })!;
      expect({ query, rate: ingest.byteRate }).toEqual({ query, rate });
      // One second of audio in two frames, the first cut mid-frame.
      const second = Buffer.alloc(rate, 0x11);
      ingest.write(second.subarray(0, 1001));
      ingest.write(second.subarray(1001));
      const perChannel = got.reduce((n, p) => n + p[0]!.length, 0);
      expect({ query, outputs: got[0]!.length, perChannel: Math.abs(perChannel - 32_000) <= 4 }).toEqual({ query, outputs, perChannel: true });
    }
  });

  it('openIngest: an encoding the emulator cannot decode is refused whatever the channels', () => {
    const refused: string[] = [];
    expect(openIngest(q('encoding=alaw&sample_rate=8000&channels=2'), { onPcm: () => undefined, onDecodedSeconds: () => undefined, onUndecodable: (r) => refused.push(r) })).toBeUndefined();
    expect(refused[0]).toMatch(/^DATA-0000: .*encoding=alaw/);
  });
});

describe('PacingGate with channels', () => {
  it('the channels pass in step: the same audio time of each, within the budget, the rest on release', () => {
    const options = { ...resolveOptions({}), maxRealtimeFactor: 1, burstAllowanceMs: 1000 };
    const start = performance.now();
    const fed: Buffer[][] = [];
    const gate = new PacingGate(options, () => start, (p) => fed.push(p));
    const seconds = (fill: number) => Buffer.alloc(3 * 32_000, fill);
    gate.push([seconds(1), seconds(2)]);
    const now = (c: number) => fed.reduce((n, p) => n + p[c]!.length, 0);
    // About the 1 s burst at once (plus what elapsed since `start`), never all 3 s; both channels alike.
    expect(now(0)).toBeGreaterThanOrEqual(32_000);
    expect(now(0)).toBeLessThan(3 * 32_000);
    expect(now(1)).toBe(now(0));
    gate.release();
    expect([now(0), now(1)]).toEqual([96_000, 96_000]);
    expect(new Set(Buffer.concat(fed.map((p) => p[1]!)))).toEqual(new Set([2]));
    gate.stop();
  });
});

describe('LiveOutput of one channel of several', () => {
  it('Results carry channel_index [c, N]; SpeechStarted and UtteranceEnd carry channel [c, N]', () => {
    const sent: Array<Record<string, unknown>> = [];
    const fed = { s: 0 };
    const out = new LiveOutput({
      q: new URLSearchParams('interim_results=true&vad_events=true&utterance_end_ms=1000'),
      model: 'nova-3',
      requestId: 'r-1',
      send: (m) => sent.push(m),
      fedSeconds: () => fed.s,
      channel: [1, 2],
    });
    const settle = out.boundary(1.5, 'pause');
    out.onPartial('hello', 0.6);
    out.onFinal({ start: 0.2, end: 1.0, words: [{ word: 'hello', start: 0.2, end: 1.0, confidence: 0.9 }] });
    settle();
    fed.s = 2.5;
    out.onAudio(Buffer.alloc(32_000), 2.5);
    const types = sent.map((m) => [m.type, m.channel_index ?? m.channel]);
    expect(types).toContainEqual(['SpeechStarted', [1, 2]]);
    expect(types).toContainEqual(['Results', [1, 2]]);
    expect(types).toContainEqual(['UtteranceEnd', [1, 2]]);
    expect(sent.filter((m) => m.type === 'Results').every((m) => JSON.stringify(m.channel_index) === '[1,2]')).toBe(true);
  });
});
