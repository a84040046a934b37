/** A paced stream interrupted mid-way resumes from its checkpoint on the next attempt. */
import { readFile } from 'node:fs/promises';
import { JobCancelledError, parseJobSpec, wordErrorRate, type Provider, type ProviderResult } from '@scribe-fleet/core';
import { LocalProvider } from '@scribe-fleet/core/adapters/local-provider';
import { createDeps, createProcessor } from '@scribe-fleet/worker';
import { checkpointKey, loadCheckpoint } from '@scribe-fleet/core/app/checkpoints';
import { testStorage, uniqueBucket } from '../helpers/env';
import { repeatedSpeech, testConfig } from '../helpers/fleet';

jest.setTimeout(90_000);

it('an attempt cut off after two utterances leaves a checkpoint; the retry sends only the rest', async () => {
  const storage = testStorage();
  const bucket = uniqueBucket('resume');
  await storage.ensureBucket(bucket);
  const { path, period, text } = await repeatedSpeech(3);
  const bytes = await readFile(path);
  await storage.put(bucket, 'in/three.wav', bytes);
  const head = (await storage.head(bucket, 'in/three.wav'))!;
  const spec = parseJobSpec({ source: { bucket, key: 'in/three.wav', etag: head.etag, size: head.size }, output: { bucket, keyBase: 'out/three.wav' }, mode: 'stream' });

  // Paced at 4× real time to keep the test short; pacing itself is tested elsewhere.
  const local = new LocalProvider({ speed: 4 });
  const sessions: ProviderResult[] = [];
  const provider: Provider = { name: 'local', transcribe: async (req, ctx) => { const r = await local.transcribe(req, ctx); sessions.push(r); return r; } };
  const config = testConfig();
  const ctrl = new AbortController();
  let finals = 0;
  const deps = createDeps(config, {
    storage,
    providers: { local: provider },
    checkpointIntervalMs: 1,
    onSessionEvent: (_s, e) => {
      if (e.type === 'session:final' && ++finals === 2) ctrl.abort(new Error('worker lost'));
    },
  });
  const process = createProcessor(deps);
  try {
    // Attempt 1: cut off right after the second utterance is final.
    await expect(process(spec, { id: 'j', attempt: 1, signal: ctrl.signal })).rejects.toBeInstanceOf(JobCancelledError);
    const cp = (await loadCheckpoint(storage, spec))!;
    expect(cp.segments).toHaveLength(2);
    expect(cp.offsetSeconds).toBeGreaterThan(period);
    expect(cp.offsetSeconds).toBeLessThan(2 * period);

    // Attempt 2 resumes: it sends only the audio after the checkpoint.
    const result = await process(spec, { id: 'j', attempt: 2, signal: new AbortController().signal });
    const rest = sessions.at(-1)!;
    const totalPcm = (rest.transcript.duration + cp.offsetSeconds) * 32_000;
    expect(rest.stats.bytesSent).toBeLessThan(totalPcm - cp.offsetSeconds * 32_000 + 6400);
    expect(rest.stats.bytesSent).toBeGreaterThan(totalPcm - cp.offsetSeconds * 32_000 - 6400);

    // The outputs are the whole file, in its own time line.
    const doc = JSON.parse((await readObjectText(storage, bucket, result.outputs.json!)));
    const utts = doc.results.utterances as Array<{ start: number; transcript: string }>;
    expect(utts).toHaveLength(3);
    expect(utts[1]!.start - utts[0]!.start).toBeCloseTo(period, 0);
    expect(utts[2]!.start - utts[0]!.start).toBeCloseTo(2 * period, 0);
    for (const u of utts) expect({ u: u.transcript, ok: wordErrorRate(text, u.transcript) <= 0.15 }).toEqual({ u: u.transcript, ok: true });
    expect(doc.metadata.duration).toBeCloseTo(3 * period, 0);
    expect(doc.metadata.sha256).toBe(require('node:crypto').createHash('sha256').update(bytes).digest('hex'));
    // Done: the checkpoint is gone.
    expect(await storage.head(bucket, checkpointKey(spec))).toBeNull();
  } finally {
    await deps.limiter.close?.();
  }
});

async function readObjectText(storage: ReturnType<typeof testStorage>, bucket: string, key: string): Promise<string> {
  const { body } = await storage.get(bucket, key);
  const parts: Buffer[] = [];
  for await (const c of body) parts.push(c as Buffer);
  return Buffer.concat(parts).toString('utf8');
}
