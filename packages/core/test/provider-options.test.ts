/**
 * Options per provider, model and mode (domain/catalogue.ts, checked by app/validate.ts): the walk
 * over every provider × mode × every option name any provider knows, through the three places that
 * check (a create request, a manifest line, a spec on the worker), and the value types and
 * model-specific options. Pure: no services.
 */
import { CATALOGUE, checkOptions, knownOptionNames, MODES, PROVIDER_OPTIONS, PROVIDERS, supportedModes, supportedOptions, type Mode, type OptionSpec, type ProviderName } from '../src/domain/catalogue';
import { UnsupportedCombinationError, UnsupportedOptionError } from '../src/domain/errors';
import { parseJobSpec } from '../src/domain/job-spec';
import { assertManifestOptions, assertSpecOptions, validateCreateBatch } from '../src/app/validate';

const config = { S3_ALLOWED_BUCKETS: [] as string[] };

/**
 * What each provider takes at its default model, written out (README "Supported options per
 * provider" says the same): the walk below checks the catalogue against it, not against itself.
 */
const DEEPGRAM_BOTH = ['diarize', 'diarize_model', 'dictation', 'filler_words', 'keyterm', 'language', 'measurements', 'mip_opt_out', 'multichannel', 'numerals', 'profanity_filter', 'punctuate', 'redact', 'replace', 'smart_format', 'tag', 'version'];
const EXPECTED: Record<ProviderName, Record<Mode, string[]>> = {
  local: { batch: ['multichannel'], stream: ['multichannel'] },
  deepgram: {
    batch: [...DEEPGRAM_BOTH, 'detect_language', 'encoding', 'sample_rate', 'utt_split', 'utterances'].sort(),
    stream: [...DEEPGRAM_BOTH, 'channels', 'endpointing'].sort(),
  },
  assemblyai: {
    batch: [],
    stream: ['end_of_turn_confidence_threshold', 'filter_profanity', 'format_turns', 'keyterms_prompt', 'max_speakers', 'max_turn_silence', 'min_end_of_turn_silence_when_confident', 'min_turn_silence', 'speaker_labels', 'vad_threshold'],
  },
  fireworks: { batch: [], stream: ['language', 'prompt', 'temperature'] },
  openai: { batch: ['language', 'prompt', 'temperature'], stream: [] },
};

/** Names no provider takes here: the spec's own fields, other providers' client-set ones, prototype keys. */
const NEVER = ['model', 'callback', 'sample_rate_hz', 'response_format', 'timestamp_granularities', 'speech_model', 'speakers_expected', 'interim_results', 'note', 'constructor', 'toString'];

/** A value of the option's first type (its first allowed value where it has a list). */
function valueFor(spec: OptionSpec | undefined): string | number | boolean | string[] {
  const v = spec?.values?.[0];
  switch (spec?.types[0]) {
    case 'boolean':
      return v === undefined ? true : v === 'true';
    case 'number':
      return 1;
    case 'strings':
      return [v ?? 'x'];
    default:
      return v ?? 'x';
  }
}

/** `name` with a value of its type, and the option it needs alongside (`max_speakers` → `speaker_labels: true`) after it. */
function optionsFor(name: string): Record<string, string | number | boolean | string[]> {
  const spec = anySpec(name);
  return { [name]: valueFor(spec), ...(spec?.requires ? { [spec.requires]: true } : {}) };
}

/** The spec of `name` in any table (to pick a value an accepting provider would take). */
function anySpec(name: string): OptionSpec | undefined {
  for (const modes of Object.values(PROVIDER_OPTIONS)) for (const t of Object.values(modes)) if (t && Object.prototype.hasOwnProperty.call(t, name)) return t[name];
  return undefined;
}

function caught(fn: () => unknown): unknown {
  try {
    fn();
  } catch (e) {
    return e;
  }
  return undefined;
}

const names = knownOptionNames();

it('the known names are every name in the expected table (nothing listed that no provider takes)', () => {
  const expected = new Set(Object.values(EXPECTED).flatMap((m) => Object.values(m).flat()));
  // Names only some models take (keywords: not Nova-3; prompt on AssemblyAI: u3-rt-pro) are known too.
  expect(names).toEqual([...new Set([...expected, 'keywords'])].sort());
  for (const p of PROVIDERS) for (const m of MODES) expect({ p, m, supported: supportedOptions(p, CATALOGUE[p].defaultModel, m) }).toEqual({ p, m, supported: EXPECTED[p][m] });
});

describe.each(PROVIDERS.flatMap((p) => MODES.map((m) => [p, m] as const)))('%s (%s)', (provider, mode) => {
  const model = CATALOGUE[provider].defaultModel;
  const runs = supportedModes(provider, model).includes(mode);
  const supported = EXPECTED[provider][mode];

  it.each([...names, ...NEVER])('%s: accepted exactly when supported, else UNSUPPORTED_OPTION naming it (request, manifest line, worker spec)', (name) => {
    // A companion comes after the name, so a provider that refuses both names this one first.
    const options = optionsFor(name);
    const refusal = `option ${JSON.stringify(name)} is not supported by ${provider} ${model} (${mode}); supported: ${supported.length ? supported.join(', ') : 'none'}`;
    const pure = checkOptions(provider, model, mode, options);
    expect(pure).toEqual(supported.includes(name) ? null : { option: name, reason: refusal });
    if (!runs) {
      // The combination is refused first, whatever the options.
      expect(caught(() => validateCreateBatch(config, { source: 's3://arch/in/', out: 's3://arch/out/', provider, mode, options }))).toBeInstanceOf(UnsupportedCombinationError);
      return;
    }
    const routing = { provider, model, mode };
    const attempts = {
      request: () => validateCreateBatch(config, { source: 's3://arch/in/', out: 's3://arch/out/', provider, mode, options }),
      manifestLine: () => assertManifestOptions(routing, { line: 7, options }),
      workerSpec: () => assertSpecOptions(parseJobSpec({ source: { bucket: 'arch', key: 'in/a.wav', etag: 'e' }, output: { bucket: 'arch', keyBase: 'out/a.wav' }, provider, mode, options })),
    };
    for (const [where, attempt] of Object.entries(attempts)) {
      const err = caught(attempt);
      if (supported.includes(name)) {
        expect({ where, err }).toEqual({ where, err: undefined });
      } else {
        expect({ where, err }).toEqual({ where, err: expect.any(UnsupportedOptionError) });
        const e = err as UnsupportedOptionError;
        expect(e).toMatchObject({ code: 'UNSUPPORTED_OPTION', kind: 'unrecoverable', details: { option: name, provider, model, mode } });
        expect(e.message).toBe(where === 'manifestLine' ? `manifest line 7: ${refusal}` : refusal);
      }
    }
  });
});

it('the message of the issue: diarize on OpenAI whisper-1', () => {
  const err = caught(() => validateCreateBatch(config, { source: 's3://arch/in/', out: 's3://arch/out/', provider: 'openai', options: { diarize: true } }));
  expect(err).toBeInstanceOf(UnsupportedOptionError);
  expect((err as Error).message).toBe('option "diarize" is not supported by openai whisper-1 (batch); supported: language, prompt, temperature');
  // Nor any channel or speaker option.
  for (const name of ['multichannel', 'channels', 'diarize_model', 'speaker_labels', 'known_speaker_names']) {
    expect(checkOptions('openai', 'whisper-1', 'batch', { [name]: true })?.option).toBe(name);
  }
});

it('the local provider takes multichannel, not diarize; Deepgram takes both in both modes', () => {
  expect(checkOptions('local', 'pocketsphinx-en-us', 'batch', { multichannel: true })).toBeNull();
  expect(checkOptions('local', 'pocketsphinx-en-us', 'batch', { diarize: true })?.option).toBe('diarize');
  for (const mode of MODES) expect(checkOptions('deepgram', 'nova-3', mode, { multichannel: true, diarize: true })).toBeNull();
  expect(checkOptions('deepgram', 'nova-3', 'stream', { channels: 2, endpointing: 300 })).toBeNull();
  expect(checkOptions('deepgram', 'nova-3', 'batch', { channels: 2 })?.option).toBe('channels');
});

it('value types: booleans, numbers, strings and lists as the wire takes them; wrong ones are refused naming the option', () => {
  const ok: Array<[ProviderName, Mode, Record<string, string | number | boolean | string[]>]> = [
    ['deepgram', 'batch', { punctuate: true, diarize: 'false', utt_split: 1.2, language: 'en-US', keyterm: ['fox', 'coffee'], tag: 'a' }],
    ['deepgram', 'stream', { endpointing: 300 }],
    ['deepgram', 'stream', { endpointing: false }],
    ['deepgram', 'stream', { endpointing: '500', redact: ['pci', 'ssn'] }],
    ['deepgram', 'batch', { redact: 'pii', detect_language: ['en', 'fr'], encoding: 'mulaw', sample_rate: 8000 }],
    ['assemblyai', 'stream', { end_of_turn_confidence_threshold: 0.7, keyterms_prompt: ['scribe'], format_turns: true }],
    ['openai', 'batch', { temperature: 0.2, prompt: 'names: Kal', language: 'en' }],
    // `--option tag=2024` arrives as a number: a string option takes it.
    ['deepgram', 'batch', { tag: 2024 }],
  ];
  for (const [p, m, options] of ok) expect({ p, m, options, r: checkOptions(p, CATALOGUE[p].defaultModel, m, options) }).toEqual({ p, m, options, r: null });

  const bad: Array<[ProviderName, Mode, Record<string, string | number | boolean | string[]>, string, RegExp]> = [
    ['deepgram', 'batch', { punctuate: 'yes' }, 'punctuate', /^option "punctuate" of deepgram nova-3 \(batch\) must be a boolean, got "yes"$/],
    ['deepgram', 'batch', { utt_split: 'long' }, 'utt_split', /must be a number, got "long"/],
    ['deepgram', 'batch', { language: true }, 'language', /must be a string, got true/],
    ['deepgram', 'batch', { diarize: ['a'] }, 'diarize', /must be a boolean/],
    ['deepgram', 'stream', { endpointing: 'soon' }, 'endpointing', /must be a number or a boolean/],
    ['deepgram', 'stream', { diarize_model: 'v2' }, 'diarize_model', /must be one of latest, v1, got "v2"/],
    ['deepgram', 'batch', { redact: ['pci', 'ssn'] }, 'redact', /got "ssn"/],
    ['deepgram', 'batch', { encoding: 'mp3' }, 'encoding', /must be one of/],
    ['openai', 'batch', { temperature: 'hot' }, 'temperature', /must be a number/],
  ];
  for (const [p, m, options, option, message] of bad) {
    const r = checkOptions(p, CATALOGUE[p].defaultModel, m, options);
    expect({ p, m, option: r?.option }).toEqual({ p, m, option });
    expect(r!.reason).toMatch(message);
  }
  // The first refused option is named, in the order given.
  expect(checkOptions('deepgram', 'nova-3', 'batch', { punctuate: true, bogus: 1, paragraphs: true })?.option).toBe('bogus');
  const err = caught(() => validateCreateBatch(config, { source: 's3://arch/in/', out: 's3://arch/out/', provider: 'deepgram', options: { punctuate: 'yes' } }));
  expect(err).toMatchObject({ code: 'UNSUPPORTED_OPTION', details: { option: 'punctuate', provider: 'deepgram', model: 'nova-3', mode: 'batch' } });
});

it('model-specific options: keyterm on Nova-3 only, keywords on the older models, prompt per model', () => {
  expect(checkOptions('deepgram', 'nova-3', 'batch', { keyterm: 'fox' })).toBeNull();
  expect(checkOptions('deepgram', 'nova-3-medical', 'stream', { keyterm: 'fox' })).toBeNull();
  expect(checkOptions('deepgram', 'nova-2', 'batch', { keyterm: 'fox' })?.reason).toMatch(/^option "keyterm" is not supported by deepgram nova-2 \(batch\); supported: .*keywords/);
  expect(checkOptions('deepgram', 'nova-2', 'batch', { keywords: 'fox:2' })).toBeNull();
  expect(checkOptions('deepgram', 'nova-3', 'batch', { keywords: 'fox:2' })?.option).toBe('keywords');
  expect(checkOptions('assemblyai', 'u3-rt-pro', 'stream', { prompt: 'names' })).toBeNull();
  expect(checkOptions('assemblyai', 'u3-rt-pro', 'stream', { format_turns: true })?.option).toBe('format_turns');
  expect(checkOptions('assemblyai', 'universal-streaming-english', 'stream', { prompt: 'names' })?.option).toBe('prompt');
  expect(checkOptions('openai', 'gpt-4o-transcribe-diarize', 'batch', { prompt: 'x' })?.option).toBe('prompt');
  // Through the request: the request's model decides.
  expect(caught(() => validateCreateBatch(config, { source: 's3://arch/in/', out: 's3://arch/out/', provider: 'deepgram', model: 'nova-2', options: { keyterm: 'x' } }))).toBeInstanceOf(UnsupportedOptionError);
  expect(validateCreateBatch(config, { source: 's3://arch/in/', out: 's3://arch/out/', provider: 'deepgram', model: 'nova-2', options: { keywords: 'x' } }).routing).toEqual({ provider: 'deepgram', model: 'nova-2', mode: 'batch' });
});

it('AssemblyAI speaker labels: speaker_labels (bool); max_speakers a whole number 1..10, only with speaker_labels true', () => {
  const aai = (options: Record<string, string | number | boolean | string[]>) => checkOptions('assemblyai', 'universal-streaming-english', 'stream', options);
  expect(aai({ speaker_labels: true })).toBeNull();
  expect(aai({ speaker_labels: 'false' })).toBeNull();
  expect(aai({ speaker_labels: true, max_speakers: 1 })).toBeNull();
  expect(aai({ max_speakers: '10', speaker_labels: 'true' })).toBeNull();
  expect(aai({ speaker_labels: 'yes' })?.reason).toMatch(/^option "speaker_labels" of assemblyai universal-streaming-english \(stream\) must be a boolean, got "yes"$/);
  for (const bad of [0, 11, 2.5, '11', -1]) {
    expect(aai({ speaker_labels: true, max_speakers: bad })).toEqual({
      option: 'max_speakers',
      reason: `option "max_speakers" of assemblyai universal-streaming-english (stream) must be an integer from 1 to 10, got ${JSON.stringify(bad)}`,
    });
  }
  expect(aai({ speaker_labels: true, max_speakers: 'two' })?.reason).toMatch(/must be a number, got "two"$/);
  // Without speaker_labels true (absent, or false) max_speakers is refused: the service's answer to it alone is unconfirmed.
  const alone: Array<Record<string, string | number | boolean>> = [{ max_speakers: 2 }, { max_speakers: 2, speaker_labels: false }, { speaker_labels: 'false', max_speakers: 2 }];
  for (const options of alone) {
    expect(aai(options)).toEqual({ option: 'max_speakers', reason: 'option "max_speakers" of assemblyai universal-streaming-english (stream) needs "speaker_labels": true' });
  }
  // Through a request: UNSUPPORTED_OPTION naming it.
  const err = caught(() => validateCreateBatch(config, { source: 's3://arch/in/', out: 's3://arch/out/', provider: 'assemblyai', mode: 'stream', options: { max_speakers: 3 } }));
  expect(err).toMatchObject({ code: 'UNSUPPORTED_OPTION', details: { option: 'max_speakers', provider: 'assemblyai', mode: 'stream' } });
  // No other provider takes either (Deepgram's is diarize).
  for (const p of ['deepgram', 'fireworks', 'openai', 'local'] as const) for (const m of MODES) expect(checkOptions(p, CATALOGUE[p].defaultModel, m, { speaker_labels: true })?.option).toBe('speaker_labels');
});

it('a structurally bad option is still INVALID_JOB_SPEC (the shape is checked before the provider)', () => {
  const err = caught(() => validateCreateBatch(config, { source: 's3://arch/in/', out: 's3://arch/out/', provider: 'openai', options: { diarize: { nested: 1 } } as never }));
  expect(err).toMatchObject({ code: 'INVALID_JOB_SPEC' });
});
