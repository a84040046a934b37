// The obvious alternative to absolute deadlines: per stream, sleep(chunkMs) then send the next chunk.
// Each sleep's overshoot (timer granularity, a busy event loop) adds up, so the stream drifts behind.
'use strict';
const { setTimeout: sleep } = require('node:timers/promises');

/**
 * Pace `frames` (an array of Buffers of `frameMs` of audio each) by sleeping `frameMs` before each send.
 * `onSend(frame, index)` is the sink; it may return a promise (awaited, as a client awaits ws.send).
 */
async function naivePacer({ frames, frameMs, onSend }) {
  for (let i = 0; i < frames.length; i++) {
    await sleep(frameMs);
    await onSend(frames[i], i);
  }
}

module.exports = { naivePacer };
