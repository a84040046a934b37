import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/**
 * Known sentences for synthesised test speech. flite's `kal16`, `rms` and `awb` voices are
 * recognisable by pocketsphinx (espeak-ng is not); every sample gets 0.6 s of silence at both ends,
 * as real recordings have, so the recogniser's voice detection catches the first word.
 */
export const SENTENCES = [
  'the quick brown fox jumps over the lazy dog and then runs into the forest',
  'she opened the door and walked into the kitchen to make a cup of coffee',
  'the company reported strong sales in the first quarter of the year',
  'we will meet at the office tomorrow morning to discuss the new project',
  'please call me back when you have a moment to talk about the budget',
  'the children played in the park until the sun went down behind the hills',
  'the weather today is cold and windy with a chance of rain in the evening',
] as const;

export type SampleFormat = 'wav' | 'mp3' | 'flac' | 'm4a' | 'ogg';

const CODEC_ARGS: Record<SampleFormat, string[]> = {
  wav: ['-c:a', 'pcm_s16le'],
  mp3: ['-c:a', 'libmp3lame', '-b:a', '64k'],
  flac: ['-c:a', 'flac'],
  // The mp4 muxer writes the index (moov) at the end unless told otherwise: the case that needs spooling.
  m4a: ['-c:a', 'aac', '-b:a', '64k'],
  ogg: ['-c:a', 'libopus', '-b:a', '32k'],
};

export interface SampleSpec {
  name: string;
  voice: 'kal16' | 'rms' | 'awb' | 'slt';
  format: SampleFormat;
  text: string;
  /** Output sample rate / channels, to exercise resampling and downmixing. */
  sampleRate?: number;
  channels?: number;
}

/** The quickstart's and e2e tests' sample set: different voices, containers, rates and channel counts. */
export const DEFAULT_SAMPLES: SampleSpec[] = [
  { name: 'interview-01.wav', voice: 'kal16', format: 'wav', text: `${SENTENCES[0]}. ${SENTENCES[1]}` },
  { name: 'meeting-02.mp3', voice: 'rms', format: 'mp3', text: `${SENTENCES[4]}. ${SENTENCES[5]}`, sampleRate: 44100, channels: 2 },
  { name: 'memo-03.flac', voice: 'kal16', format: 'flac', text: `${SENTENCES[2]}. ${SENTENCES[3]}`, sampleRate: 22050 },
  { name: 'voicemail-04.m4a', voice: 'rms', format: 'm4a', text: `${SENTENCES[1]}. ${SENTENCES[5]}`, sampleRate: 48000 },
];

/** Synthesise `spec` with flite and encode it with ffmpeg into `outPath`. */
export async function synthesise(spec: SampleSpec, outPath: string): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'scribe-tts-'));
  try {
    const wav = join(dir, 'speech.wav');
    await run('flite', ['-voice', spec.voice, '-t', spec.text, '-o', wav]);
    await run('ffmpeg', [
      '-nostdin', '-loglevel', 'error', '-y', '-i', wav,
      '-af', 'adelay=600:all=1,apad=pad_dur=0.6',
      '-ar', String(spec.sampleRate ?? 16000), '-ac', String(spec.channels ?? 1),
      ...CODEC_ARGS[spec.format], outPath,
    ]);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
