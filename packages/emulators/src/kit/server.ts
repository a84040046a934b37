/**
 * The emulators' listening side: an HTTP or HTTPS server that tracks its sockets (so `close` ends
 * held-open requests and sessions too), the same with WebSocket upgrade routing, and raw HTTP refusals
 * written at an upgrade (a handshake the provider refuses never becomes a WebSocket).
 */
import { createServer as createHttpServer, STATUS_CODES, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';

/** A certificate and its private key (PEM), for serving https/wss. */
export interface TlsOptions {
  key: string | Buffer;
  cert: string | Buffer;
}

export interface HttpEmulatorServer {
  server: Server;
  port: number;
  /** http(s)://host:port */
  url: string;
  /** Every open client socket (TCP, and the TLS socket over it under https). */
  readonly sockets: ReadonlySet<Duplex>;
  /** Destroy every socket and stop listening. */
  close(): Promise<void>;
}

export interface HttpServerOptions {
  port?: number;
  /** Default 127.0.0.1. */
  host?: string;
  /** Serve https (and wss) with this certificate. */
  tls?: TlsOptions;
  onRequest: (req: IncomingMessage, res: ServerResponse) => void;
}

/** Listen on `host:port` (port 0 = any free one) over http, or https when `tls` is given. */
export async function startHttpServer(opts: HttpServerOptions): Promise<HttpEmulatorServer> {
  const server: Server = opts.tls ? createHttpsServer({ key: opts.tls.key, cert: opts.tls.cert }, opts.onRequest) : createHttpServer(opts.onRequest);
  const sockets = new Set<Duplex>();
  const track = (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  };
  server.on('connection', track);
  server.on('secureConnection', track);
  const host = opts.host ?? '127.0.0.1';
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, host, () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  return {
    server,
    port,
    url: `${opts.tls ? 'https' : 'http'}://${host}:${port}`,
    sockets,
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

export interface WsEmulatorServer {
  server: Server;
  wss: WebSocketServer;
  port: number;
  /** http(s)://<host>:port (127.0.0.1 when it listens on every interface) */
  url: string;
  close(): Promise<void>;
}

export interface WsServerOptions {
  port?: number;
  host?: string;
  tls?: TlsOptions;
  /** Plain HTTP requests (non-upgrade), e.g. AssemblyAI's `GET /v3/token`. Default: 404. */
  onRequest?: (req: IncomingMessage, res: ServerResponse) => void;
  /** Upgrade requests; the handler refuses (writing a raw HTTP response) or calls `accept`. */
  onUpgrade: (req: IncomingMessage, socket: Duplex, accept: () => Promise<WebSocket>) => void | Promise<void>;
}

/** The host part of a URL that reaches a server listening on `host`. */
function reachableHost(host: string | undefined): string {
  if (!host || host === '0.0.0.0' || host === '::') return '127.0.0.1';
  return host.includes(':') ? `[${host}]` : host;
}

export async function startWsServer(opts: WsServerOptions): Promise<WsEmulatorServer> {
  const onRequest = (req: IncomingMessage, res: ServerResponse) => {
    if (opts.onRequest) return opts.onRequest(req, res);
    res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ error: 'Not Found' }));
  };
  const wss = new WebSocketServer({ noServer: true, maxPayload: 16 * 1024 * 1024 });
  const http = await startHttpServer({
    onRequest,
    ...(opts.port !== undefined ? { port: opts.port } : {}),
    ...(opts.host !== undefined ? { host: opts.host } : {}),
    ...(opts.tls ? { tls: opts.tls } : {}),
  });
  http.server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on('error', () => {});
    // Rejects when the client went away first (e.g. it timed out during a slow-handshake fault).
    const accept = () =>
      new Promise<WebSocket>((resolve, reject) => {
        if (socket.destroyed || !socket.writable) return reject(new Error('client went away before the upgrade'));
        socket.once('close', () => reject(new Error('client went away before the upgrade')));
        wss.handleUpgrade(req, socket, head, (ws) => resolve(ws));
      });
    Promise.resolve(opts.onUpgrade(req, socket, accept)).catch(() => socket.destroy());
  });
  return {
    server: http.server,
    wss,
    port: http.port,
    // The address it listens on (a test's bridge, say), or loopback for a wildcard one.
    url: `${opts.tls ? 'https' : 'http'}://${reachableHost(opts.host)}:${http.port}`,
    async close() {
      for (const ws of wss.clients) ws.terminate();
      wss.close();
      await http.close();
    },
  };
}

const STATUS_TEXT: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  402: 'Payment Required',
  403: 'Forbidden',
  404: 'Not Found',
  429: 'Too Many Requests',
  500: 'Internal Server Error',
  503: 'Service Unavailable',
};

/** Answer an upgrade request with a plain HTTP response (the handshake fails, no WebSocket). */
export function refuseUpgrade(socket: Duplex, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  const lines = [
    `HTTP/1.1 ${status} ${STATUS_TEXT[status] ?? STATUS_CODES[status] ?? 'Error'}`,
    `Content-Type: ${typeof body === 'string' ? 'text/plain' : 'application/json'}`,
    `Content-Length: ${Buffer.byteLength(text)}`,
    'Connection: close',
    ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`),
  ];
  socket.end(`${lines.join('\r\n')}\r\n\r\n${text}`);
}
