/**
 * One attempt of one job (app/process-attempt.ts) against fakes of its ports: a Map-backed storage, a
 * scripted provider, a counting limiter, a recording telemetry, an in-memory audio input and the
 * virtual clock. No Redis, S3, ffmpeg or recogniser: the real ones are in test/core (process-attempt.*.test.ts).
 */
import { Readable } from 'node:stream';
import {
  ProviderRateLimitedError,
  ProviderRejectedError,
  ProviderUnavailableError,
  LeaseLostError,
  StorageUnavailableError,
  UnknownProviderError,
  UnsupportedOptionError,
  VirtualClock,
  VirtualTimers,
  DeadlineScheduler,
  parseJobSpec,
  segmentFromWords,
  type Attrs,
  type Lease,
  type Limiter,
  type ObjectInfo,
  type Provider,
  type ProviderResult,
  type Segment,
  type SessionContext,
  type SpanHandle,
  type SpanOptions,
  type Storage,
  type StorageAudioInput,
  type StorageAudioInputOptions,
  type StreamCheckpoint,
  type Telemetry,
  type TranscribeRequest,
} from '../src';
import { createProcessor, type JobContext, type ProcessorDeps } from '../src/app/process-attempt';
import { checkpointKey } from '../src/app/checkpoints';

// ---- fakes ----------------------------------------------------------------------------------------

interface Stored {
  body: Buffer;
  contentType?: string;
  metadata?: Record<string, string>;
}

/** Storage port over a Map; `log` lists every write and delete in order; `failPut` injects put errors. */
class MemoryStorage implements Storage {
  readonly objects = new Map<string, Stored>();
  readonly log: string[] = [];
  failPut: ((key: string) => Error | undefined) | undefined;

  private id = (bucket: string, key: string) => `${bucket}/${key}`;

  seed(bucket: string, key: string, body: string | Buffer): void {
    this.objects.set(this.id(bucket, key), { body: Buffer.from(body) });
  }
  text(bucket: string, key: string): string | undefined {
    return this.objects.get(this.id(bucket, key))?.body.toString('utf8');
  }
  keys(bucket: string): string[] {
    return [...this.objects.keys()].filter((k) => k.startsWith(`${bucket}/`)).map((k) => k.slice(bucket.length + 1)).sort();
  }

  async *listPages(bucket: string, prefix: string): AsyncIterable<ObjectInfo[]> {
    yield this.keys(bucket)
      .filter((k) => k.startsWith(prefix))
      .map((key) => this.info(bucket, key, this.objects.get(this.id(bucket, key))!));
  }
  async head(bucket: string, key: string): Promise<ObjectInfo | null> {
    const o = this.objects.get(this.id(bucket, key));
    return o ? this.info(bucket, key, o) : null;
  }
  async get(bucket: string, key: string): Promise<{ body: Readable; info: ObjectInfo }> {
    const o = this.objects.get(this.id(bucket, key));
    if (!o) throw new Error(`no such object ${bucket}/${key}`);
    return { body: Readable.from([o.body]), info: this.info(bucket, key, o) };
  }
  async put(bucket: string, key: string, body: string | Uint8Array | Readable, opts: { contentType?: string; metadata?: Record<string, string> } = {}): Promise<{ etag: string }> {
    this.log.push(`put ${key}`);
    const err = this.failPut?.(key);
    if (err) throw err;
    if (body instanceof Readable) throw new Error('the fake takes no streamed bodies');
    const stored: Stored = { body: Buffer.from(body) };
    if (opts.contentType) stored.contentType = opts.contentType;
    if (opts.metadata) stored.metadata = opts.metadata;
    this.objects.set(this.id(bucket, key), stored);
    return { etag: `etag-${this.log.length}` };
  }
  async putIfAbsent(bucket: string, key: string, body: string | Uint8Array): Promise<boolean> {
    if (this.objects.has(this.id(bucket, key))) return false;
    await this.put(bucket, key, body);
    return true;
  }
  async delete(bucket: string, key: string): Promise<void> {
    this.log.push(`delete ${key}`);
    this.objects.delete(this.id(bucket, key));
  }
  async presignGet(bucket: string, key: string): Promise<string> {
    return `memory://${bucket}/${key}`;
  }
  async ensureBucket(): Promise<void> {}

  private info(bucket: string, key: string, o: Stored): ObjectInfo {
    const info: ObjectInfo = { bucket, key, etag: `etag-of-${key}`, size: o.body.length };
    if (o.contentType) info.contentType = o.contentType;
    return info;
  }
}

/** Limiter port: counts acquires and releases, knows how many leases are held; `lost` aborts a lease. */
class CountingLimiter implements Limiter {
  readonly events: string[] = [];
  readonly rateLimited: Array<[string, number | undefined]> = [];
  held = 0;
  private readonly leases: AbortController[] = [];

  async acquire(bucket: string): Promise<Lease> {
    this.events.push(`acquire ${bucket}`);
    this.held += 1;
    const ctrl = new AbortController();
    this.leases.push(ctrl);
    return {
      bucket,
      id: `lease-${this.events.length}`,
      signal: ctrl.signal,
      release: async () => {
        this.events.push('release');
        this.held -= 1;
      },
    };
  }
  reportRateLimited(bucket: string, retryAfterMs?: number): void {
    this.rateLimited.push([bucket, retryAfterMs]);
  }
  /** The newest lease is lost (its slot may be someone else's now). */
  lose(reason: Error): void {
    this.leases.at(-1)!.abort(reason);
  }
}

interface RecordedSpan {
  name: string;
  attrs: Attrs;
  opts: SpanOptions | undefined;
  set: Attrs;
  events: string[];
}

/** Telemetry port that records the spans run through it (names, attributes, options, events). */
class RecordingTelemetry implements Telemetry {
  readonly spans: RecordedSpan[] = [];
  async span<T>(name: string, attrs: Attrs, fn: (span: SpanHandle) => Promise<T>, opts?: SpanOptions): Promise<T> {
    const rec: RecordedSpan = { name, attrs, opts, set: {}, events: [] };
    this.spans.push(rec);
    return fn({
      setAttributes: (a) => Object.assign(rec.set, a),
      addEvent: (n) => rec.events.push(n),
      recordError: () => undefined,
      end: () => undefined,
    });
  }
  startSpan(): SpanHandle {
    return { setAttributes() {}, addEvent() {}, recordError() {}, end() {} };
  }
  inject() {
    return {};
  }
  named(name: string): RecordedSpan[] {
    return this.spans.filter((s) => s.name === name);
  }
}

const PCM_PER_SECOND = 32_000;

/**
 * The audio input port in memory: `seconds` of PCM in 1 s chunks, chunk i filled with the byte i + 1
 * (so what a session received shows where it started). Counts what the processor asked of it.
 */
class FakeAudio {
  readonly made: Array<{ source: { bucket: string; key: string; etag: string }; opts: StorageAudioInputOptions | undefined }> = [];
  prepared = 0;
  prefetched = 0;
  disposed = 0;
  warnings: string[] = [];

  /** `channels`: the input also decodes keeping channels (`pcmChannels`, chunk i of every channel filled with i + 1). */
  constructor(
    private readonly seconds = 3,
    private readonly channels?: number,
  ) {}

  readonly factory: ProcessorDeps['audioInput'] = (_storage, source, opts) => {
    this.made.push({ source: { bucket: source.bucket, key: source.key, etag: source.etag }, opts });
    const self = this;
    const input: StorageAudioInput = {
      sha256: 'f'.repeat(64),
      get warnings() {
        return self.warnings;
      },
      prepare: async () => {
        self.prepared += 1;
      },
      prefetchOriginal: () => {
        self.prefetched += 1;
      },
      dispose: async () => {
        self.disposed += 1;
      },
      async *pcm() {
        for (let i = 0; i < self.seconds; i += 1) yield Buffer.alloc(PCM_PER_SECOND, i + 1);
      },
      original: async () => ({ stream: Readable.from([Buffer.from('RIFF-original')]), filename: 'a.wav', size: 13 }),
    };
    const channels = this.channels;
    if (channels) {
      input.pcmChannels = async () => ({
        channels,
        pcm: (async function* () {
          for (let i = 0; i < self.seconds; i += 1) yield Buffer.alloc(PCM_PER_SECOND * channels, i + 1);
        })(),
      });
    }
    return input;
  };
}

/** A segment of evenly spaced words between `start` and `end` (audio time of the session). */
function segment(start: number, end: number, text: string): Segment {
  const words = text.split(' ');
  const step = (end - start) / words.length;
  return segmentFromWords(words.map((word, i) => ({ word, start: start + i * step, end: start + (i + 1) * step, confidence: 0.9 })));
}

function providerResult(segments: Segment[], duration: number, requestId = 'req-1'): ProviderResult {
  return {
    transcript: { provider: 'deepgram', model: 'nova-3', requestId, duration, channels: 1, segments },
    stats: { requestId, bytesSent: 0, chunksSent: 0, finalResults: segments.length, reconnects: 0 },
  };
}

type Session = (req: TranscribeRequest, ctx: SessionContext) => Promise<ProviderResult>;

/** Provider port whose sessions are scripted one after another; records what each one was given. */
function scriptedProvider(sessions: Session[], audioForm?: Provider['audioForm']) {
  const calls: Array<{ mode: string; model: string; options: Record<string, unknown> }> = [];
  const provider: Provider = {
    name: 'deepgram',
    ...(audioForm ? { audioForm } : {}),
    transcribe: async (req, ctx) => {
      calls.push({ mode: req.mode, model: req.model, options: req.options });
      const next = sessions[calls.length - 1];
      if (!next) throw new Error(`unexpected session #${calls.length}`);
      return next(req, ctx);
    },
  };
  return { provider, calls };
}

/** A stream session: reads the PCM it is given (its byte count and first byte noted), reports `finals`, returns. */
function streamSession(finals: Segment[], duration: number, seen: { bytes: number; first?: number }, fail?: Error): Session {
  return async (req, ctx) => {
    for await (const chunk of req.audio.pcm(ctx.signal)) {
      seen.first ??= chunk[0];
      seen.bytes += chunk.length;
    }
    finals.forEach((s, index) => ctx.onEvent?.({ type: 'session:final', index, start: s.start, end: s.end, segment: s }));
    if (fail) throw fail;
    return { ...providerResult(finals, duration, 'req-stream'), stats: { requestId: 'req-stream', bytesSent: seen.bytes, chunksSent: 1, finalResults: finals.length, reconnects: 0 } };
  };
}

const IN = 'in-bucket';
const OUT = 'out-bucket';
const ETAG = 'etag-1';

function job(over: Record<string, unknown> = {}) {
  return {
    source: { bucket: IN, key: 'calls/a.wav', etag: ETAG, size: 3 * PCM_PER_SECOND },
    output: { bucket: OUT, keyBase: 'out/a.wav', formats: ['json', 'txt', 'srt', 'vtt'] },
    provider: 'deepgram',
    ...over,
  };
}

function ctx(over: Partial<JobContext> = {}): JobContext {
  return { id: 'job-1', attempt: 1, signal: new AbortController().signal, ...over };
}

function world(provider: Provider, over: Partial<ProcessorDeps> = {}, audio = new FakeAudio()) {
  const storage = new MemoryStorage();
  const limiter = new CountingLimiter();
  const telemetry = new RecordingTelemetry();
  const clock = new VirtualClock(1_000);
  const deps: ProcessorDeps = { storage, audioInput: audio.factory, providers: { deepgram: provider }, limiter, clock, telemetry, ...over };
  return { storage, limiter, telemetry, clock, audio, deps, run: createProcessor(deps) };
}

const TWO_SEGMENTS = [segment(0.2, 1.0, 'hello there'), segment(1.4, 2.6, 'general kenobi you are')];

// ---- tests ----------------------------------------------------------------------------------------

it('a batch job: every requested format is written, the JSON last, and the result names them', async () => {
  const { provider, calls } = scriptedProvider([async () => providerResult(TWO_SEGMENTS, 3)], () => 'original');
  const w = world(provider, { spoolDir: '/spool', truncation: { tolerance: 0.05, allow: true } });

  const result = await w.run(job({ options: { punctuate: true } }), ctx());

  expect(result).toEqual({
    outputs: { txt: 'out/a.wav.txt', srt: 'out/a.wav.srt', vtt: 'out/a.wav.vtt', json: 'out/a.wav.json' },
    bucket: OUT,
    duration: 3,
    sha256: 'f'.repeat(64),
    requestId: 'req-1',
    words: 6,
    finalResults: 2,
    provider: 'deepgram',
    model: 'nova-3',
    mode: 'batch',
  });
  // The JSON marks a complete set: written after every other format, whatever order the spec lists.
  expect(w.storage.log).toEqual(['put out/a.wav.txt', 'put out/a.wav.srt', 'put out/a.wav.vtt', 'put out/a.wav.json']);
  expect(w.storage.text(OUT, 'out/a.wav.txt')).toBe('hello there\ngeneral kenobi you are\n');
  const stored = w.storage.objects.get(`${OUT}/out/a.wav.json`)!;
  expect(stored.contentType).toBe('application/json');
  expect(stored.metadata!['scribe-attempt']).toMatch(/^job-1\/1\/[0-9a-f-]{36}$/);
  expect(w.storage.objects.get(`${OUT}/out/a.wav.vtt`)!.contentType).toBe('text/vtt; charset=utf-8');
  const doc = JSON.parse(stored.body.toString('utf8'));
  expect(doc.metadata).toMatchObject({ sha256: 'f'.repeat(64), provider: 'deepgram', models: ['deepgram:nova-3'], source: { bucket: IN, key: 'calls/a.wav', etag: ETAG } });
  expect(doc.results.utterances.map((u: { start: number; transcript: string }) => [u.start, u.transcript])).toEqual([
    [0.2, 'hello there'],
    [1.4, 'general kenobi you are'],
  ]);

  // The provider got the spec's mode, model and options; its audio was the injected input's.
  expect(calls).toEqual([{ mode: 'batch', model: 'nova-3', options: { punctuate: true } }]);
  expect(w.audio.made).toEqual([{ source: { bucket: IN, key: 'calls/a.wav', etag: ETAG }, opts: { telemetry: w.telemetry, spoolDir: '/spool', truncationTolerance: 0.05, allowTruncated: true } }]);
  // A batch provider reading the original: prefetched while waiting for the slot, nothing decoded first.
  expect({ prefetched: w.audio.prefetched, prepared: w.audio.prepared, disposed: w.audio.disposed }).toEqual({ prefetched: 1, prepared: 0, disposed: 1 });

  expect(w.telemetry.spans.map((s) => s.name)).toEqual(['slot.wait', 'session deepgram', 's3.put', 's3.put', 's3.put', 's3.put']);
  const [slot, session] = w.telemetry.spans;
  expect(slot!.attrs).toEqual({ 'scribe.cap.bucket': 'deepgram:default:nova:batch', 'scribe.rate_limit_retries': 0 });
  expect(slot!.opts).toEqual({ suppressInner: true });
  expect(session!.attrs).toEqual({
    'transcription.provider': 'deepgram',
    'transcription.model': 'nova-3',
    'transcription.mode': 'batch',
    'transcription.account': 'default',
    'transcription.resumed_from_s': undefined,
  });
  expect(session!.opts).toEqual({ kind: 'client' });
  expect(session!.set).toMatchObject({ 'transcription.request_id': 'req-1', 'transcription.audio_seconds': 3, 'transcription.final_results': 2, 'transcription.rtf': 0 });
  expect(w.telemetry.named('s3.put').map((s) => s.attrs['scribe.output.format'])).toEqual(['txt', 'srt', 'vtt', 'json']);
});

it('warnings from decoding (TRUNCATED_INPUT) reach the result and the JSON', async () => {
  const { provider } = scriptedProvider([async () => providerResult(TWO_SEGMENTS, 3)]);
  const w = world(provider);
  w.audio.warnings = ['TRUNCATED_INPUT'];

  const result = await w.run(job({ output: { bucket: OUT, keyBase: 'out/a.wav', formats: ['json'] } }), ctx());

  expect(result.warnings).toEqual(['TRUNCATED_INPUT']);
  expect(JSON.parse(w.storage.text(OUT, 'out/a.wav.json')!).metadata.warnings).toEqual(['TRUNCATED_INPUT']);
});

it('a re-run of a job whose outputs are complete returns them without a session; force transcribes again', async () => {
  const { provider, calls } = scriptedProvider([async () => providerResult(TWO_SEGMENTS, 3, 'req-1'), async () => providerResult(TWO_SEGMENTS, 3, 'req-2')]);
  const w = world(provider);
  const first = await w.run(job(), ctx());
  const writes = w.storage.log.length;

  const again = await w.run(job(), ctx({ attempt: 2 }));

  expect(again).toEqual(first);
  expect(again.requestId).toBe('req-1');
  expect(calls).toHaveLength(1);
  expect(w.limiter.events).toEqual(['acquire deepgram:default:nova:batch', 'release']);
  expect(w.storage.log).toHaveLength(writes);
  // force: the outputs are written again from a new session.
  const forced = await w.run(job({ force: true }), ctx({ attempt: 3 }));
  expect(forced.requestId).toBe('req-2');
  expect(calls).toHaveLength(2);
});

it('existing outputs of another source version are not taken for this job', async () => {
  const { provider, calls } = scriptedProvider([async () => providerResult(TWO_SEGMENTS, 3, 'req-old'), async () => providerResult(TWO_SEGMENTS, 3, 'req-new')]);
  const w = world(provider);
  await w.run(job(), ctx());

  const result = await w.run(job({ source: { bucket: IN, key: 'calls/a.wav', etag: 'etag-2' } }), ctx());

  expect(result.requestId).toBe('req-new');
  expect(calls).toHaveLength(2);
  expect(JSON.parse(w.storage.text(OUT, 'out/a.wav.json')!).metadata.source.etag).toBe('etag-2');
});

it('the session runs holding a cap slot, which is given back after it', async () => {
  let heldDuringSession = -1;
  const { provider } = scriptedProvider([
    async () => {
      heldDuringSession = w.limiter.held;
      return providerResult(TWO_SEGMENTS, 3);
    },
  ]);
  const w = world(provider);
  let started = 0;

  await w.run(job({ account: 'acme' }), ctx({ onSessionStart: () => (started += 1) }));

  expect(heldDuringSession).toBe(1);
  expect(w.limiter.held).toBe(0);
  expect(w.limiter.events).toEqual(['acquire deepgram:acme:nova:batch', 'release']);
  expect(started).toBe(1);
});

it('the commit point: owned() is asked after the session, before any write; a job that moved elsewhere writes nothing', async () => {
  const order: string[] = [];
  const { provider } = scriptedProvider([async () => (order.push('session'), providerResult(TWO_SEGMENTS, 3)), async () => providerResult(TWO_SEGMENTS, 3)]);
  const w = world(provider);
  const result = await w.run(job(), ctx({ owned: async () => (order.push(`owned (${w.storage.log.length} writes so far)`), true) }));
  expect(order).toEqual(['session', 'owned (0 writes so far)']);
  expect(result.outputs.json).toBe('out/a.wav.json');

  // Its worker was cut off past the job lock: the job is another worker's now.
  const w2 = world(provider);
  await expect(w2.run(job(), ctx({ owned: async () => false }))).rejects.toMatchObject({ code: 'LOCK_LOST' });
  expect(w2.storage.log).toEqual([]);
  expect(w2.limiter.held).toBe(0);
  expect(w2.audio.disposed).toBe(1);
});

it('a transient provider error propagates as itself (kind retry), the slot released, nothing written', async () => {
  const boom = new ProviderUnavailableError('deepgram answered 503', { status: 503 });
  const { provider } = scriptedProvider([async () => Promise.reject(boom)]);
  const w = world(provider);

  const err = await w.run(job(), ctx()).catch((e: unknown) => e);

  expect(err).toBe(boom);
  expect(err).toMatchObject({ code: 'PROVIDER_UNAVAILABLE', kind: 'retry', status: 503, message: 'deepgram answered 503' });
  expect(w.limiter.events).toEqual(['acquire deepgram:default:nova:batch', 'release']);
  expect(w.limiter.held).toBe(0);
  expect(w.storage.log).toEqual([]);
  expect(w.audio.disposed).toBe(1);
});

it('an unrecoverable provider error propagates as itself (kind unrecoverable), the slot released', async () => {
  const refused = new ProviderRejectedError('400: unsupported audio');
  const { provider, calls } = scriptedProvider([async () => Promise.reject(refused)]);
  const w = world(provider);

  await expect(w.run(job(), ctx())).rejects.toBe(refused);

  expect(refused.kind).toBe('unrecoverable');
  expect(refused.code).toBe('PROVIDER_REJECTED');
  expect(calls).toHaveLength(1);
  expect(w.limiter.events).toEqual(['acquire deepgram:default:nova:batch', 'release']);
});

it('a 429 is reported to the limiter, waited out (Retry-After, on the clock) and retried in a new slot', async () => {
  const { provider, calls } = scriptedProvider([
    async () => Promise.reject(new ProviderRateLimitedError('429', { retryAfterMs: 2_000 })),
    async () => providerResult(TWO_SEGMENTS, 3),
  ]);
  const w = world(provider);

  const result = await w.run(job(), ctx());

  expect(result.requestId).toBe('req-1');
  expect(calls).toHaveLength(2);
  expect(w.limiter.rateLimited).toEqual([['deepgram:default:nova:batch', 2_000]]);
  expect(w.limiter.events).toEqual(['acquire deepgram:default:nova:batch', 'release', 'acquire deepgram:default:nova:batch', 'release']);
  // Retry-After plus up to 25 % jitter, slept on the virtual clock (which started at 1 s).
  expect(w.clock.now()).toBeGreaterThanOrEqual(3_000);
  expect(w.clock.now()).toBeLessThanOrEqual(3_500);
  expect(w.telemetry.named('slot.wait').map((s) => s.attrs['scribe.rate_limit_retries'])).toEqual([0, 1]);
});

it('past maxRateLimitRetries the 429 propagates as itself (kind rate_limit) for the job to be re-scheduled', async () => {
  const limited = new ProviderRateLimitedError('429', { retryAfterMs: 500 });
  const { provider, calls } = scriptedProvider([async () => Promise.reject(new ProviderRateLimitedError('429', { retryAfterMs: 500 })), async () => Promise.reject(limited)]);
  const w = world(provider, { maxRateLimitRetries: 1 });

  await expect(w.run(job(), ctx())).rejects.toBe(limited);

  expect(limited.kind).toBe('rate_limit');
  expect(calls).toHaveLength(2);
  expect(w.limiter.held).toBe(0);
  expect(w.limiter.rateLimited).toHaveLength(1);
});

it('a lost lease ends the session with the lease’s reason; a cancelled job with JobCancelledError', async () => {
  const untilAborted: Session = (_req, c) =>
    new Promise((_resolve, reject) => {
      if (c.signal.aborted) reject(new Error('aborted'));
      c.signal.addEventListener('abort', () => reject(new Error('aborted')), { once: true });
    });
  const lost = new LeaseLostError('lease expired');
  const a = world(scriptedProvider([untilAborted]).provider);
  const running = a.run(job(), ctx({ onSessionStart: () => queueMicrotask(() => a.limiter.lose(lost)) }));
  await expect(running).rejects.toBe(lost);
  expect(a.limiter.held).toBe(0);

  const b = world(scriptedProvider([untilAborted]).provider);
  const cancel = new AbortController();
  await expect(b.run(job(), ctx({ signal: cancel.signal, onSessionStart: () => queueMicrotask(() => cancel.abort(new Error('cancel'))) }))).rejects.toMatchObject({
    code: 'JOB_CANCELLED',
    message: 'job was cancelled',
  });
  expect(b.limiter.events).toEqual(['acquire deepgram:default:nova:batch', 'release']);
});

it('a session that stops moving is aborted with SESSION_STALLED after SESSION_STALL_MS, its slot given back; one that keeps reading is not', async () => {
  // The scheduler's virtual time line: the watchdog and the sessions' sleeps share one clock.
  const clock = new DeadlineScheduler(new VirtualTimers(1_000));
  // Reads one PCM chunk, then hangs until aborted (a stuck socket or recogniser).
  const hangs: Session = async (req, c) => {
    for await (const _chunk of req.audio.pcm(c.signal)) break;
    return new Promise((_resolve, reject) => c.signal.addEventListener('abort', () => reject(new Error('aborted')), { once: true }));
  };
  const a = world(scriptedProvider([hangs]).provider, { clock, sessionStallMs: 60_000 });
  const started = clock.now();
  const err = await a.run(job(), ctx()).catch((e: unknown) => e);
  expect(err).toMatchObject({ code: 'SESSION_STALLED', kind: 'retry', message: 'deepgram batch session made no progress (no audio read, no provider message) for 60 s: aborted' });
  expect(clock.now() - started).toBe(60_000);
  expect(a.limiter.events).toEqual(['acquire deepgram:default:nova:batch', 'release']);

  // A slow session that reads a chunk every 50 s (and reports a final at the end) runs to the end:
  // 150 s in all, over twice the stall time, but never 60 s without progress.
  const slow: Session = async (req, c) => {
    let n = 0;
    for await (const _chunk of req.audio.pcm(c.signal)) {
      n += 1;
      await c.clock.sleepUntil(c.clock.now() + 50_000, c.signal);
    }
    c.onEvent?.({ type: 'session:final', index: 0, start: 0, end: n, segment: TWO_SEGMENTS[0]! });
    return providerResult(TWO_SEGMENTS, 3, 'req-slow');
  };
  const b = world(scriptedProvider([slow]).provider, { clock, sessionStallMs: 60_000 });
  const t0 = clock.now();
  await expect(b.run(job(), ctx())).resolves.toMatchObject({ requestId: 'req-slow' });
  expect(clock.now() - t0).toBeGreaterThanOrEqual(150_000);
  expect(clock.pending).toBe(0); // the watchdog's sleep left with the session
});

it('a provider this worker has no credentials for is UNKNOWN_PROVIDER, before any audio or slot', async () => {
  const w = world(scriptedProvider([]).provider);

  const err = await w.run(job({ provider: 'openai' }), ctx()).catch((e: unknown) => e);

  expect(err).toBeInstanceOf(UnknownProviderError);
  expect(err).toMatchObject({ kind: 'unrecoverable', message: 'provider openai is not configured on this worker (missing API key?)' });
  expect(w.audio.made).toHaveLength(0);
  expect(w.limiter.events).toEqual([]);
});

it('a spec from Redis with an option its provider does not take fails UNSUPPORTED_OPTION before any read, slot or session', async () => {
  const { provider, calls } = scriptedProvider([async () => providerResult(TWO_SEGMENTS, 3)], () => 'original');
  const w = world(provider);
  const reads = [jest.spyOn(w.storage, 'head'), jest.spyOn(w.storage, 'get')];

  // Written past the producer's check (another producer, an older version, by hand): refused here too.
  const err = await w.run(job({ options: { punctuate: true, callback: 'https://example.com/hook' } }), ctx()).catch((e: unknown) => e);

  expect(err).toBeInstanceOf(UnsupportedOptionError);
  expect(err).toMatchObject({ code: 'UNSUPPORTED_OPTION', kind: 'unrecoverable', details: { option: 'callback', provider: 'deepgram', model: 'nova-3', mode: 'batch' } });
  expect((err as Error).message).toMatch(/^option "callback" is not supported by deepgram nova-3 \(batch\); supported: /);
  expect(calls).toEqual([]);
  expect(w.audio.made).toHaveLength(0);
  expect(w.limiter.events).toEqual([]);
  expect(w.storage.log).toEqual([]);
  for (const r of reads) expect(r).not.toHaveBeenCalled();
});

it('an output write that fails removes what the attempt wrote: no partial set is left', async () => {
  const { provider } = scriptedProvider([async () => providerResult(TWO_SEGMENTS, 3)]);
  const w = world(provider);
  const denied = new Error('AccessDenied');
  w.storage.failPut = (key) => (key.endsWith('.vtt') ? denied : undefined);

  await expect(w.run(job(), ctx())).rejects.toBe(denied);

  expect(w.storage.log).toEqual(['put out/a.wav.txt', 'put out/a.wav.srt', 'put out/a.wav.vtt', 'delete out/a.wav.txt', 'delete out/a.wav.srt']);
  expect(w.storage.keys(OUT)).toEqual([]);
});

it('storage away while writing is waited out on the clock, without transcribing again', async () => {
  const { provider, calls } = scriptedProvider([async () => providerResult(TWO_SEGMENTS, 3)]);
  const w = world(provider, { storageRetryMs: 60_000 });
  let failures = 0;
  w.storage.failPut = (key) => (key.endsWith('.json') && failures++ < 2 ? new StorageUnavailableError('ECONNREFUSED') : undefined);

  const result = await w.run(job(), ctx());

  expect(result.outputs.json).toBe('out/a.wav.json');
  expect(calls).toHaveLength(1);
  expect(w.storage.log.filter((l) => l === 'put out/a.wav.json')).toHaveLength(3);
  // Backoff 0.5 s then 1 s, each with ±25 % jitter, on the virtual clock.
  expect(w.clock.now() - 1_000).toBeGreaterThanOrEqual(1_125);
  expect(w.clock.now() - 1_000).toBeLessThanOrEqual(1_875);
});

describe('stream checkpoints', () => {
  const checkpoint = (over: Partial<StreamCheckpoint> = {}): StreamCheckpoint => ({
    v: 1,
    etag: ETAG,
    provider: 'deepgram',
    model: 'nova-3',
    offsetSeconds: 1.25,
    segments: [segment(0.1, 1.0, 'hello there')],
    updatedAt: '2026-01-01T00:00:00.000Z',
    ...over,
  });
  const CP_KEY = 'out/a.wav.checkpoint.json';

  it('lives beside the outputs', () => {
    expect(checkpointKey(parseJobSpec(job({ mode: 'stream' })))).toBe(CP_KEY);
  });

  it('a stream with a checkpoint sends only the audio after it and writes the whole file, segments shifted', async () => {
    const seen = { bytes: 0 } as { bytes: number; first?: number };
    // The resumed session's own time line starts at the checkpoint's offset (1.25 s).
    const { provider } = scriptedProvider([streamSession([segment(0.5, 1.5, 'general kenobi')], 1.75, seen)]);
    const w = world(provider);
    w.storage.seed(OUT, CP_KEY, JSON.stringify(checkpoint()));

    const result = await w.run(job({ mode: 'stream' }), ctx({ attempt: 2 }));

    // 1.25 s = 20 000 samples = 40 000 bytes dropped: the session starts 8 000 bytes into chunk 2 (byte 2).
    expect(seen).toEqual({ bytes: 3 * PCM_PER_SECOND - 40_000, first: 2 });
    expect(result).toMatchObject({ duration: 3, finalResults: 1, words: 4, mode: 'stream', requestId: 'req-stream' });
    const doc = JSON.parse(w.storage.text(OUT, 'out/a.wav.json')!);
    expect(doc.results.utterances.map((u: { start: number; end: number; transcript: string }) => [u.start, u.end, u.transcript])).toEqual([
      [0.1, 1, 'hello there'],
      [1.75, 2.75, 'general kenobi'],
    ]);
    expect(doc.metadata.duration).toBe(3);
    expect(w.storage.text(OUT, 'out/a.wav.txt')).toBe('hello there\ngeneral kenobi\n');
    // Stream audio is decoded PCM: prepared before the slot; the session span says where it resumed.
    expect(w.audio.prepared).toBe(1);
    expect(w.telemetry.spans.map((s) => s.name).slice(0, 3)).toEqual(['audio.prepare', 'slot.wait', 'session deepgram']);
    expect(w.telemetry.named('session deepgram')[0]!.attrs['transcription.resumed_from_s']).toBe(1.25);
    // Done: the checkpoint is removed after the outputs.
    expect(w.storage.log.at(-1)).toBe(`delete ${CP_KEY}`);
    expect(w.storage.keys(OUT)).toEqual(['out/a.wav.json', 'out/a.wav.srt', 'out/a.wav.txt', 'out/a.wav.vtt']);
  });

  it('a checkpoint of another source version, provider or model is ignored: the whole audio is sent', async () => {
    for (const other of [{ etag: 'etag-0' }, { model: 'nova-2' }, { provider: 'assemblyai' }]) {
      const seen = { bytes: 0 } as { bytes: number; first?: number };
      const w = world(scriptedProvider([streamSession([segment(0.2, 1.0, 'hi')], 3, seen)]).provider);
      w.storage.seed(OUT, CP_KEY, JSON.stringify(checkpoint(other)));
      const result = await w.run(job({ mode: 'stream' }), ctx());
      expect({ other, seen, duration: result.duration }).toEqual({ other, seen: { bytes: 3 * PCM_PER_SECOND, first: 1 }, duration: 3 });
    }
  });

  it('a session failing after finals saves them; the retry resumes after the last one (plus the 0.25 s margin)', async () => {
    const failure = new ProviderUnavailableError('socket closed 1011');
    const seen1 = { bytes: 0 } as { bytes: number; first?: number };
    const seen2 = { bytes: 0 } as { bytes: number; first?: number };
    const { provider } = scriptedProvider([
      streamSession([segment(0.2, 0.75, 'hello there')], 3, seen1, failure),
      streamSession([segment(0.25, 1.25, 'general kenobi')], 2, seen2),
    ]);
    const w = world(provider); // default interval (30 s): only the failure path writes the checkpoint

    await expect(w.run(job({ mode: 'stream' }), ctx())).rejects.toBe(failure);

    const cp = JSON.parse(w.storage.text(OUT, CP_KEY)!) as StreamCheckpoint;
    expect(cp).toMatchObject({ v: 1, etag: ETAG, provider: 'deepgram', model: 'nova-3', offsetSeconds: 1 });
    expect(cp.segments.map((s) => [s.start, s.end, s.text])).toEqual([[0.2, 0.75, 'hello there']]);
    expect(w.storage.objects.get(`${OUT}/${CP_KEY}`)!.contentType).toBe('application/json');
    expect(w.limiter.held).toBe(0);

    const result = await w.run(job({ mode: 'stream' }), ctx({ attempt: 2 }));

    expect(seen2).toEqual({ bytes: 2 * PCM_PER_SECOND, first: 2 });
    expect(result.duration).toBe(3);
    const doc = JSON.parse(w.storage.text(OUT, 'out/a.wav.json')!);
    expect(doc.results.utterances.map((u: { start: number; end: number }) => [u.start, u.end])).toEqual([
      [0.2, 0.75],
      [1.25, 2.25],
    ]);
    expect(w.storage.text(OUT, CP_KEY)).toBeUndefined();
  });

  it('checkpoints are written during the session at most every interval, and only with new finals', async () => {
    const w = world(
      scriptedProvider([
        async (req, c) => {
          for await (const _ of req.audio.pcm(c.signal)) void _;
          const finals = [segment(0.1, 0.5, 'one'), segment(0.6, 1.0, 'two'), segment(1.1, 1.5, 'three')];
          finals.forEach((s, index) => {
            w.clock.advance(6_000);
            c.onEvent?.({ type: 'session:final', index, start: s.start, end: s.end, segment: s });
          });
          throw new ProviderUnavailableError('gone');
        },
      ]).provider,
      { checkpointIntervalMs: 10_000 },
    );

    await expect(w.run(job({ mode: 'stream' }), ctx())).rejects.toBeInstanceOf(ProviderUnavailableError);

    // t=6 s: under the interval; t=12 s: written (two finals); t=18 s: under it again; the failure saves the third.
    expect(w.storage.log).toEqual([`put ${CP_KEY}`, `put ${CP_KEY}`]);
    expect((JSON.parse(w.storage.text(OUT, CP_KEY)!) as StreamCheckpoint).offsetSeconds).toBe(1.75);
  });

  describe('multichannel (segments with their channel, finals with the channel count)', () => {
    const on = (channel: number, s: Segment): Segment => ({ ...s, channel });
    /** A session reading the interleaved PCM (bytes and first byte noted), reporting `finals` of 2 channels. */
    const stereoSession =
      (finals: Segment[], duration: number, seen: { bytes: number; first?: number }, fail?: Error): Session =>
      async (req, c) => {
        const { channels, pcm } = await req.audio.pcmChannels!(c.signal);
        for await (const chunk of pcm) {
          seen.first ??= chunk[0];
          seen.bytes += chunk.length;
        }
        finals.forEach((s, index) => c.onEvent?.({ type: 'session:final', index, start: s.start, end: s.end, segment: s, channels }));
        if (fail) throw fail;
        return {
          transcript: { provider: 'deepgram', model: 'nova-3', requestId: 'req-mc', duration, channels, segments: finals },
          stats: { requestId: 'req-mc', bytesSent: seen.bytes, chunksSent: 1, finalResults: finals.length, reconnects: 0 },
        };
      };

    it('the checkpoint resumes where every channel is final; the retry skips whole frames and drops the words a channel already has', async () => {
      const failure = new ProviderUnavailableError('socket closed 1011');
      const seen1 = { bytes: 0 } as { bytes: number; first?: number };
      const seen2 = { bytes: 0 } as { bytes: number; first?: number };
      const { provider } = scriptedProvider([
        // Channel 0 is final to 2.0 s, channel 1 only to 0.75 s: the retry must start at 1.0 s.
        stereoSession([on(0, segment(0.1, 0.5, 'one two')), on(1, segment(0.3, 0.75, 'three')), on(0, segment(1.0, 2.0, 'four five'))], 3, seen1, failure),
        // The retry's own time line starts at 1.0 s: "five" (1.5-2.0) is heard again, "six" is new.
        stereoSession([on(0, segment(0.5, 1.5, 'five six')), on(1, segment(0.5, 1.5, 'seven eight'))], 2, seen2),
      ]);
      const w = world(provider, {}, new FakeAudio(3, 2));
      const spec = job({ mode: 'stream', options: { multichannel: true } });

      await expect(w.run(spec, ctx())).rejects.toBe(failure);

      const cp = JSON.parse(w.storage.text(OUT, CP_KEY)!) as StreamCheckpoint;
      expect(cp).toMatchObject({ offsetSeconds: 1, channelEnds: [2, 0.75] });
      expect(cp.segments.map((s) => [s.channel, s.text])).toEqual([[0, 'one two'], [1, 'three'], [0, 'four five']]);

      const result = await w.run(spec, ctx({ attempt: 2 }));

      // 1.0 s of both channels (64 000 bytes) skipped: the retry starts with chunk 2, at a frame boundary.
      expect(seen2).toEqual({ bytes: 2 * 2 * PCM_PER_SECOND, first: 2 });
      expect(result.duration).toBe(3);
      const doc = JSON.parse(w.storage.text(OUT, 'out/a.wav.json')!);
      expect(doc.metadata.channels).toBe(2);
      expect(doc.results.utterances.map((u: { channel: number; start: number; end: number; transcript: string }) => [u.channel, u.start, u.end, u.transcript])).toEqual([
        [0, 0.1, 0.5, 'one two'],
        [1, 0.3, 0.75, 'three'],
        [0, 1, 2, 'four five'],
        [1, 1.5, 2.5, 'seven eight'],
        [0, 2, 2.5, 'six'],
      ]);
      expect(w.storage.text(OUT, CP_KEY)).toBeUndefined();
    });

    it('a channel that has said nothing yet holds the offset at the start', async () => {
      const failure = new ProviderUnavailableError('gone');
      const seen = { bytes: 0 } as { bytes: number; first?: number };
      const w = world(scriptedProvider([stereoSession([on(0, segment(0.1, 2.0, 'one two three'))], 3, seen, failure)]).provider, {}, new FakeAudio(3, 2));
      await expect(w.run(job({ mode: 'stream', options: { multichannel: true } }), ctx())).rejects.toBe(failure);
      expect(JSON.parse(w.storage.text(OUT, CP_KEY)!)).toMatchObject({ offsetSeconds: 0, channelEnds: [2, null] });
    });
  });

  it('checkpointIntervalMs 0 turns checkpoints off: none read, none written', async () => {
    const seen = { bytes: 0 } as { bytes: number; first?: number };
    const failure = new ProviderUnavailableError('gone');
    const w = world(scriptedProvider([streamSession([segment(0.2, 1.0, 'hi')], 3, seen, failure)]).provider, { checkpointIntervalMs: 0 });
    w.storage.seed(OUT, CP_KEY, JSON.stringify(checkpoint()));

    await expect(w.run(job({ mode: 'stream' }), ctx())).rejects.toBe(failure);

    expect(seen).toEqual({ bytes: 3 * PCM_PER_SECOND, first: 1 });
    expect(w.storage.log).toEqual([]);
  });
});
