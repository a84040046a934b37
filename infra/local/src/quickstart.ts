#!/usr/bin/env node
/**
 * `npm run quickstart`: the whole product on one machine, end to end and for real.
 * Starts a private Redis and S3 server (unless REDIS_URL / S3_ENDPOINT are given), synthesises known
 * sentences with flite into wav/mp3/flac/m4a, uploads them, enqueues the prefix (batch mode, then the
 * first file again in stream mode), runs a worker in this process, and prints each transcript with its
 * word error rate against the known text. Exits 1 if any WER is above 15 %.
 * The services it started are always stopped at the end; `npm run stack` keeps a stack running instead.
 */
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { loadConfig, wordErrorRate, type DeepgramStyleJson } from '@scribe-fleet/core';
import { enqueuePrefix, openProducer } from '@scribe-fleet/producer';
import { createDeps, startWorker } from '@scribe-fleet/worker';
import { startStack } from './services';
import { DEFAULT_SAMPLES, synthesise } from './samples';

const BUCKET = 'scribe-quickstart';
const MAX_WER = 0.15;

async function main() {
  const root = resolve(__dirname, '..', '..', '..');
  const dataDir = join(root, '.scribe', 'quickstart');
  await rm(dataDir, { recursive: true, force: true });
  await mkdir(dataDir, { recursive: true });
  console.log('[quickstart] starting Redis and the S3 server…');
  const stack = await startStack({ dir: dataDir });
  const env = {
    ...process.env,
    REDIS_URL: stack.redisUrl,
    S3_ENDPOINT: stack.s3.endpoint,
    S3_ACCESS_KEY_ID: stack.s3.accessKeyId,
    S3_SECRET_ACCESS_KEY: stack.s3.secretAccessKey,
    S3_REGION: stack.s3.region,
  };
  const config = loadConfig(env);
  const producer = openProducer(config);
  const worker = startWorker(config, createDeps(config));
  let failures = 0;
  try {
    await producer.storage.ensureBucket(BUCKET);
    const work = await mkdtemp(join(tmpdir(), 'scribe-quickstart-'));
    for (const s of DEFAULT_SAMPLES) {
      const file = join(work, s.name);
      await synthesise(s, file);
      await producer.storage.put(BUCKET, `samples/${s.name}`, await readFile(file));
      console.log(`[quickstart] uploaded s3://${BUCKET}/samples/${s.name} (flite voice ${s.voice})`);
    }
    await rm(work, { recursive: true, force: true });

    const runs = [
      { mode: 'batch', source: `s3://${BUCKET}/samples/`, out: `s3://${BUCKET}/transcripts/batch/` },
      { mode: 'stream', source: `s3://${BUCKET}/samples/${DEFAULT_SAMPLES[0]!.name}`, out: `s3://${BUCKET}/transcripts/stream/` },
    ];
    for (const r of runs) {
      const res = await enqueuePrefix({ source: r.source, out: r.out, mode: r.mode }, { storage: producer.storage, fleet: producer.fleet });
      console.log(`[quickstart] ${r.mode}: enqueued ${res.added} job(s) from ${r.source}`);
      for (const id of res.jobIds) {
        const job = await producer.fleet.getJob(id);
        if (!job) throw new Error(`job ${id} vanished`);
        try {
          const result = await producer.fleet.waitForJob(id, 10 * 60_000);
          const doc = JSON.parse(await readText(producer, result.bucket, result.outputs.json!)) as DeepgramStyleJson;
          const sample = DEFAULT_SAMPLES.find((s) => job.data.source.key.endsWith(s.name))!;
          const hyp = doc.results.channels[0]!.alternatives[0]!.transcript;
          const wer = wordErrorRate(sample.text, hyp);
          if (wer > MAX_WER) failures += 1;
          console.log(`\n  ${sample.name} [${r.mode}] ${doc.metadata.duration.toFixed(2)} s  WER ${(wer * 100).toFixed(1)} %${wer > MAX_WER ? '  (above 15 %!)' : ''}`);
          console.log(`    heard:    ${hyp}`);
          console.log(`    expected: ${sample.text.replace('. ', ' ')}`);
          console.log(`    outputs:  ${Object.values(result.outputs).map((k) => `s3://${result.bucket}/${k}`).join('  ')}`);
        } catch (e) {
          failures += 1;
          console.log(`\n  ${job.data.source.key} [${r.mode}] FAILED: ${(e as Error).message}`);
        }
      }
    }
  } finally {
    await worker.close();
    await producer.close();
    await stack.stop();
  }
  console.log(failures === 0 ? '\n[quickstart] OK: every transcript within 15 % WER' : `\n[quickstart] ${failures} sample(s) failed`);
  process.exit(failures === 0 ? 0 : 1);
}

async function readText(p: ReturnType<typeof openProducer>, bucket: string, key: string): Promise<string> {
  const { body } = await p.storage.get(bucket, key);
  const parts: Buffer[] = [];
  for await (const c of body) parts.push(c as Buffer);
  return Buffer.concat(parts).toString('utf8');
}

main().catch((e) => {
  console.error('[quickstart] failed:', e);
  process.exit(1);
});
