/** The session watchdog's view of the audio (app/watched-audio.ts): every piece read is progress. */
import { Readable } from 'node:stream';
import type { StorageAudioInput } from '../src';
import { watchedAudio } from '../src/app/watched-audio';

function fakeAudio(log: string[]): StorageAudioInput {
  return {
    sha256: undefined,
    warnings: [],
    prepare: async () => {},
    prefetchOriginal: () => {},
    dispose: async () => {},
    async *pcm() {
      yield Buffer.alloc(4);
    },
    async pcmChannels() {
      log.push('open');
      async function* pcm() {
        try {
          for (let i = 0; i < 3; i++) {
            log.push(`chunk ${i}`);
            yield Buffer.alloc(8, i);
          }
        } finally {
          log.push('closed');
        }
      }
      return { channels: 2, pcm: pcm() };
    },
    original: async () => ({ stream: Readable.from([Buffer.from('x')]), filename: 'a.wav' }),
  };
}

it('pcmChannels: the channel count as given, progress on opening and on every chunk', async () => {
  const log: string[] = [];
  const watched = watchedAudio(fakeAudio(log), () => log.push('progress'));
  const { channels, pcm } = await watched.pcmChannels!();
  expect(channels).toBe(2);
  const got: number[] = [];
  for await (const c of pcm) got.push(c[0]!);
  expect(got).toEqual([0, 1, 2]);
  expect(log).toEqual(['open', 'progress', 'chunk 0', 'progress', 'chunk 1', 'progress', 'chunk 2', 'progress', 'closed']);
});

it('pcmChannels: leaving the PCM early closes the input underneath', async () => {
  const log: string[] = [];
  const { pcm } = await watchedAudio(fakeAudio(log), () => {}).pcmChannels!();
  for await (const _c of pcm) break;
  expect(log).toEqual(['open', 'chunk 0', 'closed']);
});

it('an input without pcmChannels stays without it', () => {
  const { pcmChannels: _omit, ...mono } = fakeAudio([]);
  expect(watchedAudio(mono as StorageAudioInput, () => {}).pcmChannels).toBeUndefined();
});
