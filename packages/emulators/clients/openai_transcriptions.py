#!/usr/bin/python3
"""OpenAI-compatible batch transcription, written from OpenAI's API reference for
`POST /v1/audio/transcriptions` (Create transcription).

Sends `multipart/form-data` with the `file` part (filename with its extension and content type),
`model` (default whisper-1), `response_format` (`json` or `verbose_json`; `text` is printed as-is)
and, for verbose_json, one `timestamp_granularities[]` part per granularity; auth is
`Authorization: Bearer <key>`. Checks the body against the reference's response objects (`json`:
`{"text"}`; `verbose_json`: `language`, `duration`, `text`, `segments[]` with their ten fields,
`words[]` only when word granularity was asked for) and prints a JSON summary; exits 1 on any
protocol error.

    openai_transcriptions.py BASE_URL API_KEY AUDIO_PATH [--model whisper-1]
        [--response-format json|verbose_json|text] [--granularity word|segment ...] [--language en]

BASE_URL is the API root, e.g. https://api.openai.com (the client appends /v1/audio/transcriptions).
"""
import argparse
import json
import mimetypes
import os
import sys
import urllib.error
import urllib.request
import uuid

SEGMENT_FIELDS = ("id", "seek", "start", "end", "text", "tokens", "temperature", "avg_logprob", "compression_ratio", "no_speech_prob")
WORD_FIELDS = ("word", "start", "end")


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("base_url")
    p.add_argument("api_key")
    p.add_argument("audio_path")
    p.add_argument("--model", default="whisper-1")
    p.add_argument("--response-format", default="json", choices=("json", "verbose_json", "text"))
    p.add_argument("--granularity", action="append", choices=("word", "segment"), default=[])
    p.add_argument("--language")
    p.add_argument("--timeout", type=float, default=300.0)
    return p.parse_args()


def multipart(fields, file_field, path):
    boundary = f"----client{uuid.uuid4().hex}"
    out = []
    for name, value in fields:
        out.append(f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n".encode())
    ctype = mimetypes.guess_type(path)[0] or "application/octet-stream"
    with open(path, "rb") as fh:
        content = fh.read()
    out.append(f"--{boundary}\r\nContent-Disposition: form-data; name=\"{file_field}\"; filename=\"{os.path.basename(path)}\"\r\n"
               f"Content-Type: {ctype}\r\n\r\n".encode() + content + b"\r\n")
    out.append(f"--{boundary}--\r\n".encode())
    return b"".join(out), f"multipart/form-data; boundary={boundary}"


def check_verbose(body, want_words, errors, summary):
    for f in ("language", "duration", "text"):
        if f not in body:
            errors.append(f"verbose_json lacks {f}")
    segments = body.get("segments")
    if not isinstance(segments, list):
        errors.append("verbose_json has no segments list")
        segments = []
    for i, s in enumerate(segments):
        missing = [f for f in SEGMENT_FIELDS if f not in s]
        if missing:
            errors.append(f"segments[{i}] lacks {missing}")
        if isinstance(s.get("start"), (int, float)) and isinstance(s.get("end"), (int, float)) and s["end"] < s["start"]:
            errors.append(f"segments[{i}] ends before it starts")
    words = body.get("words")
    if want_words:
        if not isinstance(words, list):
            errors.append("timestamp_granularities[]=word asked for, but no words list")
            words = []
        for i, w in enumerate(words):
            missing = [f for f in WORD_FIELDS if f not in w]
            if missing:
                errors.append(f"words[{i}] lacks {missing}")
    elif words:
        errors.append("words present although word granularity was not asked for")
    summary.update(language=body.get("language"), duration=body.get("duration"), task=body.get("task"),
                   segments=len(segments), words=len(words or []))


def main():
    args = parse_args()
    fields = [("model", args.model), ("response_format", args.response_format)]
    if args.language:
        fields.append(("language", args.language))
    for g in args.granularity:
        fields.append(("timestamp_granularities[]", g))
    body, ctype = multipart(fields, "file", args.audio_path)
    url = f"{args.base_url.rstrip('/')}/v1/audio/transcriptions"
    req = urllib.request.Request(url, data=body, method="POST",
                                 headers={"Authorization": f"Bearer {args.api_key}", "Content-Type": ctype})
    summary = {"provider": "openai", "surface": "transcriptions", "response_format": args.response_format,
               "status": None, "transcript": "", "errors": []}
    errors = summary["errors"]
    raw = None
    try:
        with urllib.request.urlopen(req, timeout=args.timeout) as res:
            summary["status"] = res.status
            summary["content_type"] = res.headers.get("Content-Type")
            raw = res.read()
    except urllib.error.HTTPError as e:
        summary["status"] = e.code
        text = e.read()[:500].decode(errors="replace")
        errors.append(f"HTTP {e.code}: {text}")
        try:
            err = json.loads(text).get("error")
            if not isinstance(err, dict) or "message" not in err:
                errors.append("error body is not an OpenAI error object")
        except (ValueError, AttributeError):
            errors.append("error body is not JSON")
    except (urllib.error.URLError, OSError) as e:
        errors.append(f"request failed: {e}")

    if raw is not None:
        if args.response_format == "text":
            summary["transcript"] = raw.decode().strip()
        else:
            try:
                parsed = json.loads(raw)
            except ValueError:
                parsed = None
                errors.append(f"response is not JSON: {raw[:200]!r}")
            if isinstance(parsed, dict):
                if not isinstance(parsed.get("text"), str):
                    errors.append("response lacks a text string")
                summary["transcript"] = (parsed.get("text") or "").strip()
                summary["keys"] = sorted(parsed.keys())
                if args.response_format == "verbose_json":
                    check_verbose(parsed, "word" in args.granularity, errors, summary)
            elif parsed is not None:
                errors.append("response JSON is not an object")
    summary["ok"] = not errors
    print(json.dumps(summary))
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
