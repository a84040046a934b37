/** The emulator command (`npm run emulator -- <provider> …`, the compiled CLI) as a child process. */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

const ROOT = join(__dirname, '..', '..');
export const EMULATOR_CLI = join(ROOT, 'packages', 'emulators', 'dist', 'cli.js');

export interface EmulatorCli<R = Record<string, unknown>> {
  child: ChildProcessWithoutNullStreams;
  /** The parsed JSON ready line. */
  ready: R;
  /** Every stdout line so far. */
  lines: string[];
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** SIGTERM, then wait for the exit. */
  stop(): Promise<void>;
}

/** Spawn the CLI and resolve with its parsed ready line (rejects with its stderr if it exits first). */
export function startEmulatorCli<R = Record<string, unknown>>(args: string[]): Promise<EmulatorCli<R>> {
  if (!existsSync(EMULATOR_CLI)) throw new Error(`${EMULATOR_CLI} is missing: build first (npx tsc -b)`);
  const child = spawn(process.execPath, [EMULATOR_CLI, ...args], { cwd: ROOT, stdio: ['pipe', 'pipe', 'pipe'] });
  const lines: string[] = [];
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  return new Promise((resolve, reject) => {
    createInterface({ input: child.stdout }).on('line', (line) => {
      lines.push(line);
      if (!line.startsWith('{')) return;
      const ready = JSON.parse(line) as R & { ready?: boolean };
      if (ready.ready !== true) return;
      resolve({
        child,
        ready,
        lines,
        exited,
        stop: async () => {
          child.kill('SIGTERM');
          await exited;
        },
      });
    });
    void exited.then(({ code }) => reject(new Error(`CLI exited (${code}) before it was ready: ${stderr}`)));
  });
}

/** Run the CLI to its exit (argument errors, refusals). */
export async function runEmulatorCli(args: string[]): Promise<{ code: number | null; stderr: string }> {
  const child = spawn(process.execPath, [EMULATOR_CLI, ...args], { cwd: ROOT });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const code = await new Promise<number | null>((resolve) => child.once('exit', (c) => resolve(c)));
  return { code, stderr };
}
