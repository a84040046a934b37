/** 16 kHz s16le test audio: `ms` of a 440 Hz tone at `amp` (speech-like energy), or of silence (amp 0). */
export function pcm(ms: number, amp: number): Buffer {
  const n = (ms * 16) | 0;
  const b = Buffer.alloc(n * 2);
  for (let i = 0; i < n; i++) b.writeInt16LE(Math.round(amp * Math.sin((2 * Math.PI * 440 * i) / 16000)), i * 2);
  return b;
}
export const speech = (ms: number) => pcm(ms, 6000);
export const quiet = (ms: number) => pcm(ms, 0);

/** 16 kHz s16le of a buzz (a pulse train through a decaying resonance: voice-like, rich in harmonics) at f0 Hz. */
export function voice(f0: number, seconds: number, amplitude = 8000): Buffer {
  const n = Math.round(16_000 * seconds);
  const buf = Buffer.alloc(n * 2);
  const period = 16_000 / f0;
  for (let i = 0; i < n; i++) {
    const t = (i % period) / 16_000;
    const v = amplitude * Math.exp(-t * 400) * Math.sin(2 * Math.PI * 700 * t);
    buf.writeInt16LE(Math.round(v), 2 * i);
  }
  return buf;
}
