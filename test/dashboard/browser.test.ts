/**
 * The dashboard in a real browser (Debian's chromium driven by playwright-core; never a downloaded
 * browser): the API with the dashboard and metrics extensions, an in-process worker with the local
 * recogniser, and a batch of synthesised files in stream mode (paced at real time, so it runs for
 * half a minute), made from a stored plan as `scribe enqueue --plan` makes it. Log in through the
 * login page, watch the fleet page and Bull Board while the batch runs and check that what they show
 * matches the API at that moment (the plan's figures beside the progress too), then the final counts,
 * and that the plan's figures go once the plan has expired. Screenshots go to test-output/dashboard/.
 */
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { createDeps, startWorker, type RunningWorker } from '@scribe-fleet/worker';
import { openPlans } from '@scribe-fleet/core/adapters/plan-services';
import { RedisKeys } from '@scribe-fleet/core/adapters/redis/keys';
import { registerDashboard } from '../../apps/producer/src/api/dashboard';
import { registerMetrics } from '../../apps/producer/src/api/metrics';
import { createWorkerMetrics } from '../../apps/worker/src/metrics';
import { startApi, waitBatch, type ApiHarness } from '../api/harness';
import { uniqueBucket } from '../helpers/env';
import { sampleFiles, uploadSamples } from '../helpers/fleet';
import { parseProm, value } from './prom';

jest.setTimeout(240_000);

const CHROMIUM = '/usr/bin/chromium';
const SHOTS = join(__dirname, '..', '..', 'test-output', 'dashboard');
const STREAM = 'local:default:default:stream';
const STATES = ['queued', 'active', 'completed', 'failed', 'cancelled', 'skipped'] as const;
type Counts = Record<(typeof STATES)[number], number>;

let api: ApiHarness;
let worker: RunningWorker;
let context: BrowserContext;
let profile: string;
let pricesDir: string;
let batchId: string;
let queueName: string;
let plan: { planId: string; audio: { seconds: { estimate: number } }; choices: Array<{ costUsd: { estimate: number }; wallSeconds: { estimate: number } }> };
/** The price the test's PRICES_FILE gives the local recogniser in stream mode (it has none by default: $0). */
const USD_PER_MINUTE = 0.6;

/** Retry `check` until it returns a value (not undefined) or `ms` pass; the last failure explains. */
async function eventually<T>(what: string, ms: number, check: () => Promise<T | undefined>, lastSeen: () => string): Promise<T> {
  const t0 = Date.now();
  for (;;) {
    const r = await check();
    if (r !== undefined) return r;
    if (Date.now() - t0 > ms) throw new Error(`${what}: not within ${ms} ms; last seen ${lastSeen()}`);
    await new Promise((res) => setTimeout(res, 200));
  }
}

async function apiBatch(): Promise<{ status: string; counts: Counts; total: number; audioSecondsDone: number }> {
  const r = await api.call('GET', `/v1/batches/${batchId}`);
  expect(r.status).toBe(200);
  return r.body;
}

const pick = (c: Counts) => Object.fromEntries(STATES.map((s) => [s, c[s]])) as Counts;

const sameCounts = (a: Counts, b: Counts) => STATES.every((s) => a[s] === b[s]);

/**
 * The batch row of the fleet page, as shown: read in one go inside the page, because the page
 * re-renders its sections on every poll (separate reads could mix two renders).
 */
async function shownBatch(page: Page): Promise<{ status: string; counts: Counts; done: number; total: number } | null> {
  return page.evaluate((id) => {
    const row = document.querySelector(`[data-testid="batch-row"][data-batch-id="${id}"]`);
    if (!row) return null;
    const num = (sel: string) => Number(row.querySelector(sel)?.getAttribute('data-value'));
    const counts: Record<string, number> = {};
    row.querySelectorAll('[data-testid="batch-count"]').forEach((el) => (counts[el.getAttribute('data-state') ?? ''] = Number(el.getAttribute('data-value'))));
    return {
      status: (row.querySelector('[data-testid="batch-status"]')?.textContent ?? '').trim(),
      counts: counts as Counts,
      done: num('[data-testid="batch-done"]'),
      total: num('[data-testid="batch-total"]'),
    };
  }, batchId);
}

type ShownPlan = Record<'audioPlanned' | 'audioDone' | 'audioProjected' | 'costPlanned' | 'costDone' | 'costProjected' | 'timePlanned' | 'timeElapsed' | 'timeProjected', number | null> & {
  planId: string;
  choice: number;
  audioVersus: string | null;
};

/** The plan's figures beside the batch's progress, as shown (null: no plan cell), read in one go. */
async function shownPlan(page: Page): Promise<ShownPlan | null> {
  return page.evaluate((id) => {
    const cell = document.querySelector(`[data-testid="batch-row"][data-batch-id="${id}"] [data-testid="batch-plan"]`);
    if (!cell) return null;
    const num = (testid: string) => {
      const v = cell.querySelector(`[data-testid="${testid}"]`)?.getAttribute('data-value');
      return v === null || v === undefined || v === '' ? null : Number(v);
    };
    return {
      planId: cell.getAttribute('data-plan-id') ?? '',
      choice: Number(cell.getAttribute('data-choice')),
      audioPlanned: num('plan-audio-planned'),
      audioDone: num('plan-audio-done'),
      audioProjected: num('plan-audio-projected'),
      audioVersus: cell.querySelector('[data-testid="plan-audio-projected"]')?.getAttribute('data-versus') ?? null,
      costPlanned: num('plan-cost-planned'),
      costDone: num('plan-cost-done'),
      costProjected: num('plan-cost-projected'),
      timePlanned: num('plan-time-planned'),
      timeElapsed: num('plan-time-elapsed'),
      timeProjected: num('plan-time-projected'),
    };
  }, batchId);
}

/** Bull Board's queue page: the count on each status tab's badge (none = 0), read in one go. */
async function boardCounts(page: Page): Promise<Record<string, number>> {
  return page.evaluate(() => {
    const out: Record<string, number> = {};
    for (const s of ['active', 'waiting', 'prioritized', 'delayed', 'completed', 'failed']) {
      const tab = document.querySelector(`[class*="statusTabs"] a[href$="?status=${s}"]`);
      out[s] = Number((tab?.textContent ?? '').replace(/[^0-9]/g, '') || 0);
    }
    return out;
  });
}

beforeAll(async () => {
  expect(existsSync(CHROMIUM)).toBe(true); // installed by infra/local/ensure.js
  await mkdir(SHOTS, { recursive: true });
  profile = await mkdtemp(join(tmpdir(), 'scribe-chromium-'));
  pricesDir = await mkdtemp(join(tmpdir(), 'scribe-prices-'));
  const prices = join(pricesDir, 'prices.json');
  await writeFile(prices, JSON.stringify([{ provider: 'local', model: '*', mode: 'stream', usdPerMinute: USD_PER_MINUTE, source: 'dashboard test', asOf: '2026-12-07' }]));
  // One job at a time, so the batch passes through distinct states slowly enough to watch.
  api = await startApi({ QUEUE_PREFIX: `tb-${randomBytes(3).toString('hex')}`, LOCAL_CONCURRENCY: '1', JOB_ATTEMPTS: '1', PRICES_FILE: prices }, [registerMetrics, registerDashboard]);
  queueName = `${api.config.QUEUE_NAME}.local.default.default.stream`;
  worker = startWorker(api.config, createDeps(api.config, {}, createWorkerMetrics()));
  const bucket = uniqueBucket('dashboard');
  await uploadSamples(api.storage, bucket, 'in/', await sampleFiles());
  // Planned first (every file measured), then created from the plan's request as `scribe enqueue --plan` does.
  const planned = await api.call('POST', '/v1/plans', { body: { source: `s3://${bucket}/in/`, out: `s3://${bucket}/out/`, mode: 'stream', exact: true } });
  expect([planned.status, planned.body.error]).toEqual([201, undefined]);
  plan = planned.body;
  const request = await openPlans(api).request(plan.planId, 1);
  expect(request.plan).toEqual({ id: plan.planId, choice: 1 });
  const created = await api.call('POST', '/v1/batches', { body: request });
  expect(created.status).toBeLessThan(300);
  batchId = created.body.batchId;
  await worker.discover();

  context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    viewport: { width: 1280, height: 900 },
  });
});

afterAll(async () => {
  await context?.close();
  if (profile) await rm(profile, { recursive: true, force: true });
  if (pricesDir) await rm(pricesDir, { recursive: true, force: true });
  await worker?.close();
  await api?.close();
});

it('keeps the dashboard and the API behind the token', async () => {
  const noFollow = { redirect: 'manual' as const };
  const dash = await fetch(`${api.url}/dashboard`, noFollow);
  expect(dash.status).toBe(302);
  expect(dash.headers.get('location')).toBe('/login?next=%2Fdashboard');
  expect((await fetch(`${api.url}/dashboard/queues/`, noFollow)).status).toBe(302);
  expect((await fetch(`${api.url}/dashboard/queues/api/queues`)).status).toBe(401);
  expect((await fetch(`${api.url}/v1/fleet`)).status).toBe(401);
  // The session cookie a login sets works like the bearer header; a wrong one does not, nor the raw token.
  const signIn = await fetch(`${api.url}/login`, { ...noFollow, method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: `token=${encodeURIComponent(api.token)}` });
  expect(signIn.status).toBe(303);
  const session = /^scribe_session=([A-Za-z0-9_-]{43});/.exec(signIn.headers.getSetCookie().find((c) => c.startsWith('scribe_session=')) ?? '')?.[1];
  expect(session).toBeDefined();
  expect((await fetch(`${api.url}/v1/fleet`, { headers: { cookie: `scribe_session=${session}` } })).status).toBe(200);
  expect((await fetch(`${api.url}/dashboard/queues/api/queues`, { headers: { cookie: 'scribe_session=wrong' } })).status).toBe(401);
  expect((await fetch(`${api.url}/v1/fleet`, { headers: { cookie: `scribe_token=${api.token}` } })).status).toBe(401);
  // Nothing external (it works offline): not on the fleet page, not in Bull Board's page either.
  const cookie = { headers: { cookie: `scribe_session=${session}` } };
  const fleetPage = await fetch(`${api.url}/dashboard`, cookie);
  expect(fleetPage.status).toBe(200);
  const csp = fleetPage.headers.get('content-security-policy') ?? '';
  expect(csp).toMatch(/default-src 'none'/);
  const nonce = /'nonce-([^']+)'/.exec(csp)?.[1];
  const html = await fleetPage.text();
  expect(html).toContain(`<script nonce="${nonce}">`);
  expect(html).not.toMatch(/(?:src|href)="(?:https?:)?\/\//);
  const boardPage = await fetch(`${api.url}/dashboard/queues/`, cookie);
  expect(boardPage.status).toBe(200);
  expect(await boardPage.text()).not.toMatch(/(?:src|href)="(?:https?:)?\/\//);
  // No open redirect after login.
  const login = await fetch(`${api.url}/login`, { ...noFollow, method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: `token=${encodeURIComponent(api.token)}&next=${encodeURIComponent('https://evil.example/')}` });
  expect(login.status).toBe(303);
  expect(login.headers.get('location')).toBe('/dashboard');
});

it('logs in, and while the batch runs shows the counts the API has', async () => {
  const page = context.pages()[0] ?? (await context.newPage());
  await page.goto(`${api.url}/dashboard?poll=500`);
  expect(new URL(page.url()).pathname).toBe('/login');
  await page.screenshot({ path: join(SHOTS, '01-login.png') });

  await page.fill('[data-testid="login-token"]', 'not-the-token');
  await page.click('[data-testid="login-submit"]');
  await expect(page.locator('[data-testid="login-error"]').innerText()).resolves.toMatch(/not valid/);

  await page.fill('[data-testid="login-token"]', api.token);
  await page.click('[data-testid="login-submit"]');
  await page.waitForURL(/\/dashboard\?poll=500$/);
  // The cookie holds an opaque session id, never the token.
  const cookie = (await context.cookies(api.url)).find((c) => c.name === 'scribe_session');
  expect(cookie).toMatchObject({ value: expect.stringMatching(/^[A-Za-z0-9_-]{43}$/), httpOnly: true, sameSite: 'Strict', path: '/' });
  expect(cookie!.value).not.toContain(api.token);
  expect((await context.cookies(api.url)).map((c) => c.value)).not.toContain(api.token);

  // The batch's row equals GET /v1/batches/:id while the batch is still running (both move on).
  let last = '';
  const running = await eventually(
    'fleet page batch counts = API counts while running',
    20_000,
    async () => {
      const shown = await shownBatch(page);
      const b = await apiBatch();
      last = JSON.stringify({ shown, api: { status: b.status, counts: b.counts } });
      const done = b.counts.completed + b.counts.failed + b.counts.cancelled + b.counts.skipped;
      // Mid-run: some files done, one active, some still queued (so the page has been re-rendered by its polling).
      if (!shown || b.status !== 'running' || done === 0 || done === b.total || b.counts.active === 0) return undefined;
      return sameCounts(shown.counts, b.counts) && shown.status === 'running' && shown.total === b.total ? { shown, b } : undefined;
    },
    () => last,
  );
  expect(running.shown.total).toBe(4);
  expect(running.shown.done).toBeLessThan(4);

  // Beside the progress: the plan's figures, the same as GET /v1/batches/:id's planProgress at that moment.
  const planShown = await eventually(
    'fleet page plan figures = API planProgress while running',
    20_000,
    async () => {
      const shown = await shownPlan(page);
      const b = (await api.call('GET', `/v1/batches/${batchId}`)).body;
      const p = b.planProgress;
      last = JSON.stringify({ shown, api: p });
      if (!shown || !p || b.status !== 'running' || p.audioSeconds.done === 0) return undefined;
      const same = shown.audioDone === p.audioSeconds.done && shown.audioProjected === p.audioSeconds.projected && shown.costDone === p.costUsd.done;
      return same ? shown : undefined;
    },
    () => last,
  );
  expect(planShown).toMatchObject({
    planId: plan.planId,
    choice: 1,
    audioPlanned: plan.audio.seconds.estimate,
    costPlanned: plan.choices[0]!.costUsd.estimate,
    timePlanned: plan.choices[0]!.wallSeconds.estimate,
  });
  expect(planShown.costPlanned).toBeGreaterThan(0);
  expect(planShown.costDone).toBeCloseTo((planShown.audioDone! / 60) * USD_PER_MINUTE, 9);
  expect(planShown.audioDone).toBeLessThan(plan.audio.seconds.estimate);
  expect(planShown.timeElapsed).toBeGreaterThan(0);
  await expect(page.locator(`[data-testid="batch-row"][data-batch-id="${batchId}"] [data-testid="batch-plan"]`).innerText()).resolves.toMatch(new RegExp(`plan ${plan.planId} choice 1`));

  // The cap bucket's row: configured cap, and slots in use as the API's /metrics reports them.
  const capRow = page.locator(`[data-testid="cap-row"][data-bucket="${STREAM}"]`);
  await expect(capRow.locator('[data-testid="cap-configured"]').getAttribute('data-value')).resolves.toBe('64');
  await eventually(
    'fleet page slots in use = scribe_cap_slots_in_use while a session runs',
    20_000,
    async () => {
      const shown = Number(await capRow.locator('[data-testid="cap-in-use"]').getAttribute('data-value'));
      const metrics = parseProm((await api.call('GET', '/metrics')).body as string);
      const inUse = value(metrics, 'scribe_cap_slots_in_use', { bucket: STREAM });
      last = JSON.stringify({ shown, inUse });
      return shown === 1 && inUse === 1 ? true : undefined;
    },
    () => last,
  );
  await page.screenshot({ path: join(SHOTS, '02-fleet-running.png'), fullPage: true });
});

it('shows the cap-bucket queue in Bull Board with the counts the API has', async () => {
  const page = await context.newPage();
  await page.goto(`${api.url}/dashboard/queues`);
  // The bucket queue is listed by its display name, which starts with what differs between the
  // queues of one bucket (the mode), not by the long queue name the list would cut short.
  const display = 'stream · local default · default';
  await expect(page.getByText(display).first().innerText({ timeout: 15_000 })).resolves.toContain(display);
  await expect(page.getByText(`${api.config.QUEUE_NAME}-control`).first().isVisible()).resolves.toBe(true);
  await expect(page.getByText(`${api.config.QUEUE_NAME}-webhooks`).first().isVisible()).resolves.toBe(true);

  let last = '';
  await eventually(
    'Bull Board counts = API counts while running',
    20_000,
    async () => {
      await page.goto(`${api.url}/dashboard/queues/queue/${encodeURIComponent(queueName)}`);
      await page.locator('[class*="statusTabs"] a[href$="?status=completed"]').first().waitFor({ timeout: 10_000 });
      await page.waitForLoadState('networkidle');
      const shown = await boardCounts(page);
      const b = await apiBatch();
      last = JSON.stringify({ shown, api: { status: b.status, counts: b.counts } });
      if (b.status !== 'running' || b.counts.active === 0 || b.counts.completed === 0) return undefined;
      const same = shown.active === b.counts.active && shown.waiting! + shown.prioritized! === b.counts.queued && shown.completed === b.counts.completed && shown.failed === b.counts.failed;
      return same ? true : undefined;
    },
    () => last,
  );
  await page.screenshot({ path: join(SHOTS, '03-bullboard-running.png'), fullPage: true });
  await page.close();
});

it('after the batch, shows the final counts, throughput and audio hours', async () => {
  const final = await waitBatch(api, batchId, 180_000);
  expect(final.counts).toMatchObject({ completed: 4, failed: 0, queued: 0, active: 0 });
  const page = context.pages()[0]!;
  let last = '';
  const shown = await eventually(
    'fleet page shows the finished batch',
    15_000,
    async () => {
      const s = await shownBatch(page);
      last = JSON.stringify(s);
      return s && s.status === 'finished' ? s : undefined;
    },
    () => last,
  );
  expect(shown.counts).toEqual(pick(final.counts));
  expect([shown.done, shown.total]).toEqual([4, 4]);
  const out = await page.locator(`[data-testid="batch-row"][data-batch-id="${batchId}"] [data-testid="batch-out"]`).innerText();
  expect(out).toMatch(/^→ s3:\/\/.*\/out\/$/);
  expect(await page.locator('[data-testid="throughput-last-hour"]').getAttribute('data-value')).toBe('4');
  const audioHours = Number(await page.locator('[data-testid="audio-hours-24h"]').getAttribute('data-value'));
  expect(audioHours * 3600).toBeCloseTo(final.audioSecondsDone, 3);
  expect(await page.locator('[data-testid="failures-empty"]').isVisible()).toBe(true);
  expect(await page.locator(`[data-testid="cap-row"][data-bucket="${STREAM}"] [data-testid="queue-completed"]`).getAttribute('data-value')).toBe('4');
  expect(await page.locator('[data-testid="summary-backlog"]').getAttribute('data-value')).toBe('0');
  expect(Number(await page.locator('body').getAttribute('data-polls'))).toBeGreaterThan(3);
  await page.screenshot({ path: join(SHOTS, '04-fleet-finished.png'), fullPage: true });

  // The plan beside the finished batch: the actual audio and cost, against an exact plan (1 %).
  const planDone = await eventually(
    'fleet page plan figures of the finished batch',
    15_000,
    async () => {
      const p = await shownPlan(page);
      last = JSON.stringify(p);
      return p && p.audioDone === final.audioSecondsDone ? p : undefined;
    },
    () => last,
  );
  expect(planDone.audioProjected).toBe(final.audioSecondsDone);
  expect(planDone.audioVersus).toBe('within');
  expect(Math.abs(final.audioSecondsDone / plan.audio.seconds.estimate - 1)).toBeLessThan(0.01);
  expect(planDone.costDone).toBeCloseTo((final.audioSecondsDone / 60) * USD_PER_MINUTE, 9);
  expect(planDone.costProjected).toBe(planDone.costDone);
  expect(planDone.timeProjected).toBe(planDone.timeElapsed);
  expect(planDone.timeElapsed).toBeGreaterThan(0);

  // Once the plan has expired (its key deleted, as its TTL would), the batch keeps its link and shows nothing of it.
  await api.redis.del(RedisKeys.forQueue(api.config).plan(plan.planId));
  await eventually(
    'fleet page drops the plan figures once the plan is gone',
    15_000,
    async () => ((await shownPlan(page)) === null && (await shownBatch(page)) !== null ? true : undefined),
    () => 'still shown',
  );
  const after = (await api.call('GET', `/v1/batches/${batchId}`)).body;
  expect(after.plan).toEqual({ id: plan.planId, choice: 1 });
  expect(after.planProgress).toBeUndefined();

  const board = await context.newPage();
  await board.goto(`${api.url}/dashboard/queues/queue/${encodeURIComponent(queueName)}`);
  await board.locator('[class*="statusTabs"] a[href$="?status=completed"]').first().waitFor({ timeout: 15_000 });
  await board.waitForLoadState('networkidle');
  expect(await boardCounts(board)).toMatchObject({ active: 0, waiting: 0, prioritized: 0, completed: 4, failed: 0 });
  await board.screenshot({ path: join(SHOTS, '05-bullboard-finished.png'), fullPage: true });
  await board.close();

  // Log out: the cookie is gone and the dashboard asks for the token again.
  const held = (await context.cookies(api.url)).find((c) => c.name === 'scribe_session');
  expect(held?.value).toMatch(/^[A-Za-z0-9_-]{43}$/);
  // The logout's response is held for 4 polls after the server has revoked the session: a poll that
  // then gets 401 must not send the page to /login?next=/dashboard over the logout's own redirect
  // (it did, once in CI, by chance; holding the response makes the race certain).
  await page.route('**/logout', async (route) => {
    const response = await route.fetch({ maxRedirects: 0 });
    await new Promise((r) => setTimeout(r, 2000));
    await route.fulfill({ response });
  });
  const pollsAtLogout = Number(await page.locator('body').getAttribute('data-polls'));
  await page.click('[data-testid="logout"]');
  await page.waitForURL(/\/login$/);
  expect(pollsAtLogout).toBeGreaterThan(0);
  expect((await context.cookies(api.url)).find((c) => c.name === 'scribe_session')).toBeUndefined();
  // …and the session is over server-side: a copy of the cookie no longer works.
  expect((await fetch(`${api.url}/v1/fleet`, { headers: { cookie: `scribe_session=${held!.value}` } })).status).toBe(401);
  await page.goto(`${api.url}/dashboard`);
  expect(new URL(page.url()).pathname).toBe('/login');
});
