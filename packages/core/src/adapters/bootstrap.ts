/**
 * The composition root's start-up, shared by the process mains (worker, API; the CLI maps ConfigError
 * to its own exit code 78 per command): the one validated configuration from the environment and the
 * secrets file, or exit 78 (EX_CONFIG) naming the variable; and the S3 storage every process builds
 * from it. The queues, Redis and the batch service come from `bullmq/open-services.ts`. It lives
 * with the adapters, not in app/, because it builds them.
 */
import { ConfigError } from '../domain/errors';
import { loadConfig, type Config } from '../domain/config';
import { envWithSecrets } from './secrets';
import { S3Storage } from './s3/s3-storage';

/** The configuration, or `<name>: <what is wrong>` on stderr and exit 78. `check` adds a process's own rule. */
export function configOrExit(name: string, env: NodeJS.ProcessEnv = process.env, check?: (c: Config) => void): Config {
  try {
    const config = loadConfig(envWithSecrets(env));
    check?.(config);
    return config;
  } catch (e) {
    if (e instanceof ConfigError) {
      console.error(`${name}: ${e.message}`);
      process.exit(78); // EX_CONFIG
    }
    throw e;
  }
}

/** The S3 storage of a configuration (endpoint, path style, static keys when both are set). */
export function s3StorageFromConfig(config: Config): S3Storage {
  return new S3Storage({
    region: config.S3_REGION,
    forcePathStyle: config.S3_FORCE_PATH_STYLE,
    ...(config.S3_ENDPOINT ? { endpoint: config.S3_ENDPOINT } : {}),
    ...(config.S3_ACCESS_KEY_ID && config.S3_SECRET_ACCESS_KEY ? { accessKeyId: config.S3_ACCESS_KEY_ID, secretAccessKey: config.S3_SECRET_ACCESS_KEY } : {}),
  });
}
