/**
 * The deployment files as data, for the infra tests: every document of infra/k8s/*.yaml, the compose
 * file (with its `<<:` anchors merged), the environment each process gets from them, and what the
 * Docker image built by the repository's Dockerfile holds.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, posix, relative, resolve } from 'node:path';
import { parse, parseAllDocuments } from 'yaml';

export const ROOT = join(__dirname, '..', '..');
export const K8S_DIR = join(ROOT, 'infra', 'k8s');
export const COMPOSE_FILE = join(ROOT, 'infra', 'compose', 'compose.yaml');

/* eslint-disable @typescript-eslint/no-explicit-any */
export interface K8sDoc {
  file: string;
  /** Position of the document in its file (0-based). */
  index: number;
  doc: any;
}

/** Every non-empty document of every infra/k8s/*.yaml (a YAML error fails the caller). */
export function k8sDocs(): K8sDoc[] {
  return readdirSync(K8S_DIR)
    .filter((f) => f.endsWith('.yaml') || f.endsWith('.yml'))
    .sort()
    .flatMap((file) =>
      parseAllDocuments(readFileSync(join(K8S_DIR, file), 'utf8')).map((d, index) => {
        if (d.errors.length) throw new Error(`${file} document ${index}: ${d.errors.map((e) => e.message).join('; ')}`);
        return { file, index, doc: d.toJS() };
      }),
    )
    .filter((d) => d.doc !== null && d.doc !== undefined);
}

export const byKind = (docs: K8sDoc[], kind: string): any[] => docs.filter((d) => d.doc.kind === kind).map((d) => d.doc);

/**
 * The keys of the `scribe-secrets` Secret the manifests expect, as the ConfigMap's comment tells the
 * operator to create it (`--from-literal=NAME=…`).
 */
export function documentedSecretKeys(): string[] {
  const text = readFileSync(join(K8S_DIR, 'configmap.yaml'), 'utf8');
  return [...text.matchAll(/--from-literal=([A-Z0-9_]+)=/g)].map((m) => m[1]!);
}

/** The `scribe-secrets` Secret with a made-up value for every key the operator is told to set. */
export function operatorSecret(): Record<string, string> {
  return Object.fromEntries(documentedSecretKeys().map((k) => [k, k === 'API_TOKENS' ? `tok-${randomBytes(8).toString('hex')}` : `${k.toLowerCase()}-${randomBytes(12).toString('hex')}`]));
}

/**
 * The environment a container of `deployment` gets: its envFrom ConfigMaps (Secrets are given by the
 * caller, as the operator creates them), then its own `env` (which wins, as in Kubernetes).
 */
export function containerEnv(docs: K8sDoc[], deployment: any, secrets: Record<string, Record<string, string>>): Record<string, string> {
  const [container] = deployment.spec.template.spec.containers;
  const env: Record<string, string> = {};
  for (const from of container.envFrom ?? []) {
    if (from.configMapRef) {
      const cm = byKind(docs, 'ConfigMap').find((c) => c.metadata.name === from.configMapRef.name);
      if (!cm) throw new Error(`${deployment.metadata.name}: envFrom names ConfigMap ${from.configMapRef.name}, which no manifest defines`);
      Object.assign(env, cm.data);
    } else if (from.secretRef) {
      const secret = secrets[from.secretRef.name];
      if (!secret) throw new Error(`${deployment.metadata.name}: envFrom names Secret ${from.secretRef.name}, not given`);
      Object.assign(env, secret);
    }
  }
  for (const e of container.env ?? []) {
    if (e.valueFrom) throw new Error(`${deployment.metadata.name}: env ${e.name} uses valueFrom, which this test does not resolve`);
    env[e.name] = String(e.value ?? '');
  }
  return env;
}

export interface ComposeService {
  image?: string;
  build?: { context: string; dockerfile?: string };
  command?: string[];
  entrypoint?: string[];
  environment?: Record<string, string>;
  secrets?: string[];
}

export interface ComposeFile {
  services: Record<string, ComposeService>;
  secrets?: Record<string, { file?: string }>;
}

export function compose(): ComposeFile {
  return parse(readFileSync(COMPOSE_FILE, 'utf8'), { merge: true }) as ComposeFile;
}

/**
 * A compose value with its `${VAR}` interpolation done the way `docker compose` does it, for an
 * operator whose shell sets `shell`: `${X:-default}`, `${X-default}`, `${X:?message}`, `${X}`.
 */
export function interpolate(value: string, shell: Record<string, string>): string {
  return value.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?)([-?])([^}]*))?\}/g, (_, name: string, colon: string, op: string | undefined, arg: string) => {
    const set = shell[name] !== undefined && (colon !== ':' || shell[name] !== '');
    if (set) return shell[name]!;
    if (op === '?') throw new Error(`compose refuses to start without ${name}: ${arg}`);
    return op === '-' ? arg : '';
  });
}

/** What the Dockerfile's build puts in the image: its working directory and the repository paths it copies. */
export interface ImageLayout {
  workdir: string;
  /** Repository paths (relative to the build context) copied into the image, with their image path. */
  copies: Array<{ from: string; to: string }>;
  /** The build compiles the TypeScript projects (`tsc -b`), so each project's outDir is in the image. */
  compiles: boolean;
  cmd: string[];
  /** Patterns of .dockerignore (what the build context leaves out). */
  ignored: string[];
}

export function imageLayout(dockerfile = join(ROOT, 'Dockerfile')): ImageLayout {
  const lines = readFileSync(dockerfile, 'utf8')
    .replace(/\\\n/g, ' ')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'));
  let workdir = '/';
  const copies: ImageLayout['copies'] = [];
  let compiles = false;
  let cmd: string[] = [];
  for (const line of lines) {
    const [, instr, rest] = /^(\S+)\s+(.*)$/.exec(line) ?? [];
    switch (instr?.toUpperCase()) {
      case 'WORKDIR':
        workdir = posix.resolve(workdir, rest!);
        break;
      case 'COPY': {
        const parts = rest!.split(/\s+/).filter((p) => !p.startsWith('--'));
        const to = posix.resolve(workdir, parts.pop()!);
        for (const from of parts) copies.push({ from: posix.normalize(from), to: parts.length > 1 || to.endsWith('/') ? posix.join(to, posix.basename(from)) : to });
        break;
      }
      case 'RUN':
        if (/\b(?:npx\s+)?tsc\s+-b\b/.test(rest!)) compiles = true;
        break;
      case 'CMD':
        cmd = JSON.parse(rest!) as string[];
        break;
    }
  }
  const ignoreFile = join(dirname(dockerfile), '.dockerignore');
  const ignored = existsSync(ignoreFile) ? readFileSync(ignoreFile, 'utf8').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#')) : [];
  return { workdir, copies, compiles, cmd, ignored };
}

const GLOB: Record<string, string> = { '**/': '(?:.*/)?', '**': '.*', '*': '[^/]*', '?': '[^/]' };

/** Whether .dockerignore's `patterns` leave `path` (or a directory above it) out of the build context. */
export function ignoredBy(patterns: string[], path: string): boolean {
  const segs = path.split('/');
  const prefixes = segs.map((_, i) => segs.slice(0, i + 1).join('/'));
  return patterns.some((p) => {
    const re = new RegExp(
      `^${p
        .replace(/^\/+/, '')
        .split(/(\*\*\/|\*\*|\*|\?)/)
        .map((t) => GLOB[t] ?? t.replace(/[.+^${}()|[\]\\]/g, '\\$&'))
        .join('')}$`,
    );
    return prefixes.some((x) => re.test(x));
  });
}

/**
 * Why the image built from the Dockerfile has no file at `imagePath` (a path as a container command
 * names it, relative to the image's working directory), or null when it has one: copied from the
 * repository, or compiled by `tsc -b` from a TypeScript project's `src` into its `dist`.
 */
export function missingFromImage(layout: ImageLayout, imagePath: string): string | null {
  const abs = posix.resolve(layout.workdir, imagePath);
  const copy = layout.copies.find((c) => abs === c.to || abs.startsWith(`${c.to}/`));
  if (!copy) return `${abs} is under none of the Dockerfile's COPY destinations (${layout.copies.map((c) => c.to).join(', ')})`;
  const repoPath = posix.join(copy.from, posix.relative(copy.to, abs));
  if (!ignoredBy(layout.ignored, repoPath)) {
    return existsSync(join(ROOT, repoPath)) ? null : `${repoPath} is not in the repository`;
  }
  // Left out of the build context (dist/ is): it must be built inside the image.
  if (!layout.compiles) return `${repoPath} is excluded by .dockerignore and the Dockerfile compiles nothing`;
  const m = /^(.*?)\/dist\/(.*)\.js$/.exec(repoPath);
  if (!m) return `${repoPath} is excluded by .dockerignore and is no compiled output`;
  const [, project, rest] = m;
  const tsconfig = JSON.parse(readFileSync(join(ROOT, project!, 'tsconfig.json'), 'utf8')) as { compilerOptions?: { rootDir?: string; outDir?: string } };
  if (tsconfig.compilerOptions?.outDir !== 'dist') return `${project}/tsconfig.json does not compile into dist`;
  const source = posix.join(project!, tsconfig.compilerOptions.rootDir ?? '.', `${rest}.ts`);
  if (!existsSync(join(ROOT, source))) return `${repoPath} would be compiled from ${source}, which does not exist`;
  const rootRefs = (JSON.parse(readFileSync(join(ROOT, 'tsconfig.json'), 'utf8')) as { references: Array<{ path: string }> }).references.map((r) => posix.normalize(r.path));
  if (!rootRefs.includes(project!)) return `tsc -b (the root tsconfig.json) does not build ${project}`;
  return null;
}

/** A compose service's build context and Dockerfile, as absolute paths. */
export function composeBuild(service: ComposeService): { context: string; dockerfile: string } | null {
  if (!service.build) return null;
  const context = resolve(dirname(COMPOSE_FILE), service.build.context);
  return { context, dockerfile: resolve(context, service.build.dockerfile ?? 'Dockerfile') };
}

export const fromRoot = (p: string) => relative(ROOT, p) || '.';
