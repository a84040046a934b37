/**
 * How much audio an S3 object holds, as cheaply as its container allows (issue 15, `scribe plan`):
 * a ranged GET of its first 64 KiB and the header parsers of domain/audio-header.ts; a few more
 * ranged GETs when they ask (a large ID3v2 tag, an mp4 index behind the media, Ogg's last page);
 * and only when no header answers, the whole object streamed through the AudioProbe (ffmpeg).
 */
import { durationFromHeader, durationFromRange, HEADER_BYTES, isDuration, sniffContainer, type AudioDuration, type NeedMore, type NeedRange } from '../domain/audio-header';
import { DecodeError, EmptyDecodeError, SourceNotFoundError, StorageUnavailableError } from '../domain/errors';
import type { AudioProbe } from '../ports/audio-probe';
import type { GetOptions, Storage } from '../ports/storage';

export interface ProbeDurationDeps {
  storage: Pick<Storage, 'get' | 'head'>;
  probe: AudioProbe;
}

export interface ProbeDurationOptions {
  /** The object's size (from the listing); read with a HEAD when absent. */
  size?: number;
  /** Every read must see this version (If-Match), so the ranges of one object agree. */
  etag?: string;
  versionId?: string;
  /** Only a duration the container states will do: an estimate (CBR MP3 without Xing) is probed instead. */
  exact?: boolean;
  /** Ranged reads beyond this many bytes in all (a huge ID3 tag or index) give way to the probe. Default 16 MiB. */
  maxRangeBytes?: number;
  signal?: AbortSignal;
}

export interface ProbedDuration {
  seconds: number;
  /**
   * header: read from the first bytes (the first 64 KiB, more behind a large ID3v2 tag or before a
   * big `moov`); tail: ranged reads elsewhere as well (Ogg's last page, an mp4 index at the end);
   * probe: the whole object read through ffmpeg.
   */
  method: 'header' | 'tail' | 'probe';
  /** False for an estimate (see AudioDuration.exact). */
  exact: boolean;
  /** The container the header named (wav, mp3, mp4, ogg-opus, …), when one did. */
  container?: string;
  /** Object bytes fetched, headers and probe together. */
  bytesRead: number;
  /** GET requests made (the HEAD, when the size was not given, not counted). */
  requests: number;
}

const DEFAULT_MAX_RANGE_BYTES = 16 * 1024 * 1024;
/** Ranged reads one object may take before the probe is used instead (mp4 box hops, a longer head). */
const MAX_READS = 8;

export async function probeDuration(deps: ProbeDurationDeps, bucket: string, key: string, opts: ProbeDurationOptions = {}): Promise<ProbedDuration> {
  const where = `s3://${bucket}/${key}`;
  let { size, etag } = opts;
  if (size === undefined) {
    const info = await deps.storage.head(bucket, key);
    if (!info) throw new SourceNotFoundError(`${where} does not exist`, { details: { bucket, key } });
    size = info.size;
    etag ??= info.etag;
  }
  if (size === 0) throw new EmptyDecodeError(`${where} is empty (0 bytes): no audio`, { details: { bucket, key } });
  const getOpts: GetOptions = { ...(etag ? { ifMatch: etag } : {}), ...(opts.versionId ? { versionId: opts.versionId } : {}) };
  const budget = opts.maxRangeBytes ?? DEFAULT_MAX_RANGE_BYTES;
  let bytesRead = 0;
  let requests = 0;
  const read = async (offset: number, length: number): Promise<Buffer> => {
    requests += 1;
    const bytes = await readRange(deps.storage, bucket, key, offset, length, getOpts, opts.signal);
    bytesRead += bytes.length;
    return bytes;
  };

  let head = await read(0, Math.min(HEADER_BYTES, size));
  let method: ProbedDuration['method'] = 'header';
  let result: AudioDuration | NeedMore | NeedRange | null = durationFromHeader(head, size);
  for (let reads = 1; result && !isDuration(result); reads++) {
    const want = 'needMore' in result ? result.needMore - head.length : result.needRange.length;
    if (reads >= MAX_READS || bytesRead + want > budget) {
      result = null;
      break;
    }
    if ('needMore' in result) {
      head = Buffer.concat([head, await read(head.length, want)]);
      result = durationFromHeader(head, size);
    } else {
      const { offset } = result.needRange;
      method = 'tail';
      result = durationFromRange(head, { offset, bytes: await read(offset, want) }, size);
    }
  }
  const container = sniffContainer(head);
  if (result && isDuration(result) && (result.exact || !opts.exact)) {
    return { seconds: result.seconds, method, exact: result.exact, container: result.container, bytesRead, requests };
  }

  // No header answered (or only an estimate where exact was asked for): read the whole object through.
  requests += 1;
  const { body } = await deps.storage.get(bucket, key, getOpts);
  try {
    const measured = await deps.probe.measure(body, { ...(container ? { container } : {}), ...(opts.signal ? { signal: opts.signal } : {}) });
    bytesRead += measured.bytesRead;
    return { seconds: measured.seconds, method: 'probe', exact: true, ...(container ? { container } : {}), bytesRead, requests };
  } catch (err) {
    throw withObject(err, where, bucket, key);
  } finally {
    body.destroy();
  }
}

/** `length` bytes from `offset` (fewer at the end of the object); stops reading if a server ignores the range. */
async function readRange(storage: Pick<Storage, 'get'>, bucket: string, key: string, offset: number, length: number, getOpts: GetOptions, signal?: AbortSignal): Promise<Buffer> {
  signal?.throwIfAborted();
  const { body, info } = await storage.get(bucket, key, { ...getOpts, range: `bytes=${offset}-${offset + length - 1}` });
  // A server that ignored the range sends the object from its start: those are not the bytes asked for.
  if (offset > 0 && info.size > length) {
    body.destroy();
    throw new StorageUnavailableError(`s3://${bucket}/${key}: the server ignored the byte range ${offset}-${offset + length - 1}`);
  }
  const parts: Buffer[] = [];
  let got = 0;
  try {
    for await (const chunk of body as AsyncIterable<Buffer>) {
      const take = Math.min(chunk.length, length - got);
      parts.push(take === chunk.length ? chunk : chunk.subarray(0, take));
      got += take;
      if (got >= length) break;
    }
  } finally {
    body.destroy();
  }
  return Buffer.concat(parts, got);
}

/** The probe's decode errors, naming the object. */
function withObject(err: unknown, where: string, bucket: string, key: string): unknown {
  const opts = (e: DecodeError | EmptyDecodeError) => ({ cause: e, details: { ...e.details, bucket, key } });
  if (err instanceof EmptyDecodeError) return new EmptyDecodeError(`${where}: ${err.message}`, opts(err));
  if (err instanceof DecodeError) return new DecodeError(`${where}: ${err.message}`, opts(err));
  return err;
}
