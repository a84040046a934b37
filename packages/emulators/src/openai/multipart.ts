/**
 * The multipart body as it streams in (busboy): fields are collected, the `file` part is spooled to a
 * temp file, and every body byte is counted, so a body over the limit is answered with the bytes
 * read (§5.3) without being kept.
 */
import { createWriteStream } from 'node:fs';
import { rm } from 'node:fs/promises';
import type { IncomingMessage } from 'node:http';
import { join } from 'node:path';
import { Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import busboy from 'busboy';
import { HttpRefusal, type OpenAIRequestRecord } from './types';

/** Counts body bytes; stops forwarding them once `limit` is passed (the rest is only counted). */
class BodyCounter extends Transform {
  bytes = 0;
  over = false;
  constructor(
    private readonly limit: number,
    private readonly onChunk: (size: number) => void,
  ) {
    super();
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.bytes += chunk.length;
    this.onChunk(chunk.length);
    if (this.bytes > this.limit) this.over = true;
    cb(null, this.over ? undefined : chunk);
  }
}

export interface Form {
  fields: Record<string, string[]>;
  /** The first `file` part, spooled (the caller removes `path`). */
  file?: { path: string; filename: string; bytes: number; field: string };
  bodyBytes: number;
  /** The body passed the limit: nothing of it is kept, `bodyBytes` is what was read. */
  over: boolean;
}

export interface ReadFormOptions {
  /** Directory for the spooled file part. */
  spool: string;
  /** Body bytes allowed (Infinity = no limit). */
  limit: number;
  /** Each body chunk as it arrives (the frame log). */
  onChunk: (size: number) => void;
  /** The client went away: stop, remove nothing yet (the caller does). */
  signal: AbortSignal;
}

/**
 * Stream the body through busboy into `rec` (fields, file name/size, body bytes). Rejects with an
 * HttpRefusal (400) when the body is not multipart/form-data, or an Error when the client went away.
 */
export function readForm(req: IncomingMessage, rec: OpenAIRequestRecord, opts: ReadFormOptions): Promise<Form> {
  const { signal } = opts;
  return new Promise<Form>((resolve, reject) => {
    const form: Form = { fields: rec.fields, bodyBytes: 0, over: false };
    const counter = new BodyCounter(opts.limit, opts.onChunk);
    let settled = false;
    const fail = (e: Error) => {
      if (settled) return;
      settled = true;
      req.unpipe(counter);
      req.resume(); // drain whatever is left so the answer can be read
      reject(e);
    };
    let bb: busboy.Busboy;
    try {
      bb = busboy({ headers: req.headers, limits: { fieldSize: 1 << 20 } });
    } catch (e) {
      fail(new HttpRefusal({ status: 400, message: `Invalid multipart/form-data request: ${(e as Error).message}` }));
      return;
    }
    const writes: Promise<void>[] = [];
    bb.on('field', (name, value) => {
      (form.fields[name] ??= []).push(value);
    });
    bb.on('file', (field, stream, info) => {
      if (field !== 'file' || form.file) {
        stream.resume();
        return;
      }
      const file = { path: join(opts.spool, `${rec.id}-${writes.length}`), filename: info.filename ?? '', bytes: 0, field };
      form.file = file;
      rec.file = { field, filename: file.filename, mimeType: info.mimeType, bytes: 0 };
      stream.on('data', (d: Buffer) => {
        file.bytes += d.length;
        rec.file!.bytes = file.bytes;
      });
      const write = pipeline(stream, createWriteStream(file.path), { signal });
      write.catch(() => {}); // awaited below, or abandoned with the request
      writes.push(write);
    });
    bb.on('close', () => {
      if (settled || counter.over) return;
      settled = true;
      form.bodyBytes = rec.bodyBytes = counter.bytes;
      Promise.all(writes).then(() => resolve(form), reject);
    });
    bb.on('error', (e: Error) => {
      if (!counter.over) fail(new HttpRefusal({ status: 400, message: `Invalid multipart/form-data request: ${e.message}` }));
    });
    counter.on('end', () => {
      if (!counter.over || settled) return;
      // Everything beyond the limit was only counted; answer 413 with the bytes read (§5.3).
      settled = true;
      form.over = true;
      form.bodyBytes = rec.bodyBytes = counter.bytes;
      bb.destroy();
      if (form.file) void rm(form.file.path, { force: true });
      resolve(form);
    });
    req.on('aborted', () => fail(new Error('client aborted the upload')));
    signal.addEventListener('abort', () => fail(new Error('client went away')), { once: true });
    req.pipe(counter).pipe(bb);
  });
}
