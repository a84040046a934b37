/** Plans kept so a plan can be run by its id (`scribe enqueue --plan`), or shown beside its batch. */
export interface PlanStore {
  /** Keep a plan's JSON for `ttlSeconds`. */
  save(planId: string, json: string, ttlSeconds: number): Promise<void>;
  /** The stored plan's JSON, unparsed (app/validate.ts parseStoredPlan reads it); null when unknown or expired. */
  getRaw(planId: string): Promise<string | null>;
}
