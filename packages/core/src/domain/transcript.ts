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
  channel?: number;
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
  };
  results: {
    channels: Array<{ alternatives: Array<{ transcript: string; confidence: number; words: Word[] }> }>;
    utterances: Array<{ id: string; channel: number; start: number; end: number; confidence: number; transcript: string; words: Word[] }>;
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

export function toDeepgramJson(t: Transcript, meta: TranscriptJsonMeta): DeepgramStyleJson {
  const words = t.segments.flatMap((s) => s.words).map((w) => ({ ...w, start: round(w.start), end: round(w.end), confidence: round(w.confidence, 4) }));
  const modelId = `${t.provider}:${t.model}`;
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
      channels: [{ alternatives: [{ transcript: transcriptText(t), confidence: round(meanConfidence(words), 4), words }] }],
      utterances: t.segments.map((s, i) => ({
        id: `${t.requestId}-${i}`,
        channel: s.channel ?? 0,
        start: round(s.start),
        end: round(s.end),
        confidence: round(s.confidence, 4),
        transcript: s.text,
        words: s.words.map((w) => ({ ...w, start: round(w.start), end: round(w.end), confidence: round(w.confidence, 4) })),
      })),
    },
  };
  if (meta.source) json.metadata.source = meta.source;
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
  }));
  return {
    provider: json.metadata.provider,
    model: json.metadata.models[0]?.split(':').slice(1).join(':') ?? '',
    requestId: json.metadata.request_id,
    duration: json.metadata.duration,
    channels: json.metadata.channels,
    segments,
  };
}
