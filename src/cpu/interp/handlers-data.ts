// Handlers for data movement and flag/stack utilities: MOV (GPR, memory, immediate, Sreg forms), MOVZX,
// MOVSX/MOVSXD, LEA, XCHG, CMOVcc, SETcc, PUSH/POP (GPR, memory, immediate, Sreg), PUSHF/POPF, LEAVE,
// CBW…CQO, LAHF/SAHF, CLC/STC/CMC/CLD/STD, NOP, XLATB, BSWAP. MOV CR/DR go to handlers-system.ts.
// Must not: decide exits. SDM Vol. 2 pages of each mnemonic; POPF flag rules (Vol. 2 POPF operation).
import { Rflags, Reg, Seg } from '../state.js';
import { condition } from './alu.js';
import type { DecodedInstr } from './decoded.js';
import { addrMask } from './ea.js';
import { GP0, UD, type ExecContext } from './exec-context.js';
import { UNSUPPORTED, type Handler, type Outcome } from './handler.js';
import { loadDataSegment } from './segments.js';

function mov(x: ExecContext, i: DecodedInstr): Outcome {
  const dst = i.ops[0]!;
  const src = i.ops[1]!;
  if (dst.kind === 'sreg') {
    if (dst.seg === Seg.CS) return UD;
    const v = x.read(i, 1, 2);
    if (typeof v !== 'bigint') return v;
    const f = loadDataSegment(x, dst.seg, Number(v));
    if (f) return f;
    if (dst.seg === Seg.SS) x.newShadow = 2;
    return undefined;
  }
  if (src.kind === 'sreg') {
    // MOV r/m, Sreg: 16-bit store to memory; register destinations are zero-extended (32/64-bit forms).
    const v = BigInt(x.state.segSel[src.seg]!);
    if (dst.kind === 'mem') return x.write(i, 0, v, 2);
    return x.write(i, 0, v);
  }
  const size = x.sizeOf(i, 0);
  const v = x.read(i, 1, size);
  if (typeof v !== 'bigint') return v;
  return x.write(i, 0, v);
}

function movzx(x: ExecContext, i: DecodedInstr): Outcome {
  const v = x.read(i, 1);
  if (typeof v !== 'bigint') return v;
  return x.write(i, 0, v);
}

function movsx(x: ExecContext, i: DecodedInstr): Outcome {
  const srcSize = x.sizeOf(i, 1);
  const v = x.read(i, 1);
  if (typeof v !== 'bigint') return v;
  const size = x.sizeOf(i, 0);
  return x.write(i, 0, BigInt.asUintN(size * 8, BigInt.asIntN(srcSize * 8, v)));
}

function lea(x: ExecContext, i: DecodedInstr): Outcome {
  if (!i.mem) return UD;
  return x.write(i, 0, x.ea(i, i.mem));
}

function xchg(x: ExecContext, i: DecodedInstr): Outcome {
  const a = x.read(i, 0);
  if (typeof a !== 'bigint') return a;
  const b = x.read(i, 1);
  if (typeof b !== 'bigint') return b;
  // Memory operand first so a write fault leaves the register untouched.
  if (i.ops[0]!.kind === 'mem') {
    const f = x.write(i, 0, b);
    if (f) return f;
    return x.write(i, 1, a);
  }
  const f = x.write(i, 1, a);
  if (f) return f;
  return x.write(i, 0, b);
}

function cmov(x: ExecContext, i: DecodedInstr): Outcome {
  const v = x.read(i, 1);
  if (typeof v !== 'bigint') return v;
  // A 32-bit CMOV zero-extends the destination even when the condition is false (SDM CMOVcc).
  if (condition(i.cc, x.flags)) return x.write(i, 0, v);
  const d = i.ops[0]!;
  if (d.kind === 'reg' && d.size === 4) x.setReg(d.reg, 4, x.getReg(d.reg, 4));
  return undefined;
}

function setcc(x: ExecContext, i: DecodedInstr): Outcome {
  return x.write(i, 0, condition(i.cc, x.flags) ? 1n : 0n);
}

function push(x: ExecContext, i: DecodedInstr): Outcome {
  const o = i.ops[0]!;
  const size = i.opSize;
  let v: bigint;
  if (o.kind === 'sreg') v = BigInt(x.state.segSel[o.seg]!);
  else {
    const r = o.kind === 'imm' ? x.read(i, 0, size) : x.read(i, 0);
    if (typeof r !== 'bigint') return r;
    v = r;
  }
  return x.push(v, size);
}

function pop(x: ExecContext, i: DecodedInstr): Outcome {
  const o = i.ops[0]!;
  const size = i.opSize;
  const v = x.peek(size);
  if (typeof v !== 'bigint') return v;
  const oldRsp = x.state.gpr[Reg.RSP]!;
  if (o.kind === 'sreg') {
    if (o.seg === Seg.CS) return UD;
    const f = loadDataSegment(x, o.seg, Number(v & 0xffffn));
    if (f) return f;
    x.setRsp(x.rsp + BigInt(size));
    if (o.seg === Seg.SS) x.newShadow = 2;
    return undefined;
  }
  // POP computes a memory destination's address with the incremented RSP (SDM POP operation).
  x.setRsp(x.rsp + BigInt(size));
  const f = x.write(i, 0, v);
  if (f) {
    x.state.gpr[Reg.RSP] = oldRsp;
    return f;
  }
  return undefined;
}

function pushf(x: ExecContext, i: DecodedInstr): Outcome {
  const s = x.state;
  if (s.v8086 && x.iopl < 3) return GP0;
  // VM and RF are stored as 0 (SDM PUSHF).
  const v = BigInt(x.flags & ~(0x10000 | 0x20000));
  return x.push(v, i.opSize);
}

/** POPF: which flags change depends on CPL and IOPL (SDM POPF operation; VIF/VIP/VM never from POPF). */
function popf(x: ExecContext, i: DecodedInstr): Outcome {
  const s = x.state;
  if (s.v8086 && x.iopl < 3) return GP0;
  const size = i.opSize;
  const v = x.pop(size);
  if (typeof v !== 'bigint') return v;
  const newF = Number(v & 0xffff_ffffn);
  let writable = 0x4dd5 | 0x40000 | 0x200000; // CF PF AF ZF SF TF DF OF NT, AC, ID
  if (size === 2) writable &= 0xffff;
  const cpl = x.cpl;
  if (cpl === 0 || !s.protectedMode) writable |= 0x3000; // IOPL
  if (cpl <= x.iopl || !s.protectedMode) writable |= 0x200; // IF
  x.flags = (x.flags & ~writable) | (newF & writable);
  return undefined;
}

function leave(x: ExecContext, i: DecodedInstr): Outcome {
  const sz = x.stackAddrSize;
  const bp = x.getReg(Reg.RBP, sz);
  const saved = x.state.gpr[Reg.RSP]!;
  x.setReg(Reg.RSP, sz, bp);
  const v = x.pop(i.opSize);
  if (typeof v !== 'bigint') {
    x.state.gpr[Reg.RSP] = saved;
    return v;
  }
  x.setReg(Reg.RBP, i.opSize, v);
  return undefined;
}

function convert(x: ExecContext, i: DecodedInstr): Outcome {
  switch (i.name) {
    case 'cbw': x.setReg(Reg.RAX, 2, BigInt.asUintN(16, BigInt.asIntN(8, x.getReg(Reg.RAX, 1)))); break;
    case 'cwde': x.setReg(Reg.RAX, 4, BigInt.asUintN(32, BigInt.asIntN(16, x.getReg(Reg.RAX, 2)))); break;
    case 'cdqe': x.setReg(Reg.RAX, 8, BigInt.asUintN(64, BigInt.asIntN(32, x.getReg(Reg.RAX, 4)))); break;
    case 'cwd': x.setReg(Reg.RDX, 2, x.getReg(Reg.RAX, 2) & 0x8000n ? 0xffffn : 0n); break;
    case 'cdq': x.setReg(Reg.RDX, 4, x.getReg(Reg.RAX, 4) & 0x8000_0000n ? 0xffff_ffffn : 0n); break;
    case 'cqo': x.setReg(Reg.RDX, 8, x.getReg(Reg.RAX, 8) >> 63n ? 0xffff_ffff_ffff_ffffn : 0n); break;
    default: return UNSUPPORTED;
  }
  return undefined;
}

function flagOp(x: ExecContext, i: DecodedInstr): Outcome {
  switch (i.name) {
    case 'clc': x.setFlag(Rflags.CF, false); break;
    case 'stc': x.setFlag(Rflags.CF, true); break;
    case 'cmc': x.setFlag(Rflags.CF, !x.flag(Rflags.CF)); break;
    case 'cld': x.setFlag(Rflags.DF, false); break;
    case 'std': x.setFlag(Rflags.DF, true); break;
    case 'lahf': x.setReg(Reg.RAX, 1, BigInt((x.flags & 0xd5) | 2), true); break;
    case 'sahf': x.flags = (x.flags & ~0xd5) | (Number(x.getReg(Reg.RAX, 1, true)) & 0xd5); break;
    default: return UNSUPPORTED;
  }
  return undefined;
}

function nop(): Outcome {
  return undefined;
}

function xlatb(x: ExecContext, i: DecodedInstr): Outcome {
  const off = (x.getReg(Reg.RBX, i.addrSize) + x.getReg(Reg.RAX, 1)) & addrMask(i.addrSize);
  const v = x.readMem(i.strSrcSeg, off, 1);
  if (typeof v !== 'bigint') return v;
  x.setReg(Reg.RAX, 1, v);
  return undefined;
}

function bswap(x: ExecContext, i: DecodedInstr): Outcome {
  const o = i.ops[0]!;
  if (o.kind !== 'reg') return UD;
  const v = x.getReg(o.reg, o.size);
  let r = 0n;
  for (let b = 0; b < o.size; b++) r |= ((v >> BigInt(8 * b)) & 0xffn) << BigInt(8 * (o.size - 1 - b));
  x.setReg(o.reg, o.size, r);
  return undefined;
}

export const DATA_HANDLERS: Record<string, Handler> = {
  mov, movzx, movsx, movsxd: movsx, lea, xchg,
  cmovo: cmov, cmovno: cmov, cmovb: cmov, cmovae: cmov, cmove: cmov, cmovne: cmov, cmovbe: cmov, cmova: cmov,
  cmovs: cmov, cmovns: cmov, cmovp: cmov, cmovnp: cmov, cmovl: cmov, cmovge: cmov, cmovle: cmov, cmovg: cmov,
  seto: setcc, setno: setcc, setb: setcc, setae: setcc, sete: setcc, setne: setcc, setbe: setcc, seta: setcc,
  sets: setcc, setns: setcc, setp: setcc, setnp: setcc, setl: setcc, setge: setcc, setle: setcc, setg: setcc,
  push, pop, pushf, pushfd: pushf, pushfq: pushf, popf, popfd: popf, popfq: popf, leave,
  cbw: convert, cwde: convert, cdqe: convert, cwd: convert, cdq: convert, cqo: convert,
  clc: flagOp, stc: flagOp, cmc: flagOp, cld: flagOp, std: flagOp, lahf: flagOp, sahf: flagOp,
  nop, xlatb, bswap,
  // UD0/UD1/UD2 exist to raise #UD (SDM UD page).
  ud0: () => UD, ud1: () => UD, ud2: () => UD,
};
