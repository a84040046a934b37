/**
 * What Prometheus scrapes, as the Prometheus Operator reads monitoring.yaml: for every ServiceMonitor
 * endpoint the Deployment behind the selected Service, and for every PodMonitor endpoint the
 * Deployment whose pods it selects; with the `job` label the series get, the container port, the
 * path, and whether the scrape sends a bearer token.
 */
import { byKind, type K8sDoc } from './manifests';

/* eslint-disable @typescript-eslint/no-explicit-any */
export interface ScrapeTarget {
  monitor: string;
  /** The `job` label of the scraped series. */
  job: string;
  deployment: any;
  container: any;
  /** The container port scraped (its number). */
  containerPort: number;
  path: string;
  /** The scrape sends `Authorization: Bearer <credentials>`. */
  bearer: boolean;
}

const selects = (selector: { matchLabels?: Record<string, string> }, labels: Record<string, string> = {}) =>
  Object.entries(selector.matchLabels ?? {}).every(([k, v]) => labels[k] === v) && Object.keys(selector.matchLabels ?? {}).length > 0;

function containerPort(deployment: any, port: string | number): { container: any; containerPort: number } {
  for (const container of deployment.spec.template.spec.containers) {
    const p = (container.ports ?? []).find((x: { name?: string; containerPort: number }) => x.name === port || x.containerPort === port);
    if (p) return { container, containerPort: p.containerPort };
  }
  throw new Error(`${deployment.metadata.name} has no container port ${port}`);
}

export function scrapeTargets(docs: K8sDoc[]): ScrapeTarget[] {
  const deployments = byKind(docs, 'Deployment');
  const services = byKind(docs, 'Service');
  const podsOf = (labels: Record<string, string> | undefined) => deployments.filter((d) => labels && Object.entries(labels).every(([k, v]) => d.spec.template.metadata.labels?.[k] === v));
  const out: ScrapeTarget[] = [];
  for (const sm of byKind(docs, 'ServiceMonitor')) {
    const selected = services.filter((s) => selects(sm.spec.selector, s.metadata.labels));
    if (!selected.length) throw new Error(`ServiceMonitor ${sm.metadata.name} selects no Service`);
    for (const svc of selected) {
      // The operator's job label: the value of the Service label named by jobLabel, else the Service's name.
      const job = sm.spec.jobLabel ? svc.metadata.labels?.[sm.spec.jobLabel] : svc.metadata.name;
      if (!job) throw new Error(`ServiceMonitor ${sm.metadata.name}: Service ${svc.metadata.name} has no label ${sm.spec.jobLabel}`);
      const backends = podsOf(svc.spec.selector);
      if (backends.length !== 1) throw new Error(`Service ${svc.metadata.name} selects ${backends.length} Deployments' pods`);
      for (const ep of sm.spec.endpoints) {
        const port = svc.spec.ports.find((p: { name?: string }) => p.name === ep.port);
        if (!port) throw new Error(`ServiceMonitor ${sm.metadata.name}: Service ${svc.metadata.name} has no port named ${ep.port}`);
        out.push({ monitor: `ServiceMonitor/${sm.metadata.name}`, job, deployment: backends[0], ...containerPort(backends[0], port.targetPort ?? port.port), path: ep.path ?? '/metrics', bearer: ep.authorization?.type === 'Bearer' || !!ep.bearerTokenSecret });
      }
    }
  }
  for (const pm of byKind(docs, 'PodMonitor')) {
    const selected = deployments.filter((d) => selects(pm.spec.selector, d.spec.template.metadata.labels));
    if (!selected.length) throw new Error(`PodMonitor ${pm.metadata.name} selects no Deployment's pods`);
    for (const d of selected) {
      const job = pm.spec.jobLabel ? d.spec.template.metadata.labels?.[pm.spec.jobLabel] : `${pm.metadata.namespace ?? 'default'}/${pm.metadata.name}`;
      if (!job) throw new Error(`PodMonitor ${pm.metadata.name}: pods of ${d.metadata.name} have no label ${pm.spec.jobLabel}`);
      for (const ep of pm.spec.podMetricsEndpoints) {
        out.push({ monitor: `PodMonitor/${pm.metadata.name}`, job, deployment: d, ...containerPort(d, ep.port ?? ep.targetPort), path: ep.path ?? '/metrics', bearer: ep.authorization?.type === 'Bearer' || !!ep.bearerTokenSecret });
      }
    }
  }
  return out;
}
