// The one place where protobufjs 64-bit values and JS bigints meet: every 64-bit field of a trace record crosses
// here exactly once, on encode (bigint → {low, high}) and on decode (Long → bigint).
// protobufjs's writer accepts any object with 32-bit `low`/`high` halves, so no `Long` class is needed to encode.
// Must not: route a 64-bit value through a JS number, or be bypassed by ad-hoc conversions elsewhere.
import type Long from 'long';

/** What protobufjs reads and writes for 64-bit fields: two's-complement halves. */
export interface LongBits {
  readonly low: number;
  readonly high: number;
  readonly unsigned?: boolean;
}

const MASK32 = 0xffff_ffffn;

/**
 * A 64-bit bigint (unsigned, or signed for sint64 fields) → halves of its two's-complement pattern, typed as the
 * `Long` the generated declarations name: protobufjs's writer only reads `low` and `high` (LongBits.from).
 */
export function toLongBits(x: bigint): Long {
  if (x >= 0n && x <= MASK32) return { low: Number(x) | 0, high: 0, unsigned: true } as LongBits as Long;
  const u = BigInt.asUintN(64, x);
  const bits: LongBits = { low: Number(u & MASK32) | 0, high: Number(u >> 32n) | 0, unsigned: true };
  return bits as Long;
}

/** Halves → the unsigned 64-bit bit pattern. */
export function fromLongBits(l: LongBits): bigint {
  return fromHalves(l.low, l.high);
}

/** Unsigned 64-bit value from its 32-bit halves (fast-decode.ts reads varints into halves). */
export function fromHalves(low: number, high: number): bigint {
  const lo = low >>> 0;
  const hi = high >>> 0;
  if (hi === 0) return lo < SMALL.length ? SMALL[lo]! : BigInt(lo);
  return (BigInt(hi) << 32n) | BigInt(lo);
}

/** A zigzag-encoded sint64 given as halves of its varint → signed bigint. */
export function fromZigZagHalves(low: number, high: number): bigint {
  const mask = -(low & 1);
  const l = ((low >>> 1) | (high << 31)) ^ mask;
  const h = (high >>> 1) ^ mask;
  if (h === 0 && l >= 0) return l < SMALL.length ? SMALL[l]! : BigInt(l);
  if (h === -1 && l < 0) return BigInt(l); // a small negative value: l already is it, as a signed 32-bit number
  return BigInt.asIntN(64, (BigInt(h >>> 0) << 32n) | BigInt(l >>> 0));
}

// Small values (zero fields, lengths, reasons) are most of what a trace holds: share their bigints instead of
// allocating one per decoded field.
const SMALL: readonly bigint[] = Array.from({ length: 1024 }, (_, i) => BigInt(i));

/** Halves → signed 64-bit value (sint64 fields). */
export function fromSignedLongBits(l: LongBits): bigint {
  return BigInt.asIntN(64, fromLongBits(l));
}

/** True for an absent or zero 64-bit field. */
export function isZeroBits(l: LongBits | null | undefined): boolean {
  return l == null || (l.low === 0 && l.high === 0);
}
