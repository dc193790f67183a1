// Handlers for the integer ALU group: ADD/ADC/SUB/SBB/CMP/AND/OR/XOR/TEST, INC/DEC/NEG/NOT, the shifts and
// rotates, MUL/IMUL (one-, two- and three-operand forms), DIV/IDIV with #DE, and BT/BTS/BTR/BTC on
// registers. Memory destinations are read, computed, then written (a write fault leaves flags untouched).
// Must not: decide exits. SDM Vol. 2 instruction pages of each mnemonic.
import { Reg } from '../state.js';
import { F, add, dec, div, idiv, imul, inc, logic, maskOf, mergeFlags, mul, neg, shift, sub, type AluOut, type ShiftOp } from './alu.js';
import type { DecodedInstr } from './decoded.js';
import { exc, type ExecContext } from './exec-context.js';
import { UNSUPPORTED, type Handler, type Outcome } from './handler.js';

function applyFlags(x: ExecContext, out: { flags: number; written: number }): void {
  x.flags = mergeFlags(x.flags, out);
}

type Binary = (a: bigint, b: bigint, size: number, cf: number) => AluOut;

const BINARY: Record<string, { fn: Binary; store: boolean }> = {
  add: { fn: (a, b, s) => add(a, b, s), store: true },
  adc: { fn: (a, b, s, cf) => add(a, b, s, cf), store: true },
  sub: { fn: (a, b, s) => sub(a, b, s), store: true },
  sbb: { fn: (a, b, s, cf) => sub(a, b, s, cf), store: true },
  cmp: { fn: (a, b, s) => sub(a, b, s), store: false },
  and: { fn: (a, b, s) => logic(a & b, s), store: true },
  or: { fn: (a, b, s) => logic(a | b, s), store: true },
  xor: { fn: (a, b, s) => logic(a ^ b, s), store: true },
  test: { fn: (a, b, s) => logic(a & b, s), store: false },
};

function binary(x: ExecContext, i: DecodedInstr): Outcome {
  const spec = BINARY[i.name]!;
  const size = x.sizeOf(i, 0);
  const a = x.read(i, 0);
  if (typeof a !== 'bigint') return a;
  const b = x.read(i, 1, size);
  if (typeof b !== 'bigint') return b;
  const out = spec.fn(a, b, size, x.flags & F.CF);
  if (spec.store) {
    const f = x.write(i, 0, out.value);
    if (f) return f;
  }
  applyFlags(x, out);
  return undefined;
}

function unary(x: ExecContext, i: DecodedInstr): Outcome {
  const size = x.sizeOf(i, 0);
  const a = x.read(i, 0);
  if (typeof a !== 'bigint') return a;
  if (i.name === 'not') return x.write(i, 0, ~a & maskOf(size));
  const out = i.name === 'inc' ? inc(a, size) : i.name === 'dec' ? dec(a, size) : neg(a, size);
  const f = x.write(i, 0, out.value);
  if (f) return f;
  applyFlags(x, out);
  return undefined;
}

function shiftHandler(x: ExecContext, i: DecodedInstr): Outcome {
  const size = x.sizeOf(i, 0);
  const a = x.read(i, 0);
  if (typeof a !== 'bigint') return a;
  let count: number;
  if (i.ops.length < 2) count = 1;
  else {
    const c = x.read(i, 1, 1);
    if (typeof c !== 'bigint') return c;
    count = Number(c & 0xffn);
  }
  const name = i.name === 'sal' ? 'shl' : i.name;
  const out = shift(name as ShiftOp, a, count, size, x.flags & F.CF);
  if (out.written === 0) return undefined;
  const f = x.write(i, 0, out.value);
  if (f) return f;
  applyFlags(x, out);
  return undefined;
}

/** Write the two halves of a one-operand MUL/IMUL result (AX for bytes, else rDX:rAX). */
function storeWide(x: ExecContext, size: number, lo: bigint, hi: bigint): void {
  if (size === 1) x.setReg(Reg.RAX, 2, (hi << 8n) | lo);
  else {
    x.setReg(Reg.RAX, size, lo);
    x.setReg(Reg.RDX, size, hi);
  }
}

function mulHandler(x: ExecContext, i: DecodedInstr): Outcome {
  if (i.name === 'imul' && i.ops.length >= 2) {
    // IMUL r, r/m [, imm]: truncated signed product.
    const size = x.sizeOf(i, 0);
    const a = x.read(i, i.ops.length === 3 ? 1 : 0, size);
    if (typeof a !== 'bigint') return a;
    const b = x.read(i, i.ops.length === 3 ? 2 : 1, size);
    if (typeof b !== 'bigint') return b;
    const r = imul(a, b, size);
    x.write(i, 0, r.lo);
    x.flags = (x.flags & ~0x8d5) | r.flags;
    return undefined;
  }
  const size = x.sizeOf(i, 0);
  const src = x.read(i, 0);
  if (typeof src !== 'bigint') return src;
  const acc = x.getReg(Reg.RAX, size);
  const r = i.name === 'mul' ? mul(acc, src, size) : imul(acc, src, size);
  storeWide(x, size, r.lo, r.hi);
  x.flags = (x.flags & ~0x8d5) | r.flags;
  return undefined;
}

/** DIV/IDIV: #DE on a zero divisor or a quotient that does not fit. Flags are undefined (left unchanged). */
function divHandler(x: ExecContext, i: DecodedInstr): Outcome {
  const size = x.sizeOf(i, 0);
  const d = x.read(i, 0);
  if (typeof d !== 'bigint') return d;
  let hi: bigint;
  let lo: bigint;
  if (size === 1) {
    const ax = x.getReg(Reg.RAX, 2);
    hi = ax >> 8n;
    lo = ax & 0xffn;
  } else {
    hi = x.getReg(Reg.RDX, size);
    lo = x.getReg(Reg.RAX, size);
  }
  const r = i.name === 'div' ? div(hi, lo, d, size) : idiv(hi, lo, d, size);
  if (!r.ok) return exc(0);
  if (size === 1) x.setReg(Reg.RAX, 2, (r.remainder << 8n) | r.quotient);
  else {
    x.setReg(Reg.RAX, size, r.quotient);
    x.setReg(Reg.RDX, size, r.remainder);
  }
  return undefined;
}

/** BT/BTS/BTR/BTC with a register or immediate bit offset; memory bit strings beyond the operand are a gap. */
function btHandler(x: ExecContext, i: DecodedInstr): Outcome {
  const size = x.sizeOf(i, 0);
  const o1 = i.ops[1]!;
  if (i.ops[0]!.kind === 'mem' && o1.kind === 'reg') return UNSUPPORTED;
  const a = x.read(i, 0);
  if (typeof a !== 'bigint') return a;
  const off = x.read(i, 1, o1.kind === 'imm' ? 1 : size);
  if (typeof off !== 'bigint') return off;
  const n = off & BigInt(size * 8 - 1);
  const bitv = (a >> n) & 1n;
  let r = a;
  if (i.name === 'bts') r = a | (1n << n);
  else if (i.name === 'btr') r = a & ~(1n << n);
  else if (i.name === 'btc') r = a ^ (1n << n);
  if (i.name !== 'bt') {
    const f = x.write(i, 0, r);
    if (f) return f;
  }
  // CF = the bit; OF, SF, AF, PF undefined (left unchanged here); ZF unaffected.
  x.flags = (x.flags & ~F.CF) | (bitv ? F.CF : 0);
  return undefined;
}

export const ALU_HANDLERS: Record<string, Handler> = {
  add: binary, adc: binary, sub: binary, sbb: binary, cmp: binary, and: binary, or: binary, xor: binary, test: binary,
  inc: unary, dec: unary, neg: unary, not: unary,
  shl: shiftHandler, sal: shiftHandler, shr: shiftHandler, sar: shiftHandler,
  rol: shiftHandler, ror: shiftHandler, rcl: shiftHandler, rcr: shiftHandler,
  mul: mulHandler, imul: mulHandler, div: divHandler, idiv: divHandler,
  bt: btHandler, bts: btHandler, btr: btHandler, btc: btHandler,
};
