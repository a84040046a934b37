import { chunkBytesFor, deadlineMs, pacedSend, pcmByteRate, rechunk, VirtualClock, PCM_BYTES_PER_SECOND } from '../src';

async function* chunksOf(total: number, size: number) {
  for (let sent = 0; sent < total; sent += size) yield Buffer.alloc(Math.min(size, total - sent));
}

describe('pacing schedule', () => {
  it('100 ms chunks are 3200 bytes of 16 kHz s16le', () => {
    expect(chunkBytesFor(100)).toBe(3200);
    expect(chunkBytesFor(50)).toBe(1600);
  });

  it('interleaved channels: chunks of every channel at N × 32 000 bytes a second, in whole frames', () => {
    expect(pcmByteRate(2)).toBe(64_000);
    expect(chunkBytesFor(100, pcmByteRate(2), 4)).toBe(6400);
    expect(chunkBytesFor(100, pcmByteRate(3), 6)).toBe(9600);
    // 10.1 ms of 3 channels is 969.6 bytes: 966, not 970 (which would split a frame).
    expect(chunkBytesFor(10.1, pcmByteRate(3), 6)).toBe(966);
    expect(deadlineMs(0, 64_000, pcmByteRate(2))).toBe(1000);
  });

  it('deadlines are absolute: start + bytesBefore / byteRate', () => {
    expect(deadlineMs(1000, 0)).toBe(1000);
    expect(deadlineMs(1000, 3200)).toBe(1100);
    expect(deadlineMs(1000, 3200 * 10_000)).toBe(1000 + 1_000_000);
  });

  it('no drift after 10 000 chunks even when every wake-up is late', async () => {
    // Every sleep overshoots by 0-7 ms (a busy event loop). With absolute deadlines the error never accumulates.
    let seed = 42;
    const rand = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    const clock = new VirtualClock(5_000, () => rand() * 7);
    const sendTimes: number[] = [];
    const report = await pacedSend({
      chunks: chunksOf(3200 * 10_000, 3200),
      clock,
      send: () => void sendTimes.push(clock.now()),
    });
    expect(report.chunks).toBe(10_000);
    expect(report.audioSeconds).toBe(1000);
    expect(report.earlySends).toBe(0);
    // The last chunk is due at 999.9 s after start; it went out at most one wake-up's lateness later.
    expect(report.driftAtEndMs).toBeGreaterThanOrEqual(0);
    expect(report.driftAtEndMs).toBeLessThan(7);
    expect(report.latenessMaxMs).toBeLessThan(7);
    expect(sendTimes[9_999]! - 5_000).toBeGreaterThanOrEqual(999_900);
    expect(sendTimes[9_999]! - 5_000).toBeLessThan(999_907);
    for (let i = 0; i < sendTimes.length; i++) expect(sendTimes[i]!).toBeGreaterThanOrEqual(5_000 + i * 100);
  });

  it('a naive sleep(chunk) per chunk would have drifted (control)', async () => {
    const clock = new VirtualClock(0, () => 3);
    for (let i = 0; i < 1000; i++) await clock.sleepUntil(clock.now() + 100);
    expect(clock.now()).toBe(103_000); // 3 s of drift after 100 s of audio
  });

  it('never sends early when the source stalls, and catches up without bursting ahead', async () => {
    const clock = new VirtualClock(0);
    async function* stalling() {
      for (let i = 0; i < 50; i++) {
        if (i === 10) clock.advance(2_000); // the source stalls 2 s at chunk 10
        yield Buffer.alloc(3200);
      }
    }
    const times: number[] = [];
    const report = await pacedSend({ chunks: stalling(), clock, send: () => void times.push(clock.now()) });
    expect(report.earlySends).toBe(0);
    for (let i = 0; i < times.length; i++) expect(times[i]!).toBeGreaterThanOrEqual(i * 100);
    expect(report.bytes).toBe(50 * 3200);
  });

  it('at speed 1 one hour of audio takes one hour of (virtual) time', async () => {
    const clock = new VirtualClock(0);
    const report = await pacedSend({ chunks: chunksOf(PCM_BYTES_PER_SECOND * 3600, 3200), clock, send: () => {} });
    expect(report.elapsedMs).toBe(3_600_000 - 100);
    expect(report.driftAtEndMs).toBe(0);
  });
});

describe('rechunk', () => {
  it('re-cuts arbitrary pieces into exact chunks', async () => {
    async function* pieces() {
      yield Buffer.alloc(1000, 1);
      yield Buffer.alloc(5000, 2);
      yield Buffer.alloc(1, 3);
      yield Buffer.alloc(599, 4);
    }
    const out: number[] = [];
    for await (const c of rechunk(pieces(), 3200)) out.push(c.length);
    expect(out).toEqual([3200, 3200, 200]);
  });
});
