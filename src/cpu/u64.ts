// The one place where 64-bit architectural values cross between bigint and JS numbers.
// Everything here is exact: a conversion that would lose bits throws, because that is a turtles bug.
// Must not: hold state, or be bypassed by ad-hoc Number(x) / BigInt(x) casts of architectural values elsewhere.

export const U64_MASK = 0xffff_ffff_ffff_ffffn;
export const U32_MASK = 0xffff_ffffn;
export const ALL_ONES_64 = U64_MASK;

/** Truncate any bigint to an unsigned 64-bit value. */
export function u64(x: bigint): bigint {
  return BigInt.asUintN(64, x);
}

/** Truncate to the low `bits` bits. */
export function truncate(x: bigint, bits: number): bigint {
  return BigInt.asUintN(bits, x);
}

/** Bit `n` of x as a boolean. */
export function bit(x: bigint, n: number): boolean {
  return ((x >> BigInt(n)) & 1n) === 1n;
}

/** Bits hi:lo of x (inclusive), shifted down. */
export function bits(x: bigint, hi: number, lo: number): bigint {
  return (x >> BigInt(lo)) & ((1n << BigInt(hi - lo + 1)) - 1n);
}

// maskRange results by hi·128 + lo, filled on first use: bigints are immutable, so a remembered mask is the same
// value a fresh computation gives, without the three bigint operations per call on hot paths (EPT/paging walks).
const MASK_MEMO: (bigint | undefined)[] = new Array<bigint | undefined>(128 * 128).fill(undefined);

/** Mask with bits hi:lo set. */
export function maskRange(hi: number, lo: number): bigint {
  const small = hi >= 0 && hi < 128 && lo >= 0 && lo < 128 && (hi | 0) === hi && (lo | 0) === lo;
  const key = hi * 128 + lo;
  if (small) {
    const m = MASK_MEMO[key];
    if (m !== undefined) return m;
  }
  const m = ((1n << BigInt(hi - lo + 1)) - 1n) << BigInt(lo);
  if (small) MASK_MEMO[key] = m;
  return m;
}

/** A 32-bit control value (always exact in a JS number) from a bigint field value. */
export function toU32(x: bigint): number {
  return Number(x & U32_MASK) >>> 0;
}

/** A small bigint known to fit 53 bits (counts, indices, offsets), as a number. Throws if it does not fit. */
const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

export function toSafeNumber(x: bigint): number {
  if (x < 0n || x > MAX_SAFE) {
    throw new RangeError(`turtles bug: ${x} does not fit a safe integer`);
  }
  return Number(x);
}

/** True when bits 63:width-1 are all equal (canonical for a `width`-bit linear address space). */
export function isCanonical(x: bigint, width = 48): boolean {
  const top = x >> BigInt(width - 1);
  return top === 0n || top === (U64_MASK >> BigInt(width - 1));
}

/** Sign-extend from bit `width - 1` to 64 bits. */
export function signExtend(x: bigint, width: number): bigint {
  return u64(BigInt.asIntN(width, x));
}

/** True when no bit at or above `maxPhysAddr` is set. */
export function withinPhysAddrWidth(x: bigint, maxPhysAddr: number): boolean {
  return x >> BigInt(maxPhysAddr) === 0n;
}

/** 4 KiB aligned and within the physical-address width (KVM `page_address_valid`). */
export function isPageAddressValid(x: bigint, maxPhysAddr: number): boolean {
  return (x & 0xfffn) === 0n && withinPhysAddrWidth(x, maxPhysAddr);
}

/** Hex with 0x prefix, zero-padded to `digits`. */
export function hex(x: bigint | number, digits = 0): string {
  const v = typeof x === 'bigint' ? x : BigInt(x);
  return '0x' + v.toString(16).padStart(digits, '0');
}

/** Parse a hex string with or without 0x into a bigint; undefined if malformed. */
export function parseHex(s: string): bigint | undefined {
  const t = s.startsWith('0x') || s.startsWith('0X') ? s.slice(2) : s;
  if (!/^[0-9a-fA-F]+$/.test(t)) return undefined;
  return BigInt('0x' + t);
}
