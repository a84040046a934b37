import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { Config } from '../../domain/config';
import type { AttemptCounter, AttemptWindow, SessionRecord, SessionStore } from '../../ports/session-store';
import { RedisKeys } from './keys';
import { defineScript } from './scripts';

export type { AttemptCounter, AttemptWindow, SessionRecord, SessionStore } from '../../ports/session-store';

/** The hex SHA-256 of a session id: the key a session is stored under (redis/keys.ts). */
const idHash = (id: string) => createHash('sha256').update(id, 'utf8').digest('hex');

/**
 * The SessionStore port over Redis: one string per session, `SET <p>:<q>:session:<sha256(id)> <json>
 * EX <ttl>`. Redis expires it (no sweep); revoking deletes it, so a sign-out on one API replica holds
 * on all of them. The key is a hash of the id, so neither a key listing nor a value gives a usable
 * cookie, and the record holds no token (ports/session-store.ts).
 */
export class RedisSessionStore implements SessionStore {
  private readonly keys: RedisKeys;
  constructor(
    private readonly redis: Redis,
    config: Pick<Config, 'QUEUE_PREFIX' | 'QUEUE_NAME'>,
  ) {
    this.keys = RedisKeys.forQueue(config);
  }

  async save(id: string, record: SessionRecord, ttlSeconds: number): Promise<void> {
    await this.redis.set(this.keys.session(idHash(id)), JSON.stringify({ binding: record.binding, createdAt: record.createdAt }), 'EX', Math.max(1, Math.ceil(ttlSeconds)));
  }

  async load(id: string): Promise<SessionRecord | null> {
    const raw = await this.redis.get(this.keys.session(idHash(id)));
    if (raw === null) return null;
    try {
      const v = JSON.parse(raw) as Partial<SessionRecord>;
      return typeof v.binding === 'string' && typeof v.createdAt === 'number' ? { binding: v.binding, createdAt: v.createdAt } : null;
    } catch {
      return null; // not ours (or damaged): no session
    }
  }

  async revoke(id: string): Promise<void> {
    await this.redis.del(this.keys.session(idHash(id)));
  }
}

type WithAttemptScripts = Redis & {
  attemptHit(key: string, windowMs: number): Promise<[number, number]>;
  attemptForgive(key: string): Promise<number>;
};

/**
 * The AttemptCounter port over Redis: a fixed window per subject, `<p>:<q>:login-attempts:<addr>`, a
 * counter whose TTL is the window, set at the subject's first attempt. Counting is one script
 * (redis/scripts/attemptHit-1.lua), so every API replica counts into the same window and a burst of
 * concurrent attempts is counted one by one; `forgive` (attemptForgive-1.lua) never makes a counter
 * without a TTL.
 */
export class RedisAttemptCounter implements AttemptCounter {
  private readonly redis: WithAttemptScripts;
  private readonly keys: RedisKeys;
  constructor(redis: Redis, config: Pick<Config, 'QUEUE_PREFIX' | 'QUEUE_NAME'>) {
    this.redis = redis as WithAttemptScripts;
    this.keys = RedisKeys.forQueue(config);
    if (!('attemptHit' in redis)) defineScript(redis, 'attemptHit');
    if (!('attemptForgive' in redis)) defineScript(redis, 'attemptForgive');
  }

  async hit(subject: string, windowMs: number): Promise<AttemptWindow> {
    const [count, resetMs] = await this.redis.attemptHit(this.keys.loginAttempts(subject), windowMs);
    return { count: Number(count), resetMs: Math.max(1, Number(resetMs)) };
  }

  async forgive(subject: string): Promise<void> {
    await this.redis.attemptForgive(this.keys.loginAttempts(subject));
  }
}
