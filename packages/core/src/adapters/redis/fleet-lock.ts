import type { Redis } from 'ioredis';
import type { FleetLock } from '../../ports/batch-store';
import { RedisKeys } from './keys';

/**
 * The FleetLock port over Redis: `SET <p>:<name>-lock <pid> PX <ttl> NX` (key spelled in
 * redis/keys.ts). Held until the lease runs out, never released early: a sweep that ends quickly
 * still keeps the next one from starting before its interval.
 */
export class RedisFleetLock implements FleetLock {
  private readonly keys: RedisKeys;
  constructor(
    private readonly redis: Redis,
    prefix: string,
  ) {
    this.keys = new RedisKeys(prefix);
  }

  async tryAcquire(name: string, ttlMs: number): Promise<boolean> {
    return (await this.redis.set(this.keys.fleetLock(name), String(process.pid), 'PX', ttlMs, 'NX')) === 'OK';
  }
}
