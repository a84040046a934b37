/**
 * What each provider can do. The single place that decides which (provider, model, mode)
 * combinations are valid; the producer rejects anything else at enqueue time.
 */
export const PROVIDERS = ['local', 'deepgram', 'assemblyai', 'fireworks', 'openai'] as const;
export type ProviderName = (typeof PROVIDERS)[number];

export const MODES = ['batch', 'stream'] as const;
export type Mode = (typeof MODES)[number];

export interface ProviderInfo {
  name: ProviderName;
  defaultModel: string;
  /** Modes the provider supports for any model. */
  modes: readonly Mode[];
  /** Models (or prefixes ending in `*`) that only support some modes. */
  modelModes?: Record<string, readonly Mode[]>;
  /** Known model ids; `undefined` means any non-empty id is passed through to the provider. */
  models?: readonly string[];
}

export const CATALOGUE: Record<ProviderName, ProviderInfo> = {
  local: { name: 'local', defaultModel: 'pocketsphinx-en-us', modes: ['batch', 'stream'], models: ['pocketsphinx-en-us'] },
  deepgram: {
    name: 'deepgram',
    defaultModel: 'nova-3',
    modes: ['batch', 'stream'],
    // Deepgram Whisper Cloud is pre-recorded only.
    modelModes: { 'whisper*': ['batch'] },
  },
  assemblyai: { name: 'assemblyai', defaultModel: 'universal-streaming-english', modes: ['stream'] },
  fireworks: { name: 'fireworks', defaultModel: 'fireworks-asr-large', modes: ['stream'] },
  openai: { name: 'openai', defaultModel: 'whisper-1', modes: ['batch'] },
};

export function isProviderName(name: string): name is ProviderName {
  return (PROVIDERS as readonly string[]).includes(name);
}

function matches(pattern: string, model: string): boolean {
  return pattern.endsWith('*') ? model.startsWith(pattern.slice(0, -1)) : pattern === model;
}

/** Modes a (provider, model) pair supports. */
export function supportedModes(provider: ProviderName, model: string): readonly Mode[] {
  const info = CATALOGUE[provider];
  for (const [pattern, modes] of Object.entries(info.modelModes ?? {})) {
    if (matches(pattern, model)) return modes;
  }
  return info.modes;
}

/** Returns a reason string when the combination cannot run, or null when it can. */
export function checkCombination(provider: string, model: string, mode: string): string | null {
  if (!isProviderName(provider)) return `unknown provider ${JSON.stringify(provider)} (known: ${PROVIDERS.join(', ')})`;
  const info = CATALOGUE[provider];
  if (info.models && !info.models.includes(model)) {
    return `unknown model ${JSON.stringify(model)} for provider ${provider} (known: ${info.models.join(', ')})`;
  }
  if (!(MODES as readonly string[]).includes(mode)) return `unknown mode ${JSON.stringify(mode)} (known: ${MODES.join(', ')})`;
  const modes = supportedModes(provider, model);
  if (!modes.includes(mode as Mode)) {
    return `${provider} model ${model} cannot run in ${mode} mode (supported: ${modes.join(', ')})`;
  }
  return null;
}
