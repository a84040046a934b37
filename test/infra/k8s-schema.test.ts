/**
 * Every document of infra/k8s/*.yaml against the schema of its kind, two ways:
 *
 * 1. `validate()` of its kubernetes-models class (the JSON schema of Kubernetes 1.27's OpenAPI spec for
 *    the core kinds; the CRDs' OpenAPI schemas for KEDA's ScaledObject and the Prometheus Operator's
 *    ServiceMonitor / PodMonitor): types, required fields, enums, formats.
 * 2. Unknown fields. Those schemas allow any extra property, but the API server does not: kubectl
 *    (1.27+) asks for strict field validation and refuses `unknown field "…"`, and a CRD prunes it
 *    silently, so a misspelt or misplaced field (a grace period under the container instead of the
 *    pod) must fail here. The models' TypeScript types are generated from the same schemas, so each
 *    document is type-checked as an object literal passed to its class's constructor, where
 *    TypeScript reports every property the type does not declare, at any depth.
 *
 * The models are the newest whose dependencies run on Node 20 (kubernetes-models 4.5.1 = Kubernetes
 * 1.27.1, @kubernetes-models/keda 0.4.2, @kubernetes-models/prometheus-operator 4.4.4); a field that a
 * later release of Kubernetes, KEDA or the operator added fails here until the models are updated.
 */
import { join } from 'node:path';
import ts from 'typescript';
import { ROOT, k8sDocs, type K8sDoc } from './manifests';

interface ModelClass {
  new (data: unknown): { validate(): void };
  apiVersion: string;
  kind: string;
}

/** The package whose models cover an API group. */
function modelPackage(apiVersion: string): string {
  const group = apiVersion.includes('/') ? apiVersion.slice(0, apiVersion.indexOf('/')) : '';
  if (group === 'keda.sh') return '@kubernetes-models/keda';
  if (group === 'monitoring.coreos.com') return '@kubernetes-models/prometheus-operator';
  return 'kubernetes-models';
}

/** The module and class of `apiVersion`/`kind` (packages lay them out as `<apiVersion>/<Kind>`). */
function model(apiVersion: string, kind: string): { module: string; cls: ModelClass } {
  const module = `${modelPackage(apiVersion)}/${apiVersion}/${kind}`;
  let cls: ModelClass | undefined;
  try {
    cls = (require(module) as Record<string, ModelClass>)[kind];
  } catch {
    // reported below
  }
  if (!cls || cls.apiVersion !== apiVersion || cls.kind !== kind) throw new Error(`no schema model for ${apiVersion} ${kind} (looked for ${module})`);
  return { module, cls };
}

const label = (d: K8sDoc) => `${d.file}#${d.index} ${d.doc.kind}/${d.doc.metadata?.name}`;

/** Schema errors of `validate()`, one line each (none: []). */
function schemaErrors(d: K8sDoc): string[] {
  const { cls } = model(d.doc.apiVersion, d.doc.kind);
  try {
    new cls(d.doc).validate();
    return [];
  } catch (e) {
    const errors = (e as { errors?: Array<{ instancePath: string; message?: string }> }).errors;
    return errors?.length ? errors.map((x) => `${label(d)} ${x.instancePath || '/'}: ${x.message}`) : [`${label(d)}: ${(e as Error).message}`];
  }
}

/** The property path (`spec.template.spec.containers[0].comand`) of the object-literal node at `pos`. */
function pathAt(source: ts.SourceFile, pos: number): string {
  let path = '';
  const visit = (node: ts.Node): void => {
    if (pos < node.getStart(source) || pos >= node.getEnd()) return;
    if (ts.isPropertyAssignment(node)) path += `${path ? '.' : ''}${(node.name as ts.StringLiteral).text}`;
    if (ts.isArrayLiteralExpression(node)) {
      const i = node.elements.findIndex((el) => pos >= el.getStart(source) && pos < el.getEnd());
      if (i >= 0) path += `[${i}]`;
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return path;
}

/**
 * Properties the documents' types do not declare (and any other type error), by document label:
 * every document becomes `new <Kind>(<the document without apiVersion and kind>)` in a file of its
 * own, all type-checked in one program against the models' declarations.
 */
function unknownFields(docs: Array<{ label: string; doc: Record<string, unknown> }>): string[] {
  const files = new Map<string, { label: string; text: string }>();
  docs.forEach(({ label: l, doc }, i) => {
    const { apiVersion, kind, ...rest } = doc as { apiVersion: string; kind: string };
    const { module } = model(apiVersion, kind);
    files.set(join(ROOT, '.k8s-schema-check', `doc${i}.ts`), { label: l, text: `import { ${kind} } from '${module}';\nnew ${kind}(${JSON.stringify(rest, null, 1)});\n` });
  });
  const options: ts.CompilerOptions = {
    strict: true,
    noEmit: true,
    skipLibCheck: true,
    types: [],
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
  };
  const host = ts.createCompilerHost(options);
  const { getSourceFile, fileExists, readFile } = host;
  host.getSourceFile = (name, lang, ...rest) => {
    const f = files.get(name);
    return f ? ts.createSourceFile(name, f.text, lang, true) : getSourceFile.call(host, name, lang, ...rest);
  };
  host.fileExists = (name) => files.has(name) || fileExists.call(host, name);
  host.readFile = (name) => files.get(name)?.text ?? readFile.call(host, name);
  const program = ts.createProgram([...files.keys()], options, host);
  return ts.getPreEmitDiagnostics(program).map((d) => {
    const f = d.file && files.get(d.file.fileName);
    const where = f && d.start !== undefined ? `${f.label} ${pathAt(d.file!, d.start)}` : (d.file?.fileName ?? 'program');
    return `${where}: ${ts.flattenDiagnosticMessageText(d.messageText, ' ')}`;
  });
}

const docs = k8sDocs();

it('has a schema model for every document of every manifest', () => {
  expect(docs.length).toBeGreaterThanOrEqual(7);
  const kinds = docs.map((d) => `${d.doc.apiVersion} ${d.doc.kind}`);
  for (const k of ['apps/v1 Deployment', 'v1 Service', 'v1 ConfigMap', 'keda.sh/v1alpha1 ScaledObject', 'monitoring.coreos.com/v1 ServiceMonitor', 'monitoring.coreos.com/v1 PodMonitor']) expect(kinds).toContain(k);
  for (const d of docs) expect(() => model(d.doc.apiVersion, d.doc.kind)).not.toThrow();
});

it('validates every document against its kind’s schema', () => {
  expect(docs.flatMap(schemaErrors)).toEqual([]);
});

it('uses no field its kind does not declare', () => {
  expect(unknownFields(docs.map((d) => ({ label: label(d), doc: d.doc })))).toEqual([]);
});

it('catches a wrong type and a misplaced field (the checks can fail)', () => {
  // Controls on a small valid Deployment of its own (an error of the manifests is the tests' above).
  const deployment = () => ({
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: 'control' },
    spec: {
      replicas: 1 as unknown,
      selector: { matchLabels: { app: 'control' } },
      template: {
        metadata: { labels: { app: 'control' } },
        spec: { terminationGracePeriodSeconds: 60, containers: [{ name: 'c', image: 'scribe-fleet:latest' } as Record<string, unknown>] } as Record<string, unknown>,
      },
    },
  });
  const control = (doc: ReturnType<typeof deployment>): K8sDoc => ({ file: 'control.yaml', index: 0, doc });
  expect(schemaErrors(control(deployment()))).toEqual([]);
  const badReplicas = deployment();
  badReplicas.spec.replicas = 'two';
  expect(schemaErrors(control(badReplicas))).toEqual(['control.yaml#0 Deployment/control /spec/replicas: must be integer']);
  // The grace period belongs to the pod spec; under the container the API server refuses it (and the
  // plain schema validation lets it through).
  const misplaced = deployment();
  const pod = misplaced.spec.template.spec;
  (pod.containers as Array<Record<string, unknown>>)[0]!.terminationGracePeriodSeconds = pod.terminationGracePeriodSeconds;
  delete pod.terminationGracePeriodSeconds;
  expect(schemaErrors(control(misplaced))).toEqual([]);
  // One program for both: the valid control adds nothing, the misplaced field is found.
  expect(unknownFields([{ label: 'control', doc: deployment() }, { label: 'misplaced', doc: misplaced }])).toEqual([expect.stringMatching(/^misplaced spec\.template\.spec\.containers\[0\]\.terminationGracePeriodSeconds: .*'"?terminationGracePeriodSeconds"?' does not exist in type 'IContainer'/)]);
});
