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


def writer(out):
    def emit(obj):
        out.write(json.dumps(obj, separators=(",", ":")) + "\n")
        out.flush()
    return emit


def clean_word(w):
    if w.startswith("<") or w.startswith("[") or w.startswith("++"):
        return None  # <s>, </s>, <sil>, [NOISE], ++NOISE++
    paren = w.find("(")
    return w[:paren] if paren > 0 else w


def load(model_dir):
    cfg = Decoder.default_config()
    cfg.set_string("-hmm", os.path.join(model_dir, "en-us"))
    cfg.set_string("-lm", os.path.join(model_dir, "en-us.lm.bin"))
    cfg.set_string("-dict", os.path.join(model_dir, "cmudict-en-us.dict"))
    cfg.set_string("-logfn", "/dev/null")
    return Decoder(cfg)


def recognise(dec, stdin, emit, partial_ms, max_utterance, read_bytes, ready, exact=False):
    """One session on a freshly loaded decoder: PCM from `stdin` until EOF, messages through `emit`.

    The decoder's results depend on how the PCM is cut into blocks (the silence check runs per block).
    exact=True feeds blocks of exactly `read_bytes` (the last one shorter), whenever the bytes arrive:
    the same results for the same audio however the input is paced or the machine loaded (batch).
    Otherwise a block is what has arrived, up to `read_bytes` (stream: no waiting for a full block);
    with input waiting on a pipe or a file, that is exact blocks too."""
    logmath = dec.get_logmath()

    total_samples = 0          # samples fed so far
    utt_start_samples = 0      # sample offset of the current utterance's frame 0
    in_utt = False
    utt_had_speech = False
    next_partial = partial_ms / 1000.0 if partial_ms > 0 else math.inf
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

    emit(ready)
    start()
    while True:
        if exact:
            data = stdin.read(read_bytes)  # a buffered reader's read(n) waits for n bytes or EOF
        else:
            data = stdin.read1(read_bytes) if hasattr(stdin, "read1") else stdin.read(read_bytes)
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
            next_partial = audio_now + partial_ms / 1000.0
            hyp = dec.hyp()
            if hyp is not None and hyp.hypstr:
                emit({"type": "partial", "text": hyp.hypstr, "audio_end": round(audio_now, 3)})
        utt_len = (total_samples - utt_start_samples) / RATE
        if (utt_had_speech and not speech) or utt_len >= max_utterance:
            finish()
    if in_utt:
        finish()
    emit({"type": "end", "duration": round(total_samples / RATE, 3)})


def read_line(conn):
    """The header line, a byte at a time so nothing after it is consumed."""
    line = bytearray()
    while len(line) < 4096:
        b = conn.recv(1)
        if not b or b == b"\n":
            break
        line += b
    return bytes(line)


def serve(dec, path):
    """Zygote: the model is loaded once; each connection on the Unix socket `path` is one session,
    run by a child forked from this process, so every session starts from the same freshly loaded
    decoder (reusing a decoder carries its feature and noise statistics into the next session, which
    changes the results) without loading the model again. The first line of a connection is a JSON
    header {"partial_ms":…,"max_utterance":…,"read_bytes":…}; then PCM until the client half-closes.
    The child answers with the session's JSON lines ("ready" carries its pid). Exits when stdin closes
    (the Node process that started it is gone or shut it down)."""
    import select
    import signal
    import socket

    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped by the kernel
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(128)
    out = writer(sys.stdout)
    out({"type": "listening", "pid": os.getpid()})
    stdin = sys.stdin.buffer
    try:
        while True:
            readable, _, _ = select.select([listener, stdin], [], [])
            if stdin in readable and not os.read(stdin.fileno(), 4096):
                return
            if listener not in readable:
                continue
            conn, _ = listener.accept()
            if os.fork() == 0:
                code = 0
                try:
                    listener.close()
                    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
                    emit = writer(conn.makefile("w", encoding="utf-8"))
                    try:
                        header = json.loads(read_line(conn) or b"{}")
                        # Opened after the header so its buffer holds PCM only: reads then cut the
                        # PCM where the stdin mode's do (the decoder's results depend on the blocks).
                        reader = conn.makefile("rb")
                        recognise(dec, reader, emit, int(header.get("partial_ms", 0)), float(header.get("max_utterance", 30.0)),
                                  int(header.get("read_bytes", 3200)), {"type": "ready", "pid": os.getpid()}, bool(header.get("exact", False)))
                    except BrokenPipeError:
                        pass
                    except Exception as e:  # reported to the session, which fails with it
                        code = 1
                        try:
                            emit({"type": "error", "message": "%s: %s" % (type(e).__name__, e)})
                        except Exception:
                            pass
                finally:
                    os._exit(code)
            conn.close()
    finally:
        try:
            os.unlink(path)
        except OSError:
            pass


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model-dir", default="/usr/share/pocketsphinx/model/en-us")
    ap.add_argument("--partial-ms", type=int, default=0)
    ap.add_argument("--max-utterance", type=float, default=30.0)
    ap.add_argument("--read-bytes", type=int, default=3200)
    ap.add_argument("--exact", action="store_true", help="feed the decoder blocks of exactly --read-bytes (batch: results independent of how the input arrives)")
    ap.add_argument("--serve", metavar="SOCKET", help="run as a zygote serving sessions on this Unix socket")
    args = ap.parse_args()
    dec = load(args.model_dir)
    if args.serve:
        serve(dec, args.serve)
        return
    recognise(dec, sys.stdin.buffer, writer(sys.stdout), args.partial_ms, args.max_utterance, args.read_bytes, {"type": "ready"}, args.exact)


if __name__ == "__main__":
    try:
        main()
    except BrokenPipeError:
        sys.exit(0)
