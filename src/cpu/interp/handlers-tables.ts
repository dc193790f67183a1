// Descriptor-table register instructions when they execute: LGDT/LIDT (pseudo-descriptor load, 24-bit
// base with a 16-bit operand size outside 64-bit mode), SGDT/SIDT, LLDT/SLDT, LTR (marks the TSS busy)/STR.
// Must not: decide exits (descriptor-table exiting is in nonroot/). SDM Vol. 2 LGDT, SGDT, LLDT, LTR pages.
import { Ar, Cr4, Seg } from '../state.js';
import type { DecodedInstr } from './decoded.js';
import { GP0, UD, canonical, exc, type ExecContext, type Fault } from './exec-context.js';
import type { Handler, Outcome } from './handler.js';
import { descriptorAddress, isSystem, present, readDescriptor, setNullSegment, setSegment, type Descriptor } from './segments.js';

function lgdtLidt(x: ExecContext, i: DecodedInstr): Outcome {
  if (x.cpl > 0) return GP0;
  const m = i.mem;
  if (!m) return UD;
  const ea = x.ea(i, m);
  const limit = x.readMem(m.seg, ea, 2);
  if (typeof limit !== 'bigint') return limit;
  const s = x.state;
  const baseSize = s.longMode64 ? 8 : 4;
  let base = x.readMem(m.seg, ea + 2n, baseSize);
  if (typeof base !== 'bigint') return base;
  if (s.longMode64) {
    if (!canonical(base, x.la57)) return GP0;
  } else if (i.opSize === 2) base &= 0xff_ffffn;
  if (i.name === 'lgdt') {
    s.gdtrBase = base;
    s.gdtrLimit = Number(limit);
  } else {
    s.idtrBase = base;
    s.idtrLimit = Number(limit);
  }
  return undefined;
}

function sgdtSidt(x: ExecContext, i: DecodedInstr): Outcome {
  const s = x.state;
  if (s.cr4 & Cr4.UMIP && x.cpl > 0) return GP0;
  const m = i.mem;
  if (!m) return UD;
  const ea = x.ea(i, m);
  const isG = i.name === 'sgdt';
  const limit = BigInt(isG ? s.gdtrLimit : s.idtrLimit);
  const base = isG ? s.gdtrBase : s.idtrBase;
  const baseSize = s.longMode64 ? 8 : 4;
  const pf = x.probeWrite(m.seg, ea, 2 + baseSize);
  if (pf) return pf;
  const f = x.writeMem(m.seg, ea, 2, limit);
  if (f) return f;
  return x.writeMem(m.seg, ea + 2n, baseSize, s.longMode64 ? base : base & 0xffff_ffffn);
}

/** Read a system descriptor (16 bytes in IA-32e mode) for LLDT/LTR; returns the upper base dword too. */
function readSystemDescriptor(x: ExecContext, selector: number): { d: Descriptor; upper: bigint } | Fault {
  const d = readDescriptor(x, selector, selector & 0xfffc);
  if (!('ar' in d)) return d;
  let upper = 0n;
  if (x.state.ia32e) {
    const addr = descriptorAddress(x, selector + 8, selector & 0xfffc);
    if (typeof addr !== 'bigint') return addr;
    const u = x.readLinear(addr, 8, true);
    if (typeof u !== 'bigint') return u;
    upper = u & 0xffff_ffffn;
  }
  return { d, upper };
}

function lldtLtr(x: ExecContext, i: DecodedInstr): Outcome {
  const s = x.state;
  if (!s.protectedMode || s.v8086) return UD;
  if (x.cpl > 0) return GP0;
  const v = x.read(i, 0, 2);
  if (typeof v !== 'bigint') return v;
  const selector = Number(v);
  const isLdt = i.name === 'lldt';
  if ((selector & 0xfffc) === 0) {
    if (!isLdt) return GP0;
    setNullSegment(s, Seg.LDTR, selector);
    return undefined;
  }
  if (selector & 4) return exc(13, selector & 0xfffc); // must be in the GDT
  const r = readSystemDescriptor(x, selector);
  if (!('upper' in r)) return r;
  const d = r.d;
  const type = d.ar & Ar.TYPE_MASK;
  const okType = isLdt ? type === 2 : s.ia32e ? type === 9 : type === 9 || type === 1;
  if (!isSystem(d.ar) || !okType) return exc(13, selector & 0xfffc);
  if (!present(d.ar)) return exc(11, selector & 0xfffc);
  const full = { ...d, base: d.base | (r.upper << 32n) };
  if (!isLdt) {
    // Mark the TSS busy in the GDT (type bit 1).
    const addr = descriptorAddress(x, selector, selector & 0xfffc);
    if (typeof addr !== 'bigint') return addr;
    const f = x.writeLinear(addr + 5n, 1, BigInt(((d.hi >>> 8) & 0xff) | 2), true);
    if (f) return f;
    setSegment(s, Seg.TR, selector, { ...full, ar: full.ar | 2 });
  } else {
    setSegment(s, Seg.LDTR, selector, full);
  }
  return undefined;
}

function sldtStr(x: ExecContext, i: DecodedInstr): Outcome {
  const s = x.state;
  if (!s.protectedMode || s.v8086) return UD;
  if (s.cr4 & Cr4.UMIP && x.cpl > 0) return GP0;
  const sel = BigInt(s.segSel[i.name === 'sldt' ? Seg.LDTR : Seg.TR]!);
  const o = i.ops[0]!;
  if (o.kind === 'mem') return x.write(i, 0, sel, 2);
  return x.write(i, 0, sel);
}

export const TABLE_HANDLERS: Record<string, Handler> = {
  lgdt: lgdtLidt, lidt: lgdtLidt, sgdt: sgdtSidt, sidt: sgdtSidt,
  lldt: lldtLtr, ltr: lldtLtr, sldt: sldtStr, str: sldtStr,
};
