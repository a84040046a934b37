import type { Redis } from 'ioredis';
import type { PlanStore } from '../../ports/plan-store';
import { RedisKeys } from './keys';

/** The PlanStore port over Redis: one string key per plan (`<p>:plan:<id>`), with a TTL. */
export class RedisPlanStore implements PlanStore {
  private readonly keys: RedisKeys;
  constructor(
    private readonly redis: Redis,
    prefix: string,
  ) {
    this.keys = new RedisKeys(prefix);
  }

  async save(planId: string, json: string, ttlSeconds: number): Promise<void> {
    await this.redis.set(this.keys.plan(planId), json, 'EX', ttlSeconds);
  }

  getRaw(planId: string): Promise<string | null> {
    return this.redis.get(this.keys.plan(planId));
  }
}
