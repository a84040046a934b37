import { execFileSync } from 'node:child_process';
import { SPHINX_MODEL_DIR, SPHINX_PYTHON, SPHINX_SCRIPT } from '@scribe-fleet/core/adapters/sphinx-recogniser';
import { segmentFromWords, type Segment } from '@scribe-fleet/core/domain/transcript';

/**
 * The recogniser script run on its own (stdin mode, a process and a model load of its own) over
 * ffmpeg's 16 kHz mono (down)mix of `path`, as segments, fed exact 100 ms blocks as batch sessions
 * are: otherwise its blocks are whatever the pipe holds when it reads, which on a loaded machine is
 * not always a whole block, and the results move with them.
 */
export function recogniseInOwnProcess(path: string): Segment[] {
  const pcm = execFileSync('ffmpeg', ['-nostdin', '-loglevel', 'error', '-i', path, '-ac', '1', '-ar', '16000', '-f', 's16le', 'pipe:1'], { maxBuffer: 1 << 28 });
  const out = execFileSync(SPHINX_PYTHON, [SPHINX_SCRIPT, '--model-dir', SPHINX_MODEL_DIR, '--partial-ms', '0', '--exact'], { input: pcm, maxBuffer: 1 << 26 }).toString();
  return out
    .split('\n')
    .filter((l) => l.includes('"final"'))
    .map((l) => segmentFromWords((JSON.parse(l) as { words: Parameters<typeof segmentFromWords>[0] }).words));
}
