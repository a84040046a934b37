/**
 * A real Redis Cluster for tests: `masters` × (1 + replicas) `redis-server` processes from Debian's
 * package (`--cluster-enabled yes`) on free 127.0.0.1 ports, joined by
 * `redis-cli --cluster create … --cluster-replicas N --cluster-yes`. Each node keeps an AOF and its
 * cluster config in a directory of its own.
 */
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freePort } from './env';

const exec = promisify(execFile);

export interface ClusterNode {
  port: number;
  proc: ChildProcess;
}

async function cli(port: number, ...args: string[]): Promise<string> {
  const { stdout } = await exec('redis-cli', ['-p', String(port), ...args], { timeout: 10_000 });
  return stdout;
}

async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 30_000): Promise<T> {
  const t0 = Date.now();
  let last: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() - t0 > timeoutMs) throw new Error(`redis cluster: timed out waiting for ${what}${last ? ` (${String(last)})` : ''}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** The CRC16 (XMODEM) key slot of Redis Cluster, with hash tags. */
export function keySlot(key: string): number {
  const open = key.indexOf('{');
  if (open >= 0) {
    const close = key.indexOf('}', open + 1);
    if (close > open + 1) key = key.slice(open + 1, close);
  }
  let crc = 0;
  for (const byte of Buffer.from(key)) {
    crc ^= byte << 8;
    for (let i = 0; i < 8; i++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
  }
  return crc % 16384;
}

export class RedisClusterUnderTest {
  private constructor(
    readonly nodes: ClusterNode[],
    private readonly dir: string,
  ) {}

  static async start(opts: { masters?: number; replicas?: number; nodeTimeoutMs?: number } = {}): Promise<RedisClusterUnderTest> {
    const masters = opts.masters ?? 3;
    const replicas = opts.replicas ?? 1;
    const dir = mkdtempSync(join(tmpdir(), 'scribe-cluster-'));
    const nodes: ClusterNode[] = [];
    const cluster = new RedisClusterUnderTest(nodes, dir);
    try {
      for (let i = 0; i < masters * (1 + replicas); i++) {
        const port = await freePort();
        const nodeDir = join(dir, String(port));
        mkdirSync(nodeDir);
        // prettier-ignore
        const proc = spawn('redis-server', [
          '--port', String(port), '--bind', '127.0.0.1', '--dir', nodeDir,
          '--cluster-enabled', 'yes', '--cluster-config-file', 'nodes.conf',
          '--cluster-node-timeout', String(opts.nodeTimeoutMs ?? 2000),
          '--appendonly', 'yes', '--appendfsync', 'everysec', '--maxmemory-policy', 'noeviction',
          '--save', '', '--daemonize', 'no',
        ], { stdio: 'ignore' });
        nodes.push({ port, proc });
      }
      for (const n of nodes) await until(`node ${n.port} up`, async () => ((await cli(n.port, 'PING')).trim() === 'PONG' ? true : undefined));
      await exec('redis-cli', ['--cluster', 'create', ...nodes.map((n) => `127.0.0.1:${n.port}`), '--cluster-replicas', String(replicas), '--cluster-yes'], { timeout: 60_000 });
      for (const n of nodes) await until(`node ${n.port} cluster_state:ok`, async () => ((await cli(n.port, 'CLUSTER', 'INFO')).includes('cluster_state:ok') ? true : undefined));
      // Every replica attached and in sync, so a failover has one to promote.
      await until('replicas in sync', async () => {
        const view = await cluster.view();
        return view.filter((v) => v.role === 'slave' && v.linkUp).length === masters * replicas ? true : undefined;
      });
      return cluster;
    } catch (e) {
      await cluster.stop();
      throw e;
    }
  }

  /** REDIS_URL (one seed) and REDIS_CLUSTER_NODES (the other nodes) of this cluster. */
  get env(): { REDIS_URL: string; REDIS_CLUSTER_NODES: string } {
    const [first, ...rest] = this.alive();
    return { REDIS_URL: `redis://127.0.0.1:${first!.port}`, REDIS_CLUSTER_NODES: rest.map((n) => `127.0.0.1:${n.port}`).join(',') };
  }

  alive(): ClusterNode[] {
    return this.nodes.filter((n) => n.proc.exitCode === null && n.proc.signalCode === null);
  }

  /** CLUSTER NODES as seen by a live node: each node's port, role, whether its link is up, and its slot ranges. */
  async view(): Promise<Array<{ port: number; role: 'master' | 'slave'; linkUp: boolean; failed: boolean; slots: Array<[number, number]> }>> {
    const out = await cli(this.alive()[0]!.port, 'CLUSTER', 'NODES');
    return out
      .trim()
      .split('\n')
      .map((line) => {
        const f = line.split(' ');
        const flags = f[2]!.split(',');
        const slots = f.slice(8).filter((s) => /^\d/.test(s)).map((s) => {
          const [a, b] = s.split('-').map(Number);
          return [a!, b ?? a!] as [number, number];
        });
        return { port: Number(f[1]!.split('@')[0]!.split(':').pop()), role: flags.includes('master') ? 'master' : 'slave', linkUp: f[7] === 'connected', failed: flags.some((x) => x.startsWith('fail')), slots };
      });
  }

  /** The port of the live master serving `slot`. */
  async masterOf(slot: number): Promise<number | undefined> {
    const m = (await this.view()).find((v) => v.role === 'master' && !v.failed && v.slots.some(([a, b]) => slot >= a && slot <= b));
    return m?.port;
  }

  /** Keys on each live master (DBSIZE), by port. */
  async keysPerMaster(): Promise<Map<number, number>> {
    const out = new Map<number, number>();
    for (const v of await this.view()) if (v.role === 'master' && !v.failed && this.alive().some((n) => n.port === v.port)) out.set(v.port, Number((await cli(v.port, 'DBSIZE')).trim()));
    return out;
  }

  /**
   * kill -9 of the master serving `slot`; resolves when a replica has taken the slot over and the
   * cluster is ok again, with the old and new master ports and how long the failover took.
   */
  async failover(slot: number): Promise<{ from: number; to: number; ms: number }> {
    const from = await this.masterOf(slot);
    if (from === undefined) throw new Error(`no master serves slot ${slot}`);
    const node = this.nodes.find((n) => n.port === from)!;
    const t0 = Date.now();
    node.proc.kill('SIGKILL');
    await new Promise((r) => node.proc.once('exit', r));
    const to = await until(`a replica to take slot ${slot} over`, async () => {
      const m = await this.masterOf(slot);
      return m !== undefined && m !== from ? m : undefined;
    }, 60_000);
    for (const n of this.alive()) await until(`node ${n.port} cluster_state:ok`, async () => ((await cli(n.port, 'CLUSTER', 'INFO')).includes('cluster_state:ok') ? true : undefined), 60_000);
    return { from, to, ms: Date.now() - t0 };
  }

  async stop(): Promise<void> {
    for (const n of this.nodes) {
      if (n.proc.exitCode === null && n.proc.signalCode === null) {
        n.proc.kill('SIGKILL');
        await new Promise((r) => n.proc.once('exit', r));
      }
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}
