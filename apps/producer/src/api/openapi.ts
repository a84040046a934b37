/**
 * The OpenAPI 3.1 description of the HTTP API, hand-written next to the JSON Schemas the routes
 * validate with (the same objects), served at GET /openapi.json. A test checks that every route the
 * server registers is described here.
 */
import { BATCH_ID_PATTERN, BATCH_JOB_STATES, JOB_ID_PATTERN, OUTPUT_FORMATS, PLAN_ID_PATTERN } from '@scribe-fleet/core';
import { MAX_PLAN_CHOICES } from '@scribe-fleet/core/app/validate';

type Schema = Record<string, unknown>;

// ---- shared schemas (also used by the routes for validation) ----------------------------------

/** A figure with its 95 % interval (domain/plan.ts Range). */
const Range: Schema = { type: 'object', properties: { estimate: { type: 'number' }, low: { type: 'number' }, high: { type: 'number' } } };

const optionValue: Schema = { anyOf: [{ type: 'string' }, { type: 'number' }, { type: 'boolean' }, { type: 'array', items: { type: 'string' } }] };

export const CreateBatchBody: Schema = {
  type: 'object',
  additionalProperties: false,
  required: ['out'],
  description: 'Exactly one of `source` and `manifest`.',
  properties: {
    source: { type: 'string', description: '`s3://bucket/prefix` to transcribe: one job per object under it (folder markers and keys under `out` are ignored).', examples: ['s3://archive/calls/2019/'] },
    manifest: {
      type: 'object',
      additionalProperties: false,
      required: ['text', 'format'],
      description:
        'An inline list of files. JSONL: one `{"source":"s3://b/k.wav","options":{…}}` (or `"key"` with `defaultBucket`) per line. CSV: `source[,options-as-json]`, optional header `source,options`. Blank lines and `#` comments are ignored. Any malformed line (or missing object, or duplicate) refuses the whole manifest with 400 INVALID_MANIFEST naming every bad line in `details.errors`; nothing is enqueued. Over MANIFEST_MAX_BYTES or MANIFEST_MAX_LINES it is refused unread with 413 MANIFEST_TOO_LARGE.',
      properties: {
        text: { type: 'string' },
        format: { type: 'string', enum: ['jsonl', 'csv'] },
        defaultBucket: { type: 'string', description: 'Bucket of bare keys.' },
      },
    },
    out: { type: 'string', description: '`s3://bucket/prefix/` for the outputs (`<out><key relative to the listed prefix>.{json,txt,srt,vtt}`) and the batch report (`<out>_reports/<batchId>.jsonl`).' },
    provider: { type: 'string', description: 'local (default), deepgram, assemblyai, fireworks, openai.' },
    model: { type: 'string', description: "Provider model (the provider's default if omitted)." },
    mode: { type: 'string', description: '`batch` (default) or `stream` (paced at real time).' },
    options: { type: 'object', additionalProperties: optionValue, description: 'Provider options (part of the job identity). Only the options the provider, model and mode take (README "Supported options per provider"); any other is refused with 400 UNSUPPORTED_OPTION.' },
    account: { type: 'string', description: 'Provider account/project the jobs bill to (selects the cap bucket).' },
    formats: { type: 'array', minItems: 1, items: { type: 'string', enum: [...OUTPUT_FORMATS] }, description: 'Output formats (default all).' },
    priority: { type: 'integer', minimum: 1, maximum: 2097152, description: 'BullMQ priority of every job: 1 is the highest; omitted = FIFO ahead of nothing.' },
    force: { type: 'boolean', description: 'Transcribe again even where outputs exist (and re-run finished jobs).' },
    webhookUrl: { type: 'string', description: 'http(s) URL that receives signed `job.completed`, `job.failed` and `batch.completed` events of this batch (needs WEBHOOK_SECRET on the workers).' },
    plan: {
      type: 'object',
      additionalProperties: false,
      required: ['id', 'choice'],
      description:
        'The plan (and its 1-based choice) this batch runs, as `scribe enqueue --plan` sets it: kept on the batch, whose view then shows the plan\'s figures beside its progress (`planProgress`) while the plan is stored (PLAN_TTL_SECONDS). The request itself is what runs: the link is not checked against the plan.',
      properties: { id: { type: 'string', pattern: PLAN_ID_PATTERN }, choice: { type: 'integer', minimum: 1, maximum: MAX_PLAN_CHOICES } },
    },
    maxAudioHours: { type: 'number', exclusiveMinimum: 0, maximum: 1e9, description: 'Budget: no new session starts once the audio of the batch (spent plus running) would pass this many hours; the batch shows `paused: budget` until resumed.' },
    maxCost: { type: 'number', exclusiveMinimum: 0, maximum: 1e9, description: 'Budget: the same for its estimated cost in US dollars (the price table: PRICES_FILE, then the shipped defaults).' },
  },
};

/** New limits for a batch paused by its budget (all optional: none keeps the limits and only re-admits). */
export const ResumeBatchBody: Schema = {
  type: ['object', 'null'],
  additionalProperties: false,
  properties: {
    maxAudioHours: { type: 'number', exclusiveMinimum: 0, maximum: 1e9 },
    maxCost: { type: 'number', exclusiveMinimum: 0, maximum: 1e9 },
    unlimited: { type: 'boolean', description: 'Remove the batch budget.' },
  },
};

/** A batch request's fields a plan request takes too (not `plan`: a plan is not made from a plan). */
const { plan: _planLink, ...planRequestFields } = CreateBatchBody.properties as Record<string, Schema>;

/** A plan request: a batch request (nothing is enqueued) and what to compare and how to measure. */
export const CreatePlanBody: Schema = {
  type: 'object',
  additionalProperties: false,
  required: ['out'],
  description: 'A batch request (the fields of `createBatch`, validated the same way) plus the choices to compare and how to measure the audio. Nothing is enqueued.',
  properties: {
    ...planRequestFields,
    choices: {
      type: 'array',
      minItems: 1,
      maxItems: 20,
      description: "Provider/model/mode/account choices to price and time; omitted fields are the request's (a choice naming another provider takes that provider's default model). Default: the request's own.",
      items: { type: 'object', additionalProperties: false, properties: { provider: { type: 'string' }, model: { type: 'string' }, mode: { type: 'string' }, account: { type: 'string' } } },
    },
    sample: { type: 'integer', minimum: 2, maximum: 100000, description: 'Files measured at random when the source holds more (default 200); the total comes with its 95 % interval.' },
    exact: { type: 'boolean', description: 'Measure every file.' },
    seed: { type: 'integer', minimum: 0, maximum: 4294967295, description: 'Seed of the random sample (the plan states the one it used).' },
  },
};

export const PlanIdParams: Schema = {
  type: 'object',
  required: ['id'],
  properties: { id: { type: 'string', pattern: PLAN_ID_PATTERN } },
};

const Plan: Schema = {
  type: 'object',
  description: 'A plan: what the source holds, its audio, and each choice\'s cost (USD), wall time (seconds) and worker processes under the caps in force.',
  properties: {
    planId: { type: 'string' },
    createdAt: { type: 'string' },
    source: { type: 'string' },
    out: { type: 'string' },
    files: { type: 'object', properties: { listed: { type: 'integer' }, ignored: { type: 'integer' }, done: { type: 'integer' }, refused: { type: 'integer' }, toDo: { type: 'integer' }, bytes: { type: 'integer' } } },
    audio: {
      type: 'object',
      properties: { method: { type: 'string', enum: ['exact', 'sampled'] }, measured: { type: 'integer' }, seed: { type: 'integer' }, unreadable: { type: 'integer' }, fromHeader: { type: 'integer' }, seconds: Range, longestSeconds: { type: 'number' } },
    },
    choices: {
      type: 'array',
      items: {
        type: 'object',
        properties: {
          provider: { type: 'string' },
          model: { type: 'string' },
          mode: { type: 'string' },
          account: { type: 'string' },
          bucket: { type: 'string' },
          cap: { type: 'integer' },
          perWorker: { type: 'integer' },
          workers: { type: 'integer' },
          costUsd: { anyOf: [Range, { type: 'null' }] },
          wallSeconds: Range,
          price: { anyOf: [{ type: 'object', properties: { usdPerMinute: { type: 'number' }, perChannel: { type: 'boolean' }, source: { type: 'string' }, asOf: { type: 'string' } } }, { type: 'null' }] },
        },
      },
    },
    request: { type: 'object', description: 'The batch request the plan is for.' },
  },
};

// Query strings tolerate unknown parameters (cache busters); bodies do not.
export const PagingQuery: Schema = {
  type: 'object',
  properties: {
    offset: { type: 'integer', minimum: 0, default: 0 },
    limit: { type: 'integer', minimum: 1, maximum: 500, default: 100 },
  },
};

/** GET /v1/usage: the usage book read by day or by batch (checked again by the use case: app/validate.ts validateUsageQuery). */
export const UsageQuerySchema: Schema = {
  type: 'object',
  properties: {
    account: { type: 'string', pattern: '^[A-Za-z0-9_.-]{1,64}$', description: 'Only this provider account/project.' },
    provider: { type: 'string', description: 'Only this provider (local, deepgram, assemblyai, fireworks, openai).' },
    model: { type: 'string', minLength: 1, maxLength: 200, description: 'Only this model (as the jobs name it, the provider default filled in).' },
    from: { type: 'string', pattern: '^[0-9]{4}-[0-9]{2}-[0-9]{2}$', description: 'First UTC day, YYYY-MM-DD (default: 29 days before `to`).', examples: ['2026-12-01'] },
    to: { type: 'string', pattern: '^[0-9]{4}-[0-9]{2}-[0-9]{2}$', description: 'Last UTC day, included (default: today). At most 366 days from `from`.' },
    by: { type: 'string', enum: ['day', 'batch'], default: 'day', description: '`day`: a row per day and key; `batch`: a row per batch and key (the part of the batch within the days read).' },
  },
};

const UsageFigures: Record<string, Schema> = {
  provider: { type: 'string' },
  model: { type: 'string' },
  mode: { type: 'string' },
  account: { type: 'string' },
  audioSeconds: { type: 'number', description: 'Audio seconds of completed jobs (each job once, at its first end).' },
  sessions: { type: 'integer', description: 'Provider sessions started (a request or a stream; a rate-limited retry is another).' },
  attempts: { type: 'integer', description: 'Attempt ends: completed, failed, cancelled, retried, re-scheduled after a rate limit.' },
  completed: { type: 'integer' },
  failed: { type: 'integer' },
  cancelled: { type: 'integer' },
};

const UsageReport: Schema = {
  type: 'object',
  properties: {
    from: { type: 'string' },
    to: { type: 'string' },
    by: { type: 'string', enum: ['day', 'batch'] },
    filter: { type: 'object', properties: { account: { type: 'string' }, provider: { type: 'string' }, model: { type: 'string' } } },
    rows: {
      type: 'array',
      items: {
        type: 'object',
        description: 'One (day or batch, provider, model, mode, account). `day` with by=day, `batchId` with by=batch.',
        properties: {
          day: { type: 'string' },
          batchId: { type: 'string' },
          ...UsageFigures,
          estimatedCostUsd: { type: ['number', 'null'], description: 'audioSeconds / 60 × usdPerMinute; null when the price table has no entry.' },
          usdPerMinute: { type: ['number', 'null'], description: 'The price table entry used now (PRICES_FILE, then the shipped defaults).' },
        },
      },
    },
    totals: {
      type: 'object',
      properties: {
        ...Object.fromEntries(Object.entries(UsageFigures).filter(([k]) => !['provider', 'model', 'mode', 'account'].includes(k))),
        estimatedCostUsd: { type: 'number', description: 'Sum of the rows priced.' },
        unpriced: { type: 'integer', description: 'Rows without a price.' },
      },
    },
  },
};

export const BatchJobsQuery: Schema = {
  type: 'object',
  properties: {
    state: { type: 'string', enum: [...BATCH_JOB_STATES], description: 'Only jobs in this state (paged by rank in it).' },
    offset: { type: 'integer', minimum: 0, default: 0 },
    limit: { type: 'integer', minimum: 1, maximum: 500, default: 100 },
  },
};

// Ids are checked for their exact shape (the use cases check again): an id can never name another
// key, such as one of BullMQ's own (`meta`, `events`, …) beside the jobs. A malformed id is a 400.
export const JobIdParams: Schema = {
  type: 'object',
  required: ['id'],
  properties: { id: { type: 'string', pattern: JOB_ID_PATTERN, description: 'A job id: `tx_` and 40 lowercase hex digits.', examples: [`tx_${'0123456789'.repeat(4)}`] } },
};

export const BatchIdParams: Schema = {
  type: 'object',
  required: ['id'],
  properties: { id: { type: 'string', pattern: BATCH_ID_PATTERN, description: 'A batch id: `b_<yyyymmdd>-<hhmmss>_<8 hex>`.', examples: ['b_20240101-120000_0a1b2c3d'] } },
};

const BAD_ID = 'INVALID_REQUEST: a malformed id.';

const ErrorBody: Schema = {
  type: 'object',
  required: ['error'],
  properties: {
    error: {
      type: 'object',
      required: ['code', 'message'],
      properties: {
        code: {
          type: 'string',
          description:
            'Stable code: INVALID_S3_URL, INVALID_MANIFEST, INVALID_REQUEST, INVALID_JOB_SPEC, UNSUPPORTED_COMBINATION, UNSUPPORTED_OPTION, UNKNOWN_PROVIDER, INVALID_JSON, MALFORMED_REQUEST (400); UNAUTHORIZED (401); BUCKET_NOT_ALLOWED, CSRF_REJECTED (403); BATCH_NOT_FOUND, JOB_NOT_FOUND, SOURCE_NOT_FOUND, NOT_FOUND (404); REQUEST_TIMEOUT (408); INVALID_STATE (409); PAYLOAD_TOO_LARGE, MANIFEST_TOO_LARGE (413); UNSUPPORTED_MEDIA_TYPE (415); RATE_LIMITED (429); HEADER_TOO_LARGE (431); STORAGE_UNAVAILABLE, REDIS_UNAVAILABLE, SHUTTING_DOWN (503); INTERNAL (500).',
        },
        message: { type: 'string' },
        details: { type: 'object', description: 'Structured details, e.g. `{errors:[{line,message}]}` for a refused manifest, `{errors:[{path,message}]}` for a schema violation.' },
      },
    },
  },
};

const counts: Schema = { type: 'object', properties: Object.fromEntries(BATCH_JOB_STATES.map((s) => [s, { type: 'integer' }])) };

const Progress: Schema = {
  type: 'object',
  properties: {
    done: { type: 'integer', description: 'Jobs in a terminal state (completed, failed, cancelled, skipped).' },
    total: { type: 'integer' },
    fraction: { type: 'number' },
    audioSecondsDone: { type: 'number' },
    audioSecondsTotalEstimate: { type: ['number', 'null'], description: 'Audio seconds done scaled by bytes (exact once finished).' },
    filesPerSecond: { type: 'number' },
    etaSeconds: { type: ['number', 'null'] },
  },
};

const Versus: Schema = { type: ['string', 'null'], enum: ['below', 'within', 'above', null], description: "Where the projection falls against the plan's interval (1 % slack); null while not projected." };

/** domain/plan-progress.ts PlanProgress. */
export const PlanProgress: Schema = {
  type: 'object',
  description:
    "The batch beside the plan it was made from (only when the plan is still stored): the plan's figures for its choice vs the batch so far and projected. Audio in seconds (projected: audio per byte so far × all bytes), cost in USD at the plan's price, wall time from the batch's creation (projected: elapsed + ETA). Nothing is projected while the batch is still listing.",
  properties: {
    planId: { type: 'string' },
    choice: { type: 'integer' },
    provider: { type: 'string' },
    model: { type: 'string' },
    mode: { type: 'string' },
    account: { type: 'string' },
    method: { type: 'string', enum: ['exact', 'sampled'] },
    sameRouting: { type: 'boolean', description: "False when the batch does not run the choice's provider, model and mode." },
    files: { type: 'object', properties: { planned: { type: 'integer' }, batch: { type: 'integer' } } },
    audioSeconds: { type: 'object', properties: { planned: Range, done: { type: 'number' }, projected: { type: ['number', 'null'] }, versus: Versus } },
    costUsd: {
      anyOf: [{ type: 'object', properties: { planned: Range, usdPerMinute: { type: 'number' }, done: { type: 'number' }, projected: { type: ['number', 'null'] }, versus: Versus } }, { type: 'null' }],
      description: 'Null when the plan had no price for the choice.',
    },
    wallSeconds: { type: 'object', properties: { planned: Range, elapsed: { type: 'number' }, etaSeconds: { type: ['number', 'null'] }, projected: { type: ['number', 'null'] }, versus: Versus } },
    plannedEndAt: { type: 'string', format: 'date-time' },
    projectedEndAt: { type: ['string', 'null'], format: 'date-time' },
  },
};

const Batch: Schema = {
  type: 'object',
  properties: {
    id: { type: 'string' },
    status: { type: 'string', enum: ['running', 'finished', 'cancelled'] },
    listing: { type: 'boolean', description: 'True while the source is still being listed (the total still grows).' },
    listError: { type: 'string', description: 'Why listing stopped early (the batch holds the jobs enqueued before).' },
    createdAt: { type: 'string', format: 'date-time' },
    startedAt: { type: 'string', format: 'date-time', description: 'When its first job started.' },
    finishedAt: { type: 'string', format: 'date-time' },
    source: { type: 'string' },
    out: { type: 'string' },
    provider: { type: 'string' },
    model: { type: 'string' },
    mode: { type: 'string' },
    priority: { type: 'integer' },
    total: { type: 'integer' },
    bytesTotal: { type: 'integer' },
    bytesDone: { type: 'integer' },
    audioSecondsDone: { type: 'number' },
    counts,
    report: { type: 'string', description: 'S3 URL of the JSONL report (one line per file), once finished.' },
    reportDownloadUrl: { type: 'string', description: 'A presigned HTTPS URL of the report, valid for an hour.' },
    webhookUrl: { type: 'string' },
    progress: Progress,
    plan: { type: 'object', properties: { id: { type: 'string' }, choice: { type: 'integer' } }, description: 'The plan (and its 1-based choice) the batch was made from.' },
    planProgress: PlanProgress,
  },
};

const CreateBatchResult: Schema = {
  type: 'object',
  required: ['batchId', 'listing', 'listed', 'ignored', 'added', 'duplicates', 'skipped'],
  properties: {
    batchId: { type: 'string' },
    listing: { type: 'boolean', description: 'false: listing finished (201). true: still listing in the background (202): follow GET /v1/batches/{id}.' },
    listed: { type: 'integer', description: 'Objects listed (so far).' },
    ignored: { type: 'integer', description: 'Folder markers and keys under `out`.' },
    added: { type: 'integer', description: 'New jobs enqueued.' },
    duplicates: { type: 'integer', description: 'Jobs that already existed (same file and settings); the batch follows them too.' },
    skipped: { type: 'integer', description: 'Files whose outputs already exist (unless `force`).' },
    feeding: {
      type: 'boolean',
      description: 'A prefix batch whose cap bucket\'s backlog window (BACKLOG_PER_BUCKET) is full: the workers list and enqueue the rest as its jobs drain. The counts above are this call\'s; the batch\'s total grows.',
    },
  },
};

const BatchJob: Schema = {
  type: 'object',
  properties: {
    jobId: { type: 'string' },
    state: { type: 'string', enum: [...BATCH_JOB_STATES] },
    position: { type: 'integer', description: 'Position in the batch (listing order).' },
    result: {
      type: ['object', 'null'],
      description: 'Outcome once terminal: key, state, duration, requestId, outputs, errorCode, errorMessage.',
    },
  },
};

const Job: Schema = {
  type: 'object',
  properties: {
    id: { type: 'string' },
    batchId: { type: 'string' },
    state: { type: 'string', description: 'BullMQ state: waiting, prioritized, delayed, active, completed, failed.' },
    source: { type: 'string' },
    provider: { type: 'string' },
    model: { type: 'string' },
    mode: { type: 'string' },
    attemptsMade: { type: 'integer' },
    progress: { description: 'Latest progress the worker reported.' },
    createdAt: { type: 'string', format: 'date-time' },
    finishedAt: { type: 'string', format: 'date-time' },
    outputs: { type: 'object', additionalProperties: { type: 'string' }, description: 'Output keys by format (completed jobs).' },
    duration: { type: 'number', description: 'Audio seconds.' },
    requestId: { type: 'string' },
    error: { type: 'object', properties: { code: { type: 'string' }, message: { type: 'string' } }, description: 'Failed jobs: stable code (e.g. DECODE_FAILED, JOB_CANCELLED) and message.' },
  },
};

const WebhookDelivery: Schema = {
  type: 'object',
  properties: {
    id: { type: 'string', description: 'Delivery id, sent as `x-scribe-delivery` on every attempt.' },
    event: { type: 'string', enum: ['job.completed', 'job.failed', 'batch.completed'] },
    url: { type: 'string' },
    state: { type: 'string', enum: ['pending', 'delivering', 'retrying', 'delivered', 'failed', 'expired'] },
    attempts: { type: 'integer' },
    createdAt: { type: 'string', format: 'date-time' },
    lastError: { type: 'string' },
    httpStatus: { type: 'integer' },
    deliveredAt: { type: 'string', format: 'date-time' },
  },
};

// ---- operations ---------------------------------------------------------------------------------

interface Operation {
  method: 'get' | 'post';
  path: string;
  operationId: string;
  summary: string;
  description?: string;
  auth: boolean;
  params?: Schema;
  query?: Schema;
  body?: Schema;
  responses: Record<string, { description: string; schema?: Schema }>;
}

const json = (schema: Schema) => ({ 'application/json': { schema } });
const err = (description: string) => ({ description, schema: ErrorBody });
const AUTH_ERRORS = { '401': err('Missing or invalid token (UNAUTHORIZED).'), '503': err('Redis or S3 unreachable (REDIS_UNAVAILABLE, STORAGE_UNAVAILABLE).') };

export const OPERATIONS: Operation[] = [
  {
    method: 'post',
    path: '/v1/plans',
    operationId: 'createPlan',
    summary: 'Plan a batch: files, audio hours, cost and time per choice (nothing is enqueued)',
    description:
      'Validated as `createBatch` is (same errors), every choice too. The source is listed and files whose outputs exist are counted as done; audio duration is measured from headers with a ranged GET where that suffices (WAV, FLAC, MP3 with Xing/VBRI, …), else by probing the object; every file when `exact` or when there are at most `sample` files, else a random sample with the total\'s 95 % interval. Cost from the price table (PRICES_FILE, then the shipped defaults), time from the caps in force and PLAN_SPEEDS. The plan is kept PLAN_TTL_SECONDS: run it with `scribe enqueue --plan <id>`. Answers when the plan is made (a large prefix takes as long as listing it, plus the sample).',
    auth: true,
    body: CreatePlanBody,
    responses: {
      '201': { description: 'The plan.', schema: Plan },
      '400': err('As createBatch.'),
      '403': err('BUCKET_NOT_ALLOWED.'),
      '404': err('SOURCE_NOT_FOUND.'),
      ...AUTH_ERRORS,
    },
  },
  {
    method: 'get',
    path: '/v1/plans/{id}',
    operationId: 'getPlan',
    summary: 'A stored plan',
    auth: true,
    params: PlanIdParams,
    responses: { '200': { description: 'The plan.', schema: Plan }, '404': err('PLAN_NOT_FOUND (unknown or older than PLAN_TTL_SECONDS).'), ...AUTH_ERRORS },
  },
  {
    method: 'get',
    path: '/v1/usage',
    operationId: 'getUsage',
    summary: 'Usage by day or by batch: audio seconds, sessions, attempts, jobs ended, estimated cost',
    description:
      "The usage book the workers keep as sessions start and attempts end, per UTC day and per batch, per (provider, model, mode, account); kept USAGE_RETENTION_DAYS. The estimated cost is the audio minutes times the price table's figure now (PRICES_FILE, then the shipped defaults), not a bill. Deepgram requests carry `tag=<batchId>`, so Deepgram's own usage API can be reconciled with the by=batch rows.",
    auth: true,
    query: UsageQuerySchema,
    responses: {
      '200': { description: 'Rows and totals.', schema: UsageReport },
      '400': err('INVALID_REQUEST (a day not YYYY-MM-DD, from after to, more than 366 days, a bad account or by), UNKNOWN_PROVIDER.'),
      ...AUTH_ERRORS,
    },
  },
  {
    method: 'post',
    path: '/v1/batches',
    operationId: 'createBatch',
    summary: 'Create a batch from an S3 prefix or a manifest',
    description:
      'Validation is synchronous: a bad S3 URL (also a key with `.`/`..` or empty segments, a backslash or a control character, plain or percent-encoded: INVALID_S3_URL), a bucket outside S3_ALLOWED_BUCKETS (the source, the output, the manifest default bucket or any manifest line), an unknown provider or model, an impossible combination, bad options, an empty prefix or a manifest with any malformed line is refused (400/403/404) before anything is enqueued. A manifest is checked whole (its limits, every line, every object: listed where its keys are dense, HEADed where sparse) before the answer. ' +
      'Then the batch is created and its source listed page by page (ListObjectsV2 + addBulk). The request waits up to API_CREATE_WAIT_MS (default 5 s) for that: if listing finished, the answer is **201** with the final counts; otherwise **202** with the counts so far (`listing: true`) and a `Location` header, and listing continues in the background — follow `GET /v1/batches/{id}` (its `listing` turns false when every file is enqueued). A prefix of millions of keys takes minutes to list, so large batches normally answer 202.',
    auth: true,
    body: CreateBatchBody,
    responses: {
      '201': { description: 'Created; listing finished within the wait.', schema: CreateBatchResult },
      '202': { description: 'Created; listing continues in the background.', schema: CreateBatchResult },
      '400': err('Bad request: INVALID_S3_URL, INVALID_MANIFEST (details.errors names the lines), INVALID_REQUEST, INVALID_JOB_SPEC, UNSUPPORTED_COMBINATION, UNSUPPORTED_OPTION (an option the provider, model and mode do not take), UNKNOWN_PROVIDER.'),
      '403': err('BUCKET_NOT_ALLOWED.'),
      '404': err('SOURCE_NOT_FOUND (the source bucket does not exist).'),
      '413': err('PAYLOAD_TOO_LARGE (over API_MAX_BODY_BYTES), MANIFEST_TOO_LARGE (over MANIFEST_MAX_BYTES or MANIFEST_MAX_LINES).'),
      ...AUTH_ERRORS,
    },
  },
  {
    method: 'get',
    path: '/v1/batches',
    operationId: 'listBatches',
    summary: 'Recent batches, newest first (paged)',
    auth: true,
    query: PagingQuery,
    responses: { '200': { description: 'A page of batches.', schema: { type: 'object', properties: { total: { type: 'integer' }, offset: { type: 'integer' }, limit: { type: 'integer' }, batches: { type: 'array', items: Batch } } } }, ...AUTH_ERRORS },
  },
  {
    method: 'get',
    path: '/v1/batches/{id}',
    operationId: 'getBatch',
    summary: 'A batch with its progress',
    description: 'Counts by state, audio seconds done and the estimated total, created/started/finished times, rate and ETA, and the report URL once finished. Read from the batch store, so it keeps working after the jobs themselves are removed from Redis (JOB_RETENTION_SECONDS).',
    auth: true,
    params: BatchIdParams,
    responses: { '200': { description: 'The batch.', schema: Batch }, '400': err(BAD_ID), '404': err('BATCH_NOT_FOUND.'), ...AUTH_ERRORS },
  },
  {
    method: 'get',
    path: '/v1/batches/{id}/jobs',
    operationId: 'listBatchJobs',
    summary: "A batch's jobs in batch order (paged, optionally one state)",
    auth: true,
    params: BatchIdParams,
    query: BatchJobsQuery,
    responses: {
      '200': { description: 'A page of jobs.', schema: { type: 'object', properties: { total: { type: 'integer', description: 'Jobs in the batch (or in `state`).' }, offset: { type: 'integer' }, limit: { type: 'integer' }, jobs: { type: 'array', items: BatchJob } } } },
      '400': err('INVALID_REQUEST (malformed id, bad state, offset or limit).'),
      '404': err('BATCH_NOT_FOUND.'),
      ...AUTH_ERRORS,
    },
  },
  {
    method: 'post',
    path: '/v1/batches/{id}/cancel',
    operationId: 'cancelBatch',
    summary: 'Cancel a batch',
    description: 'Queued jobs are removed (cancelled); running ones are aborted on their worker and end failed with JOB_CANCELLED (`cancelling`). The batch then finishes with status `cancelled` and a report.',
    auth: true,
    params: BatchIdParams,
    responses: { '200': { description: 'Done.', schema: { type: 'object', properties: { cancelled: { type: 'integer' }, cancelling: { type: 'integer' } } } }, '400': err(BAD_ID), '404': err('BATCH_NOT_FOUND.'), ...AUTH_ERRORS },
  },
  {
    method: 'post',
    path: '/v1/batches/{id}/redrive',
    operationId: 'redriveBatch',
    summary: "Put every failed job of a batch back in the queue",
    description: 'Attempts start again; the batch is running again and writes a new report when they end.',
    auth: true,
    params: BatchIdParams,
    responses: { '200': { description: 'Done.', schema: { type: 'object', properties: { redriven: { type: 'integer' } } } }, '400': err(BAD_ID), '404': err('BATCH_NOT_FOUND.'), ...AUTH_ERRORS },
  },
  {
    method: 'post',
    path: '/v1/batches/{id}/resume',
    operationId: 'resumeBatch',
    summary: 'Resume a batch paused by its budget',
    description: 'Replaces the given limits (or removes them: `unlimited`), clears `paused: budget` and promotes the batch\'s waiting jobs, which are admitted again against the new limits (a job that still does not fit pauses the batch again). A running session was never cut.',
    auth: true,
    params: BatchIdParams,
    body: ResumeBatchBody,
    responses: { '200': { description: 'Done.', schema: { type: 'object', properties: { promoted: { type: 'integer' } } } }, '400': err(BAD_ID), '404': err('BATCH_NOT_FOUND.'), '409': err('INVALID_STATE: the batch is not running.'), ...AUTH_ERRORS },
  },
  {
    method: 'get',
    path: '/v1/batches/{id}/webhooks',
    operationId: 'listBatchWebhooks',
    summary: "Delivery status of a batch's webhooks, newest first (paged)",
    auth: true,
    params: BatchIdParams,
    query: PagingQuery,
    responses: {
      '200': { description: 'Deliveries.', schema: { type: 'object', properties: { total: { type: 'integer' }, offset: { type: 'integer' }, limit: { type: 'integer' }, deliveries: { type: 'array', items: WebhookDelivery } } } },
      '400': err('INVALID_REQUEST (malformed id, bad offset or limit).'),
      '404': err('BATCH_NOT_FOUND.'),
      ...AUTH_ERRORS,
    },
  },
  {
    method: 'get',
    path: '/v1/jobs/{id}',
    operationId: 'getJob',
    summary: 'One job: state, progress, outputs, error',
    description: 'Jobs are removed from Redis JOB_RETENTION_SECONDS after they finish (then 404; the batch keeps its result and report).',
    auth: true,
    params: JobIdParams,
    responses: { '200': { description: 'The job.', schema: Job }, '400': err(BAD_ID), '404': err('JOB_NOT_FOUND.'), ...AUTH_ERRORS },
  },
  {
    method: 'post',
    path: '/v1/jobs/{id}/cancel',
    operationId: 'cancelJob',
    summary: 'Cancel a job',
    description: 'A job that has not started is removed (`cancelled`); a running one is aborted on its worker (`cancelling`) and ends failed with JOB_CANCELLED.',
    auth: true,
    params: JobIdParams,
    responses: {
      '200': { description: 'Cancelled or being cancelled.', schema: { type: 'object', properties: { id: { type: 'string' }, state: { type: 'string', enum: ['cancelled', 'cancelling'] } } } },
      '400': err(BAD_ID),
      '404': err('JOB_NOT_FOUND.'),
      '409': err('INVALID_STATE: the job already finished.'),
      ...AUTH_ERRORS,
    },
  },
  {
    method: 'post',
    path: '/v1/jobs/{id}/redrive',
    operationId: 'redriveJob',
    summary: 'Put a failed job back in the queue',
    auth: true,
    params: JobIdParams,
    responses: {
      '200': { description: 'Queued again.', schema: { type: 'object', properties: { id: { type: 'string' }, state: { type: 'string' } } } },
      '400': err(BAD_ID),
      '404': err('JOB_NOT_FOUND.'),
      '409': err('INVALID_STATE: only failed jobs can be redriven.'),
      ...AUTH_ERRORS,
    },
  },
  {
    method: 'get',
    path: '/healthz',
    operationId: 'health',
    summary: 'Liveness: the process is up (no auth)',
    auth: false,
    responses: { '200': { description: 'Up.', schema: { type: 'object', properties: { status: { type: 'string', const: 'ok' } } } } },
  },
  {
    method: 'get',
    path: '/readyz',
    operationId: 'ready',
    summary: 'Readiness: Redis and S3 reachable (no auth)',
    auth: false,
    responses: {
      '200': { description: 'Ready.', schema: { type: 'object', properties: { status: { type: 'string', const: 'ready' }, checks: { type: 'object' } } } },
      '503': err('REDIS_UNAVAILABLE or STORAGE_UNAVAILABLE; details.checks has each check.'),
    },
  },
  {
    method: 'get',
    path: '/openapi.json',
    operationId: 'openapi',
    summary: 'This document (no auth)',
    auth: false,
    responses: { '200': { description: 'OpenAPI 3.1 document.' } },
  },
];

function parameters(op: Operation): unknown[] {
  const out: unknown[] = [];
  for (const [where, schema] of [['path', op.params], ['query', op.query]] as const) {
    const props = (schema?.properties ?? {}) as Record<string, Schema>;
    const required = (schema?.required ?? []) as string[];
    for (const [name, s] of Object.entries(props)) {
      out.push({ name, in: where, required: where === 'path' || required.includes(name), schema: s, ...(s.description ? { description: s.description } : {}) });
    }
  }
  return out;
}

/** Extra operations an extension (dashboard, metrics) documents; registered with `describeRoutes`. */
const extra: Operation[] = [];

/** Lets an extension add its routes to the document (optional; undocumented routes are still served). */
export function describeRoutes(ops: Operation[]): void {
  for (const op of ops) if (!extra.some((e) => e.method === op.method && e.path === op.path)) extra.push(op);
}

export type { Operation as OpenApiOperation };

export function openApiDocument(opts: { serverUrl?: string } = {}): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const op of [...OPERATIONS, ...extra]) {
    const responses = Object.fromEntries(Object.entries(op.responses).map(([code, r]) => [code, { description: r.description, ...(r.schema ? { content: json(r.schema) } : {}) }]));
    (paths[op.path] ??= {})[op.method] = {
      operationId: op.operationId,
      summary: op.summary,
      ...(op.description ? { description: op.description } : {}),
      security: op.auth ? [{ bearer: [] }, { cookie: [] }] : [],
      parameters: parameters(op),
      ...(op.body ? { requestBody: { required: true, content: json(op.body) } } : {}),
      responses,
    };
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'scribe-fleet API',
      version: '1',
      description:
        'Batches of transcription jobs: create from an S3 prefix or a manifest, follow, cancel, redrive, audit. Every error is `{"error":{"code","message","details?"}}` with a stable code. Authenticate with `Authorization: Bearer <token>` (one of API_TOKENS) or the `scribe_session` cookie the dashboard login sets (an opaque session id, not the token; state-changing requests signed by it must be same-origin `application/json`, else 403 CSRF_REJECTED).',
    },
    ...(opts.serverUrl ? { servers: [{ url: opts.serverUrl }] } : {}),
    components: {
      securitySchemes: {
        bearer: { type: 'http', scheme: 'bearer', description: 'One of API_TOKENS.' },
        cookie: { type: 'apiKey', in: 'cookie', name: 'scribe_session', description: 'A session id set by POST /login (dashboard) for SESSION_TTL_SECONDS; revoked by /logout.' },
      },
      schemas: { Error: ErrorBody, Batch, Plan, UsageReport, CreatePlanRequest: CreatePlanBody, CreateBatchRequest: CreateBatchBody, CreateBatchResult, BatchJob, Job, WebhookDelivery, Progress },
    },
    security: [{ bearer: [] }, { cookie: [] }],
    paths,
  };
}
