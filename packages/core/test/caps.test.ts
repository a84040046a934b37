import { capBucketKey, CapBuckets, resolveBucket, type FleetCapSettings } from '../src/domain/caps';
import { capBucketsFromConfig, loadConfig } from '../src/domain/config';

const settings: FleetCapSettings = {
  deepgramWhisperPlan: 'payg',
  deepgramStreamCap: 50,
  overrides: { 'deepgram:*:nova:batch': 80, 'deepgram:projA:nova:batch': 30 },
  queueBase: 'transcribe',
  prefetchRatio: 0.5,
  prefetchMin: 2,
  workerConcurrency: 10,
  localConcurrency: 2,
};

describe('caps.resolveBucket: every number of a bucket from one place', () => {
  test('an account override wins over the wildcard; prefetch is half the cap; per worker is capped by WORKER_CONCURRENCY', () => {
    const r = resolveBucket({ provider: 'deepgram', account: 'projA', modelClass: 'nova', mode: 'batch' }, settings);
    expect(r).toEqual({
      bucket: { provider: 'deepgram', account: 'projA', modelClass: 'nova', mode: 'batch' },
      key: 'deepgram:projA:nova:batch',
      queueName: 'transcribe.deepgram.projA.nova.batch',
      cap: 30,
      activeLimit: 45,
      perWorker: 10,
    });
    expect(resolveBucket({ provider: 'deepgram', account: 'other', modelClass: 'nova', mode: 'batch' }, settings)).toMatchObject({ cap: 80, activeLimit: 120 });
  });

  test('Whisper pay-as-you-go is 5 (prefetch at least 2), live streams take the stream cap, local runs LOCAL_CONCURRENCY per worker', () => {
    expect(resolveBucket({ provider: 'deepgram', account: 'default', modelClass: 'whisper', mode: 'batch' }, settings)).toMatchObject({ cap: 5, activeLimit: 8, perWorker: 8 });
    expect(resolveBucket({ provider: 'deepgram', account: 'default', modelClass: 'whisper', mode: 'batch' }, { ...settings, workerConcurrency: 4 })).toMatchObject({ perWorker: 4 });
    expect(resolveBucket({ provider: 'deepgram', account: 'default', modelClass: 'nova', mode: 'stream' }, settings)).toMatchObject({ cap: 50, activeLimit: 75 });
    expect(resolveBucket({ provider: 'local', account: 'default', modelClass: 'default', mode: 'batch' }, settings)).toMatchObject({ cap: 64, perWorker: 2 });
  });

  test('CapBuckets resolves a spec and a key to the same value, once', () => {
    const caps = new CapBuckets(settings);
    const a = caps.of({ provider: 'deepgram', account: 'projA', model: 'nova-3', mode: 'batch' });
    const b = caps.fromKey('deepgram:projA:nova:batch');
    expect(b).toBe(a);
    expect(capBucketKey(a.bucket)).toBe(a.key);
    expect(caps.fromKey('not-a-key')).toBeNull();
  });

  test('capBucketsFromConfig reads SCRIBE_CAPS, CAP_PREFETCH_*, WORKER_CONCURRENCY, LOCAL_CONCURRENCY and QUEUE_NAME', () => {
    const caps = capBucketsFromConfig(
      loadConfig({ REDIS_URL: 'redis://127.0.0.1:1', SCRIBE_CAPS: 'openai:*:default:batch=7', CAP_PREFETCH_RATIO: '1', CAP_PREFETCH_MIN: '0', WORKER_CONCURRENCY: '3', LOCAL_CONCURRENCY: '1', QUEUE_NAME: 'q' }),
    );
    expect(caps.of({ provider: 'openai', account: 'x', model: 'whisper-1', mode: 'batch' })).toMatchObject({ cap: 7, activeLimit: 14, perWorker: 3, queueName: 'q.openai.x.default.batch' });
    expect(caps.of({ provider: 'local', account: 'default', model: 'sphinx', mode: 'batch' })).toMatchObject({ perWorker: 1 });
  });
});
