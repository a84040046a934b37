/**
 * Real local services (Redis, an S3 server) run as child processes, for tests, the quickstart and
 * benchmarks. Nothing here ever touches a fixed port: every server gets a free port of its own.
 *
 * Children must not outlive the parent. Three layers make sure of that:
 *  - a process 'exit' handler SIGKILLs every child still running (covers normal exits, process.exit);
 *  - on Linux, children are started through `setpriv --pdeathsig KILL` (util-linux, always present on
 *    Debian), which execs the real binary (same pid) with PR_SET_PDEATHSIG set, so the kernel kills
 *    them even when the parent dies by a signal or SIGKILL, where no JS handler runs;
 *  - the s3rver launcher also exits when its stdin pipe from the parent closes.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';

export interface RedisServer {
  /** redis://<host>:<port> (host 127.0.0.1 unless started with another) */
  readonly url: string;
  readonly port: number;
  /** pid of the current redis-server process (changes on restart). */
  readonly pid: number;
  /** SIGTERM and wait for exit (Redis flushes its AOF). Idempotent. */
  stop(): Promise<void>;
  /** SIGKILL and wait for exit: a crash, for chaos tests. Idempotent. */
  kill(): Promise<void>;
  /** Start again on the same port and dir (stopping first if running), so AOF data survives. */
  restart(): Promise<void>;
}

export interface S3Coordinates {
  endpoint: string;
  accessKeyId: string;
  secretAccessKey: string;
  region: string;
}

export interface S3Server extends S3Coordinates {
  readonly port: number;
  readonly pid: number;
  stop(): Promise<void>;
  kill(): Promise<void>;
  /** Start again on the same port and dir; stored objects survive. */
  restart(): Promise<void>;
}

export interface Stack {
  redisUrl: string;
  s3: S3Coordinates;
  /** Set only when this stack started the server (not when REDIS_URL / S3_ENDPOINT was given). */
  redis?: RedisServer;
  s3Server?: S3Server;
  /** Stops the servers this stack started. Idempotent. */
  stop(): Promise<void>;
}

const LAUNCHER = path.resolve(__dirname, '..', 's3rver-launcher.js'); // same from src/ (jest) and dist/
const SETPRIV = '/usr/bin/setpriv';
const usePdeathsig = process.platform === 'linux' && fs.existsSync(SETPRIV);

// ---- child bookkeeping ----------------------------------------------------------------------------

const live = new Set<ChildProcess>();
let exitHookInstalled = false;

function track(child: ChildProcess): void {
  live.add(child);
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.on('exit', () => {
      for (const c of live) c.kill('SIGKILL');
    });
  }
}

/** One supervised child at a time (a server that can be stopped, killed and started again). */
class Supervised {
  private child: ChildProcess | undefined;
  private exited: Promise<void> = Promise.resolve();
  private running = false;
  private spawnError: Error | undefined;
  /** Tail of the child's stdout+stderr, for error messages. */
  output = '';

  constructor(private readonly name: string) {}

  get pid(): number {
    return this.child?.pid ?? -1;
  }

  start(cmd: string, args: string[], stdin: 'pipe' | 'ignore' = 'ignore'): void {
    if (this.running) throw new Error(`${this.name} is already running`);
    const [file, argv] = usePdeathsig ? [SETPRIV, ['--pdeathsig', 'KILL', '--', cmd, ...args]] : [cmd, args];
    const child = spawn(file, argv, { stdio: [stdin, 'pipe', 'pipe'] });
    this.child = child;
    this.running = true;
    this.output = '';
    this.spawnError = undefined;
    track(child);
    const append = (b: Buffer) => {
      this.output = (this.output + b.toString('utf8')).slice(-8192);
    };
    child.stdout!.on('data', append);
    child.stderr!.on('data', append);
    this.exited = new Promise<void>((resolve) => {
      const done = () => {
        this.running = false;
        live.delete(child);
        resolve();
      };
      child.once('exit', done);
      // Spawn failures (ENOENT) emit 'error' and may never emit 'exit'.
      child.once('error', (err) => {
        this.spawnError = err;
        done();
      });
    });
  }

  /** Polls `ready` until it returns true; fails if the child exits first or time runs out. */
  async waitReady(ready: () => Promise<boolean>, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (!this.running) {
        await new Promise((r) => setTimeout(r, 100)); // let the last stdout/stderr chunks arrive
        const why = this.spawnError ? this.spawnError.message : `exited with code ${this.child?.exitCode}`;
        throw new Error(`${this.name} failed to start (${why}):\n${this.output.trim()}`);
      }
      if (await ready().catch(() => false)) return;
      if (Date.now() > deadline) {
        await this.signal('SIGKILL');
        throw new Error(`${this.name} not ready after ${timeoutMs} ms:\n${this.output.trim()}`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** Sends `sig` (escalating to SIGKILL after graceMs) and waits for exit. No-op when not running. */
  async signal(sig: NodeJS.Signals, graceMs = 10_000): Promise<void> {
    const child = this.child;
    if (!child || !this.running) return this.exited;
    child.kill(sig);
    const escalate = sig === 'SIGKILL' ? undefined : setTimeout(() => child.kill('SIGKILL'), graceMs);
    await this.exited;
    if (escalate) clearTimeout(escalate);
  }
}

/** Runs `start(port)` on the given port, or on a free one of `host`, retrying if the port got taken meanwhile. */
async function onPort<T>(fixed: number | undefined, start: (port: number) => Promise<T>, host = '127.0.0.1'): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await start(fixed ?? (await freePort(host)));
    } catch (err) {
      const inUse = /in use|EADDRINUSE/i.test(String(err));
      if (fixed !== undefined || !inUse || attempt >= 3) throw err;
    }
  }
}

// ---- public API -----------------------------------------------------------------------------------

/** A TCP port free on `host` (default 127.0.0.1) right now (another process could still take it before we bind). */
export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, host, () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

/** Sends raw `INFO` and resolves with the reply text (error replies included). */
function redisInfo(host: string, port: number, timeoutMs = 1000): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ host, port });
    let buf = Buffer.alloc(0);
    const timer = setTimeout(() => finish(new Error('timeout')), timeoutMs);
    function finish(err?: Error): void {
      clearTimeout(timer);
      sock.destroy();
      if (err) reject(err);
      else resolve(buf.toString('utf8'));
    }
    sock.on('connect', () => sock.write('INFO\r\n'));
    sock.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      const head = buf.indexOf('\r\n');
      if (head < 0) return;
      if (buf[0] !== 0x24 /* $ */) return finish(); // -ERR / -LOADING ...
      const len = Number(buf.subarray(1, head).toString());
      if (buf.length >= head + 2 + len + 2) finish();
    });
    sock.on('error', finish);
    sock.on('close', () => finish(new Error('connection closed')));
  });
}

class LocalRedis implements RedisServer {
  private readonly proc = new Supervised('redis-server');

  constructor(
    readonly port: number,
    private readonly dir: string,
    private readonly host: string,
  ) {}

  get url(): string {
    return `redis://${this.host}:${this.port}`;
  }

  get pid(): number {
    return this.proc.pid;
  }

  async restart(): Promise<void> {
    await this.stop();
    // prettier-ignore
    this.proc.start('redis-server', [
      '--port', String(this.port), '--bind', this.host, '--dir', this.dir,
      '--appendonly', 'yes', '--appendfsync', 'everysec', '--maxmemory-policy', 'noeviction',
      '--save', '', '--daemonize', 'no',
      // Protected mode refuses every client not on loopback: a server on another address (a test's
      // own bridge, for clients in network namespaces) is meant for those clients.
      ...(this.host === '127.0.0.1' ? [] : ['--protected-mode', 'no']),
    ]);
    // Ready = *our* process answers (a PING could be answered by another Redis already on the port
    // if ours failed to bind) and it has finished loading the AOF (INFO is served while loading).
    await this.proc.waitReady(async () => {
      const info = await redisInfo(this.host, this.port);
      return info.includes(`process_id:${this.proc.pid}\r\n`) && info.includes('loading:0\r\n');
    }, 30_000);
  }

  stop(): Promise<void> {
    return this.proc.signal('SIGTERM');
  }

  kill(): Promise<void> {
    return this.proc.signal('SIGKILL');
  }
}

/**
 * Starts `redis-server` with AOF persistence in `dir` on a free (or the given) port of `host` (the
 * one address it binds; default 127.0.0.1, e.g. a bridge address for clients in network namespaces).
 */
export async function startRedis(opts: { dir: string; port?: number; host?: string }): Promise<RedisServer> {
  fs.mkdirSync(opts.dir, { recursive: true });
  const host = opts.host ?? '127.0.0.1';
  return onPort(
    opts.port,
    async (port) => {
      const redis = new LocalRedis(port, opts.dir, host);
      await redis.restart();
      return redis;
    },
    host,
  );
}

class LocalS3 implements S3Server {
  readonly accessKeyId = 'S3RVER'; // s3rver's built-in dummy account
  readonly secretAccessKey = 'S3RVER';
  readonly region = 'us-east-1';
  private readonly proc = new Supervised('s3rver');

  constructor(
    readonly port: number,
    private readonly dir: string,
    private readonly buckets: string[],
    private readonly host: string,
  ) {}

  get endpoint(): string {
    return `http://${this.host}:${this.port}`;
  }

  get pid(): number {
    return this.proc.pid;
  }

  async restart(): Promise<void> {
    await this.stop();
    const config = { port: this.port, address: this.host, directory: this.dir, buckets: this.buckets, watchStdin: true };
    // --openssl-legacy-provider: see s3rver-launcher.js (DES continuation tokens).
    this.proc.start(process.execPath, ['--openssl-legacy-provider', LAUNCHER, JSON.stringify(config)], 'pipe');
    await this.proc.waitReady(async () => this.proc.output.includes('S3RVER_READY'), 30_000);
  }

  stop(): Promise<void> {
    return this.proc.signal('SIGTERM');
  }

  kill(): Promise<void> {
    return this.proc.signal('SIGKILL');
  }
}

/** Starts s3rver (in a child node process) storing objects under `dir`, listening on `host` (default 127.0.0.1); creates `buckets` up front. */
export async function startS3(opts: { dir: string; port?: number; buckets?: string[]; host?: string }): Promise<S3Server> {
  fs.mkdirSync(opts.dir, { recursive: true });
  const host = opts.host ?? '127.0.0.1';
  return onPort(
    opts.port,
    async (port) => {
      const s3 = new LocalS3(port, opts.dir, opts.buckets ?? [], host);
      await s3.restart();
      return s3;
    },
    host,
  );
}

/**
 * Redis + S3 for the quickstart and benchmarks: uses REDIS_URL / S3_ENDPOINT (with S3_ACCESS_KEY_ID,
 * S3_SECRET_ACCESS_KEY, S3_REGION) when set, otherwise starts private servers under `dir`.
 */
export async function startStack(opts: { dir: string; buckets?: string[] }): Promise<Stack> {
  const env = process.env;
  const redis = env.REDIS_URL ? undefined : await startRedis({ dir: path.join(opts.dir, 'redis') });
  let s3Server: S3Server | undefined;
  try {
    if (!env.S3_ENDPOINT) s3Server = await startS3({ dir: path.join(opts.dir, 's3'), buckets: opts.buckets ?? [] });
  } catch (err) {
    await redis?.stop();
    throw err;
  }
  const s3: S3Coordinates = s3Server
    ? { endpoint: s3Server.endpoint, accessKeyId: s3Server.accessKeyId, secretAccessKey: s3Server.secretAccessKey, region: s3Server.region }
    : {
        endpoint: env.S3_ENDPOINT!,
        accessKeyId: env.S3_ACCESS_KEY_ID ?? 'S3RVER',
        secretAccessKey: env.S3_SECRET_ACCESS_KEY ?? 'S3RVER',
        region: env.S3_REGION ?? 'us-east-1',
      };
  let stopping: Promise<void> | undefined;
  const stack: Stack = {
    redisUrl: redis ? redis.url : env.REDIS_URL!,
    s3,
    stop: () => (stopping ??= Promise.all([redis?.stop(), s3Server?.stop()]).then(() => undefined)),
  };
  if (redis) stack.redis = redis;
  if (s3Server) stack.s3Server = s3Server;
  return stack;
}
