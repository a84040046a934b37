/**
 * Fixed-memory latency histogram: 0.1 ms buckets up to `maxMs`, then one overflow bucket whose
 * samples still update `max`. Quantiles are exact to 0.1 ms below `maxMs`.
 */
export class LatencyHistogram {
  private readonly buckets: Uint32Array;
  private readonly resolution = 0.1;
  count = 0;
  max = 0;
  sum = 0;

  constructor(private readonly maxMs = 2000) {
    this.buckets = new Uint32Array(Math.ceil(maxMs / this.resolution) + 1);
  }

  record(ms: number): void {
    const v = Math.max(0, ms);
    const i = Math.min(this.buckets.length - 1, Math.floor(v / this.resolution));
    this.buckets[i]! += 1;
    this.count += 1;
    this.sum += v;
    if (v > this.max) this.max = v;
  }

  quantile(q: number): number {
    if (this.count === 0) return 0;
    const rank = Math.max(1, Math.ceil(q * this.count));
    let seen = 0;
    for (let i = 0; i < this.buckets.length; i++) {
      seen += this.buckets[i]!;
      if (seen >= rank) return i === this.buckets.length - 1 ? this.max : Math.min(this.max, (i + 1) * this.resolution);
    }
    return this.max;
  }

  mean(): number {
    return this.count ? this.sum / this.count : 0;
  }
}
