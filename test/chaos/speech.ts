/**
 * Long synthesised speech for the stream scenarios: the sentences of the sample set, spoken by one
 * flite voice each with a pause after it, repeated until the file is at least `seconds` long. Made
 * once per (voice, seconds) under test-output/fixtures and reused.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SENTENCES } from '../../infra/local/src/samples';

const FIXTURES = join(__dirname, '..', '..', 'test-output', 'fixtures');

export type Voice = 'kal16' | 'rms' | 'awb' | 'slt';

function ffmpeg(...args: string[]): void {
  execFileSync('ffmpeg', ['-nostdin', '-hide_banner', '-loglevel', 'error', '-y', ...args]);
}

function seconds(path: string): number {
  return Number(execFileSync('ffprobe', ['-v', 'error', '-show_entries', 'format=duration', '-of', 'csv=p=0', path]).toString());
}

/** A 16 kHz mono WAV of at least `minSeconds` of speech by `voice`; returns its bytes and duration. */
export function longSpeech(voice: Voice, minSeconds: number): { bytes: Buffer; seconds: number } {
  mkdirSync(FIXTURES, { recursive: true });
  const out = join(FIXTURES, `long-${voice}-${minSeconds}.wav`);
  if (!existsSync(out)) {
    const dir = mkdtempSync(join(tmpdir(), 'scribe-long-'));
    try {
      const parts: string[] = [];
      let total = 0;
      for (let i = 0; total < minSeconds; i++) {
        const part = join(dir, `s${i}.wav`);
        if (i < SENTENCES.length) {
          const raw = join(dir, `raw${i}.wav`);
          execFileSync('flite', ['-voice', voice, '-t', SENTENCES[i]!, '-o', raw]);
          // A 1.5 s pause after each sentence: the recogniser ends an utterance there.
          ffmpeg('-i', raw, '-af', 'apad=pad_dur=1.5', '-ar', '16000', '-ac', '1', '-c:a', 'pcm_s16le', part);
          parts.push(part);
        } else {
          parts.push(parts[i % SENTENCES.length]!);
        }
        total += seconds(parts[parts.length - 1]!);
      }
      const list = join(dir, 'list.txt');
      writeFileSync(list, parts.map((p) => `file '${p}'`).join('\n'));
      ffmpeg('-f', 'concat', '-safe', '0', '-i', list, '-c', 'copy', out);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
  return { bytes: readFileSync(out), seconds: seconds(out) };
}
