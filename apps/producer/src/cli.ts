#!/usr/bin/env node
// First: OpenTelemetry must hook http/ioredis/aws-sdk before they load (CommonJS keeps this order).
import { shutdownTelemetry } from './instrumentation';
import { Command, Option } from 'commander';
import { ConfigError, loadConfig, ScribeError, StorageUnavailableError, type Config } from '@scribe-fleet/core';
import { envWithSecrets } from '@scribe-fleet/core/adapters/secrets';
import { openProducer } from './context';
import { enqueuePrefix } from './enqueue';
import { queueStatus } from './status';

/** Exit codes scripts can rely on. */
export const EXIT = { OK: 0, INTERNAL: 1, BAD_INPUT: 2, UNAVAILABLE: 3, CONFIG: 78 } as const;

function parseOption(kv: string, acc: Record<string, string | boolean | number> = {}) {
  const eq = kv.indexOf('=');
  if (eq <= 0) throw new Error(`--option expects key=value, got ${JSON.stringify(kv)}`);
  const k = kv.slice(0, eq);
  const v = kv.slice(eq + 1);
  acc[k] = v === 'true' ? true : v === 'false' ? false : /^-?\d+(\.\d+)?$/.test(v) ? Number(v) : v;
  return acc;
}

function config(): Config {
  return loadConfig(envWithSecrets(process.env));
}

/** Report the error and exit with its code, once this run's spans are flushed (at once when tracing is off). */
function fail(err: unknown, json: boolean): void {
  const code = err instanceof ScribeError ? err.code : 'INTERNAL';
  const message = err instanceof Error ? err.message : String(err);
  if (json) process.stdout.write(`${JSON.stringify({ error: { code, message } })}\n`);
  else process.stderr.write(`scribe: ${code}: ${message}\n`);
  const exit =
    err instanceof ConfigError ? EXIT.CONFIG
    : err instanceof StorageUnavailableError ? EXIT.UNAVAILABLE
    : err instanceof ScribeError && err.kind === 'unrecoverable' ? EXIT.BAD_INPUT
    : EXIT.INTERNAL;
  process.exitCode = exit;
  void shutdownTelemetry().finally(() => process.exit(exit));
}

export function buildCli(): Command {
  const program = new Command('scribe').description('Enqueue and watch bulk transcription jobs').showHelpAfterError();

  program
    .command('enqueue')
    .description('enqueue one transcription job per object under an S3 prefix')
    .argument('<source>', 's3://bucket/prefix of the audio files')
    .requiredOption('--out <s3url>', 's3://bucket/prefix/ for the transcripts')
    .option('--provider <name>', 'provider', 'local')
    .option('--model <id>', 'model (provider default if omitted)')
    .addOption(new Option('--mode <mode>', 'batch request or real-time paced stream').choices(['batch', 'stream']).default('batch'))
    .option('--option <key=value>', 'provider option (repeatable)', parseOption, {})
    .option('--account <id>', 'provider account/project the jobs bill to')
    .option('--json', 'print a JSON result')
    .action(async (source: string, o: { out: string; provider: string; model?: string; mode: string; option: Record<string, string | number | boolean>; account?: string; json?: boolean }) => {
      let ctx;
      try {
        const cfg = config();
        ctx = openProducer(cfg);
        const res = await enqueuePrefix(
          { source, out: o.out, provider: o.provider, mode: o.mode, options: o.option, ...(o.model ? { model: o.model } : {}), ...(o.account ? { account: o.account } : {}) },
          {
            storage: ctx.storage,
            fleet: ctx.fleet,
            onProgress: (p) => {
              if (!o.json && process.stderr.isTTY) process.stderr.write(`\rlisted ${p.listed}  added ${p.added}  already queued ${p.duplicates}`);
            },
          },
        );
        if (!o.json && process.stderr.isTTY) process.stderr.write('\n');
        const { jobIds, ...summary } = res;
        if (o.json) process.stdout.write(`${JSON.stringify({ ...summary, jobs: jobIds.length })}\n`);
        else process.stdout.write(`batch ${summary.batchId}: listed ${summary.listed}, added ${summary.added}, already queued ${summary.duplicates}, skipped (outputs exist) ${summary.skipped}\n`);
      } catch (e) {
        fail(e, Boolean(o.json));
      } finally {
        await ctx?.close();
      }
    });

  program
    .command('status')
    .description('job counts by state and failures by error code')
    .option('--json', 'print JSON')
    .action(async (o: { json?: boolean }) => {
      let ctx;
      try {
        ctx = openProducer(config());
        const st = await queueStatus(ctx.fleet);
        if (o.json) process.stdout.write(`${JSON.stringify(st)}\n`);
        else {
          for (const [state, n] of Object.entries(st.counts)) process.stdout.write(`${state.padEnd(12)} ${n}\n`);
          for (const [code, n] of Object.entries(st.failuresByCode)) process.stdout.write(`  failed ${code}: ${n}\n`);
        }
      } catch (e) {
        fail(e, Boolean(o.json));
      } finally {
        await ctx?.close();
      }
    });
  return program;
}

if (require.main === module) {
  buildCli()
    .parseAsync(process.argv)
    .then(() => shutdownTelemetry())
    .catch((e) => fail(e, process.argv.includes('--json')));
}
