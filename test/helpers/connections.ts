/**
 * Count one process's Redis connections as the server sees them: the entries of `CLIENT LIST` whose
 * two ends are one of the process's own TCP sockets (read from /proc/<pid>).
 * Linux only (the CI and the dev machines); no name the code sets is needed.
 */
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import type { Redis } from 'ioredis';

/** The TCP sockets `pid` holds open (/proc/<pid>/fd → socket inode → /proc/<pid>/net/tcp*): local and remote ports. */
export function tcpSockets(pid: number): Array<{ local: number; remote: number }> {
  const inodes = new Set<string>();
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m) inodes.add(m[1]!);
    } catch {
      // the fd closed meanwhile
    }
  }
  const sockets: Array<{ local: number; remote: number }> = [];
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
      const port = (addr: string) => parseInt(addr.split(':').pop()!, 16);
      if (cols.length > 9 && inodes.has(cols[9]!)) sockets.push({ local: port(cols[1]!), remote: port(cols[2]!) });
    }
  }
  return sockets;
}

/** Local ports of the TCP sockets `pid` holds open. */
export function localTcpPorts(pid: number): Set<number> {
  return new Set(tcpSockets(pid).map((s) => s.local));
}

export interface ClientEntry {
  /** The client's address (ip:port). */
  addr: string;
  /** The server's address the client is connected to (ip:port). */
  laddr: string;
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
      return { addr: f.addr ?? '', laddr: f.laddr ?? '', name: f.name ?? '', cmd: f.cmd ?? '' };
    });
}

/**
 * The Redis server's clients that are connections of process `pid`: matched on both ends, the
 * client's port and the server's. Linux gives one local port to several connections when their
 * destinations differ, so a local port alone could match a socket of `pid` to another server (an
 * emulator, the S3 server) with another process's Redis connection.
 */
export async function connectionsOf(redis: Redis, pid: number): Promise<ClientEntry[]> {
  const sockets = new Set(tcpSockets(pid).map((s) => `${s.local}>${s.remote}`));
  const port = (addr: string) => addr.split(':').pop();
  return (await clientList(redis)).filter((c) => sockets.has(`${port(c.addr)}>${port(c.laddr)}`));
}
