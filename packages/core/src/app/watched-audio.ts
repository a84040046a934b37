import { Transform } from 'node:stream';
import type { StorageAudioInput } from '../ports/audio-input';

/**
 * The audio a session reads, with `onProgress` called for every piece it takes (PCM chunks, original
 * bytes): what the session watchdog counts as progress besides provider events. Everything else is the
 * input itself.
 */
export function watchedAudio(audio: StorageAudioInput, onProgress: () => void): StorageAudioInput {
  const watched = Object.create(audio) as StorageAudioInput;
  watched.pcm = async function* (signal?: AbortSignal) {
    for await (const chunk of audio.pcm(signal)) {
      onProgress();
      yield chunk;
    }
  };
  watched.original = async (signal?: AbortSignal) => {
    const res = await audio.original(signal);
    const tap = new Transform({
      transform(chunk: Buffer, _enc, cb) {
        onProgress();
        cb(null, chunk);
      },
    });
    res.stream.on('error', (e) => tap.destroy(e));
    tap.on('close', () => {
      if (!res.stream.destroyed) res.stream.destroy();
    });
    return { ...res, stream: res.stream.pipe(tap) };
  };
  return watched;
}
