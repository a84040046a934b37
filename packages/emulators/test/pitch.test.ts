import { PitchTrack, speakersByPitch, SPLIT_RATIO } from '../src/kit/pitch';
import { voice } from './tone';

it('tracks the pitch of voiced audio frame by frame, in chunks of any size; silence is unvoiced', () => {
  const pcm = Buffer.concat([voice(110, 1), Buffer.alloc(16_000 * 2), voice(210, 1)]);
  const track = new PitchTrack();
  for (let off = 0; off < pcm.length; off += 777) track.push(pcm.subarray(off, off + 777));
  expect(track.median(0, 1)).toBeGreaterThan(100);
  expect(track.median(0, 1)).toBeLessThan(120);
  expect(track.median(1.1, 1.9)).toBe(0);
  expect(track.median(2, 3)).toBeGreaterThan(195);
  expect(track.median(2, 3)).toBeLessThan(225);
});

it('labels utterances by pitch cluster, in order of first appearance; unvoiced ones keep the speaker before', () => {
  expect(speakersByPitch([110, 205, 112, 0, 198])).toEqual([0, 1, 0, 0, 1]);
  expect(speakersByPitch([200, 110, 100])).toEqual([0, 1, 1]);
  // One voice whose utterances vary less than SPLIT_RATIO is one speaker.
  expect(speakersByPitch([100, 100 * (SPLIT_RATIO - 0.05), 104])).toEqual([0, 0, 0]);
  expect(speakersByPitch([0, 0])).toEqual([0, 0]);
});
