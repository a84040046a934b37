/**
 * Test kit of the streaming-emulator tests (AssemblyAI v3, Fireworks): a ~60 s recording of continuous
 * speech (synthesised sentences joined by short pauses only), frames of it, and a throw-away TLS
 * certificate.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { SENTENCES } from '../../infra/local/src/samples';

const run = promisify(execFile);
const FIXTURE_DIR = join(__dirname, '..', '..', 'test-output', 'fixtures');
const BYTES_PER_MS = 32; // 16 kHz s16le mono
/** The pause between sentences: shorter than either emulator's pause endpoint (400 / 500 ms). */
export const PAUSE_MS = 250;

export interface Speech {
  /** 16 kHz mono s16le. */
  pcm: Buffer;
  text: string;
  seconds: number;
  /** Each sentence's text and the byte offset where its pause ends. */
  sentences: Array<{ text: string; end: number }>;
  /** The first `n` sentences (with their pauses) as a Speech of their own. */
  first(n: number): Speech;
}

function speechOf(pcm: Buffer, sentences: Speech['sentences']): Speech {
  return {
    pcm,
    text: sentences.map((s) => s.text).join(' '),
    seconds: pcm.length / (1000 * BYTES_PER_MS),
    sentences,
    first: (n) => speechOf(pcm.subarray(0, sentences[n - 1]!.end), sentences.slice(0, n)),
  };
}

/** flite's speech of `text` as 16 kHz s16le with its leading and trailing silence cut (30 ms kept). */
async function sentencePcm(voice: string, text: string, dir: string): Promise<Buffer> {
  const wav = join(dir, 'one.wav');
  const raw = join(dir, 'one.raw');
  await run('flite', ['-voice', voice, '-t', text, '-o', wav]);
  await run('ffmpeg', ['-nostdin', '-loglevel', 'error', '-y', '-i', wav, '-ar', '16000', '-ac', '1', '-f', 's16le', raw]);
  const pcm = await readFile(raw);
  const frame = 160 * 2;
  const loud: number[] = [];
  for (let off = 0; off + frame <= pcm.length; off += frame) {
    let sum = 0;
    for (let i = 0; i < frame; i += 2) sum += pcm.readInt16LE(off + i) ** 2;
    if (Math.sqrt(sum / 160) >= 300) loud.push(off);
  }
  const margin = 30 * BYTES_PER_MS;
  return pcm.subarray(Math.max(0, loud[0]! - margin), Math.min(pcm.length, loud.at(-1)! + frame + margin));
}

/**
 * About 60 s of continuous speech: the sample sentences in two voices (kal16, then rms, then kal16 again
 * until the length is reached), each followed by a PAUSE_MS pause only. Made once, kept under
 * test-output/fixtures.
 */
export async function continuousSpeech(minSeconds = 60): Promise<Speech> {
  await mkdir(FIXTURE_DIR, { recursive: true });
  const order: Array<[string, string]> = [];
  for (const voice of ['kal16', 'rms', 'kal16']) for (const s of SENTENCES) order.push([voice, s]);
  const path = join(FIXTURE_DIR, `continuous-${minSeconds}s-${PAUSE_MS}ms.raw`);
  const metaPath = `${path}.json`;
  if (!existsSync(path) || !existsSync(metaPath)) {
    const dir = await mkdtemp(join(tmpdir(), 'scribe-continuous-'));
    try {
      const parts: Buffer[] = [];
      const sentences: Speech['sentences'] = [];
      let bytes = 0;
      for (const [voice, text] of order) {
        if (bytes >= minSeconds * 1000 * BYTES_PER_MS) break;
        const pcm = await sentencePcm(voice, text, dir);
        parts.push(pcm, Buffer.alloc(PAUSE_MS * BYTES_PER_MS));
        bytes += pcm.length + PAUSE_MS * BYTES_PER_MS;
        sentences.push({ text, end: bytes });
      }
      await writeFile(path, Buffer.concat(parts));
      await writeFile(metaPath, JSON.stringify(sentences));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }
  return speechOf(await readFile(path), JSON.parse(await readFile(metaPath, 'utf8')) as Speech['sentences']);
}

/**
 * The suite's hooks: beforeAll makes the 60 s recording (`speech()`), afterAll closes every emulator
 * given to `track`.
 */
export function liveSuite(): { speech(): Speech; track<T extends { close(): Promise<void> }>(e: T): T } {
  let made: Speech | undefined;
  const tracked: Array<{ close(): Promise<void> }> = [];
  beforeAll(async () => {
    made = await continuousSpeech(60);
  });
  afterAll(async () => {
    await Promise.all(tracked.map((e) => e.close()));
  });
  return {
    speech: () => made!,
    track: (e) => {
      tracked.push(e);
      return e;
    },
  };
}

/** `pcm` cut into frames of `frameMs` (the last one padded with silence to a whole frame). */
export function framesOf(pcm: Buffer, frameMs: number): Buffer[] {
  const size = frameMs * BYTES_PER_MS;
  const out: Buffer[] = [];
  for (let i = 0; i < pcm.length; i += size) {
    const f = pcm.subarray(i, i + size);
    out.push(f.length === size ? f : Buffer.concat([f, Buffer.alloc(size - f.length)]));
  }
  return out;
}

/** A self-signed certificate for 127.0.0.1 (openssl; RSA 2048, valid one day). */
export async function selfSigned(): Promise<{ key: Buffer; cert: Buffer }> {
  const dir = await mkdtemp(join(tmpdir(), 'scribe-tls-'));
  try {
    const key = join(dir, 'key.pem');
    const cert = join(dir, 'cert.pem');
    await run('openssl', [
      'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=127.0.0.1',
      '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost', '-keyout', key, '-out', cert,
    ]);
    return { key: await readFile(key), cert: await readFile(cert) };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
