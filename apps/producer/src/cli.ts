#!/usr/bin/env node
// First: OpenTelemetry must hook http/ioredis/aws-sdk before they load (CommonJS keeps this order).
import { shutdownTelemetry } from './instrumentation';
import { createReadStream, statSync } from 'node:fs';
import { extname } from 'node:path';
import { Command, CommanderError, Option } from 'commander';
import { ConfigError, countManifestEntries, InvalidRequestError, InvalidStateError, isBatchId, isJobId, loadConfig, parseS3Url, ScribeError, StorageUnavailableError, type BatchProgress, type BatchRecord, type Config } from '@scribe-fleet/core';
import type { BatchService, CreateBatchProgress, CreateBatchRequest } from '@scribe-fleet/core/app/batch-service';
import { envWithSecrets } from '@scribe-fleet/core/adapters/secrets';
import { isRedisDown } from './api/http-errors';
import { bar, formatCount, formatDuration, formatHours, LiveBlock, percent } from './cli/progress';
import { watchBatch } from './cli/watch';
import { openProducer, type ProducerContext } from './context';
import { enqueueBatch } from './enqueue';
import { planLines } from './cli/plan-table';
import { usageLines } from './cli/usage-table';
import { openUsage } from '@scribe-fleet/core/adapters/usage-services';
import type { UsageQuery } from '@scribe-fleet/core/app/validate';
import { openPlans } from '@scribe-fleet/core/adapters/plan-services';
import type { PlanChoice, PlanRequest } from '@scribe-fleet/core/app/plan-batch';
import { queueStatus } from './status';
import { validateResume } from '@scribe-fleet/core/app/validate';

/** Exit codes scripts can rely on (README "CLI exit codes" lists them). */
export const EXIT = {
  OK: 0,
  INTERNAL: 1,
  /** Invalid S3 URL, bucket not allowed, unknown provider/model, impossible combination, bad manifest, bad usage. */
  BAD_INPUT: 2,
  /** S3 or Redis unreachable. */
  UNAVAILABLE: 3,
  /** `watch`: the batch finished and at least one job failed. */
  JOBS_FAILED: 4,
  /** `watch`: the batch was cancelled (or some of its jobs were), none failed. */
  CANCELLED: 5,
  /** No such batch or job (never existed, or removed after JOB_RETENTION_SECONDS). */
  NOT_FOUND: 6,
  /** The operation does not fit the state: redrive of a job that has not failed, cancel of a finished one. */
  CONFLICT: 7,
  CONFIG: 78,
  /** Ctrl-C: `enqueue` stopped after the current page (the batch keeps what was enqueued), `watch` stopped watching. */
  INTERRUPTED: 130,
} as const;

class Interrupted extends Error {}

function parseOption(kv: string, acc: Record<string, string | boolean | number> = {}) {
  const eq = kv.indexOf('=');
  if (eq <= 0) throw new InvalidRequestError(`--option expects key=value, got ${JSON.stringify(kv)}`);
  const k = kv.slice(0, eq);
  const v = kv.slice(eq + 1);
  acc[k] = v === 'true' ? true : v === 'false' ? false : /^-?\d+(\.\d+)?$/.test(v) ? Number(v) : v;
  return acc;
}

/** `--format f` (repeatable): the output formats; validated with the request (domain/job-spec.ts OUTPUT_FORMATS). */
function collectFormat(f: string, acc: string[] = []) {
  return [...acc, f];
}

function parseInteger(name: string) {
  return (v: string) => {
    if (!/^-?\d+$/.test(v)) throw new InvalidRequestError(`${name} expects an integer, got ${JSON.stringify(v)}`);
    return Number(v);
  };
}

/** A positive number (a budget's hours or dollars). */
function parsePositive(name: string) {
  return (v: string) => {
    const n = Number(v);
    if (!/^\d+(\.\d+)?$/.test(v) || !(n > 0)) throw new InvalidRequestError(`${name} expects a number above 0, got ${JSON.stringify(v)}`);
    return n;
  };
}

/** The budget flags as request fields. */
function budgetOf(o: { maxAudioHours?: number; maxCost?: number }): { maxAudioHours?: number; maxCost?: number } {
  return { ...(o.maxAudioHours !== undefined ? { maxAudioHours: o.maxAudioHours } : {}), ...(o.maxCost !== undefined ? { maxCost: o.maxCost } : {}) };
}

function config(): Config {
  return loadConfig(envWithSecrets(process.env));
}

function exitCodeOf(err: unknown): { exit: number; code: string } {
  if (err instanceof Interrupted) return { exit: EXIT.INTERRUPTED, code: 'INTERRUPTED' };
  if (err instanceof CommanderError) return { exit: EXIT.BAD_INPUT, code: 'INVALID_REQUEST' };
  if (err instanceof ConfigError) return { exit: EXIT.CONFIG, code: err.code };
  if (err instanceof StorageUnavailableError) return { exit: EXIT.UNAVAILABLE, code: err.code };
  if (isRedisDown(err)) return { exit: EXIT.UNAVAILABLE, code: 'REDIS_UNAVAILABLE' };
  if (err instanceof ScribeError) {
    if (err.code === 'JOB_NOT_FOUND' || err.code === 'BATCH_NOT_FOUND' || err.code === 'PLAN_NOT_FOUND') return { exit: EXIT.NOT_FOUND, code: err.code };
    if (err instanceof InvalidStateError) return { exit: EXIT.CONFLICT, code: err.code };
    if (err.kind === 'unrecoverable') return { exit: EXIT.BAD_INPUT, code: err.code };
    return { exit: EXIT.INTERNAL, code: err.code };
  }
  return { exit: EXIT.INTERNAL, code: 'INTERNAL' };
}

/** Report the error and exit with its code, once this run's spans are flushed (at once when tracing is off). */
function fail(err: unknown, json: boolean): void {
  const { exit, code } = exitCodeOf(err);
  const message = err instanceof Error ? err.message : String(err);
  if (json) process.stdout.write(`${JSON.stringify({ error: { code, message, ...(err instanceof ScribeError && err.details ? { details: err.details } : {}) } })}\n`);
  else if (!(err instanceof CommanderError)) process.stderr.write(`scribe: ${code}: ${message}\n`); // commander printed its own
  process.exitCode = exit;
  void shutdownTelemetry().finally(() => process.exit(exit));
}

interface Ctx {
  producer: ProducerContext;
  service: BatchService;
}

/** Open Redis/S3 and a BatchService, run `fn`, close; any error is reported and mapped to an exit code. */
async function withService(json: boolean, fn: (c: Ctx) => Promise<void>): Promise<void> {
  let producer: ProducerContext | undefined;
  try {
    producer = openProducer(config());
    // Reported through the failing command instead.
    producer.redis.on('error', () => {});
    producer.controlQueues.onError(() => {});
    await fn({ producer, service: producer.service });
  } catch (e) {
    fail(e, json);
  } finally {
    const closing = Promise.resolve(producer?.close()).catch(() => undefined);
    await Promise.race([closing, new Promise((r) => setTimeout(r, 5_000).unref())]);
  }
}

const print = (json: boolean, value: unknown, human: () => string) => process.stdout.write(json ? `${JSON.stringify(value)}\n` : `${human()}\n`);

/**
 * A manifest file as the service reads it: streamed, once to validate and again to enqueue (never
 * read whole into memory), with its size so one over MANIFEST_MAX_BYTES is refused unread. A read
 * error is bad input, like a file that cannot be opened.
 */
function manifestFile(path: string): { open: () => AsyncIterable<Uint8Array>; bytes: number } {
  let bytes: number;
  try {
    bytes = statSync(path).size;
  } catch (e) {
    throw new InvalidRequestError(`--manifest ${path}: ${(e as Error).message}`);
  }
  return {
    bytes,
    open: async function* () {
      try {
        for await (const chunk of createReadStream(path, { highWaterMark: 256 * 1024 })) yield chunk as Buffer;
      } catch (e) {
        throw new InvalidRequestError(`--manifest ${path}: ${(e as Error).message}`);
      }
    },
  };
}

/** `--manifest FILE` (with `<source>` naming the bucket of bare keys) as the service takes it. */
function manifestInput(path: string, source: string | undefined): ReturnType<typeof manifestFile> & { format: 'csv' | 'jsonl'; defaultBucket?: string } {
  const ext = extname(path).toLowerCase();
  const format = ext === '.csv' ? 'csv' : ext === '.jsonl' || ext === '.ndjson' ? 'jsonl' : null;
  if (!format) throw new InvalidRequestError(`--manifest ${path}: the extension must be .jsonl, .ndjson or .csv`);
  let defaultBucket: string | undefined;
  if (source) {
    const loc = parseS3Url(source);
    if (loc.key) throw new InvalidRequestError(`with --manifest, <source> only names the bucket of bare keys (s3://${loc.bucket}), not a prefix`);
    defaultBucket = loc.bucket;
  }
  return { ...manifestFile(path), format, ...(defaultBucket ? { defaultBucket } : {}) };
}

/** `--compare provider[:model[:mode[:account]]]` (empty parts: the request's). */
function parseChoice(v: string, acc: PlanChoice[] = []): PlanChoice[] {
  const [provider, model, mode, account, ...rest] = v.split(':');
  if (!provider || rest.length) throw new InvalidRequestError(`--compare expects provider[:model[:mode[:account]]], got ${JSON.stringify(v)}`);
  return [...acc, { provider, ...(model ? { model } : {}), ...(mode ? { mode } : {}), ...(account ? { account } : {}) }];
}

function enqueueLines(p: CreateBatchProgress, what: string, elapsedS: number, total?: number): string[] {
  const rate = elapsedS > 0 ? p.listed / elapsedS : 0;
  const counts = `${formatCount(p.added)} added · ${formatCount(p.skipped)} skipped (outputs exist) · ${formatCount(p.duplicates)} already queued · ${formatCount(p.ignored)} ignored`;
  if (total) {
    const f = p.listed / total;
    const eta = rate > 0 ? (total - p.listed) / rate : null;
    return [`enqueue ${bar(f)} ${percent(f)}  ${formatCount(p.listed)} / ${formatCount(total)} files · ${rate.toFixed(0)}/s · ETA ${formatDuration(eta)}`, `        ${counts}`];
  }
  return [`listing ${what}: ${formatCount(p.listed)} objects · ${rate.toFixed(0)}/s · ${formatDuration(elapsedS)}`, `        ${counts}`];
}

/** The options that say where a batch's jobs run: provider, model, mode, provider options, account. */
function withRouting(cmd: Command): Command {
  return cmd
    .option('--provider <name>', 'provider', 'local')
    .option('--model <id>', 'model (provider default if omitted)')
    .addOption(new Option('--mode <mode>', 'batch request or real-time paced stream').choices(['batch', 'stream']).default('batch'))
    .option('--option <key=value>', 'provider option (repeatable)', parseOption, {})
    .option('--account <id>', 'provider account/project the jobs bill to');
}

interface RoutingFlags {
  provider: string;
  model?: string;
  mode: string;
  option: Record<string, string | number | boolean>;
  account?: string;
}

/** The request fields of `withRouting`'s options. */
function routingOf(o: RoutingFlags): Pick<CreateBatchRequest, 'provider' | 'model' | 'mode' | 'options' | 'account'> {
  return { provider: o.provider, mode: o.mode, options: o.option, ...(o.model ? { model: o.model } : {}), ...(o.account ? { account: o.account } : {}) };
}

export function buildCli(): Command {
  const program = new Command('scribe').description('Enqueue, follow and operate bulk transcription batches').showHelpAfterError().exitOverride();

  const enqueue = program
    .command('enqueue')
    .description('create a batch: one job per object under an S3 prefix, or per line of a manifest')
    .argument('[source]', 's3://bucket/prefix of the audio files (with --manifest: s3://bucket of bare keys)')
    .option('--out <s3url>', 's3://bucket/prefix/ for the transcripts and the batch report (required unless --plan)')
    .option('--manifest <file>', 'a JSONL (.jsonl/.ndjson) or CSV (.csv) list of files instead of a prefix; any bad line refuses it whole')
    .option('--plan <id>', 'run a stored plan (scribe plan): its source, output, options and the choice --choice picks')
    .option('--choice <n>', "with --plan: which of the plan's choices (1-based)", parseInteger('--choice'));
  withRouting(enqueue)
    .option('--format <f>', 'output format, repeatable: json, txt, srt, vtt (default: all four)', collectFormat)
    .option('--priority <n>', 'BullMQ priority of every job, 1 (highest) … 2097152', parseInteger('--priority'))
    .option('--force', 'transcribe again even where outputs exist')
    .option('--webhook <url>', 'http(s) URL for signed job and batch events of this batch')
    .option('--max-audio-hours <h>', 'budget: no new session starts once the batch would pass this much audio (it pauses: scribe resume)', parsePositive('--max-audio-hours'))
    .option('--max-cost <usd>', 'budget: the same for its estimated cost in US dollars (the price table)', parsePositive('--max-cost'))
    .option('--json', 'print a JSON result (no progress output)')
    .action(
      async (
        source: string | undefined,
        o: { out?: string; manifest?: string; plan?: string; choice?: number; provider: string; model?: string; mode: string; option: Record<string, string | number | boolean>; account?: string; format?: string[]; priority?: number; force?: boolean; webhook?: string; maxAudioHours?: number; maxCost?: number; json?: boolean },
        cmd: Command,
      ) => {
        const json = Boolean(o.json);
        if (o.plan) {
          // The plan holds the whole request: a flag beside it would be silently dropped.
          const given = ['out', 'manifest', 'provider', 'model', 'mode', 'option', 'account', 'format', 'priority', 'force', 'webhook'].filter((k) => cmd.getOptionValueSource(k) === 'cli');
          if (source || given.length) throw new InvalidRequestError(`--plan runs the plan's own request: drop ${[...(source ? ['<source>'] : []), ...given.map((k) => `--${k}`)].join(', ')}`);
        } else if (!o.out) {
          throw new InvalidRequestError("required option '--out <s3url>' not specified");
        }
        await withService(json, async ({ producer, service }) => {
          let req: CreateBatchRequest = {
            out: o.out ?? '',
            ...routingOf(o),
            ...(o.format?.length ? { formats: o.format as CreateBatchRequest['formats'] } : {}),
            ...(o.priority !== undefined ? { priority: o.priority } : {}),
            ...(o.force ? { force: true } : {}),
            ...(o.webhook ? { webhookUrl: o.webhook } : {}),
            ...budgetOf(o),
          };
          let total: number | undefined;
          if (o.plan) {
            // A stored plan's request, validated again as any create request is.
            req = await openPlans(producer).request(o.plan, o.choice ?? 1);
            // A budget is the run's, not the plan's: it goes beside --plan.
            req = { ...req, ...budgetOf(o) };
          } else if (o.manifest) {
            const manifest = manifestInput(o.manifest, source);
            req.manifest = manifest;
            // Files it lists, for the progress bar only (the service validates it for real); counted
            // on a read of its own, in the background, and only if within the size limit.
            if (!o.json && process.stderr.isTTY && manifest.bytes <= producer.config.MANIFEST_MAX_BYTES) {
              void countManifestEntries(manifest.open(), manifest.format).then(
                (n) => (total = n),
                () => undefined,
              );
            }
          } else if (source) {
            req.source = source;
          } else {
            throw new InvalidRequestError('give <source> (s3://bucket/prefix), --manifest FILE or --plan ID');
          }

          const live = new LiveBlock(process.stderr);
          const showProgress = !json && live.enabled;
          const t0 = Date.now();
          const interrupt = new AbortController();
          const onSigint = () => interrupt.abort();
          process.once('SIGINT', onSigint);
          try {
            const res = await enqueueBatch(
              req,
              {
                storage: producer.storage,
                fleet: producer.fleet,
                onProgress: (p) => {
                  if (showProgress) live.render(enqueueLines(p, source ?? o.manifest ?? '', (Date.now() - t0) / 1000, total));
                  if (interrupt.signal.aborted) throw new Interrupted('interrupted: stopped after the current page; the batch keeps what was enqueued (enqueue again to add the rest)');
                },
              },
              { service },
            );
            if (showProgress) live.done();
            const summary = { batchId: res.batchId, listed: res.listed, ignored: res.ignored, added: res.added, duplicates: res.duplicates, skipped: res.skipped, jobs: res.listed - res.ignored, feeding: res.feeding === true };
            print(json, summary, () =>
              [
                `batch ${res.batchId}: listed ${formatCount(res.listed)}, added ${formatCount(res.added)}, already queued ${formatCount(res.duplicates)}, skipped (outputs exist) ${formatCount(res.skipped)}, ignored ${formatCount(res.ignored)}`,
                ...(res.feeding ? ['the rest of the prefix is listed and enqueued by the workers as its jobs drain (BACKLOG_PER_BUCKET)'] : []),
                `follow it with: scribe watch ${res.batchId}`,
              ].join('\n'),
            );
          } finally {
            process.off('SIGINT', onSigint);
          }
        });
      },
    );

  const plan = program
    .command('plan')
    .description('plan a batch without enqueuing it: files, audio hours, and cost, time and workers per provider/model/mode')
    .argument('[source]', 's3://bucket/prefix of the audio files (with --manifest: s3://bucket of bare keys)')
    .requiredOption('--out <s3url>', 's3://bucket/prefix/ the batch would write to (files whose outputs exist there are counted as done)')
    .option('--manifest <file>', 'a JSONL or CSV list of files instead of a prefix');
  withRouting(plan)
    .option('--format <f>', 'output formats the batch would write, repeatable (default: all four)', collectFormat)
    .option('--compare <choice>', 'another choice to price and time, provider[:model[:mode[:account]]] (repeatable)', parseChoice)
    .option('--sample <n>', 'files measured at random when there are more (default 200)', parseInteger('--sample'))
    .option('--exact', 'measure every file')
    .option('--seed <n>', 'seed of the random sample', parseInteger('--seed'))
    .option('--force', 'plan as if outputs did not exist')
    .option('--json', 'print the plan as JSON')
    .action(
      async (
        source: string | undefined,
        o: { out: string; manifest?: string; provider: string; model?: string; mode: string; option: Record<string, string | number | boolean>; account?: string; format?: string[]; compare?: PlanChoice[]; sample?: number; exact?: boolean; seed?: number; force?: boolean; json?: boolean },
      ) => {
        const json = Boolean(o.json);
        await withService(json, async ({ producer }) => {
          const req: PlanRequest = {
            out: o.out,
            ...routingOf(o),
            ...(o.format?.length ? { formats: o.format as PlanRequest['formats'] } : {}),
            ...(o.force ? { force: true } : {}),
            ...(o.compare?.length ? { choices: [{}, ...o.compare] } : {}),
            ...(o.sample !== undefined ? { sample: o.sample } : {}),
            ...(o.exact ? { exact: true } : {}),
            ...(o.seed !== undefined ? { seed: o.seed } : {}),
          };
          if (o.manifest) req.manifest = manifestInput(o.manifest, source);
          else if (source) req.source = source;
          else throw new InvalidRequestError('give <source> (s3://bucket/prefix) or --manifest FILE');
          const plan = await openPlans(producer).create(req);
          print(json, plan, () => planLines(plan).join('\n'));
        });
      },
    );

  program
    .command('watch')
    .description('follow a batch until it finishes: live bars on a TTY, or JSON lines (exit 0 all done, 4 some failed, 5 cancelled)')
    .argument('<batchId>')
    .option('--interval <ms>', 'poll interval', parseInteger('--interval'), 1000)
    .option('--json', 'one JSON line per tick on stdout, then a final line ("type":"final")')
    .action(async (batchId: string, o: { interval: number; json?: boolean }) => {
      const json = Boolean(o.json);
      await withService(json, async ({ service }) => {
        const stop = new AbortController();
        const onSigint = () => stop.abort();
        process.once('SIGINT', onSigint);
        try {
          const { outcome, interrupted } = await watchBatch(service, batchId, { intervalMs: Math.max(50, o.interval), json, stdout: process.stdout, stderr: process.stderr, signal: stop.signal, isUnavailable: (e) => isRedisDown(e) || e instanceof StorageUnavailableError });
          process.exitCode = interrupted ? EXIT.INTERRUPTED : outcome === 'failed' ? EXIT.JOBS_FAILED : outcome === 'cancelled' ? EXIT.CANCELLED : EXIT.OK;
        } finally {
          process.off('SIGINT', onSigint);
        }
      });
    });

  program
    .command('batches')
    .description('recent batches, newest first')
    .option('--limit <n>', 'how many', parseInteger('--limit'), 20)
    .option('--json', 'print JSON')
    .action(async (o: { limit: number; json?: boolean }) => {
      const json = Boolean(o.json);
      await withService(json, async ({ service }) => {
        const ids = await service.batches.recent(Math.max(1, o.limit));
        const batches: Array<BatchRecord & { progress: BatchProgress }> = [];
        for (const id of ids) {
          const b = await service.getBatch(id).catch(() => null);
          if (b) batches.push({ ...b.batch, progress: b.progress });
        }
        print(json, { total: await service.batches.count(), batches }, () =>
          batches.length === 0
            ? 'no batches'
            : [
                `${'BATCH'.padEnd(28)} ${'STATUS'.padEnd(9)} ${'CREATED'.padEnd(20)} ${'DONE'.padStart(15)} ${'FAILED'.padStart(7)} ${'AUDIO'.padStart(9)}  SOURCE`,
                ...batches.map(
                  (b) =>
                    `${b.id.padEnd(28)} ${(b.listing ? 'listing' : b.paused ? 'paused' : b.status).padEnd(9)} ${b.createdAt.slice(0, 19).replace('T', ' ').padEnd(20)} ${`${formatCount(b.progress.done)}/${formatCount(b.total)}`.padStart(15)} ${formatCount(b.counts.failed).padStart(7)} ${formatHours(b.audioSecondsDone).padStart(9)}  ${b.source}`,
                ),
              ].join('\n'),
        );
      });
    });

  program
    .command('job')
    .description('one job: state, progress, outputs, error')
    .argument('<jobId>')
    .option('--json', 'print JSON')
    .action(async (id: string, o: { json?: boolean }) => {
      const json = Boolean(o.json);
      await withService(json, async ({ service }) => {
        const j = await service.getJob(id);
        print(json, j, () =>
          [
            `job      ${j.id}${j.batchId ? `  (batch ${j.batchId})` : ''}`,
            `state    ${j.state}  attempts ${j.attemptsMade}`,
            `source   ${j.source}`,
            `provider ${j.provider} ${j.model} ${j.mode}`,
            ...(j.duration !== undefined ? [`audio    ${j.duration.toFixed(1)} s`] : []),
            ...(j.outputs ? Object.entries(j.outputs).map(([f, k]) => `output   ${f}: ${k}`) : []),
            ...(j.error ? [`error    ${j.error.code}: ${j.error.message}`] : []),
          ].join('\n'),
        );
      });
    });

  type Result = Record<string, unknown>;
  // By the id's exact shape: anything else is bad input (exit 2), looked up nowhere, so no id can
  // name a key of the queue's own (`scribe cancel meta`). The use cases check the shape again.
  const byKind = async (id: string, batch: () => Promise<Result>, job: () => Promise<Result>): Promise<{ kind: 'batch' | 'job'; result: Result }> => {
    if (isBatchId(id)) return { kind: 'batch', result: await batch() };
    if (isJobId(id)) return { kind: 'job', result: await job() };
    throw new InvalidRequestError(`not a batch id (b_<yyyymmdd>-<hhmmss>_<8 hex>) or a job id (tx_ and 40 hex digits): ${JSON.stringify(id.length > 80 ? `${id.slice(0, 80)}…` : id)}`);
  };

  program
    .command('cancel')
    .description('cancel a job or a whole batch (queued jobs are removed; running ones end with JOB_CANCELLED)')
    .argument('<id>', 'a batch id (b_…) or a job id (tx_…)')
    .option('--json', 'print JSON')
    .action(async (id: string, o: { json?: boolean }) => {
      const json = Boolean(o.json);
      await withService(json, async ({ service }) => {
        const r = await byKind(
          id,
          async () => ({ ...(await service.cancelBatch(id)) }),
          async () => ({ ...(await service.cancelJob(id)) }),
        );
        print(json, { id, kind: r.kind, ...r.result }, () =>
          r.kind === 'batch'
            ? `batch ${id}: ${String(r.result.cancelled)} queued job(s) cancelled, ${String(r.result.cancelling)} running job(s) being cancelled`
            : `job ${id}: ${String(r.result.state)}`,
        );
      });
    });

  program
    .command('redrive')
    .description('put a failed job, or every failed job of a batch, back in the queue')
    .argument('<id>', 'a batch id (b_…) or a job id (tx_…)')
    .option('--json', 'print JSON')
    .action(async (id: string, o: { json?: boolean }) => {
      const json = Boolean(o.json);
      await withService(json, async ({ service }) => {
        const r = await byKind(id, async () => ({ ...(await service.redriveBatch(id)) }), async () => ({ ...(await service.redriveJob(id)) }));
        print(json, { id, kind: r.kind, ...r.result }, () =>
          r.kind === 'batch' ? `batch ${id}: ${String(r.result.redriven)} failed job(s) queued again` : `job ${id}: queued again`,
        );
      });
    });

  program
    .command('resume')
    .description('resume a batch paused by its budget: raise (or remove) its limits; its waiting jobs are admitted again')
    .argument('<batchId>')
    .option('--max-audio-hours <h>', 'the new audio limit of the batch', parsePositive('--max-audio-hours'))
    .option('--max-cost <usd>', 'the new cost limit of the batch (US dollars)', parsePositive('--max-cost'))
    .option('--unlimited', 'remove the batch budget')
    .option('--json', 'print JSON')
    .action(async (id: string, o: { maxAudioHours?: number; maxCost?: number; unlimited?: boolean; json?: boolean }) => {
      const json = Boolean(o.json);
      await withService(json, async ({ service }) => {
        const r = await service.resumeBatch(id, validateResume({ ...budgetOf(o), ...(o.unlimited ? { unlimited: true } : {}) }));
        print(json, { batchId: id, ...r }, () => `batch ${id}: resumed, ${r.promoted} waiting job(s) admitted again (a job that still does not fit pauses it again)`);
      });
    });

  program
    .command('usage')
    .description('usage by day or by batch: audio, provider sessions, attempts, jobs ended and the estimated cost (the workers\' usage book)')
    .option('--account <id>', 'only this provider account/project')
    .option('--provider <name>', 'only this provider')
    .option('--model <id>', 'only this model')
    .option('--from <day>', 'first UTC day, YYYY-MM-DD (default: 29 days before --to)')
    .option('--to <day>', 'last UTC day, YYYY-MM-DD, included (default: today); at most 366 days')
    .addOption(new Option('--by <what>', 'a row per day or per batch').choices(['day', 'batch']).default('day'))
    .option('--json', 'print JSON (the API\'s GET /v1/usage answer)')
    .action(async (o: { account?: string; provider?: string; model?: string; from?: string; to?: string; by: string; json?: boolean }) => {
      const json = Boolean(o.json);
      await withService(json, async ({ producer }) => {
        const q: UsageQuery = { by: o.by };
        for (const k of ['account', 'provider', 'model', 'from', 'to'] as const) if (o[k] !== undefined) q[k] = o[k];
        const report = await openUsage(producer).read(q);
        print(json, report, () => usageLines(report).join('\n'));
      });
    });

  program
    .command('status')
    .description('job counts by state and failures by error code, over every cap-bucket queue')
    .option('--json', 'print JSON')
    .action(async (o: { json?: boolean }) => {
      const json = Boolean(o.json);
      await withService(json, async ({ producer }) => {
        const st = await queueStatus(producer.fleet);
        print(json, st, () =>
          [...Object.entries(st.counts).map(([state, n]) => `${state.padEnd(12)} ${n}`), ...Object.entries(st.failuresByCode).map(([code, n]) => `  failed ${code}: ${n}`)].join('\n'),
        );
      });
    });
  return program;
}

if (require.main === module) {
  buildCli()
    .parseAsync(process.argv)
    .then(() => shutdownTelemetry())
    .catch((e: unknown) => {
      // --help / --version: commander printed them; not an error.
      if (e instanceof CommanderError && (e.code === 'commander.helpDisplayed' || e.code === 'commander.version' || e.code === 'commander.help')) {
        process.exitCode = EXIT.OK;
        return;
      }
      fail(e, process.argv.includes('--json'));
    });
}
