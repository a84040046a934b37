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
  if (audio.pcmChannels) {
    const pcmChannels = audio.pcmChannels.bind(audio);
    watched.pcmChannels = async (signal?: AbortSignal) => {
      const { channels, pcm } = await pcmChannels(signal);
      onProgress();
      return { channels, pcm: touching(pcm, onProgress) };
    };
  }
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

/** `source`, with `onProgress` called for every chunk taken; returning it returns the source. */
function touching(source: AsyncIterable<Buffer>, onProgress: () => void): AsyncIterable<Buffer> {
  return {
    [Symbol.asyncIterator]() {
      const it = source[Symbol.asyncIterator]();
      return {
        async next() {
          const r = await it.next();
          if (!r.done) onProgress();
          return r;
        },
        return: async () => (it.return ? it.return() : { done: true, value: undefined }),
      };
    },
  };
}
