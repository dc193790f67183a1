// zstd compression of chunk payloads through zstd-napi's native binding, with fixed parameters so the same bytes
// always give the same frame. Decompression writes into a buffer sized from the validated chunk header, never from
// the frame's own content-size field, so a damaged frame cannot make us allocate past the chunk limit.
// Must not: choose limits (framing.ts does) or touch files.
import binding from 'zstd-napi/binding.js';

/** Fixed for determinism; changing it changes every written trace byte (not the format version). */
export const ZSTD_LEVEL = 9;

let cctx: binding.CCtx | undefined;
let dctx: binding.DCtx | undefined;

function compressor(): binding.CCtx {
  if (!cctx) {
    cctx = new binding.CCtx();
    cctx.setParameter(binding.CParameter.compressionLevel, ZSTD_LEVEL);
    cctx.setParameter(binding.CParameter.checksumFlag, 0);
    cctx.setParameter(binding.CParameter.contentSizeFlag, 1);
    cctx.setParameter(binding.CParameter.dictIDFlag, 0);
  }
  return cctx;
}

/** One complete zstd frame holding `data`. */
export function compressFrame(data: Uint8Array): Uint8Array {
  const dst = Buffer.allocUnsafe(binding.compressBound(data.length));
  const n = compressor().compress2(dst, data);
  return new Uint8Array(dst.buffer, dst.byteOffset, n).slice();
}

export function compressBound(n: number): number {
  return binding.compressBound(n);
}

/**
 * Decompress one frame that must produce exactly `expectedLength` bytes. Returns the bytes, or a short reason
 * string when the frame is damaged or its size differs.
 */
export function decompressFrame(frame: Uint8Array, expectedLength: number, scratch?: Uint8Array): Uint8Array | string {
  dctx ??= new binding.DCtx();
  // One spare byte: a frame that would produce more than announced fails instead of fitting exactly. A caller that
  // decodes chunk after chunk may lend a scratch buffer (the result is then a view of it, valid until its next use).
  const dst = scratch !== undefined && scratch.length >= expectedLength + 1 ? scratch.subarray(0, expectedLength + 1) : new Uint8Array(expectedLength + 1);
  let n: number;
  try {
    n = dctx.decompress(dst, frame);
  } catch (e) {
    return `zstd: ${(e as Error).message}`;
  }
  if (n !== expectedLength) return `zstd frame holds ${n} bytes, chunk header says ${expectedLength}`;
  return dst.subarray(0, n);
}
