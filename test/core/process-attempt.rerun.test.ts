/** A job re-run after its outputs were written (crash, Redis error) returns them, without transcribing again. */
import { parseJobSpec, type Provider } from '@scribe-fleet/core';
import { createDeps, createProcessor } from '@scribe-fleet/worker';
import { testStorage, uniqueBucket } from '../helpers/env';
import { sampleFiles, testConfig, uploadSamples } from '../helpers/fleet';

jest.setTimeout(60_000);

it('the second run of the same job reads the existing outputs; force transcribes again', async () => {
  const config = testConfig();
  const storage = testStorage();
  const bucket = uniqueBucket('rerun');
  const [sample] = await sampleFiles();
  await uploadSamples(storage, bucket, 'in/', [sample!]);
  const head = (await storage.head(bucket, `in/${sample!.name}`))!;
  const deps = createDeps(config, { storage });
  let sessions = 0;
  const local = deps.providers.local!;
  const counting: Provider = { name: 'local', transcribe: (req, ctx) => ((sessions += 1), local.transcribe(req, ctx)) };
  deps.providers = { local: counting };
  const process = createProcessor(deps);
  const spec = parseJobSpec({ source: { bucket, key: `in/${sample!.name}`, etag: head.etag, size: head.size }, output: { bucket, keyBase: `out/${sample!.name}` } });
  const ctx = { id: 'x', attempt: 1, signal: new AbortController().signal };
  try {
    const first = await process(spec, ctx);
    const second = await process(spec, ctx);
    expect(sessions).toBe(1);
    expect(second).toMatchObject({ outputs: first.outputs, requestId: first.requestId, sha256: first.sha256, words: first.words });
    expect(second.duration).toBeCloseTo(first.duration, 2);
    await process({ ...spec, force: true }, ctx);
    expect(sessions).toBe(2);
  } finally {
    await deps.limiter.close?.();
  }
});
