/**
 * The diarization fixture of the channels-and-speakers tests: a mono interview of three turns — a low
 * voice (kal16), a high one (slt), the low one again — each a sentence, with a 1 s pause after the
 * first two (the interview of test/e2e/channels.test.ts, which builds it inline). The emulators tell the
 * voices apart by pitch, so its speakers are 0, 1, 0.
 */
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { SENTENCES } from '../../infra/local/src/samples';

export const INTERVIEW_TURNS = [
  { voice: 'kal16', text: SENTENCES[1] },
  { voice: 'slt', text: 'yes I can hear you very well' },
  { voice: 'kal16', text: SENTENCES[3] },
] as const;
/** The speaker of each turn, as the transcript numbers them (in order of first appearance). */
export const INTERVIEW_SPEAKERS = [0, 1, 0];

/** Synthesise the interview into `dir` as `interview.wav` (16 kHz mono); returns its path. */
export function makeInterview(dir: string): string {
  INTERVIEW_TURNS.forEach((t, i) => execFileSync('flite', ['-voice', t.voice, '-t', t.text, '-o', join(dir, `turn-${i}.wav`)]));
  const out = join(dir, 'interview.wav');
  execFileSync('ffmpeg', [
    '-nostdin', '-loglevel', 'error', '-y',
    ...INTERVIEW_TURNS.flatMap((_, i) => ['-i', join(dir, `turn-${i}.wav`)]),
    '-filter_complex', '[0:a]apad=pad_dur=1[a];[1:a]apad=pad_dur=1[b];[a][b][2:a]concat=n=3:v=0:a=1[o]',
    '-map', '[o]', '-ar', '16000', '-ac', '1', out,
  ]);
  return out;
}
