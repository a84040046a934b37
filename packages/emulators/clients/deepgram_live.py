#!/usr/bin/python3
"""Deepgram live streaming of a WAV file, written from Deepgram's "Streaming Audio File Transcription"
article (which points at the live-streaming-starter-kit's test_suite.py) and the "Audio Keep Alive"
page.

As the starter kit does: read the WAV with `wave` (16-bit), open
`/v1/listen?punctuate=true&channels=<n>&sample_rate=<rate>&encoding=linear16` with
`Authorization: Token <key>`, send 250 ms of audio at a time at real-time pace, then a text
`{"type": "CloseStream"}`; collect `is_final` transcripts until the Metadata message (the one with
`created`) and the server's close. With `--idle S` the client stops sending audio for S seconds
before CloseStream, sending a text `{"type": "KeepAlive"}` every `--keepalive` seconds (the Keep
Alive page: every 3-5 s; 0 = none). Prints a JSON summary; exits 1 on any protocol error.

    deepgram_live.py BASE_URL API_KEY WAV_PATH [--model M] [--interim-results]
        [--idle SECONDS] [--keepalive SECONDS] [--resolution 0.25]

BASE_URL is the service root, e.g. wss://api.deepgram.com.
"""
import argparse
import asyncio
import json
import sys
import time
import urllib.parse
import wave

import websockets

RESULT_FIELDS = ("type", "channel_index", "duration", "start", "channel", "metadata")
METADATA_FIELDS = ("transaction_key", "request_id", "sha256", "created", "duration", "channels")


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("base_url")
    p.add_argument("api_key")
    p.add_argument("wav_path")
    p.add_argument("--model")
    p.add_argument("--interim-results", action="store_true")
    p.add_argument("--resolution", type=float, default=0.250, help="seconds of audio per message (starter kit: 0.25)")
    p.add_argument("--idle", type=float, default=0.0, help="seconds without audio before CloseStream")
    p.add_argument("--keepalive", type=float, default=3.0, help="KeepAlive interval while idle (0 = none)")
    p.add_argument("--timeout", type=float, default=30.0, help="wait for the end of stream after CloseStream")
    return p.parse_args()


async def run(args, summary):
    errors = summary["errors"]
    with wave.open(args.wav_path, "rb") as fh:
        channels, sample_width, sample_rate, frames = fh.getnchannels(), fh.getsampwidth(), fh.getframerate(), fh.getnframes()
        if sample_width != 2:
            raise SystemExit("WAV data must be 16-bit.")
        data = fh.readframes(frames)
    summary["audio_seconds"] = round(frames / sample_rate, 3)

    query = {"punctuate": "true", "channels": channels, "sample_rate": sample_rate, "encoding": "linear16"}
    if args.model:
        query["model"] = args.model
    if args.interim_results:
        query["interim_results"] = "true"
    url = f"{args.base_url.rstrip('/')}/v1/listen?{urllib.parse.urlencode(query)}"
    types = summary["message_types"]
    finals = []

    async with websockets.connect(url, extra_headers={"Authorization": f"Token {args.api_key}"}) as ws:
        summary["request_id"] = ws.response_headers.get("dg-request-id")

        async def sender():
            byte_rate = sample_width * sample_rate * channels
            step = int(byte_rate * args.resolution)
            start = time.monotonic()
            sent = 0
            for offset in range(0, len(data), step):
                await ws.send(data[offset:offset + step])
                sent += 1
                # Real time, scheduled from the start so the pace does not drift.
                await asyncio.sleep(max(0.0, start + sent * args.resolution - time.monotonic()))
            summary["audio_messages"] = sent
            if args.idle > 0:
                idle_end = time.monotonic() + args.idle
                while True:
                    left = idle_end - time.monotonic()
                    if left <= 0:
                        break
                    if args.keepalive > 0:
                        await asyncio.sleep(min(args.keepalive, left))
                        if idle_end - time.monotonic() > 0:
                            await ws.send(json.dumps({"type": "KeepAlive"}))
                            summary["keepalives_sent"] += 1
                    else:
                        await asyncio.sleep(left)
            await ws.send(json.dumps({"type": "CloseStream"}))
            summary["close_stream_sent"] = True

        async def receiver():
            async for msg in ws:
                if isinstance(msg, bytes):
                    errors.append("binary message from the server")
                    continue
                try:
                    res = json.loads(msg)
                except ValueError:
                    errors.append(f"non-JSON text message: {msg[:200]!r}")
                    continue
                kind = res.get("type", "<none>")
                types[kind] = types.get(kind, 0) + 1
                if summary["metadata"] is not None:
                    errors.append(f"{kind} message after Metadata")
                if kind == "Results":
                    missing = [f for f in RESULT_FIELDS if f not in res]
                    if missing:
                        errors.append(f"Results lacks {missing}")
                    alts = (res.get("channel") or {}).get("alternatives") or [{}]
                    transcript = alts[0].get("transcript", "")
                    if res.get("is_final"):
                        summary["finals"] += 1
                        if res.get("speech_final"):
                            summary["speech_finals"] += 1
                        if transcript:
                            finals.append(transcript)
                    elif not args.interim_results:
                        errors.append("interim Results although interim_results was not requested")
                # The starter kit treats the message carrying `created` as the end of the request.
                if res.get("created"):
                    if kind != "Metadata":
                        errors.append(f"`created` on a {kind} message")
                    missing = [f for f in METADATA_FIELDS if f not in res]
                    if missing:
                        errors.append(f"Metadata lacks {missing}")
                    summary["metadata"] = {k: res.get(k) for k in ("request_id", "duration", "channels")}

        send_task = asyncio.ensure_future(sender())
        try:
            await asyncio.wait_for(receiver(), timeout=summary["audio_seconds"] + args.idle + args.timeout)
        except asyncio.TimeoutError:
            errors.append("timed out waiting for the server to end the stream")
        except websockets.exceptions.ConnectionClosedError as e:
            errors.append(f"connection closed with {e.code} {e.reason!r}")
        if not send_task.done():
            send_task.cancel()
            if not summary["close_stream_sent"]:
                errors.append("the server ended the stream before CloseStream was sent")
        elif send_task.exception() and not isinstance(send_task.exception(), websockets.exceptions.ConnectionClosed):
            errors.append(f"sender failed: {send_task.exception()!r}")
        summary["close_code"] = ws.close_code
        summary["close_reason"] = ws.close_reason
    summary["transcript"] = " ".join(finals)
    if summary["close_code"] != 1000:
        errors.append(f"closed with {summary['close_code']} {summary['close_reason']!r}, not 1000")
    if summary["metadata"] is None:
        errors.append("no Metadata message before the close")


def main():
    args = parse_args()
    summary = {"provider": "deepgram", "surface": "live", "transcript": "", "finals": 0, "speech_finals": 0,
               "message_types": {}, "metadata": None, "keepalives_sent": 0, "close_stream_sent": False,
               "errors": []}
    try:
        asyncio.run(run(args, summary))
    except websockets.exceptions.InvalidStatusCode as e:
        summary["status"] = e.status_code
        summary["dg_error"] = e.headers.get("dg-error")
        summary["request_id"] = e.headers.get("dg-request-id")
        summary["errors"].append(f"upgrade refused with HTTP {e.status_code}: {e.headers.get('dg-error')}")
    except (OSError, websockets.exceptions.WebSocketException) as e:
        summary["errors"].append(f"connection failed: {e!r}")
    summary["ok"] = not summary["errors"]
    print(json.dumps(summary))
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
