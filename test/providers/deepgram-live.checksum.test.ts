/**
 * Deepgram live ends with a Metadata message whose `sha256` is the hash of the audio Deepgram
 * received. The client hashes exactly the audio bytes it put on the socket and compares; a difference
 * (corruption in transit, lost or doubled frames) is CHECKSUM_MISMATCH, retryable.
 *
 * The emulator (packages/emulators/src/deepgram) hashes every binary frame it accepts, so the happy
 * path runs through it. A tiny fake server on 127.0.0.1 sends a wrong sha256 for the mismatch.
 */
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { WebSocketServer } from 'ws';
import { ChecksumMismatchError, ScribeError, type AudioInput } from '@scribe-fleet/core';
import { DeepgramProvider } from '@scribe-fleet/core/adapters/providers/deepgram';
import { startDeepgramEmulator, type DeepgramEmulatorHandle } from '@scribe-fleet/emulators';
import { rawClient, sessionContext, toneInput } from './streaming-test-kit';

jest.setTimeout(60_000);

const KEY = 'dg-checksum-key';

async function pcmOf(audio: AudioInput): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const b of audio.pcm()) parts.push(b);
  return Buffer.concat(parts);
}
const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe('through the emulator', () => {
  let emu: DeepgramEmulatorHandle;
  beforeAll(async () => {
    emu = await startDeepgramEmulator({ keys: { [KEY]: 'project-checksum' } });
  });
  afterAll(async () => {
    await emu?.close();
  });

  test("the emulator's Metadata sha256 is the sha256 of the audio bytes it received", async () => {
    const pcm = await pcmOf(toneInput(1));
    const c = await rawClient(`${emu.wsUrl}/v1/listen?encoding=linear16&sample_rate=16000`, { authorization: `Token ${KEY}` });
    for (let off = 0; off < pcm.length; off += 3200) c.ws.send(pcm.subarray(off, off + 3200)); // 1 s: within the burst allowance
    c.ws.send(JSON.stringify({ type: 'KeepAlive' })); // text frames are not audio
    c.ws.send(JSON.stringify({ type: 'CloseStream' }));
    const meta = await c.next((m) => m.type === 'Metadata');
    expect(meta.sha256).toBe(sha256(pcm));
    await c.closed;
  });

  test('happy path: our client streams, the checksums agree, the session completes', async () => {
    const client = new DeepgramProvider({ apiKey: KEY, baseUrl: emu.url });
    const audio = toneInput(1.2);
    const { transcript, stats } = await client.transcribe({ mode: 'stream', model: 'nova-3', options: {}, audio }, sessionContext());
    expect(stats.bytesSent).toBe((await pcmOf(audio)).length);
    expect(transcript.duration).toBeCloseTo(1.2, 2);
    const rec = await emu.waitForSession((s) => s.requestId === stats.requestId);
    expect(rec).toMatchObject({ metadataSent: true, closeCode: 1000, audioBytes: stats.bytesSent });
  });
});

describe('against a fake Deepgram that reports a checksum', () => {
  type Mode = 'wrong' | 'right' | 'uppercase' | 'absent';
  let wss: WebSocketServer;
  let url: string;
  let mode: Mode = 'right';
  beforeAll(async () => {
    wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
    await once(wss, 'listening');
    url = `http://127.0.0.1:${(wss.address() as AddressInfo).port}`;
    wss.on('connection', (ws) => {
      const hash = createHash('sha256');
      let bytes = 0;
      ws.on('message', (data, isBinary) => {
        if (isBinary) {
          hash.update(data as Buffer);
          bytes += (data as Buffer).length;
          return;
        }
        if ((JSON.parse(data.toString()) as { type?: string }).type !== 'CloseStream') return;
        const received = hash.digest('hex');
        const reported = mode === 'wrong' ? sha256(Buffer.from('some other audio')) : mode === 'uppercase' ? received.toUpperCase() : received;
        ws.send(JSON.stringify({ type: 'Metadata', request_id: 'fake-req', duration: bytes / 32_000, channels: 1, ...(mode === 'absent' ? {} : { sha256: reported }) }));
        ws.close(1000);
      });
    });
  });
  afterAll(async () => {
    for (const c of wss.clients) c.terminate();
    await new Promise<void>((resolve) => wss.close(() => resolve()));
  });

  async function run(m: Mode) {
    mode = m;
    const client = new DeepgramProvider({ apiKey: KEY, baseUrl: url });
    return client.transcribe({ mode: 'stream', model: 'nova-3', options: {}, audio: toneInput(0.5) }, sessionContext());
  }

  test('a wrong sha256 in Metadata → CHECKSUM_MISMATCH (retryable), naming both hashes', async () => {
    const err = await run('wrong').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ChecksumMismatchError);
    const e = err as ScribeError;
    expect(e.code).toBe('CHECKSUM_MISMATCH');
    expect(e.kind).toBe('retry');
    const sent = sha256(await pcmOf(toneInput(0.5)));
    expect(e.details).toMatchObject({ sent, received: sha256(Buffer.from('some other audio')), bytesSent: 16_000, requestId: 'fake-req' });
    expect(e.message).toContain(sent);
  });

  test('the right sha256 (in either case) passes; a Metadata without sha256 cannot be checked and passes', async () => {
    for (const m of ['right', 'uppercase', 'absent'] as const) {
      const r = await run(m);
      expect(r.stats.bytesSent).toBe(16_000);
      expect(r.transcript.requestId).toBe('fake-req');
    }
  });
});
