import { randomUUID } from 'node:crypto';
import { wantsMultichannel } from '../domain/catalogue';
import { UnsupportedCombinationError } from '../domain/errors';
import { pacedSend, chunkBytesFor, rechunk, PCM_BYTES_PER_SECOND, type PacingReport } from '../domain/pacing';
import { segmentFromWords, type Segment, type Transcript } from '../domain/transcript';
import type { AudioForm, Provider, ProviderResult, SessionContext, TranscribeRequest } from '../ports/provider';
import { SphinxSession, type SphinxMessage, type SphinxResult } from './sphinx-recogniser';

export interface LocalProviderOptions {
  /** Chunk length for stream mode (default 100 ms). */
  chunkMs?: number;
  /** Pacing speed for stream mode: 1 = real time (default). */
  speed?: number;
}

export { wantsMultichannel };

/** Channels the local recogniser transcribes separately at most (one recogniser process each). */
export const MAX_CHANNELS = 8;

/** Split interleaved s16le frames of `channels` samples into one buffer per channel. */
export function deinterleave(pcm: Buffer, channels: number): Buffer[] {
  if (channels === 1) return [pcm];
  const frames = Math.floor(pcm.length / (2 * channels));
  const out = Array.from({ length: channels }, () => Buffer.allocUnsafe(frames * 2));
  for (let f = 0, src = 0; f < frames; f++) {
    const dst = f * 2;
    for (let c = 0; c < channels; c++, src += 2) {
      const o = out[c]!;
      o[dst] = pcm[src]!;
      o[dst + 1] = pcm[src + 1]!;
    }
  }
  return out;
}

/**
 * The embedded offline recogniser (pocketsphinx). Batch mode feeds the decoded audio as fast as the
 * recogniser takes it; stream mode feeds it on real-time deadlines in `chunkMs` chunks, like a live
 * WebSocket session, and collects the final results with their word times.
 *
 * With the job option `multichannel`, the source is decoded keeping its channels (AudioInput
 * `pcmChannels`, interleaved) and each channel is fed to a recogniser session of its own, in
 * lockstep (a chunk is read once every session has taken its part of the previous one, so the
 * slowest session holds the decoder back). The segments of all channels are merged by start time,
 * each with its `channel`, and the transcript's `channels` is the number decoded.
 */
export class LocalProvider implements Provider {
  readonly name = 'local';
  constructor(private readonly opts: LocalProviderOptions = {}) {}

  /** The recogniser reads decoded 16 kHz PCM in both modes. */
  audioForm(): AudioForm {
    return 'pcm';
  }

  async transcribe(req: TranscribeRequest, ctx: SessionContext): Promise<ProviderResult> {
    const multichannel = wantsMultichannel(req.options);
    if (multichannel && !req.audio.pcmChannels) throw new UnsupportedCombinationError('multichannel: this audio input cannot decode the channels of its source separately');
    const requestId = randomUUID();
    ctx.onEvent?.({ type: 'session:open', requestId });
    let finals = 0;
    let firstResult = false;
    const onMessage = (m: SphinxMessage, channel?: number) => {
      if ((m.type === 'partial' || m.type === 'final') && !firstResult) {
        firstResult = true;
        ctx.onEvent?.({ type: 'session:first-result', audioSeconds: m.type === 'partial' ? m.audio_end : m.end });
      }
      if (m.type !== 'final') return;
      // A multichannel final's segment has its channel, and the event the channel count: the worker's
      // checkpoint resumes where every channel is final.
      const segment = segmentFromWords(m.words, channel);
      ctx.onEvent?.({ type: 'session:final', index: finals++, start: m.start, end: m.end, segment, ...(channel === undefined ? {} : { channels: sessions.length }) });
    };
    const sessions: SphinxSession[] = [];
    const open = (channel?: number) => {
      const s = new SphinxSession({
        partialMs: req.mode === 'stream' ? 100 : 0,
        exactBlocks: req.mode === 'batch',
        onMessage: channel === undefined ? onMessage : (m) => onMessage(m, channel),
      });
      sessions.push(s);
      return s;
    };
    const abort = () => sessions.forEach((s) => s.kill());
    ctx.signal.addEventListener('abort', abort, { once: true });
    let bytes = 0;
    let chunks = 0;
    let iterator: AsyncIterator<Buffer> | undefined;
    try {
      let channels = 1;
      let source: AsyncIterable<Buffer>;
      let send: (chunk: Buffer) => Promise<void>;
      if (multichannel) {
        const decoded = await req.audio.pcmChannels!(ctx.signal);
        iterator = decoded.pcm[Symbol.asyncIterator]();
        const it = iterator;
        source = { [Symbol.asyncIterator]: () => it };
        channels = decoded.channels;
        // One recogniser process per channel: a file of many channels would take a core each.
        if (channels > MAX_CHANNELS) throw new UnsupportedCombinationError(`multichannel: the source has ${channels} channels; the local recogniser transcribes at most ${MAX_CHANNELS} separately`);
        for (let c = 0; c < channels; c++) open(c);
        send = async (chunk) => {
          const parts = deinterleave(chunk, channels);
          await Promise.all(sessions.map((s, c) => s.write(parts[c]!)));
        };
      } else {
        const session = open();
        source = req.audio.pcm(ctx.signal);
        send = (chunk) => session.write(chunk);
      }
      if (ctx.signal.aborted) abort();
      let pacing: PacingReport | undefined;
      if (req.mode === 'stream') {
        // Interleaved channels: a chunk is `chunkMs` of every channel, paced at the frame rate.
        const chunkBytes = chunkBytesFor(this.opts.chunkMs ?? 100) * channels;
        pacing = await pacedSend({
          chunks: rechunk(source, chunkBytes),
          byteRate: PCM_BYTES_PER_SECOND * channels,
          clock: ctx.clock,
          speed: this.opts.speed ?? 1,
          signal: ctx.signal,
          onLateness: (ms) => ctx.onEvent?.({ type: 'session:chunk-lateness', ms }),
          send: async (chunk) => {
            bytes += chunk.length;
            chunks += 1;
            await send(chunk);
          },
        });
      } else {
        for await (const pcm of source) {
          bytes += pcm.length;
          chunks += 1;
          await send(pcm);
        }
      }
      iterator = undefined; // read to its end
      const results = await Promise.all(sessions.map((s) => s.end()));
      ctx.onEvent?.({ type: 'session:closed' });
      const transcript: Transcript = {
        provider: this.name,
        model: req.model,
        requestId,
        duration: Math.max(...results.map((r) => r.duration)),
        channels,
        segments: multichannel ? mergeChannels(results) : results[0]!.finals.map((f) => segmentFromWords(f.words)),
      };
      const finalResults = results.reduce((n, r) => n + r.finals.length, 0);
      const stats: ProviderResult['stats'] = { requestId, bytesSent: bytes, chunksSent: chunks, finalResults, reconnects: 0 };
      if (pacing) stats.pacing = pacing;
      return { transcript, stats };
    } finally {
      ctx.signal.removeEventListener('abort', abort);
      sessions.forEach((s) => s.kill());
      // Stop the decoder if the PCM was not read to its end (a session failed, an abort).
      await iterator?.return?.().catch(() => undefined);
    }
  }
}

/** The segments of every channel's session, each with its channel, in order of start time (ties by channel). */
function mergeChannels(results: SphinxResult[]): Segment[] {
  const segments = results.flatMap((r, channel) => r.finals.map((f) => segmentFromWords(f.words, channel)));
  return segments.sort((a, b) => a.start - b.start || a.channel! - b.channel!);
}
