/** Worker processes as real OS processes (the compiled worker), for fleet and chaos tests. */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';

const MAIN = join(__dirname, '..', '..', 'apps', 'worker', 'dist', 'main.js');

export interface WorkerProcess {
  child: ChildProcess;
  pid: number;
  output(): string;
  /** SIGKILL: a crash, no cleanup. */
  kill9(): Promise<void>;
  /** SIGTERM: graceful (hands streams back, finishes requests in flight); resolves with the exit code. */
  stop(): Promise<number | null>;
}

const running = new Set<ChildProcess>();
process.on('exit', () => {
  for (const c of running) c.kill('SIGKILL');
});

function exited(child: ChildProcess): Promise<void> {
  return child.exitCode !== null || child.signalCode !== null ? Promise.resolve() : new Promise((r) => child.once('exit', () => r()));
}

/**
 * Start `node apps/worker/dist/main.js` with `env` and wait for its ready line. `opts.prefix` runs it
 * through a command that execs its arguments in place (same pid), e.g. `['ip', 'netns', 'exec', ns]`
 * for a worker inside a network namespace.
 */
export async function startWorkerProcess(env: Record<string, string>, opts: { prefix?: string[] } = {}): Promise<WorkerProcess> {
  if (!existsSync(MAIN)) throw new Error(`${MAIN} is missing: build first (npm test runs the build in pretest)`);
  const [file, args] = opts.prefix?.length ? [opts.prefix[0]!, [...opts.prefix.slice(1), process.execPath, MAIN]] : [process.execPath, [MAIN]];
  const child = spawn(file, args, {
    env: { PATH: process.env.PATH ?? '', AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  running.add(child);
  child.once('exit', () => running.delete(child));
  let out = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (out = (out + d).slice(-20_000)));
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (out = (out + d).slice(-20_000)));
  await new Promise<void>((resolve, reject) => {
    const onData = () => {
      if (out.includes('[worker] pid')) {
        child.stdout!.off('data', onData);
        resolve();
      }
    };
    child.stdout!.on('data', onData);
    child.once('exit', (code) => reject(new Error(`worker exited with ${code} before it was ready:\n${out}`)));
  });
  return {
    child,
    pid: child.pid!,
    output: () => out,
    async kill9() {
      child.kill('SIGKILL');
      await exited(child);
    },
    async stop() {
      child.kill('SIGTERM');
      await exited(child);
      return child.exitCode;
    },
  };
}

/** The compiled `scribe` CLI. */
export const CLI_MAIN = join(__dirname, '..', '..', 'apps', 'producer', 'dist', 'cli.js');

/** `scribe <args>` (the compiled CLI) as a process with exactly `env`; killed after 60 s. */
export function runCli(args: string[], env: Record<string, string>): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI_MAIN, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout!.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}
