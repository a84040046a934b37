import { z } from 'zod';
import { canonicalJson, sha256Hex } from './canonical';
import { CATALOGUE, checkCombination, MODES, PROVIDERS, type Mode, type ProviderName } from './catalogue';
import { InvalidJobSpecError, UnsupportedCombinationError } from './errors';

export const OUTPUT_FORMATS = ['json', 'txt', 'srt', 'vtt'] as const;
export type OutputFormat = (typeof OUTPUT_FORMATS)[number];

const optionValue = z.union([z.string(), z.number(), z.boolean(), z.array(z.string())]);

export const SourceSchema = z.object({
  bucket: z.string().min(3),
  key: z.string().min(1),
  /** ETag as S3 reports it (quotes stripped). Part of the job identity: a changed object is a new job. */
  etag: z.string().min(1),
  versionId: z.string().min(1).optional(),
  size: z.number().int().nonnegative().optional(),
});
export type Source = z.infer<typeof SourceSchema>;

export const OutputSchema = z.object({
  bucket: z.string().min(3),
  /** Key base: outputs are `<keyBase>.json`, `<keyBase>.txt`, ... */
  keyBase: z.string().min(1),
  formats: z.array(z.enum(OUTPUT_FORMATS)).min(1).default([...OUTPUT_FORMATS]),
});

/** A drip-fed batch's request as its record stores it (the CreateBatchRequest of a prefix, JSON). */
export const StoredFeedRequestSchema = z
  .object({
    source: z.string().min(1),
    out: z.string().min(1),
    provider: z.string().optional(),
    model: z.string().optional(),
    mode: z.string().optional(),
    options: z.record(z.string(), z.union([z.string(), z.number(), z.boolean(), z.array(z.string())])).optional(),
    account: z.string().optional(),
    formats: z.array(z.enum(OUTPUT_FORMATS)).optional(),
    priority: z.number().optional(),
    force: z.boolean().optional(),
    webhookUrl: z.string().optional(),
  })
  .strict();

/** The defaults of a job's routing fields (the schema's, and whoever must know them before a spec exists). */
export const SPEC_DEFAULTS = { provider: 'local', mode: 'batch', account: 'default' } as const;

/** Data stored in Redis for one job. Never holds secrets: keys and credentials come from the worker's environment. */
export const JobSpecSchema = z
  .object({
    v: z.literal(1).default(1),
    source: SourceSchema,
    provider: z.enum(PROVIDERS).default(SPEC_DEFAULTS.provider),
    model: z.string().min(1).optional(),
    mode: z.enum(MODES).default(SPEC_DEFAULTS.mode),
    /** Provider options passed through (e.g. Deepgram query parameters). Part of the job identity. */
    options: z.record(z.string(), optionValue).default({}),
    output: OutputSchema,
    /** Provider account/project the job bills to; selects the cap bucket. */
    account: z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/, 'account must be 1-64 of [A-Za-z0-9_.-]').default(SPEC_DEFAULTS.account),
    batchId: z.string().min(1).optional(),
    /** Transcribe even if this job's outputs already exist (not part of the identity). */
    force: z.boolean().optional(),
    /** W3C trace context of the enqueue span (no secrets, just ids). */
    trace: z.record(z.string(), z.string()).optional(),
  })
  .transform((spec) => ({ ...spec, model: spec.model ?? CATALOGUE[spec.provider].defaultModel }));

export type JobSpecInput = z.input<typeof JobSpecSchema>;
export type JobSpec = z.output<typeof JobSpecSchema>;

/** Validate untrusted data into a JobSpec, with a message that lists every problem. */
/**
 * The cap-bucket routing of a request's jobs with the spec's defaults applied (provider, account,
 * model, mode), or null for an unknown provider or mode (validation refuses those).
 */
export function routingOf(req: { provider?: string; model?: string; mode?: string; account?: string }): { provider: ProviderName; account: string; model: string; mode: Mode } | null {
  const provider = req.provider ?? SPEC_DEFAULTS.provider;
  const mode = req.mode ?? SPEC_DEFAULTS.mode;
  if (!(PROVIDERS as readonly string[]).includes(provider) || !(MODES as readonly string[]).includes(mode)) return null;
  const p = provider as ProviderName;
  return { provider: p, account: req.account ?? SPEC_DEFAULTS.account, model: req.model ?? CATALOGUE[p].defaultModel, mode: mode as Mode };
}

export function parseJobSpec(data: unknown): JobSpec {
  const res = JobSpecSchema.safeParse(data);
  if (!res.success) {
    const problems = res.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ');
    throw new InvalidJobSpecError(`invalid job spec: ${problems}`);
  }
  const spec = res.data;
  const reason = checkCombination(spec.provider, spec.model, spec.mode);
  if (reason) throw new UnsupportedCombinationError(reason);
  return spec;
}

/**
 * Deterministic job id: a hash of the source identity (bucket, key, ETag, versionId) and every setting
 * that changes the result (provider, model, mode, options, output place and formats, account).
 * Enqueuing the same thing twice gives the same id, which BullMQ refuses to add twice.
 * The `tx_` prefix keeps it from being all digits, and it never contains `:` (BullMQ's rules).
 */
export function jobIdFor(spec: JobSpec): string {
  const identity = {
    source: { bucket: spec.source.bucket, key: spec.source.key, etag: spec.source.etag, versionId: spec.source.versionId },
    provider: spec.provider,
    model: spec.model,
    mode: spec.mode,
    options: spec.options,
    output: { bucket: spec.output.bucket, keyBase: spec.output.keyBase, formats: [...spec.output.formats].sort() },
    account: spec.account,
  };
  return `tx_${sha256Hex(canonicalJson(identity)).slice(0, 40)}`;
}

/**
 * The shape of every id `jobIdFor` makes, and of nothing else: `tx_` and 40 lowercase hex digits.
 * An id from a client is checked against it before it reaches the queue, so it can never name one
 * of BullMQ's own keys (`meta`, `events`, `wait`, `stalled-check`…) that sit beside the jobs.
 */
export const JOB_ID_PATTERN = '^tx_[0-9a-f]{40}$';
const JOB_ID_RE = new RegExp(JOB_ID_PATTERN);

/** Whether `id` has the shape of a job id (see JOB_ID_PATTERN). */
export function isJobId(id: unknown): boolean {
  return typeof id === 'string' && JOB_ID_RE.test(id);
}

export function outputKey(spec: Pick<JobSpec, 'output'>, format: OutputFormat): string {
  return `${spec.output.keyBase}.${format}`;
}

/** S3 ETags come quoted (`"abc"`); the identity uses the bare value. */
export function normaliseEtag(etag: string | undefined): string {
  return (etag ?? '').replace(/^W\//, '').replace(/^"+|"+$/g, '');
}
