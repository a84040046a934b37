/**
 * The AssemblyAI emulator's speaker labels (assemblyai/speakers.ts) and their handshake parameters
 * (providers.md §3.2): letters by first appearance, UNKNOWN for short or unvoiced turns, max_speakers
 * merging extra voices into the closest label, partial labels that decide nothing. Pure: buzzes at
 * known pitches stand in for the synthesised voices.
 */
import { MAX_SPEAKERS, parseParams } from '../src/assemblyai/handshake';
import { MIN_LABELLED_SECONDS, SpeakerLabels, UNKNOWN_SPEAKER } from '../src/assemblyai/speakers';
import { voice } from './tone';

const silence = (seconds: number) => Buffer.alloc(Math.round(16_000 * seconds) * 2);

/** Labels fed `parts` (each [f0 Hz or 0 for silence, seconds]); returns each voiced part's [start, end] in s. */
function fed(labels: SpeakerLabels, parts: Array<[number, number]>): Array<[number, number]> {
  const spans: Array<[number, number]> = [];
  let at = 0;
  for (const [f0, seconds] of parts) {
    labels.push(f0 ? voice(f0, seconds) : silence(seconds));
    if (f0) spans.push([at, at + seconds]);
    at += seconds;
  }
  return spans;
}

it('ended turns get A, B, … by first appearance; a voice within SPLIT_RATIO of a speaker is that speaker', () => {
  const s = new SpeakerLabels();
  // Low, high, low again (a little higher: the same voice), then a third, much higher voice.
  const spans = fed(s, [[105, 1.5], [0, 1], [200, 1.5], [0, 1], [112, 1.5], [0, 1], [320, 1.5]]);
  expect(spans.map(([a, b]) => s.label(a, b, true))).toEqual(['A', 'B', 'A', 'C']);
  expect(s.count).toBe(3);
});

it('a turn shorter than MIN_LABELLED_SECONDS, or with no voiced frame, is UNKNOWN and starts no speaker', () => {
  const s = new SpeakerLabels();
  const [short, long] = fed(s, [[200, MIN_LABELLED_SECONDS - 0.2], [0, 1.5], [105, 1.5]]);
  expect(s.label(short![0], short![1], true)).toBe(UNKNOWN_SPEAKER);
  expect(s.label(MIN_LABELLED_SECONDS - 0.2, MIN_LABELLED_SECONDS + 1.2, true)).toBe(UNKNOWN_SPEAKER); // silence
  expect(s.count).toBe(0);
  // The first speaker heard for long enough is A, though a higher voice spoke (briefly) before.
  expect(s.label(long![0], long![1], true)).toBe('A');
});

it('max_speakers caps the letters: a new voice past the cap joins the closest speaker', () => {
  const one = new SpeakerLabels(1);
  const spans1 = fed(one, [[105, 1.5], [0, 1], [200, 1.5]]);
  expect(spans1.map(([a, b]) => one.label(a, b, true))).toEqual(['A', 'A']);
  const two = new SpeakerLabels(2);
  const spans2 = fed(two, [[105, 1.5], [0, 1], [200, 1.5], [0, 1], [320, 1.5], [0, 1], [140, 1.5]]);
  // 320 Hz is closer to 200 than to 105 (log scale); 140 Hz closer to 105.
  expect(spans2.map(([a, b]) => two.label(a, b, true))).toEqual(['A', 'B', 'B', 'A']);
  expect(two.count).toBe(2);
  expect(MAX_SPEAKERS).toBe(10);
  expect(new SpeakerLabels().count).toBe(0);
});

it('a partial label is what the words so far would get; only an ended turn joins (or starts) a speaker; relabel never starts one', () => {
  const s = new SpeakerLabels();
  const [low, high] = fed(s, [[105, 1.5], [0, 1], [200, 1.5]]);
  expect(s.label(low![0], low![1], false)).toBe('A');
  expect(s.count).toBe(0);
  expect(s.relabel(low![0], low![1])).toBe(UNKNOWN_SPEAKER); // no speaker yet
  expect(s.label(low![0], low![1], true)).toBe('A');
  expect(s.label(high![0], high![1], false)).toBe('B');
  expect(s.count).toBe(1);
  expect(s.relabel(high![0], high![1])).toBe('A'); // the closest of the speakers there are
  expect(s.label(high![0], high![1], true)).toBe('B');
  expect(s.relabel(high![0], high![1])).toBe('B');
});

describe('handshake: speaker_labels and max_speakers (§3.2)', () => {
  const parse = (query: string) => parseParams(new URLSearchParams(`speech_model=universal-streaming-english&${query}`), true);

  it('off by default; speaker_labels=true turns them on; max_speakers 1..10 with it', () => {
    expect(parse('')).toMatchObject({ params: { speakerLabels: false, maxSpeakers: undefined } });
    expect(parse('speaker_labels=false')).toMatchObject({ params: { speakerLabels: false } });
    expect(parse('speaker_labels=true')).toMatchObject({ params: { speakerLabels: true, maxSpeakers: undefined } });
    expect(parse('speaker_labels=true&max_speakers=1')).toMatchObject({ params: { speakerLabels: true, maxSpeakers: 1 } });
    expect(parse('speaker_labels=true&max_speakers=10')).toMatchObject({ params: { maxSpeakers: 10 } });
  });

  it.each([
    ['speaker_labels=yes', 'speaker_labels must be true or false'],
    ['speaker_labels=true&max_speakers=0', 'max_speakers must be an integer between 1 and 10'],
    ['speaker_labels=true&max_speakers=11', 'max_speakers must be an integer between 1 and 10'],
    ['speaker_labels=true&max_speakers=2.5', 'max_speakers must be an integer between 1 and 10'],
    ['speaker_labels=true&max_speakers=', 'max_speakers must be an integer between 1 and 10'],
    // What the service does with max_speakers alone is unconfirmed: the emulator takes the strict side.
    ['max_speakers=2', 'max_speakers requires speaker_labels=true'],
    ['speaker_labels=false&max_speakers=2', 'max_speakers requires speaker_labels=true'],
  ])('%s → refused: %s', (query, problem) => {
    expect(parse(query)).toEqual({ problems: [problem] });
  });
});
