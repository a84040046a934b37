import type { Redis } from 'ioredis';
import type { BudgetBook, BudgetLimits, BudgetUse } from '../../domain/budget';
import type { BudgetScope, BudgetStore } from '../../ports/budget-store';
import { RedisKeys } from './keys';
import { defineScript } from './scripts';

type WithBudget = Redis & {
  budgetAdmit(key: string, jobId: string, s: string, c: string, limS: string, limC: string, ttl: number, given: string): Promise<[number, string, string, string, string]>;
  budgetSettle(key: string, jobId: string, s: string, c: string): Promise<number>;
};

/** An account's daily book outlives its day by two (late settlements of jobs admitted before midnight). */
const ACCOUNT_BOOK_TTL_SECONDS = 3 * 24 * 3600;

/**
 * The BudgetStore port over Redis: a hash per book (`<p>:budget:batch:<id>`,
 * `<p>:budget:acct:<provider>:<account>:<day>`): limits `lim:s`/`lim:c` (a batch's), spent `s`/`c`,
 * reserved `rs`/`rc`, and `r:<jobId>` per admitted job. Admission (`budgetAdmit-1.lua`) and
 * settlement (`budgetSettle-1.lua`) are one script each, so two workers cannot both take the last
 * of a budget. A batch's book is kept as its record is (batch records do not expire); an
 * account's day book expires two days after its day.
 */
export class RedisBudgetStore implements BudgetStore {
  private readonly redis: WithBudget;
  private readonly keys: RedisKeys;
  constructor(redis: Redis, prefix: string) {
    this.redis = redis as WithBudget;
    this.keys = new RedisKeys(prefix);
    if (!('budgetAdmit' in redis)) defineScript(redis, 'budgetAdmit');
    if (!('budgetSettle' in redis)) defineScript(redis, 'budgetSettle');
  }

  private key(scope: BudgetScope): string {
    return 'batchId' in scope ? this.keys.budgetBatch(scope.batchId) : this.keys.budgetAccount(scope.provider, scope.account, scope.day);
  }

  async admit(scope: BudgetScope, jobId: string, use: BudgetUse, limits?: BudgetLimits): Promise<{ admitted: boolean; book: BudgetBook }> {
    const lim = (x: number | undefined) => (x === undefined ? '' : String(x));
    const ttl = 'batchId' in scope ? 0 : ACCOUNT_BOOK_TTL_SECONDS;
    const [ok, s, rs, c, rc] = await this.redis.budgetAdmit(this.key(scope), jobId, String(use.seconds), String(use.costUsd), lim(limits?.maxAudioSeconds), lim(limits?.maxCostUsd), ttl, limits ? '1' : '0');
    return { admitted: Number(ok) === 1, book: { spentSeconds: Number(s), reservedSeconds: Number(rs), spentCostUsd: Number(c), reservedCostUsd: Number(rc) } };
  }

  async settle(scope: BudgetScope, jobId: string, used: BudgetUse): Promise<boolean> {
    return (await this.redis.budgetSettle(this.key(scope), jobId, String(used.seconds), String(used.costUsd))) === 1;
  }

  async setLimits(batchId: string, limits: BudgetLimits, spentBefore?: BudgetUse): Promise<void> {
    const key = this.keys.budgetBatch(batchId);
    const m = this.redis.multi().hdel(key, 'lim:s', 'lim:c');
    if (limits.maxAudioSeconds !== undefined) m.hset(key, 'lim:s', String(limits.maxAudioSeconds));
    if (limits.maxCostUsd !== undefined) m.hset(key, 'lim:c', String(limits.maxCostUsd));
    if (spentBefore) m.hsetnx(key, 's', String(spentBefore.seconds)).hsetnx(key, 'c', String(spentBefore.costUsd));
    await m.exec();
  }

  async get(batchId: string): Promise<{ limits: BudgetLimits; book: BudgetBook } | null> {
    const key = this.keys.budgetBatch(batchId);
    const [limS, limC, s, c, rs, rc] = await this.redis.hmget(key, 'lim:s', 'lim:c', 's', 'c', 'rs', 'rc');
    // Admission always writes `rs` and setLimits a limit, so a book with none of these does not exist.
    if ([limS, limC, s, c, rs, rc].every((v) => v == null)) return null;
    const n = (v: string | null | undefined) => Number(v ?? 0) || 0;
    const limits: BudgetLimits = {
      ...(limS != null ? { maxAudioSeconds: Number(limS) } : {}),
      ...(limC != null ? { maxCostUsd: Number(limC) } : {}),
    };
    return { limits, book: { spentSeconds: n(s), spentCostUsd: n(c), reservedSeconds: n(rs), reservedCostUsd: n(rc) } };
  }
}
