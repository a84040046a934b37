import { ascii, u64le, view, type HeaderResult } from './audio-bytes';

/** PCM, IEEE float, A-law, µ-law: one block per sample frame, so frames = data bytes / block align. */
const FRAMED = new Set([1, 3, 6, 7]);
const EXTENSIBLE = 0xfffe;

/**
 * Duration of a RIFF/WAVE (or RF64/BW64) file from its chunks: `fmt `, optional `fact` / `ds64`, and
 * the `data` chunk's header (its body is never needed). Chunks before `data` (LIST, bext, JUNK, iXML)
 * are skipped; when one runs past `b`, the bytes up to the next chunk header are asked for.
 *
 * The data size: the `data` chunk's, or ds64's for RF64; when it is a streaming placeholder (0 or
 * 0xFFFFFFFF, what a writer to a pipe leaves) or larger than what the object holds (a cut-off upload),
 * the bytes from the data offset to the end of the object, which is what a decoder will find.
 */
export function wavDuration(b: Uint8Array, size: number | undefined): HeaderResult {
  const riff = ascii(b, 0, 4);
  const rf64 = riff === 'RF64' || riff === 'BW64';
  const v = view(b);
  let off = 12;
  let fmt: { tag: number; rate: number; blockAlign: number } | undefined;
  let factSamples: number | undefined;
  let ds64Data: number | undefined;
  for (;;) {
    if (off + 8 > b.length) return { needMore: off + 8 };
    const id = ascii(b, off, off + 4);
    const chunkSize = v.getUint32(off + 4, true);
    const body = off + 8;
    if (id === 'data') {
      if (!fmt || fmt.rate === 0) return null;
      let dataBytes = rf64 && chunkSize === 0xffffffff ? ds64Data : chunkSize;
      const placeholder = dataBytes === undefined || dataBytes === 0 || dataBytes === 0xffffffff;
      if (size !== undefined && (placeholder || dataBytes! > size - body)) dataBytes = Math.max(0, size - body);
      else if (placeholder) return null;
      const container = rf64 ? 'rf64' : 'wav';
      if (FRAMED.has(fmt.tag) && fmt.blockAlign > 0) return { seconds: Math.floor(dataBytes! / fmt.blockAlign) / fmt.rate, exact: true, container };
      // Compressed payloads (ADPCM, GSM…): the `fact` chunk's sample count, when the writer kept one.
      if (factSamples !== undefined && factSamples > 0) return { seconds: factSamples / fmt.rate, exact: true, container };
      return null;
    }
    // The bodies read below must be in `b` whole; a chunk we only skip needs just its header.
    const need = id === 'fmt ' ? Math.min(chunkSize, 26) : id === 'fact' ? 4 : id === 'ds64' ? 16 : 0;
    if (body + need > b.length) return { needMore: body + need };
    if (id === 'fmt ' && chunkSize >= 16) {
      let tag = v.getUint16(body, true);
      // WAVE_FORMAT_EXTENSIBLE: the real format is the first two bytes of the sub-format GUID.
      if (tag === EXTENSIBLE && chunkSize >= 26) tag = v.getUint16(body + 24, true);
      fmt = { tag, rate: v.getUint32(body + 4, true), blockAlign: v.getUint16(body + 12, true) };
    } else if (id === 'fact' && chunkSize >= 4) {
      factSamples = v.getUint32(body, true);
    } else if (id === 'ds64' && chunkSize >= 16) {
      ds64Data = u64le(v, body + 8);
    }
    off = body + chunkSize + (chunkSize % 2);
    if (size !== undefined && off >= size) return null; // no data chunk in the object
  }
}
