/**
 * The compiled `scribe` CLI as a child process against the test Redis + S3 server, with an in-process
 * worker: `enqueue` then `watch --json` to completion (JSON lines, exit codes 0 / 4 / 5), manifests,
 * `batches`, `job`, `cancel`, `redrive`, and the exit code of every kind of refusal.
 */
import { getEventListeners } from 'node:events';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import type { BatchService } from '@scribe-fleet/core/app/batch-service';
import { batchServiceOver, type BatchServices } from '@scribe-fleet/core/adapters/bullmq/open-services';
import { FleetQueues } from '@scribe-fleet/core/adapters/bullmq/fleet-queues';
import { createDeps, startWorker, type RunningWorker } from '@scribe-fleet/worker';
import { EXIT } from '../../apps/producer/src/cli';
import { watchBatch } from '../../apps/producer/src/cli/watch';
import { spawn } from 'node:child_process';
import { CLI_MAIN as CLI, runCli } from '../helpers/processes';
import { childEnv, testStorage, uniqueBucket } from '../helpers/env';
import { sampleFiles, testConfig, uploadSamples } from '../helpers/fleet';

jest.setTimeout(90_000);

const config = testConfig({ LOCAL_CONCURRENCY: '2', JOB_ATTEMPTS: '1', BUCKET_DISCOVERY_MS: '200' });
const storage = testStorage();
const bucket = uniqueBucket('cli');
const dir = mkdtempSync(join(tmpdir(), 'scribe-cli-'));
let worker: RunningWorker;
let redis: Redis;
let fleet: FleetQueues;
let services: BatchServices;
let service: BatchService;

function env(extra: Record<string, string> = {}): Record<string, string> {
  return childEnv(config, extra);
}

function scribe(args: string[], extraEnv: Record<string, string> = {}) {
  return runCli(args, env(extraEnv));
}

const jsonLines = (out: string) => out.trim().split('\n').map((l) => JSON.parse(l) as Record<string, any>);

beforeAll(async () => {
  const samples = await sampleFiles([
    { name: 'cli-one.wav', voice: 'kal16', format: 'wav', text: 'the quick brown fox jumps over the lazy dog' },
    { name: 'cli-two.wav', voice: 'kal16', format: 'wav', text: 'please call me back when you have a moment' },
    { name: 'cli-long.wav', voice: 'kal16', format: 'wav', text: 'the children played in the park until the sun went down behind the hills' },
  ]);
  await uploadSamples(storage, bucket, 'in/', samples.slice(0, 2));
  await uploadSamples(storage, bucket, 'broken/', samples.slice(0, 1));
  await storage.put(bucket, 'broken/zz-noise.wav', Buffer.from('not audio at all\n'.repeat(40)));
  await uploadSamples(storage, bucket, 'long/', samples.slice(1, 3));
  redis = new Redis(config.REDIS_URL);
  fleet = new FleetQueues(config, redis);
  services = batchServiceOver({ config, redis, storage, fleet });
  service = services.service;
  worker = startWorker(config, createDeps(config));
});

afterAll(async () => {
  await worker?.close();
  await services?.close();
  await fleet?.close();
  redis?.disconnect();
  storage.destroy();
});

it('enqueue, then watch --json to completion: JSON lines per tick, a final line, exit 0', async () => {
  const enq = await scribe(['enqueue', `s3://${bucket}/in/`, '--out', `s3://${bucket}/out/`, '--json']);
  expect(enq.code).toBe(EXIT.OK);
  const [summary, ...rest] = jsonLines(enq.stdout);
  expect(rest).toEqual([]);
  expect(summary).toEqual({ batchId: expect.stringMatching(/^b_/), listed: 2, ignored: 0, added: 2, duplicates: 0, skipped: 0, jobs: 2, feeding: false });

  const watch = await scribe(['watch', summary!.batchId, '--json', '--interval', '100']);
  expect(watch.code).toBe(EXIT.OK);
  const lines = jsonLines(watch.stdout);
  expect(lines.length).toBeGreaterThanOrEqual(2);
  const final = lines[lines.length - 1]!;
  for (const l of lines.slice(0, -1)) {
    expect(l).toMatchObject({ type: 'progress', batchId: summary!.batchId, total: 2, status: 'running' });
    expect(Object.keys(l)).toEqual(expect.arrayContaining(['at', 'counts', 'done', 'fraction', 'audioSecondsDone', 'audioSecondsTotalEstimate', 'filesPerSecond', 'etaSeconds']));
  }
  const done = lines.map((l) => l.done as number);
  expect([...done].sort((a, b) => a - b)).toEqual(done); // never goes backwards
  expect(final).toMatchObject({ type: 'final', outcome: 'ok', status: 'finished', done: 2, total: 2, fraction: 1, counts: { completed: 2, failed: 0 }, report: `s3://${bucket}/out/_reports/${summary!.batchId}.jsonl` });
  expect(final.audioSecondsDone).toBeGreaterThan(1);
  expect(watch.stderr).toBe('');

  // Watching a finished batch answers at once with the final line.
  const again = await scribe(['watch', summary!.batchId, '--json']);
  expect(again.code).toBe(EXIT.OK);
  expect(jsonLines(again.stdout)).toEqual([expect.objectContaining({ type: 'final', outcome: 'ok' })]);

  // batches and job
  const list = await scribe(['batches', '--json']);
  expect(list.code).toBe(EXIT.OK);
  expect(jsonLines(list.stdout)[0]!.batches[0]).toMatchObject({ id: summary!.batchId, status: 'finished', counts: { completed: 2 } });
  const human = await scribe(['batches']);
  expect(human.stdout).toContain(summary!.batchId);
  const jobId = (await service.listBatchJobs(summary!.batchId))[0]!.jobId;
  const job = await scribe(['job', jobId, '--json']);
  expect(job.code).toBe(EXIT.OK);
  expect(jsonLines(job.stdout)[0]).toMatchObject({ id: jobId, state: 'completed', outputs: { json: expect.any(String) } });
  // A finished job cannot be cancelled or redriven: a conflict (7), said on stderr.
  const cancel = await scribe(['cancel', jobId]);
  expect(cancel.code).toBe(EXIT.CONFLICT);
  expect(cancel.stderr).toMatch(/INVALID_STATE/);
  expect((await scribe(['redrive', jobId, '--json'])).code).toBe(EXIT.CONFLICT);
});

it('a batch with a failed job: watch exits 4; redrive <batchId> puts it back', async () => {
  const enq = await scribe(['enqueue', `s3://${bucket}/broken/`, '--out', `s3://${bucket}/out-broken/`, '--format', 'json', '--format', 'txt', '--json']);
  const { batchId } = jsonLines(enq.stdout)[0]!;
  const watch = await scribe(['watch', batchId, '--json', '--interval', '100']);
  expect(watch.code).toBe(EXIT.JOBS_FAILED);
  const final = jsonLines(watch.stdout).pop()!;
  expect(final).toMatchObject({ type: 'final', outcome: 'failed', counts: { completed: 1, failed: 1 } });
  // --format: the completed file has exactly the formats asked for.
  const outs: string[] = [];
  for await (const page of storage.listPages(bucket, 'out-broken/')) outs.push(...page.filter((o) => !o.key.includes('_reports/')).map((o) => o.key.slice(o.key.lastIndexOf('.'))));
  expect(outs.filter((x) => ['.json', '.txt', '.srt', '.vtt'].includes(x)).sort()).toEqual(['.json', '.txt']);

  // Plain (not --json, not a TTY): a summary line on stdout, no progress escapes on stderr.
  const plain = await scribe(['watch', batchId]);
  expect(plain.code).toBe(EXIT.JOBS_FAILED);
  expect(plain.stdout).toMatch(new RegExp(`^batch ${batchId} finished: 1 completed, 1 failed, 0 cancelled, 0 skipped of 2`));
  expect(plain.stderr).not.toMatch(/\x1b\[/);

  const redrive = await scribe(['redrive', batchId, '--json']);
  expect(redrive.code).toBe(EXIT.OK);
  expect(jsonLines(redrive.stdout)[0]).toEqual({ id: batchId, kind: 'batch', redriven: 1 });
  // The noise is still noise: it fails again.
  expect((await scribe(['watch', batchId, '--json', '--interval', '100'])).code).toBe(EXIT.JOBS_FAILED);
});

it('enqueue --manifest (CSV, bare keys in the <source> bucket) and a plain summary without --json', async () => {
  const file = join(dir, 'files.csv');
  writeFileSync(file, `source,options\nin/cli-one.wav,"{""multichannel"":false}"\ns3://${bucket}/in/cli-two.wav\n`);
  const enq = await scribe(['enqueue', `s3://${bucket}`, '--manifest', file, '--out', `s3://${bucket}/out-manifest/`, '--priority', '5']);
  expect(enq.code).toBe(EXIT.OK);
  expect(enq.stdout).toMatch(/^batch (b_\S+): listed 2, added 2, already queued 0, skipped \(outputs exist\) 0, ignored 0\nfollow it with: scribe watch b_/);
  expect(enq.stderr).toBe(''); // not a TTY: no progress bar
  const batchId = /^batch (b_\S+):/.exec(enq.stdout)![1]!;
  const watch = await scribe(['watch', batchId, '--json', '--interval', '100']);
  expect(watch.code).toBe(EXIT.OK);
  expect((await service.getBatch(batchId)).batch).toMatchObject({ source: 'manifest', priority: 5, counts: { completed: 2 } });
});

it('cancel <batchId> while it runs: the batch ends cancelled and watch exits 5', async () => {
  const enq = await scribe(['enqueue', `s3://${bucket}/long/`, '--out', `s3://${bucket}/out-long/`, '--mode', 'stream', '--json']);
  const { batchId } = jsonLines(enq.stdout)[0]!;
  for (let i = 0; i < 200 && (await service.getBatch(batchId)).batch.counts.active === 0; i++) {
    await worker.discover();
    await new Promise((r) => setTimeout(r, 100));
  }
  const cancel = await scribe(['cancel', batchId, '--json']);
  expect(cancel.code).toBe(EXIT.OK);
  expect(jsonLines(cancel.stdout)[0]).toMatchObject({ id: batchId, kind: 'batch' });
  const watch = await scribe(['watch', batchId, '--json', '--interval', '100']);
  expect(watch.code).toBe(EXIT.CANCELLED);
  expect(jsonLines(watch.stdout).pop()).toMatchObject({ type: 'final', outcome: 'cancelled', status: 'cancelled', counts: { completed: 0 } });
});

it('refusals map to the documented exit codes, with a JSON error under --json', async () => {
  const cases: Array<[string[], Record<string, string>, number, string]> = [
    [['enqueue', 'http://nope', '--out', `s3://${bucket}/o/`, '--json'], {}, EXIT.BAD_INPUT, 'INVALID_S3_URL'],
    [['enqueue', `s3://${bucket}/in/`, '--out', `s3://${bucket}/o/`, '--provider', 'nope', '--json'], {}, EXIT.BAD_INPUT, 'UNKNOWN_PROVIDER'],
    [['enqueue', `s3://${bucket}/in/`, '--out', `s3://${bucket}/o/`, '--model', 'gpt-9', '--json'], {}, EXIT.BAD_INPUT, 'UNSUPPORTED_COMBINATION'],
    [['enqueue', `s3://${bucket}/in/`, '--out', `s3://${bucket}/o/`, '--json'], { S3_ALLOWED_BUCKETS: 'some-other-bucket' }, EXIT.BAD_INPUT, 'BUCKET_NOT_ALLOWED'],
    [['enqueue', `s3://${bucket}/in/`, '--out', `s3://${bucket}/o/`, '--option', 'novalue', '--json'], {}, EXIT.BAD_INPUT, 'INVALID_REQUEST'],
    [['enqueue', `s3://${bucket}/in/`, '--out', `s3://${bucket}/o/`, '--provider', 'openai', '--option', 'diarize=true', '--json'], {}, EXIT.BAD_INPUT, 'UNSUPPORTED_OPTION'],
    [['enqueue', `s3://${bucket}/in/`, '--out', `s3://${bucket}/o/`, '--format', 'json', '--format', 'pdf', '--json'], {}, EXIT.BAD_INPUT, 'INVALID_JOB_SPEC'],
    [['watch', 'b_20990101-000000_deadbeef', '--json'], {}, EXIT.NOT_FOUND, 'BATCH_NOT_FOUND'],
    [['enqueue', `s3://${bucket}/in/`, '--out', `s3://${bucket}/o/`, '--max-audio-hours', '0', '--json'], {}, EXIT.BAD_INPUT, 'INVALID_REQUEST'],
    [['resume', 'b_20990101-000000_deadbeef', '--max-cost', '5', '--json'], {}, EXIT.NOT_FOUND, 'BATCH_NOT_FOUND'],
    [['resume', 'b_20990101-000000_deadbeef', '--max-cost', '5', '--unlimited', '--json'], {}, EXIT.BAD_INPUT, 'INVALID_REQUEST'],
    [['job', `tx_${'0'.repeat(40)}`, '--json'], {}, EXIT.NOT_FOUND, 'JOB_NOT_FOUND'],
    [['cancel', `tx_${'0'.repeat(40)}`, '--json'], {}, EXIT.NOT_FOUND, 'JOB_NOT_FOUND'],
    [['status', '--json'], { REDIS_URL: 'not a url' }, EXIT.CONFIG, 'CONFIG_INVALID'],
    [['batches', '--json'], { REDIS_URL: 'redis://127.0.0.1:1' }, EXIT.UNAVAILABLE, 'REDIS_UNAVAILABLE'],
    [['enqueue', `s3://${bucket}/in/`, '--out', `s3://${bucket}/o/`, '--json'], { S3_ENDPOINT: 'http://127.0.0.1:1' }, EXIT.UNAVAILABLE, 'STORAGE_UNAVAILABLE'],
  ];
  // No refusal creates a batch (nor enqueues a job: every job belongs to a batch).
  const before = await service.batches.count();
  const results = await Promise.all(cases.map(([args, e]) => scribe(args, e)));
  expect(await service.batches.count()).toBe(before);
  cases.forEach(([args, , exit, code], i) => {
    const r = results[i]!;
    expect({ args, exit: r.code, code: jsonLines(r.stdout)[0]?.error?.code }).toEqual({ args, exit, code });
  });

  // A manifest with bad lines names them, and nothing is enqueued.
  const file = join(dir, 'bad.jsonl');
  writeFileSync(file, `${JSON.stringify({ source: `s3://${bucket}/in/cli-one.wav` })}\n{oops\n${JSON.stringify({ source: `s3://${bucket}/in/gone.wav` })}\n`);
  const bad = await scribe(['enqueue', '--manifest', file, '--out', `s3://${bucket}/o/`, '--json']);
  expect(bad.code).toBe(EXIT.BAD_INPUT);
  const err = jsonLines(bad.stdout)[0]!.error;
  expect(err.code).toBe('INVALID_MANIFEST');
  expect(err.details.errors.map((e: { line: number }) => e.line)).toEqual([2, 3]);
  expect(await service.batches.count()).toBe(before);

  // Usage errors are bad input too; without --json the message goes to stderr.
  const usage = await scribe(['enqueue', `s3://${bucket}/in/`]);
  expect(usage.code).toBe(EXIT.BAD_INPUT);
  expect(usage.stderr).toMatch(/--out/);
  expect((await scribe(['--help'])).code).toBe(EXIT.OK);
});

it('watch on a TTY draws bars for files, audio, rate and ETA (in process, fake terminal)', async () => {
  const { batchId } = await service.create({ source: `s3://${bucket}/in/cli-one.wav`, out: `s3://${bucket}/out-tty/` });
  let screen = '';
  let out = '';
  // Many fast ticks on one Ctrl-C signal: its listeners must not pile up (one per wait, removed after).
  const stop = new AbortController();
  let ticks = 0;
  let maxListeners = 0;
  const { final, outcome } = await watchBatch(service, batchId, {
    intervalMs: 20,
    json: false,
    signal: stop.signal,
    stdout: { write: (s: string) => ((out += s), true) },
    stderr: {
      isTTY: true,
      write: (s: string) => {
        ticks += 1;
        maxListeners = Math.max(maxListeners, getEventListeners(stop.signal, 'abort').length);
        return (screen += s), true;
      },
    },
  });
  expect(outcome).toBe('ok');
  expect(ticks).toBeGreaterThan(11);
  expect(maxListeners).toBeLessThanOrEqual(1);
  expect(final.counts.completed).toBe(1);
  expect(screen).toMatch(/files {2}\[[█▌░]+\] +100% {2}1 \/ 1/);
  expect(screen).toMatch(/audio {2}\[[█▌░]+\]/);
  expect(screen).toMatch(/rate {3}[\d.]+ files\/s · .* · ETA .* · finished/);
  expect(screen).toContain('\x1b[3A'); // redrawn in place
  expect(out).toMatch(new RegExp(`^batch ${batchId} finished: 1 completed`));
});

it('enqueue on a real terminal (a pty via script(1)) draws its progress on stderr, then the summary', async () => {
  const cmd = [process.execPath, CLI, 'enqueue', `s3://${bucket}/in/`, '--out', `s3://${bucket}/out-pty/`].map((a) => `'${a}'`).join(' ');
  const r = await new Promise<{ code: number | null; out: string }>((resolve) => {
    const child = spawn('script', ['-qec', cmd, '/dev/null'], { env: env({ ENQUEUE_PAGE_SIZE: '1', TERM: 'xterm' }), stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.once('exit', (code) => resolve({ code, out }));
  });
  expect(r.code).toBe(EXIT.OK);
  expect(r.out).toMatch(/\r\x1b\[2Klisting s3:\/\/\S+\/in\/: 1 objects/);
  expect(r.out).toMatch(/added · 0 skipped \(outputs exist\)/);
  expect(r.out).toMatch(/batch b_\S+: listed 2, added 2/);
});
