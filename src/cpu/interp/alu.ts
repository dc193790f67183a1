// Integer ALU with exact x86 status flags: add/sub families, logic, INC/DEC/NEG, shifts and rotates with
// count masking, MUL/IMUL/DIV/IDIV. Pure functions on (value, size) → (value, flags); no CPU state.
// Flags the SDM calls undefined get a fixed documented value here and are listed per instruction in
// table.ts so comparisons can mask them. SDM Vol. 1 3.4.3, Vol. 2 instruction pages (ADD … SAR, MUL, DIV).

export const F = { CF: 0x1, PF: 0x4, AF: 0x10, ZF: 0x40, SF: 0x80, OF: 0x800 } as const;
/** CF|PF|AF|ZF|SF|OF. */
export const STATUS_FLAGS = 0x8d5;

export interface AluOut {
  readonly value: bigint;
  /** New values of the status flags in `written` (bits outside `written` are 0 and must be ignored). */
  readonly flags: number;
  /** Status flags this operation writes (defined or undefined); the others keep their old value. */
  readonly written: number;
}

const MASKS: Record<number, bigint> = { 1: 0xffn, 2: 0xffffn, 4: 0xffff_ffffn, 8: 0xffff_ffff_ffff_ffffn };
const SIGNS: Record<number, bigint> = { 1: 0x80n, 2: 0x8000n, 4: 0x8000_0000n, 8: 0x8000_0000_0000_0000n };

export function maskOf(size: number): bigint {
  return MASKS[size]!;
}

export function signBit(size: number): bigint {
  return SIGNS[size]!;
}

/** Sign-extend a `size`-byte value to a signed bigint. */
export function toSigned(v: bigint, size: number): bigint {
  return BigInt.asIntN(size * 8, v);
}

const PARITY = new Uint8Array(256);
for (let i = 0; i < 256; i++) {
  let b = i;
  let ones = 0;
  while (b) { ones += b & 1; b >>= 1; }
  PARITY[i] = ones % 2 === 0 ? 1 : 0;
}

/** SF, ZF, PF of a result. */
export function szp(v: bigint, size: number): number {
  let f = 0;
  if (v === 0n) f |= F.ZF;
  if (v & SIGNS[size]!) f |= F.SF;
  if (PARITY[Number(v & 0xffn)]) f |= F.PF;
  return f;
}

/** ADD / ADC (carry = 0 or 1). */
export function add(a: bigint, b: bigint, size: number, carry = 0): AluOut {
  const m = MASKS[size]!;
  const full = a + b + BigInt(carry);
  const r = full & m;
  let f = szp(r, size);
  if (full > m) f |= F.CF;
  if ((a ^ b ^ r) & 0x10n) f |= F.AF;
  if ((~(a ^ b) & (a ^ r)) & SIGNS[size]!) f |= F.OF;
  return { value: r, flags: f, written: STATUS_FLAGS };
}

/** SUB / SBB / CMP (borrow = 0 or 1). */
export function sub(a: bigint, b: bigint, size: number, borrow = 0): AluOut {
  const m = MASKS[size]!;
  const bb = b + BigInt(borrow);
  const r = (a - bb) & m;
  let f = szp(r, size);
  if (a < bb) f |= F.CF;
  if ((a ^ b ^ r) & 0x10n) f |= F.AF;
  if (((a ^ b) & (a ^ r)) & SIGNS[size]!) f |= F.OF;
  return { value: r, flags: f, written: STATUS_FLAGS };
}

/** AND/OR/XOR/TEST: CF = OF = 0, AF undefined (0 here). */
export function logic(r: bigint, size: number): AluOut {
  return { value: r & MASKS[size]!, flags: szp(r & MASKS[size]!, size), written: STATUS_FLAGS };
}

/** INC: like ADD 1 but CF is not written. */
export function inc(a: bigint, size: number): AluOut {
  const o = add(a, 1n, size);
  return { value: o.value, flags: o.flags & ~F.CF, written: STATUS_FLAGS & ~F.CF };
}

/** DEC: like SUB 1 but CF is not written. */
export function dec(a: bigint, size: number): AluOut {
  const o = sub(a, 1n, size);
  return { value: o.value, flags: o.flags & ~F.CF, written: STATUS_FLAGS & ~F.CF };
}

/** NEG: 0 − a; CF = (a ≠ 0). */
export function neg(a: bigint, size: number): AluOut {
  return sub(0n, a, size);
}

export type ShiftOp = 'shl' | 'shr' | 'sar' | 'rol' | 'ror' | 'rcl' | 'rcr';

/**
 * Shift/rotate with the SDM count rules: count masked to 5 bits (6 for 64-bit operands); a masked count of
 * 0 writes no flags. `cf` is the incoming carry (RCL/RCR). Undefined flags: AF for shifts with count ≠ 0
 * (0 here); OF unless the masked count is 1 (computed with the 1-bit formula on the final result here);
 * CF for SHL/SHR when count ≥ width (the last bit shifted out, i.e. 0, here).
 */
export function shift(op: ShiftOp, a: bigint, countIn: number, size: number, cf: number): AluOut {
  const bitsN = size * 8;
  const width = BigInt(bitsN);
  const m = MASKS[size]!;
  const count = countIn & (size === 8 ? 0x3f : 0x1f);
  if (count === 0) return { value: a, flags: 0, written: 0 };
  const c = BigInt(count);
  const msb = (v: bigint): number => ((v >> (width - 1n)) & 1n ? 1 : 0);
  switch (op) {
    case 'shl': {
      const r = (a << c) & m;
      const carry = c <= width ? Number((a >> (width - c)) & 1n) : 0;
      let f = szp(r, size) | (carry ? F.CF : 0);
      if (msb(r) ^ carry) f |= F.OF;
      return { value: r, flags: f, written: STATUS_FLAGS };
    }
    case 'shr': {
      const r = a >> c;
      const carry = c <= width ? Number((a >> (c - 1n)) & 1n) : 0;
      let f = szp(r, size) | (carry ? F.CF : 0);
      // OF (count 1) = MSB of the original operand.
      if (msb(a)) f |= F.OF;
      return { value: r, flags: f, written: STATUS_FLAGS };
    }
    case 'sar': {
      const s = toSigned(a, size);
      const shiftBy = c >= width ? width - 1n : c;
      const r = BigInt.asUintN(bitsN, s >> shiftBy);
      const carry = c >= width ? msb(a) : Number((a >> (c - 1n)) & 1n);
      const f = szp(r, size) | (carry ? F.CF : 0);
      return { value: r, flags: f, written: STATUS_FLAGS };
    }
    case 'rol': {
      const t = c % width;
      const r = t === 0n ? a : ((a << t) | (a >> (width - t))) & m;
      const carry = Number(r & 1n);
      let f = carry ? F.CF : 0;
      if (msb(r) ^ carry) f |= F.OF;
      return { value: r, flags: f, written: F.CF | F.OF };
    }
    case 'ror': {
      const t = c % width;
      const r = t === 0n ? a : ((a >> t) | (a << (width - t))) & m;
      const carry = msb(r);
      let f = carry ? F.CF : 0;
      if (msb(r) ^ Number((r >> (width - 2n)) & 1n)) f |= F.OF;
      return { value: r, flags: f, written: F.CF | F.OF };
    }
    case 'rcl': {
      const t = size <= 2 ? c % (width + 1n) : c;
      // Rotate the (width+1)-bit quantity CF:a left by t.
      const w1 = width + 1n;
      const x = (BigInt(cf & 1) << width) | a;
      const mm = (1n << w1) - 1n;
      const y = t === 0n ? x : ((x << t) | (x >> (w1 - t))) & mm;
      const r = y & m;
      const carry = Number((y >> width) & 1n);
      let f = carry ? F.CF : 0;
      if (msb(r) ^ carry) f |= F.OF;
      return { value: r, flags: f, written: F.CF | F.OF };
    }
    case 'rcr': {
      const t = size <= 2 ? c % (width + 1n) : c;
      const w1 = width + 1n;
      const x = (BigInt(cf & 1) << width) | a;
      const mm = (1n << w1) - 1n;
      const y = t === 0n ? x : ((x >> t) | (x << (w1 - t))) & mm;
      const r = y & m;
      const carry = Number((y >> width) & 1n);
      // OF (count 1) = MSB(dest) XOR CF, both taken before the rotation.
      let f = carry ? F.CF : 0;
      if (msb(a) ^ (cf & 1)) f |= F.OF;
      return { value: r, flags: f, written: F.CF | F.OF };
    }
  }
}

/** SHLD/SHRD are not in the interpreter's instruction set (coverage.ts lists them). */

export interface MulOut {
  readonly lo: bigint;
  readonly hi: bigint;
  readonly flags: number;
}

/** MUL: unsigned; CF = OF = (hi ≠ 0); SF/ZF/AF/PF undefined (set from the low half here). */
export function mul(a: bigint, b: bigint, size: number): MulOut {
  const m = MASKS[size]!;
  const p = a * b;
  const lo = p & m;
  const hi = (p >> BigInt(size * 8)) & m;
  const f = (hi !== 0n ? F.CF | F.OF : 0) | szp(lo, size);
  return { lo, hi, flags: f };
}

/** IMUL: signed; CF = OF = (the product does not fit the low half); SF/ZF/AF/PF undefined (from low half). */
export function imul(a: bigint, b: bigint, size: number): MulOut {
  const m = MASKS[size]!;
  const p = toSigned(a, size) * toSigned(b, size);
  const lo = BigInt.asUintN(size * 8, p);
  const hi = BigInt.asUintN(size * 8, p >> BigInt(size * 8));
  const fits = toSigned(lo, size) === p;
  const f = (fits ? 0 : F.CF | F.OF) | szp(lo & m, size);
  return { lo, hi, flags: f };
}

export type DivOut = { readonly ok: true; readonly quotient: bigint; readonly remainder: bigint } | { readonly ok: false };

/** DIV of the 2·size-byte dividend hi:lo by `d`; #DE (ok: false) on zero divisor or quotient overflow. */
export function div(hi: bigint, lo: bigint, d: bigint, size: number): DivOut {
  if (d === 0n) return { ok: false };
  const n = (hi << BigInt(size * 8)) | lo;
  const q = n / d;
  if (q > MASKS[size]!) return { ok: false };
  return { ok: true, quotient: q, remainder: n % d };
}

/** IDIV (truncating toward zero); #DE on zero divisor or quotient outside the signed range. */
export function idiv(hi: bigint, lo: bigint, d: bigint, size: number): DivOut {
  const ds = toSigned(d, size);
  if (ds === 0n) return { ok: false };
  const bitsN = size * 8;
  const n = BigInt.asIntN(bitsN * 2, (hi << BigInt(bitsN)) | lo);
  const q = n / ds;
  const max = (1n << BigInt(bitsN - 1)) - 1n;
  if (q > max || q < -max - 1n) return { ok: false };
  const r = n % ds;
  return { ok: true, quotient: BigInt.asUintN(bitsN, q), remainder: BigInt.asUintN(bitsN, r) };
}

/** Apply an ALU result's written flags to an RFLAGS value (number, low 32 bits). */
export function mergeFlags(rflags: number, out: { flags: number; written: number }): number {
  return (rflags & ~out.written) | (out.flags & out.written);
}

/** Evaluate an iced-x86 condition code (1 = o … 16 = g) against RFLAGS. */
export function condition(cc: number, rf: number): boolean {
  const cf = (rf & F.CF) !== 0;
  const zf = (rf & F.ZF) !== 0;
  const sf = (rf & F.SF) !== 0;
  const of = (rf & F.OF) !== 0;
  const pf = (rf & F.PF) !== 0;
  switch (cc) {
    case 1: return of;
    case 2: return !of;
    case 3: return cf;
    case 4: return !cf;
    case 5: return zf;
    case 6: return !zf;
    case 7: return cf || zf;
    case 8: return !cf && !zf;
    case 9: return sf;
    case 10: return !sf;
    case 11: return pf;
    case 12: return !pf;
    case 13: return sf !== of;
    case 14: return sf === of;
    case 15: return zf || sf !== of;
    case 16: return !zf && sf === of;
    default: throw new Error(`turtles bug: condition code ${cc}`);
  }
}
