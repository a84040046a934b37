/**
 * The official Deepgram SDK (@deepgram/sdk, pinned) against the Deepgram emulator, pre-recorded and
 * live: if the emulator did not speak the real protocol (paths, auth scheme, query encoding, body
 * modes, message shapes, the CloseStream → Metadata → 1000 handshake), the vendor's own client would
 * fail here. Nothing in this file adapts the SDK to the emulator beyond pointing its environment at it.
 */
import { createReadStream } from 'node:fs';
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { DeepgramClient, DeepgramError } from '@deepgram/sdk';
import { chunkBytesFor, pacedSend, rechunk, transcriptText, wordErrorRate } from '@scribe-fleet/core';
import { decodeToPcm } from '@scribe-fleet/core/adapters/s3/ffmpeg-decoder';
import { systemClock } from '@scribe-fleet/core/adapters/system-clock';
import { prerecordedToTranscript } from '@scribe-fleet/core/adapters/providers/deepgram';
import { DEFAULT_SAMPLES, SENTENCES, type SampleSpec } from '../../infra/local/src/samples';
import { startDeepgramEmulator, type DeepgramEmulatorHandle } from '@scribe-fleet/emulators';
import { makeFixtures, type FixtureSet } from './streaming-test-kit';

const KEY = 'sdk-test-key';
const ACCESS_TOKEN = 'eyJhbGciOiJIUzI1NiJ9.sdk-test.token';
const LONG = DEFAULT_SAMPLES[0]!;
const SHORT: SampleSpec = { name: 'short.wav', voice: 'kal16', format: 'wav', text: SENTENCES[3] };
const MAX_WER = 0.15;

let fx: FixtureSet;
let emu: DeepgramEmulatorHandle;
let files: Server;
let filesUrl: string;

function sdk(opts: { apiKey?: string; accessToken?: string } = { apiKey: KEY }): DeepgramClient {
  return new DeepgramClient({
    ...opts,
    environment: { base: emu.url, production: emu.wsUrl, agent: emu.wsUrl, agentRest: emu.url },
    maxRetries: 0,
  });
}

/** The pre-recorded response through the SDK's union type (sync result vs callback acceptance). */
function words(res: unknown): string {
  const r = res as { results?: { channels: Array<{ alternatives: Array<{ transcript: string }> }> } };
  if (!r.results) throw new Error(`no results in ${JSON.stringify(res).slice(0, 200)}`);
  return r.results.channels[0]!.alternatives[0]!.transcript;
}

beforeAll(async () => {
  fx = await makeFixtures([LONG, SHORT]);
  emu = await startDeepgramEmulator({ keys: { [KEY]: 'project-sdk' }, accessTokens: { [ACCESS_TOKEN]: 'project-sdk' }, strictPacing: true });
  files = createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'audio/wav' });
    createReadStream(fx.get(LONG.name).path).pipe(res);
  });
  files.listen(0, '127.0.0.1');
  await once(files, 'listening');
  filesUrl = `http://127.0.0.1:${(files.address() as AddressInfo).port}`;
}, 60_000);

afterAll(async () => {
  await emu?.close();
  files?.close();
  await fx?.cleanup();
});

describe('@deepgram/sdk pre-recorded', () => {
  test('transcribeFile (binary body): real transcript, §1.3 shape our normaliser reads too', async () => {
    const res = await sdk().listen.v1.media.transcribeFile(createReadStream(fx.get(LONG.name).path), {
      model: 'nova-3',
      smart_format: true,
      utterances: true,
      paragraphs: true,
    });
    expect(wordErrorRate(LONG.text, words(res))).toBeLessThanOrEqual(MAX_WER);
    const r = res as unknown as Parameters<typeof prerecordedToTranscript>[0] & {
      metadata: Record<string, unknown>;
      results: { channels: Array<{ alternatives: Array<{ paragraphs?: unknown; words: Array<{ punctuated_word?: string }> }> }> };
    };
    expect(r.metadata).toMatchObject({ transaction_key: 'deprecated', channels: 1 });
    expect(r.metadata.request_id).toMatch(/^[0-9a-f-]{36}$/);
    expect(r.metadata.created).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    expect(r.results.channels[0]!.alternatives[0]!.paragraphs).toBeDefined();
    expect(r.results.channels[0]!.alternatives[0]!.words[0]!.punctuated_word).toBeDefined();
    expect(transcriptText(prerecordedToTranscript(r, 'nova-3'))).toBe(words(res));
  });

  test('transcribeUrl (JSON body) with an access token (Bearer)', async () => {
    const res = await sdk({ accessToken: ACCESS_TOKEN }).listen.v1.media.transcribeUrl({ url: `${filesUrl}/long.wav`, model: 'nova-3' });
    expect(wordErrorRate(LONG.text, words(res))).toBeLessThanOrEqual(MAX_WER);
    const rec = emu.requests.at(-1)!;
    expect(rec).toMatchObject({ body: 'url', status: 200, project: 'project-sdk' });
  });

  test('a bad key is a 401 the SDK reports with the legacy error body', async () => {
    const err = await sdk({ apiKey: 'not-a-key' })
      .listen.v1.media.transcribeFile(createReadStream(fx.get(SHORT.name).path), { model: 'nova-3' })
      .then(() => null, (e: unknown) => e);
    expect(err).toBeInstanceOf(DeepgramError);
    expect((err as DeepgramError).statusCode).toBe(401);
    expect((err as DeepgramError).body).toMatchObject({ err_code: 'INVALID_AUTH', err_msg: 'Invalid credentials.' });
  });
});

describe('@deepgram/sdk live', () => {
  test('paced linear16 with interim results: finals, one Metadata, close 1000', async () => {
    const conn = await sdk().listen.v1.connect({
      model: 'nova-3',
      encoding: 'linear16',
      sample_rate: 16000,
      channels: 1,
      interim_results: 'true',
      punctuate: 'true',
    });
    const messages: Array<Record<string, unknown>> = [];
    conn.on('message', (m) => messages.push(m as unknown as Record<string, unknown>));
    const closed = new Promise<{ code: number }>((resolve) => conn.on('close', (e) => resolve(e as { code: number })));
    conn.connect();
    await conn.waitForOpen();
    await pacedSend({
      chunks: rechunk(decodeToPcm(createReadStream(fx.get(SHORT.name).path)), chunkBytesFor(100)),
      clock: systemClock,
      send: (chunk) => conn.sendMedia(chunk),
    });
    conn.sendKeepAlive({ type: 'KeepAlive' });
    conn.sendCloseStream({ type: 'CloseStream' });
    expect((await closed).code).toBe(1000);

    const results = messages.filter((m) => m.type === 'Results') as Array<{ is_final: boolean; channel: { alternatives: Array<{ transcript: string }> } }>;
    expect(results.some((m) => !m.is_final)).toBe(true); // interims were sent
    const finalText = results
      .filter((m) => m.is_final)
      .map((m) => m.channel.alternatives[0]!.transcript)
      .filter(Boolean)
      .join(' ');
    expect(wordErrorRate(SHORT.text, finalText)).toBeLessThanOrEqual(MAX_WER);
    const meta = messages.filter((m) => m.type === 'Metadata');
    expect(meta).toHaveLength(1);
    expect(messages.at(-1)).toBe(meta[0]);
    const rec = await emu.waitForSession((s) => s.requestId === meta[0]!.request_id);
    expect(rec).toMatchObject({ metadataSent: true, closeCode: 1000, clientBugs: [], project: 'project-sdk' });
  });
});
