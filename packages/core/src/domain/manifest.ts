/**
 * Manifests: a list of files to transcribe, as JSONL or CSV, read line by line from a stream and
 * validated as a whole. A manifest with any malformed line is refused entirely and the answer names
 * every bad line: nothing is enqueued from it (no half-done batches).
 *
 *   JSONL: {"source": "s3://bucket/key.wav", "options": {"diarize": true}}   (or "key": "relative/key.wav")
 *   CSV:   source[,options-as-json]   (a header line `source,options` is allowed)
 *
 * The text is never split whole into an array, nor its entries held as parsed objects: the reader
 * (`readManifest`) yields one line at a time from an async iterable of chunks (a file stream, or the
 * request text), so a caller that must see every line before acting (refuse whole, then enqueue)
 * reads it twice rather than keeping it parsed. Limits (bytes, lines) are checked by a callback as
 * the bytes arrive, so an over-long manifest is refused before it is buffered or parsed further.
 */
import { parseS3Url, type S3Location } from './s3-url';

export type OptionValue = string | number | boolean | string[];
export type ManifestFormat = 'jsonl' | 'csv';

/** Chunks of a manifest's text: strings, or UTF-8 bytes (a file stream). */
export type ManifestChunks = AsyncIterable<string | Uint8Array> | Iterable<string | Uint8Array>;

/**
 * Where a manifest's text comes from: inline `text` (the API's request body), or `open`, which
 * returns a fresh stream of its chunks on every call (the CLI's file: read once to validate, again
 * to enqueue), with its size in `bytes` when known (so an over-large file is refused unread).
 */
export type ManifestSource = { text: string } | { open: () => ManifestChunks; bytes?: number };

export type ManifestInput = ManifestSource & { format: ManifestFormat; defaultBucket?: string };

export interface ManifestEntry {
  line: number;
  location: S3Location;
  options?: Record<string, OptionValue>;
}

export interface ManifestError {
  line: number;
  message: string;
}

export interface ParsedManifest {
  entries: ManifestEntry[];
  errors: ManifestError[];
}

/** One line of a manifest that is neither blank nor a comment (nor the CSV header). */
export type ManifestItem = { line: number; entry: ManifestEntry } | { line: number; error: string };

export interface ReadManifestOptions {
  defaultBucket?: string;
  /** Report duplicate sources as errors (keeps one key per entry in memory; off for a second read). */
  dedupe?: boolean;
  /**
   * Called with the bytes read so far (as they arrive) and with each line number reached; throws
   * to refuse the manifest (the limits live with the other request rules, app/validate.ts).
   */
  limit?: (bytesRead: number, lines: number) => void;
}

function isOptions(v: unknown): v is Record<string, OptionValue> {
  if (!v || typeof v !== 'object' || Array.isArray(v)) return false;
  return Object.values(v).every((x) => ['string', 'number', 'boolean'].includes(typeof x) || (Array.isArray(x) && x.every((y) => typeof y === 'string')));
}

/** Split one CSV line (RFC 4180 quoting). */
function csvFields(line: string): string[] {
  const out: string[] = [];
  let cur = '';
  let quoted = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (quoted) {
      if (c === '"' && line[i + 1] === '"') (cur += '"'), i++;
      else if (c === '"') quoted = false;
      else cur += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') out.push(cur), (cur = '');
    else cur += c;
  }
  out.push(cur);
  return out;
}

/** Bytes of `s` in UTF-8 (without encoding it). */
export function utf8Length(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length && (s.charCodeAt(i + 1) & 0xfc00) === 0xdc00) (n += 4), i++;
    else n += 3;
  }
  return n;
}

/**
 * The lines of a manifest, numbered from 1, from its chunks: `\n` ends a line (a `\r` before it is
 * trimmed with the rest of the line's surrounding space), a UTF-8 byte-order mark is dropped. Only
 * the current line is buffered besides the chunk at hand. `limit` sees the bytes read as each chunk
 * arrives (so an inline text over the limit is refused before its first line is parsed) and each
 * line number as it is reached (a final newline does not start a line).
 */
export async function* manifestLines(chunks: ManifestChunks, limit?: ReadManifestOptions['limit']): AsyncGenerator<{ line: number; text: string }> {
  const decoder = new TextDecoder('utf-8');
  let bytes = 0;
  let line = 0;
  let carry = '';
  let first = true;
  for await (const chunk of chunks as AsyncIterable<string | Uint8Array>) {
    let text: string;
    if (typeof chunk === 'string') {
      bytes += utf8Length(chunk);
      text = chunk;
    } else {
      bytes += chunk.byteLength;
      text = decoder.decode(chunk, { stream: true });
    }
    limit?.(bytes, line);
    if (first && text.length) {
      if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
      first = false;
    }
    let start = 0;
    for (let nl = text.indexOf('\n'); nl !== -1; nl = text.indexOf('\n', start)) {
      const piece = text.slice(start, nl);
      const whole = carry ? carry + piece : piece;
      carry = '';
      start = nl + 1;
      line += 1;
      limit?.(bytes, line);
      yield { line, text: whole };
    }
    carry += text.slice(start);
  }
  carry += decoder.decode();
  if (carry.length) {
    line += 1;
    limit?.(bytes, line);
    yield { line, text: carry };
  }
}

/**
 * One line of a manifest (not yet trimmed): null for a blank line, a `#` comment or the CSV header
 * (line 1 only), else its entry or what is wrong with it.
 */
export function parseManifestLine(raw: string, line: number, format: ManifestFormat, defaultBucket?: string): ManifestItem | null {
  const text = raw.trim();
  if (!text || text.startsWith('#')) return null;
  if (format === 'csv' && line === 1 && /^source\s*(,|$)/i.test(text)) return null; // header
  const fail = (message: string): ManifestItem => ({ line, error: message });
  let source: unknown;
  let options: unknown;
  if (format === 'jsonl') {
    let obj: unknown;
    try {
      obj = JSON.parse(text);
    } catch {
      return fail('not valid JSON');
    }
    if (!obj || typeof obj !== 'object' || Array.isArray(obj)) return fail('expected a JSON object');
    const o = obj as Record<string, unknown>;
    source = o.source ?? o.key;
    options = o.options;
  } else {
    const [src, opts, ...rest] = csvFields(text);
    if (rest.length) return fail(`expected 1 or 2 fields, got ${rest.length + 2}`);
    source = src?.trim();
    if (opts && opts.trim()) {
      try {
        options = JSON.parse(opts);
      } catch {
        return fail('options column is not valid JSON');
      }
    }
  }
  if (typeof source !== 'string' || !source) return fail('missing "source" (s3://bucket/key or a key)');
  let location: S3Location;
  try {
    if (source.startsWith('s3://')) location = parseS3Url(source);
    else if (defaultBucket) location = { bucket: defaultBucket, key: source };
    else return fail(`bare key ${JSON.stringify(source)} but no default bucket`);
  } catch (e) {
    return fail((e as Error).message);
  }
  if (!location.key || location.key.endsWith('/')) return fail('source must name an object, not a prefix');
  if (options !== undefined && !isOptions(options)) return fail('options must be an object of strings, numbers, booleans or string arrays');
  return { line, entry: { line, location, ...(options ? { options: options as Record<string, OptionValue> } : {}) } };
}

/** Duplicate sources (one file, one job per batch): per bucket, each key seen and its first line. */
class Dedupe {
  private readonly seen = new Map<string, Map<string, number>>();
  /** The line that listed this location first, or undefined (and it is remembered now). */
  firstLine(loc: S3Location, line: number): number | undefined {
    let keys = this.seen.get(loc.bucket);
    if (!keys) this.seen.set(loc.bucket, (keys = new Map()));
    const first = keys.get(loc.key);
    if (first === undefined) keys.set(loc.key, line);
    return first;
  }
}

function dedupeItem(seen: Dedupe | undefined, item: ManifestItem): ManifestItem {
  if (!seen || !('entry' in item)) return item;
  const first = seen.firstLine(item.entry.location, item.line);
  return first === undefined ? item : { line: item.line, error: `duplicate of line ${first}` };
}

/**
 * Read a manifest: one item per line that is not blank, a comment or the CSV header, in line
 * order. `defaultBucket` resolves bare keys. With `dedupe`, a source already listed is an error
 * (one file, one job per batch), naming the line that listed it first.
 */
export async function* readManifest(chunks: ManifestChunks, format: ManifestFormat, opts: ReadManifestOptions = {}): AsyncGenerator<ManifestItem> {
  const seen = opts.dedupe ? new Dedupe() : undefined;
  for await (const { line, text } of manifestLines(chunks, opts.limit)) {
    const item = parseManifestLine(text, line, format, opts.defaultBucket);
    if (item) yield dedupeItem(seen, item);
  }
}

/** The chunks of a manifest source: a fresh stream on every call (inline text is one chunk). */
export function manifestChunks(source: ManifestSource): ManifestChunks {
  return 'text' in source ? [source.text] : source.open();
}

/** Its size in bytes when known before reading it (a file's `bytes`; inline text is counted as it is read). */
export function manifestBytes(source: ManifestSource): number | undefined {
  return 'text' in source ? undefined : source.bytes;
}

/** Entries a manifest lists, not validated (blank, comment and header lines not counted): for progress bars. */
export async function countManifestEntries(chunks: ManifestChunks, format: ManifestFormat): Promise<number> {
  let n = 0;
  for await (const { line, text } of manifestLines(chunks)) {
    const t = text.trim();
    if (t && !t.startsWith('#') && !(format === 'csv' && line === 1 && /^source\s*(,|$)/i.test(t))) n += 1;
  }
  return n;
}

/**
 * Parse a whole manifest held in memory (small ones: tools, tests), with the same rules as
 * `readManifest` (duplicates included). Blank lines and lines starting with `#` are ignored.
 * Batches read manifests with `readManifest` instead, never parsed whole.
 */
export function parseManifest(text: string, format: ManifestFormat, defaultBucket?: string): ParsedManifest {
  const entries: ManifestEntry[] = [];
  const errors: ManifestError[] = [];
  const seen = new Dedupe();
  let line = 0;
  for (let start = text.charCodeAt(0) === 0xfeff ? 1 : 0; start <= text.length; ) {
    let nl = text.indexOf('\n', start);
    if (nl === -1) nl = text.length;
    line += 1;
    const parsed = parseManifestLine(text.slice(start, nl), line, format, defaultBucket);
    const item = parsed && dedupeItem(seen, parsed);
    if (item && 'entry' in item) entries.push(item.entry);
    else if (item) errors.push({ line: item.line, message: item.error });
    start = nl + 1;
  }
  return { entries, errors };
}
