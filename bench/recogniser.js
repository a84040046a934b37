#!/usr/bin/env node
// Local provider speed against the recogniser alone, side by side in one run, on the same audio.
//
// The audio: flite speech by four voices (kal16, rms, awb, slt), one WAV per voice (16 kHz mono,
// BENCH_REC_SENTENCES sentences each, 1.5 s of silence after each, as test/chaos/speech.ts makes
// them), made in a temp dir. Each file is recognised
//  (a) by the provider: LocalProvider.transcribe in batch mode, the audio decoded by ffmpeg from a
//      byte stream of the file (decodeToPcm, as the worker's storage input does);
//  (b) by the recogniser alone: a minimal Python script with Debian's pocketsphinx binding (the
//      library the provider runs), the same model and settings, started once with the model loaded
//      once, then given one file path per line: it reads the PCM from disk and feeds it in 100 ms
//      blocks, ending an utterance where the decoder's voice detection sees silence (the provider's
//      split, so the same work and the same words);
//  (c) informational, first repetition only: `pocketsphinx_continuous -infile` (the C tool, a
//      process and a model load per file).
// Both (a) and (b) are warm (one untimed job each first); each file goes through (a) and (b) back to
// back, which one first alternating, so both see the same machine load. The row: median over the
// back-to-back pairs (file, repetition) of time(b) ÷ time(a), higher is better. The provider's cold first job is reported apart.
// Run alone: `node bench/recogniser.js` (after `npx tsc -b`).
'use strict';
const { execFileSync, spawn } = require('node:child_process');
const { createReadStream, mkdtempSync, rmSync, writeFileSync } = require('node:fs');
const { loadavg, tmpdir, cpus } = require('node:os');
const { join } = require('node:path');
const { createInterface } = require('node:readline');
const { ROOT } = require('./lib');

const VOICES = ['kal16', 'rms', 'awb', 'slt'];
const PYTHON = '/usr/bin/python3';
const MODEL_DIR = '/usr/share/pocketsphinx/model/en-us';

// The recogniser alone: the binding, model loaded once, every file in turn.
const ALONE_PY = `
import os, sys, json, wave
from pocketsphinx.pocketsphinx import Decoder
m = sys.argv[1]
cfg = Decoder.default_config()
cfg.set_string("-hmm", os.path.join(m, "en-us"))
cfg.set_string("-lm", os.path.join(m, "en-us.lm.bin"))
cfg.set_string("-dict", os.path.join(m, "cmudict-en-us.dict"))
cfg.set_string("-logfn", "/dev/null")
dec = Decoder(cfg)
print("ready", flush=True)
for line in sys.stdin:
    path = line.strip()
    with wave.open(path, "rb") as w:
        pcm = w.readframes(w.getnframes())
    dec.start_stream()
    words, in_utt, had = [], False, False
    def finish():
        dec.end_utt()
        words.extend(s.word for s in dec.seg())
    for i in range(0, len(pcm), 3200):
        if not in_utt:
            dec.start_utt(); in_utt = True; had = False
        dec.process_raw(pcm[i:i + 3200], False, False)
        speech = dec.get_in_speech()
        had = had or speech
        if had and not speech:
            finish(); in_utt = False
    if in_utt:
        finish()
    text = " ".join(w.split("(")[0] for w in words if not w.startswith(("<", "[", "++")))
    print(json.dumps(text), flush=True)
`;

function sh(cmd, args) {
  return execFileSync(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] }).toString();
}

/** One WAV per voice; returns [{ voice, path, text, seconds }]. */
function synthesise(dir, sentencesPerVoice) {
  const { SENTENCES } = require(join(ROOT, 'infra/local/dist/samples.js'));
  return VOICES.map((voice, v) => {
    const parts = [];
    const texts = [];
    for (let i = 0; i < sentencesPerVoice; i++) {
      const text = SENTENCES[(v * sentencesPerVoice + i) % SENTENCES.length];
      const raw = join(dir, `${voice}-raw${i}.wav`);
      const part = join(dir, `${voice}-${i}.wav`);
      sh('flite', ['-voice', voice, '-t', text, '-o', raw]);
      sh('ffmpeg', ['-nostdin', '-hide_banner', '-loglevel', 'error', '-y', '-i', raw, '-af', 'apad=pad_dur=1.5', '-ar', '16000', '-ac', '1', '-c:a', 'pcm_s16le', part]);
      parts.push(part);
      texts.push(text);
    }
    const list = join(dir, `${voice}.txt`);
    writeFileSync(list, parts.map((p) => `file '${p}'`).join('\n'));
    const path = join(dir, `${voice}.wav`);
    sh('ffmpeg', ['-nostdin', '-hide_banner', '-loglevel', 'error', '-y', '-f', 'concat', '-safe', '0', '-i', list, '-c', 'copy', path]);
    const seconds = Number(sh('ffprobe', ['-v', 'error', '-show_entries', 'format=duration', '-of', 'csv=p=0', path]));
    return { voice, path, text: texts.join(' '), seconds };
  });
}

function runProcess(cmd, args) {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (d) => (out += d));
    child.stderr.setEncoding('utf8').on('data', (d) => (err = (err + d).slice(-4000)));
    child.once('error', reject);
    child.once('close', (code) => (code === 0 ? resolve(out) : reject(new Error(`${cmd} exited ${code}: ${err}`))));
  });
}

function providerJob() {
  const { decodeToPcm } = require(join(ROOT, 'packages/core/dist/adapters/s3/ffmpeg-decoder.js'));
  const { LocalProvider } = require(join(ROOT, 'packages/core/dist/adapters/local-provider.js'));
  const { VirtualClock } = require(join(ROOT, 'packages/core/dist/index.js'));
  const provider = new LocalProvider();
  return async (f) => {
    const audio = {
      pcm: (signal) => decodeToPcm(createReadStream(f.path), signal ? { signal } : {}),
      original: async () => ({ stream: createReadStream(f.path), filename: `${f.voice}.wav` }),
    };
    const t0 = performance.now();
    const res = await provider.transcribe({ mode: 'batch', model: 'pocketsphinx-en-us', options: {}, audio }, { signal: new AbortController().signal, clock: new VirtualClock() });
    return { seconds: (performance.now() - t0) / 1000, text: res.transcript.segments.map((s) => s.text).join(' ') };
  };
}

/** The minimal binding script, started once: model loaded, then one file per line on its stdin. */
async function aloneServer(script) {
  const t0 = performance.now();
  const child = spawn(PYTHON, [script, MODEL_DIR], { stdio: ['pipe', 'pipe', 'pipe'] });
  let err = '';
  child.stderr.setEncoding('utf8').on('data', (d) => (err = (err + d).slice(-4000)));
  const lines = createInterface({ input: child.stdout });
  const waiting = [];
  lines.on('line', (l) => waiting.shift()?.resolve(l));
  child.once('close', (code) => {
    for (const w of waiting.splice(0)) w.reject(new Error(`recogniser-alone script exited ${code}: ${err}`));
  });
  const next = () => new Promise((resolve, reject) => waiting.push({ resolve, reject }));
  await next(); // "ready"
  const loadSeconds = (performance.now() - t0) / 1000;
  return {
    loadSeconds,
    job: async (f) => {
      const t = performance.now();
      const reply = next();
      child.stdin.write(`${f.path}\n`);
      const text = JSON.parse(await reply);
      return { seconds: (performance.now() - t) / 1000, text };
    },
    close: () => new Promise((resolve) => {
      child.once('close', resolve);
      child.stdin.end();
    }),
  };
}

async function cliJob(f) {
  const t0 = performance.now();
  const out = await runProcess('pocketsphinx_continuous', ['-infile', f.path, '-logfn', '/dev/null']);
  return { seconds: (performance.now() - t0) / 1000, text: out.split('\n').filter(Boolean).join(' ') };
}

/** Shut the provider's recogniser down (if it keeps one), so the next job starts cold. */
async function coldProvider() {
  const mod = require(join(ROOT, 'packages/core/dist/adapters/sphinx-recogniser.js'));
  if (typeof mod.shutdownRecogniser === 'function') await mod.shutdownRecogniser();
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const n = s.length;
  return n % 2 ? s[(n - 1) / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
};
const sum = (xs) => xs.reduce((a, x) => a + x, 0);

async function run(opts = {}) {
  const reps = opts.repetitions ?? Number(process.env.BENCH_REC_REPS || 3);
  const sentencesPerVoice = opts.sentencesPerVoice ?? Number(process.env.BENCH_REC_SENTENCES || 4);
  const withCli = opts.cli ?? process.env.BENCH_REC_CLI !== '0';
  const { wordErrorRate } = require(join(ROOT, 'packages/core/dist/index.js'));
  const dir = mkdtempSync(join(tmpdir(), 'scribe-bench-rec-'));
  const loadBefore = loadavg();
  let server;
  try {
    const files = synthesise(dir, sentencesPerVoice);
    const script = join(dir, 'alone.py');
    writeFileSync(script, ALONE_PY);
    const audioSeconds = sum(files.map((f) => f.seconds));
    const provider = providerJob();
    // Cold start (informational): the provider's first job from cold, the script's model load.
    await coldProvider();
    const coldFirstJob = (await provider(files[0])).seconds;
    server = await aloneServer(script);
    await server.job(files[0]); // warm-up, not counted
    const ways = { provider, alone: server.job };
    const times = { provider: [], alone: [], cli: [] };
    const texts = { provider: [], alone: [], cli: [] };
    const pairs = []; // per file and repetition: alone ÷ provider, measured back to back
    for (let r = 0; r < reps; r++) {
      const rep = { provider: [], alone: [], cli: [] };
      for (const [i, f] of files.entries()) {
        // Each file by each way back to back, the first way alternating; the CLI in the first repetition.
        const order = (r + i) % 2 ? ['alone', 'provider'] : ['provider', 'alone'];
        if (withCli && r === 0) order.splice(i % 3, 0, 'cli');
        for (const way of order) {
          const res = way === 'cli' ? await cliJob(f) : await ways[way](f);
          rep[way].push(res.seconds);
          if (r === 0) texts[way][i] = res.text;
        }
        pairs.push(rep.alone[i] / rep.provider[i]);
      }
      for (const way of Object.keys(rep)) if (rep[way].length) times[way].push(sum(rep[way]));
    }
    const reference = files.map((f) => f.text).join(' ');
    const wer = Object.fromEntries(Object.entries(texts).filter(([, t]) => t.length).map(([way, t]) => [way, wordErrorRate(reference, t.join(' '))]));
    const ratios = times.provider.map((p, i) => times.alone[i] / p);
    const ratio = median(pairs);
    const data = {
      audioSeconds,
      files: files.map((f) => ({ voice: f.voice, seconds: f.seconds })),
      repetitions: reps,
      times,
      ratios,
      pairs,
      ratio,
      cliRatio: times.cli.length ? times.cli[0] / times.provider[0] : undefined,
      wer,
      identicalText: texts.provider.every((t, i) => t === texts.alone[i]),
      coldFirstJob,
      aloneModelLoad: server.loadSeconds,
      loadBefore,
      loadAfter: loadavg(),
      cpus: cpus().length,
    };
    const rows = [{ name: `local provider speed ÷ recogniser alone (${audioSeconds.toFixed(0)} s of speech in 4 jobs)`, value: `${ratio.toFixed(3)} ×`, target: '≥ 0.95 ×', ok: ratio >= 0.95 }];
    return { rows, section: section(data), data };
  } finally {
    await server?.close();
    await coldProvider();
    rmSync(dir, { recursive: true, force: true });
  }
}

function section(d) {
  const s = (xs) => xs.map((x) => x.toFixed(2)).join(', ');
  const la = (l) => l.map((x) => x.toFixed(2)).join(' / ');
  const pct = (x) => (x === undefined ? '–' : `${(x * 100).toFixed(1)} %`);
  return `## Local provider vs the recogniser alone

${d.files.length} WAV files of flite speech (${d.files.map((f) => `${f.voice} ${f.seconds.toFixed(1)} s`).join(', ')}; ${d.audioSeconds.toFixed(1)} s in all),
each recognised by each way back to back (which goes first alternating per file), ${d.repetitions} repetitions of the ${d.files.length} files:

| way | seconds per repetition (${d.files.length} files) | WER |
|---|---|---|
| provider: \`LocalProvider.transcribe\` (batch), ffmpeg decode from a byte stream of the file | ${s(d.times.provider)} | ${pct(d.wer.provider)} |
| recogniser alone: Debian's pocketsphinx binding in one minimal script, model loaded once, PCM read from disk | ${s(d.times.alone)} | ${pct(d.wer.alone)} |
${d.times.cli.length ? `| \`pocketsphinx_continuous -infile\` per file (the C tool; first repetition only, informational) | ${s(d.times.cli)} | ${pct(d.wer.cli)} |\n` : ''}
**Provider speed ÷ recogniser alone: median over the ${d.pairs.length} back-to-back pairs (alone time ÷ provider time, one file) ${d.ratio.toFixed(3)} ×** (target ≥ 0.95 ×;
pairs ${[...d.pairs].sort((a, b) => a - b).map((x) => x.toFixed(3)).join(', ')}); per repetition (sums) ${d.ratios.map((x) => x.toFixed(3)).join(', ')}.
${d.cliRatio !== undefined ? `Against the CLI (first repetition): ${d.cliRatio.toFixed(3)} ×. ` : ''}Provider and binding gave ${d.identicalText ? 'the same words on every file' : 'different words on some file'}.
Cold start, not in the ratio: the provider's first job (${d.files[0].voice}) from a cold recogniser took ${d.coldFirstJob.toFixed(2)} s; the script's start and model load ${d.aloneModelLoad.toFixed(2)} s.

How measured: both sides warm (one job each before timing), so the ratio is what every job of a running worker pays
on top of the recogniser's own work: its recogniser process, model load, ffmpeg decode, pipes and messages.
The baseline is the binding in a minimal script rather than the CLI because that is the least the
recogniser costs: the same library, model and settings as the provider, the same 100 ms blocks and utterance split (so the
same work and the same words), with no process or model load per file and no decoder or IPC; the CLI
pays a process start and a model load per file.
Load average (1/5/15 min) before ${la(d.loadBefore)}, after ${la(d.loadAfter)}; ${d.cpus} cores.
Command: \`node bench/recogniser.js\` (env: BENCH_REC_REPS, BENCH_REC_SENTENCES per voice, BENCH_REC_CLI=0 skips the CLI).
`;
}

module.exports = { run };

if (require.main === module) {
  run()
    .then(({ rows, section: md, data }) => {
      console.log(JSON.stringify(data, null, 2));
      for (const r of rows) console.log(`${r.ok ? 'ok  ' : 'MISS'} ${r.name}: ${r.value} (target ${r.target})`);
      console.log(md);
      process.exit(rows.every((r) => r.ok) ? 0 : 1);
    })
    .catch((e) => {
      console.error('[bench] recogniser failed:', e);
      process.exit(1);
    });
}
