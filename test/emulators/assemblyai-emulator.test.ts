/**
 * The AssemblyAI v3 emulator as a product, on a plain `ws` client: turn detection on continuous speech
 * (endpoints at pauses per min_turn_silence / max_turn_silence and every few seconds of speech without
 * one), Terminate finalising everything received, speaker labels (`speaker_labels`, `max_speakers`), and
 * recogniser capacity (refusal with the service's own session-limit close, a slot given back on every end
 * path). Audio is sent unpaced (`strictRate: false`):
 * endpointing runs on audio time, so the results do not depend on the pace, and the file stays short.
 */
import { wordErrorRate } from '@scribe-fleet/core';
import { RecogniserPool, startAssemblyAIEmulator, TOO_MANY_SESSIONS_REASON, type AssemblyAIEmulatorHandle, type AssemblyAIEmulatorOptions } from '@scribe-fleet/emulators';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { INTERVIEW_TURNS, makeInterview } from '../helpers/interview';
import { decodeFile, rawClient, type RawClient } from '../providers/streaming-test-kit';
import { framesOf, liveSuite, type Speech } from './live-kit';

jest.setTimeout(120_000);

const KEY = 'aai-emulator-key-2b7e';
const MODEL_QUERY = 'speech_model=universal-streaming-english&sample_rate=16000';
type Msg = Record<string, unknown>;
type TurnWord = { text: string; start: number; end: number; word_is_final: boolean };

const suite = liveSuite();

async function emulator(opts: Partial<AssemblyAIEmulatorOptions> = {}): Promise<AssemblyAIEmulatorHandle> {
  return suite.track(await startAssemblyAIEmulator({ apiKeys: [KEY], strictRate: false, ...opts }));
}

function open(e: AssemblyAIEmulatorHandle, query = ''): Promise<RawClient> {
  return rawClient(`${e.wsUrl}/v3/ws?${MODEL_QUERY}${query}`, { Authorization: KEY });
}

/** Stream `audio` in 100 ms frames (optionally sending `midway` after `midwayAt` frames), Terminate, and collect to the close. */
async function stream(e: AssemblyAIEmulatorHandle, audio: Speech, query = '', midway?: { at: number; msg: Msg }): Promise<{ messages: Msg[]; ends: Msg[]; code: number }> {
  const c = await open(e, query);
  await c.next((m) => m.type === 'Begin');
  for (const [i, f] of framesOf(audio.pcm, 100).entries()) {
    if (midway && i === midway.at) c.ws.send(JSON.stringify(midway.msg));
    c.ws.send(f);
  }
  c.ws.send(JSON.stringify({ type: 'Terminate' }));
  const { code } = await c.closed;
  return { messages: c.messages, ends: c.messages.filter((m) => m.type === 'Turn' && m.end_of_turn === true), code };
}

/** Resolves when the emulator has closed the session `c` (its id from Begin) and given back what it held. */
function sessionClosed(e: AssemblyAIEmulatorHandle, c: RawClient): Promise<void> {
  const id = c.messages.find((m) => m.type === 'Begin')!.id as string;
  if (e.sessions().some((s) => s.id === id && s.closeCode !== undefined)) return Promise.resolve();
  return new Promise((resolve) => {
    const on = (info: { id: string }) => {
      if (info.id !== id) return;
      e.events.off('session-closed', on);
      resolve();
    };
    e.events.on('session-closed', on);
  });
}

const transcriptOf = (ends: Msg[]) => ends.map((t) => t.transcript as string).join(' ');

describe('turn detection', () => {
  test('60 s of continuous speech (250 ms pauses only) → ≥ 10 turns, in order, all audio finalised by Terminate (WER ≤ 15 %)', async () => {
    const speech = suite.speech();
    expect(speech.seconds).toBeGreaterThanOrEqual(60);
    const e = await emulator();
    const { messages, ends, code } = await stream(e, speech);
    expect(code).toBe(1000);
    // The pauses are shorter than min_turn_silence (400 ms): the turns end at word gaps every few seconds.
    expect(ends.length).toBeGreaterThanOrEqual(10);
    expect(ends.map((t) => t.turn_order)).toEqual(ends.map((_, i) => i));
    for (const t of ends) {
      const words = t.words as TurnWord[];
      expect(words.every((w) => w.word_is_final && Number.isInteger(w.start) && Number.isInteger(w.end))).toBe(true);
      expect(t.transcript).toBe(words.map((w) => w.text).join(' '));
      expect(t.utterance).toBe(t.transcript);
      // No turn runs much past the 4 s of continuous speech an endpoint allows (1.5 × at the most).
      expect(words.at(-1)!.end - words[0]!.start).toBeLessThanOrEqual(6500);
    }
    const all = ends.flatMap((t) => t.words as TurnWord[]);
    for (let i = 1; i < all.length; i++) expect(all[i]!.start).toBeGreaterThanOrEqual(all[i - 1]!.start);
    expect(wordErrorRate(speech.text, transcriptOf(ends))).toBeLessThanOrEqual(0.15);
    // Termination last, after every Turn; the audio it reports is what was sent.
    expect(messages.at(-1)).toMatchObject({ type: 'Termination', audio_duration_seconds: Math.round(Math.ceil(speech.seconds * 10) / 10) });
  });

  test('a pause of min_turn_silence ends a turn; with end_of_turn_confidence_threshold 1 only max_turn_silence does; UpdateConfiguration applies from then on', async () => {
    const e = await emulator({ maxSegmentMs: 30_000 }); // only pauses end turns here
    const four = suite.speech().first(4);
    const [short, strict, updated] = await Promise.all([
      stream(e, four, '&min_turn_silence=200'),
      stream(e, four, '&min_turn_silence=200&max_turn_silence=1000&end_of_turn_confidence_threshold=1'),
      // Sent 1 s into the second sentence: the pauses after it end turns.
      stream(e, four, '', { at: Math.floor(four.sentences[0]!.end / 3200) + 10, msg: { type: 'UpdateConfiguration', min_turn_silence: 200 } }),
    ]);
    // One turn per sentence: each of the 250 ms pauses ended one.
    expect(short.ends).toHaveLength(4);
    for (const [i, t] of short.ends.entries()) expect(wordErrorRate(four.sentences[i]!.text, t.transcript as string)).toBeLessThanOrEqual(0.25);
    // Not confident enough for min_turn_silence: the 250 ms pauses are under max_turn_silence → one turn (Terminate ends it).
    expect(strict.ends).toHaveLength(1);
    expect(wordErrorRate(four.text, transcriptOf(strict.ends))).toBeLessThanOrEqual(0.15);
    // The default 400 ms until the update: sentences 1–2 in one turn, then one turn each for 3 and 4.
    expect(updated.ends).toHaveLength(3);
    expect(wordErrorRate(four.text, transcriptOf(updated.ends))).toBeLessThanOrEqual(0.15);
  });
});

describe('speaker labels', () => {
  test('speaker_labels=true: every Turn has speaker_label; the interview\'s turns end A, B, A; SpeakerRevision just before Termination', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'scribe-aai-spk-'));
    const pcm = await decodeFile(makeInterview(dir)).finally(() => rm(dir, { recursive: true, force: true }));
    const e = await emulator();
    const { messages, ends, code } = await stream(e, { pcm } as Speech, '&speaker_labels=true');
    expect(code).toBe(1000);
    const turns = messages.filter((m) => m.type === 'Turn');
    expect(turns.every((t) => typeof t.speaker_label === 'string' && /^([AB]|UNKNOWN)$/.test(t.speaker_label))).toBe(true);
    expect(ends.map((t) => t.speaker_label)).toEqual(['A', 'B', 'A']);
    for (const [i, t] of ends.entries()) expect(wordErrorRate(INTERVIEW_TURNS[i]!.text, t.transcript as string)).toBeLessThanOrEqual(0.35);
    // A Turn whose words span under a second is UNKNOWN.
    const span = (t: Msg) => (t.words as TurnWord[]).at(-1)!.end - (t.words as TurnWord[])[0]!.start;
    for (const t of turns.filter((t) => (t.words as TurnWord[]).length > 0 && span(t) < 1000)) expect(t.speaker_label).toBe('UNKNOWN');
    expect(messages.slice(-2).map((m) => m.type)).toEqual(['SpeakerRevision', 'Termination']);
    expect(messages.at(-2)).toEqual({ type: 'SpeakerRevision', revisions: [] });
    // Without speaker_labels: no label on any Turn, no SpeakerRevision.
    const plain = await stream(e, { pcm } as Speech);
    expect(plain.messages.some((m) => 'speaker_label' in m || m.type === 'SpeakerRevision')).toBe(false);
    // max_speakers=1: one letter for every voice.
    const one = await stream(e, { pcm } as Speech, '&speaker_labels=true&max_speakers=1');
    expect(one.ends.map((t) => t.speaker_label)).toEqual(['A', 'A', 'A']);
  });

  test.each([
    ['&speaker_labels=true&max_speakers=11', /max_speakers must be an integer between 1 and 10/],
    ['&max_speakers=2', /max_speakers requires speaker_labels=true/],
    ['&speaker_labels=1', /speaker_labels must be true or false/],
  ])('%s → Error frame + close 3006', async (query, reason) => {
    const c = await open(await emulator(), query);
    const closed = await c.closed;
    expect(closed.code).toBe(3006);
    expect(closed.reason).toMatch(reason);
    expect(c.messages).toEqual([{ type: 'Error', error_code: 3006, error: closed.reason }]);
  });
});

describe('capacity: recognisers', () => {
  test('at capacity a session is closed 1008 "Too many concurrent sessions" (counted); the slot comes back on every end path', async () => {
    const pool = new RecogniserPool(1);
    const e = await emulator({ recognisers: pool });
    expect(e.recognisers).toBe(pool);

    const holder = await open(e);
    await holder.next((m) => m.type === 'Begin');
    const refused = await open(e);
    expect(await refused.closed).toEqual({ code: 1008, reason: TOO_MANY_SESSIONS_REASON });
    expect(refused.messages).toEqual([]); // no Begin, no Error frame: the limit close
    expect(pool.refused).toBe(1);
    expect(e.concurrency.refusals(KEY)).toBe(1);
    const stats = (await (await fetch(`${e.url}/_emulator/stats`)).json()) as { keys: Record<string, { refused: number; inFlight: number }> };
    expect(stats.keys[KEY]).toMatchObject({ refused: 1, inFlight: 1 });

    // Each way a session ends gives its recogniser back: the next session is admitted.
    const endings: Array<[string, (c: RawClient) => void]> = [
      ['client close without Terminate', (c) => c.ws.close(1000)],
      ['Terminate → Termination', (c) => c.ws.send(JSON.stringify({ type: 'Terminate' }))],
      ['an error close (3006)', (c) => c.ws.send('{not json')],
      ['a frame-duration close (3007)', (c) => c.ws.send(Buffer.alloc(320))],
    ];
    let current = holder;
    for (const [name, end] of endings) {
      const closed = sessionClosed(e, current);
      end(current);
      await closed;
      expect([name, pool.inUse]).toEqual([name, 0]);
      current = await open(e);
      await current.next((m) => m.type === 'Begin');
    }
    // A drop (fault: the socket destroyed after 200 ms of audio) gives it back too.
    e.faults = { dropAfterAudioMs: 200 };
    const dropped = await open(e);
    expect((await dropped.closed).code).toBe(1008); // `current` still has the only recogniser
    let closed = sessionClosed(e, current);
    current.ws.close();
    await closed;
    const victim = await open(e);
    await victim.next((m) => m.type === 'Begin');
    closed = sessionClosed(e, victim);
    victim.ws.send(Buffer.alloc(3200));
    victim.ws.send(Buffer.alloc(3200));
    expect((await victim.closed).code).toBe(1006);
    await closed;
    expect(pool.inUse).toBe(0);
    expect(pool.maxInUse).toBe(1);
    expect(e.concurrency.inFlight(KEY)).toBe(0);
  });
});
