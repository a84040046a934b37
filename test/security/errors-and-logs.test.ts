/**
 * Every refusal the API server can produce is the documented `{"error":{"code","message"}}` with a
 * stable code, Fastify's and Node's own included: malformed JSON (400 INVALID_JSON), a body over
 * API_MAX_BODY_BYTES (413 PAYLOAD_TOO_LARGE), an unsupported content type (415
 * UNSUPPORTED_MEDIA_TYPE), headers over Node's limit (431 HEADER_TOO_LARGE, answered before Fastify
 * sees the request), malformed HTTP (400 MALFORMED_REQUEST), an unroutable URL (400) and no route
 * (404 NOT_FOUND). Raw requests go over `node:net`, so nothing in between fixes them up.
 *
 * And the request log: the path without its query string, never a header value.
 */
import { connect } from 'node:net';
import type { AddressInfo } from 'node:net';
import { startApi, type ApiHarness } from '../api/harness';

jest.setTimeout(60_000);

let api: ApiHarness;
const lines: string[] = [];
let port = 0;

beforeAll(async () => {
  api = await startApi({ API_MAX_BODY_BYTES: '1024' }, [], { logger: { stream: { write: (l: string) => void lines.push(l) } } });
  port = (api.app.server.address() as AddressInfo).port;
});

afterAll(async () => {
  await api?.close();
});

interface RawAnswer {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/** Send `request` as is and read the answer until the server closes (or the body is complete). */
function raw(request: string | Buffer): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    let data = Buffer.alloc(0);
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no complete answer: ${data.toString('latin1').slice(0, 500)}`));
    }, 10_000);
    const parse = (): RawAnswer | undefined => {
      const text = data.toString('latin1');
      const end = text.indexOf('\r\n\r\n');
      if (end < 0) return undefined;
      const [statusLine, ...headerLines] = text.slice(0, end).split('\r\n');
      const headers: Record<string, string> = {};
      for (const h of headerLines) {
        const i = h.indexOf(':');
        headers[h.slice(0, i).trim().toLowerCase()] = h.slice(i + 1).trim();
      }
      const body = data.subarray(Buffer.byteLength(text.slice(0, end + 4), 'latin1'));
      const length = headers['content-length'] !== undefined ? Number(headers['content-length']) : undefined;
      if (length === undefined || body.length < length) return undefined;
      return { status: Number(/^HTTP\/1\.[01] (\d{3})/.exec(statusLine ?? '')?.[1]), headers, body: body.subarray(0, length).toString('utf8') };
    };
    const finish = () => {
      const a = parse();
      if (!a) return false;
      clearTimeout(timer);
      socket.destroy();
      resolve(a);
      return true;
    };
    socket.on('data', (d: Buffer) => {
      data = Buffer.concat([data, d]);
      finish();
    });
    socket.on('close', () => {
      if (!finish()) {
        clearTimeout(timer);
        reject(new Error(`closed without a complete answer: ${data.toString('latin1').slice(0, 500)}`));
      }
    });
    // The server may answer (and stop reading) before the whole request is written.
    socket.on('error', () => undefined);
    socket.write(request);
  });
}

function expectShape(a: { status: number; headers: Record<string, string> | Headers; body: string }, status: number, code: string) {
  expect(a.status).toBe(status);
  const ct = a.headers instanceof Headers ? a.headers.get('content-type') : a.headers['content-type'];
  expect(ct).toMatch(/^application\/json/);
  const body = JSON.parse(a.body);
  expect(body).toEqual({ error: { code, message: expect.any(String), ...(body.error.details ? { details: expect.anything() } : {}) } });
  expect(body.error.message.length).toBeGreaterThan(0);
  // Nothing of Fastify's own shape.
  expect(body).not.toHaveProperty('statusCode');
  expect(body).not.toHaveProperty('message');
}

describe('every error in the documented shape', () => {
  it('431 HEADER_TOO_LARGE for a 100 kB header (Node refuses it before Fastify)', async () => {
    const big = 'SECRET3'.repeat(Math.ceil(100_000 / 7));
    const a = await raw(`GET /v1/batches HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nX-Big: ${big}\r\n\r\n`);
    expectShape(a, 431, 'HEADER_TOO_LARGE');
    expect(a.headers.connection).toBe('close');
    // The server is fine afterwards.
    expect((await api.call('GET', '/v1/batches')).status).toBe(200);
  });

  it('400 INVALID_JSON for malformed (and empty) JSON', async () => {
    const body = '{"source": "s3://b/x/", ';
    const a = await raw(
      `POST /v1/batches HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nAuthorization: Bearer ${api.token}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
    );
    expectShape(a, 400, 'INVALID_JSON');
    const empty = await fetch(`${api.url}/v1/batches`, { method: 'POST', headers: { authorization: `Bearer ${api.token}`, 'content-type': 'application/json' }, body: '' });
    expectShape({ status: empty.status, headers: empty.headers, body: await empty.text() }, 400, 'INVALID_JSON');
  });

  it('413 PAYLOAD_TOO_LARGE for a body over API_MAX_BODY_BYTES', async () => {
    const r = await fetch(`${api.url}/v1/batches`, {
      method: 'POST',
      headers: { authorization: `Bearer ${api.token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ source: 's3://b/x/', out: 's3://b/o/', pad: 'x'.repeat(2048) }),
    });
    expectShape({ status: r.status, headers: r.headers, body: await r.text() }, 413, 'PAYLOAD_TOO_LARGE');
  });

  it('415 UNSUPPORTED_MEDIA_TYPE for a content type the API does not parse', async () => {
    const r = await fetch(`${api.url}/v1/batches`, { method: 'POST', headers: { authorization: `Bearer ${api.token}`, 'content-type': 'application/xml' }, body: '<batch/>' });
    expectShape({ status: r.status, headers: r.headers, body: await r.text() }, 415, 'UNSUPPORTED_MEDIA_TYPE');
  });

  it('404 NOT_FOUND for no route (with and without a token), 400 for an unroutable URL, 400 MALFORMED_REQUEST for broken HTTP', async () => {
    const open = await fetch(`${api.url}/no/such/page?x=1`);
    expectShape({ status: open.status, headers: open.headers, body: await open.text() }, 404, 'NOT_FOUND');
    const v1 = await api.call('GET', '/v1/nothing');
    expect([v1.status, v1.body.error.code]).toEqual([404, 'NOT_FOUND']);

    const badUrl = await raw(`GET /v1/jobs/%E0%A4%A HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nConnection: close\r\n\r\n`);
    expectShape(badUrl, 400, 'INVALID_REQUEST');

    const garbage = await raw('THIS IS NOT HTTP\r\n\r\n');
    expectShape(garbage, 400, 'MALFORMED_REQUEST');
  });
});

describe('the request log', () => {
  it('carries the path without its query string and no header value', async () => {
    const before = lines.length;
    const r = await fetch(`${api.url}/v1/batches?token=SECRET1&limit=5`, { headers: { authorization: `Bearer ${api.token}`, 'x-secret': 'SECRET2', cookie: 'scribe_session=SECRET4' } });
    expect(r.status).toBe(200);
    // Refused requests too (401 with a secret in the query and a wrong token in the header).
    const refused = await fetch(`${api.url}/v1/batches/b_20990101-000000_deadbeef?token=SECRET1`, { headers: { authorization: 'Bearer SECRET5', 'x-secret': 'SECRET2' } });
    expect(refused.status).toBe(401);
    await new Promise((res) => setTimeout(res, 200)); // "request completed" is written when the response ends

    const logged = lines.slice(before).map((l) => JSON.parse(l));
    // The log is on: both requests are there, by path, with their status.
    const incoming = logged.filter((l) => l.msg === 'incoming request');
    expect(incoming.map((l) => l.req)).toEqual(
      expect.arrayContaining([
        { method: 'GET', path: '/v1/batches', remoteAddress: expect.any(String) },
        { method: 'GET', path: '/v1/batches/b_20990101-000000_deadbeef', remoteAddress: expect.any(String) },
      ]),
    );
    for (const l of incoming) expect(Object.keys(l.req).sort()).toEqual(['method', 'path', 'remoteAddress']);
    expect(logged.filter((l) => l.msg === 'request completed').map((l) => l.res.statusCode)).toEqual(expect.arrayContaining([200, 401]));

    // Nothing secret anywhere in the whole log (the 431 probe above sent SECRET3 in a header).
    const all = lines.join('\n');
    for (const secret of ['SECRET1', 'SECRET2', 'SECRET3', 'SECRET4', 'SECRET5', api.token, 'token=']) expect(all).not.toContain(secret);
    expect(all).not.toMatch(/"url"|"host"|"headers"/);
  });
});
