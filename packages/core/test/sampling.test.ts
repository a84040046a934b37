/**
 * domain/sampling.ts: the seeded sample and the estimate of a prefix's total audio. The coverage
 * test is a simulation with fixed seeds, so it is deterministic: the same numbers on every run.
 */
import { estimateTotal, estimateTotalBySize, KeySampler, sampleKeys, t975 } from '../src/domain/sampling';

/** mulberry32: a small seeded PRNG for the synthetic populations. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const keyOf = (i: number) => `archive/2019/rec-${String(i).padStart(6, '0')}.wav`;

/**
 * An archive's durations: 80 % voicemails and memos of 20–120 s, 20 % interviews of 10–60 min.
 * Skewed (G₁ ≈ 2.1): the total is mostly in the few long files.
 */
function archive(n: number, seed: number): Map<string, number> {
  const r = prng(seed);
  return new Map(Array.from({ length: n }, (_, i) => [keyOf(i), r() < 0.8 ? 20 + 100 * r() : 600 + 3000 * r()]));
}

describe('sample selection', () => {
  const keys = Array.from({ length: 2000 }, (_, i) => keyOf(i));

  test('reproducible: the same seed gives the same keys, whatever order they are listed in', () => {
    const a = sampleKeys(keys, 50, 'plan-1');
    expect(a).toHaveLength(50);
    expect(new Set(a).size).toBe(50);
    expect(sampleKeys([...keys].reverse(), 50, 'plan-1')).toEqual(a);
    expect(sampleKeys(keys, 50, 'plan-2')).not.toEqual(a);
    expect(sampleKeys(keys, 50, 7)).toEqual(sampleKeys(keys, 50, 7));
    // A larger sample with the same seed contains the smaller one (the ranks are the same).
    expect(sampleKeys(keys, 80, 'plan-1')).toEqual(expect.arrayContaining(a));
  });

  test('a sample at least as large as the population is the population', () => {
    expect(sampleKeys(keys.slice(0, 30), 100, 1).sort()).toEqual(keys.slice(0, 30));
    const s = new KeySampler<number>(5, 'x');
    keys.slice(0, 12).forEach((k, i) => s.offer(k, i));
    expect(s.seen).toBe(12);
    expect(s.sample()).toHaveLength(5);
    expect(() => new KeySampler(0, 1)).toThrow(RangeError);
  });

  test('uniform: over 2 000 seeds every key is drawn about n/N of the time (chi-square)', () => {
    const counts = new Map(keys.map((k) => [k, 0]));
    const seeds = 2000;
    const n = 100;
    for (let seed = 0; seed < seeds; seed++) for (const k of sampleKeys(keys, n, seed)) counts.set(k, counts.get(k)! + 1);
    const p = n / keys.length;
    const expected = seeds * p; // 100 draws of each key; each count is Binomial(seeds, p)
    const chi2 = [...counts.values()].reduce((a, c) => a + (c - expected) ** 2 / (expected * (1 - p)), 0);
    // N − 1 = 1999 degrees of freedom (the counts sum to seeds × n): mean 1999, sd ≈ 63.
    expect(chi2).toBeGreaterThan(1999 - 4 * 63);
    expect(chi2).toBeLessThan(1999 + 4 * 63);
  });
});

describe('estimateTotal', () => {
  test('the formula on a small case', () => {
    const e = estimateTotal([10, 20, 30, 40], 100);
    expect(e.total).toBe(2500);
    expect(e.mean).toBe(25);
    expect(e.sd).toBeCloseTo(Math.sqrt(500 / 3), 10);
    expect(e.standardError).toBeCloseTo(100 * Math.sqrt((0.96 * (500 / 3)) / 4), 8);
    expect(e.high - e.total).toBeCloseTo(3.1824 * e.standardError, 6);
    expect(e.total - e.low).toBeCloseTo(3.1824 * e.standardError, 6);
  });

  test('the whole population: exact; one file of many: no upper bound; low never under the sample sum', () => {
    expect(estimateTotal([5, 6, 7], 3)).toMatchObject({ total: 18, low: 18, high: 18, standardError: 0 });
    expect(estimateTotal([60], 1000)).toMatchObject({ total: 60000, low: 60, high: Infinity });
    const e = estimateTotal([1, 1, 1, 1000], 5);
    expect(e.low).toBeGreaterThanOrEqual(1003);
    expect(() => estimateTotal([], 10)).toThrow(RangeError);
    expect(() => estimateTotal([1, 2], 1)).toThrow(RangeError);
  });

  test('t975: the table, then the expansion (within 1e-3 of published values)', () => {
    expect(t975(1)).toBeCloseTo(12.7062, 4);
    expect(t975(30)).toBeCloseTo(2.0423, 4);
    for (const [df, t] of [[31, 2.0395], [40, 2.0211], [60, 2.0003], [120, 1.9799], [1e6, 1.96]] as const) expect(Math.abs(t975(df) - t)).toBeLessThan(1e-3);
    expect(t975(0)).toBe(Infinity);
  });

  test('coverage: on a skewed 2 000-file archive, the 95 % interval holds the true total ≈ 95 % of the time', () => {
    const durations = archive(2000, 42);
    const truth = [...durations.values()].reduce((a, v) => a + v, 0);
    const keys = [...durations.keys()];
    const runs = 2000;
    for (const n of [100, 200]) {
      let covered = 0;
      let width = 0;
      for (let seed = 0; seed < runs; seed++) {
        const e = estimateTotal(sampleKeys(keys, n, seed).map((k) => durations.get(k)!), keys.length);
        if (e.low <= truth && truth <= e.high) covered += 1;
        width += (e.high - e.low) / truth / runs;
      }
      // Binomial sd over 2 000 runs at p = 0.95 is 0.005: ±0.015 is three of them.
      expect(covered / runs).toBeGreaterThan(0.935);
      expect(covered / runs).toBeLessThan(0.965);
      // Informative too: the mean width is 73 % (n = 100) and 50 % (n = 200) of the total on this skewed archive.
      expect(width).toBeLessThan(n === 100 ? 0.8 : 0.55);
    }
  });
});

describe('estimateTotalBySize (the sizes of every listed file)', () => {
  /**
   * A very skewed archive (G₁ ≈ 4: most files seconds long, 3 % of ten minutes) whose sizes follow
   * their durations as a codec's do: a fixed header plus a bitrate, with ±10 % per file.
   */
  function skewed(n: number, seed: number) {
    const r = prng(seed);
    const lengths = [1, 2, 3, 5, 8, 12, 20, 30, 45, 60, 90, 120, 180, 300, 600];
    return Array.from({ length: n }, (_, i) => {
      const d = lengths[Math.floor(r() ** 2 * lengths.length)]!;
      return { key: keyOf(i), seconds: d, size: Math.round(8000 + 177 * d * (0.9 + 0.2 * r())) };
    });
  }

  test('covers the truth ~95 % of the time with intervals far narrower than N × mean, on a very skewed archive', () => {
    let coveredSize = 0;
    let coveredMean = 0;
    let widthSize = 0;
    let widthMean = 0;
    const runs = 300;
    for (let run = 0; run < runs; run++) {
      const files = skewed(5000, 1000 + run);
      const truth = files.reduce((a, f) => a + f.seconds, 0);
      const bytes = files.reduce((a, f) => a + f.size, 0);
      const sampler = new KeySampler<(typeof files)[number]>(200, `run-${run}`);
      for (const f of files) sampler.offer(f.key, f);
      const picked = sampler.sample();
      const bySize = estimateTotalBySize(picked.map((f) => f.seconds), picked.map((f) => f.size), files.length, bytes);
      const byMean = estimateTotal(picked.map((f) => f.seconds), files.length);
      expect(bySize.estimator).toBe('size');
      if (bySize.low <= truth && truth <= bySize.high) coveredSize += 1;
      if (byMean.low <= truth && truth <= byMean.high) coveredMean += 1;
      widthSize += (bySize.high - bySize.low) / truth / runs;
      widthMean += (byMean.high - byMean.low) / truth / runs;
    }
    console.log(`[sampling] very skewed, n = 200 of 5 000: by size covered ${coveredSize}/${runs}, mean width ${(widthSize * 100).toFixed(1)} %; N × mean covered ${coveredMean}/${runs}, width ${(widthMean * 100).toFixed(1)} %`);
    expect(coveredSize / runs).toBeGreaterThanOrEqual(0.9);
    expect(widthSize).toBeLessThan(widthMean / 3);
  });

  test('sizes that say nothing (all equal, or unrelated to duration) keep N × mean', () => {
    const values = [10, 20, 30, 40, 600, 5, 7];
    expect(estimateTotalBySize(values, values.map(() => 1000), 100, 100_000).estimator).toBe('mean');
    const r = prng(3);
    const unrelated = Array.from({ length: 200 }, () => 1 + 600 * r());
    const sizes = Array.from({ length: 200 }, () => 1000 + 1_000_000 * r());
    const e = estimateTotalBySize(unrelated, sizes, 5000, 5000 * 500_000);
    expect(e.estimator).toBe('mean');
    expect(e).toMatchObject(estimateTotal(unrelated, 5000));
  });
});
