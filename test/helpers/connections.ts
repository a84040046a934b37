/**
 * Count one process's Redis connections as the server sees them: the entries of `CLIENT LIST` whose
 * peer address is one of the process's own TCP sockets (its local ports, read from /proc/<pid>).
 * Linux only (the CI and the dev machines); no name the code sets is needed.
 */
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import type { Redis } from 'ioredis';

/** Local ports of the TCP sockets `pid` holds open (/proc/<pid>/fd → socket inode → /proc/<pid>/net/tcp*). */
export function localTcpPorts(pid: number): Set<number> {
  const inodes = new Set<string>();
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m) inodes.add(m[1]!);
    } catch {
      // the fd closed meanwhile
    }
  }
  const ports = new Set<number>();
  for (const table of ['tcp', 'tcp6']) {
    let text = '';
    try {
      text = readFileSync(`/proc/${pid}/net/${table}`, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const cols = line.trim().split(/\s+/);
      // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
      if (cols.length > 9 && inodes.has(cols[9]!)) ports.add(parseInt(cols[1]!.split(':').pop()!, 16));
    }
  }
  return ports;
}

export interface ClientEntry {
  addr: string;
  name: string;
  cmd: string;
}

/** `CLIENT LIST`, parsed (addr, name, last command). */
export async function clientList(redis: Redis): Promise<ClientEntry[]> {
  const text = (await redis.call('CLIENT', 'LIST')) as string;
  return text
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      const f = Object.fromEntries(line.split(' ').map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]));
      return { addr: f.addr ?? '', name: f.name ?? '', cmd: f.cmd ?? '' };
    });
}

/** The Redis server's clients that are connections of process `pid`. */
export async function connectionsOf(redis: Redis, pid: number): Promise<ClientEntry[]> {
  const ports = localTcpPorts(pid);
  return (await clientList(redis)).filter((c) => ports.has(Number(c.addr.split(':').pop())));
}
