/**
 * The layering ARCHITECTURE.md promises, checked on the source: the domain does no I/O, the use cases
 * (app/) reach the world through ports only, and BullMQ and ioredis are imported only by the two
 * adapter folders that own them (adapters/bullmq, adapters/redis) — nowhere in the apps.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';

const root = join(__dirname, '..', '..', '..');
const coreSrc = join(root, 'packages', 'core', 'src');

function tsFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) return name === 'node_modules' || name === 'dist' ? [] : tsFiles(p);
    return name.endsWith('.ts') && !name.endsWith('.d.ts') ? [p] : [];
  });
}

const importsOf = (file: string): string[] => [...readFileSync(file, 'utf8').matchAll(/(?:from|import)\s*\(?\s*['"]([^'"]+)['"]/g)].map((m) => m[1]!);
const rel = (p: string) => relative(root, p);

describe('layering', () => {
  test('bullmq and ioredis are imported only under packages/core/src/adapters/{bullmq,redis}', () => {
    const owners = [join(coreSrc, 'adapters', 'bullmq'), join(coreSrc, 'adapters', 'redis')];
    const sources = [...tsFiles(coreSrc), ...readdirSync(join(root, 'apps')).flatMap((a) => tsFiles(join(root, 'apps', a, 'src')))];
    expect(sources.length).toBeGreaterThan(50);
    const offenders = sources
      .filter((f) => !owners.some((o) => f.startsWith(o + '/')))
      .flatMap((f) => importsOf(f).filter((m) => m === 'bullmq' || m === 'ioredis' || m.startsWith('bullmq/')).map((m) => `${rel(f)} imports ${m}`));
    expect(offenders).toEqual([]);
  });

  test('app/ (the use cases) imports only domain/, ports/ and app/', () => {
    const dir = join(coreSrc, 'app');
    const files = tsFiles(dir);
    expect(files.length).toBeGreaterThan(5);
    const offenders = files.flatMap((f) =>
      importsOf(f)
        .filter((m) => m.startsWith('.'))
        .filter((m) => {
          const target = relative(coreSrc, join(f, '..', m));
          return !/^(domain|ports|app)\//.test(target);
        })
        .map((m) => `${rel(f)} imports ${m}`),
    );
    const packages = files.flatMap((f) => importsOf(f).filter((m) => !m.startsWith('.') && !m.startsWith('node:')).map((m) => `${rel(f)} imports ${m}`));
    expect(offenders).toEqual([]);
    // Node's own modules only for pure helpers (crypto for hashes and signatures, stream for the report); no packages.
    expect(packages).toEqual([]);
  });

  test('domain/ imports no I/O module and nothing outside domain/', () => {
    const io = /^(node:)?(fs|fs\/promises|net|http|https|child_process|dgram|tls|dns|worker_threads|cluster|readline)$|^(bullmq|ioredis|@aws-sdk\/.+|ws)$/;
    const files = tsFiles(join(coreSrc, 'domain'));
    const offenders = files.flatMap((f) =>
      importsOf(f)
        .filter((m) => io.test(m) || (m.startsWith('.') && !m.startsWith('./')))
        .map((m) => `${rel(f)} imports ${m}`),
    );
    expect(offenders).toEqual([]);
  });
});
