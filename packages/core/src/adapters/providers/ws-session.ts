/**
 * The former home of the streaming plumbing, kept so that existing imports keep working. Each part
 * now lives in `./shared/`, one module per concern:
 *
 * - `http-errors.ts`: HTTP status → typed error, Retry-After, the error of a cancelled session;
 * - `redact.ts`: keys out of error messages;
 * - `deferred.ts`: `Deferred`, `within`;
 * - `finalize-wait.ts`: finalize waits bounded by progress (`withinProgress`, `ProgressDeadline`, limits);
 * - `words.ts`: provider words as transcript words, results by index as segments;
 * - `ws-socket.ts`: `WsSession`, the one WebSocket wrapper;
 * - `stream-session.ts`: the streaming session lifecycle, and the `StreamProtocol` a client supplies.
 *
 * New code imports from `./shared/…` directly.
 */
export * from './shared/deferred';
export * from './shared/finalize-wait';
export * from './shared/http-errors';
export * from './shared/redact';
export * from './shared/stream-session';
export * from './shared/words';
export * from './shared/ws-socket';
