/**
 * The Deepgram live session's result logic on its own, in stream time (no recogniser, no clock):
 * which final carries `speech_final` / `from_finalize`, the contiguity of `start`/`duration`, and the
 * UtteranceEnd word-gap rule.
 */
import { LiveOutput } from '../src/deepgram/live/output';
import { SpeechOnsets, UtteranceEndRule } from '../src/deepgram/live/utterance-end';
import { quiet, speech } from './tone';


const word = (w: string, start: number, end: number) => ({ word: w, start, end, confidence: 0.9 });
const utt = (...ws: Array<ReturnType<typeof word>>) => ({ start: ws[0]!.start, end: ws[ws.length - 1]!.end, words: ws });

type Msg = Record<string, unknown>;

function output(query: string, fed = { s: 0 }) {
  const sent: Msg[] = [];
  const out = new LiveOutput({ q: new URLSearchParams(query), model: 'nova-3', requestId: 'r-1', send: (m) => sent.push(m), fedSeconds: () => fed.s });
  const results = () => sent.filter((m) => m.type === 'Results');
  const text = (m: Msg) => (m.channel as { alternatives: Array<{ transcript: string }> }).alternatives[0]!.transcript;
  return { out, sent, results, text, fed };
}

describe('LiveOutput: the flags of finals', () => {
  it('the last final before a pause boundary is speech_final; earlier finals of the segment are plain is_final', () => {
    const { out, results, text } = output('');
    const settlePause = out.boundary(2.5, 'pause');
    out.onFinal(utt(word('one', 0.2, 0.6), word('two', 0.7, 1.0)));
    expect(results()).toHaveLength(0); // held until it is known to be the last one
    out.onFinal(utt(word('three', 1.4, 2.1)));
    settlePause();
    const r = results();
    expect(r.map(text)).toEqual(['one two', 'three']);
    expect(r.map((m) => [m.is_final, m.speech_final, m.from_finalize])).toEqual([
      [true, false, false],
      [true, true, false],
    ]);
    // Contiguous in audio time from 0.
    expect(r[0]).toMatchObject({ start: 0, duration: 1 });
    expect(r[1]).toMatchObject({ start: 1, duration: 1.1 });
  });

  it('a message from after the boundary settles it before the flush reports back; max and finalize boundaries', () => {
    const { out, results, text } = output('interim_results=true');
    const settleMax = out.boundary(4.0, 'max');
    out.onFinal(utt(word('a', 0.5, 3.9)));
    // The next segment's interim arrives first: the held final was the max segment's last.
    out.onPartial('b c', 5.0);
    settleMax(); // late: nothing more to do
    const settleFinalize = out.boundary(6.0, 'finalize');
    out.onFinal(utt(word('b', 4.1, 4.6), word('c', 4.7, 5.5)));
    settleFinalize();
    const r = results();
    expect(r.map((m) => [text(m), m.is_final, m.speech_final, m.from_finalize])).toEqual([
      ['a', true, false, false],
      ['b c', false, false, false],
      ['b c', true, false, true],
    ]);
    expect(r[1]).toMatchObject({ start: 3.9, duration: 1.1 });
  });

  it('a boundary with no words sends nothing; Finalize closes the range with an empty from_finalize final', () => {
    const fed = { s: 3.2 };
    const { out, results } = output('', fed);
    out.boundary(3.2, 'pause')();
    expect(results()).toHaveLength(0);
    out.emptyFinal('finalize');
    expect(results()).toEqual([expect.objectContaining({ start: 0, duration: 3.2, is_final: true, from_finalize: true, speech_final: false })]);
  });
});

describe('UtteranceEnd', () => {
  it('SpeechOnsets marks the start of speech after silence, not short dips inside it', () => {
    const o = new SpeechOnsets();
    o.push(Buffer.concat([quiet(500), speech(300), quiet(30), speech(300), quiet(400), speech(200)]));
    expect(o.recent).toEqual([0.5, 1.53]);
    expect(o.anyBetween(0.6, 1.6)).toBe(true);
    expect(o.anyBetween(0.6, 1.5)).toBe(false);
  });

  it('is sent once the audio ran utterance_end_ms past the last word with no new speech', () => {
    const sent: number[] = [];
    const rule = new UtteranceEndRule(1000, (t) => sent.push(t));
    rule.onAudio(Buffer.concat([quiet(200), speech(800), quiet(300)]), 1.3);
    rule.onFinalWords(1.0, 1.3);
    rule.onAudio(quiet(600), 1.9);
    expect(sent).toEqual([]);
    rule.onAudio(quiet(200), 2.1);
    expect(sent).toEqual([1.0]);
    rule.onAudio(quiet(2000), 4.1);
    expect(sent).toEqual([1.0]); // once per final
  });

  it('is not sent when speech resumes within the gap, nor while an interim shows words', () => {
    const sent: number[] = [];
    const rule = new UtteranceEndRule(1000, (t) => sent.push(t));
    rule.onAudio(Buffer.concat([quiet(200), speech(800), quiet(500), speech(400), quiet(2000)]), 3.9);
    rule.onFinalWords(1.0, 3.9); // late final: the onset at 1.5 s was already heard
    expect(sent).toEqual([]);
    rule.onFinalWords(1.9, 3.9); // the next final restarts the clock: 2 s of silence since
    expect(sent).toEqual([1.9]);
    rule.onFinalWords(4.0, 4.0);
    rule.onInterimWords();
    rule.onAudio(quiet(1500), 5.5);
    expect(sent).toEqual([1.9]);
  });

  it('is not sent inside continuous speech however far the recogniser lags the audio (onsets are kept from the last final on, not 64 of them)', () => {
    const sent: number[] = [];
    const rule = new UtteranceEndRule(1000, (t) => sent.push(t));
    // 100 words with 100 ms pauses (100 onsets), all fed before the recogniser reports its first final.
    const words = Array.from({ length: 100 }, () => Buffer.concat([speech(300), quiet(100)]));
    rule.onAudio(Buffer.concat([quiet(200), ...words]), 40.2);
    rule.onFinalWords(0.5, 40.2); // the first final, far behind: speech went on right after it
    expect(sent).toEqual([]);
    rule.onFinalWords(20.5, 40.2);
    expect(sent).toEqual([]);
  });

  it('LiveOutput sends it only with interim_results=true', () => {
    for (const [query, expected] of [
      ['interim_results=true&utterance_end_ms=1000', 1],
      ['utterance_end_ms=1000', 0],
    ] as const) {
      const fed = { s: 0 };
      const { out, sent } = output(query, fed);
      fed.s = 1.2;
      out.onAudio(Buffer.concat([quiet(200), speech(800), quiet(200)]), fed.s);
      const settle = out.boundary(1.2, 'pause');
      out.onFinal(utt(word('x', 0.2, 1.0)));
      settle();
      fed.s = 2.2;
      out.onAudio(quiet(1000), fed.s);
      expect(sent.filter((m) => m.type === 'UtteranceEnd')).toHaveLength(expected);
    }
  });
});
