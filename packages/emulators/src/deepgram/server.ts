/**
 * `startDeepgramEmulator`: the pre-recorded REST endpoint and the live WebSocket endpoint on one
 * HTTP(S) server, with the handle tests and benchmarks drive it through.
 */
import type { IncomingMessage } from 'node:http';
import { startWsServer } from '../kit';
import { onLiveUpgrade } from './live/handshake';
import type { DeepgramEmulatorHandle, DeepgramEmulatorOptions } from './options';
import { onRestRequest } from './rest';
import { DeepgramState, waitFor } from './state';

export async function startDeepgramEmulator(opts: DeepgramEmulatorOptions = {}): Promise<DeepgramEmulatorHandle> {
  const st: DeepgramState = new DeepgramState(opts, () => handle.faults);
  const handle: DeepgramEmulatorHandle = {
    name: 'deepgram',
    url: '',
    wsUrl: '',
    port: 0,
    concurrency: st.concurrency,
    frames: st.frames,
    options: st.options,
    recognisers: st.recognisers,
    faults: opts.faults ?? {},
    faultPlan: st.faultPlan,
    requests: st.requests,
    sessions: st.sessions,
    events: st.events,
    waitForRequest: (pred, timeoutMs = 30_000) => waitFor(st.events, 'request', st.requests, (r) => r.status !== undefined && pred(r), timeoutMs),
    waitForSession: (pred, timeoutMs = 30_000) => waitFor(st.events, 'session', st.sessions, (s) => s.done && pred(s), timeoutMs),
    close: async () => undefined,
  };

  const srv = await startWsServer({
    port: opts.port ?? 0,
    host: opts.host ?? '127.0.0.1',
    ...(opts.tls ? { tls: opts.tls } : {}),
    onRequest: (req, res) => onRestRequest(st, req, res),
    onUpgrade: (req, socket, accept) => onLiveUpgrade(st, req, socket, accept),
  });
  // Uploads of up to 2 GB may take long: no server-side request timeout (§1.5 has the processing cap).
  srv.server.requestTimeout = 0;
  // §2.1: the 101 carries dg-request-id.
  srv.wss.on('headers', (headers: string[], req: IncomingMessage) => {
    const id = st.upgradeIds.get(req);
    if (id) headers.push(`dg-request-id: ${id}`);
  });

  Object.assign(handle, {
    url: srv.url,
    wsUrl: srv.url.replace(/^http/, 'ws'),
    port: srv.port,
    close: async () => {
      for (const s of st.live) s.kill();
      for (const h of st.held) h.destroy();
      await srv.close();
    },
  });
  return handle;
}
