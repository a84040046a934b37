/**
 * "Hosts" for fleet tests: each host a Linux network namespace of its own, joined to the test's own
 * bridge by a veth pair, on a private /24 of 10.231.0.0/16 the test creates and removes itself.
 * The shared servers listen on the bridge's address (`serviceHost`, e.g. 10.231.7.1): 127.0.0.1 of
 * the root namespace is not reachable from inside a namespace. A host is cut off the network by
 * taking its link down (`ip link set <root-side veth> down`) and joined again by bringing it up.
 *
 * Without the rights for `ip netns add` (not root, no CAP_NET_ADMIN), or with SCRIBE_NETNS=off, the
 * hosts are plain processes on 127.0.0.1 (`mode: 'processes'`), and a host is cut off by SIGSTOP of its
 * processes (SIGCONT joins it again): it holds its connections but neither renews nor answers.
 *
 * Names carry the test process's pid (namespaces `scribe-<pid>-h<i>`, links `sfb<pid>`,
 * `sfh<pid>-<i>`, `sfn<pid>-<i>`), and the /24 is one no interface or route of this machine uses, so
 * parallel runs do not clash. `close()` removes everything (also run at process exit, in case).
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { localTcpPorts } from './connections';

export type HostMode = 'netns' | 'processes';

export interface Host {
  readonly index: number;
  readonly name: string;
  /** The address its processes connect from (netns) or 127.0.0.1 (processes). */
  readonly address: string;
  /** Run a process as this host: `ip netns exec <ns>` (execs in place: same pid), or nothing. */
  readonly prefix: string[];
  /** The processes of this host (SIGSTOP'ed by `cut` in processes mode). */
  readonly pids: Set<number>;
  /** Whether it is cut off now. */
  readonly isCut: boolean;
  /** Cut it off the network: its link down (netns) or its processes stopped (processes). */
  cut(): void;
  /** Join it again: link up, or SIGCONT. */
  restore(): void;
}

export interface HostNetwork {
  readonly mode: HostMode;
  /** Why the namespaces were not used (processes mode). */
  readonly fallbackReason?: string;
  /** The address the shared servers listen on: the bridge's, or 127.0.0.1. */
  readonly serviceHost: string;
  readonly hosts: Host[];
  /**
   * The host a connection comes from, by its peer `address:port` as a server sees it: by the address
   * (netns), or by which host's process holds the local port (processes; /proc, so while it is open).
   */
  hostOfPeer(peer: string): Host | undefined;
  /** Remove namespaces and links (restoring stopped processes first). Idempotent. */
  close(): void;
}

const IP = ['/usr/sbin/ip', '/sbin/ip', '/usr/bin/ip', '/bin/ip'].find((p) => existsSync(p)) ?? 'ip';

function ip(...args: string[]): string {
  return execFileSync(IP, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

function quietly(fn: () => unknown): void {
  try {
    fn();
  } catch {
    // already gone
  }
}

/** A third octet of 10.231.X.0/24 that no address or route of this machine uses, starting from the pid. */
function freeSubnet(): number {
  const used = `${ip('-4', '-o', 'addr', 'show')}\n${ip('-4', 'route', 'show', 'table', 'all')}`;
  for (let i = 0; i < 250; i++) {
    const x = ((process.pid + i) % 250) + 1;
    if (!used.includes(`10.231.${x}.`)) return x;
  }
  throw new Error('no free /24 in 10.231.0.0/16');
}

class ProcessHost implements Host {
  readonly pids = new Set<number>();
  readonly address = '127.0.0.1';
  readonly prefix: string[] = [];
  isCut = false;
  constructor(
    readonly index: number,
    readonly name: string,
  ) {}
  cut(): void {
    for (const pid of this.pids) quietly(() => process.kill(pid, 'SIGSTOP'));
    this.isCut = true;
  }
  restore(): void {
    for (const pid of this.pids) quietly(() => process.kill(pid, 'SIGCONT'));
    this.isCut = false;
  }
}

class NamespaceHost implements Host {
  readonly pids = new Set<number>();
  readonly prefix: string[];
  isCut = false;
  constructor(
    readonly index: number,
    readonly name: string,
    readonly address: string,
    readonly ns: string,
    readonly rootVeth: string,
  ) {
    this.prefix = [IP, 'netns', 'exec', ns];
  }
  cut(): void {
    ip('link', 'set', this.rootVeth, 'down');
    this.isCut = true;
  }
  restore(): void {
    ip('link', 'set', this.rootVeth, 'up');
    this.isCut = false;
  }
}

/**
 * `n` hosts: namespaces if this process may create them (and SCRIBE_NETNS is not `off`), otherwise
 * processes on 127.0.0.1.
 */
export function createHosts(n: number): HostNetwork {
  const pid = process.pid;
  const bridge = `sfb${pid}`;
  const nsName = (i: number) => `scribe-${pid}-h${i}`;
  const created: string[] = [];
  let bridgeMade = false;
  const teardown = () => {
    for (const ns of created.splice(0)) quietly(() => ip('netns', 'del', ns));
    if (bridgeMade) quietly(() => ip('link', 'del', bridge));
    bridgeMade = false;
  };
  const processes = (why: string): HostNetwork => {
    teardown();
    const hosts = Array.from({ length: n }, (_, i) => new ProcessHost(i, `host-${i}`));
    return {
      mode: 'processes',
      fallbackReason: why,
      serviceHost: '127.0.0.1',
      hosts,
      hostOfPeer: (peer) => {
        const port = Number(peer.split(':').pop());
        return hosts.find((h) => [...h.pids].some((p) => localTcpPorts(p).has(port)));
      },
      close: () => hosts.forEach((h) => h.isCut && h.restore()),
    };
  };
  if (process.env.SCRIBE_NETNS === 'off') return processes('SCRIBE_NETNS=off');
  try {
    // A namespace left by an earlier run of the same pid (a crash) goes first.
    for (let i = 0; i < n; i++) quietly(() => ip('netns', 'del', nsName(i)));
    quietly(() => ip('link', 'del', bridge));
    ip('netns', 'add', nsName(0));
    created.push(nsName(0));
  } catch (e) {
    return processes(`ip netns add failed: ${((e as { stderr?: string }).stderr ?? (e as Error).message).trim()}`);
  }
  const onExit = () => teardown();
  process.once('exit', onExit);
  try {
    const x = freeSubnet();
    const serviceHost = `10.231.${x}.1`;
    ip('link', 'add', bridge, 'type', 'bridge');
    bridgeMade = true;
    ip('addr', 'add', `${serviceHost}/24`, 'dev', bridge);
    ip('link', 'set', bridge, 'up');
    const hosts: NamespaceHost[] = [];
    for (let i = 0; i < n; i++) {
      const ns = nsName(i);
      if (i > 0) {
        ip('netns', 'add', ns);
        created.push(ns);
      }
      const rootVeth = `sfh${pid}-${i}`;
      const nsVeth = `sfn${pid}-${i}`;
      const address = `10.231.${x}.${11 + i}`;
      ip('link', 'add', rootVeth, 'type', 'veth', 'peer', 'name', nsVeth);
      ip('link', 'set', nsVeth, 'netns', ns);
      ip('link', 'set', rootVeth, 'master', bridge);
      ip('link', 'set', rootVeth, 'up');
      ip('-n', ns, 'addr', 'add', `${address}/24`, 'dev', nsVeth);
      ip('-n', ns, 'link', 'set', nsVeth, 'up');
      ip('-n', ns, 'link', 'set', 'lo', 'up');
      hosts.push(new NamespaceHost(i, `host-${i}`, address, ns, rootVeth));
    }
    return {
      mode: 'netns',
      serviceHost,
      hosts,
      hostOfPeer: (peer) => {
        const address = peer.replace(/^::ffff:/, '').replace(/:\d+$/, '');
        return hosts.find((h) => h.address === address);
      },
      close: () => {
        process.off('exit', onExit);
        teardown();
      },
    };
  } catch (e) {
    process.off('exit', onExit);
    return processes(`network set-up failed: ${((e as { stderr?: string }).stderr ?? (e as Error).message).trim()}`);
  }
}
