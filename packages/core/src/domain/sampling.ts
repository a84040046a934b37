/**
 * A prefix's total audio from a sample of its files: which files to measure, and the estimate with
 * its 95 % interval. Pure (the caller lists the keys and measures the sampled files).
 *
 * Selection: a simple random sample without replacement of n of the N keys, by "bottom-k": every key
 * gets a rank from a seeded hash of (seed, key), and the n keys of smallest rank are the sample. The
 * n smallest of N exchangeable random ranks are a uniformly random n-subset, so this is a simple
 * random sample; it is one pass over a listing of any length in O(n) memory, independent of the
 * order the keys come in, and reproducible: the same seed over the same keys gives the same sample.
 */

// Bound once: a global looked up per call is slow where globals are intercepted (jest's vm context
// measured ~150x slower on this loop).
const imul = Math.imul;

/** cyrb53 (public domain, bryc): a fast 53-bit string hash with good avalanche, seeded. */
function hash53(text: string, seed: number): number {
  let h1 = 0xdeadbeef ^ seed;
  let h2 = 0x41c6ce57 ^ seed;
  for (let i = 0; i < text.length; i++) {
    const ch = text.charCodeAt(i);
    h1 = imul(h1 ^ ch, 2654435761);
    h2 = imul(h2 ^ ch, 1597334677);
  }
  h1 = imul(h1 ^ (h1 >>> 16), 2246822507) ^ imul(h2 ^ (h2 >>> 13), 3266489909);
  h2 = imul(h2 ^ (h2 >>> 16), 2246822507) ^ imul(h1 ^ (h1 >>> 13), 3266489909);
  return 4294967296 * (2097151 & h2) + (h1 >>> 0);
}

/** The rank of `key` in the sample drawn with `seed` (smaller is sampled first). */
export function sampleRank(key: string, seed: string | number): number {
  return hash53(key, seedNumber(seed));
}

const seedNumber = (seed: string | number) => (typeof seed === 'number' ? seed >>> 0 : hash53(seed, 0x9e3779b9) >>> 0);

interface Ranked<T> {
  rank: number;
  key: string;
  item: T;
}

const before = (a: Ranked<unknown>, b: Ranked<unknown>) => a.rank < b.rank || (a.rank === b.rank && a.key < b.key);

/**
 * Streams keys through and keeps the sample: `offer` every key (with whatever the caller wants back,
 * e.g. its ObjectInfo), then `sample()`. A max-heap of the n smallest ranks so far.
 */
export class KeySampler<T = string> {
  private readonly heap: Ranked<T>[] = [];
  private count = 0;
  private readonly seedHash: number;

  constructor(
    readonly size: number,
    readonly seed: string | number,
  ) {
    if (!Number.isInteger(size) || size < 1) throw new RangeError(`sample size must be a positive integer, got ${size}`);
    this.seedHash = seedNumber(seed);
  }

  /** Keys offered so far: the population size N once the listing is done. */
  get seen(): number {
    return this.count;
  }

  offer(key: string, item: T): void {
    this.count += 1;
    const r: Ranked<T> = { rank: hash53(key, this.seedHash), key, item };
    const h = this.heap;
    if (h.length < this.size) {
      h.push(r);
      for (let i = h.length - 1; i > 0; ) {
        const p = (i - 1) >> 1;
        if (!before(h[p]!, h[i]!)) break;
        [h[p], h[i]] = [h[i]!, h[p]!];
        i = p;
      }
      return;
    }
    if (!before(r, h[0]!)) return;
    h[0] = r;
    for (let i = 0; ; ) {
      const l = 2 * i + 1;
      let top = i;
      if (l < h.length && before(h[top]!, h[l]!)) top = l;
      if (l + 1 < h.length && before(h[top]!, h[l + 1]!)) top = l + 1;
      if (top === i) break;
      [h[top], h[i]] = [h[i]!, h[top]!];
      i = top;
    }
  }

  /** The sampled items in rank order (min(n, N) of them). */
  sample(): T[] {
    return [...this.heap].sort((a, b) => (before(a, b) ? -1 : 1)).map((r) => r.item);
  }
}

/** The `n` keys of a simple random sample of `keys`, drawn with `seed` (see KeySampler). */
export function sampleKeys(keys: Iterable<string>, n: number, seed: string | number): string[] {
  const sampler = new KeySampler<string>(n, seed);
  for (const k of keys) sampler.offer(k, k);
  return sampler.sample();
}

/** t quantiles q(0.975) for 1…30 degrees of freedom. */
const T975 = [12.7062, 4.3027, 3.1824, 2.7764, 2.5706, 2.4469, 2.3646, 2.306, 2.2622, 2.2281, 2.201, 2.1788, 2.1604, 2.1448, 2.1314, 2.1199, 2.1098, 2.1009, 2.093, 2.086, 2.0796, 2.0739, 2.0687, 2.0639, 2.0595, 2.0555, 2.0518, 2.0484, 2.0452, 2.0423];

/**
 * Student's t 0.975 quantile: the table up to 30 degrees of freedom, then the Cornish-Fisher
 * expansion around z = 1.959964 (error < 1e-4 from 30 on).
 */
export function t975(df: number): number {
  if (!(df >= 1)) return Infinity;
  if (df <= 30) return T975[Math.floor(df) - 1]!;
  const z = 1.959963985;
  const z3 = z ** 3;
  const z5 = z ** 5;
  const z7 = z ** 7;
  const z9 = z ** 9;
  return (
    z +
    (z3 + z) / (4 * df) +
    (5 * z5 + 16 * z3 + 3 * z) / (96 * df ** 2) +
    (3 * z7 + 19 * z5 + 17 * z3 - 15 * z) / (384 * df ** 3) +
    (79 * z9 + 776 * z7 + 1482 * z5 - 1920 * z3 - 945 * z) / (92160 * df ** 4)
  );
}

export interface TotalEstimate {
  /** N × mean of the sample. */
  total: number;
  /** The 95 % interval. */
  low: number;
  high: number;
  /** Sample size n and population size N. */
  n: number;
  population: number;
  mean: number;
  /** Sample standard deviation (n − 1 denominator). */
  sd: number;
  /** Standard error of the total. */
  standardError: number;
}

/**
 * The population total of N values estimated from a simple random sample of n of them, with its
 * 95 % confidence interval:
 *
 *   ȳ = Σ yᵢ / n,   s² = Σ (yᵢ − ȳ)² / (n − 1),   T̂ = N ȳ
 *   SE(T̂) = N · √( (1 − n/N) · s² / n )                   (finite population correction 1 − n/N)
 *   T̂ ± t₀.₉₇₅,ₙ₋₁ · SE(T̂)
 *
 * The low end is raised to Σ yᵢ when below it: durations are never negative, so the total is at least
 * what the sample holds. n = N gives the exact total (SE 0); n = 1 < N an unbounded high end.
 * The interval's ~95 % coverage rests on the sample mean being near-normal: with very skewed durations
 * (a few hour-long files among short ones) small samples cover less; Cochran's rule asks for
 * n > 25 · G₁² (G₁ the population's skewness).
 */
export function estimateTotal(values: readonly number[], population: number): TotalEstimate {
  const n = values.length;
  if (n === 0) throw new RangeError('cannot estimate a total from an empty sample');
  if (n > population) throw new RangeError(`sample of ${n} from a population of ${population}`);
  const sum = values.reduce((a, v) => a + v, 0);
  const mean = sum / n;
  const ss = values.reduce((a, v) => a + (v - mean) ** 2, 0);
  const sd = n > 1 ? Math.sqrt(ss / (n - 1)) : 0;
  const total = population * mean;
  const fpc = 1 - n / population;
  if (fpc === 0) return { total: sum, low: sum, high: sum, n, population, mean, sd, standardError: 0 };
  if (n === 1) return { total, low: sum, high: Infinity, n, population, mean, sd, standardError: Infinity };
  const standardError = population * Math.sqrt((fpc * sd * sd) / n);
  const half = t975(n - 1) * standardError;
  return { total, low: Math.max(sum, total - half), high: total + half, n, population, mean, sd, standardError };
}

/** A total estimated with the files' sizes as well (see estimateTotalBySize). */
export interface SizedTotalEstimate extends TotalEstimate {
  /** `size`: the regression on size was used; `mean`: N × the sample mean (it had the smaller standard error). */
  estimator: 'size' | 'mean';
}

/**
 * The population total of N durations from a simple random sample of n of them, using what the listing
 * gives for free: every file's size. Duration is nearly linear in size for a given container and
 * bitrate, so the regression estimator (Cochran, Sampling Techniques, §7.1)
 *
 *   b = Σ (xᵢ − x̄)(yᵢ − ȳ) / Σ (xᵢ − x̄)²,   T̂ = N · (ȳ + b (X̄ − x̄))      (X̄ the mean size of all N)
 *   eᵢ = yᵢ − ȳ − b (xᵢ − x̄),   s²ₑ = Σ eᵢ² / (n − 2),   SE(T̂) = N · √( (1 − n/N) · s²ₑ / n )
 *   T̂ ± t₀.₉₇₅,ₙ₋₂ · SE(T̂)
 *
 * is far tighter than N × mean on skewed archives, where a few long files dominate: the sizes say which
 * files are long, so the sample need not catch them. When the sizes say little (mixed codecs, sizes
 * all equal), the regression's residuals are large and N × mean (estimateTotal) is kept instead: the one
 * with the smaller standard error is returned, with which it was.
 */
export function estimateTotalBySize(values: readonly number[], sizes: readonly number[], population: number, populationBytes: number): SizedTotalEstimate {
  const plain: SizedTotalEstimate = { ...estimateTotal(values, population), estimator: 'mean' };
  const n = values.length;
  if (sizes.length !== n) throw new RangeError(`${n} values but ${sizes.length} sizes`);
  if (n < 3 || plain.standardError === 0) return plain;
  const xbar = sizes.reduce((a, x) => a + x, 0) / n;
  const ybar = plain.mean;
  let sxx = 0;
  let sxy = 0;
  for (let i = 0; i < n; i++) {
    sxx += (sizes[i]! - xbar) ** 2;
    sxy += (sizes[i]! - xbar) * (values[i]! - ybar);
  }
  if (sxx === 0) return plain;
  const b = sxy / sxx;
  let see = 0;
  for (let i = 0; i < n; i++) see += (values[i]! - ybar - b * (sizes[i]! - xbar)) ** 2;
  const se2 = see / (n - 2);
  const fpc = 1 - n / population;
  const total = population * (ybar + b * (populationBytes / population - xbar));
  const standardError = population * Math.sqrt((fpc * se2) / n);
  if (!(standardError < plain.standardError)) return plain;
  const half = t975(n - 2) * standardError;
  const sum = values.reduce((a, v) => a + v, 0);
  const est = Math.max(sum, total);
  return { ...plain, total: est, low: Math.max(sum, total - half), high: Math.max(sum, total + half), standardError, estimator: 'size' };
}
