#!/usr/bin/env node
/**
 * Start one provider emulator from the command line:
 *
 *   npm run emulator -- <deepgram|assemblyai|fireworks|openai> [--port N] [--key K]... [--cap N] [--lenient]
 *                       [--service-time-ms N] [--retry-after S] [--fault SPEC]... [--mode M]
 *                       [--recognisers N] [--tls | --cert FILE --cert-key FILE]
 *
 * Prints a human line, then one JSON line `{"ready":true,"provider":…,"url":…}` (scripts wait for it;
 * it also has `wsUrl` for the streaming emulators, `baseUrl`/`endpoint` for openai, and `cert` under
 * TLS), and runs until SIGINT/SIGTERM, when it closes the emulator and exits 0.
 *   --port N             listen port (default 0 = a free port, reported in the ready line)
 *   --key K              an accepted API key (repeatable; default `test-key`)
 *   --cap N              per-key concurrency cap (Deepgram: per project and pool; 0 refuses everything)
 *   --recognisers N      recognitions the emulator runs at once (its own hardware, not an account's cap;
 *                        default 3 per core): past it batch requests queue, streams are refused as the
 *                        provider refuses at capacity
 *   --tls                serve https/wss on a self-signed certificate for 127.0.0.1 and localhost, made
 *                        at start with the `openssl` binary in a fresh temp dir (removed at exit); its
 *                        path is printed and is `cert` in the ready line (a client trusts it as its CA)
 *   --cert FILE --cert-key FILE
 *                        serve https/wss with this PEM certificate and private key (both or neither;
 *                        `--key` is taken by the API keys); `cert` in the ready line is FILE
 *   --lenient            switch the strict protocol rules off (auth stays on)
 *   --mode M             openai only: openai | whisper.cpp | speaches
 *   --service-time-ms N  batch (Deepgram pre-recorded, OpenAI): no recognition, each request is held
 *                        N ms after its upload and answered with an empty transcript (benchmark mode);
 *                        streams: the answer to the end of stream (Deepgram CloseStream, AssemblyAI
 *                        Terminate, Fireworks final checkpoint/trace) comes N ms later
 *   --retry-after S      Retry-After seconds on 429s (Deepgram, OpenAI, Fireworks; default 1 on
 *                        429-storm answers; Deepgram's cap 429 has none unless set)
 *   --fault SPEC         a scripted fault (repeatable; kept in order, each request/session is hit by
 *                        the first one with hits left that applies; `:N` = the next N, default all):
 *       429-storm[:N]          the provider's rate-limit answer: REST 429 + Retry-After, Deepgram /
 *                              Fireworks handshake HTTP 429, AssemblyAI close 1008 "Too many concurrent sessions"
 *       5xx[=STATUS][:N]       REST / handshake HTTP STATUS (default 503); AssemblyAI: close 3005
 *                              "Session Cancelled: An error occurred" (with =STATUS: HTTP STATUS at the upgrade)
 *       never-answer[:N]       accept the request/session, never answer (REST: body read, nothing sent;
 *                              WS: audio accepted, no results, no finalize, no close)
 *       drop-after=SECONDS[:N] destroy the TCP socket SECONDS after the request/session started, no close
 *                              frame (REST: nothing is answered before; streams: a normal session until then)
 *       early=STATUS[:N]       REST only (deepgram, openai), STATUS 401|402|413|429|500|503: answer before
 *                              reading the body, then close the connection (the upload is cut off)
 *
 * Faults hit requests/sessions that passed authentication and parameter checks (the provider's own
 * answers to bad keys stay as they are); a refused-by-the-cap request gives its hit back. The emulator's own port also serves a control API
 * (only on the emulators — no real provider has it; no auth, 127.0.0.1):
 *   GET    /_emulator/faults   the faults in force (spec, remaining, applied)
 *   POST   /_emulator/faults   {"faults": ["429-storm:20"]} replaces them ({"append": true} appends); 400 on a bad spec
 *   DELETE /_emulator/faults   every fault off
 *   GET    /_emulator/stats    {"provider", "keys": {key: {inFlight, maxInFlight, sessions, refused, cap}}, "faults", "applied"}
 *   DELETE /_emulator/stats    reset maxInFlight / sessions / refused
 * e.g. `curl -XPOST localhost:PORT/_emulator/faults -d '{"faults":["5xx:3","drop-after=2:1"]}'`.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Argument, Command, InvalidArgumentError, Option } from 'commander';
import { startAssemblyAIEmulator } from './assemblyai';
import { CONTROL_PREFIX, FaultPlan, FaultSpecError, parseFaultSpec, type EmulatorHandle, type FaultEndpoint, type FaultSpec } from './kit';
import { startDeepgramEmulator } from './deepgram';
import { startFireworksEmulator } from './fireworks';
import type { TlsOptions } from './kit/server';
import { selfSignedCertificate } from './kit/tls';
import { startOpenAIEmulator, type OpenAIEmulatorMode } from './openai';

export const EMULATORS = ['deepgram', 'assemblyai', 'fireworks', 'openai'] as const;
export type EmulatorName = (typeof EMULATORS)[number];

export interface CliOptions {
  port: number;
  keys: string[];
  cap?: number;
  lenient: boolean;
  mode?: OpenAIEmulatorMode;
  /** Scripted faults (`--fault` specs, parsed or not). */
  faults?: ReadonlyArray<string | FaultSpec>;
  /** `--service-time-ms`. */
  serviceTimeMs?: number;
  /** `--retry-after`. */
  retryAfterSeconds?: number;
  /** `--recognisers`: the emulator's recogniser count. */
  recognisers?: number;
  /** `--tls` / `--cert` + `--cert-key`: serve https/wss. */
  tls?: TlsOptions;
}

/** What each emulator serves, for checking fault specs (`early=` needs REST). */
export const EMULATOR_ENDPOINTS: Record<EmulatorName, readonly FaultEndpoint[]> = {
  deepgram: ['rest', 'ws'],
  assemblyai: ['ws'],
  fireworks: ['ws'],
  openai: ['rest'],
};

/** Map the common CLI options onto each emulator's own option names. */
export async function startEmulator(name: EmulatorName, o: CliOptions): Promise<EmulatorHandle & { wsUrl?: string; baseUrl?: string; endpoint?: string }> {
  // Refuse a spec this emulator cannot honour before anything listens.
  const faultSpecs = new FaultPlan(EMULATOR_ENDPOINTS[name]).validate(o.faults ?? []);
  const common = {
    ...(faultSpecs.length ? { faultSpecs } : {}),
    ...(o.serviceTimeMs !== undefined ? { serviceTimeMs: o.serviceTimeMs } : {}),
  };
  const retryAfter = o.retryAfterSeconds !== undefined ? { retryAfterSeconds: o.retryAfterSeconds } : {};
  // Every emulator takes `recognisers` and `tls`.
  const served = {
    ...(o.recognisers !== undefined ? { recognisers: o.recognisers } : {}),
    ...(o.tls ? { tls: o.tls } : {}),
  };
  switch (name) {
    case 'deepgram':
      return startDeepgramEmulator({
        port: o.port,
        // Each key is its own project.
        keys: Object.fromEntries(o.keys.map((k, i) => [k, `project-${i + 1}`])),
        ...(o.cap !== undefined ? { caps: { prerecorded: o.cap, whisper: o.cap, live: o.cap } } : {}),
        ...(o.lenient ? { strictUtteranceEnd: false, strictPacing: false } : {}),
        ...common,
        ...retryAfter,
        ...served,
      });
    case 'assemblyai':
      return startAssemblyAIEmulator({
        apiKeys: o.keys,
        port: o.port,
        ...(o.cap !== undefined ? { maxConcurrentPerKey: o.cap } : {}),
        ...(o.lenient ? { strictFrameDuration: false, strictRate: false, requireSpeechModel: false } : {}),
        ...common,
        ...served,
      });
    case 'fireworks':
      return startFireworksEmulator({
        apiKeys: o.keys,
        port: o.port,
        ...(o.cap !== undefined ? { maxConcurrentPerKey: o.cap } : {}),
        ...(o.lenient ? { strictFrames: false, strictPacing: false } : {}),
        ...common,
        ...retryAfter,
        ...served,
      });
    case 'openai':
      return startOpenAIEmulator({
        port: o.port,
        keys: o.keys,
        ...(o.mode ? { mode: o.mode } : {}),
        ...(o.cap !== undefined ? { defaultCap: o.cap } : {}),
        ...(o.lenient ? { rules: { requireModel: false, checkExtension: false, enforceSizeLimit: false, checkModelFormats: false } } : {}),
        ...common,
        ...retryAfter,
        ...served,
      });
  }
}

function integer(min: number) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < min) throw new InvalidArgumentError(`expected an integer >= ${min}`);
    return n;
  };
}

/** The certificate an emulator serves, where it is, and the temp dir to remove at exit (generated only). */
interface CliTls {
  tls: TlsOptions;
  certPath: string;
  tempDir?: string;
}

/**
 * `--tls`: a fresh self-signed certificate in a new temp dir; `--cert`/`--cert-key`: those files.
 * Undefined when neither was asked for. Throws (with the reason) when a file cannot be read or openssl fails.
 */
async function cliTls(o: { tls?: boolean; cert?: string; certKey?: string }): Promise<CliTls | undefined> {
  if (o.cert !== undefined && o.certKey !== undefined) {
    const certPath = resolve(o.cert);
    const read = (file: string, what: string) =>
      readFile(file).catch((e: NodeJS.ErrnoException) => {
        throw new Error(`cannot read the TLS ${what} ${file}: ${e.code ?? e.message}`);
      });
    return { tls: { cert: await read(certPath, 'certificate'), key: await read(resolve(o.certKey), 'key') }, certPath };
  }
  if (!o.tls) return undefined;
  const tempDir = await mkdtemp(join(tmpdir(), 'scribe-emulator-tls-'));
  try {
    const made = await selfSignedCertificate(tempDir);
    return { tls: { cert: made.cert, key: made.key }, certPath: made.certPath, tempDir };
  } catch (e) {
    await rm(tempDir, { recursive: true, force: true });
    throw e;
  }
}

export async function main(argv: string[] = process.argv): Promise<void> {
  const program = new Command()
    .name('scribe-emulator')
    .description('Start one provider emulator (real transcripts from the local recogniser).')
    .addArgument(new Argument('<provider>', 'which emulator').choices(EMULATORS))
    .option('--port <n>', 'listen port (0 = any free port)', integer(0), 0)
    .addOption(
      new Option('--key <key>', 'an accepted API key (repeatable)')
        .argParser((v: string, acc: string[]) => [...acc, v])
        .default([] as string[], 'test-key'),
    )
    .option('--cap <n>', 'per-key concurrency cap (0 refuses everything)', integer(0))
    .option('--lenient', 'switch the strict protocol rules off', false)
    .addOption(new Option('--mode <mode>', 'openai emulator variant').choices(['openai', 'whisper.cpp', 'speaches']))
    .option('--service-time-ms <n>', 'batch: hold each request N ms, empty transcript (no recognition); streams: delay the end-of-stream answer', integer(0))
    .option('--retry-after <s>', 'Retry-After seconds on 429 answers', integer(0))
    .option('--recognisers <n>', 'recognitions run at once (default 3 per core); past it batch requests queue, streams are refused', integer(1))
    .option('--tls', 'serve https/wss on a self-signed certificate made at start (path printed, `cert` in the ready line)', false)
    .option('--cert <file>', 'serve https/wss with this PEM certificate (with --cert-key)')
    .option('--cert-key <file>', 'the PEM private key of --cert')
    .addOption(
      new Option('--fault <spec>', 'a scripted fault (repeatable): 429-storm[:N] | 5xx[=STATUS][:N] | never-answer[:N] | drop-after=SECONDS[:N] | early=STATUS[:N]')
        .argParser((v: string, acc: FaultSpec[]) => {
          try {
            return [...acc, parseFaultSpec(v)];
          } catch (e) {
            throw new InvalidArgumentError((e as Error).message);
          }
        })
        .default([] as FaultSpec[], 'none'),
    )
    .addHelpText('after', `\nControl API on the emulator's port (emulators only): GET|POST|DELETE ${CONTROL_PREFIX}faults, GET|DELETE ${CONTROL_PREFIX}stats`)
    .showHelpAfterError();
  program.parse(argv);
  const name = program.args[0] as EmulatorName;
  const raw = program.opts<{
    port: number;
    key: string[];
    cap?: number;
    lenient: boolean;
    mode?: OpenAIEmulatorMode;
    serviceTimeMs?: number;
    retryAfter?: number;
    recognisers?: number;
    tls: boolean;
    cert?: string;
    certKey?: string;
    fault: FaultSpec[];
  }>();
  if (raw.mode && name !== 'openai') program.error('--mode applies to the openai emulator only');
  if ((raw.cert === undefined) !== (raw.certKey === undefined)) program.error('error: --cert and --cert-key go together (the certificate and its private key)');
  const opts: CliOptions = { port: raw.port, keys: raw.key.length ? raw.key : ['test-key'], lenient: raw.lenient, faults: raw.fault };
  if (raw.cap !== undefined) opts.cap = raw.cap;
  if (raw.mode) opts.mode = raw.mode;
  if (raw.serviceTimeMs !== undefined) opts.serviceTimeMs = raw.serviceTimeMs;
  if (raw.retryAfter !== undefined) opts.retryAfterSeconds = raw.retryAfter;
  if (raw.recognisers !== undefined) opts.recognisers = raw.recognisers;
  try {
    new FaultPlan(EMULATOR_ENDPOINTS[name]).validate(raw.fault);
  } catch (e) {
    if (e instanceof FaultSpecError) program.error(`error: ${e.message}`);
    throw e;
  }

  const tls = await cliTls(raw);
  const removeTemp = () => (tls?.tempDir ? rm(tls.tempDir, { recursive: true, force: true }) : Promise.resolve());
  if (tls) opts.tls = tls.tls;
  let handle: Awaited<ReturnType<typeof startEmulator>>;
  try {
    handle = await startEmulator(name, opts);
  } catch (e) {
    await removeTemp();
    throw e;
  }
  const ready: Record<string, unknown> = { ready: true, provider: name, url: handle.url, port: handle.port };
  if (handle.wsUrl) ready.wsUrl = handle.wsUrl;
  if (handle.baseUrl) ready.baseUrl = handle.baseUrl;
  if (handle.endpoint) ready.endpoint = handle.endpoint;
  if (tls) ready.cert = tls.certPath;
  const notes = [
    `${opts.keys.length} key(s)`,
    ...(opts.lenient ? ['lenient'] : []),
    ...(opts.recognisers !== undefined ? [`${opts.recognisers} recogniser(s)`] : []),
    ...(opts.serviceTimeMs !== undefined ? [`service time ${opts.serviceTimeMs} ms`] : []),
    ...(raw.fault.length ? [`faults: ${raw.fault.map((f) => f.spec).join(' ')}`] : []),
    ...(tls ? [`TLS certificate ${tls.certPath}${tls.tempDir ? ' (self-signed, 127.0.0.1 and localhost)' : ''}`] : []),
  ];
  console.log(`${name} emulator listening on ${handle.url}${handle.wsUrl ? ` and ${handle.wsUrl}` : ''} (${notes.join(', ')}); control: ${handle.url}${CONTROL_PREFIX}{faults,stats}`);
  console.log(JSON.stringify(ready));

  let closing = false;
  const stop = (signal: NodeJS.Signals) => {
    if (closing) return;
    closing = true;
    console.log(`${signal}: closing the ${name} emulator`);
    handle
      .close()
      .then(removeTemp)
      .then(
        () => process.exit(0),
        (e: unknown) => {
          console.error(`close failed: ${(e as Error).message}`);
          process.exit(1);
        },
      );
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

if (require.main === module) {
  main().catch((e: unknown) => {
    console.error((e as Error).message);
    process.exit(1);
  });
}
