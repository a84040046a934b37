import { execFileSync } from 'node:child_process';
import { createReadStream } from 'node:fs';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { DecodeError, EmptyDecodeError } from '@scribe-fleet/core';
import { decodeToPcm, needsSpooling } from '@scribe-fleet/core/adapters/ffmpeg-decoder';
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
    const before = process.memoryUsage().rss;
    let peak = before;
    let n = 0;
    for await (const c of decodeToPcm(createReadStream(long))) {
      n += c.length;
      peak = Math.max(peak, process.memoryUsage().rss);
    }
    expect(n).toBe(600 * 32000);
    // 19.2 MB of PCM went through; the process grew by far less than that.
    expect(peak - before).toBeLessThan(15 * 1024 * 1024);
  });
});
