#!/usr/bin/python3
"""Incremental offline speech recogniser: pocketsphinx (Debian's python3-pocketsphinx + pocketsphinx-en-us).

Reads raw 16 kHz mono s16le PCM on stdin as it arrives and writes JSON lines on stdout:
  {"type":"ready"}
  {"type":"partial","text":"...","audio_end":1.2}          every --partial-ms of audio (0 = off)
  {"type":"final","start":0.13,"end":2.4,"words":[{"word","start","end","confidence"}]}
  {"type":"end","duration":12.34}                           after stdin closes and all finals are out

Utterances are split where the decoder's voice activity detection sees silence, and at most every
--max-utterance seconds, so memory stays bounded on hour-long input. Word times are audio seconds.
Run with Debian's /usr/bin/python3 (the binding is not in other Pythons).
"""
import argparse
import json
import math
import os
import sys

from pocketsphinx.pocketsphinx import Decoder

RATE = 16000
FRAME_RATE = 100  # pocketsphinx frames per second (-frate default)


def emit(obj):
    sys.stdout.write(json.dumps(obj, separators=(",", ":")) + "\n")
    sys.stdout.flush()


def clean_word(w):
    if w.startswith("<") or w.startswith("[") or w.startswith("++"):
        return None  # <s>, </s>, <sil>, [NOISE], ++NOISE++
    paren = w.find("(")
    return w[:paren] if paren > 0 else w


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model-dir", default="/usr/share/pocketsphinx/model/en-us")
    ap.add_argument("--partial-ms", type=int, default=0)
    ap.add_argument("--max-utterance", type=float, default=30.0)
    ap.add_argument("--read-bytes", type=int, default=3200)
    args = ap.parse_args()

    cfg = Decoder.default_config()
    cfg.set_string("-hmm", os.path.join(args.model_dir, "en-us"))
    cfg.set_string("-lm", os.path.join(args.model_dir, "en-us.lm.bin"))
    cfg.set_string("-dict", os.path.join(args.model_dir, "cmudict-en-us.dict"))
    cfg.set_string("-logfn", "/dev/null")
    dec = Decoder(cfg)
    logmath = dec.get_logmath()

    total_samples = 0          # samples fed so far
    utt_start_samples = 0      # sample offset of the current utterance's frame 0
    in_utt = False
    utt_had_speech = False
    next_partial = args.partial_ms / 1000.0 if args.partial_ms > 0 else math.inf
    carry = b""

    def start():
        nonlocal in_utt, utt_had_speech, utt_start_samples
        dec.start_utt()
        in_utt = True
        utt_had_speech = False
        utt_start_samples = total_samples

    def finish():
        nonlocal in_utt
        dec.end_utt()
        in_utt = False
        # In this pocketsphinx (5prealpha) segment frames count from the first utterance of the
        # decoder, not from the current one, so they are already audio time.
        words = []
        for seg in dec.seg():
            w = clean_word(seg.word)
            if not w:
                continue
            conf = logmath.exp(seg.prob)
            words.append({
                "word": w,
                "start": round(seg.start_frame / FRAME_RATE, 3),
                "end": round((seg.end_frame + 1) / FRAME_RATE, 3),
                "confidence": round(max(0.0, min(1.0, conf)), 4),
            })
        if words:
            emit({"type": "final", "start": words[0]["start"], "end": words[-1]["end"], "words": words})

    emit({"type": "ready"})
    start()
    stdin = sys.stdin.buffer
    while True:
        data = stdin.read1(args.read_bytes) if hasattr(stdin, "read1") else stdin.read(args.read_bytes)
        if not data:
            break
        data = carry + data
        if len(data) % 2:
            carry, data = data[-1:], data[:-1]
        else:
            carry = b""
        if not in_utt:
            start()
        dec.process_raw(data, False, False)
        total_samples += len(data) // 2
        speech = dec.get_in_speech()
        if speech:
            utt_had_speech = True
        audio_now = total_samples / RATE
        if audio_now >= next_partial:
            next_partial = audio_now + args.partial_ms / 1000.0
            hyp = dec.hyp()
            if hyp is not None and hyp.hypstr:
                emit({"type": "partial", "text": hyp.hypstr, "audio_end": round(audio_now, 3)})
        utt_len = (total_samples - utt_start_samples) / RATE
        if (utt_had_speech and not speech) or utt_len >= args.max_utterance:
            finish()
    if in_utt:
        finish()
    emit({"type": "end", "duration": round(total_samples / RATE, 3)})


if __name__ == "__main__":
    try:
        main()
    except BrokenPipeError:
        sys.exit(0)
