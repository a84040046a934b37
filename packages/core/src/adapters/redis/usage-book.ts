import type { Redis } from 'ioredis';
import type { Config } from '../../domain/config';
import { USAGE_METRICS, zeroCounts, type UsageBy, type UsageIncrement, type UsageKey, type UsageMetric, type UsageRecord } from '../../domain/usage';
import type { UsageStore } from '../../ports/usage-store';
import { UsageKeys } from './keys';

const METRICS = new Set<string>(USAGE_METRICS);
const enc = encodeURIComponent;
const dec = (s: string) => {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
};

/** The hash field of a figure: the metric, then (the batch id and) the key's parts, each URI-encoded, `|`-separated. */
export function usageField(metric: UsageMetric, key: UsageKey, batchId?: string): string {
  return [metric, ...(batchId !== undefined ? [batchId] : []), key.provider, key.model, key.mode, key.account].map(enc).join('|');
}

/** A field back into its parts; null for one this version did not write. */
export function parseUsageField(field: string, withBatch: boolean): { metric: UsageMetric; batchId?: string; key: UsageKey } | null {
  const parts = field.split('|').map(dec);
  if (parts.length !== (withBatch ? 6 : 5) || !METRICS.has(parts[0]!)) return null;
  const [metric, ...rest] = parts as [UsageMetric, ...string[]];
  const batchId = withBatch ? rest.shift()! : undefined;
  const [provider, model, mode, account] = rest as [string, string, string, string];
  return { metric, ...(batchId !== undefined ? { batchId } : {}), key: { provider, model, mode, account } };
}

/**
 * The usage book over Redis (the UsageStore port): per UTC day one hash of figures per (provider,
 * model, mode, account), and one of the same per batch (keys in redis/keys.ts, UsageKeys). One write
 * is one MULTI of HINCRBYFLOAT/HINCRBY and EXPIRE on the day's hash and, for a job of a batch, the
 * day's per-batch hash, under one hash tag (one slot on Redis Cluster). Each hash is kept
 * `retentionDays` after its last write, so memory is bounded by days × keys × batches of a day.
 */
export class RedisUsageBook implements UsageStore {
  private readonly keys: UsageKeys;
  private readonly ttl: number;

  constructor(
    private readonly redis: Redis,
    config: Pick<Config, 'QUEUE_PREFIX' | 'QUEUE_NAME' | 'USAGE_RETENTION_DAYS'>,
  ) {
    this.keys = new UsageKeys(config);
    this.ttl = config.USAGE_RETENTION_DAYS * 86_400;
  }

  async add(inc: UsageIncrement): Promise<void> {
    const m = this.redis.multi();
    const targets: Array<[string, string | undefined]> = [[this.keys.day(inc.day), undefined]];
    if (inc.batchId) targets.push([this.keys.dayByBatch(inc.day), inc.batchId]);
    for (const [key, batchId] of targets) {
      for (const metric of USAGE_METRICS) {
        const v = inc.counts[metric];
        if (!v) continue;
        const field = usageField(metric, inc.key, batchId);
        if (metric === 'audioSeconds') m.hincrbyfloat(key, field, v);
        else m.hincrby(key, field, v);
      }
      m.expire(key, this.ttl);
    }
    const res = await m.exec();
    for (const [err] of res ?? []) if (err) throw err;
  }

  async read(days: readonly string[], by: UsageBy): Promise<UsageRecord[]> {
    const p = this.redis.pipeline();
    for (const day of days) p.hgetall(by === 'day' ? this.keys.day(day) : this.keys.dayByBatch(day));
    const res = (await p.exec()) ?? [];
    const out: UsageRecord[] = [];
    res.forEach(([err, h], i) => {
      if (err) throw err;
      const day = days[i]!;
      const records = new Map<string, UsageRecord>();
      for (const [field, value] of Object.entries((h ?? {}) as Record<string, string>)) {
        const f = parseUsageField(field, by === 'batch');
        if (!f) continue;
        const id = JSON.stringify([f.batchId ?? '', f.key.provider, f.key.model, f.key.mode, f.key.account]);
        let r = records.get(id);
        if (!r) records.set(id, (r = { day, ...(f.batchId !== undefined ? { batchId: f.batchId } : {}), key: f.key, counts: zeroCounts() }));
        r.counts[f.metric] += Number(value) || 0;
      }
      out.push(...records.values());
    });
    return out;
  }
}
