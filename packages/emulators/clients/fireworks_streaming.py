#!/usr/bin/python3
"""Fireworks streaming transcription, written from Fireworks' streaming reference ("Streaming
Audio", "Handling Responses" and its Python example using websocket-client).

As the guide's example: `websocket.WebSocketApp` on `/v1/audio/transcriptions/streaming?language=en`
with header `Authorization: <key>`; on open a thread sends 16-bit little-endian 16 kHz mono PCM in
50 ms binary frames, sleeping one chunk length after each, then the text
`{"checkpoint_id": "final"}`; every message's `segments` are merged into a state dict keyed by
segment id (`state.update({s["id"]: s["text"]})`, so a later message overwrites an earlier
segment); the message echoing `checkpoint_id == "final"` makes the client close. The transcript is
the state's texts in the dict's order, as the example prints them. Prints a JSON summary; exits 1 on
any protocol error.

    fireworks_streaming.py BASE_URL API_KEY WAV_PATH [--language en] [--chunk-ms 50]

BASE_URL is the service root, e.g. wss://audio-streaming.us-virginia-1.direct.fireworks.ai.
WAV_PATH must already be 16 kHz mono 16-bit PCM (the guide resamples first; convert with ffmpeg).
"""
import argparse
import json
import sys
import threading
import time
import urllib.parse
import wave

import websocket


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("base_url")
    p.add_argument("api_key")
    p.add_argument("wav_path")
    p.add_argument("--language", default="en")
    p.add_argument("--chunk-ms", type=int, default=50, help="audio per frame (guide: 50-400 ms, example 50)")
    p.add_argument("--timeout", type=float, default=30.0, help="wait for the final checkpoint after sending it")
    return p.parse_args()


def read_pcm(path):
    with wave.open(path, "rb") as fh:
        if (fh.getframerate(), fh.getnchannels(), fh.getsampwidth()) != (16000, 1, 2):
            raise SystemExit(f"{path}: need 16 kHz mono 16-bit PCM, got {fh.getframerate()} Hz x{fh.getnchannels()} {8 * fh.getsampwidth()}-bit")
        return fh.readframes(fh.getnframes())


def main():
    args = parse_args()
    pcm = read_pcm(args.wav_path)
    step = 16000 * 2 * args.chunk_ms // 1000
    audio_chunk_bytes = [pcm[i:i + step] for i in range(0, len(pcm), step)]

    lock = threading.Lock()
    state = {}
    summary = {"provider": "fireworks", "surface": "streaming", "transcript": "", "segments": 0,
               "messages": 0, "message_types": {}, "segment_id_types": [], "final_checkpoint": False,
               "audio_seconds": round(len(pcm) / 32000, 3), "errors": []}
    errors = summary["errors"]
    id_types = set()
    keys = set()
    sent_final = threading.Event()

    def on_open(ws):
        def send_audio_chunks():
            try:
                for chunk in audio_chunk_bytes:
                    ws.send(chunk, opcode=websocket.ABNF.OPCODE_BINARY)
                    time.sleep(args.chunk_ms / 1000)
                ws.send(json.dumps({"checkpoint_id": "final"}), opcode=websocket.ABNF.OPCODE_TEXT)
                sent_final.set()
            except Exception as e:  # the socket went away under us
                errors.append(f"sending failed: {e!r}")

        threading.Thread(target=send_audio_chunks, daemon=True).start()

    def note(kind):
        summary["message_types"][kind] = summary["message_types"].get(kind, 0) + 1

    def on_message(ws, message):
        if isinstance(message, bytes):
            errors.append("binary message from the server")
            return
        try:
            message = json.loads(message)
        except ValueError:
            errors.append(f"non-JSON message: {message[:200]!r}")
            return
        summary["messages"] += 1
        if message.get("checkpoint_id") == "final":
            note("checkpoint")
            summary["final_checkpoint"] = True
            ws.close()
            return
        if "segments" not in message:
            note("other")
            errors.append(f"message without segments: {json.dumps(message)[:200]}")
            return
        note("transcription")
        keys.update(message.keys())
        for s in message["segments"]:
            id_types.add(type(s.get("id")).__name__)
            if "id" not in s or "text" not in s:
                errors.append(f"segment without id/text: {s}")
        update = {s["id"]: s["text"] for s in message["segments"] if "id" in s and "text" in s}
        with lock:
            state.update(update)

    def on_error(ws, error):
        errors.append(f"WebSocket error: {error!r}")

    def on_close(ws, code, reason):
        summary["close_code"] = code
        summary["close_reason"] = reason

    url = f"{args.base_url.rstrip('/')}/v1/audio/transcriptions/streaming?{urllib.parse.urlencode({'language': args.language})}"
    ws = websocket.WebSocketApp(url, header={"Authorization": args.api_key}, on_open=on_open,
                                on_message=on_message, on_error=on_error, on_close=on_close)
    # run_forever returns when the client closes on the final checkpoint, or the server closes.
    runner = threading.Thread(target=ws.run_forever, daemon=True)
    runner.start()
    runner.join(summary["audio_seconds"] * 1.5 + 10 + args.timeout)
    if runner.is_alive():
        errors.append("timed out waiting for the final checkpoint")
        ws.close()
    if not summary["final_checkpoint"]:
        errors.append("the connection ended without the final checkpoint echo")
    if not sent_final.is_set():
        errors.append("the audio and the final checkpoint were not all sent")

    with lock:
        summary["transcript"] = " ".join(t.strip() for t in state.values() if t.strip())
        summary["segments"] = len(state)
        summary["segment_ids"] = list(state.keys())
    summary["segment_id_types"] = sorted(id_types)
    summary["message_keys"] = sorted(keys)
    summary["ok"] = not errors
    print(json.dumps(summary))
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
