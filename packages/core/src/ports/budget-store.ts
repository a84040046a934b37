/**
 * The budget books (adapters/redis/budget-store.ts): one per batch with a budget, one per account
 * and UTC day under SCRIBE_BUDGETS. Admission and settlement are atomic per book.
 */
import type { BudgetBook, BudgetLimits, BudgetUse } from '../domain/budget';

/** Which book: a batch's, or an account's on one UTC day. */
export type BudgetScope = { batchId: string } | { provider: string; account: string; day: string };

export interface BudgetStore {
  /**
   * Reserve `use` for the job in the book, unless that would take it past its limits (`limits`
   * given: those; else the book's own). A job already holding a reservation there is admitted again.
   */
  admit(scope: BudgetScope, jobId: string, use: BudgetUse, limits?: BudgetLimits): Promise<{ admitted: boolean; book: BudgetBook }>;
  /** The job ended: its reservation (if any) becomes `used`. True if it held one. */
  settle(scope: BudgetScope, jobId: string, used: BudgetUse): Promise<boolean>;
  /** A batch's limits (replacing them; `{}` removes both) and, when the book is new, what it has spent already. */
  setLimits(batchId: string, limits: BudgetLimits, spentBefore?: BudgetUse): Promise<void>;
  /** A batch's limits and book (null: the batch has no budget). */
  get(batchId: string): Promise<{ limits: BudgetLimits; book: BudgetBook } | null>;
}
