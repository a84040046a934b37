#!/usr/bin/env node
/**
 * Start one provider emulator from the command line:
 *
 *   npm run emulator -- <deepgram|assemblyai|fireworks|openai> [--port N] [--key K]... [--cap N] [--lenient]
 *
 * Prints a human line, then one JSON line `{"ready":true,"provider":…,"url":…}` (scripts wait for it),
 * and runs until SIGINT/SIGTERM, when it closes the emulator and exits 0.
 *   --port N     listen port (default 0 = a free port, reported in the ready line)
 *   --key K      an accepted API key (repeatable; default `test-key`)
 *   --cap N      per-key concurrency cap (Deepgram: per project and pool)
 *   --lenient    switch the strict protocol rules off (auth stays on)
 *   --mode M     openai only: openai | whisper.cpp | speaches
 */
import { Argument, Command, InvalidArgumentError, Option } from 'commander';
import { startAssemblyAIEmulator } from './assemblyai';
import type { EmulatorHandle } from './common';
import { startDeepgramEmulator } from './deepgram';
import { startFireworksEmulator } from './fireworks';
import { startOpenAIEmulator, type OpenAIEmulatorMode } from './openai';

export const EMULATORS = ['deepgram', 'assemblyai', 'fireworks', 'openai'] as const;
export type EmulatorName = (typeof EMULATORS)[number];

export interface CliOptions {
  port: number;
  keys: string[];
  cap?: number;
  lenient: boolean;
  mode?: OpenAIEmulatorMode;
}

/** Map the common CLI options onto each emulator's own option names. */
export async function startEmulator(name: EmulatorName, o: CliOptions): Promise<EmulatorHandle & { wsUrl?: string; baseUrl?: string; endpoint?: string }> {
  switch (name) {
    case 'deepgram':
      return startDeepgramEmulator({
        port: o.port,
        // Each key is its own project.
        keys: Object.fromEntries(o.keys.map((k, i) => [k, `project-${i + 1}`])),
        ...(o.cap !== undefined ? { caps: { prerecorded: o.cap, whisper: o.cap, live: o.cap } } : {}),
        ...(o.lenient ? { strictUtteranceEnd: false, strictPacing: false } : {}),
      });
    case 'assemblyai':
      return startAssemblyAIEmulator({
        apiKeys: o.keys,
        port: o.port,
        ...(o.cap !== undefined ? { maxConcurrentPerKey: o.cap } : {}),
        ...(o.lenient ? { strictFrameDuration: false, strictRate: false, requireSpeechModel: false } : {}),
      });
    case 'fireworks':
      return startFireworksEmulator({
        apiKeys: o.keys,
        port: o.port,
        ...(o.cap !== undefined ? { maxConcurrentPerKey: o.cap } : {}),
        ...(o.lenient ? { strictFrames: false, strictPacing: false } : {}),
      });
    case 'openai':
      return startOpenAIEmulator({
        port: o.port,
        keys: o.keys,
        ...(o.mode ? { mode: o.mode } : {}),
        ...(o.cap !== undefined ? { defaultCap: o.cap } : {}),
        ...(o.lenient ? { rules: { requireModel: false, checkExtension: false, enforceSizeLimit: false, checkModelFormats: false } } : {}),
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
    .option('--cap <n>', 'per-key concurrency cap', integer(1))
    .option('--lenient', 'switch the strict protocol rules off', false)
    .addOption(new Option('--mode <mode>', 'openai emulator variant').choices(['openai', 'whisper.cpp', 'speaches']))
    .showHelpAfterError();
  program.parse(argv);
  const name = program.args[0] as EmulatorName;
  const raw = program.opts<{ port: number; key: string[]; cap?: number; lenient: boolean; mode?: OpenAIEmulatorMode }>();
  if (raw.mode && name !== 'openai') program.error('--mode applies to the openai emulator only');
  const opts: CliOptions = { port: raw.port, keys: raw.key.length ? raw.key : ['test-key'], lenient: raw.lenient };
  if (raw.cap !== undefined) opts.cap = raw.cap;
  if (raw.mode) opts.mode = raw.mode;

  const handle = await startEmulator(name, opts);
  const ready: Record<string, unknown> = { ready: true, provider: name, url: handle.url, port: handle.port };
  if (handle.wsUrl) ready.wsUrl = handle.wsUrl;
  if (handle.baseUrl) ready.baseUrl = handle.baseUrl;
  if (handle.endpoint) ready.endpoint = handle.endpoint;
  console.log(`${name} emulator listening on ${handle.url}${handle.wsUrl ? ` and ${handle.wsUrl}` : ''} (${opts.keys.length} key(s)${opts.lenient ? ', lenient' : ''})`);
  console.log(JSON.stringify(ready));

  let closing = false;
  const stop = (signal: NodeJS.Signals) => {
    if (closing) return;
    closing = true;
    console.log(`${signal}: closing the ${name} emulator`);
    handle.close().then(
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
