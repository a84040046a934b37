/**
 * Planning a batch (issue 15): what a prefix or manifest holds, what it would cost on each provider,
 * model and mode, and how long the fleet would take under the caps in force. Nothing is enqueued.
 *
 * The request is validated as creating the batch would be (app/validate.ts), every choice too. The
 * source is listed page by page as the create call would list it (ignored keys, unsafe keys, files
 * whose outputs exist: `bookPage`, the create path's own code). Audio duration is measured per file
 * (`measure`: from the header where a ranged GET suffices, else by probing the object): all files in
 * exact mode or when there are few, else a seeded simple random sample, whose estimate of the total
 * comes with its 95 % interval (domain/sampling.ts). Cost and time per choice: domain/plan.ts.
 */
import { randomBytes } from 'node:crypto';
import { capBucketsFromConfig } from '../domain/config';
import type { Mode, ProviderName } from '../domain/catalogue';
import { choiceFigures, speedFor, type ChoiceFigures, type Range, type SpeedSetting } from '../domain/plan';
import { priceFor, type PriceEntry } from '../domain/prices';
import { estimateTotalBySize, KeySampler } from '../domain/sampling';
import { ScribeError } from '../domain/errors';
import { asPrefix, formatS3Url } from '../domain/s3-url';
import type { ObjectInfo, Storage } from '../ports/storage';
import { bookPage, type CreateBatchProgress, type Page } from './create-batch';
import { nowIso, type BatchDeps } from './deps';
import { checkManifest, manifestPages } from './manifest-batch';
import { ListingCursor } from './object-lookup';
import { validatePlanRequest, type PlanRequest } from './validate';

export type { PlanRequest, PlanChoice } from './validate';

/** Files measured when neither `exact` nor `sample` is given: all of them up to this many, else a sample of this many. */
export const DEFAULT_SAMPLE = 200;
/** Files measured at once (ranged GETs and probes are I/O-bound). */
const MEASURE_CONCURRENCY = 16;

export interface PlannedChoice extends ChoiceFigures {
  provider: ProviderName;
  model: string;
  mode: Mode;
  account: string;
  /** The cap bucket (`provider:account:class:mode`), its cap and jobs per worker process. */
  bucket: string;
  cap: number;
  perWorker: number;
  speed: SpeedSetting;
  price: Pick<PriceEntry, 'usdPerMinute' | 'source' | 'asOf' | 'perChannel'> | null;
}

export interface Plan {
  planId: string;
  createdAt: string;
  source: string;
  out: string;
  files: {
    listed: number;
    /** Listed keys that are not inputs (folder markers, keys under the output prefix). */
    ignored: number;
    /** Files whose outputs exist (skip-if-done, as enqueue would skip them). */
    done: number;
    /** Keys the batch would fail at once (unsafe keys). */
    refused: number;
    /** Files a batch would transcribe, and their bytes. */
    toDo: number;
    bytes: number;
  };
  audio: {
    /** `exact`: every file measured; `sampled`: `measured` files drawn at random (seed given). */
    method: 'exact' | 'sampled';
    measured: number;
    seed?: number;
    /** Sampled: how the total was estimated (`size`: regression on the files' sizes; `mean`: N × the sample mean). */
    estimator?: 'size' | 'mean';
    /** Measured files that are not audio the decoder reads (they would fail as jobs; counted as 0 s). */
    unreadable: number;
    /** Files measured from ranged GETs (the header, or its tail for Ogg and mp4), the rest by probing the whole object. */
    fromHeader: number;
    /** Total audio of the files to do, seconds, with its 95 % interval. */
    seconds: Range;
    /** The longest file measured. */
    longestSeconds: number;
  };
  choices: PlannedChoice[];
  /** The batch request the plan is for (a prefix plan can be run by id: `scribe enqueue --plan`). */
  request: Omit<PlanRequest, 'manifest' | 'choices' | 'sample' | 'exact' | 'seed'>;
}

/**
 * One file's audio duration, seconds; throws a ScribeError when the file is not audio it can read.
 * `exact`: a duration the container states, never an estimate (app/probe-duration.ts).
 */
export type MeasureDuration = (obj: ObjectInfo, exact: boolean) => Promise<{ seconds: number; method: 'header' | 'tail' | 'probe' }>;

export interface PlanDeps extends Pick<BatchDeps, 'config' | 'storage' | 'clock'> {
  measure: MeasureDuration;
  /** Prices read from PRICES_FILE (first), the defaults fill the rest. */
  prices?: readonly PriceEntry[];
  /** PLAN_SPEEDS. */
  speeds?: Readonly<Record<string, SpeedSetting>>;
}

/** A new plan id (PLAN_ID_PATTERN). */
export function newPlanId(): string {
  return `plan_${randomBytes(8).toString('hex')}`;
}

export async function planBatch(deps: PlanDeps, req: PlanRequest): Promise<Plan> {
  const { out, source, routing, choices } = validatePlanRequest(deps.config, req);
  const outPrefix = asPrefix(out.key);
  const progress: CreateBatchProgress = { listed: 0, ignored: 0, added: 0, duplicates: 0, skipped: 0 };
  const outputs = req.force ? undefined : new ListingCursor(deps.storage, out.bucket, outPrefix);
  // Files to do: every one kept when measuring all of them, else a seeded sample drawn as the listing
  // goes (KeySampler: the same seed draws the same keys; memory is the sample's, not the prefix's).
  const sampleSize = req.sample ?? DEFAULT_SAMPLE;
  const seed = req.seed ?? randomBytes(4).readUInt32BE(0);
  const all: ObjectInfo[] | undefined = req.exact ? [] : undefined;
  const sampler = new KeySampler<ObjectInfo>(sampleSize, seed);
  const files = { toDo: 0, bytes: 0, refused: 0 };
  const pages: AsyncIterable<Page> = source ? prefixPages(deps.storage, source.bucket, source.key) : manifestPages(req.manifest!, await checkManifest(deps, req.manifest!, routing), deps.config);
  for await (const page of pages) {
    const booked = await bookPage(deps, 'plan', req, out, page, outputs, progress, [], {});
    files.refused += booked.entries.filter((e) => e.state === 'failed').length;
    for (const s of booked.toAdd) {
      // Only what a plan needs of each file: its location and size.
      const obj: ObjectInfo = { bucket: s.source.bucket, key: s.source.key, etag: s.source.etag, size: s.source.size ?? 0 };
      files.toDo += 1;
      files.bytes += obj.size ?? 0;
      if (all) all.push(obj);
      // Ranked by key alone: the same seed draws the same files of the same keys, in any bucket (a
      // copy of an archive, a test's own bucket), so a sampled plan can be reproduced.
      else sampler.offer(obj.key, obj);
    }
  }

  const exact = all !== undefined || files.toDo <= sampleSize;
  const measuredFiles = all ?? sampler.sample();
  const measured = await measureAll(deps.measure, measuredFiles, exact);
  const values = measured.map((m) => m.seconds);
  const estimate = exact ? undefined : estimateTotalBySize(values, measuredFiles.map((o) => o.size ?? 0), files.toDo, files.bytes);
  const seconds: Range = estimate ? rangeOf(estimate) : exactRange(values);
  const caps = capBucketsFromConfig(deps.config);
  const longestSeconds = values.reduce((a, b) => Math.max(a, b), 0);
  const planned = choices.map((c): PlannedChoice => {
    const resolved = caps.of(c);
    const speed = speedFor(c.provider, c.mode, deps.speeds);
    const price = priceFor(c, deps.prices);
    const figures = choiceFigures({ mode: c.mode, files: files.toDo, audioSeconds: seconds, longestSeconds, cap: resolved.cap, perWorker: resolved.perWorker, speed, price });
    return {
      ...c,
      bucket: resolved.key,
      cap: resolved.cap,
      perWorker: resolved.perWorker,
      speed,
      price: price ? { usdPerMinute: price.usdPerMinute, source: price.source, asOf: price.asOf, ...(price.perChannel ? { perChannel: true } : {}) } : null,
      ...figures,
    };
  });

  const { manifest: _m, choices: _c, sample: _s, exact: _e, seed: _seed, ...request } = req;
  return {
    planId: newPlanId(),
    createdAt: nowIso(deps),
    source: source ? formatS3Url(source) : 'manifest',
    out: formatS3Url(out),
    files: { listed: progress.listed, ignored: progress.ignored, done: progress.skipped, refused: files.refused, toDo: files.toDo, bytes: files.bytes },
    audio: {
      method: exact ? 'exact' : 'sampled',
      measured: measured.length,
      ...(exact ? {} : { seed }),
      ...(estimate ? { estimator: estimate.estimator } : {}),
      unreadable: measured.filter((m) => m.unreadable).length,
      fromHeader: measured.filter((m) => m.method === 'header' || m.method === 'tail').length,
      seconds,
      longestSeconds: round(longestSeconds),
    },
    choices: planned,
    request: { ...request, provider: routing.provider, model: routing.model, mode: routing.mode, ...(req.account ? { account: req.account } : {}) },
  };
}

const round = (n: number) => Math.round(n * 1000) / 1000;

function rangeOf(e: { total: number; low: number; high: number }): Range {
  return { estimate: round(e.total), low: round(e.low), high: round(e.high) };
}

function exactRange(values: number[]): Range {
  const total = round(values.reduce((a, b) => a + b, 0));
  return { estimate: total, low: total, high: total };
}

/** A prefix listed as the create call lists it (its pages, each key with the prefix it was listed under). */
async function* prefixPages(storage: Storage, bucket: string, prefix: string): AsyncGenerator<Page> {
  for await (const objs of storage.listPages(bucket, prefix)) yield objs.map((obj) => ({ obj, listedPrefix: prefix }));
}

/** Measure files, MEASURE_CONCURRENCY at a time, in order; a file that is not readable audio counts 0 s. */
async function measureAll(measure: MeasureDuration, objs: ObjectInfo[], exact: boolean): Promise<Array<{ seconds: number; method?: 'header' | 'tail' | 'probe'; unreadable?: true }>> {
  const out: Array<{ seconds: number; method?: 'header' | 'tail' | 'probe'; unreadable?: true }> = new Array(objs.length);
  let next = 0;
  const run = async () => {
    for (let i = next++; i < objs.length; i = next++) {
      try {
        out[i] = await measure(objs[i]!, exact);
      } catch (e) {
        // Storage outages and the like are the plan's failure; a file that is not audio is the file's.
        if (!(e instanceof ScribeError && e.kind === 'unrecoverable')) throw e;
        out[i] = { seconds: 0, unreadable: true };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(MEASURE_CONCURRENCY, objs.length) }, run));
  return out;
}
