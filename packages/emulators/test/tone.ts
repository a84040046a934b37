/** 16 kHz s16le test audio: `ms` of a 440 Hz tone at `amp` (speech-like energy), or of silence (amp 0). */
export function pcm(ms: number, amp: number): Buffer {
  const n = (ms * 16) | 0;
  const b = Buffer.alloc(n * 2);
  for (let i = 0; i < n; i++) b.writeInt16LE(Math.round(amp * Math.sin((2 * Math.PI * 440 * i) / 16000)), i * 2);
  return b;
}
export const speech = (ms: number) => pcm(ms, 6000);
export const quiet = (ms: number) => pcm(ms, 0);
