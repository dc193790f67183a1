// String instructions MOVS/STOS/LODS/CMPS/SCAS/INS/OUTS and the port instructions IN/OUT, with REP/REPE/
// REPNE executed one iteration per step (RIP stays on the instruction until the count or condition ends,
// so interrupts, exits and MTF fall between iterations as on hardware), the address-size attribute choosing
// rSI/rDI/rCX, and the TSS I/O-permission check. Must not: decide exits (nonroot/rules-io-msr.ts).
// SDM Vol. 2 MOVS…OUTS, REP prefix, IN/OUT; Vol. 1 19.5.2 (I/O permission bit map).
import { Ar, Reg, Rflags, Seg } from '../state.js';
import { ioAccessOf, ioPermissionCheckNeeded } from '../nonroot/rules-io-msr.js';
import { mergeFlags, sub } from './alu.js';
import type { DecodedInstr } from './decoded.js';
import { addrMask } from './ea.js';
import { GP0, type ExecContext, type Fault } from './exec-context.js';
import type { Handler, Outcome } from './handler.js';

/**
 * #GP(0) unless every bit for `port`…`port+size−1` in the TSS I/O permission bit map is 0, when CPL > IOPL
 * in protected mode or in virtual-8086 mode. Has priority over I/O VM exits (SDM 25.1.1).
 */
export function ioPermissionFault(x: ExecContext, port: number, size: number): Fault | undefined {
  const s = x.state;
  if (!ioPermissionCheckNeeded(s)) return undefined;
  const trType = s.segAr[Seg.TR]! & Ar.TYPE_MASK;
  if ((trType & 8) === 0 || s.segAr[Seg.TR]! & Ar.UNUSABLE) return GP0; // only 32/64-bit TSSs have a bit map
  const limit = s.segLimit[Seg.TR]!;
  if (limit < 0x67) return GP0;
  const base = s.segBase[Seg.TR]!;
  const lin = (a: number) => (s.ia32e ? BigInt.asUintN(64, base + BigInt(a)) : (base + BigInt(a)) & 0xffff_ffffn);
  const mapBase = x.readLinear(lin(0x66), 2, true);
  if (typeof mapBase !== 'bigint') return mapBase;
  const first = Number(mapBase) + (port >>> 3);
  if (first + 1 > limit) return GP0;
  const bitsV = x.readLinear(lin(first), 2, true);
  if (typeof bitsV !== 'bigint') return bitsV;
  const mask = ((1 << size) - 1) << (port & 7);
  return (Number(bitsV) & mask) !== 0 ? GP0 : undefined;
}

function step(x: ExecContext, size: number): bigint {
  return x.flag(Rflags.DF) ? -BigInt(size) : BigInt(size);
}

function advance(x: ExecContext, i: DecodedInstr, reg: number, size: number): void {
  x.setReg(reg, i.addrSize, (x.getReg(reg, i.addrSize) + step(x, size)) & addrMask(i.addrSize));
}

/** REP bookkeeping after one iteration: decrement rCX and decide whether to iterate again. */
function afterIteration(x: ExecContext, i: DecodedInstr): Outcome {
  if (i.rep === 'none') return undefined;
  const c = (x.getReg(Reg.RCX, i.addrSize) - 1n) & addrMask(i.addrSize);
  x.setReg(Reg.RCX, i.addrSize, c);
  if (c === 0n) return undefined;
  const zf = (x.flags & 0x40) !== 0;
  if (i.rep === 'repe' && !zf) return undefined;
  if (i.rep === 'repne' && zf) return undefined;
  return { t: 'repeat' };
}

function countIsZero(x: ExecContext, i: DecodedInstr): boolean {
  return i.rep !== 'none' && x.getReg(Reg.RCX, i.addrSize) === 0n;
}

function movs(x: ExecContext, i: DecodedInstr): Outcome {
  if (countIsZero(x, i)) return undefined;
  const size = i.opSize;
  const v = x.readMem(i.strSrcSeg, x.getReg(Reg.RSI, i.addrSize), size);
  if (typeof v !== 'bigint') return v;
  const f = x.writeMem(Seg.ES, x.getReg(Reg.RDI, i.addrSize), size, v);
  if (f) return f;
  advance(x, i, Reg.RSI, size);
  advance(x, i, Reg.RDI, size);
  return afterIteration(x, i);
}

function stos(x: ExecContext, i: DecodedInstr): Outcome {
  if (countIsZero(x, i)) return undefined;
  const size = i.opSize;
  const f = x.writeMem(Seg.ES, x.getReg(Reg.RDI, i.addrSize), size, x.getReg(Reg.RAX, size));
  if (f) return f;
  advance(x, i, Reg.RDI, size);
  return afterIteration(x, i);
}

function lods(x: ExecContext, i: DecodedInstr): Outcome {
  if (countIsZero(x, i)) return undefined;
  const size = i.opSize;
  const v = x.readMem(i.strSrcSeg, x.getReg(Reg.RSI, i.addrSize), size);
  if (typeof v !== 'bigint') return v;
  x.setReg(Reg.RAX, size, v);
  advance(x, i, Reg.RSI, size);
  return afterIteration(x, i);
}

function cmps(x: ExecContext, i: DecodedInstr): Outcome {
  if (countIsZero(x, i)) return undefined;
  const size = i.opSize;
  const a = x.readMem(i.strSrcSeg, x.getReg(Reg.RSI, i.addrSize), size);
  if (typeof a !== 'bigint') return a;
  const b = x.readMem(Seg.ES, x.getReg(Reg.RDI, i.addrSize), size);
  if (typeof b !== 'bigint') return b;
  x.flags = mergeFlags(x.flags, sub(a, b, size));
  advance(x, i, Reg.RSI, size);
  advance(x, i, Reg.RDI, size);
  return afterIteration(x, i);
}

function scas(x: ExecContext, i: DecodedInstr): Outcome {
  if (countIsZero(x, i)) return undefined;
  const size = i.opSize;
  const b = x.readMem(Seg.ES, x.getReg(Reg.RDI, i.addrSize), size);
  if (typeof b !== 'bigint') return b;
  x.flags = mergeFlags(x.flags, sub(x.getReg(Reg.RAX, size), b, size));
  advance(x, i, Reg.RDI, size);
  return afterIteration(x, i);
}

function ins(x: ExecContext, i: DecodedInstr): Outcome {
  const a = ioAccessOf(i, x.state);
  const pf = ioPermissionFault(x, a.port, a.size);
  if (pf) return pf;
  if (countIsZero(x, i)) return undefined;
  const di = x.getReg(Reg.RDI, i.addrSize);
  // Fault on the destination before the port is read, so a retried INS does not read the device twice.
  const probe = x.probeWrite(Seg.ES, di, a.size);
  if (probe) return probe;
  const v = x.platform.portIn(a.port, a.size);
  const f = x.writeMem(Seg.ES, di, a.size, BigInt(v >>> 0));
  if (f) return f;
  advance(x, i, Reg.RDI, a.size);
  return afterIteration(x, i);
}

function outs(x: ExecContext, i: DecodedInstr): Outcome {
  const a = ioAccessOf(i, x.state);
  const pf = ioPermissionFault(x, a.port, a.size);
  if (pf) return pf;
  if (countIsZero(x, i)) return undefined;
  const v = x.readMem(i.strSrcSeg, x.getReg(Reg.RSI, i.addrSize), a.size);
  if (typeof v !== 'bigint') return v;
  x.platform.portOut(a.port, a.size, Number(v));
  advance(x, i, Reg.RSI, a.size);
  return afterIteration(x, i);
}

function inOut(x: ExecContext, i: DecodedInstr): Outcome {
  const a = ioAccessOf(i, x.state);
  const pf = ioPermissionFault(x, a.port, a.size);
  if (pf) return pf;
  if (a.input) x.setReg(Reg.RAX, a.size, BigInt(x.platform.portIn(a.port, a.size) >>> 0));
  else x.platform.portOut(a.port, a.size, Number(x.getReg(Reg.RAX, a.size)));
  return undefined;
}

export const STRING_HANDLERS: Record<string, Handler> = {
  movsb: movs, movsw: movs, movsd: movs, movsq: movs,
  stosb: stos, stosw: stos, stosd: stos, stosq: stos,
  lodsb: lods, lodsw: lods, lodsd: lods, lodsq: lods,
  cmpsb: cmps, cmpsw: cmps, cmpsd: cmps, cmpsq: cmps,
  scasb: scas, scasw: scas, scasd: scas, scasq: scas,
  insb: ins, insw: ins, insd: ins, outsb: outs, outsw: outs, outsd: outs,
  in: inOut, out: inOut,
};
