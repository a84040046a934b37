/**
 * Manifests: a list of files to transcribe, as JSONL or CSV, parsed and validated as a whole.
 * A manifest with any malformed line is refused entirely and the answer names every bad line:
 * nothing is enqueued from it (no half-done batches).
 *
 *   JSONL: {"source": "s3://bucket/key.wav", "options": {"diarize": true}}   (or "key": "relative/key.wav")
 *   CSV:   source[,options-as-json]   (a header line `source,options` is allowed)
 */
import { parseS3Url, type S3Location } from './s3-url';

export type OptionValue = string | number | boolean | string[];

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

/**
 * Parse a manifest. `defaultBucket` resolves bare keys. Blank lines and lines starting with `#` are
 * ignored. Duplicate sources are errors (one file, one job per batch).
 */
export function parseManifest(text: string, format: 'jsonl' | 'csv', defaultBucket?: string): ParsedManifest {
  const entries: ManifestEntry[] = [];
  const errors: ManifestError[] = [];
  const seen = new Map<string, number>();
  const lines = text.split(/\r?\n/);
  lines.forEach((raw, i) => {
    const line = i + 1;
    const text = raw.trim();
    if (!text || text.startsWith('#')) return;
    if (format === 'csv' && i === 0 && /^source\s*(,|$)/i.test(text)) return; // header
    let source: unknown;
    let options: unknown;
    if (format === 'jsonl') {
      let obj: unknown;
      try {
        obj = JSON.parse(text);
      } catch {
        errors.push({ line, message: 'not valid JSON' });
        return;
      }
      if (!obj || typeof obj !== 'object' || Array.isArray(obj)) return void errors.push({ line, message: 'expected a JSON object' });
      const o = obj as Record<string, unknown>;
      source = o.source ?? o.key;
      options = o.options;
    } else {
      const [src, opts, ...rest] = csvFields(text);
      if (rest.length) return void errors.push({ line, message: `expected 1 or 2 fields, got ${rest.length + 2}` });
      source = src?.trim();
      if (opts && opts.trim()) {
        try {
          options = JSON.parse(opts);
        } catch {
          return void errors.push({ line, message: 'options column is not valid JSON' });
        }
      }
    }
    if (typeof source !== 'string' || !source) return void errors.push({ line, message: 'missing "source" (s3://bucket/key or a key)' });
    let location: S3Location;
    try {
      if (source.startsWith('s3://')) location = parseS3Url(source);
      else if (defaultBucket) location = { bucket: defaultBucket, key: source };
      else return void errors.push({ line, message: `bare key ${JSON.stringify(source)} but no default bucket` });
    } catch (e) {
      return void errors.push({ line, message: (e as Error).message });
    }
    if (!location.key || location.key.endsWith('/')) return void errors.push({ line, message: 'source must name an object, not a prefix' });
    if (options !== undefined && !isOptions(options)) return void errors.push({ line, message: 'options must be an object of strings, numbers, booleans or string arrays' });
    const id = `${location.bucket}/${location.key}`;
    const first = seen.get(id);
    if (first !== undefined) return void errors.push({ line, message: `duplicate of line ${first}` });
    seen.set(id, line);
    entries.push({ line, location, ...(options ? { options: options as Record<string, OptionValue> } : {}) });
  });
  return { entries, errors };
}
