/** The response formats (§5.2): json, text, srt, vtt and Whisper-style verbose_json, from recogniser finals. */
import { deflateSync } from 'node:zlib';
import type { SphinxResult } from '@scribe-fleet/core/adapters/sphinx-recogniser';
import { srtTimestamp, vttTimestamp } from '@scribe-fleet/core';
import { punctuate, round3 } from '../kit/util';
import type { ResponseFormat } from './types';

/** verbose_json reports the language as a full lowercase English name, not the ISO code (§5.2). */
const LANGUAGE_NAMES: Record<string, string> = {
  en: 'english', de: 'german', fr: 'french', es: 'spanish', it: 'italian', nl: 'dutch', pt: 'portuguese',
  pl: 'polish', sv: 'swedish', da: 'danish', no: 'norwegian', fi: 'finnish', ru: 'russian', uk: 'ukrainian',
  ja: 'japanese', zh: 'chinese', ko: 'korean', ar: 'arabic', hi: 'hindi', tr: 'turkish', cs: 'czech', el: 'greek',
};

/** Whisper-style verbose_json built from recogniser finals (§5.2; every segment carries all ten fields). */
export function toOpenAIVerboseJson(res: SphinxResult, opts: { language: string; temperature: number; words: boolean }) {
  const segments = res.finals.map((f, id) => {
    const words = f.words.map((w) => w.word);
    const text = ` ${punctuate(words).join(' ')}`; // segment text starts with a space (§5.2)
    const mean = f.words.length ? f.words.reduce((a, w) => a + w.confidence, 0) / f.words.length : 0;
    return {
      id,
      seek: Math.floor(f.start / 30) * 3000, // start of the 30 s window, in 10 ms frames
      start: round3(f.start),
      end: round3(f.end),
      text,
      tokens: [50364, ...words.map(tokenId)],
      temperature: opts.temperature,
      avg_logprob: round3(Math.max(-5, Math.log(Math.max(mean, 1e-6)))),
      compression_ratio: round3(text.length / Math.max(1, deflateSync(text).length)),
      no_speech_prob: round3(Math.max(0, Math.min(1, 1 - mean)) * 0.1),
    };
  });
  const body: Record<string, unknown> = {
    task: 'transcribe',
    language: LANGUAGE_NAMES[opts.language] ?? opts.language,
    duration: round3(res.duration),
    text: segments.map((s) => s.text.trim()).join(' '),
    segments,
  };
  if (opts.words) {
    body.words = res.finals.flatMap((f) => f.words.map((w) => ({ word: w.word, start: round3(w.start), end: round3(w.end) })));
  }
  body.usage = { type: 'duration', seconds: Math.ceil(res.duration) };
  return body as { text: string; duration: number; segments: typeof segments } & Record<string, unknown>;
}

function tokenId(word: string): number {
  let h = 0;
  for (const c of word) h = (h * 31 + c.charCodeAt(0)) % 50257;
  return h;
}

function subtitles(segments: Array<{ start: number; end: number; text: string }>, kind: 'srt' | 'vtt'): string {
  if (kind === 'srt') return segments.map((s, i) => `${i + 1}\n${srtTimestamp(s.start)} --> ${srtTimestamp(s.end)}\n${s.text.trim()}\n\n`).join('');
  return `WEBVTT\n\n${segments.map((s) => `${vttTimestamp(s.start)} --> ${vttTimestamp(s.end)}\n${s.text.trim()}\n\n`).join('')}`;
}

/** The 200 answer's body and content type for `format`. */
export function renderTranscript(
  res: SphinxResult,
  format: ResponseFormat,
  opts: { language: string; temperature: number; words: boolean },
): { body: string; contentType: string } {
  const verbose = toOpenAIVerboseJson(res, opts);
  const text = 'text/plain; charset=utf-8';
  switch (format) {
    case 'json':
      return { body: JSON.stringify({ text: verbose.text, usage: verbose.usage }), contentType: 'application/json' };
    case 'text':
      return { body: `${verbose.text}\n`, contentType: text };
    case 'srt':
      return { body: subtitles(verbose.segments, 'srt'), contentType: text };
    case 'vtt':
      return { body: subtitles(verbose.segments, 'vtt'), contentType: text };
    case 'verbose_json':
      return { body: JSON.stringify(verbose), contentType: 'application/json' };
  }
}
