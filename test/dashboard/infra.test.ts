/**
 * The Grafana dashboard and the Kubernetes manifests against the code: every PromQL expression names
 * metrics the worker or the API registers, the KEDA ScaledObject scales the worker Deployment on the
 * backlog gauge (not the raw `wait` list), and the manifests are consistent with the settings module.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { ConfigSchema } from '@scribe-fleet/core';
import { createApiMetrics } from '../../apps/producer/src/api/metrics';
import { createWorkerMetrics } from '../../apps/worker/src/metrics';

const ROOT = join(__dirname, '..', '..');

/** Series names the code exposes (histograms as their _bucket/_sum/_count series too). */
async function registeredSeries(): Promise<Set<string>> {
  const empty = { buckets: async () => [], queues: async () => [], batches: async () => [] };
  const metrics = [...(await createWorkerMetrics({ defaultMetrics: true }).registry.getMetricsAsJSON()), ...(await createApiMetrics(empty, { defaultMetrics: true }).getMetricsAsJSON())];
  const names = new Set<string>();
  for (const m of metrics) {
    names.add(m.name);
    if (String(m.type) === 'histogram') for (const s of ['_bucket', '_sum', '_count']) names.add(m.name + s);
  }
  return names;
}

/** Metric names a PromQL expression uses (ours and the default process metrics). */
function metricsIn(expr: string): string[] {
  return [...expr.matchAll(/\b((?:scribe|process|nodejs)_[a-zA-Z0-9_]+)\b/g)].map((m) => m[1]!);
}

interface GrafanaPanel {
  id: number;
  type: string;
  title: string;
  targets?: Array<{ expr?: string; refId: string }>;
  panels?: GrafanaPanel[];
}

describe('infra/grafana/scribe-fleet.json', () => {
  const dash = JSON.parse(readFileSync(join(ROOT, 'infra', 'grafana', 'scribe-fleet.json'), 'utf8')) as {
    uid: string;
    title: string;
    panels: GrafanaPanel[];
    templating: { list: Array<{ name: string; query?: unknown; definition?: string }> };
  };
  const panels = dash.panels.flatMap((p) => [p, ...(p.panels ?? [])]).filter((p) => p.type !== 'row');

  it('is a dashboard with unique panel ids and a query on every panel', () => {
    expect(dash.uid).toBe('scribe-fleet');
    expect(panels.length).toBeGreaterThanOrEqual(10);
    const ids = dash.panels.flatMap((p) => [p, ...(p.panels ?? [])]).map((p) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
    for (const p of panels) {
      expect({ panel: p.title, targets: p.targets?.length ?? 0 }).toEqual({ panel: p.title, targets: expect.any(Number) });
      expect(p.targets!.length).toBeGreaterThan(0);
      for (const t of p.targets!) expect({ panel: p.title, expr: typeof t.expr === 'string' && t.expr.length > 0 }).toEqual({ panel: p.title, expr: true });
    }
  });

  it('names only metrics the code registers, in every panel and variable', async () => {
    const known = await registeredSeries();
    const unknown: string[] = [];
    for (const p of panels) {
      for (const t of p.targets ?? []) {
        const used = metricsIn(t.expr ?? '');
        if (!used.length) unknown.push(`${p.title}: no metric in ${t.expr}`);
        for (const m of used) if (!known.has(m)) unknown.push(`${p.title}: ${m}`);
      }
    }
    for (const v of dash.templating.list) {
      for (const m of metricsIn(JSON.stringify(v.query ?? '') + (v.definition ?? ''))) if (!known.has(m)) unknown.push(`variable ${v.name}: ${m}`);
    }
    expect(unknown).toEqual([]);
    // The headline series are on it.
    const all = panels.flatMap((p) => (p.targets ?? []).flatMap((t) => metricsIn(t.expr ?? '')));
    for (const m of ['scribe_queue_backlog', 'scribe_cap_slots_in_use', 'scribe_jobs_finished_total', 'scribe_audio_seconds_total', 'scribe_provider_session_seconds_bucket', 'scribe_rate_limited_total', 'scribe_pacing_lateness_seconds_bucket']) {
      expect(all).toContain(m);
    }
  });
});

describe('infra/k8s', () => {
  const dir = join(ROOT, 'infra', 'k8s');
  const files = readdirSync(dir).filter((f) => f.endsWith('.yaml'));
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  const docs: Array<{ file: string; doc: any }> = files.flatMap((file) =>
    parseAllDocuments(readFileSync(join(dir, file), 'utf8')).map((d) => {
      if (d.errors.length) throw new Error(`${file}: ${d.errors.map((e) => e.message).join('; ')}`);
      return { file, doc: d.toJS() };
    }),
  );
  const byKind = (kind: string) => docs.filter((d) => d.doc?.kind === kind).map((d) => d.doc);
  const deployments = byKind('Deployment');
  const runs = (script: string) => deployments.find((d) => d.spec.template.spec.containers.some((c: { command?: string[] }) => c.command?.join(' ').includes(script)));
  const worker = runs('apps/worker/dist/main.js');
  const apiDeployment = runs('apps/producer/dist/api/main.js');
  const configMap = byKind('ConfigMap').find((c) => c.metadata.name === 'scribe-config');

  it('parses into named Kubernetes objects', () => {
    expect(files.length).toBeGreaterThanOrEqual(4);
    for (const { file, doc } of docs) expect({ file, apiVersion: typeof doc.apiVersion, kind: typeof doc.kind, name: typeof doc.metadata?.name }).toEqual({ file, apiVersion: 'string', kind: 'string', name: 'string' });
    expect(worker).toBeDefined();
    expect(apiDeployment).toBeDefined();
    expect(configMap).toBeDefined();
  });

  it('scales the worker Deployment with KEDA on the backlog gauge the API exports', async () => {
    const known = await registeredSeries();
    const [so] = byKind('ScaledObject');
    expect(so).toBeDefined();
    expect(so.spec.scaleTargetRef.name).toBe(worker.metadata.name);
    expect(so.spec.minReplicaCount).toBeGreaterThanOrEqual(1); // finalisation and webhooks need a worker
    expect(so.spec.maxReplicaCount).toBeGreaterThan(so.spec.minReplicaCount);
    expect(so.spec.cooldownPeriod).toBeGreaterThanOrEqual(300);
    const triggers = so.spec.triggers as Array<{ type: string; metadata: Record<string, string> }>;
    expect(triggers.length).toBeGreaterThan(0);
    for (const t of triggers) {
      // Not KEDA's redis lists scaler on BullMQ's `wait` list (it misses prioritized and delayed jobs).
      expect(['prometheus', 'metrics-api']).toContain(t.type);
      expect(JSON.stringify(t.metadata)).not.toMatch(/:wait\b/);
    }
    const prom = triggers.find((t) => t.type === 'prometheus')!;
    const used = metricsIn(prom.metadata.query!);
    expect(used).toContain('scribe_queue_backlog');
    for (const m of used) expect(known).toContain(m);
    expect(Number(prom.metadata.threshold)).toBeGreaterThan(0);
  });

  it('gives worker pods a grace period for long sessions, a preStop hook and probes on the metrics port', () => {
    const spec = worker.spec.template.spec;
    expect(spec.terminationGracePeriodSeconds).toBeGreaterThanOrEqual(3600);
    const [c] = spec.containers;
    expect(c.lifecycle.preStop).toBeDefined();
    const metricsPort = c.ports.find((p: { name: string }) => p.name === 'metrics');
    expect(String(metricsPort.containerPort)).toBe(configMap.data.METRICS_PORT);
    expect(Number(configMap.data.METRICS_PORT)).toBeGreaterThan(0);
    for (const probe of ['livenessProbe', 'readinessProbe']) {
      expect(c[probe].httpGet).toEqual({ path: '/healthz', port: 'metrics' });
    }
  });

  it('exposes the API through a Service that selects its pods, with health probes', () => {
    const svc = byKind('Service').find((s) => s.metadata.name === 'scribe-api');
    const labels = apiDeployment.spec.template.metadata.labels;
    for (const [k, v] of Object.entries(svc.spec.selector)) expect(labels[k]).toBe(v);
    const [c] = apiDeployment.spec.template.spec.containers;
    const portNames = c.ports.map((p: { name: string }) => p.name);
    for (const p of svc.spec.ports) expect(portNames).toContain(p.targetPort);
    expect(c.readinessProbe.httpGet.path).toBe('/readyz');
    expect(c.livenessProbe.httpGet.path).toBe('/healthz');
    expect(c.lifecycle.preStop).toBeDefined();
  });

  it('sets only real settings', () => {
    const settings = new Set(Object.keys(ConfigSchema.shape));
    const names = [
      ...Object.keys(configMap.data),
      ...deployments.flatMap((d) => d.spec.template.spec.containers.flatMap((c: { env?: Array<{ name: string }> }) => (c.env ?? []).map((e) => e.name))),
    ];
    expect(names.filter((n) => !settings.has(n))).toEqual([]);
  });
});
