import { loadConfig } from '../src/domain/config';
import { choiceFigures, parseSpeeds, speedFor, type ChoiceInputs } from '../src/domain/plan';
import { DEFAULT_PRICES, parsePriceTable, priceFor, type PriceEntry } from '../src/domain/prices';

describe('price table', () => {
  it('picks the most specific entry: exact id, then the longest prefix, then *', () => {
    expect(priceFor({ provider: 'deepgram', model: 'nova-3', mode: 'batch' })?.usdPerMinute).toBe(0.0043);
    expect(priceFor({ provider: 'deepgram', model: 'nova-3', mode: 'stream' })?.usdPerMinute).toBe(0.0077);
    expect(priceFor({ provider: 'deepgram', model: 'enhanced-phonecall', mode: 'batch' })?.usdPerMinute).toBe(0.0145);
    expect(priceFor({ provider: 'deepgram', model: 'whisper-large', mode: 'batch' })?.usdPerMinute).toBe(0.0048);
    expect(priceFor({ provider: 'openai', model: 'gpt-4o-mini-transcribe', mode: 'batch' })?.usdPerMinute).toBe(0.003);
    expect(priceFor({ provider: 'openai', model: 'whisper-1', mode: 'batch' })?.usdPerMinute).toBe(0.006);
    const own: PriceEntry = { provider: 'deepgram', model: 'nova-3', mode: 'batch', usdPerMinute: 0.0036, source: 'our contract', asOf: '2026-11-01' };
    const exact: PriceEntry = { ...own, model: 'nova-3-medical', usdPerMinute: 0.005 };
    expect(priceFor({ provider: 'deepgram', model: 'nova-3', mode: 'batch' }, [own])).toBe(own);
    expect(priceFor({ provider: 'deepgram', model: 'nova-3-medical', mode: 'batch' }, [own, exact])).toBe(exact);
    // An override table without the choice falls back to the defaults.
    expect(priceFor({ provider: 'openai', model: 'whisper-1', mode: 'batch' }, [own])?.source).toMatch(/openai/);
  });

  it('has an entry for every provider and mode the catalogue runs, each with a source and date', () => {
    for (const [provider, modes] of [['deepgram', ['batch', 'stream']], ['assemblyai', ['stream']], ['fireworks', ['stream']], ['openai', ['batch']], ['local', ['batch', 'stream']]] as const) {
      for (const mode of modes) expect(priceFor({ provider, model: 'any-model', mode })).not.toBeNull();
    }
    for (const e of DEFAULT_PRICES) expect(e.source && /^\d{4}-\d{2}-\d{2}$/.test(e.asOf)).toBeTruthy();
    expect(priceFor({ provider: 'assemblyai', model: 'x', mode: 'batch' })).toBeNull();
  });

  it('parses an operator file and names the first bad entry', () => {
    const ok = [{ provider: 'fireworks', model: '*', mode: 'stream', usdPerMinute: 0.002, source: 'quote', asOf: '2026-10-01' }];
    expect(parsePriceTable(JSON.stringify(ok))).toEqual(ok);
    expect(() => parsePriceTable('{')).toThrow(/not JSON/);
    expect(() => parsePriceTable(JSON.stringify([{ ...ok[0], usdPerMinute: -1 }]))).toThrow(/entry 0\.usdPerMinute/);
    expect(() => parsePriceTable(JSON.stringify([{ ...ok[0], provider: 'acme' }]))).toThrow(/entry 0\.provider/);
    expect(() => parsePriceTable(JSON.stringify([{ ...ok[0], extra: 1 }]))).toThrow(/entry 0/);
  });
});

describe('plan figures', () => {
  const price = priceFor({ provider: 'deepgram', model: 'nova-3', mode: 'batch' });
  const base: ChoiceInputs = {
    mode: 'batch',
    files: 1000,
    audioSeconds: { estimate: 360_000, low: 342_000, high: 378_000 },
    longestSeconds: 3600,
    cap: 100,
    perWorker: 50,
    speed: { speed: 120, overheadSeconds: 2 },
    price,
  };

  it('cost is audio minutes × price (per channel when billed so), with its interval', () => {
    const f = choiceFigures(base);
    expect(f.costUsd).toEqual({ estimate: 25.8, low: 24.51, high: 27.09 }); // 6000 min × $0.0043
    expect(choiceFigures({ ...base, billedChannels: 2 }).costUsd!.estimate).toBe(51.6);
    expect(choiceFigures({ ...base, price: null }).costUsd).toBeNull();
  });

  it('batch time is audio ÷ (cap × speed) plus overhead spread over the cap, never below the longest file', () => {
    // 360 000 / (100 × 120) = 30 s, + 1000 × 2 / 100 = 20 s.
    expect(choiceFigures(base).wallSeconds.estimate).toBe(50);
    expect(choiceFigures({ ...base, files: 1, audioSeconds: { estimate: 3600, low: 3600, high: 3600 } }).wallSeconds.estimate).toBe(30);
    expect(choiceFigures(base).workers).toBe(2);
  });

  it('stream time is audio ÷ streams at once (real time), never below the longest file', () => {
    const s = { ...base, mode: 'stream' as const, cap: 50, speed: { speed: 1, overheadSeconds: 1 } };
    // 360 000 / 50 = 7200 s, + 1000 × 1 / 50 = 20 s.
    expect(choiceFigures(s).wallSeconds).toEqual({ estimate: 7220, low: 6860, high: 7580 });
    expect(choiceFigures({ ...s, cap: 1000 }).wallSeconds.estimate).toBe(3600);
    expect(choiceFigures(s).workers).toBe(1);
  });

  it('nothing to do costs nothing and needs no worker', () => {
    expect(choiceFigures({ ...base, files: 0, audioSeconds: { estimate: 0, low: 0, high: 0 }, longestSeconds: 0 })).toEqual({ costUsd: { estimate: 0, low: 0, high: 0 }, wallSeconds: { estimate: 0, low: 0, high: 0 }, workers: 0 });
  });

  it('speeds: PLAN_SPEEDS overrides the defaults and is validated', () => {
    const o = parseSpeeds('deepgram:batch=150/3, local:batch=0.8');
    expect(speedFor('deepgram', 'batch', o)).toEqual({ speed: 150, overheadSeconds: 3 });
    expect(speedFor('local', 'batch', o)).toEqual({ speed: 0.8, overheadSeconds: 1 });
    expect(speedFor('openai', 'batch', o)).toEqual({ speed: 20, overheadSeconds: 3 });
    expect(() => parseSpeeds('deepgram:batch=0')).toThrow(/bad speed/);
    expect(() => parseSpeeds('deepgram=3')).toThrow(/bad speed/);
    // Through the config module: the variable is named, its value parsed.
    expect(() => loadConfig({ REDIS_URL: 'redis://127.0.0.1:1', PLAN_SPEEDS: 'deepgram:batch=fast' })).toThrow(/PLAN_SPEEDS: bad speed/);
    expect(loadConfig({ REDIS_URL: 'redis://127.0.0.1:1', PLAN_SPEEDS: 'openai:batch=30' }).PLAN_SPEEDS).toEqual({ 'openai:batch': { speed: 30, overheadSeconds: 3 } });
    expect(loadConfig({ REDIS_URL: 'redis://127.0.0.1:1' }).PLAN_TTL_SECONDS).toBe(30 * 24 * 3600);
  });
});
