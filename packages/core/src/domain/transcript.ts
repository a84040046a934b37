/**
 * The one transcript model every provider normalises into, and its JSON form, which follows the
 * Deepgram pre-recorded response shape (metadata + results.channels[].alternatives[]).
 */
export interface Word {
  word: string;
  /** Seconds from the start of the audio. */
  start: number;
  end: number;
  confidence: number;
  punctuated_word?: string;
  speaker?: number;
}

/** A stretch of speech the recogniser finalised as one unit (an utterance / turn / segment). */
export interface Segment {
  start: number;
  end: number;
  text: string;
  words: Word[];
  confidence: number;
  /** The audio channel it was heard on (0-based), when the transcript has one result per channel. */
  channel?: number;
  /** The speaker (a provider's diarization label, 0-based) when the whole segment is one speaker's. */
  speaker?: number;
}

export interface Transcript {
  provider: string;
  model: string;
  /** Provider's request / session id (or ours for the local recogniser). */
  requestId: string;
  /** Audio duration in seconds. */
  duration: number;
  channels: number;
  segments: Segment[];
  /**
   * Stable codes of what the job completed in spite of (see TRANSCRIPT_WARNINGS), e.g. `NO_SPEECH`,
   * `TRUNCATED_INPUT`. Absent or empty: nothing to say. Rendered as `metadata.warnings` in the JSON.
   */
  warnings?: string[];
}

/** Warning codes a completed transcript can carry. */
export const TRANSCRIPT_WARNINGS = {
  /** The audio decoded fine but the recogniser found no words in it (silence, noise, music). */
  NO_SPEECH: 'NO_SPEECH',
  /** The input decodes to less audio than its container declares, and truncated input was allowed. */
  TRUNCATED_INPUT: 'TRUNCATED_INPUT',
} as const;
export type TranscriptWarning = (typeof TRANSCRIPT_WARNINGS)[keyof typeof TRANSCRIPT_WARNINGS];

/**
 * The warnings a transcript should carry: its own, then `extra` (e.g. the audio input's
 * `TRUNCATED_INPUT`), then `NO_SPEECH` when it has no words at all; each code once, in that order.
 */
export function transcriptWarnings(t: Transcript, extra: Iterable<string> = []): string[] {
  const out = new Set<string>([...(t.warnings ?? []), ...extra]);
  if (!t.segments.some((s) => s.words.length > 0 || s.text.trim() !== '')) out.add(TRANSCRIPT_WARNINGS.NO_SPEECH);
  return [...out];
}

export interface TranscriptJsonMeta {
  /** sha256 of the input object's bytes. */
  sha256: string;
  /** ISO-8601 time the transcript was produced. */
  created: string;
  source?: { bucket: string; key: string; etag: string; versionId?: string };
}

export interface DeepgramStyleJson {
  metadata: {
    transaction_key: 'deprecated';
    request_id: string;
    sha256: string;
    created: string;
    duration: number;
    channels: number;
    models: string[];
    model_info: Record<string, { name: string; version: string; arch: string }>;
    provider: string;
    source?: TranscriptJsonMeta['source'];
    /** Transcript.warnings; present only when there is at least one. */
    warnings?: string[];
  };
  results: {
    channels: Array<{ alternatives: Array<{ transcript: string; confidence: number; words: Word[] }> }>;
    utterances: Array<{ id: string; channel: number; speaker?: number; start: number; end: number; confidence: number; transcript: string; words: Word[] }>;
  };
}

const round = (x: number, places = 3) => Math.round(x * 10 ** places) / 10 ** places;

export function transcriptText(t: Transcript): string {
  return t.segments.map((s) => s.text.trim()).filter(Boolean).join(' ');
}

function meanConfidence(words: Word[]): number {
  if (words.length === 0) return 0;
  return words.reduce((a, w) => a + w.confidence, 0) / words.length;
}

/** Build a Segment from words, deriving text, bounds and confidence. */
export function segmentFromWords(words: Word[], channel?: number): Segment {
  const seg: Segment = {
    start: words[0]?.start ?? 0,
    end: words[words.length - 1]?.end ?? 0,
    text: words.map((w) => w.punctuated_word ?? w.word).join(' '),
    words,
    confidence: meanConfidence(words),
  };
  if (channel !== undefined) seg.channel = channel;
  return seg;
}

/** Channels the transcript's segments were heard on, when it has per-channel results (else 0). */
export function channelCount(t: Pick<Transcript, 'channels' | 'segments'>): number {
  let max = -1;
  for (const s of t.segments) if (s.channel !== undefined && s.channel > max) max = s.channel;
  return max < 0 ? 0 : Math.max(t.channels, max + 1);
}

const roundWord = (w: Word): Word => ({ ...w, start: round(w.start), end: round(w.end), confidence: round(w.confidence, 4) });

/**
 * The Deepgram pre-recorded shape: `results.channels` has one entry per audio channel when the
 * segments carry channels (multichannel), each with only its own words in time order, else one
 * entry with every word; `utterances` are the segments in time order with their channel and speaker.
 */
export function toDeepgramJson(t: Transcript, meta: TranscriptJsonMeta): DeepgramStyleJson {
  const modelId = `${t.provider}:${t.model}`;
  const perChannel = channelCount(t);
  const channelWords = (c: number | undefined) =>
    t.segments
      .filter((s) => c === undefined || (s.channel ?? 0) === c)
      .flatMap((s) => s.words)
      .sort((a, b) => a.start - b.start)
      .map(roundWord);
  const channelText = (c: number | undefined) =>
    [...t.segments]
      .filter((s) => c === undefined || (s.channel ?? 0) === c)
      .sort((a, b) => a.start - b.start)
      .map((s) => s.text.trim())
      .filter(Boolean)
      .join(' ');
  const channels = (perChannel > 0 ? Array.from({ length: perChannel }, (_, c) => c) : [undefined]).map((c) => {
    const words = channelWords(c);
    return { alternatives: [{ transcript: c === undefined ? transcriptText(t) : channelText(c), confidence: round(meanConfidence(words), 4), words }] };
  });
  const ordered = t.segments.map((s, i) => ({ s, i })).sort((a, b) => a.s.start - b.s.start || (a.s.channel ?? 0) - (b.s.channel ?? 0) || a.i - b.i);
  const json: DeepgramStyleJson = {
    metadata: {
      transaction_key: 'deprecated',
      request_id: t.requestId,
      sha256: meta.sha256,
      created: meta.created,
      duration: round(t.duration),
      channels: t.channels,
      models: [modelId],
      model_info: { [modelId]: { name: t.model, version: 'n/a', arch: t.provider } },
      provider: t.provider,
    },
    results: {
      channels,
      utterances: ordered.map(({ s }, i) => ({
        id: `${t.requestId}-${i}`,
        channel: s.channel ?? 0,
        ...(s.speaker !== undefined ? { speaker: s.speaker } : {}),
        start: round(s.start),
        end: round(s.end),
        confidence: round(s.confidence, 4),
        transcript: s.text,
        words: s.words.map(roundWord),
      })),
    },
  };
  if (meta.source) json.metadata.source = meta.source;
  if (t.warnings?.length) json.metadata.warnings = [...new Set(t.warnings)];
  return json;
}

/** Read a transcript back from its JSON form (used by tests, the report and re-formatting). */
export function fromDeepgramJson(json: DeepgramStyleJson): Transcript {
  const segments: Segment[] = json.results.utterances.map((u) => ({
    start: u.start,
    end: u.end,
    text: u.transcript,
    words: u.words,
    confidence: u.confidence,
    channel: u.channel,
    ...(typeof u.speaker === 'number' ? { speaker: u.speaker } : {}),
  }));
  const t: Transcript = {
    provider: json.metadata.provider,
    model: json.metadata.models[0]?.split(':').slice(1).join(':') ?? '',
    requestId: json.metadata.request_id,
    duration: json.metadata.duration,
    channels: json.metadata.channels,
    segments,
  };
  const warnings = json.metadata.warnings;
  if (Array.isArray(warnings) && warnings.length) t.warnings = warnings.filter((w): w is string => typeof w === 'string');
  return t;
}
