// Property (b): results and status flags of ALU instructions executed by the interpreter agree with a deliberately
// simple bit-by-bit reference model (ripple-carry adder, one-position-at-a-time shifts, shift-and-add multiply)
// on random operands, with the flags the instruction table marks undefined masked out.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { F, undefinedFlagsOf } from '../../src/cpu/interp/index.js';
import { propertyParams } from '../support/property.js';
import { machine, type Machine } from '../unit/cpu/interp/harness.js';

const STATUS = F.CF | F.PF | F.AF | F.ZF | F.SF | F.OF;

// ---- reference model on bit arrays (index 0 = least significant) ----------------------------------------------

type Bits = number[];
const toBits = (v: bigint, n: number): Bits => Array.from({ length: n }, (_, i) => Number((v >> BigInt(i)) & 1n));
const fromBits = (b: Bits): bigint => b.reduce((acc, x, i) => acc | (BigInt(x) << BigInt(i)), 0n);

function parityFlag(b: Bits): number {
  let ones = 0;
  for (let i = 0; i < 8; i++) ones += b[i]!;
  return ones % 2 === 0 ? F.PF : 0;
}

function resultFlags(r: Bits): number {
  return (r.every((x) => x === 0) ? F.ZF : 0) | (r[r.length - 1] ? F.SF : 0) | parityFlag(r);
}

/** Ripple-carry a + b + cin; returns sum bits, the carry out of the top bit, into the top bit, and out of bit 3. */
function ripple(a: Bits, b: Bits, cin: number): { s: Bits; cout: number; cTop: number; c4: number } {
  const s: Bits = [];
  let c = cin;
  let cTop = 0;
  let c4 = 0;
  for (let i = 0; i < a.length; i++) {
    if (i === a.length - 1) cTop = c;
    const x = a[i]! ^ b[i]! ^ c;
    c = (a[i]! & b[i]!) | (a[i]! & c) | (b[i]! & c);
    if (i === 3) c4 = c;
    s.push(x);
  }
  return { s, cout: c, cTop, c4 };
}

function refAdd(a: Bits, b: Bits, cin: number): { r: Bits; f: number } {
  const { s, cout, cTop, c4 } = ripple(a, b, cin);
  return { r: s, f: resultFlags(s) | (cout ? F.CF : 0) | (c4 ? F.AF : 0) | (cTop !== cout ? F.OF : 0) };
}

/** a − b − borrow as a + ~b + 1 − borrow: CF is the inverted carry (borrow), AF the inverted bit-3 carry. */
function refSub(a: Bits, b: Bits, borrow: number): { r: Bits; f: number } {
  const nb = b.map((x) => 1 - x);
  const { s, cout, cTop, c4 } = ripple(a, nb, 1 - borrow);
  return { r: s, f: resultFlags(s) | (cout ? 0 : F.CF) | (c4 ? 0 : F.AF) | (cTop !== cout ? F.OF : 0) };
}

function refShift(op: string, a: Bits, countIn: number, cf: number): { r: Bits; f: number; writes: number } {
  const n = a.length;
  const count = countIn & (n === 64 ? 63 : 31);
  if (count === 0) return { r: a, f: 0, writes: 0 };
  let r = [...a];
  let c = cf;
  let rcCount = count;
  if (op === 'rcl' || op === 'rcr') rcCount = n <= 16 ? count % (n + 1) : count;
  const rotCount = op === 'rol' || op === 'ror' ? count % n : 0;
  const steps = op === 'rol' || op === 'ror' ? rotCount : op === 'rcl' || op === 'rcr' ? rcCount : count;
  const ofBefore = r[n - 1]! ^ cf; // RCR's 1-bit OF uses the operand and CF before rotating
  const msbBefore = r[n - 1]!;
  for (let k = 0; k < steps; k++) {
    switch (op) {
      case 'shl': c = r[n - 1]!; r = [0, ...r.slice(0, n - 1)]; break;
      case 'shr': c = r[0]!; r = [...r.slice(1), 0]; break;
      case 'sar': c = r[0]!; r = [...r.slice(1), r[n - 1]!]; break;
      case 'rol': r = [r[n - 1]!, ...r.slice(0, n - 1)]; break;
      case 'ror': r = [...r.slice(1), r[0]!]; break;
      case 'rcl': { const top = r[n - 1]!; r = [c, ...r.slice(0, n - 1)]; c = top; break; }
      case 'rcr': { const low = r[0]!; r = [...r.slice(1), c]; c = low; break; }
    }
  }
  if (op === 'rol') c = r[0]!;
  if (op === 'ror') c = r[n - 1]!;
  let f = c ? F.CF : 0;
  if (op === 'shl' || op === 'rol' || op === 'rcl') f |= r[n - 1]! ^ c ? F.OF : 0;
  if (op === 'shr') f |= msbBefore ? F.OF : 0;
  if (op === 'ror') f |= r[n - 1]! ^ r[n - 2]! ? F.OF : 0;
  if (op === 'rcr') f |= ofBefore ? F.OF : 0;
  const shiftOp = op === 'shl' || op === 'shr' || op === 'sar';
  if (shiftOp) f |= resultFlags(r);
  return { r, f, writes: shiftOp ? STATUS : F.CF | F.OF };
}

/** Unsigned shift-and-add multiply on bit arrays; 2n-bit product. */
function refMulUnsigned(a: Bits, b: Bits): Bits {
  const n = a.length;
  let acc: Bits = new Array(2 * n).fill(0);
  for (let i = 0; i < n; i++) {
    if (!b[i]) continue;
    const shifted: Bits = new Array(2 * n).fill(0);
    for (let j = 0; j < n; j++) shifted[i + j] = a[j]!;
    acc = ripple(acc, shifted, 0).s;
  }
  return acc;
}

function negate(b: Bits): Bits {
  return ripple(b.map((x) => 1 - x), b.map(() => 0), 1).s;
}

// ---- running the interpreter -----------------------------------------------------------------------------------

const REG: Record<number, [string, string]> = { 1: ['al', 'bl'], 2: ['ax', 'bx'], 4: ['eax', 'ebx'], 8: ['rax', 'rbx'] };
const machines = new Map<string, Machine>();

function exec(text: string, rax: bigint, rbx: bigint, rcx: bigint, flags: number): { rax: bigint; rdx: bigint; flags: number } {
  let m = machines.get(text);
  if (!m) {
    m = machine('long64', `${text}; hlt`);
    machines.set(text, m);
  }
  const s = m.state;
  s.rip = 0x1_0000n;
  s.gpr[0] = rax;
  s.gpr[3] = rbx;
  s.gpr[1] = rcx;
  s.gpr[2] = 0n;
  s.rflags = BigInt((flags & STATUS) | 2);
  const r = m.step();
  if (r.kind !== 'retired') throw new Error(`${text}: ${r.kind}`);
  return { rax: s.gpr[0]!, rdx: s.gpr[2]!, flags: Number(s.rflags) & STATUS };
}

const sizeArb = fc.constantFrom(1, 2, 4, 8);
const opnd = (size: number) => fc.oneof(
  fc.bigInt({ min: 0n, max: (1n << BigInt(size * 8)) - 1n }),
  fc.constantFrom(0n, 1n, (1n << BigInt(size * 8 - 1)) - 1n, 1n << BigInt(size * 8 - 1), (1n << BigInt(size * 8)) - 1n),
);

describe('property (b): ALU flags against a bit-by-bit reference', () => {
  it('add/adc/sub/sbb/cmp/and/or/xor/test/inc/dec/neg', () => {
    const ops = ['add', 'adc', 'sub', 'sbb', 'cmp', 'and', 'or', 'xor', 'test', 'inc', 'dec', 'neg'] as const;
    fc.assert(
      fc.property(fc.constantFrom(...ops), sizeArb.chain((s) => fc.tuple(fc.constant(s), opnd(s), opnd(s))), fc.integer({ min: 0, max: STATUS }), (op, [size, a, b], flags0) => {
        const n = size * 8;
        const [ra, rb] = REG[size]!;
        const unary = op === 'inc' || op === 'dec' || op === 'neg';
        const got = exec(unary ? `${op} ${ra}` : `${op} ${ra}, ${rb}`, a, b, 0n, flags0);
        const A = toBits(a, n);
        const B = toBits(b, n);
        const cf = flags0 & F.CF ? 1 : 0;
        let want: { r: Bits; f: number };
        let written = STATUS;
        switch (op) {
          case 'add': want = refAdd(A, B, 0); break;
          case 'adc': want = refAdd(A, B, cf); break;
          case 'sub': case 'cmp': want = refSub(A, B, 0); break;
          case 'sbb': want = refSub(A, B, cf); break;
          case 'inc': want = refAdd(A, toBits(1n, n), 0); written = STATUS & ~F.CF; break;
          case 'dec': want = refSub(A, toBits(1n, n), 0); written = STATUS & ~F.CF; break;
          case 'neg': want = refSub(toBits(0n, n), A, 0); break;
          default: {
            const r = A.map((x, i) => (op === 'and' || op === 'test' ? x & B[i]! : op === 'or' ? x | B[i]! : x ^ B[i]!));
            want = { r, f: resultFlags(r) };
          }
        }
        const mask = written & ~undefinedFlagsOf(op);
        const expectedFlags = (want.f & mask) | (flags0 & ~written & STATUS);
        const stores = op !== 'cmp' && op !== 'test';
        expect(got.rax & ((1n << BigInt(n)) - 1n)).toBe(stores ? fromBits(want.r) : a);
        expect(got.flags & (mask | (~written & STATUS))).toBe(expectedFlags);
      }),
      propertyParams({ numRuns: 600 }),
    );
  });

  it('shifts and rotates by CL, with count masking', () => {
    const ops = ['shl', 'shr', 'sar', 'rol', 'ror', 'rcl', 'rcr'] as const;
    fc.assert(
      fc.property(fc.constantFrom(...ops), sizeArb.chain((s) => fc.tuple(fc.constant(s), opnd(s))), fc.integer({ min: 0, max: 255 }), fc.integer({ min: 0, max: STATUS }), (op, [size, a], count, flags0) => {
        const n = size * 8;
        const got = exec(`${op} ${REG[size]![0]}, cl`, a, 0n, BigInt(count), flags0);
        const want = refShift(op, toBits(a, n), count, flags0 & F.CF ? 1 : 0);
        const undef = undefinedFlagsOf(op, count, size);
        const mask = want.writes & ~undef;
        expect(got.rax & ((1n << BigInt(n)) - 1n)).toBe(fromBits(want.r));
        expect(got.flags & mask).toBe(want.f & mask);
        // Flags the instruction does not write keep their value.
        expect(got.flags & ~want.writes & STATUS).toBe(flags0 & ~want.writes & STATUS);
      }),
      propertyParams({ numRuns: 600 }),
    );
  });

  it('MUL/IMUL one-operand: product and CF = OF', () => {
    fc.assert(
      fc.property(fc.constantFrom('mul', 'imul'), sizeArb.chain((s) => fc.tuple(fc.constant(s), opnd(s), opnd(s))), (op, [size, a, b]) => {
        const n = size * 8;
        const got = exec(`${op} ${REG[size]![1]}`, a, b, 0n, 0);
        const A = toBits(a, n);
        const B = toBits(b, n);
        let p: Bits;
        if (op === 'mul') p = refMulUnsigned(A, B);
        else {
          const neg = (A[n - 1]! ^ B[n - 1]!) === 1;
          const mag = refMulUnsigned(A[n - 1] ? negate(A) : A, B[n - 1] ? negate(B) : B);
          p = neg ? negate(mag) : mag;
        }
        const lo = fromBits(p.slice(0, n));
        const hi = fromBits(p.slice(n));
        const overflow = op === 'mul' ? hi !== 0n : !p.slice(n - 1).every((x) => x === p[n - 1]);
        const gotLo = size === 1 ? got.rax & 0xffn : got.rax & ((1n << BigInt(n)) - 1n);
        const gotHi = size === 1 ? (got.rax >> 8n) & 0xffn : got.rdx & ((1n << BigInt(n)) - 1n);
        expect([gotLo, gotHi]).toEqual([lo, hi]);
        const mask = STATUS & ~undefinedFlagsOf(op);
        expect(got.flags & mask).toBe(overflow ? F.CF | F.OF : 0);
      }),
      propertyParams({ numRuns: 300 }),
    );
  });
});
