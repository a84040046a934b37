#!/usr/bin/python3
"""Deepgram pre-recorded transcription, written from Deepgram's "Getting Started" pre-recorded guide.

Local file mode is the guide's curl example (POST the bytes, `Content-Type: audio/wav`,
`Authorization: Token <key>`, `?model=nova-3&smart_format=true`); `--remote-url` is its remote-file
example (JSON body `{"url": ...}`). Checks the response against the guide's "Analyze the Response"
section and prints a JSON summary; exits 1 on any protocol error.

    deepgram_prerecorded.py BASE_URL API_KEY AUDIO_PATH [--remote-url URL] [--model nova-3]
        [--no-smart-format] [--content-type audio/wav]

BASE_URL is the service root, e.g. https://api.deepgram.com.
"""
import argparse
import hashlib
import json
import mimetypes
import sys
import urllib.error
import urllib.parse
import urllib.request

# The metadata fields the guide's example response shows.
METADATA_FIELDS = ("transaction_key", "request_id", "sha256", "created", "duration", "channels", "models", "model_info")
WORD_FIELDS = ("word", "start", "end", "confidence")


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("base_url")
    p.add_argument("api_key")
    p.add_argument("audio_path", help="local file to upload (ignored with --remote-url)")
    p.add_argument("--remote-url", help="transcribe a hosted file instead: JSON body {\"url\": ...}")
    p.add_argument("--model", default="nova-3")
    p.add_argument("--no-smart-format", action="store_true")
    p.add_argument("--content-type", help="default: guessed from the file name (audio/wav, audio/mpeg, ...)")
    p.add_argument("--timeout", type=float, default=300.0)
    return p.parse_args()


def content_type_for(path):
    guessed, _ = mimetypes.guess_type(path)
    if guessed in ("audio/x-wav", "audio/wave"):
        return "audio/wav"
    return guessed or "application/octet-stream"


def check_response(body, smart_format, errors):
    """The guide's response: metadata{...}, results.channels[].alternatives[]{transcript, confidence, words}."""
    meta = body.get("metadata")
    if not isinstance(meta, dict):
        errors.append("response has no metadata object")
        meta = {}
    for f in METADATA_FIELDS:
        if f not in meta:
            errors.append(f"metadata.{f} missing")
    if "transaction_key" in meta and meta["transaction_key"] != "deprecated":
        errors.append(f"metadata.transaction_key is {meta['transaction_key']!r}; the guide says it is always \"deprecated\"")
    if "duration" in meta and not isinstance(meta["duration"], (int, float)):
        errors.append("metadata.duration is not a number")
    channels = (body.get("results") or {}).get("channels")
    if not isinstance(channels, list) or not channels:
        errors.append("results.channels missing or empty")
        return meta, None
    alts = channels[0].get("alternatives")
    if not isinstance(alts, list) or not alts:
        errors.append("results.channels[0].alternatives missing or empty")
        return meta, None
    alt = alts[0]
    for f in ("transcript", "confidence", "words"):
        if f not in alt:
            errors.append(f"alternatives[0].{f} missing")
    for i, w in enumerate(alt.get("words") or []):
        missing = [f for f in WORD_FIELDS if f not in w]
        if missing:
            errors.append(f"words[{i}] lacks {missing}")
        # "Because we passed the smart_format: true option ... each word object also includes its punctuated_word value"
        if smart_format and "punctuated_word" not in w:
            errors.append(f"words[{i}] lacks punctuated_word although smart_format=true")
        if isinstance(w.get("start"), (int, float)) and isinstance(w.get("end"), (int, float)) and w["end"] < w["start"]:
            errors.append(f"words[{i}] ends before it starts")
    return meta, alt


def main():
    args = parse_args()
    smart_format = not args.no_smart_format
    query = {"model": args.model}
    if smart_format:
        query["smart_format"] = "true"
    url = f"{args.base_url.rstrip('/')}/v1/listen?{urllib.parse.urlencode(query)}"
    headers = {"Authorization": f"Token {args.api_key}"}
    if args.remote_url:
        data = json.dumps({"url": args.remote_url}).encode()
        headers["Content-Type"] = "application/json"
    else:
        with open(args.audio_path, "rb") as fh:
            data = fh.read()
        headers["Content-Type"] = args.content_type or content_type_for(args.audio_path)

    summary = {"provider": "deepgram", "surface": "prerecorded", "mode": "url" if args.remote_url else "file",
               "status": None, "transcript": "", "words": 0, "errors": []}
    errors = summary["errors"]
    try:
        req = urllib.request.Request(url, data=data, headers=headers, method="POST")
        with urllib.request.urlopen(req, timeout=args.timeout) as res:
            summary["status"] = res.status
            summary["content_type"] = res.headers.get("Content-Type")
            raw = res.read()
    except urllib.error.HTTPError as e:
        summary["status"] = e.code
        errors.append(f"HTTP {e.code}: {e.read()[:500].decode(errors='replace')}")
        raw = None
    except (urllib.error.URLError, OSError) as e:
        errors.append(f"request failed: {e}")
        raw = None

    if raw is not None:
        try:
            body = json.loads(raw)
        except ValueError:
            errors.append(f"response is not JSON: {raw[:200]!r}")
            body = None
        if isinstance(body, dict):
            meta, alt = check_response(body, smart_format, errors)
            summary["request_id"] = meta.get("request_id")
            summary["duration"] = meta.get("duration")
            summary["channels"] = meta.get("channels")
            if not args.remote_url and isinstance(meta.get("sha256"), str):
                summary["sha256_matches_upload"] = meta["sha256"] == hashlib.sha256(data).hexdigest()
            if alt:
                summary["transcript"] = alt.get("transcript") or ""
                summary["words"] = len(alt.get("words") or [])
                summary["punctuated"] = all("punctuated_word" in w for w in alt.get("words") or [])
        elif body is not None:
            errors.append("response JSON is not an object")

    summary["ok"] = not errors
    print(json.dumps(summary))
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
