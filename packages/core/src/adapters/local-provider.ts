import { randomUUID } from 'node:crypto';
import { pacedSend, chunkBytesFor, rechunk } from '../domain/pacing';
import { segmentFromWords, type Transcript } from '../domain/transcript';
import type { AudioForm, Provider, ProviderResult, SessionContext, TranscribeRequest } from '../ports/provider';
import { SphinxSession, type SphinxMessage } from './sphinx-recogniser';

export interface LocalProviderOptions {
  /** Chunk length for stream mode (default 100 ms). */
  chunkMs?: number;
  /** Pacing speed for stream mode: 1 = real time (default). */
  speed?: number;
}

/**
 * The embedded offline recogniser (pocketsphinx). Batch mode feeds the decoded audio as fast as the
 * recogniser takes it; stream mode feeds it on real-time deadlines in `chunkMs` chunks, like a live
 * WebSocket session, and collects the final results with their word times.
 */
export class LocalProvider implements Provider {
  readonly name = 'local';
  constructor(private readonly opts: LocalProviderOptions = {}) {}

  /** The recogniser reads decoded 16 kHz PCM in both modes. */
  audioForm(): AudioForm {
    return 'pcm';
  }

  async transcribe(req: TranscribeRequest, ctx: SessionContext): Promise<ProviderResult> {
    const requestId = randomUUID();
    ctx.onEvent?.({ type: 'session:open', requestId });
    let finals = 0;
    let firstResult = false;
    const onMessage = (m: SphinxMessage) => {
      if ((m.type === 'partial' || m.type === 'final') && !firstResult) {
        firstResult = true;
        ctx.onEvent?.({ type: 'session:first-result', audioSeconds: m.type === 'partial' ? m.audio_end : m.end });
      }
      if (m.type === 'final') ctx.onEvent?.({ type: 'session:final', index: finals++, start: m.start, end: m.end, segment: segmentFromWords(m.words) });
    };
    const session = new SphinxSession({ partialMs: req.mode === 'stream' ? 100 : 0, exactBlocks: req.mode === 'batch', onMessage });
    const abort = () => session.kill();
    ctx.signal.addEventListener('abort', abort, { once: true });
    let bytes = 0;
    let chunks = 0;
    try {
      let pacing;
      if (req.mode === 'stream') {
        const chunkBytes = chunkBytesFor(this.opts.chunkMs ?? 100);
        pacing = await pacedSend({
          chunks: rechunk(req.audio.pcm(ctx.signal), chunkBytes),
          clock: ctx.clock,
          speed: this.opts.speed ?? 1,
          signal: ctx.signal,
          onLateness: (ms) => ctx.onEvent?.({ type: 'session:chunk-lateness', ms }),
          send: async (chunk) => {
            bytes += chunk.length;
            chunks += 1;
            await session.write(chunk);
          },
        });
      } else {
        for await (const pcm of req.audio.pcm(ctx.signal)) {
          bytes += pcm.length;
          chunks += 1;
          await session.write(pcm);
        }
      }
      const res = await session.end();
      ctx.onEvent?.({ type: 'session:closed' });
      const transcript: Transcript = {
        provider: this.name,
        model: req.model,
        requestId,
        duration: res.duration,
        channels: 1,
        segments: res.finals.map((f) => segmentFromWords(f.words)),
      };
      const stats: ProviderResult['stats'] = { requestId, bytesSent: bytes, chunksSent: chunks, finalResults: res.finals.length, reconnects: 0 };
      if (pacing) stats.pacing = pacing;
      return { transcript, stats };
    } finally {
      ctx.signal.removeEventListener('abort', abort);
      session.kill();
    }
  }
}
