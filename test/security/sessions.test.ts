/**
 * Dashboard sessions, CSRF and the login rate limit, on a real API (test Redis + S3 server):
 *
 * - POST /login trades a valid token for an opaque session id (the cookie never holds the token),
 *   kept in Redis with a TTL under a hash of the id; no Redis key or value holds the token or the id;
 * - logout revokes it server-side (a copied cookie is then worthless), an expired one is refused;
 * - the cookie is `Secure` over HTTPS, which behind a proxy is known only with TRUST_PROXY;
 * - a cookie-signed state change needs a same-origin Origin/Referer and JSON: the probe that used to
 *   cancel a batch (cookie + text/plain + foreign Origin) is 403 CSRF_REJECTED and cancels nothing;
 *   bearer-token calls are not affected;
 * - login attempts are limited per client address (429 RATE_LIMITED + Retry-After), the address being
 *   X-Forwarded-For only with TRUST_PROXY.
 */
import { createHash } from 'node:crypto';
import { registerDashboard } from '../../apps/producer/src/api/dashboard';
import { startApi, type ApiHarness } from '../api/harness';
import { uniqueBucket } from '../helpers/env';

jest.setTimeout(60_000);

const FOREIGN = 'https://evil.example';
const SESSION_ID = /^[A-Za-z0-9_-]{43}$/;

let api: ApiHarness;
const bucket = uniqueBucket('sec-sessions');

beforeAll(async () => {
  api = await startApi({ S3_ALLOWED_BUCKETS: bucket }, [registerDashboard]);
  await api.storage.ensureBucket(bucket);
  for (const dir of ['a/', 'b/', 'c/']) for (const f of ['one.wav', 'two.wav']) await api.storage.put(bucket, `${dir}${f}`, Buffer.from(`RIFF ${dir}${f}`));
});

afterAll(async () => {
  await api?.close();
});

interface Login {
  status: number;
  setCookies: string[];
  /** The scribe_session value set, if any. */
  session: string | undefined;
  location: string | null;
  body: string;
}

async function login(h: ApiHarness, token: string, headers: Record<string, string> = {}): Promise<Login> {
  const res = await fetch(`${h.url}/login`, {
    method: 'POST',
    redirect: 'manual',
    headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
    body: `token=${encodeURIComponent(token)}&next=%2Fdashboard`,
  });
  const setCookies = res.headers.getSetCookie();
  const session = /^scribe_session=([^;]*)/.exec(setCookies.find((c) => c.startsWith('scribe_session=')) ?? '')?.[1];
  return { status: res.status, setCookies, session: session || undefined, location: res.headers.get('location'), body: await res.text() };
}

async function signedIn(h: ApiHarness, headers: Record<string, string> = {}): Promise<string> {
  const r = await login(h, h.token, headers);
  expect(r.status).toBe(303);
  expect(r.session).toMatch(SESSION_ID);
  return r.session!;
}

const sessionKey = (h: ApiHarness, id: string) => `${h.config.QUEUE_PREFIX}:${h.config.QUEUE_NAME}:session:${createHash('sha256').update(id).digest('hex')}`;

/** Every key of the test Redis with its value(s), as text. */
async function everything(h: ApiHarness): Promise<Array<{ key: string; value: string }>> {
  const out: Array<{ key: string; value: string }> = [];
  let cursor = '0';
  do {
    const [next, keys] = await h.redis.scan(cursor, 'COUNT', 500);
    cursor = next;
    for (const key of keys) {
      const type = await h.redis.type(key);
      let value: unknown = null;
      if (type === 'string') value = await h.redis.get(key);
      else if (type === 'hash') value = await h.redis.hgetall(key);
      else if (type === 'list') value = await h.redis.lrange(key, 0, -1);
      else if (type === 'set') value = await h.redis.smembers(key);
      else if (type === 'zset') value = await h.redis.zrange(key, 0, -1, 'WITHSCORES');
      else if (type === 'stream') value = await h.redis.xrange(key, '-', '+');
      out.push({ key, value: JSON.stringify(value) });
    }
  } while (cursor !== '0');
  return out;
}

async function createBatch(dir: string): Promise<string> {
  const r = await api.call('POST', '/v1/batches', { body: { source: `s3://${bucket}/${dir}`, out: `s3://${bucket}/out-${dir}` } });
  expect(r.status).toBe(201);
  expect(r.body.added).toBe(2);
  return r.body.batchId as string;
}

describe('sessions', () => {
  it('login sets an opaque session cookie, never the token, with HttpOnly, SameSite=Strict, Path=/ (no Secure over HTTP)', async () => {
    const r = await login(api, api.token);
    expect(r.status).toBe(303);
    expect(r.location).toBe('/dashboard');
    expect(r.session).toMatch(SESSION_ID);
    expect(r.session).not.toContain(api.token);
    const set = r.setCookies.find((c) => c.startsWith('scribe_session='))!;
    expect(set).toBe(`scribe_session=${r.session}; Path=/; HttpOnly; SameSite=Strict; Max-Age=${12 * 3600}`);
    // The old raw-token cookie is cleared; no Set-Cookie carries the token.
    expect(r.setCookies).toContain('scribe_token=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0');
    for (const c of r.setCookies) expect(c).not.toContain(api.token);
    // Two logins: two different sessions (random ids, not a function of the token).
    expect((await login(api, api.token)).session).not.toBe(r.session);

    // The session signs in API calls and pages.
    expect((await api.call('GET', '/v1/batches', { auth: null, headers: { cookie: `scribe_session=${r.session}` } })).status).toBe(200);
    const page = await fetch(`${api.url}/dashboard`, { redirect: 'manual', headers: { cookie: `scribe_session=${r.session}` } });
    expect(page.status).toBe(200);
  });

  it('a wrong token gets no session (401, no cookie); the raw token as a cookie is not a credential', async () => {
    const bad = await login(api, 'not-the-token');
    expect(bad.status).toBe(401);
    expect(bad.session).toBeUndefined();
    expect(bad.body).toContain('That token is not valid.');
    for (const cookie of [`scribe_token=${api.token}`, `scribe_session=${api.token}`, 'scribe_session=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA']) {
      const r = await api.call('GET', '/v1/batches', { auth: null, headers: { cookie } });
      expect(r.status).toBe(401);
      expect(r.body.error.code).toBe('UNAUTHORIZED');
    }
  });

  it('the session is in Redis under a hash of its id, with a TTL; no key or value holds the token or the id', async () => {
    const id = await signedIn(api);
    const key = sessionKey(api, id);
    expect(await api.redis.exists(key)).toBe(1);
    const ttl = await api.redis.ttl(key);
    expect(ttl).toBeGreaterThan(12 * 3600 - 60);
    expect(ttl).toBeLessThanOrEqual(12 * 3600);
    const stored = JSON.parse((await api.redis.get(key))!);
    expect(Object.keys(stored).sort()).toEqual(['binding', 'createdAt']);

    const all = await everything(api);
    expect(all.length).toBeGreaterThan(0);
    const secrets = [api.token, ...api.config.API_TOKENS, id];
    const leaks = all.filter(({ key: k, value }) => secrets.some((s) => k.includes(s) || value.includes(s))).map(({ key: k }) => k);
    expect(leaks).toEqual([]);
  });

  it('logout revokes the session in Redis and clears the cookie: the old cookie then gets 401 / the login page', async () => {
    const id = await signedIn(api);
    const cookie = `scribe_session=${id}`;
    expect((await api.call('GET', '/v1/batches', { auth: null, headers: { cookie } })).status).toBe(200);

    const out = await fetch(`${api.url}/logout`, { method: 'POST', redirect: 'manual', headers: { cookie, origin: api.url, 'content-type': 'application/x-www-form-urlencoded' }, body: '' });
    expect(out.status).toBe(303);
    expect(out.headers.get('location')).toBe('/login');
    expect(out.headers.getSetCookie()).toContain('scribe_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0');
    expect(await api.redis.exists(sessionKey(api, id))).toBe(0);

    const after = await api.call('GET', '/v1/batches', { auth: null, headers: { cookie } });
    expect(after.status).toBe(401);
    expect(after.body.error).toEqual({ code: 'UNAUTHORIZED', message: expect.stringMatching(/session expired or signed out/) });
    const page = await fetch(`${api.url}/dashboard`, { redirect: 'manual', headers: { cookie } });
    expect(page.status).toBe(302);
    expect(page.headers.get('location')).toBe('/login?next=%2Fdashboard');
    // GET /logout (Bull Board's link) revokes too.
    const id2 = await signedIn(api);
    expect((await fetch(`${api.url}/logout`, { redirect: 'manual', headers: { cookie: `scribe_session=${id2}` } })).status).toBe(303);
    expect((await api.call('GET', '/v1/batches', { auth: null, headers: { cookie: `scribe_session=${id2}` } })).status).toBe(401);
  });

  it('an expired session is refused (SESSION_TTL_SECONDS=1)', async () => {
    const short = await startApi({ SESSION_TTL_SECONDS: '1' }, [registerDashboard]);
    try {
      const r = await login(short, short.token);
      expect(r.setCookies.find((c) => c.startsWith('scribe_session='))).toMatch(/; Max-Age=1(;|$)/);
      const cookie = `scribe_session=${r.session}`;
      expect((await short.call('GET', '/v1/batches', { auth: null, headers: { cookie } })).status).toBe(200);
      await new Promise((res) => setTimeout(res, 2_200));
      expect(await short.redis.exists(sessionKey(short, r.session!))).toBe(0);
      const late = await short.call('GET', '/v1/batches', { auth: null, headers: { cookie } });
      expect(late.status).toBe(401);
      expect(late.body.error.code).toBe('UNAUTHORIZED');
    } finally {
      await short.close();
    }
  });

  it('Secure with TRUST_PROXY and X-Forwarded-Proto: https; not Secure without TRUST_PROXY even with the header', async () => {
    const untrusted = await login(api, api.token, { 'x-forwarded-proto': 'https' });
    expect(untrusted.status).toBe(303);
    expect(untrusted.setCookies.find((c) => c.startsWith('scribe_session='))).not.toMatch(/Secure/i);

    const proxied = await startApi({ TRUST_PROXY: 'true' }, [registerDashboard]);
    try {
      const r = await login(proxied, proxied.token, { 'x-forwarded-proto': 'https' });
      expect(r.status).toBe(303);
      const set = r.setCookies.find((c) => c.startsWith('scribe_session='))!;
      expect(set).toMatch(/; Secure$/);
      expect(set).toMatch(/HttpOnly; SameSite=Strict/);
      // Plain HTTP to the same server (no header): no Secure.
      const plain = await login(proxied, proxied.token);
      expect(plain.setCookies.find((c) => c.startsWith('scribe_session='))).not.toMatch(/Secure/i);
      // Same-origin behind the proxy is the browser's https origin, not the hop's http one.
      const batch = 'b_20990101-000000_deadbeef';
      const cookie = `scribe_session=${r.session}`;
      const viaProxy = await proxied.call('POST', `/v1/batches/${batch}/cancel`, { auth: null, body: {}, headers: { cookie, 'x-forwarded-proto': 'https', origin: proxied.url.replace(/^http:/, 'https:') } });
      expect(viaProxy.status).toBe(404);
      expect(viaProxy.body.error.code).toBe('BATCH_NOT_FOUND');
      const downgraded = await proxied.call('POST', `/v1/batches/${batch}/cancel`, { auth: null, body: {}, headers: { cookie, 'x-forwarded-proto': 'https', origin: proxied.url } });
      expect(downgraded.status).toBe(403);
      expect(downgraded.body.error.code).toBe('CSRF_REJECTED');
    } finally {
      await proxied.close();
    }
  });
});

describe('CSRF', () => {
  it('the probe: cookie + text/plain + foreign Origin → 403 CSRF_REJECTED, and the batch is NOT cancelled', async () => {
    const batchId = await createBatch('a/');
    const cookie = `scribe_session=${await signedIn(api)}`;
    const r = await fetch(`${api.url}/v1/batches/${batchId}/cancel`, { method: 'POST', headers: { cookie, 'content-type': 'text/plain', origin: FOREIGN }, body: 'x' });
    expect(r.status).toBe(403);
    expect(r.headers.get('content-type')).toMatch(/^application\/json/);
    expect(await r.json()).toEqual({ error: { code: 'CSRF_REJECTED', message: expect.stringMatching(/cross-site/) } });

    // Each half of the probe alone is refused too.
    const jsonForeign = await api.call('POST', `/v1/batches/${batchId}/cancel`, { auth: null, body: {}, headers: { cookie, origin: FOREIGN } });
    expect([jsonForeign.status, jsonForeign.body.error?.code]).toEqual([403, 'CSRF_REJECTED']);
    const plainSame = await fetch(`${api.url}/v1/batches/${batchId}/cancel`, { method: 'POST', headers: { cookie, 'content-type': 'text/plain', origin: api.url }, body: 'x' });
    expect(plainSame.status).toBe(403);
    const form = await fetch(`${api.url}/v1/batches/${batchId}/cancel`, { method: 'POST', headers: { cookie, 'content-type': 'application/x-www-form-urlencoded', origin: api.url }, body: 'a=1' });
    expect(form.status).toBe(403);
    // No Origin and no Referer: refused (a browser always sends one of them).
    const bare = await api.call('POST', `/v1/batches/${batchId}/cancel`, { auth: null, body: {}, headers: { cookie } });
    expect([bare.status, bare.body.error?.code]).toEqual([403, 'CSRF_REJECTED']);
    // A foreign Referer, and Origin: null.
    const ref = await api.call('POST', `/v1/batches/${batchId}/cancel`, { auth: null, body: {}, headers: { cookie, referer: `${FOREIGN}/page` } });
    expect(ref.status).toBe(403);
    const nullOrigin = await api.call('POST', `/v1/batches/${batchId}/cancel`, { auth: null, body: {}, headers: { cookie, origin: 'null' } });
    expect(nullOrigin.status).toBe(403);
    // Another port of the same host is the same site but not the same origin.
    const otherPort = await api.call('POST', `/v1/batches/${batchId}/cancel`, { auth: null, body: {}, headers: { cookie, origin: 'http://127.0.0.1:1' } });
    expect(otherPort.status).toBe(403);

    const batch = await api.call('GET', `/v1/batches/${batchId}`);
    expect(batch.status).toBe(200);
    expect(batch.body.status).toBe('running');
    expect(batch.body.counts).toMatchObject({ queued: 2, cancelled: 0 });
    // The jobs are still in the queue (a cancel removes queued jobs).
    const jobs = await api.call('GET', `/v1/batches/${batchId}/jobs`);
    expect(jobs.body.jobs).toHaveLength(2);
    for (const j of jobs.body.jobs) {
      const job = await api.call('GET', `/v1/jobs/${j.jobId}`);
      expect(job.status).toBe(200);
      expect(job.body.state).not.toMatch(/cancel|failed/);
    }
  });

  it('cookie + JSON + same Origin (or same-origin Referer) is allowed: the batch is cancelled', async () => {
    const batchId = await createBatch('b/');
    const cookie = `scribe_session=${await signedIn(api)}`;
    const r = await api.call('POST', `/v1/batches/${batchId}/cancel`, { auth: null, body: {}, headers: { cookie, origin: api.url } });
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ cancelled: 2 });
    const batch = await api.call('GET', `/v1/batches/${batchId}`);
    expect(batch.body.counts).toMatchObject({ queued: 0, cancelled: 2 });

    const byReferer = await api.call('POST', `/v1/batches/${batchId}/redrive`, { auth: null, body: {}, headers: { cookie, referer: `${api.url}/dashboard`, 'content-type': 'application/json; charset=utf-8' } });
    expect(byReferer.status).not.toBe(403);
    expect(byReferer.body.error?.code).not.toBe('CSRF_REJECTED');
    // Safe methods need neither.
    expect((await api.call('GET', `/v1/batches/${batchId}`, { auth: null, headers: { cookie, origin: FOREIGN } })).status).toBe(200);
  });

  it('bearer-token calls are unaffected: bearer + foreign Origin + text/plain is not refused as CSRF', async () => {
    const batchId = await createBatch('c/');
    const r = await fetch(`${api.url}/v1/batches/${batchId}/cancel`, { method: 'POST', headers: { authorization: `Bearer ${api.token}`, 'content-type': 'text/plain', origin: FOREIGN }, body: 'x' });
    expect(r.status).toBe(200);
    expect(await r.json()).toMatchObject({ cancelled: 2 });
    // Even with a cookie alongside, the bearer header decides (and a wrong one is 401, not rescued).
    const cookie = `scribe_session=${await signedIn(api)}`;
    const wrong = await api.call('POST', `/v1/batches/${batchId}/cancel`, { auth: 'not-the-token', headers: { cookie, origin: FOREIGN } });
    expect([wrong.status, wrong.body.error.code]).toEqual([401, 'UNAUTHORIZED']);
    // Without credentials at all: 401 as before (nothing ambient to forge).
    const none = await api.call('POST', `/v1/batches/${batchId}/cancel`, { auth: null, headers: { origin: FOREIGN } });
    expect([none.status, none.body.error.code]).toEqual([401, 'UNAUTHORIZED']);
  });

  it('the login and logout forms need the same origin: a foreign Origin gets 403 and no session, and logs nobody out', async () => {
    const forged = await login(api, api.token, { origin: FOREIGN });
    expect(forged.status).toBe(403);
    expect(JSON.parse(forged.body)).toEqual({ error: { code: 'CSRF_REJECTED', message: expect.any(String) } });
    expect(forged.session).toBeUndefined();
    expect((await login(api, api.token, { origin: api.url })).status).toBe(303);
    expect((await login(api, api.token, { referer: `${api.url}/login` })).status).toBe(303);

    const id = await signedIn(api);
    const cookie = `scribe_session=${id}`;
    const out = await fetch(`${api.url}/logout`, { method: 'POST', redirect: 'manual', headers: { cookie, origin: FOREIGN, 'content-type': 'application/x-www-form-urlencoded' }, body: '' });
    expect(out.status).toBe(403);
    expect(out.headers.getSetCookie()).toEqual([]);
    expect((await api.call('GET', '/v1/batches', { auth: null, headers: { cookie } })).status).toBe(200);
  });
});

describe('login rate limit', () => {
  it('after LOGIN_ATTEMPTS_PER_MINUTE failures from one address: 429 RATE_LIMITED with Retry-After, even for the right token; another address still gets its attempts', async () => {
    const limited = await startApi({ LOGIN_ATTEMPTS_PER_MINUTE: '3', TRUST_PROXY: 'true' }, [registerDashboard]);
    try {
      const a = { 'x-forwarded-for': '203.0.113.7' };
      const b = { 'x-forwarded-for': '203.0.113.8' };
      for (let i = 0; i < 3; i++) expect((await login(limited, `wrong-${i}`, a)).status).toBe(401);
      for (const token of ['wrong-again', limited.token]) {
        const res = await fetch(`${limited.url}/login`, { method: 'POST', redirect: 'manual', headers: { 'content-type': 'application/x-www-form-urlencoded', ...a }, body: `token=${encodeURIComponent(token)}` });
        expect(res.status).toBe(429);
        const retryAfter = Number(res.headers.get('retry-after'));
        expect(retryAfter).toBeGreaterThanOrEqual(1);
        expect(retryAfter).toBeLessThanOrEqual(60);
        expect(res.headers.getSetCookie()).toEqual([]);
        expect(await res.json()).toEqual({ error: { code: 'RATE_LIMITED', message: expect.stringMatching(/too many sign-in attempts/) } });
      }
      // The counter is in Redis (every replica shares it), with the window as its TTL.
      const key = `${limited.config.QUEUE_PREFIX}:${limited.config.QUEUE_NAME}:login-attempts:203.0.113.7`;
      expect(Number(await limited.redis.get(key))).toBeGreaterThanOrEqual(4);
      const pttl = await limited.redis.pttl(key);
      expect(pttl).toBeGreaterThan(0);
      expect(pttl).toBeLessThanOrEqual(60_000);

      // Another client address is not affected; successes do not use up its attempts.
      for (let i = 0; i < 4; i++) expect((await login(limited, limited.token, b)).status).toBe(303);
      expect((await login(limited, 'wrong', b)).status).toBe(401);
    } finally {
      await limited.close();
    }
  });

  it('without TRUST_PROXY, X-Forwarded-For is not believed: rotating it does not escape the limit', async () => {
    const limited = await startApi({ LOGIN_ATTEMPTS_PER_MINUTE: '2' }, [registerDashboard]);
    try {
      expect((await login(limited, 'wrong-1', { 'x-forwarded-for': '198.51.100.1' })).status).toBe(401);
      expect((await login(limited, 'wrong-2', { 'x-forwarded-for': '198.51.100.2' })).status).toBe(401);
      const third = await login(limited, 'wrong-3', { 'x-forwarded-for': '198.51.100.3' });
      expect(third.status).toBe(429);
      expect(JSON.parse(third.body).error.code).toBe('RATE_LIMITED');
    } finally {
      await limited.close();
    }
  });
});
