/**
 * The batch clients whose request body is streamed (Deepgram pre-recorded, OpenAI-compatible
 * multipart) against a server that refuses the request as soon as it has the headers: it answers
 * at once, without reading the multi-MB body, and destroys the socket. The unread body makes the
 * server's kernel send an RST, and the client's next body write fails with ECONNRESET/EPIPE. The
 * response is already in the client's socket, and the error class must come from it (providers.md
 * Appendix A). It becomes PROVIDER_UNAVAILABLE only when no response came at all.
 *
 * Every case runs several times. Before the fix the response was lost most of the time: ~80 % of
 * runs for Deepgram and ~40 % for OpenAI in a local check, so a regression fails these tests.
 */
import { randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  InputTooLargeError,
  ProviderAuthError,
  ProviderPaymentError,
  ProviderRateLimitedError,
  ProviderUnavailableError,
  ScribeError,
  type AudioInput,
  type Provider,
} from '@scribe-fleet/core';
import { DeepgramProvider } from '@scribe-fleet/core/adapters/providers/deepgram';
import { postStreaming } from '@scribe-fleet/core/adapters/providers/http-upload';
import { OpenAIProvider } from '@scribe-fleet/core/adapters/providers/openai';
import { sessionContext } from './streaming-test-kit';

jest.setTimeout(60_000);

const BODY_BYTES = 8 * 1024 * 1024;
const REPEAT = 6;
const KEY = 'sk-early-0123456789';

let dir: string;
let bigFile: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'scribe-early-'));
  bigFile = join(dir, 'big.wav');
  await writeFile(bigFile, randomBytes(BODY_BYTES));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** The file as it comes from storage: a streamed original with a known size (like an S3 GET). */
function bigAudio(): AudioInput {
  return {
    size: BODY_BYTES,
    pcm: () => {
      throw new Error('not used');
    },
    original: async () => ({ stream: createReadStream(bigFile), size: BODY_BYTES, filename: 'big.wav', contentType: 'audio/wav' }),
  };
}

interface Refusal {
  status: number;
  body: string;
  headers?: Record<string, string>;
}

interface RefusingServer {
  url: string;
  /** Bytes each connection had received when the server answered (headers + whatever came with them). */
  receivedAtAnswer: number[];
  close(): Promise<void>;
}

/**
 * A raw TCP server that answers every connection's first bytes with `refusal` (or, with `null`, says
 * nothing) and destroys the socket at once, without reading the body.
 */
async function refusingServer(refusal: Refusal | null): Promise<RefusingServer> {
  const receivedAtAnswer: number[] = [];
  const sockets = new Set<Socket>();
  const server: Server = createServer((sock) => {
    sockets.add(sock);
    sock.on('close', () => sockets.delete(sock));
    sock.on('error', () => undefined);
    sock.once('data', (first: Buffer) => {
      receivedAtAnswer.push(first.length);
      if (refusal) {
        const body = Buffer.from(refusal.body);
        const head = [`HTTP/1.1 ${refusal.status} Refused`, 'content-type: application/json', `content-length: ${body.length}`, 'connection: close'];
        for (const [k, v] of Object.entries(refusal.headers ?? {})) head.push(`${k}: ${v}`);
        sock.write(Buffer.concat([Buffer.from(`${head.join('\r\n')}\r\n\r\n`), body]));
      }
      sock.destroy();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    receivedAtAnswer,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

async function rejection(p: Promise<unknown>): Promise<ScribeError> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(ScribeError);
    return e as ScribeError;
  }
  throw new Error('expected a rejection');
}

const clients: Array<[string, (baseUrl: string) => Provider, (status: number, message: string, code: string) => Refusal]> = [
  [
    'deepgram pre-recorded',
    (baseUrl) => new DeepgramProvider({ apiKey: KEY, baseUrl }),
    (status, message, code) => ({ status, body: JSON.stringify({ err_code: code, err_msg: message, request_id: 'req-early' }) }),
  ],
  [
    'openai multipart',
    (baseUrl) => new OpenAIProvider({ apiKey: KEY, baseUrl: `${baseUrl}/v1` }),
    (status, message, code) => ({ status, body: JSON.stringify({ error: { message, type: 'invalid_request_error', param: null, code } }) }),
  ],
];

describe.each(clients)('%s: a response sent before the body was read is classified by its status', (_name, make, refusalBody) => {
  const cases: Array<{ status: number; code: string; message: string; headers?: Record<string, string>; check: (e: ScribeError) => void }> = [
    { status: 401, code: 'INVALID_AUTH', message: 'Invalid credentials.', check: (e) => expect(e).toBeInstanceOf(ProviderAuthError) },
    { status: 402, code: 'ASR_PAYMENT_REQUIRED', message: 'Insufficient credits.', check: (e) => expect(e).toBeInstanceOf(ProviderPaymentError) },
    {
      status: 429,
      code: 'TOO_MANY_REQUESTS',
      message: 'Too many requests.',
      headers: { 'retry-after': '3' },
      check: (e) => {
        expect(e).toBeInstanceOf(ProviderRateLimitedError);
        expect(e.kind).toBe('rate_limit');
        expect(e.retryAfterMs).toBe(3000);
      },
    },
    { status: 413, code: 'PAYLOAD_TOO_LARGE', message: 'Payload too large.', check: (e) => expect(e).toBeInstanceOf(InputTooLargeError) },
    {
      status: 503,
      code: 'UNAVAILABLE',
      message: 'Please try again later.',
      check: (e) => {
        expect(e).toBeInstanceOf(ProviderUnavailableError);
        expect(e.message).toMatch(/HTTP 503.*Please try again later/); // the answer, not a socket error
      },
    },
  ];

  test.each(cases)('HTTP $status', async ({ status, code, message, headers, check }) => {
    const refusal = refusalBody(status, message, code);
    if (headers) refusal.headers = headers;
    const server = await refusingServer(refusal);
    try {
      const client = make(server.url);
      for (let i = 0; i < REPEAT; i++) {
        const err = await rejection(client.transcribe({ mode: 'batch', model: 'nova-3', options: {}, audio: bigAudio() }, sessionContext()));
        check(err);
        expect(err.status).toBe(status);
        expect(err.message).toContain(message);
        expect(err.message).not.toContain(KEY);
      }
      // The server really answered before the body: it had far less than the body when it answered.
      expect(server.receivedAtAnswer).toHaveLength(REPEAT);
      for (const n of server.receivedAtAnswer) expect(n).toBeLessThan(BODY_BYTES / 4);
    } finally {
      await server.close();
    }
  });

  test('no response at all (the server drops the connection) → PROVIDER_UNAVAILABLE, retryable', async () => {
    const server = await refusingServer(null);
    try {
      const client = make(server.url);
      for (let i = 0; i < 3; i++) {
        const err = await rejection(client.transcribe({ mode: 'batch', model: 'nova-3', options: {}, audio: bigAudio() }, sessionContext()));
        expect(err).toBeInstanceOf(ProviderUnavailableError);
        expect(err.kind).toBe('retry');
        expect(err.status).toBeUndefined();
        expect(err.message).toMatch(/ECONNRESET|EPIPE|socket hang up/);
      }
    } finally {
      await server.close();
    }
  });
});

describe('postStreaming', () => {
  test('a node:http server that answers in its request handler and destroys the socket: the response wins over the write error', async () => {
    const server: HttpServer = createHttpServer((req, res) => {
      res.writeHead(401, { 'content-type': 'application/json', 'retry-after': '1' });
      res.end('{"err_code":"INVALID_AUTH"}', () => req.socket.destroy());
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1/listen`;
    try {
      for (let i = 0; i < REPEAT; i++) {
        let pulled = 0;
        const body = (async function* () {
          for await (const chunk of createReadStream(bigFile) as AsyncIterable<Buffer>) {
            pulled += chunk.length;
            yield chunk;
          }
        })();
        const res = await postStreaming(url, { headers: { 'content-type': 'audio/wav' }, body, signal: new AbortController().signal });
        expect(res).toMatchObject({ status: 401, text: '{"err_code":"INVALID_AUTH"}', complete: true, earlyResponse: true });
        expect(res.headers.get('retry-after')).toBe('1');
        // The upload stopped: the source was not read to its end.
        expect(pulled).toBeLessThan(BODY_BYTES);
      }
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });

  test('a normal exchange: the whole body is sent, then the response is read (and the source error path rejects)', async () => {
    const server: HttpServer = createHttpServer((req, res) => {
      let n = 0;
      req.on('data', (d: Buffer) => (n += d.length));
      req.on('end', () => res.end(JSON.stringify({ received: n, chunked: req.headers['transfer-encoding'] === 'chunked' })));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
    try {
      const res = await postStreaming(url, { headers: {}, body: createReadStream(bigFile), signal: new AbortController().signal });
      expect(res.status).toBe(200);
      expect(JSON.parse(res.text)).toEqual({ received: BODY_BYTES, chunked: true });
      expect(res.earlyResponse).toBe(false);
      const broken = (async function* () {
        yield Buffer.alloc(1000);
        throw new Error('storage read failed');
      })();
      await expect(postStreaming(url, { headers: {}, body: broken, signal: new AbortController().signal })).rejects.toThrow('storage read failed');
    } finally {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });
});
