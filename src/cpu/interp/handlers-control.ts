// Handlers for control transfer: JMP/Jcc/CALL/RET (near and far, direct and indirect), LOOP/LOOPcc,
// JCXZ/JECXZ/JRCXZ, INT n/INT3/INTO/INT1, CLI/STI (with the STI shadow) and HLT. IRET lives in
// handlers-iret.ts. Must not: deliver events (they return a soft-int outcome). SDM Vol. 2 JMP, CALL, RET,
// LOOP, Jcc, INT, CLI, STI, HLT operation sections.
import { Ar, Reg, Rflags, Seg } from '../state.js';
import { IntrType } from '../nonroot/types.js';
import { condition, maskOf } from './alu.js';
import type { DecodedInstr } from './decoded.js';
import { GP0, UD, canonical, exc, type ExecContext, type Fault } from './exec-context.js';
import { UNSUPPORTED, type Handler, type Outcome } from './handler.js';
import { checkCodeSegment, checkReturnStackSegment, dpl, isSystem, loadCs, loadRealSegment, readDescriptor, setNullSegment, setSegment } from './segments.js';

/** Check a near target against CS (limit outside 64-bit mode, canonical inside) and branch. */
function nearJump(x: ExecContext, target: bigint, opSize: number): Fault | undefined {
  const s = x.state;
  if (s.longMode64) {
    if (opSize !== 8) target &= maskOf(opSize);
    if (!canonical(target, x.la57)) return GP0;
  } else {
    target &= opSize === 2 ? 0xffffn : 0xffff_ffffn;
    if (target > BigInt(s.segLimit[Seg.CS]!)) return GP0;
  }
  x.jump(target);
  return undefined;
}

function branchTarget(x: ExecContext, i: DecodedInstr): bigint | Fault {
  const o = i.ops[0]!;
  if (o.kind === 'branch') return o.target;
  return x.read(i, 0, i.opSize);
}

function jmp(x: ExecContext, i: DecodedInstr): Outcome {
  const o = i.ops[0]!;
  if (o.kind === 'far' || (o.kind === 'mem' && i.mem && i.mem.size > i.opSize)) return farTransfer(x, i, false);
  const t = branchTarget(x, i);
  if (typeof t !== 'bigint') return t;
  return nearJump(x, t, i.opSize);
}

function jcc(x: ExecContext, i: DecodedInstr): Outcome {
  if (!condition(i.cc, x.flags)) return undefined;
  return nearJump(x, (i.ops[0] as { target: bigint }).target, i.opSize);
}

function call(x: ExecContext, i: DecodedInstr): Outcome {
  const o = i.ops[0]!;
  if (o.kind === 'far' || (o.kind === 'mem' && i.mem && i.mem.size > i.opSize)) return farTransfer(x, i, true);
  const t = branchTarget(x, i);
  if (typeof t !== 'bigint') return t;
  const saved = x.state.gpr[Reg.RSP]!;
  const ret = x.nextRip;
  const f = nearJump(x, t, i.opSize);
  if (f) return f;
  const pf = x.push(ret, i.opSize);
  if (pf) {
    x.state.gpr[Reg.RSP] = saved;
    return pf;
  }
  return undefined;
}

function ret(x: ExecContext, i: DecodedInstr): Outcome {
  const size = i.opSize;
  const t = x.peek(size);
  if (typeof t !== 'bigint') return t;
  const f = nearJump(x, t, size);
  if (f) return f;
  const imm = i.ops[0]?.kind === 'imm' ? (i.ops[0] as { value: bigint }).value : 0n;
  x.setRsp(x.rsp + BigInt(size) + imm);
  return undefined;
}

/** Far JMP/CALL: real/v86 loads; protected mode to a code segment; TSS/task gate → task switch. */
function farTransfer(x: ExecContext, i: DecodedInstr, isCall: boolean): Outcome {
  const s = x.state;
  const o = i.ops[0]!;
  let selector: number;
  let offset: bigint;
  if (o.kind === 'far') {
    selector = o.selector;
    offset = BigInt(o.offset >>> 0);
  } else {
    const m = i.mem!;
    const ea = x.ea(i, m);
    const offSize = m.size - 2;
    const off = x.readMem(m.seg, ea, offSize);
    if (typeof off !== 'bigint') return off;
    const sel = x.readMem(m.seg, (ea + BigInt(offSize)) & maskOf(i.addrSize), 2);
    if (typeof sel !== 'bigint') return sel;
    selector = Number(sel);
    offset = off;
  }
  const size = i.opSize;
  if (!s.protectedMode || s.v8086) {
    if (offset > BigInt(s.segLimit[Seg.CS]!)) return GP0;
    if (isCall) {
      let sp = x.rsp;
      for (const v of [BigInt(s.segSel[Seg.CS]!), x.nextRip]) {
        const n = x.pushAt(sp, v, size);
        if (typeof n !== 'bigint') return n;
        sp = n;
      }
      x.setRsp(sp);
    }
    loadRealSegment(s, Seg.CS, selector);
    x.jump(offset);
    return undefined;
  }
  if ((selector & 0xfffc) === 0) return GP0;
  const d = readDescriptor(x, selector, selector & 0xfffc);
  if (!('ar' in d)) return d;
  if (isSystem(d.ar)) {
    const type = d.ar & 0xf;
    if (type === 0x1 || type === 0x9 || type === 0x5) return { t: 'task-switch', selector, source: isCall ? 0 : 2 };
    if (type === 0x3 || type === 0xb) return exc(13, selector & 0xfffc); // busy TSS
    return UNSUPPORTED; // call gates: not in the interpreter's set (coverage.ts)
  }
  const cs = checkCodeSegment(x, selector, 'jmp-call');
  if (!('ar' in cs)) return cs;
  const long = (cs.ar & Ar.L) !== 0 && s.ia32e;
  if (long ? !canonical(offset, x.la57) : offset > BigInt(cs.limit)) return GP0;
  if (isCall) {
    let sp = x.rsp;
    for (const v of [BigInt(s.segSel[Seg.CS]!), x.nextRip]) {
      const n = x.pushAt(sp, v, size);
      if (typeof n !== 'bigint') return n;
      sp = n;
    }
    x.setRsp(sp);
  }
  const f = loadCs(x, selector, cs, x.cpl);
  if (f) return f;
  x.jump(offset);
  return undefined;
}

/** RETF [imm16]: same-privilege or outer-privilege return (popping SS:rSP; nulling data segments). */
function retf(x: ExecContext, i: DecodedInstr): Outcome {
  const s = x.state;
  const size = i.opSize;
  const imm = i.ops[0]?.kind === 'imm' ? (i.ops[0] as { value: bigint }).value : 0n;
  const off = x.peek(size);
  if (typeof off !== 'bigint') return off;
  const sel = x.peek(size, size);
  if (typeof sel !== 'bigint') return sel;
  const selector = Number(sel & 0xffffn);
  if (!s.protectedMode || s.v8086) {
    if (off > BigInt(s.segLimit[Seg.CS]!)) return GP0;
    loadRealSegment(s, Seg.CS, selector);
    x.setRsp(x.rsp + BigInt(2 * size) + imm);
    x.jump(off & maskOf(size));
    return undefined;
  }
  const cs = checkCodeSegment(x, selector, 'return');
  if (!('ar' in cs)) return cs;
  const cpl = x.cpl;
  const rpl = selector & 3;
  const long = (cs.ar & Ar.L) !== 0 && s.ia32e;
  if (long ? !canonical(off, x.la57) : off > BigInt(cs.limit)) return GP0;
  if (rpl === cpl) {
    const f = loadCs(x, selector, cs, cpl);
    if (f) return f;
    x.setRsp(x.rsp + BigInt(2 * size) + imm);
    x.jump(off);
    return undefined;
  }
  const newSp = x.peek(size, 2 * size + Number(imm));
  if (typeof newSp !== 'bigint') return newSp;
  const newSs = x.peek(size, 3 * size + Number(imm));
  if (typeof newSs !== 'bigint') return newSs;
  const ssSel = Number(newSs & 0xffffn);
  const ss = checkReturnStackSegment(x, ssSel, rpl);
  if (!('ar' in ss)) return ss;
  const f = loadCs(x, selector, cs, rpl);
  if (f) return f;
  setSegment(s, Seg.SS, ssSel, ss);
  x.setReg(Reg.RSP, x.stackAddrSize, newSp + imm);
  nullInaccessibleDataSegments(x, rpl);
  x.jump(off);
  return undefined;
}

/** After a return to an outer privilege level, data segments the new CPL may not use become null. */
export function nullInaccessibleDataSegments(x: ExecContext, newCpl: number): void {
  const s = x.state;
  for (const seg of [Seg.ES, Seg.DS, Seg.FS, Seg.GS]) {
    const ar = s.segAr[seg]!;
    if (ar & Ar.UNUSABLE) continue;
    const conformingCode = (ar & 0xc) === 0xc;
    if (!conformingCode && dpl(ar) < newCpl) setNullSegment(s, seg, 0);
  }
}

function counterReg(x: ExecContext, i: DecodedInstr): bigint {
  return x.getReg(Reg.RCX, i.addrSize);
}

function loop(x: ExecContext, i: DecodedInstr): Outcome {
  const c = (counterReg(x, i) - 1n) & maskOf(i.addrSize);
  x.setReg(Reg.RCX, i.addrSize, c);
  const zf = (x.flags & 0x40) !== 0;
  const take = c !== 0n && (i.name === 'loop' || (i.name === 'loope' ? zf : !zf));
  if (!take) return undefined;
  return nearJump(x, (i.ops[0] as { target: bigint }).target, i.opSize);
}

function jcxz(x: ExecContext, i: DecodedInstr): Outcome {
  if (counterReg(x, i) !== 0n) return undefined;
  return nearJump(x, (i.ops[0] as { target: bigint }).target, i.opSize);
}

function int(x: ExecContext, i: DecodedInstr): Outcome {
  if (x.state.v8086 && x.iopl < 3) return GP0;
  return { t: 'soft-int', vector: Number((i.ops[0] as { value: bigint }).value & 0xffn), type: IntrType.SOFTWARE_INTERRUPT };
}

function int3(): Outcome {
  return { t: 'soft-int', vector: 3, type: IntrType.SOFTWARE_EXCEPTION };
}

function into(x: ExecContext): Outcome {
  if (x.state.longMode64) return UD;
  if (!(x.flags & 0x800)) return undefined;
  return { t: 'soft-int', vector: 4, type: IntrType.SOFTWARE_EXCEPTION };
}

function int1(): Outcome {
  return { t: 'soft-int', vector: 1, type: IntrType.PRIVILEGED_SOFTWARE_EXCEPTION };
}

/** CLI/STI: IOPL-sensitive in protected mode (no VME/PVI); STI starts the STI shadow if IF was 0. */
function cliSti(x: ExecContext, i: DecodedInstr): Outcome {
  const s = x.state;
  if (s.protectedMode && x.cpl > x.iopl) return GP0;
  if (i.name === 'cli') {
    x.setFlag(Rflags.IF, false);
    return undefined;
  }
  if (!x.flag(Rflags.IF)) x.newShadow = 1;
  x.setFlag(Rflags.IF, true);
  return undefined;
}

function hlt(x: ExecContext): Outcome {
  if (x.cpl > 0) return GP0;
  return { t: 'halt' };
}

export const CONTROL_HANDLERS: Record<string, Handler> = {
  jmp, call, ret, retf,
  jo: jcc, jno: jcc, jb: jcc, jae: jcc, je: jcc, jne: jcc, jbe: jcc, ja: jcc,
  js: jcc, jns: jcc, jp: jcc, jnp: jcc, jl: jcc, jge: jcc, jle: jcc, jg: jcc,
  loop, loope: loop, loopne: loop, jcxz, jecxz: jcxz, jrcxz: jcxz,
  int, int3, into, int1, cli: cliSti, sti: cliSti, hlt,
};
