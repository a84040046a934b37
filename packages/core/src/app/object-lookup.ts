/**
 * Which of many objects exist, and their ETag, size and version: by listing where the wanted keys
 * are dense, by HEAD where they are sparse.
 *
 * A HEAD per object costs one request each; a ListObjectsV2 page answers for up to 1 000 keys in
 * one. So the wanted keys of each bucket are sorted (S3 lists in UTF-8 binary order, which is code
 * point order) and cut into runs of up to 1 000; each run is listed from just before its first key,
 * under the longest prefix its first and last keys share, until the listing has passed its last key.
 * A run keeps listing only while each page covers (passes) at least LIST_MIN_KEYS of its keys; past
 * that the listing is mostly keys nobody asked for, and the keys it has not reached yet are HEADed
 * instead. A bucket with fewer wanted keys than that is HEADed outright. For 100 000 keys under a
 * few prefixes that is ~100 list calls instead of 100 000 HEADs.
 *
 * `exact` (the manifest's sources, whose ETag and version become the job identity): what a listing
 * says must be what HEAD would say. ListObjectsV2 carries no VersionId, so on a versioned bucket
 * HEAD (which does) is used for every key; each bucket is probed once with one HEAD of a listed key,
 * compared with the listing (ETag, size, no version id), and a bucket that fails the probe is
 * HEADed throughout. A key the listing passed without seeing is HEADed too before it is called
 * missing (the listing order of an S3-compatible server may differ from S3's), up to
 * `confirmMissingUpTo` of them; beyond that the listing's word is taken (the manifest is refused
 * either way). Without `exact` (does an output exist?) the listing is taken as it is.
 */
import { SourceNotFoundError } from '../domain/errors';
import type { ObjectInfo, Storage } from '../ports/storage';

export interface ObjectRef {
  bucket: string;
  key: string;
}

export interface LookupOptions {
  /** HEAD requests in flight at once. Default 16. */
  concurrency?: number;
  /** Runs being listed at once. Default 4. */
  listConcurrency?: number;
  /** Results must be exactly what HEAD gives (ETag, size, versionId): see the module comment. */
  exact?: boolean;
  /** With `exact`: keys the listing passed without seeing are confirmed by HEAD, up to this many (default: all). */
  confirmMissingUpTo?: number;
  /** `head`: HEAD every key (the simple strategy; the benchmark's baseline). Default `auto`. */
  strategy?: 'auto' | 'head';
}

export interface LookupStats {
  heads: number;
  listCalls: number;
}

/** HEAD requests in flight at once. */
export const LOOKUP_CONCURRENCY = 16;
/**
 * Runs listed at once. A list call is ~1 000 HEADs' worth of work for the server: 4 in flight keep
 * 4 000 keys being answered, and more only queue up inside it (s3rver, measured: 16 runs at once
 * were no faster than 4, and now and then stalled for seconds or answered 500).
 */
export const LIST_CONCURRENCY = 4;
/** Keys a list page must cover to be worth it (a LIST costs about 12 HEADs at S3's prices), and the fewest keys of a bucket worth listing. */
const LIST_MIN_KEYS = 32;
/** Wanted keys per listed run: about what one page of 1 000 listed keys covers where they are dense. */
const RUN_KEYS = 1000;

/** Code point order (= UTF-8 byte order, S3's listing order); JS `<` compares UTF-16 code units. */
export function compareKeys(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x === y) continue;
    // Surrogates (U+D800–DFFF) encode code points above every BMP character.
    const sx = x >= 0xd800 && x <= 0xdfff;
    const sy = y >= 0xd800 && y <= 0xdfff;
    if (sx !== sy) return sx ? 1 : -1;
    return x - y;
  }
  return a.length - b.length;
}

/** A key just before `key` in listing order with nothing wanted between: `key` without its last code point. */
function before(key: string): string {
  const cut = key.length >= 2 && (key.charCodeAt(key.length - 1) & 0xfc00) === 0xdc00 && (key.charCodeAt(key.length - 2) & 0xfc00) === 0xd800 ? 2 : 1;
  return key.slice(0, key.length - cut);
}

/** The longest common prefix of `a` and `b`, not ending inside a surrogate pair. */
function commonPrefix(a: string, b: string): string {
  let i = 0;
  while (i < a.length && i < b.length && a.charCodeAt(i) === b.charCodeAt(i)) i++;
  if (i > 0 && (a.charCodeAt(i - 1) & 0xfc00) === 0xd800) i--;
  return a.slice(0, i);
}

/** A bounded pool of tasks, to which running tasks may add more; `drain` resolves when all are done. */
class Pool {
  private readonly tasks: Array<() => Promise<void>> = [];
  private next = 0;
  private active = 0;
  private failed: unknown;
  private settle?: { resolve: () => void; reject: (e: unknown) => void };

  constructor(private readonly limit: number) {}

  add(task: () => Promise<void>): void {
    this.tasks.push(task);
    this.pump();
  }

  drain(): Promise<void> {
    return new Promise((resolve, reject) => {
      if (this.failed !== undefined) return reject(this.failed);
      this.settle = { resolve, reject };
      this.pump();
    });
  }

  private pump(): void {
    if (this.failed !== undefined) return;
    while (this.active < this.limit && this.next < this.tasks.length) {
      const task = this.tasks[this.next]!;
      this.tasks[this.next++] = undefined as never; // let it be collected
      this.active++;
      task().then(
        () => {
          this.active--;
          this.pump();
        },
        (e: unknown) => {
          this.failed = e ?? new Error('lookup failed');
          this.settle?.reject(this.failed);
        },
      );
    }
    if (this.active === 0 && this.next === this.tasks.length && this.settle) this.settle.resolve();
  }
}

/**
 * Look every ref up: `onResult(i, info)` once per ref (`info` null when the object does not
 * exist), in no particular order. Storage errors other than a missing bucket reject the whole.
 */
export async function lookupObjects(
  storage: Pick<Storage, 'head' | 'listPages'>,
  refs: ReadonlyArray<ObjectRef>,
  onResult: (index: number, info: ObjectInfo | null) => void,
  opts: LookupOptions = {},
): Promise<LookupStats> {
  const stats: LookupStats = { heads: 0, listCalls: 0 };
  const pool = new Pool(opts.concurrency ?? LOOKUP_CONCURRENCY);
  const listPool = new Pool(opts.listConcurrency ?? LIST_CONCURRENCY);
  let confirmations = opts.confirmMissingUpTo ?? Number.POSITIVE_INFINITY;
  const head = (i: number): void =>
    pool.add(async () => {
      stats.heads++;
      onResult(i, await storage.head(refs[i]!.bucket, refs[i]!.key));
    });
  if (opts.strategy === 'head') {
    for (let i = 0; i < refs.length; i++) head(i);
    await pool.drain();
    return stats;
  }

  // Per bucket: is a listing what HEAD would say? (Decided once, on the first listed key.)
  const listable = new Map<string, Promise<boolean>>();
  const probe = (bucket: string, listed: ObjectInfo): Promise<boolean> => {
    let p = listable.get(bucket);
    if (!p) {
      stats.heads++;
      p = storage.head(bucket, listed.key).then((h) => {
        if (!h) listable.delete(bucket); // gone meanwhile: undecided, HEAD this run and ask again
        return !!h && !h.versionId && h.etag === listed.etag && h.size === listed.size;
      });
      listable.set(bucket, p);
    }
    return p;
  };

  const listRun = async (bucket: string, keys: string[], idx: number[]): Promise<void> => {
    const wanted = new Map<string, number>();
    keys.forEach((k, j) => wanted.has(k) || wanted.set(k, j)); // the same key twice: answered alike
    const found = new Array<ObjectInfo | undefined>(keys.length);
    const last = keys[keys.length - 1]!;
    let covered = 0; // keys[0..covered) lie at or before the furthest key listed
    let furthest: string | undefined;
    let pages = 0;
    let exhausted = false;
    try {
      const it = storage.listPages(bucket, commonPrefix(keys[0]!, last), { pageSize: 1000, startAfter: before(keys[0]!) });
      exhausted = true;
      for await (const page of it) {
        stats.listCalls++;
        pages++;
        for (const o of page) {
          const j = wanted.get(o.key);
          if (j !== undefined) found[j] = o;
          if (furthest === undefined || compareKeys(o.key, furthest) > 0) furthest = o.key;
        }
        while (covered < keys.length && furthest !== undefined && compareKeys(keys[covered]!, furthest) <= 0) covered++;
        if (covered === keys.length || covered < pages * LIST_MIN_KEYS) {
          exhausted = false;
          break;
        }
      }
      // An empty listing yields no page at all (and counts one call).
      if (pages === 0) stats.listCalls++;
    } catch (e) {
      if (!(e instanceof SourceNotFoundError)) throw e; // no such bucket: nothing in it exists
      exhausted = true;
    }
    if (exhausted) covered = keys.length;
    const sample = found.find((f) => f !== undefined);
    if (opts.exact && sample && !(await probe(bucket, sample))) {
      for (const i of idx) head(i);
      return;
    }
    for (let j = 0; j < keys.length; j++) {
      const f = found[j] ?? found[wanted.get(keys[j]!)!];
      if (f) onResult(idx[j]!, f);
      else if (j >= covered) head(idx[j]!); // not reached: the listing stopped paying
      else if (opts.exact && confirmations > 0) {
        confirmations--;
        head(idx[j]!);
      } else onResult(idx[j]!, null);
    }
  };

  const byBucket = new Map<string, number[]>();
  refs.forEach((r, i) => {
    let list = byBucket.get(r.bucket);
    if (!list) byBucket.set(r.bucket, (list = []));
    list.push(i);
  });
  for (const [bucket, all] of byBucket) {
    if (all.length < LIST_MIN_KEYS) {
      for (const i of all) head(i);
      continue;
    }
    all.sort((a, b) => compareKeys(refs[a]!.key, refs[b]!.key));
    for (let r = 0; r < all.length; r += RUN_KEYS) {
      const idx = all.slice(r, r + RUN_KEYS);
      listPool.add(() => listRun(bucket, idx.map((i) => refs[i]!.key), idx));
    }
    byBucket.set(bucket, []); // the runs hold their own slices
  }
  // The runs first (they add the HEADs of what they could not answer), then those HEADs.
  await listPool.drain();
  await pool.drain();
  return stats;
}

/**
 * Which of a stream of keys exist, asked page after page in (mostly) ascending order: the outputs of
 * a listed prefix, whose keys come in the order of the source listing. One listing of the output
 * keys runs in step with the asks, and what it listed past one ask's last key is kept for the next
 * ask: where 1 output in 10 exists, one list call (1 000 keys) answers ~10 000 asked keys, not one
 * ask; where none exist, one empty page answers each ask. At any time the keys in [lo, hi] are
 * known (those that exist are in `seen`); an ask's keys above `hi` start a new stretch of listing
 * from the first of them, under the longest prefix they share, until it has passed the last (or
 * stops paying, as in `lookupObjects`: the rest are HEADed). Keys below `lo` (out of order: S3
 * lists `a-b.json` before `a.json`, though `a` comes before `a-b`) and keys of other buckets are
 * looked up on their own (lookupObjects). What is kept is bounded: listed keys from the current
 * ask's first key on, at most an ask's span plus one page.
 *
 * Existence only, taken from the listing as it is (no `exact`): an output a listing misses makes its
 * job run again, and the worker then finds its JSON and returns it.
 */
export class ListingCursor {
  private lo: string | undefined;
  private hi: string | undefined;
  /** Set when the listing ran to the end of this prefix: every key from `lo` on under it is known too. */
  private rest: string | undefined;
  /** The last stretch of listing answered all of its keys (it did not stop paying). */
  private inStep = false;
  /** Listed keys ≥ lo, in listing order. */
  private readonly seen = new Map<string, ObjectInfo>();
  readonly stats: LookupStats = { heads: 0, listCalls: 0 };

  /**
   * `prefix`: what the asked keys share (the output prefix), listed under so that one stretch of
   * listing runs on past an ask into the next; an ask's keys outside it are listed under their own.
   */
  constructor(
    private readonly storage: Pick<Storage, 'head' | 'listPages'>,
    private readonly bucket: string,
    private readonly prefix = '',
  ) {}

  /** Listed objects kept for the asks to come. */
  get held(): number {
    return this.seen.size;
  }

  /** Each ref's object, or null where it does not exist (in ref order). */
  async find(refs: ReadonlyArray<ObjectRef>): Promise<Array<ObjectInfo | null>> {
    const out = new Array<ObjectInfo | null>(refs.length).fill(null);
    const mine: number[] = [];
    const elsewhere: number[] = [];
    refs.forEach((r, i) => (r.bucket === this.bucket ? mine : elsewhere).push(i));
    mine.sort((a, b) => compareKeys(refs[a]!.key, refs[b]!.key));
    const ahead: number[] = [];
    for (const i of mine) {
      const k = refs[i]!.key;
      if (this.lo !== undefined && compareKeys(k, this.lo) < 0) elsewhere.push(i);
      else if ((this.hi !== undefined && compareKeys(k, this.hi) <= 0) || (this.rest !== undefined && k.startsWith(this.rest))) out[i] = this.seen.get(k) ?? null;
      else ahead.push(i);
    }
    let head: number[] = [];
    // A few keys past the listing: HEADed, unless the listing is keeping pace (the next ask needs it anyway).
    if (ahead.length >= LIST_MIN_KEYS || (ahead.length > 0 && this.inStep)) {
      const passed = await this.listAhead(ahead.map((i) => refs[i]!.key));
      for (let j = 0; j < ahead.length; j++) {
        const i = ahead[j]!;
        if (j < passed) out[i] = this.seen.get(refs[i]!.key) ?? null;
        else head.push(i);
      }
    } else head = ahead;
    // What the next ask may still need: from this ask's first key in the interval on.
    const first = mine.find((i) => this.lo === undefined || compareKeys(refs[i]!.key, this.lo) >= 0);
    if (first !== undefined) this.forgetBefore(refs[first]!.key);
    const add = (stats: LookupStats) => {
      this.stats.heads += stats.heads;
      this.stats.listCalls += stats.listCalls;
    };
    const set = (idx: number[]) => (j: number, info: ObjectInfo | null) => (out[idx[j]!] = info);
    if (elsewhere.length) add(await lookupObjects(this.storage, elsewhere.map((i) => refs[i]!), set(elsewhere)));
    if (head.length) add(await lookupObjects(this.storage, head.map((i) => refs[i]!), set(head), { strategy: 'head' }));
    return out;
  }

  /**
   * List from `keys[0]` (sorted, all above `hi`) until the listing has passed `keys[last]`; the new
   * known interval starts at `keys[0]`. Returns how many of `keys` the listing answered (the rest:
   * it stopped paying first).
   */
  private async listAhead(keys: string[]): Promise<number> {
    const first = keys[0]!;
    const last = keys[keys.length - 1]!;
    this.seen.clear();
    this.lo = first;
    this.hi = undefined;
    this.rest = undefined;
    let furthest: string | undefined;
    let covered = 0;
    let pages = 0;
    let exhausted = true;
    const prefix = first.startsWith(this.prefix) && last.startsWith(this.prefix) ? this.prefix : commonPrefix(first, last);
    try {
      for await (const page of this.storage.listPages(this.bucket, prefix, { pageSize: 1000, startAfter: before(first) })) {
        this.stats.listCalls++;
        pages++;
        for (const o of page) {
          if (compareKeys(o.key, first) >= 0) this.seen.set(o.key, o);
          if (furthest === undefined || compareKeys(o.key, furthest) > 0) furthest = o.key;
        }
        while (covered < keys.length && compareKeys(keys[covered]!, furthest!) <= 0) covered++;
        if (covered === keys.length || covered < pages * LIST_MIN_KEYS) {
          exhausted = false;
          break;
        }
      }
      if (pages === 0) this.stats.listCalls++;
    } catch (e) {
      if (!(e instanceof SourceNotFoundError)) throw e; // no such bucket: nothing in it exists
    }
    // Exhausted: nothing more under the prefix, and every key up to `last` is under it.
    this.hi = exhausted ? last : furthest;
    if (exhausted) this.rest = prefix;
    this.inStep = exhausted || covered === keys.length;
    return exhausted ? keys.length : covered;
  }

  private forgetBefore(key: string): void {
    if (this.lo !== undefined && compareKeys(key, this.lo) <= 0) return;
    this.lo = key;
    for (const k of this.seen.keys()) {
      if (compareKeys(k, key) >= 0) break;
      this.seen.delete(k);
    }
  }
}

/** `lookupObjects` collected in ref order (for a page of refs; a whole manifest stores its results compactly instead). */
export async function findObjects(storage: Pick<Storage, 'head' | 'listPages'>, refs: ReadonlyArray<ObjectRef>, opts: LookupOptions = {}): Promise<Array<ObjectInfo | null>> {
  const out = new Array<ObjectInfo | null>(refs.length).fill(null);
  await lookupObjects(storage, refs, (i, info) => (out[i] = info), opts);
  return out;
}
