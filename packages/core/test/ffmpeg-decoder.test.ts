/** The decoder's pure parts: declared durations from headers / ffmpeg / ffprobe, and the truncation rule. */
import {
  declaredFromFfprobe,
  headerDuration,
  id3v2Size,
  isTruncated,
  MIN_TRUNCATION_SECONDS,
  needsSpooling,
  parseFfmpegInput,
  streamedWavHeader,
} from '../src/adapters/s3/ffmpeg-decoder';
import { DecodeError } from '../src/domain/errors';

function chunk(id: string, body: Buffer, declaredSize = body.length): Buffer {
  const h = Buffer.alloc(8);
  h.write(id, 0, 'latin1');
  h.writeUInt32LE(declaredSize >>> 0, 4);
  return Buffer.concat([h, body, body.length % 2 ? Buffer.alloc(1) : Buffer.alloc(0)]);
}

function fmt(o: { tag?: number; rate?: number; channels?: number; bits?: number } = {}): Buffer {
  const rate = o.rate ?? 16000;
  const channels = o.channels ?? 1;
  const bits = o.bits ?? 16;
  const b = Buffer.alloc(16);
  b.writeUInt16LE(o.tag ?? 1, 0);
  b.writeUInt16LE(channels, 2);
  b.writeUInt32LE(rate, 4);
  b.writeUInt32LE((rate * channels * bits) / 8, 8);
  b.writeUInt16LE((channels * bits) / 8, 12);
  b.writeUInt16LE(bits, 14);
  return chunk('fmt ', b);
}

/** RIFF/WAVE with the given chunks, then a data chunk header declaring `dataBytes` (and `present` bytes of it). */
function wav(dataBytes: number, o: { riff?: 'RIFF' | 'RF64'; before?: Buffer[]; fmt?: Buffer; present?: number } = {}): Buffer {
  const data = Buffer.alloc(8);
  data.write('data', 0, 'latin1');
  data.writeUInt32LE(dataBytes >>> 0, 4);
  const head = Buffer.alloc(12);
  head.write(o.riff ?? 'RIFF', 0, 'latin1');
  head.writeUInt32LE(0xffffffff, 4);
  head.write('WAVE', 8, 'latin1');
  return Buffer.concat([head, ...(o.before ?? []), o.fmt ?? fmt(), data, Buffer.alloc(o.present ?? 0)]);
}

/** An MPEG audio frame header + side info + (optionally) a Xing/Info tag with a frame count. */
function mp3Frame(o: { header: number; sideInfo: number; tag?: 'Xing' | 'Info'; frames?: number; flags?: number }): Buffer {
  const b = Buffer.alloc(417);
  b.writeUInt32BE(o.header >>> 0, 0);
  if (o.tag) {
    const at = 4 + o.sideInfo;
    b.write(o.tag, at, 'latin1');
    b.writeUInt32BE(o.flags ?? 1, at + 4);
    b.writeUInt32BE(o.frames ?? 0, at + 8);
  }
  return b;
}

// MPEG-1 Layer III, 128 kb/s, 44.1 kHz, joint stereo / mono; MPEG-2 Layer III 64 kb/s 22.05 kHz mono.
const MPEG1_STEREO = 0xfffb9064;
const MPEG1_MONO = 0xfffb90c4;
const MPEG2_MONO = 0xfff380c4;

describe('headerDuration: WAV', () => {
  it('reads data size / byte rate, past chunks before data', () => {
    expect(headerDuration(wav(10 * 32000))).toEqual({ seconds: 10, source: 'wav-header' });
    const list = chunk('LIST', Buffer.from('INFOISFT\x05\x00\x00\x00Lavf\x00', 'latin1'));
    expect(headerDuration(wav(32000 * 3, { before: [list] }))?.seconds).toBe(3);
    // 8 channels of 24-bit at 192 kHz: 4.608 MB/s.
    expect(headerDuration(wav(4_608_000 * 2, { fmt: fmt({ rate: 192000, channels: 8, bits: 24 }) }))?.seconds).toBe(2);
    // IEEE float, extensible, µ-law are exact too.
    for (const tag of [3, 0xfffe, 7]) expect(headerDuration(wav(64000, { fmt: fmt({ tag, bits: 32 }) }))?.seconds).toBe(1);
  });

  it('says "unknown" (and is final about it) for streaming sentinels and compressed payloads', () => {
    for (const size of [0, 0xffffffff]) expect(headerDuration(wav(size))).toMatchObject({ seconds: undefined, source: 'wav-header' });
    expect(headerDuration(wav(64000, { fmt: fmt({ tag: 0x55 }) }))).toMatchObject({ seconds: undefined, source: 'wav-header' });
  });

  it('RF64: the 64-bit size in ds64', () => {
    const ds64 = Buffer.alloc(28);
    ds64.writeBigUInt64LE(BigInt(0), 0);
    ds64.writeBigUInt64LE(BigInt(32000 * 7200), 8); // two hours
    expect(headerDuration(wav(0xffffffff, { riff: 'RF64', before: [chunk('ds64', ds64)] }))?.seconds).toBe(7200);
  });

  it('no data chunk within the head (a huge chunk before it, or a cut header) → undefined: ffmpeg decides', () => {
    expect(headerDuration(wav(32000, { before: [chunk('LIST', Buffer.alloc(4), 0x7ffffff0)] }))).toBeUndefined();
    expect(headerDuration(wav(32000).subarray(0, 30))).toBeUndefined();
    expect(headerDuration(Buffer.from('RIFF'))).toBeUndefined();
  });
});

describe('headerDuration: MP3', () => {
  it('Xing/Info frame counts, for MPEG-1 stereo and mono and MPEG-2', () => {
    expect(headerDuration(mp3Frame({ header: MPEG1_STEREO, sideInfo: 32, tag: 'Xing', frames: 100 }))).toEqual({ seconds: (100 * 1152) / 44100, source: 'mp3-xing' });
    expect(headerDuration(mp3Frame({ header: MPEG1_MONO, sideInfo: 17, tag: 'Info', frames: 441 }))?.seconds).toBeCloseTo(11.52, 6);
    expect(headerDuration(mp3Frame({ header: MPEG2_MONO, sideInfo: 9, tag: 'Xing', frames: 1000 }))?.seconds).toBeCloseTo((1000 * 576) / 22050, 6);
  });

  it('behind an ID3v2 tag', () => {
    const tag = Buffer.concat([Buffer.from([0x49, 0x44, 0x33, 4, 0, 0, 0, 0, 0x02, 0x01]), Buffer.alloc(257)]);
    expect(id3v2Size(tag)).toBe(10 + 257);
    expect(headerDuration(Buffer.concat([tag, mp3Frame({ header: MPEG1_STEREO, sideInfo: 32, tag: 'Xing', frames: 50 })]))?.seconds).toBeCloseTo((50 * 1152) / 44100, 6);
  });

  it('a Xing tag without a frame count is final "unknown"; no tag leaves it to ffmpeg (which can only estimate)', () => {
    expect(headerDuration(mp3Frame({ header: MPEG1_STEREO, sideInfo: 32, tag: 'Xing', flags: 0 }))).toMatchObject({ seconds: undefined, source: 'mp3-xing' });
    expect(headerDuration(mp3Frame({ header: MPEG1_STEREO, sideInfo: 32 }))).toBeUndefined();
  });

  it('ADTS AAC (layer bits 00) and other sync-like bytes are not taken for MP3', () => {
    expect(headerDuration(mp3Frame({ header: 0xfff15080, sideInfo: 32, tag: 'Xing', frames: 10 }))).toBeUndefined();
    expect(headerDuration(Buffer.from('hello world, not audio'))).toBeUndefined();
    expect(headerDuration(Buffer.alloc(0))).toBeUndefined();
  });
});

describe('streamedWavHeader (ffmpeg -f wav to a pipe, keepChannels)', () => {
  it('reads the channel count and where the samples start, past a LIST chunk', () => {
    const list = chunk('LIST', Buffer.from('INFOISFT\x0e\0\0\0Lavf59.27.100\0', 'latin1'));
    const b = wav(0xffffffff, { fmt: fmt({ channels: 2 }), present: 6 });
    expect(streamedWavHeader(b)).toEqual({ channels: 2, dataOffset: 12 + 24 + 8 });
    // ffmpeg writes its LIST/INFO chunk between fmt and data.
    const listed = Buffer.concat([b.subarray(0, 12 + 24), list, b.subarray(12 + 24)]);
    expect(streamedWavHeader(listed)).toEqual({ channels: 2, dataOffset: 12 + 24 + list.length + 8 });
  });

  it('waits for more bytes while the header is incomplete', () => {
    const b = wav(0xffffffff, { fmt: fmt({ channels: 6 }) });
    for (const n of [0, 11, 12, 20, 30, b.length - 1]) expect(streamedWavHeader(b.subarray(0, n))).toBeUndefined();
    expect(streamedWavHeader(b)).toEqual({ channels: 6, dataOffset: b.length });
  });

  it('anything but a 16-bit RIFF/WAVE header is a DecodeError', () => {
    expect(() => streamedWavHeader(Buffer.from('OggS\0\0\0\0\0\0\0\0\0\0'))).toThrow(DecodeError);
    expect(() => streamedWavHeader(wav(0xffffffff, { fmt: fmt({ channels: 2, bits: 24 }) }))).toThrow(DecodeError);
    const noFmt = wav(0xffffffff);
    expect(() => streamedWavHeader(Buffer.concat([noFmt.subarray(0, 12), noFmt.subarray(12 + 24)]))).toThrow(DecodeError);
  });
});

describe('parseFfmpegInput', () => {
  const flac = [
    "[info] Input #0, flac, from 'pipe:0':",
    '[info]   Metadata:',
    '[info]     encoder         : Lavf59.27.100',
    '[info]     Duration        : a tag that is not the duration',
    '[info]   Duration: 00:01:10.60, start: 0.000000, bitrate: N/A',
    '[info]   Stream #0:0: Audio: flac, 16000 Hz, mono, s16',
    '[info] Stream mapping:',
    '[info]   Stream #0:0 -> #0:0 (flac (native) -> pcm_s16le (native))',
    "[info] Output #0, s16le, to 'pipe:1':",
    '[info]   Duration: 00:00:01.00',
  ].join('\n');

  it('reads the input block: Duration and streams', () => {
    expect(parseFfmpegInput(flac)).toEqual({ duration: 70.6, estimated: false, audioStreams: 1, otherStreams: 0, found: true });
  });

  it('N/A, estimates, video and cover art', () => {
    const mp3 = [
      '[mp3 @ 0x55] [warning] Estimating duration from bitrate, this may be inaccurate',
      "[info] Input #0, mp3, from 'x.mp3':",
      '[info]   Duration: 00:00:10.69, start: 0.000000, bitrate: 64 kb/s',
      '[info]   Stream #0:0: Audio: mp3, 16000 Hz, mono, fltp, 64 kb/s',
      '[info]   Stream #0:1: Video: mjpeg (Baseline), yuvj444p(pc), 64x64, 90k tbr, 90k tbn (attached pic)',
    ].join('\n');
    expect(parseFfmpegInput(mp3)).toMatchObject({ duration: 10.69, estimated: true, audioStreams: 1, otherStreams: 0 });
    const mp4 = [
      "[info] Input #0, mov,mp4,m4a,3gp,3g2,mj2, from 'v.mp4':",
      '[info]   Duration: 00:00:08.60, start: 0.000000, bitrate: 41 kb/s',
      '[info]   Stream #0:0[0x1](und): Video: h264 (High) (avc1 / 0x31637661), yuv420p, 160x120, 10 fps (default)',
      '[info]     Metadata:',
      '[info]       handler_name    : VideoHandler',
      '[info]   Stream #0:1[0x2](und): Audio: aac (LC) (mp4a / 0x6134706D), 8000 Hz, mono, fltp, 41 kb/s (default)',
    ].join('\n');
    expect(parseFfmpegInput(mp4)).toMatchObject({ duration: 8.6, audioStreams: 1, otherStreams: 1 });
    expect(parseFfmpegInput("Input #0, ogg, from 'pipe:0':\n  Duration: N/A, start: 0.000000, bitrate: N/A\n  Stream #0:0: Audio: opus")).toMatchObject({ duration: null, audioStreams: 1, found: true });
  });

  it('no input block (ffmpeg could not open the input)', () => {
    expect(parseFfmpegInput("[wav @ 0x56] [error] no 'data' tag found\n[error] pipe:0: Invalid data found when processing input")).toEqual({
      duration: undefined,
      estimated: false,
      audioStreams: 0,
      otherStreams: 0,
      found: false,
    });
  });
});

describe('declaredFromFfprobe', () => {
  it('the audio stream, not the container (a longer video track is not "missing audio")', () => {
    const doc = { streams: [{ codec_type: 'video', duration: '7.000000' }, { codec_type: 'audio', duration: '3.967000' }], format: { duration: '7.000000' } };
    expect(declaredFromFfprobe(doc)).toEqual({ seconds: 3.967, source: 'ffprobe' });
  });

  it('the shortest of several audio streams; the format duration only for a lone audio stream', () => {
    expect(declaredFromFfprobe({ streams: [{ codec_type: 'audio', duration: '9' }, { codec_type: 'audio', duration: '4' }] }).seconds).toBe(4);
    expect(declaredFromFfprobe({ streams: [{ codec_type: 'audio' }], format: { duration: '5.5' } }).seconds).toBe(5.5);
    expect(declaredFromFfprobe({ streams: [{ codec_type: 'audio' }, { codec_type: 'video' }], format: { duration: '5.5' } }).seconds).toBeUndefined();
    expect(declaredFromFfprobe({ streams: [{ codec_type: 'audio' }, { codec_type: 'video', disposition: { attached_pic: 1 } }], format: { duration: '5.5' } }).seconds).toBe(5.5);
  });

  it('an estimate is no declaration', () => {
    const d = declaredFromFfprobe({ streams: [{ codec_type: 'audio', duration: '10.6' }] }, '[mp3 @ 0x1] Estimating duration from bitrate, this may be inaccurate\n');
    expect(d.seconds).toBeUndefined();
    expect(d.reason).toMatch(/estimated/);
  });
});

describe('isTruncated', () => {
  it('needs both: more than the tolerance short, and by at least 0.5 s', () => {
    expect(MIN_TRUNCATION_SECONDS).toBe(0.5);
    expect(isTruncated(1.87, 10.6)).toBe(true);
    expect(isTruncated(0, 10)).toBe(true);
    // 2 % of an hour is 72 s: 60 s short is within tolerance.
    expect(isTruncated(3540, 3600)).toBe(false);
    expect(isTruncated(3500, 3600)).toBe(true);
    // 10 % short of 3 s is 0.3 s: under the floor.
    expect(isTruncated(2.7, 3)).toBe(false);
    expect(isTruncated(2.4, 3)).toBe(true);
  });

  it('honours the tolerance, and never fires without a positive declared duration', () => {
    expect(isTruncated(5, 10, 0.6)).toBe(false);
    expect(isTruncated(5, 10, 0.4)).toBe(true);
    expect(isTruncated(5, 10, 0)).toBe(true);
    expect(isTruncated(9.99, 10, 0)).toBe(false);
    expect(isTruncated(1, 0)).toBe(false);
    expect(isTruncated(1, Number.NaN)).toBe(false);
    expect(isTruncated(11, 10)).toBe(false);
  });
});

it('needsSpooling: ISO-BMFF only', () => {
  expect(needsSpooling(Buffer.from('\x00\x00\x00\x20ftypM4A ', 'latin1'))).toBe(true);
  expect(needsSpooling(wav(100))).toBe(false);
});
