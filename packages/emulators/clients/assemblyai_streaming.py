#!/usr/bin/python3
"""AssemblyAI Universal Streaming (v3) of a WAV file, written from AssemblyAI's public streaming docs:
the Python quickstart (websocket-client), "Message Sequence", "Authenticate with a temporary token"
and "Stream pre-recorded audio in real time" (wall-clock pacing).

Connects to `/v3/ws?speech_model=...&sample_rate=...&encoding=pcm_s16le` with the raw key in the
`Authorization` header, or (`--auth token`) first fetches a temporary token with
`GET /v3/token?expires_in_seconds=60` (key in `Authorization`) and connects with `?token=...` and
no header. Expects `Begin` first; streams the PCM as binary frames of `--chunk-ms` (50-1000 ms; the
last one padded with silence to 50 ms) scheduled by wall clock; then sends `{"type": "Terminate"}`
and waits for `Termination`, after which nothing may follow and the server closes with 1000. The
transcript is the `end_of_turn: true` Turns ordered by `turn_order` (a formatted Turn replaces the
unformatted one of the same order). Prints a JSON summary; exits 1 on any protocol error.

    assemblyai_streaming.py BASE_URL API_KEY WAV_PATH [--auth header|token]
        [--speech-model universal-streaming-english] [--format-turns] [--chunk-ms 100]

BASE_URL is the service root, e.g. wss://streaming.assemblyai.com. WAV_PATH must be mono 16-bit PCM.
"""
import argparse
import json
import sys
import threading
import time
import urllib.parse
import urllib.request
import wave

import websocket

TURN_FIELDS = ("turn_order", "turn_is_formatted", "end_of_turn", "transcript", "end_of_turn_confidence", "words")
WORD_FIELDS = ("text", "start", "end", "confidence", "word_is_final")


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("base_url")
    p.add_argument("api_key")
    p.add_argument("wav_path")
    p.add_argument("--auth", choices=("header", "token"), default="header")
    p.add_argument("--speech-model", default="universal-streaming-english")
    p.add_argument("--format-turns", action="store_true")
    p.add_argument("--chunk-ms", type=int, default=100, help="audio per frame (50-1000 ms; the pacing guide's default 100)")
    p.add_argument("--timeout", type=float, default=10.0, help="wait for Termination after Terminate")
    return p.parse_args()


def temporary_token(base_url, api_key):
    # The token endpoint is plain HTTPS on the streaming host.
    http = base_url.replace("wss://", "https://", 1).replace("ws://", "http://", 1)
    url = f"{http.rstrip('/')}/v3/token?{urllib.parse.urlencode({'expires_in_seconds': 60})}"
    with urllib.request.urlopen(urllib.request.Request(url, headers={"Authorization": api_key}), timeout=30) as res:
        return json.loads(res.read())["token"]


def check_turn(msg, errors):
    missing = [f for f in TURN_FIELDS if f not in msg]
    if missing:
        errors.append(f"Turn lacks {missing}")
    for w in msg.get("words") or []:
        lacks = [f for f in WORD_FIELDS if f not in w]
        if lacks:
            errors.append(f"Turn word lacks {lacks}")
        # Word times are integer milliseconds from the start of the stream.
        for f in ("start", "end"):
            if f in w and not isinstance(w[f], int):
                errors.append(f"word {f} {w[f]!r} is not integer ms")


def main():
    args = parse_args()
    if not 50 <= args.chunk_ms <= 1000:
        raise SystemExit("--chunk-ms must be 50..1000")
    with wave.open(args.wav_path, "rb") as fh:
        if fh.getnchannels() != 1 or fh.getsampwidth() != 2:
            raise SystemExit("the WAV must be mono 16-bit PCM")
        sample_rate = fh.getframerate()
        pcm = fh.readframes(fh.getnframes())

    summary = {"provider": "assemblyai", "surface": "streaming", "auth": args.auth, "transcript": "", "turns": 0,
               "message_types": {}, "session_id": None, "termination": None, "audio_seconds": round(len(pcm) / (2 * sample_rate), 3),
               "end_of_turn_messages": 0, "formatted_end_of_turns": 0, "errors": []}
    errors = summary["errors"]
    types = summary["message_types"]
    finals = {}  # turn_order -> transcript of the end-of-turn message (formatted wins)
    begun, terminated = threading.Event(), threading.Event()
    settled = threading.Event()  # Termination arrived or the socket closed
    order = []

    params = {"speech_model": args.speech_model, "sample_rate": sample_rate, "encoding": "pcm_s16le"}
    if args.format_turns:
        params["format_turns"] = "true"
    headers = {}
    try:
        if args.auth == "token":
            params["token"] = temporary_token(args.base_url, args.api_key)
        else:
            headers["Authorization"] = args.api_key
    except Exception as e:
        errors.append(f"temporary token request failed: {e!r}")
        summary["ok"] = False
        print(json.dumps(summary))
        return 1
    url = f"{args.base_url.rstrip('/')}/v3/ws?{urllib.parse.urlencode(params)}"

    def on_message(ws, message):
        try:
            msg = json.loads(message)
        except (TypeError, ValueError):
            errors.append(f"non-JSON message: {message[:200]!r}")
            return
        kind = msg.get("type", "<none>")
        types[kind] = types.get(kind, 0) + 1
        order.append(kind)
        if terminated.is_set():
            errors.append(f"{kind} after Termination (it is the last message)")
        if kind == "Begin":
            if len(order) != 1:
                errors.append("Begin is not the first message")
            if not isinstance(msg.get("id"), str) or not isinstance(msg.get("expires_at"), int):
                errors.append(f"Begin lacks id / integer expires_at: {msg}")
            summary["session_id"] = msg.get("id")
            begun.set()
        elif kind == "Turn":
            check_turn(msg, errors)
            if msg.get("end_of_turn"):
                summary["end_of_turn_messages"] += 1
                summary["formatted_end_of_turns"] += 1 if msg.get("turn_is_formatted") else 0
                key = msg.get("turn_order")
                if key not in finals or msg.get("turn_is_formatted"):
                    finals[key] = msg.get("transcript", "")
        elif kind == "Termination":
            for f in ("audio_duration_seconds", "session_duration_seconds"):
                if f not in msg:
                    errors.append(f"Termination lacks {f}")
            summary["termination"] = {k: msg.get(k) for k in ("audio_duration_seconds", "session_duration_seconds")}
            terminated.set()
            settled.set()
        elif kind == "Error" or "error" in msg:
            errors.append(f"server error: {msg}")
        elif kind != "SpeechStarted":
            errors.append(f"unexpected message type {kind!r}")

    def on_error(ws, error):
        errors.append(f"WebSocket error: {error!r}")

    def on_close(ws, code, reason):
        summary["close_code"] = code
        summary["close_reason"] = reason
        begun.set()
        settled.set()

    ws = websocket.WebSocketApp(url, header=headers, on_message=on_message, on_error=on_error, on_close=on_close)
    runner = threading.Thread(target=ws.run_forever, daemon=True)
    runner.start()
    if not begun.wait(15) or summary["session_id"] is None:
        errors.append("no Begin message")
    else:
        # Wall-clock pacing: chunk n goes out at start + n * chunk, whatever the sends cost.
        step = sample_rate * 2 * args.chunk_ms // 1000
        min_bytes = sample_rate * 2 * 50 // 1000
        start, sent = time.monotonic(), 0
        try:
            for offset in range(0, len(pcm), step):
                chunk = pcm[offset:offset + step]
                if len(chunk) < min_bytes:
                    chunk += b"\x00" * (min_bytes - len(chunk))  # frames must hold >= 50 ms
                ws.send(chunk, websocket.ABNF.OPCODE_BINARY)
                sent += 1
                delay = start + sent * args.chunk_ms / 1000 - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            ws.send(json.dumps({"type": "Terminate"}))
            summary["frames_sent"] = sent
        except Exception as e:
            errors.append(f"sending failed: {e!r}")
        if not settled.wait(args.timeout) or summary["termination"] is None:
            errors.append("no Termination after Terminate")
    # After Termination the server closes the connection (1000).
    runner.join(5)
    if runner.is_alive():
        errors.append("the server did not close the connection after Termination")
        ws.close()
    elif summary.get("close_code") != 1000:
        errors.append(f"closed with {summary.get('close_code')} {summary.get('close_reason')!r}, not 1000")

    summary["turns"] = len(finals)
    summary["transcript"] = " ".join(finals[k].strip() for k in sorted(finals, key=lambda k: (k is None, k)) if finals[k].strip())
    summary["ok"] = not errors
    print(json.dumps(summary))
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
