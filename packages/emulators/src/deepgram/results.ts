/**
 * The JSON Deepgram answers with: the pre-recorded response (providers.md §1.3) and the live
 * `Results` / `Metadata` messages (§2.4), built from the recogniser's utterances.
 */
import { createHash, randomUUID } from 'node:crypto';
import { punctuate } from '../kit';
import type { RecognisedUtterance } from '../kit';
import { isTrue, wantsDiarization, wantsPunctuation } from './query';

export interface ChannelResult {
  finals: RecognisedUtterance[];
  duration: number;
  /** With diarization: the speaker of each final (kit/pitch.ts), in order. */
  speakers?: number[];
}

export interface OutWord {
  word: string;
  start: number;
  end: number;
  confidence: number;
  punctuated_word?: string;
  speaker?: number;
  speaker_confidence?: number;
}

export function round(x: number, places = 3): number {
  return Math.round(x * 10 ** places) / 10 ** places;
}

/** A stable uuid-shaped id per model name (Deepgram reports model uuids, §1.3). */
export function modelUuid(model: string): string {
  const h = createHash('sha256').update(`deepgram-emulator:${model}`).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-8${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

export function modelInfo(model: string): { name: string; version: string; arch: string } {
  const arch = /^(nova-3|nova-2|nova|enhanced|base|whisper)/.exec(model)?.[1] ?? 'base';
  return { name: model, version: '2025-01-01.0', arch };
}

export function outWords(u: RecognisedUtterance, punct: boolean, diarize: boolean, speaker = 0): OutWord[] {
  const punctuated = punct ? punctuate(u.words.map((w) => w.word)) : [];
  return u.words.map((w, i) => {
    const o: OutWord = { word: w.word, start: round(w.start), end: round(w.end), confidence: round(w.confidence, 4) };
    if (punct) o.punctuated_word = punctuated[i]!;
    if (diarize) {
      o.speaker = speaker;
      o.speaker_confidence = 0.9;
    }
    return o;
  });
}

export const transcriptOf = (ws: OutWord[]) => ws.map((w) => w.punctuated_word ?? w.word).join(' ');
export const meanConfidence = (ws: OutWord[]) => (ws.length ? round(ws.reduce((a, w) => a + w.confidence, 0) / ws.length, 4) : 0);

// ---- pre-recorded (§1.3) ----------------------------------------------------------------------------

interface Shaping {
  punct: boolean;
  diarize: boolean;
}

function paragraphsOf(perUtt: OutWord[][], diarize: boolean): Record<string, unknown> {
  const paras = perUtt.filter((ws) => ws.length).map((ws) => {
    const p: Record<string, unknown> = {
      sentences: [{ text: transcriptOf(ws), start: ws[0]!.start, end: ws[ws.length - 1]!.end }],
      num_words: ws.length,
      start: ws[0]!.start,
      end: ws[ws.length - 1]!.end,
    };
    if (diarize) p.speaker = ws[0]!.speaker ?? 0;
    return p;
  });
  const body = paras.map((p) => ({ text: (p.sentences as Array<{ text: string }>)[0]!.text, speaker: p.speaker as number | undefined }));
  return { transcript: `\n${body.map((b) => (diarize ? `Speaker ${b.speaker ?? 0}: ${b.text}` : b.text)).join('\n\n')}`, paragraphs: paras };
}

function utterancesOf(perUtt: OutWord[][], channel: number, diarize: boolean): Array<Record<string, unknown>> {
  return perUtt
    .filter((ws) => ws.length)
    .map((ws) => {
      const u: Record<string, unknown> = {
        id: randomUUID(),
        channel,
        start: ws[0]!.start,
        end: ws[ws.length - 1]!.end,
        confidence: meanConfidence(ws),
        transcript: transcriptOf(ws),
        words: ws,
      };
      if (diarize) u.speaker = ws[0]!.speaker ?? 0;
      return u;
    });
}

function channelOf(q: URLSearchParams, ch: ChannelResult, c: number, shaping: Shaping, utterances: unknown[]): Record<string, unknown> {
  const perUtt = ch.finals.map((u, i) => outWords(u, shaping.punct, shaping.diarize, ch.speakers?.[i] ?? 0));
  const words = perUtt.flat();
  const alt: Record<string, unknown> = { transcript: transcriptOf(words), confidence: meanConfidence(words), words };
  if (isTrue(q, 'paragraphs')) alt.paragraphs = paragraphsOf(perUtt, shaping.diarize);
  utterances.push(...utterancesOf(perUtt, c, shaping.diarize));
  const out: Record<string, unknown> = { alternatives: [alt] };
  if (q.getAll('detect_language').some((v) => v !== 'false')) {
    out.detected_language = 'en';
    out.language_confidence = 0.99;
  }
  return out;
}

export function buildPrerecorded(q: URLSearchParams, model: string, requestId: string, sha256: string, channels: ChannelResult[]): unknown {
  const shaping = { punct: wantsPunctuation(q), diarize: wantsDiarization(q) };
  const uuid = modelUuid(model);
  const utterances: unknown[] = [];
  const outChannels = channels.map((ch, c) => channelOf(q, ch, c, shaping, utterances));
  const metadata: Record<string, unknown> = {
    transaction_key: 'deprecated',
    request_id: requestId,
    sha256,
    created: new Date().toISOString(),
    duration: round(Math.max(0, ...channels.map((c) => c.duration)), 6),
    channels: channels.length,
    models: [uuid],
    model_info: { [uuid]: modelInfo(model) },
  };
  const tags = q.getAll('tag');
  if (tags.length) metadata.tags = tags;
  const results: Record<string, unknown> = { channels: outChannels };
  if (isTrue(q, 'utterances')) results.utterances = (utterances as Array<{ start: number }>).sort((a, b) => a.start - b.start);
  return { metadata, results };
}

// ---- live (§2.4) --------------------------------------------------------------------------------------

export interface ResultFlags {
  is_final: boolean;
  speech_final: boolean;
  from_finalize: boolean;
}

export interface LiveWord {
  word: string;
  start: number;
  end: number;
  confidence: number;
}

/** `[this channel, total channels]` (§2.4): `[0, 1]` unless the session is `multichannel`. */
export type ChannelIndex = [number, number];

export function liveResults(
  q: URLSearchParams,
  model: string,
  requestId: string,
  start: number,
  end: number,
  words: LiveWord[],
  flags: ResultFlags,
  channelIndex: ChannelIndex = [0, 1],
): Record<string, unknown> {
  const out = outWords({ start, end, words }, wantsPunctuation(q), wantsDiarization(q));
  return {
    type: 'Results',
    channel_index: channelIndex,
    duration: round(end - start),
    start: round(start),
    ...flags,
    channel: { alternatives: [{ transcript: transcriptOf(out), confidence: meanConfidence(out), words: out }] },
    metadata: { request_id: requestId, model_uuid: modelUuid(model), model_info: modelInfo(model) },
  };
}

/** §2.4 Metadata: `duration` 0 and `channels` 0 when no audio arrived. */
export function liveMetadata(q: URLSearchParams, model: string, requestId: string, sha256: string, seconds: number | null): Record<string, unknown> {
  const uuid = modelUuid(model);
  return {
    type: 'Metadata',
    transaction_key: 'deprecated',
    request_id: requestId,
    sha256,
    created: new Date().toISOString(),
    duration: seconds !== null ? round(seconds, 6) : 0,
    channels: seconds !== null ? Number(q.get('channels') ?? 1) : 0,
    models: [uuid],
    model_info: { [uuid]: modelInfo(model) },
  };
}
