/**
 * The autoscaling and monitoring manifests against the real processes. Each Deployment that a
 * ServiceMonitor or PodMonitor scrapes runs here as its manifest runs it (the container's command,
 * the environment from the ConfigMap, the Secret and its `env`; only where Redis and S3 are, the
 * queue prefix, and the listening address and port differ), on the test Redis and S3 server. Then:
 * its probes answer on the paths and ports the manifest names; the scrape the monitor makes succeeds
 * (with a bearer token only where the monitor sends one); and every series that the KEDA
 * ScaledObject's Prometheus query (and any PrometheusRule) reads is in the scrape of the target its
 * `job` matcher names, carrying the labels the query filters and groups on, with a value that counts
 * the jobs of a real batch waiting in the queue.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { createWorkerMetrics } from '../../apps/worker/src/metrics';
import { find, parseProm, type Sample } from '../dashboard/prom';
import { freePort, s3Coordinates, testStorage, uniqueBucket } from '../helpers/env';
import { byKind, containerEnv, k8sDocs, operatorSecret, ROOT } from './manifests';
import { groupings, matches, selectors, type Selector } from './promql';
import { scrapeTargets, type ScrapeTarget } from './scrape-targets';

jest.setTimeout(120_000);

const docs = k8sDocs();
const targets = scrapeTargets(docs);
const secret = operatorSecret();
const token = secret.API_TOKENS!.split(',')[0]!;
/** Labels Prometheus gives a series from its target, not from the scraped text. */
const TARGET_LABELS = new Set(['job', 'instance', 'namespace', 'pod', 'service', 'endpoint', 'container']);

const expressions = [
  ...byKind(docs, 'ScaledObject').flatMap((so) =>
    (so.spec.triggers as Array<{ type: string; metadata: { query: string } }>).filter((t) => t.type === 'prometheus').map((t) => ({ where: `ScaledObject/${so.metadata.name}`, expr: t.metadata.query })),
  ),
  ...byKind(docs, 'PrometheusRule').flatMap((r) =>
    (r.spec.groups as Array<{ rules: Array<{ alert?: string; record?: string; expr: string }> }>).flatMap((g) => g.rules.map((rule) => ({ where: `PrometheusRule/${r.metadata.name} ${rule.alert ?? rule.record}`, expr: String(rule.expr) }))),
  ),
];

interface Running {
  target: ScrapeTarget;
  child: ChildProcess;
  base: string;
  output: () => string;
}

const running = new Map<string, Running>();

/** The Deployment of `t` started as its manifest starts it, listening on 127.0.0.1 and a free port. */
async function start(t: ScrapeTarget, queuePrefix: string): Promise<Running> {
  const env = containerEnv(docs, t.deployment, { 'scribe-secrets': secret });
  // The scraped container port is the one a *_PORT setting makes the process listen on, on all interfaces.
  const portVars = Object.keys(env).filter((k) => k.endsWith('_PORT') && env[k] === String(t.containerPort));
  expect({ deployment: t.deployment.metadata.name, port: t.containerPort, setBy: portVars }).toEqual({ deployment: t.deployment.metadata.name, port: t.containerPort, setBy: [expect.any(String)] });
  const hostVar = portVars[0]!.replace(/_PORT$/, '_HOST');
  expect({ deployment: t.deployment.metadata.name, [hostVar]: env[hostVar] }).toEqual({ deployment: t.deployment.metadata.name, [hostVar]: '0.0.0.0' });
  const port = await freePort();
  const s3 = s3Coordinates();
  const where = {
    REDIS_URL: process.env.REDIS_URL!,
    S3_ENDPOINT: s3.endpoint,
    S3_REGION: s3.region,
    S3_ACCESS_KEY_ID: s3.accessKeyId,
    S3_SECRET_ACCESS_KEY: s3.secretAccessKey,
    S3_FORCE_PATH_STYLE: 'true',
    QUEUE_PREFIX: queuePrefix,
    [portVars[0]!]: String(port),
    [hostVar]: '127.0.0.1',
  };
  const [node, script, ...args] = t.container.command as string[];
  expect(node).toBe('node');
  const child = spawn(process.execPath, [join(ROOT, script!), ...args], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '', AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true', ...env, ...where },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (out = (out + d).slice(-20_000)));
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (out = (out + d).slice(-20_000)));
  const r: Running = { target: t, child, base: `http://127.0.0.1:${port}`, output: () => out };
  // Ready as Kubernetes sees it: the readiness probe's path answers 200 (bounded by the process being alive).
  const probe = probes(t).find((p) => p.kind === 'readinessProbe')!;
  for (const t0 = Date.now(); ; ) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`${script} exited (${child.exitCode ?? child.signalCode}) before it was ready:\n${out}`);
    const status = await fetch(r.base + probe.path).then((res) => res.status, () => 0);
    if (status === 200) break;
    if (Date.now() - t0 > 60_000) throw new Error(`${script}: ${probe.path} still answers ${status} after 60 s:\n${out}`);
    await new Promise((res) => setTimeout(res, 100));
  }
  return r;
}

/** The container's HTTP probes, each checked to target the scraped port (the one the test moves). */
function probes(t: ScrapeTarget): Array<{ kind: string; path: string }> {
  const out: Array<{ kind: string; path: string }> = [];
  for (const kind of ['startupProbe', 'livenessProbe', 'readinessProbe']) {
    const get = t.container[kind]?.httpGet as { path: string; port: string | number } | undefined;
    if (!get) continue;
    const port = (t.container.ports as Array<{ name?: string; containerPort: number }>).find((p) => p.name === get.port || p.containerPort === get.port);
    expect({ container: t.container.name, kind, port: port?.containerPort }).toEqual({ container: t.container.name, kind, port: t.containerPort });
    out.push({ kind, path: get.path });
  }
  expect(out.map((p) => p.kind)).toContain('readinessProbe');
  return out;
}

async function scrape(r: Running): Promise<Sample[]> {
  const res = await fetch(r.base + r.target.path, r.target.bearer ? { headers: { authorization: `Bearer ${token}` } } : {});
  const text = await res.text();
  expect({ monitor: r.target.monitor, status: res.status }).toEqual({ monitor: r.target.monitor, status: 200 });
  return parseProm(text);
}

/** The samples a selector reads: of the targets its `job` matcher picks, its name, its other matchers. */
function read(sel: Selector, scrapes: Map<string, Sample[]>): Sample[] {
  const job = sel.matchers.filter((m) => m.label === 'job');
  const other = sel.matchers.filter((m) => !TARGET_LABELS.has(m.label));
  return [...scrapes.entries()]
    .filter(([j]) => job.every((m) => matches(m, j)))
    .flatMap(([, samples]) => find(samples, sel.metric).filter((s) => other.every((m) => matches(m, s.labels[m.label]))));
}

const storage = testStorage();
const bucket = uniqueBucket('k8s-keda');
const api = () => [...running.values()].find((r) => (r.target.container.command as string[]).join(' ').includes('api/main.js'))!;

beforeAll(async () => {
  // One process per scraped Deployment; the API's and the workers' queues apart, so the backlog stays put.
  for (const t of targets) {
    if (!running.has(t.deployment.metadata.name)) running.set(t.deployment.metadata.name, await start(t, `k8s-${randomBytes(4).toString('hex')}`));
  }
});

afterAll(async () => {
  await Promise.all(
    [...running.values()].map(async ({ child }) => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
    }),
  );
  storage.destroy();
});

it('reads the selectors and groupings of the KEDA query', () => {
  // Pins what the small PromQL reader finds in the real query, so a misread cannot pass as "nothing to check".
  const [keda] = expressions;
  expect(keda!.where).toBe('ScaledObject/scribe-worker');
  const job = { label: 'job', op: '=', value: 'scribe-api' };
  expect(selectors(keda!.expr)).toEqual([
    { metric: 'scribe_queue_backlog', matchers: [job] },
    { metric: 'scribe_fleet_up', matchers: [job] },
  ]);
  expect(groupings(keda!.expr)).toEqual([{ labels: ['bucket'], selectors: [{ metric: 'scribe_queue_backlog', matchers: [job] }] }]);
});

it('scrapes the API and the workers as the monitors do, the deployments answering their probes', async () => {
  expect(targets.map((t) => `${t.monitor} job=${t.job} ${t.deployment.metadata.name}:${t.containerPort}${t.path} bearer=${t.bearer}`).sort()).toEqual([
    'PodMonitor/scribe-worker job=scribe-worker scribe-worker:9464/metrics bearer=false',
    'ServiceMonitor/scribe-api job=scribe-api scribe-api:8080/metrics bearer=true',
  ]);
  for (const r of running.values()) {
    for (const p of probes(r.target)) expect({ deployment: r.target.deployment.metadata.name, probe: p.kind, status: (await fetch(r.base + p.path)).status }).toEqual({ deployment: r.target.deployment.metadata.name, probe: p.kind, status: 200 });
    expect((await scrape(r)).length).toBeGreaterThan(0);
  }
  // The API's /metrics needs the token the ServiceMonitor sends.
  expect((await fetch(api().base + api().target.path)).status).toBe(401);
  // A worker pod's scrape has every metric the worker registers.
  const worker = [...running.values()].find((r) => r.target.job === 'scribe-worker')!;
  const text = await (await fetch(worker.base + worker.target.path)).text();
  for (const m of await createWorkerMetrics({ defaultMetrics: true }).registry.getMetricsAsJSON()) expect(text).toContain(`# HELP ${m.name} `);
});

it('serves every series the KEDA query and the rules read, with their labels, counting the queued jobs', async () => {
  expect(expressions.length).toBeGreaterThan(0);
  // Two files in the queue and no worker on it: the backlog KEDA scales on.
  await storage.ensureBucket(bucket);
  for (const key of ['in/a.wav', 'in/b.wav']) await storage.put(bucket, key, Buffer.from('RIFF not really audio'));
  const created = await fetch(`${api().base}/v1/batches`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify({ source: `s3://${bucket}/in/`, out: `s3://${bucket}/out/` }),
  });
  expect(created.status).toBeLessThan(300);

  // The API reads the buckets at most a second stale: poll its scrape until the two jobs show.
  for (const t0 = Date.now(); ; ) {
    const shown = find(await scrape(api()), 'scribe_queue_backlog');
    if (shown.reduce((n, s) => n + s.value, 0) === 2) break;
    if (Date.now() - t0 > 30_000) throw new Error(`the API's backlog never showed the 2 queued jobs: ${JSON.stringify(shown)}`);
    await new Promise((res) => setTimeout(res, 200));
  }
  // Then one scrape of every target, by the `job` label its monitor gives.
  const scrapes = new Map<string, Sample[]>();
  for (const r of running.values()) scrapes.set(r.target.job, await scrape(r));
  const keda = selectors(expressions[0]!.expr);
  const backlog = () => read(keda.find((sel) => sel.metric === 'scribe_queue_backlog')!, scrapes);

  const problems: string[] = [];
  for (const { where, expr } of expressions) {
    for (const sel of selectors(expr)) {
      if (!read(sel, scrapes).length) problems.push(`${where}: no series ${sel.metric}${JSON.stringify(sel.matchers)} in the scrape of ${[...scrapes.keys()].join(', ')}`);
    }
    for (const g of groupings(expr)) {
      for (const sel of g.selectors) {
        for (const s of read(sel, scrapes)) for (const l of g.labels) if (!(l in s.labels)) problems.push(`${where}: ${sel.metric} has no label ${l} to group by`);
      }
    }
  }
  expect(problems).toEqual([]);

  // The query's value as Prometheus computes it: sum over buckets of the max over API replicas (one
  // here), or 0 while the API reads Redis.
  const perBucket = new Map<string, number>();
  for (const s of backlog()) perBucket.set(s.labels.bucket!, Math.max(perBucket.get(s.labels.bucket!) ?? 0, s.value));
  expect([...perBucket.values()].reduce((a, b) => a + b, 0)).toBe(2);
  expect(read(keda.find((sel) => sel.metric === 'scribe_fleet_up')!, scrapes).map((s) => s.value)).toEqual([1]);
});
