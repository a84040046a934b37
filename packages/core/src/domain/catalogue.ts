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

// ---- options ------------------------------------------------------------------------------------

/**
 * The value kinds an option takes. `boolean` also takes the strings `"true"`/`"false"`, `number` a
 * numeric string, `string` a number (all go on the wire the same way: the CLI's `--option k=v` turns
 * digits into numbers and `true`/`false` into booleans). `strings` is an array of strings.
 */
export type OptionType = 'boolean' | 'number' | 'string' | 'strings';

export interface OptionSpec {
  types: readonly OptionType[];
  /** The only values a string (or each item of a list, or a boolean as `true`/`false`) may take. */
  values?: readonly string[];
  /** Models (or prefixes ending in `*`) that take it; absent: every model of the provider. */
  models?: readonly string[];
  /** Models (or prefixes ending in `*`) that refuse it. */
  exceptModels?: readonly string[];
  /** A number option's bounds (inclusive), and whether it must be whole. */
  min?: number;
  max?: number;
  integer?: boolean;
  /** A boolean option that must be given as true alongside it (e.g. `max_speakers` with `speaker_labels`). */
  requires?: string;
}

type OptionTable = Readonly<Record<string, OptionSpec>>;

const BOOL: OptionSpec = { types: ['boolean'] };
const NUM: OptionSpec = { types: ['number'] };
const STR: OptionSpec = { types: ['string'] };
/** One string or a list (a list is sent as repeated keys, or as the provider wants it). */
const STRS: OptionSpec = { types: ['string', 'strings'] };

/**
 * Deepgram, pre-recorded and live (providers.md §1.2, §2.2; the emulator's query.ts validates the
 * same names). deepgram.ts forwards every option as a query parameter, so this list is what decides.
 * Refused on purpose, though Deepgram knows them:
 * - `model` (the spec's own field), `callback`/`callback_method` (async mode: the worker reads the
 *   answer of its own request), and live `encoding`/`sample_rate` (the client streams 16 kHz
 *   linear16 and sets them itself; its fixed values win, an option would be dropped);
 * - add-ons whose results the normalised transcript has no place for, so they would be billed (and
 *   lower the rate limit, §1.2) and dropped: `paragraphs`, `search`, `sentiment`, `topics`,
 *   `intents`, `summarize`, `detect_entities`, `custom_topic[_mode]`, `custom_intent[_mode]`, `extra`;
 * - live `interim_results`, `utterance_end_ms`, `vad_events`, `no_delay`: they only shape interim
 *   messages, which the client ignores (it keeps final Results).
 */
const DEEPGRAM_COMMON: OptionTable = {
  language: STR,
  punctuate: BOOL,
  smart_format: BOOL,
  diarize: BOOL,
  multichannel: BOOL,
  numerals: BOOL,
  measurements: BOOL,
  dictation: BOOL,
  filler_words: BOOL,
  profanity_filter: BOOL,
  // §1.2: keyterm prompting is Nova-3 only; keywords are for the older models.
  keyterm: { ...STRS, models: ['nova-3*'] },
  keywords: { ...STRS, exceptModels: ['nova-3*'] },
  replace: STRS,
  tag: STRS,
  version: STR,
  mip_opt_out: BOOL,
};

const DEEPGRAM_BATCH: OptionTable = {
  ...DEEPGRAM_COMMON,
  diarize_model: { types: ['string'], values: ['latest', 'v1', 'v2'] },
  redact: { types: ['boolean', 'string', 'strings'], values: ['pci', 'pii', 'numbers', 'true', 'false'] },
  utterances: BOOL,
  utt_split: NUM,
  detect_language: { types: ['boolean', 'string', 'strings'] },
  // For headerless audio objects only (the body is the object as stored).
  encoding: { types: ['string'], values: ['linear16', 'flac', 'mulaw', 'amr-nb', 'amr-wb', 'opus', 'speex', 'g729'] },
  sample_rate: NUM,
};

const DEEPGRAM_STREAM: OptionTable = {
  ...DEEPGRAM_COMMON,
  diarize_model: { types: ['string'], values: ['latest', 'v1'] }, // §2.2: v2 is refused on streaming
  redact: { types: ['boolean', 'string', 'strings'], values: ['true', 'false', 'pci', 'numbers', 'aggressive_numbers', 'ssn'] },
  endpointing: { types: ['number', 'boolean'] }, // ms of silence, or false
  // The client sets `channels` itself (its fixed value wins): the source's channel count with
  // `multichannel=true` (the interleaved channels are streamed, one result per channel), else 1
  // (the audio is decoded to mono). Accepted, and dropped, for jobs that name it.
  channels: NUM,
};

/**
 * AssemblyAI Universal Streaming v3 (providers.md §3.2). `speaker_labels` puts a speaker on each turn
 * (assemblyai.ts maps the letters to 0-based speakers); `max_speakers` (1..10) goes with it only — what
 * the service does with it alone is unconfirmed, so it is refused here rather than sent and maybe
 * ignored. Refused: `speech_model`, `sample_rate`, `encoding`, `token` (the client sets them;
 * assemblyai.ts skips them), `language_detection` (adds language fields only), `language`
 * (deprecated: the speech model chooses), `inactivity_timeout` (the session's lifetime is the
 * client's), `llm_gateway`.
 */
const ASSEMBLYAI_STREAM: OptionTable = {
  format_turns: { ...BOOL, exceptModels: ['u3-rt-pro'] }, // u3-rt-pro is always formatted
  end_of_turn_confidence_threshold: NUM,
  min_turn_silence: NUM,
  min_end_of_turn_silence_when_confident: NUM, // the old name of min_turn_silence
  max_turn_silence: NUM,
  vad_threshold: NUM,
  keyterms_prompt: STRS, // a list goes out as a JSON array string, as the SDK sends it
  prompt: { ...STR, models: ['u3-rt-pro'] },
  filter_profanity: BOOL,
  speaker_labels: BOOL,
  max_speakers: { types: ['number'], integer: true, min: 1, max: 10, requires: 'speaker_labels' },
};

/**
 * Fireworks streaming (providers.md §4.2). Refused: `response_format`, `timestamp_granularities`,
 * `model`, `Authorization` (the client's own), and `skip_vad`, `vad_kwargs`,
 * `text_timeout_seconds` (not on the public reference; semantics unconfirmed).
 */
const FIREWORKS_STREAM: OptionTable = { language: STR, prompt: STR, temperature: NUM };

/**
 * OpenAI-compatible `POST /v1/audio/transcriptions` (providers.md §5.1). Refused: `file`, `model`,
 * `response_format`, `timestamp_granularities[]`, `stream` (the client's own), and the newer
 * models' `include[]`, `chunking_strategy`, `known_speaker_names[]`, `known_speaker_references[]`:
 * the client asks for verbose_json, which has no channels or speakers.
 */
const OPENAI_BATCH: OptionTable = {
  language: STR,
  prompt: { ...STR, exceptModels: ['gpt-4o-transcribe-diarize'] },
  temperature: NUM,
};

/**
 * The local recogniser reads `multichannel` only (one recogniser and one result per input channel,
 * local-provider.ts). No speaker options.
 */
const LOCAL: OptionTable = { multichannel: BOOL };

/**
 * The options each provider takes, per mode. Every one is a provider parameter: no option is read
 * by scribe itself (process-attempt.ts hands `spec.options` to the provider untouched), so there are
 * no internal ones to keep.
 */
export const PROVIDER_OPTIONS: Readonly<Record<ProviderName, Readonly<Partial<Record<Mode, OptionTable>>>>> = {
  local: { batch: LOCAL, stream: LOCAL },
  deepgram: { batch: DEEPGRAM_BATCH, stream: DEEPGRAM_STREAM },
  assemblyai: { stream: ASSEMBLYAI_STREAM },
  fireworks: { stream: FIREWORKS_STREAM },
  openai: { batch: OPENAI_BATCH },
};

/**
 * The job option `multichannel` (true or 'true'): transcribe each channel of the source on its own
 * (the providers that take it read the audio with `AudioInput.pcmChannels`).
 */
export function wantsMultichannel(options: Readonly<Record<string, unknown>>): boolean {
  return options.multichannel === true || options.multichannel === 'true';
}

/** Every option name some provider takes in some mode, sorted. */
export function knownOptionNames(): string[] {
  const names = new Set<string>();
  for (const modes of Object.values(PROVIDER_OPTIONS)) for (const table of Object.values(modes)) for (const n of Object.keys(table ?? {})) names.add(n);
  return [...names].sort();
}

/** The spec of `name` for (provider, model, mode), or undefined when it is not taken there. */
export function optionSpec(provider: ProviderName, model: string, mode: Mode, name: string): OptionSpec | undefined {
  const table = PROVIDER_OPTIONS[provider][mode];
  if (!table || !Object.prototype.hasOwnProperty.call(table, name)) return undefined;
  const spec = table[name]!;
  if (spec.models && !spec.models.some((p) => matches(p, model))) return undefined;
  if (spec.exceptModels?.some((p) => matches(p, model))) return undefined;
  return spec;
}

/** The option names (provider, model, mode) takes, sorted. */
export function supportedOptions(provider: ProviderName, model: string, mode: Mode): string[] {
  return Object.keys(PROVIDER_OPTIONS[provider][mode] ?? {})
    .filter((n) => optionSpec(provider, model, mode, n))
    .sort();
}

type OptionValue = string | number | boolean | readonly string[];

function isType(type: OptionType, v: OptionValue): boolean {
  switch (type) {
    case 'boolean':
      return typeof v === 'boolean' || v === 'true' || v === 'false';
    case 'number':
      return (typeof v === 'number' && Number.isFinite(v)) || (typeof v === 'string' && /^-?\d+(\.\d+)?$/.test(v));
    case 'string':
      return typeof v === 'string' || (typeof v === 'number' && Number.isFinite(v));
    case 'strings':
      return Array.isArray(v) && v.every((s) => typeof s === 'string');
  }
}

/** What a number option's value breaks of its spec's bounds (`an integer from 1 to 10`), or null. */
function outOfBounds(spec: OptionSpec, value: OptionValue): string | null {
  if (spec.min === undefined && spec.max === undefined && !spec.integer) return null;
  const n = typeof value === 'number' ? value : typeof value === 'string' ? Number(value) : NaN;
  if (!Number.isFinite(n)) return null; // not a number: the type check speaks for it
  const ok = (!spec.integer || Number.isInteger(n)) && (spec.min === undefined || n >= spec.min) && (spec.max === undefined || n <= spec.max);
  if (ok) return null;
  const what = spec.integer ? 'an integer' : 'a number';
  if (spec.min !== undefined && spec.max !== undefined) return `${what} from ${spec.min} to ${spec.max}`;
  if (spec.min !== undefined) return `${what} of at least ${spec.min}`;
  if (spec.max !== undefined) return `${what} of at most ${spec.max}`;
  return what;
}

/** An option name or value in a message: JSON, cut short (it came from a client). */
function shown(v: unknown): string {
  const s = JSON.stringify(v) ?? String(v);
  return s.length > 80 ? `${s.slice(0, 80)}…` : s;
}

/**
 * Whether (provider, model, mode) takes these options: the first one it does not take (or whose
 * value has the wrong type) with the reason, or null when all are taken. The combination itself is
 * checkCombination's; an unknown provider or mode takes no option.
 */
export function checkOptions(provider: string, model: string, mode: string, options: Readonly<Record<string, OptionValue>>): { option: string; reason: string } | null {
  const known = isProviderName(provider) && (MODES as readonly string[]).includes(mode);
  for (const [name, value] of Object.entries(options)) {
    const spec = known ? optionSpec(provider as ProviderName, model, mode as Mode, name) : undefined;
    const who = `${provider} ${model} (${mode})`;
    if (!spec) {
      const supported = known ? supportedOptions(provider as ProviderName, model, mode as Mode) : [];
      return { option: name, reason: `option ${shown(name)} is not supported by ${who}; supported: ${supported.length ? supported.join(', ') : 'none'}` };
    }
    if (!spec.types.some((t) => isType(t, value))) {
      return { option: name, reason: `option ${shown(name)} of ${who} must be ${spec.types.map((t) => (t === 'strings' ? 'a list of strings' : `a ${t}`)).join(' or ')}, got ${shown(value)}` };
    }
    if (spec.values) {
      const items = Array.isArray(value) ? value : [value];
      const bad = items.find((v) => !spec.values!.includes(String(v)));
      if (bad !== undefined) return { option: name, reason: `option ${shown(name)} of ${who} must be one of ${spec.values.join(', ')}, got ${shown(bad)}` };
    }
    const bounds = outOfBounds(spec, value);
    if (bounds) return { option: name, reason: `option ${shown(name)} of ${who} must be ${bounds}, got ${shown(value)}` };
    if (spec.requires !== undefined) {
      const other = options[spec.requires];
      if (other !== true && other !== 'true') return { option: name, reason: `option ${shown(name)} of ${who} needs ${shown(spec.requires)}: true` };
    }
  }
  return null;
}
