import { z } from 'zod';
import { CapBuckets, parseCapOverrides, type CapSettings, type FleetCapSettings } from './caps';
import { ConfigError } from './errors';
import { parseSpeeds } from './plan';
import { parseAccountBudgets } from './budget';

/**
 * The one configuration module. Every setting comes from the environment (or an env-style object in
 * tests), is validated here with its default, and a bad value stops the process with a message that
 * names the variable. README.md documents the same table.
 */
const int = (def: number, min = 0) => z.coerce.number().int().min(min).default(def);
/** A text variable (default empty) turned into a value by `parse`; what `parse` throws is the variable's error. */
const parsedText = <T>(parse: (text: string) => T) =>
  z
    .string()
    .default('')
    .transform((s, ctx) => {
      try {
        return parse(s);
      } catch (e) {
        ctx.addIssue({ code: 'custom', message: (e as Error).message });
        return z.NEVER;
      }
    });
const bool = (def: boolean) =>
  z
    .enum(['true', 'false', '1', '0', 'yes', 'no'])
    .default(def ? 'true' : 'false')
    .transform((v) => v === 'true' || v === '1' || v === 'yes');
const csv = z
  .string()
  .default('')
  .transform((s) => s.split(',').map((x) => x.trim()).filter(Boolean));

export const ConfigSchema = z.object({
  /** Redis for BullMQ (required: no default, so nothing silently uses a shared Redis). Run it with AOF and `maxmemory-policy noeviction`. */
  REDIS_URL: z.string().url(),
  /**
   * Redis Cluster: seed nodes (`host:port,host:port`); set, every connection is an ioredis Cluster
   * seeded from these and REDIS_URL's host (REDIS_URL still gives the credentials and `rediss:` TLS).
   * QUEUE_PREFIX must then begin with a hash tag, e.g. `{scribe}`: every key of the fleet is in its
   * slot, so each multi-key script and MULTI stays in one slot (ARCHITECTURE.md, "Redis Cluster").
   */
  REDIS_CLUSTER_NODES: csv.pipe(z.array(z.string().regex(/^[^\s:]+:\d{1,5}$/, 'each node as host:port'))),
  /** Queue name prefix in Redis (BullMQ `prefix`). With REDIS_CLUSTER_NODES, a hash tag first: `{scribe}`. */
  QUEUE_PREFIX: z.string().min(1).default('scribe'),
  /** Name of the transcription queue. */
  QUEUE_NAME: z.string().regex(/^[A-Za-z0-9_-]+$/).default('transcribe'),

  /** S3 endpoint; unset means AWS S3 itself. */
  S3_ENDPOINT: z.string().url().optional(),
  S3_REGION: z.string().min(1).default('us-east-1'),
  /** Path-style addressing (needed by most S3-compatible servers). */
  S3_FORCE_PATH_STYLE: bool(true),
  /** Credentials; unset means the AWS SDK default chain (env, profile, instance role). */
  S3_ACCESS_KEY_ID: z.string().min(1).optional(),
  S3_SECRET_ACCESS_KEY: z.string().min(1).optional(),
  /** Buckets the producer may read from and write to; empty = any. */
  S3_ALLOWED_BUCKETS: csv,

  /** Jobs of one hosted-provider cap bucket one worker process runs at once (I/O-bound sessions). */
  WORKER_CONCURRENCY: int(50, 1),
  /** Jobs of the embedded local recogniser one worker process runs at once (CPU-bound: about the cores). */
  LOCAL_CONCURRENCY: int(2, 1),
  /** Attempts per job for transient errors (rate limits do not count). */
  JOB_ATTEMPTS: int(5, 1),
  /** First retry delay; doubles each attempt. */
  JOB_BACKOFF_MS: int(5000, 0),
  /** BullMQ lock duration; the lock is renewed at half this while the job runs. */
  WORKER_LOCK_MS: int(30000, 1000),
  /**
   * A storage error (S3 unreachable, 5xx, throttling) is retried inside the attempt, with capped
   * exponential backoff, for this long before the attempt fails; a finished transcript is kept and
   * re-PUT, never transcribed again.
   */
  STORAGE_RETRY_MS: int(180_000, 0),
  /**
   * A session with no progress at all (no audio read, no provider message) for this long is aborted
   * with SESSION_STALLED (retryable) and its cap slot given back: a hung socket, decoder or recogniser
   * never holds a slot for good. A backstop behind each provider's own timeouts (PROVIDER_TIMEOUT_MS),
   * so larger than them.
   */
  SESSION_STALL_MS: int(900_000, 1000),
  /** How often each worker looks for jobs that ended outside the books (stall limits, lost writes) and records them. */
  RECONCILE_INTERVAL_MS: int(30_000, 1000),
  /**
   * A stream's finalize handshake is stuck only when no message at all has arrived for this long;
   * while results keep coming the session waits (a slow provider is not a stuck one).
   */
  FINALIZE_IDLE_MS: int(20_000, 1000),
  /** …and the whole finalize wait is bounded by FINALIZE_IDLE_MS plus this many ms per second of audio not yet finalised. */
  FINALIZE_MS_PER_AUDIO_SECOND: int(1_000, 0),
  /**
   * Input integrity: a file whose decoded audio is shorter than its container declares by more than
   * this fraction (and by at least 0.5 s) fails `TRUNCATED_INPUT`…
   */
  TRUNCATION_TOLERANCE: z.coerce.number().min(0).max(1).default(0.02),
  /** …unless this is true: it then completes with `warnings: ["TRUNCATED_INPUT"]`. */
  ALLOW_TRUNCATED: bool(false),
  /** Chunk length of paced streams. */
  STREAM_CHUNK_MS: int(100, 20),
  /** A paced stream saves its finalised segments at most this often, so a retry resumes there (0 = never). */
  CHECKPOINT_INTERVAL_MS: int(30_000, 0),
  /** Directory for spooling inputs that need seeking (mp4/m4a). */
  SPOOL_DIR: z.string().optional(),
  /**
   * Page size for ListObjectsV2 and addBulk when enqueuing a prefix (at most 1 000, S3's page). The
   * default is S3's page: a list call costs about the same for 500 keys as for 1 000.
   */
  ENQUEUE_PAGE_SIZE: int(1000, 1),
  /**
   * A prefix batch is drip-fed: its jobs are listed and enqueued while its cap bucket's queue holds
   * fewer than this many unfinished jobs, and the rest of the listing waits as a durable cursor in
   * the batch's record. 0 = sized from the bucket: max(1 000, 4 × (cap + prefetch)) (domain/caps.ts
   * backlogWindow). Redis then holds a bounded number of queued jobs however large the prefix.
   */
  BACKLOG_PER_BUCKET: int(0, 0),
  /** How often the workers' feeder looks for drip-fed batches to top up (one feeder at a time, fleet-wide). */
  FEED_INTERVAL_MS: int(1000, 100),
  /**
   * Once a batch has this many completed (or skipped) jobs in Redis, the feeder moves them, with
   * their results, to a part of the batch's report in S3 (`<report>.parts/`), keeping only their
   * count: the books of a batch of any size stay bounded. 0 = never.
   */
  BOOKS_SPILL_AT: int(5000, 0),
  /**
   * Largest manifest accepted, in bytes (CLI file or API inline text; through the API the request
   * body limit API_MAX_BODY_BYTES applies first, to the JSON-escaped text). A million typical JSONL
   * lines are ~60 MB.
   */
  MANIFEST_MAX_BYTES: int(64 * 1024 * 1024, 1),
  /** Most lines a manifest may have (blank and comment lines count). Validation keeps ~100 bytes per entry until it is enqueued. */
  MANIFEST_MAX_LINES: int(1_000_000, 1),

  // ---- providers: keys come only from here (environment or SCRIBE_SECRETS_FILE), never from job data ----
  /** A JSON file `{ "DEEPGRAM_API_KEY": "…", … }` merged under the environment (the environment wins). */
  SCRIBE_SECRETS_FILE: z.string().optional(),
  DEEPGRAM_API_KEY: z.string().min(1).optional(),
  /** Base URL of the Deepgram API (REST and, with ws/wss, live). Point it at an emulator in tests. */
  DEEPGRAM_URL: z.string().url().default('https://api.deepgram.com'),
  /** Pre-recorded body: `stream` the bytes from S3 (default) or send a presigned `url` for Deepgram to fetch. */
  DEEPGRAM_BATCH_BODY: z.enum(['stream', 'url']).default('stream'),
  ASSEMBLYAI_API_KEY: z.string().min(1).optional(),
  ASSEMBLYAI_STREAMING_URL: z.string().url().default('wss://streaming.assemblyai.com'),
  FIREWORKS_API_KEY: z.string().min(1).optional(),
  FIREWORKS_STREAMING_URL: z.string().url().default('wss://audio-streaming.api.fireworks.ai'),
  OPENAI_API_KEY: z.string().min(1).optional(),
  OPENAI_BASE_URL: z.string().url().default('https://api.openai.com/v1'),
  /** Provider request timeout for batch requests (long files take minutes). */
  PROVIDER_TIMEOUT_MS: int(600_000, 1000),

  // ---- fleet-wide concurrency caps (see domain/caps.ts) ----
  /** Cap overrides: `provider:account:class:mode=N,…` (`*` for any account) or a JSON object. */
  SCRIBE_CAPS: parsedText(parseCapOverrides),
  // ---- plans (scribe plan, POST /v1/plans: domain/plan.ts, domain/prices.ts) ----
  /** How long a plan is kept to be run by its id (`scribe enqueue --plan`). */
  PLAN_TTL_SECONDS: int(30 * 24 * 3600, 60),
  /** A JSON price table read first (entries as domain/prices.ts PriceEntry); the shipped defaults fill the rest. */
  PRICES_FILE: z.string().min(1).optional(),
  /** How long the usage book (GET /v1/usage, scribe usage) keeps a day's figures after its last write. */
  USAGE_RETENTION_DAYS: int(400, 1),
  /** Batch speeds and per-file overheads: `provider:batch|stream=speed[/overhead s],…` (defaults: domain/plan.ts). */
  PLAN_SPEEDS: parsedText(parseSpeeds),
  // ---- budgets (domain/budget.ts, app/budgets.ts) ----
  /** Per account per UTC day: `provider:account=<hours>h/$<usd>,…` (`*` for every account), e.g. `deepgram:projA=100h/$40`. Empty: none. */
  SCRIBE_BUDGETS: parsedText(parseAccountBudgets),
  /** A job refused by a budget is looked at again after this long (sooner when its batch is resumed). */
  BUDGET_RECHECK_MS: int(300_000, 1000),
  /** Deepgram Whisper Cloud plan: `payg` (5 concurrent) or `paid` (15). */
  DEEPGRAM_WHISPER_PLAN: z.enum(['payg', 'paid']).default('payg'),
  /** Deepgram live streams per project (50 in newer docs, 100 in older ones). */
  DEEPGRAM_STREAM_CAP: int(50, 1),
  /** A held slot expires this long after its last heartbeat (a crashed holder's slot returns within it). */
  LEASE_TTL_MS: int(15_000, 1000),
  /** Jobs per bucket allowed active beyond the cap, prepared and waiting for a slot (keeps the cap full): this fraction of the cap… */
  CAP_PREFETCH_RATIO: z.coerce.number().min(0).max(4).default(0.5),
  /** …and at least this many. */
  CAP_PREFETCH_MIN: int(2, 0),
  /** After a 429 the bucket's effective cap is multiplied by this (multiplicative decrease). */
  CAP_DECREASE_FACTOR: z.coerce.number().gt(0).lt(1).default(0.7),
  /** While below the configured cap, the effective cap grows by 1 per this interval without 429s. */
  CAP_INCREASE_INTERVAL_MS: int(5_000, 100),
  // ---- batches, retention, webhooks, API ----
  /** Finished jobs are removed from Redis this long after they finish (batch reports stay in S3). */
  JOB_RETENTION_SECONDS: int(7 * 24 * 3600, 0),
  /** Webhook for every batch and job completion (in addition to a batch's own `webhookUrl`). */
  WEBHOOK_URL: z.string().url().optional(),
  /** HMAC-SHA256 key that signs webhook bodies (required to send webhooks). */
  WEBHOOK_SECRET: z.string().min(16).optional(),
  /** Delivery attempts per webhook (exponential backoff from WEBHOOK_BACKOFF_MS). */
  WEBHOOK_ATTEMPTS: int(8, 1),
  WEBHOOK_BACKOFF_MS: int(2000, 10),
  /** Send a webhook per job (`job.completed` / `job.failed`) as well as per batch. */
  WEBHOOK_JOB_EVENTS: bool(true),
  /** Bearer tokens the HTTP API and dashboard accept (comma-separated; empty = the API refuses to start). */
  API_TOKENS: csv,
  API_HOST: z.string().default('127.0.0.1'),
  API_PORT: z.coerce.number().int().min(0).max(65535).default(8080),
  /**
   * POST /v1/batches waits this long for listing and enqueuing to finish (201 with the final counts);
   * past it, it answers 202 and listing goes on in the background (0 = always 202 once validated).
   */
  API_CREATE_WAIT_MS: int(5_000, 0),
  /** Largest request body the API accepts (an inline manifest of a million lines is ~100 MB). */
  API_MAX_BODY_BYTES: int(64 * 1024 * 1024, 1024),
  /**
   * Whether the API believes `X-Forwarded-Proto`, `-Host` and `-For` (Fastify's `trustProxy`): set it
   * when the API runs behind a TLS-terminating proxy, so the session cookie gets `Secure`, the CSRF
   * same-origin check sees the browser's scheme and host, and the login rate limit counts per client
   * rather than per proxy. `false` (default): the headers are ignored. `true`: every hop is trusted
   * (right only when the proxy overwrites X-Forwarded-For; a client could otherwise choose its own
   * address). Otherwise the proxies' addresses or CIDRs, comma-separated (`loopback`, `10.0.0.0/8`):
   * X-Forwarded-For is then read from the right up to the first address not in the list.
   */
  TRUST_PROXY: z
    .string()
    .default('false')
    .transform((s, ctx): boolean | string => {
      const v = s.trim().toLowerCase();
      if (['false', '0', 'no'].includes(v)) return false;
      if (['true', '1', 'yes'].includes(v)) return true;
      const parts = s.split(',').map((x) => x.trim()).filter(Boolean);
      const bad = parts.filter((p) => !/^(?:loopback|linklocal|uniquelocal|[0-9A-Fa-f:.]+(?:\/\d{1,3})?)$/.test(p));
      if (!parts.length || bad.length) {
        ctx.addIssue({ code: 'custom', message: `expected true, false or proxy addresses/CIDRs (comma-separated), got ${JSON.stringify(bad.length ? bad.join(',') : s)}` });
        return z.NEVER;
      }
      return parts.join(',');
    }),
  /** How long a dashboard sign-in lasts (the session in Redis and the cookie); signing out ends it at once. */
  SESSION_TTL_SECONDS: int(12 * 3600, 1),
  /** Sign-in attempts (POST /login) one client address may make per minute, fleet-wide; past it 429 `RATE_LIMITED`. */
  LOGIN_ATTEMPTS_PER_MINUTE: int(10, 1),
  /** How often a worker looks at the registered cap buckets (new ones, and which have jobs) to decide which it consumes. */
  BUCKET_DISCOVERY_MS: int(5_000, 100),
  /**
   * Cap buckets one worker process consumes at once; 0 = no limit. Each costs the process one Redis
   * connection (its BullMQ Worker's blocking one; all else shares one connection), so a process holds
   * at most 6 + this many. More buckets with work than this take turns (WORKER_BUCKET_TURN_MS).
   */
  WORKER_MAX_BUCKETS: int(16, 0),
  /** A bucket whose queue has had no job (waiting, delayed or active) for this long stops being consumed here until it has one again. */
  WORKER_BUCKET_IDLE_MS: int(60_000, 100),
  /** While buckets with work wait for a slot (WORKER_MAX_BUCKETS), each consumed bucket keeps its slot at least this long. */
  WORKER_BUCKET_TURN_MS: int(120_000, 100),
  // ---- metrics ----
  /** Port of a worker process's Prometheus endpoint (`GET /metrics`); 0 = no endpoint. Give each worker on one host its own. */
  METRICS_PORT: z.coerce.number().int().min(0).max(65535).default(9464),
  /** Interface the worker's metrics endpoint listens on (all, so Prometheus can scrape the pod). */
  METRICS_HOST: z.string().min(1).default('0.0.0.0'),
});

export type Config = z.output<typeof ConfigSchema>;

export function capSettings(config: Config): CapSettings {
  return { deepgramWhisperPlan: config.DEEPGRAM_WHISPER_PLAN, deepgramStreamCap: config.DEEPGRAM_STREAM_CAP, overrides: config.SCRIBE_CAPS };
}

/** Every setting a cap bucket's numbers come from (see ResolvedBucket). */
export function fleetCapSettings(config: Config): FleetCapSettings {
  return {
    ...capSettings(config),
    queueBase: config.QUEUE_NAME,
    prefetchRatio: config.CAP_PREFETCH_RATIO,
    prefetchMin: config.CAP_PREFETCH_MIN,
    workerConcurrency: config.WORKER_CONCURRENCY,
    localConcurrency: config.LOCAL_CONCURRENCY,
  };
}

/** The fleet's cap buckets, resolved from this config. */
export function capBucketsFromConfig(config: Config): CapBuckets {
  return new CapBuckets(fleetCapSettings(config));
}

/** A prefix whose keys all hash to one Redis Cluster slot: it begins with a non-empty `{tag}`. */
const CLUSTER_PREFIX = /^\{[^{}]+\}/;

/** Parse configuration; throws ConfigError listing each bad variable. */
export function loadConfig(env: Record<string, string | undefined>): Config {
  const clean: Record<string, string> = {};
  for (const [k, v] of Object.entries(env)) if (v !== undefined && v !== '') clean[k] = v;
  const res = ConfigSchema.superRefine((c, ctx) => {
    if (c.REDIS_CLUSTER_NODES.length > 0 && !CLUSTER_PREFIX.test(c.QUEUE_PREFIX)) {
      ctx.addIssue({ code: 'custom', path: ['QUEUE_PREFIX'], message: `with REDIS_CLUSTER_NODES it must begin with a hash tag such as {scribe} (got "${c.QUEUE_PREFIX}"), so every key of the fleet is in one cluster slot` });
    }
  }).safeParse(clean);
  if (!res.success) {
    const lines = res.error.issues.map((i) => `  ${i.path.join('.')}: ${i.message}`);
    throw new ConfigError(`invalid configuration:\n${lines.join('\n')}`);
  }
  return res.data;
}
