import { execFileSync } from 'node:child_process';
import { createReadStream } from 'node:fs';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { DecodeError, EmptyDecodeError, TruncatedInputError } from '@scribe-fleet/core';
import { storageAudioInput } from '@scribe-fleet/core/adapters/s3/audio-input';
import { decodeToPcm, needsSpooling, type DecodeOptions, type DecodeReport, type DecodeWarning } from '@scribe-fleet/core/adapters/s3/ffmpeg-decoder';
import { testStorage, uniqueBucket } from '../helpers/env';
import { sampleFiles } from '../helpers/fleet';

async function decodedBytes(input: Readable): Promise<number> {
  let n = 0;
  for await (const c of decodeToPcm(input)) n += c.length;
  return n;
}

describe('ffmpeg decoder', () => {
  const dir = mkdtempSync(join(tmpdir(), 'scribe-dec-'));

  it('decodes every container to 16 kHz mono s16le of the same duration', async () => {
    const samples = await sampleFiles();
    for (const s of samples) {
      const bytes = await decodedBytes(createReadStream(s.path));
      expect(bytes % 2).toBe(0);
      // ~9 s of audio → ~290 kB; compression and resampling change it by a few ms at most.
      expect(bytes / 32000).toBeGreaterThan(7);
      expect(bytes / 32000).toBeLessThan(12);
    }
  });

  it('spools an m4a whose index sits at the end: piped it would decode to nothing', async () => {
    const m4a = (await sampleFiles()).find((s) => s.format === 'm4a')!;
    const head = Buffer.alloc(16);
    const fd = require('node:fs').openSync(m4a.path, 'r');
    require('node:fs').readSync(fd, head, 0, 16, 0);
    expect(needsSpooling(head)).toBe(true);
    // Prove the premise: forced through a pipe, ffmpeg yields no samples, which we reject as EMPTY_DECODE.
    await expect(async () => {
      for await (const _ of decodeToPcm(createReadStream(m4a.path), { spool: false })) void _;
    }).rejects.toBeInstanceOf(EmptyDecodeError);
    // Spooled (the default for ISO-BMFF input) it decodes fully.
    expect(await decodedBytes(createReadStream(m4a.path))).toBeGreaterThan(7 * 32000);
  });

  it('rejects an empty input as EMPTY_DECODE, never as an empty transcript', async () => {
    await expect(decodedBytes(Readable.from([]))).rejects.toBeInstanceOf(EmptyDecodeError);
    // A valid WAV header with no samples: ffmpeg exits 0 having produced 0 bytes.
    const wav = join(dir, 'nothing.wav');
    execFileSync('ffmpeg', ['-nostdin', '-loglevel', 'error', '-y', '-f', 'lavfi', '-i', 'anullsrc=r=16000:cl=mono', '-t', '0', wav]);
    await expect(decodedBytes(createReadStream(wav))).rejects.toBeInstanceOf(EmptyDecodeError);
  });

  it('rejects garbage as DECODE_FAILED with ffmpeg\'s reason', async () => {
    const junk = join(dir, 'junk.wav');
    writeFileSync(junk, 'definitely not audio\n'.repeat(100));
    const err = await decodedBytes(createReadStream(junk)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DecodeError);
    expect((err as DecodeError).code).toBe('DECODE_FAILED');
    expect((err as Error).message).toMatch(/ffmpeg/);
  });

  it('streams: memory stays flat while decoding 10 minutes of audio', async () => {
    const long = join(dir, 'long.flac');
    execFileSync('ffmpeg', ['-nostdin', '-loglevel', 'error', '-y', '-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=16000', '-t', '600', '-ac', '1', long]);
    // Warm up first: a cold jest worker's RSS grows by ~16-20 MB during its first long decode whatever
    // the decoder does (V8 growing its young generation, JIT, stream plumbing), which would swamp what
    // is measured here. The second decode of the same file shows what decoding itself holds.
    for await (const _ of decodeToPcm(createReadStream(long))) void _;
    const before = process.memoryUsage().rss;
    let peak = before;
    let n = 0;
    for await (const c of decodeToPcm(createReadStream(long))) {
      n += c.length;
      peak = Math.max(peak, process.memoryUsage().rss);
    }
    expect(n).toBe(600 * 32000);
    // 19.2 MB of PCM went through; the (warmed-up) process grew by far less than that (~1-2 MB here).
    expect(peak - before).toBeLessThan(8 * 1024 * 1024);
  });
});

describe('truncation check', () => {
  const dir = mkdtempSync(join(tmpdir(), 'scribe-trunc-'));
  const SECONDS = 8;
  const ff = (...args: string[]) => execFileSync('ffmpeg', ['-nostdin', '-loglevel', 'error', '-y', ...args]);
  /** 8 s of a tone, encoded by ffmpeg with `args`. */
  const make = (name: string, args: string[]): string => {
    const path = join(dir, name);
    ff('-f', 'lavfi', '-i', `sine=frequency=330:sample_rate=16000:duration=${SECONDS}`, '-ac', '1', ...args, path);
    return path;
  };
  /** The first `fraction` of a file, as a new file. */
  const cutFile = (path: string, fraction: number): string => {
    const bytes = require('node:fs').readFileSync(path) as Buffer;
    const out = `${path}.cut${Math.round(fraction * 100)}`;
    writeFileSync(out, bytes.subarray(0, Math.floor(bytes.length * fraction)));
    return out;
  };

  /** Decode a file piped (or by path); PCM bytes before the end or error, the report, warnings, the error. */
  async function decode(path: string, opts: DecodeOptions & { byPath?: boolean } = {}) {
    let bytes = 0;
    let report: DecodeReport | undefined;
    const warnings: DecodeWarning[] = [];
    const input = opts.byPath ? { path } : createReadStream(path);
    try {
      for await (const c of decodeToPcm(input, { ...opts, onReport: (r) => (report = r), onWarning: (w) => warnings.push(w) })) bytes += c.length;
      return { seconds: bytes / 32000, report, warnings, error: undefined };
    } catch (error) {
      return { seconds: bytes / 32000, report, warnings, error: error as Error };
    }
  }

  // A WAV whose header says 10.6 s over 1.87 s of samples (an upload cut off after its header was written).
  const truncatedWav = () => {
    const full = join(dir, 'ten.wav');
    ff('-f', 'lavfi', '-i', 'sine=frequency=300:sample_rate=16000:duration=10.6', '-ac', '1', '-c:a', 'pcm_s16le', full);
    const bytes = require('node:fs').readFileSync(full) as Buffer;
    const dataAt = bytes.indexOf('data') + 8;
    const out = join(dir, 'truncated.wav');
    writeFileSync(out, bytes.subarray(0, dataAt + 1.87 * 32000));
    return out;
  };

  it('a WAV cut after its header: all its PCM comes out, then TRUNCATED_INPUT with both durations', async () => {
    const path = truncatedWav();
    for (const byPath of [false, true]) {
      const r = await decode(path, { byPath });
      expect(r.seconds).toBeCloseTo(1.87, 2);
      expect(r.error).toBeInstanceOf(TruncatedInputError);
      expect((r.error as TruncatedInputError).code).toBe('TRUNCATED_INPUT');
      expect((r.error as TruncatedInputError).kind).toBe('unrecoverable');
      expect(r.error!.message).toMatch(/1\.87 s.*10\.60 s/);
      expect(r.report).toMatchObject({ declared: { seconds: 10.6, source: 'wav-header' }, truncated: true });
    }
  });

  it('allowTruncated: the same WAV ends normally with a TRUNCATED_INPUT warning; a loose tolerance lets it pass silently', async () => {
    const path = truncatedWav();
    const allowed = await decode(path, { allowTruncated: true });
    expect(allowed.error).toBeUndefined();
    expect(allowed.seconds).toBeCloseTo(1.87, 2);
    expect(allowed.warnings).toEqual([expect.objectContaining({ code: 'TRUNCATED_INPUT', declaredSeconds: 10.6 })]);
    const loose = await decode(path, { truncationTolerance: 0.9 });
    expect(loose.error).toBeUndefined();
    expect(loose.warnings).toEqual([]);
  });

  it('complete files of every container: declared ≈ decoded, nothing flagged', async () => {
    const cases: Array<[string, string[], string | undefined]> = [
      ['full.wav', ['-c:a', 'pcm_s16le'], 'wav-header'],
      ['full.mp3', ['-c:a', 'libmp3lame', '-b:a', '64k'], 'mp3-xing'],
      ['full.flac', ['-c:a', 'flac'], 'ffmpeg'],
      ['full.m4a', ['-c:a', 'aac', '-b:a', '64k'], 'ffprobe'],
      ['full.ogg', ['-c:a', 'libopus'], undefined], // piped Ogg declares nothing
    ];
    for (const [name, args, source] of cases) {
      const r = await decode(make(name, args));
      expect({ name, error: r.error?.message, truncated: r.report?.truncated }).toEqual({ name, error: undefined, truncated: false });
      expect({ name, source: r.report?.declared?.seconds === undefined ? undefined : r.report.declared.source }).toEqual({ name, source });
      if (source) expect(Math.abs(r.report!.declared!.seconds! - r.seconds)).toBeLessThan(0.2);
    }
  });

  it('cut files: TRUNCATED_INPUT where a duration is declared (WAV, Xing MP3, FLAC, faststart m4a), not where only an estimate exists', async () => {
    const cases: Array<[string, string[], boolean]> = [
      ['cut.wav', ['-c:a', 'pcm_s16le'], true],
      ['cut.mp3', ['-c:a', 'libmp3lame', '-b:a', '64k'], true],
      ['cut-noxing.mp3', ['-c:a', 'libmp3lame', '-b:a', '64k', '-write_xing', '0'], false],
      ['cut.flac', ['-c:a', 'flac'], true],
      ['cut-faststart.m4a', ['-c:a', 'aac', '-b:a', '64k', '-movflags', '+faststart'], true],
      ['cut.ogg', ['-c:a', 'libvorbis'], false],
    ];
    for (const [name, args, truncated] of cases) {
      const path = cutFile(make(name, args), 0.5);
      for (const byPath of [false, true]) {
        const r = await decode(path, { byPath });
        expect({ name, byPath, code: (r.error as TruncatedInputError | undefined)?.code }).toEqual({ name, byPath, code: truncated ? 'TRUNCATED_INPUT' : undefined });
        expect(r.seconds).toBeGreaterThan(1);
      }
    }
  });

  it('a video longer than its audio track is not truncated audio; a streamed WAV (size 0xFFFFFFFF) is not checked', async () => {
    const mp4 = join(dir, 'video.mp4');
    ff('-f', 'lavfi', '-i', 'testsrc=size=64x48:rate=5:duration=6', '-f', 'lavfi', '-i', 'sine=sample_rate=16000:duration=2', '-c:v', 'libx264', '-pix_fmt', 'yuv420p', '-c:a', 'aac', mp4);
    const v = await decode(mp4);
    expect(v.error).toBeUndefined();
    expect(v.report?.declared).toMatchObject({ source: 'ffprobe' });
    expect(v.report!.declared!.seconds!).toBeLessThan(2.2);
    // ffmpeg writing WAV to a pipe cannot go back to fill in the sizes.
    const streamed = join(dir, 'streamed.wav');
    writeFileSync(streamed, execFileSync('ffmpeg', ['-nostdin', '-loglevel', 'error', '-f', 'lavfi', '-i', 'sine=sample_rate=16000:duration=3', '-f', 'wav', 'pipe:1']));
    const w = await decode(streamed);
    expect(w.error).toBeUndefined();
    expect(w.seconds).toBeCloseTo(3, 1);
    expect(w.report?.declared).toMatchObject({ seconds: undefined, source: 'wav-header' });
  });

  it('storageAudioInput: options from config; warnings readable after the PCM ended', async () => {
    const storage = testStorage();
    const bucket = uniqueBucket('trunc');
    try {
      await storage.ensureBucket(bucket);
      const bytes = require('node:fs').readFileSync(truncatedWav()) as Buffer;
      const { etag } = await storage.put(bucket, 'in/cut.wav', bytes);
      const source = { bucket, key: 'in/cut.wav', etag, size: bytes.length };
      const drain = async (audio: ReturnType<typeof storageAudioInput>) => {
        let n = 0;
        await audio.prepare();
        for await (const c of audio.pcm()) n += c.length;
        return n;
      };
      // Defaults (TRUNCATION_TOLERANCE 0.02, ALLOW_TRUNCATED false): the stream ends with the error.
      const strict = storageAudioInput(storage, source);
      await expect(drain(strict)).rejects.toBeInstanceOf(TruncatedInputError);
      expect(strict.warnings).toEqual([]);
      // ALLOW_TRUNCATED=true: completes, one warning however often the PCM is read.
      const lenient = storageAudioInput(storage, source, { allowTruncated: true, truncationTolerance: 0.02 });
      expect(await drain(lenient)).toBe(1.87 * 32000);
      expect(await drain(lenient)).toBe(1.87 * 32000);
      expect(lenient.warnings).toEqual(['TRUNCATED_INPUT']);
      await lenient.dispose();
      // A spooled input (m4a) is checked too (ffprobe on the spool file).
      const m4a = require('node:fs').readFileSync(cutFile(make('spooled.m4a', ['-c:a', 'aac', '-movflags', '+faststart']), 0.5)) as Buffer;
      const put = await storage.put(bucket, 'in/cut.m4a', m4a);
      const spooled = storageAudioInput(storage, { bucket, key: 'in/cut.m4a', etag: put.etag, size: m4a.length }, { allowTruncated: true });
      expect(await drain(spooled)).toBeGreaterThan(32000);
      expect(spooled.warnings).toEqual(['TRUNCATED_INPUT']);
      await spooled.dispose();
    } finally {
      storage.destroy();
    }
  });
});
