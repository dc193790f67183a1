// Shared shape of every exit-information decoder: the typed value, the reserved bits that were set, and the
// names of sub-fields that hold encodings the SDM leaves unused ("Other values not used").
// Must not: know any particular field layout; each codec module owns its own bit positions.
// SDM Vol. 3C 27.2 (VM-exit information fields).

/**
 * Result of decoding one raw exit-information value. `reserved` holds the raw bits that the SDM reserves or
 * defines as "cleared to 0" for this layout (0 for well-formed input); `malformed` names sub-fields whose value
 * is an unused encoding. Importers flag either as malformed exit information.
 */
export interface Decoded<T, R extends number | bigint> {
  readonly value: T;
  readonly reserved: R;
  readonly malformed: readonly string[];
}

/** Bits lo..lo+width-1 of a 32-bit value, as an unsigned number. */
export function field32(raw: number, lo: number, width: number): number {
  return width >= 32 ? raw >>> 0 : (raw >>> lo) & ((1 << width) - 1);
}

/** `value` masked to `width` bits and placed at `lo` in a 32-bit word (unsigned). */
export function place32(value: number, lo: number, width: number): number {
  const mask = width >= 32 ? 0xffff_ffff : (1 << width) - 1;
  return ((value & mask) << lo) >>> 0;
}

/** Bit `n` of a 32-bit value. */
export function flag32(raw: number, n: number): boolean {
  return ((raw >>> n) & 1) === 1;
}

/** Mask with bits hi..lo set, as an unsigned 32-bit number. */
export function mask32(hi: number, lo: number): number {
  const width = hi - lo + 1;
  return width >= 32 ? 0xffff_ffff : ((((1 << width) - 1) << lo) >>> 0);
}

/** A 64-bit qualification split into halves so the decoders work on numbers; bits 63:32 are usually reserved. */
export function splitQualification(q: bigint): { lo: number; hi: number } {
  const v = BigInt.asUintN(64, q);
  return { lo: Number(v & 0xffff_ffffn) >>> 0, hi: Number(v >> 32n) >>> 0 };
}

/** Reassemble a qualification from its halves. */
export function joinQualification(lo: number, hi: number): bigint {
  return (BigInt(hi >>> 0) << 32n) | BigInt(lo >>> 0);
}
