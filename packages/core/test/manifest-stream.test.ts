/**
 * Manifests read as streams (domain/manifest.ts), their limits (app/validate.ts), and the object
 * lookup that replaces a HEAD per entry (app/object-lookup.ts) — the lookup against an in-memory
 * store that lists and HEADs by S3's rules (the integration test runs it against the S3 server).
 */
import { ManifestTooLargeError, SourceNotFoundError, countManifestEntries, manifestLines, parseManifest, readManifest, utf8Length } from '../src';
import { compareKeys, ListingCursor, lookupObjects, type ObjectRef } from '../src/app/object-lookup';
import { manifestLimits } from '../src/app/validate';
import type { ObjectInfo, Storage } from '../src/ports/storage';

async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}

const bytes = (s: string) => new TextEncoder().encode(s);

describe('manifest lines from chunks', () => {
  it('splits across chunk boundaries (also inside a multi-byte character), drops the BOM, keeps line numbers', async () => {
    const text = '\uFEFF{"key":"é/a.wav"}\r\n\n# c\n{"key":"日本/b.wav"}';
    const all = bytes(text);
    // Every split point of the bytes, in two chunks: the same lines.
    for (let cut = 0; cut <= all.length; cut++) {
      const lines = await collect(manifestLines([all.subarray(0, cut), all.subarray(cut)]));
      expect(lines).toEqual([
        { line: 1, text: '{"key":"é/a.wav"}\r' },
        { line: 2, text: '' },
        { line: 3, text: '# c' },
        { line: 4, text: '{"key":"日本/b.wav"}' },
      ]);
    }
    // A final newline does not start a line; strings work as chunks too.
    expect((await collect(manifestLines(['a\nb', '\n']))).map((l) => l.line)).toEqual([1, 2]);
  });

  it('readManifest yields the same entries and errors as the whole-text parse', async () => {
    const text = ['source,options', 's3://arch/x.wav,"{""language"":""de""}"', 'y.wav', 'not-a-bucket-url', 'y.wav', 's3://arch/dir/', 'a,b,c'].join('\n');
    const whole = parseManifest(text, 'csv', 'arch');
    const streamed = await collect(readManifest([bytes(text.slice(0, 17)), bytes(text.slice(17))], 'csv', { defaultBucket: 'arch', dedupe: true }));
    expect(streamed.filter((i) => 'entry' in i).map((i) => ('entry' in i ? i.entry : null))).toEqual(whole.entries);
    expect(streamed.filter((i) => 'error' in i).map((i) => ('error' in i ? { line: i.line, message: i.error } : null))).toEqual(whole.errors);
    expect(whole.errors.map((e) => e.line)).toEqual([5, 6, 7]);
    expect(whole.errors[0]!.message).toMatch(/duplicate of line 3/);
    // Without dedupe (the second read) a repeated source is an entry again.
    expect((await collect(readManifest([text], 'csv', { defaultBucket: 'arch' }))).filter((i) => 'entry' in i)).toHaveLength(4);
    expect(await countManifestEntries([text], 'csv')).toBe(6);
  });

  it('utf8Length counts UTF-8 bytes', () => {
    for (const s of ['', 'abc', 'é', '日本', '😀x', '\uD800']) expect(utf8Length(s)).toBe(Buffer.byteLength(s, 'utf8'));
  });
});

describe('manifest limits', () => {
  const config = { MANIFEST_MAX_BYTES: 100, MANIFEST_MAX_LINES: 3 };

  it('a known size over MANIFEST_MAX_BYTES is refused before reading', () => {
    expect(() => manifestLimits(config, 101)).toThrow(ManifestTooLargeError);
    expect(() => manifestLimits(config, 100)).not.toThrow();
  });

  it('bytes and lines are refused as they arrive: nothing after the limit is read', async () => {
    let pulled = 0;
    const chunks = (async function* () {
      for (let i = 0; i < 1000; i++) {
        pulled++;
        yield bytes('{"key":"0123456789.wav"}\n'); // 25 bytes
      }
    })();
    const err = await collect(readManifest(chunks, 'jsonl', { defaultBucket: 'b', limit: manifestLimits({ ...config, MANIFEST_MAX_LINES: 1000 }) })).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ManifestTooLargeError);
    expect((err as ManifestTooLargeError).code).toBe('MANIFEST_TOO_LARGE');
    expect((err as ManifestTooLargeError).details).toMatchObject({ limit: 'MANIFEST_MAX_BYTES', max: 100 });
    expect(pulled).toBe(5);

    const lines = await collect(manifestLines(['a\n\n\nb\n'], manifestLimits(config))).catch((e: unknown) => e);
    expect((lines as ManifestTooLargeError).details).toMatchObject({ limit: 'MANIFEST_MAX_LINES' });
    expect(await collect(manifestLines(['a\n\nb\n'], manifestLimits(config)))).toHaveLength(3);
    // Inline text over the byte limit: refused on its one chunk, before a line is parsed.
    await expect(collect(manifestLines(['x'.repeat(101)], manifestLimits(config)))).rejects.toBeInstanceOf(ManifestTooLargeError);
  });
});

describe('compareKeys', () => {
  it('is UTF-8 byte order (code points), not UTF-16 order', () => {
    const keys = ['a/b', 'a!', 'a', '\uFF21', '😀', 'é', 'a/'];
    const byBytes = [...keys].sort((x, y) => Buffer.compare(Buffer.from(x), Buffer.from(y)));
    expect([...keys].sort(compareKeys)).toEqual(byBytes);
  });
});

/**
 * An in-memory bucket store that lists (sorted by UTF-8 bytes, StartAfter, prefix, pages of 1 000)
 * and HEADs as S3 does. `folderOrder` lists the way s3rver's directory walk does instead: the keys
 * under a `/` before their siblings (`p/x` before `p!x`, which S3 lists first).
 */
function memoryStore(objects: Record<string, Record<string, { etag: string; size: number }>>, opts: { versioned?: string[]; folderOrder?: boolean } = {}) {
  const calls = { heads: 0, lists: 0 };
  const order = opts.folderOrder ? (k: string) => Buffer.from(k.replace(/\//g, '\u0000')) : (k: string) => Buffer.from(k);
  const sorted = new Map<string, string[]>();
  const keysOf = (bucket: string) => {
    if (!sorted.has(bucket)) sorted.set(bucket, Object.keys(objects[bucket]!).sort((x, y) => Buffer.compare(order(x), order(y))));
    return sorted.get(bucket)!;
  };
  const storage: Pick<Storage, 'head' | 'listPages'> = {
    async head(bucket, key) {
      calls.heads++;
      const o = objects[bucket]?.[key];
      return o ? { bucket, key, ...o, ...(opts.versioned?.includes(bucket) ? { versionId: `v-${key}` } : {}) } : null;
    },
    async *listPages(bucket, prefix, o = {}) {
      if (!objects[bucket]) throw new SourceNotFoundError(`s3://${bucket}: NoSuchBucket`);
      // StartAfter by S3's order (s3rver compares keys too); only the order of the answer differs.
      const after = o.startAfter ? Buffer.from(o.startAfter) : undefined;
      const all = keysOf(bucket).filter((k) => k.startsWith(prefix) && (!after || Buffer.compare(Buffer.from(k), after) > 0));
      const size = o.pageSize ?? 1000;
      for (let i = 0; i < all.length; i += size) {
        calls.lists++;
        yield all.slice(i, i + size).map((key): ObjectInfo => ({ bucket, key, ...objects[bucket]![key]! }));
      }
      if (all.length === 0) calls.lists++;
    },
  };
  return { storage, calls };
}

function many(n: number, prefix: string, every = 1) {
  const out: Record<string, { etag: string; size: number }> = {};
  for (let i = 0; i < n; i += every) out[`${prefix}${String(i).padStart(6, '0')}.wav`] = { etag: `e${i}`, size: i };
  return out;
}

async function lookAll(storage: Pick<Storage, 'head' | 'listPages'>, refs: ObjectRef[], opts = {}) {
  const res = new Array<ObjectInfo | null | undefined>(refs.length);
  let answers = 0;
  const stats = await lookupObjects(storage, refs, (i, info) => ((res[i] = info), answers++), { exact: true, ...opts });
  expect(answers).toBe(refs.length); // one answer per ref
  return { res, stats };
}

describe('lookupObjects', () => {
  it('dense keys: a few list calls instead of a HEAD each, the same answers as HEAD', async () => {
    const { storage, calls } = memoryStore({ b: { ...many(5000, 'in/a/'), ...many(3000, 'in/b/') } });
    const refs = [...Object.keys(many(5000, 'in/a/')), ...Object.keys(many(3000, 'in/b/'))].reverse().map((key) => ({ bucket: 'b', key }));
    refs.push({ bucket: 'b', key: 'in/a/missing.wav' }, { bucket: 'b', key: 'in/zz.wav' });
    const { res } = await lookAll(storage, refs);
    const heads = await Promise.all(refs.map((r) => storage.head(r.bucket, r.key)));
    expect(res.map((r) => r && { etag: r.etag, size: r.size, versionId: r.versionId })).toEqual(heads.map((h) => h && { etag: h.etag, size: h.size, versionId: h.versionId }));
    expect(res.filter((r) => r === null)).toHaveLength(2);
    // 8 000 found by ~9 runs of one page each; a probe HEAD, 2 confirmations of the missing, and the 8 002 reference HEADs above.
    expect(calls.lists).toBeLessThanOrEqual(12);
    expect(calls.heads).toBeLessThanOrEqual(refs.length + 1 + 2);
  });

  it('sparse keys fall back to HEAD after one page; few keys are HEADed at once', async () => {
    const { storage, calls } = memoryStore({ b: many(100_000, 'x/'), c: many(10, 'y/') });
    const refs = Object.keys(many(100_000, 'x/', 2000)).map((key) => ({ bucket: 'b', key })); // 50 of 100 000
    refs.push(...Object.keys(many(10, 'y/')).map((key) => ({ bucket: 'c', key })));
    const { res } = await lookAll(storage, refs);
    expect(res.every((r) => r)).toBe(true);
    expect(calls.lists).toBe(1);
    expect(calls.heads).toBeLessThanOrEqual(refs.length + 1);
  });

  it('a versioned bucket (HEAD has a version id, the listing none) is HEADed: versionId kept', async () => {
    const { storage } = memoryStore({ v: many(100, 'k/') }, { versioned: ['v'] });
    const refs = Object.keys(many(100, 'k/')).map((key) => ({ bucket: 'v', key }));
    const { res } = await lookAll(storage, refs);
    expect(res.every((r) => r?.versionId === `v-${r?.key}`)).toBe(true);
    // Without `exact`, existence is all that is asked: the listing is taken as it is.
    const plain = await lookAll(storage, refs, { exact: false });
    expect(plain.stats.heads).toBe(0);
  });

  it('a listing out of S3 order: keys it seemed to pass are confirmed by HEAD, not called missing', async () => {
    const objects = { ...many(2000, 'p/'), ...many(50, 'p!') };
    const { storage, calls } = memoryStore({ b: objects }, { folderOrder: true });
    const refs = Object.keys(objects).map((key) => ({ bucket: 'b', key }));
    const { res } = await lookAll(storage, refs);
    expect(res.every((r) => r)).toBe(true);
    expect(calls.heads).toBeGreaterThanOrEqual(50); // the 50 `p!` keys, listed after `p/…` there
  });

  it('no such bucket: every key missing, no error', async () => {
    const { storage } = memoryStore({});
    const { res } = await lookAll(storage, Object.keys(many(40, 'q/')).map((key) => ({ bucket: 'none', key })));
    expect(res.every((r) => r === null)).toBe(true);
  });

  it('strategy head: one HEAD per key', async () => {
    const { storage, calls } = memoryStore({ b: many(200, 'p/') });
    await lookAll(storage, Object.keys(many(200, 'p/')).map((key) => ({ bucket: 'b', key })), { strategy: 'head' });
    expect(calls).toEqual({ heads: 200, lists: 0 });
  });
});

describe('ListingCursor (outputs looked up in step with a sorted listing)', () => {
  /** `n` sorted source keys in pages of `page`, as output refs under `out/` (the JSON output of each). */
  function asks(n: number, page: number, bucket = 'b') {
    const keys = Object.keys(many(n, 'calls/')).map((k) => `out/${k.slice('calls/'.length)}.json`);
    const pages: ObjectRef[][] = [];
    for (let i = 0; i < keys.length; i += page) pages.push(keys.slice(i, i + page).map((key) => ({ bucket, key })));
    return pages;
  }
  const outputs = (n: number, every: number, formats = ['json']) => {
    const o: Record<string, { etag: string; size: number }> = {};
    for (let i = 0; i < n; i += every) for (const f of formats) o[`out/${String(i).padStart(6, '0')}.wav.${f}`] = { etag: `o${i}`, size: 1 };
    return o;
  };
  async function run(storage: Pick<Storage, 'head' | 'listPages'>, pages: ObjectRef[][], cursor = new ListingCursor(storage, 'b', 'out/')) {
    let held = 0;
    const answers: Array<ObjectInfo | null> = [];
    for (const p of pages) {
      answers.push(...(await cursor.find(p)));
      held = Math.max(held, cursor.held);
    }
    return { answers, held, cursor };
  }

  it('1 output in 10 exists (four formats each): the same answers as HEAD, one list call per ~2 500 keys, no HEAD', async () => {
    const { storage, calls } = memoryStore({ b: { ...many(20_000, 'calls/'), ...outputs(20_000, 10, ['json', 'srt', 'txt', 'vtt']) } });
    const pages = asks(20_000, 1000);
    const { answers, held } = await run(storage, pages);
    const headed = await Promise.all(pages.flat().map((r) => storage.head(r.bucket, r.key)));
    expect(answers.map((a) => a?.key ?? null)).toEqual(headed.map((h) => h?.key ?? null));
    expect(answers.filter(Boolean)).toHaveLength(2000);
    // 8 000 output keys listed in pages of 1 000 (plus a call at each stretch's end), instead of one per ask or more.
    expect(calls.lists).toBeLessThanOrEqual(10);
    expect(calls.heads).toBe(20_000); // the reference HEADs above, none of the cursor's
    expect(held).toBeLessThanOrEqual(2000); // an ask's span plus a page, not the listing so far
  });

  it('no outputs at all: one list call answers every ask', async () => {
    const { storage, calls } = memoryStore({ b: many(5000, 'calls/') });
    const { answers } = await run(storage, asks(5000, 500));
    expect(answers.every((a) => a === null)).toBe(true);
    expect(calls).toEqual({ lists: 1, heads: 0 });
  });

  it('every output exists: answers all found, a list call per 1 000 keys', async () => {
    const { storage, calls } = memoryStore({ b: outputs(10_000, 1) });
    const { answers } = await run(storage, asks(10_000, 1000));
    expect(answers.every((a) => a !== null)).toBe(true);
    expect(calls.lists).toBeLessThanOrEqual(11);
    expect(calls.heads).toBe(0);
  });

  it('keys out of order (below where the listing stands), other buckets, and no such bucket are still answered right', async () => {
    const { storage } = memoryStore({ b: { ...outputs(3000, 3), 'out/a.json': { etag: 'x', size: 1 } }, c: { 'k.json': { etag: 'y', size: 1 } } });
    const cursor = new ListingCursor(storage, 'b', 'out/');
    await cursor.find(asks(3000, 1000)[2]!); // the listing now stands at the last third
    const back = [...asks(3000, 1000)[0]!.slice(0, 40), { bucket: 'b', key: 'out/a.json' }, { bucket: 'c', key: 'k.json' }, { bucket: 'c', key: 'no.json' }, { bucket: 'none', key: 'x.json' }];
    const got = await cursor.find(back);
    const want = await Promise.all(back.map((r) => storage.head(r.bucket, r.key)));
    expect(got.map((a) => a?.key ?? null)).toEqual(want.map((h) => h?.key ?? null));
    expect(got.filter(Boolean)).toHaveLength(14 + 2);
  });

  it('the wanted keys sparse among many others: stops listing after a page and HEADs the rest', async () => {
    const others: Record<string, { etag: string; size: number }> = {};
    for (let i = 0; i < 50_000; i++) others[`out/${String(i).padStart(6, '0')}.wav.json`] = { etag: 'z', size: 1 };
    const { storage, calls } = memoryStore({ b: others });
    const wanted = Object.keys(others).filter((_, i) => i % 500 === 0).map((key) => ({ bucket: 'b', key })); // 100 of 50 000
    const got = await new ListingCursor(storage, 'b', 'out/').find(wanted);
    expect(got.every((a) => a !== null)).toBe(true);
    expect(calls.lists).toBe(1);
    expect(calls.heads).toBeLessThanOrEqual(wanted.length);
  });
});
