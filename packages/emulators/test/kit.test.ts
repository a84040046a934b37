import { Endpointer, MIN_PAUSE_MS, RecogniserPool } from '../src/kit';
import { quiet, speech } from './tone';

describe('Endpointer', () => {
  it('a pause of at least pauseMs after speech is a pause endpoint at the end of the pause', () => {
    const e = new Endpointer({ pauseMs: 300 });
    expect(e.push(Buffer.concat([speech(1000), quiet(290)]))).toEqual([]);
    expect(e.push(quiet(20))).toEqual([{ kind: 'pause', atSeconds: 1.3 }]);
    // Silence goes on: no second endpoint until speech came again.
    expect(e.push(quiet(2000))).toEqual([]);
    expect(e.push(Buffer.concat([speech(500), quiet(300)]))).toEqual([{ kind: 'pause', atSeconds: 4.11 }]);
  });

  it('continuous speech is cut at the next word gap after maxSegmentMs, or at 1.5x anyway', () => {
    const e = new Endpointer({ pauseMs: 500, maxSegmentMs: 3000 });
    // Words of 400 ms with 80 ms gaps: no pause of 500 ms, ever.
    const words: Buffer[] = [];
    for (let i = 0; i < 20; i++) words.push(speech(400), quiet(80));
    const got = e.push(Buffer.concat(words));
    expect(got.length).toBeGreaterThanOrEqual(2);
    expect(got.every((x) => x.kind === 'max')).toBe(true);
    // Each one ends a segment of 3.0-3.5 s, in a gap.
    expect(got[0]!.atSeconds).toBeGreaterThanOrEqual(3.0);
    expect(got[0]!.atSeconds).toBeLessThan(3.6);
    // One long word with no gap at all is cut at 1.5 x maxSegmentMs.
    const f = new Endpointer({ pauseMs: 500, maxSegmentMs: 2000 });
    expect(f.push(speech(3500))).toEqual([{ kind: 'max', atSeconds: 3 }]);
  });

  it('pauses shorter than MIN_PAUSE_MS are not endpoints, whatever pauseMs says; frames split across pushes count once', () => {
    const e = new Endpointer({ pauseMs: 10 });
    expect(e.push(Buffer.concat([speech(500), quiet(MIN_PAUSE_MS - 20), speech(500)]))).toEqual([]);
    const all = Buffer.concat([quiet(MIN_PAUSE_MS)]);
    // Feed the pause in odd-sized pieces.
    const got = [];
    for (let off = 0; off < all.length; off += 333) got.push(...e.push(all.subarray(off, off + 333)));
    expect(got).toEqual([{ kind: 'pause', atSeconds: (1000 + MIN_PAUSE_MS * 2 - 20) / 1000 }]);
  });
});

describe('RecogniserPool', () => {
  it('tryAcquire refuses at capacity; a release makes room; releases are idempotent', () => {
    const p = new RecogniserPool(2);
    const a = p.tryAcquire()!;
    const b = p.tryAcquire()!;
    expect(p.tryAcquire()).toBeNull();
    expect(p.refused).toBe(1);
    a();
    a();
    expect(p.inUse).toBe(1);
    expect(p.tryAcquire()).not.toBeNull();
    b();
    expect(p.maxInUse).toBe(2);
  });

  it('acquire queues in FIFO order; an aborted waiter leaves the queue', async () => {
    const p = new RecogniserPool(1);
    const first = await p.acquire();
    const order: string[] = [];
    const ac = new AbortController();
    const w1 = p.acquire().then((r) => (order.push('w1'), r));
    const w2 = p.acquire(ac.signal).catch((e: Error) => (order.push(`w2 ${e.message}`), undefined));
    const w3 = p.acquire().then((r) => (order.push('w3'), r));
    ac.abort(new Error('gone'));
    await w2;
    expect(p.queued).toBe(2);
    first();
    (await w1)();
    (await w3)();
    expect(order).toEqual(['w2 gone', 'w1', 'w3']);
    expect(p.inUse).toBe(0);
  });

  it('refuses a capacity below 1', () => {
    expect(() => new RecogniserPool(0)).toThrow(RangeError);
  });
});
