/**
 * Emulator of Deepgram speech-to-text: pre-recorded `POST /v1/listen` (providers.md §1, §7.2) and live
 * `GET /v1/listen` WebSocket (§2, §7.3) on one HTTP server. Transcripts are real: the audio is decoded
 * (ffmpeg for containers) and fed to the local recogniser, word times in audio seconds.
 *
 * Pre-recorded (§7.2):
 * - Auth `Authorization: Token <key>` (or `Bearer <access token>`), else 401 legacy
 *   `{"err_code":"INVALID_AUTH","err_msg":"Invalid credentials.","request_id"}`.
 * - Body: binary (any container ffmpeg sniffs; raw `linear16`/`mulaw` with `encoding` +
 *   `sample_rate`) or `Content-Type: application/json` `{"url"}` which the emulator fetches itself
 *   (malformed JSON → 400 modern `INVALID_JSON`; no `url` → 400; fetch failure → 400
 *   `REMOTE_CONTENT_ERROR`). Undecodable bytes (incl. JSON sent without the JSON content type) → 400
 *   "failed to process audio: corrupt or unsupported data".
 * - Body > `maxBodyBytes` (default 2 GiB) → 413; client gone mid-upload → 422 (recorded; the client
 *   cannot read it); processing beyond `maxProcessingMs` (10 min, 20 min for `whisper*`) after the
 *   upload ended → 504; `outOfCredits` → 402 `ASR_PAYMENT_REQUIRED`; bad query values → 400.
 * - Concurrency is per PROJECT (keys map to projects): in flight > cap → 429 (default 100, 5 for
 *   `whisper*` models). Never queued by the cap; an admitted request then waits (FIFO) for one of the
 *   emulator's own recognisers (`recognisers`, default cores × 3): a slower answer, as a loaded
 *   service gives. Benchmark mode (`serviceTimeMs`) takes no recogniser.
 * - 200 body per §1.3; `punctuated_word` only with punctuate/smart_format, `speaker` only with
 *   diarize/diarize_model (pre-recorded: speakers told apart by each utterance's voice pitch,
 *   kit/pitch.ts; live: always 0), `utterances`/`paragraphs` only when asked, one channel per input channel
 *   only with `multichannel=true`. Every response carries `dg-request-id`; errors also `dg-error`.
 * - Error bodies use the documented shape per error; `errorShape` forces one shape or rotates
 *   legacy → modern → text so client parsers get exercised.
 * - Not implemented: `callback` (async) mode → 400 (documented as out of scope for this emulator).
 *
 * Live (§7.3):
 * - Handshake failures are plain HTTP with `dg-request-id` + `dg-error` (body = the same text): 401 bad
 *   or missing key (also a key without the `Token ` scheme), 400 bad params (unknown `encoding`,
 *   `encoding` without `sample_rate`, `diarize_model=v2`, `utterance_end_ms` < 1000 or without
 *   `interim_results`, Whisper models), 402 out of credits, 429 over the per-project stream cap
 *   (default 50) or when every recogniser of the emulator is busy (the same answer; counted as a
 *   refusal of `<project>/live`). Success is 101 with `dg-request-id`; subprotocol auth
 *   `token,<key>` is accepted. A session holds one recogniser from the handshake to its end.
 * - Idle: no audio within `idleTimeoutMs` (default 10 000) of open — KeepAlive does not count before
 *   the first audio — then no frame of any kind for `idleTimeoutMs` → the audio received is
 *   finalised (its final Results go out), then close 1011 NET-0001.
 * - Empty binary frame → close 1008 "DATA-0000 … empty binary frame" and the session is flagged
 *   `clientBugs: ['empty-binary-frame']` (option `emptyFrame: 'end-of-stream'` gives the legacy
 *   end-of-stream meaning instead). JSON in a binary frame on a raw encoding, or a container ffmpeg
 *   cannot decode → close 1008 DATA-0000. Invalid JSON / non-object / unknown `type` in a text frame →
 *   close 1011 "Invalid frame sent" (the starter kit mock's behaviour; real code UNCONFIRMED).
 * - Results in audio time (`start`/`duration`, contiguous). Endpointing (live/transcriber.ts): a
 *   pause of `endpointing` ms (default 10, floor 150) finalises everything heard with
 *   `speech_final:true` on the last final; continuous speech is finalised about every
 *   `maxSegmentMs` (4 s) with `is_final:true, speech_final:false`; `endpointing=false` → no pause
 *   endpoints. Interims about every `interimEveryMs` of audio with `interim_results=true`,
 *   `SpeechStarted` with `vad_events`, `UtteranceEnd` with `utterance_end_ms` + `interim_results`
 *   after a word gap of that length (live/utterance-end.ts). `Finalize` flushes (`from_finalize:true`),
 *   `CloseStream` → remaining finals → exactly one `Metadata` (sha256 of the received audio bytes,
 *   duration, channels; 0/0 without audio) → close 1000; frames after CloseStream are ignored.
 * - Pacing: audio reaches the recogniser at most `maxRealtimeFactor` (1.25×) real time plus a
 *   `burstAllowanceMs` head start; anything faster is buffered and results lag (the documented
 *   ceiling; the real over-rate behaviour is undocumented). With `strictPacing: true` a client whose
 *   received audio exceeds 1.25 × wall time since its first audio frame + `burstAllowanceMs` (2 s) is
 *   closed with **1008** and reason "Audio sent faster than real time: …" (emulator-specific: no real
 *   close code exists; 1008 = policy violation, so clients treat it as a non-retryable bug).
 * - Faults (common FaultHooks + `net0000AfterAudioMs`): 503 at handshake/REST, slow first byte, never
 *   answer, abrupt drop after N ms of audio (client sees 1006), close 1011 NET-0000 after N ms of audio.
 * - Scripted faults (`faultSpecs` / `--fault`, common.ts): `429-storm` → REST 429 / handshake HTTP 429
 *   (legacy TOO_MANY_REQUESTS body, `dg-error`, `Retry-After`: `retryAfterSeconds`, default 1);
 *   `5xx[=S]` → REST / handshake HTTP S (default 503 "Please try again later."); `never-answer` →
 *   REST: the request takes its slot, the body is read, nothing is sent; live: 101, audio accepted,
 *   nothing ever sent (no Results, no Metadata, no close, no idle close); `drop-after=S` → REST: like
 *   never-answer, then the socket is destroyed S s after the request started; live: a normal session
 *   whose socket is destroyed S s after the handshake (1006); `early=STATUS` (REST only) → STATUS with
 *   the documented body for it, written before the body is read, then the connection is closed.
 * - `serviceTimeMs`: pre-recorded benchmark mode (below); a number or `live` also delays the
 *   end-of-stream answer to CloseStream (final Results → Metadata → close) by that many ms.
 * - Live channels (live/ingest.ts): raw `linear16`/`mulaw` of `channels=N` is split per channel;
 *   with `multichannel=true` each channel has its own recogniser (N taken from the pool at the
 *   handshake; N above the pool's capacity → 400) and its own Results, interims, SpeechStarted and
 *   UtteranceEnd tagged `[c, N]`; `{"type":"Finalize","channel":c}` flushes channel c only. Without
 *   `multichannel` the channels are mixed to mono (`[0, 1]`). Pacing and the rate check count the
 *   real byte rate (N × sample bytes × sample_rate); Metadata has `channels: N`, the sha256 of every
 *   byte received and the duration of one channel.
 * - Not implemented: `multichannel` on containers (no `encoding`, or a headered one: decoded to mono);
 *   decoding of `alaw`, `linear32`, raw `opus`, `speex`, `g729` (accepted at handshake, the audio is
 *   then refused with 1008 DATA-0000).
 *
 * Transport: HTTP, or HTTPS/WSS on the same port with `tls`.
 *
 * Concurrency keys: `handle.concurrency` counts, per project, every session in flight (key
 * `<project>`) and per pool (key `<project>/prerecorded`, `<project>/whisper`, `<project>/live`, where
 * the caps are enforced and refusals counted). Use `poolKey()` to build them.
 */

export {
  DEEPGRAM_DEFAULT_CAPS,
  NET0000_REASON,
  NET0001_REASON,
  PACING_CLOSE_CODE,
  poolKey,
  type DeepgramEmulatorHandle,
  type DeepgramEmulatorOptions,
  type DeepgramFaults,
  type DeepgramLiveRecord,
  type DeepgramPool,
  type DeepgramRestRecord,
  type ErrorShape,
  type ResolvedDeepgramOptions,
} from './options';
export { startDeepgramEmulator } from './server';
