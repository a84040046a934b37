import { readFileSync } from 'node:fs';
import { ConfigError } from '../domain/errors';

/**
 * The environment with SCRIBE_SECRETS_FILE's keys merged under it (a value in the environment wins).
 * The file is a JSON object of strings, e.g. `{"DEEPGRAM_API_KEY": "…"}` (a mounted Kubernetes secret).
 */
export function envWithSecrets(env: Record<string, string | undefined>): Record<string, string | undefined> {
  const file = env.SCRIBE_SECRETS_FILE;
  if (!file) return env;
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new ConfigError(`SCRIBE_SECRETS_FILE ${file}: cannot read a JSON object (${(e as Error).message.split('\n')[0]})`);
  }
  if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) throw new ConfigError(`SCRIBE_SECRETS_FILE ${file}: expected a JSON object`);
  const secrets: Record<string, string> = {};
  for (const [k, v] of Object.entries(parsed as Record<string, unknown>)) {
    if (typeof v !== 'string') throw new ConfigError(`SCRIBE_SECRETS_FILE ${file}: ${k} must be a string`);
    secrets[k] = v;
  }
  return { ...secrets, ...Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== '')) };
}
