// The pacing of the providers' starter kits and quickstarts: every 250 ms, sleep 250 ms and send the
// next 250 ms of audio as one frame (8 000 bytes of 16 kHz s16le). Relative sleeps, so it drifts like the
// naive pacer, with a quarter of the wake-ups.
'use strict';
const { setTimeout: sleep } = require('node:timers/promises');

const BLOCK_MS = 250;

/** Cut `pcm` (one Buffer) into 250 ms blocks and send one after each 250 ms sleep. */
async function starterKitPacer({ pcm, byteRate, onSend }) {
  const block = Math.round((BLOCK_MS / 1000) * byteRate);
  for (let off = 0, i = 0; off < pcm.length; off += block, i++) {
    await sleep(BLOCK_MS);
    await onSend(pcm.subarray(off, Math.min(pcm.length, off + block)), i);
  }
}

module.exports = { starterKitPacer, BLOCK_MS };
