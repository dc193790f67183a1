// Delivery of one event through the guest IDT: real-mode IVT, protected-mode 16/32-bit interrupt and trap
// gates (with the TSS stack switch on a privilege change) and IA-32e 64-bit gates (IST, 16-byte alignment).
// Reports faults raised during delivery as values so the caller can apply the double-fault rules and
// record IDT-vectoring information. Must not: consult the exception bitmap or combine faults (interpreter).
// SDM Vol. 3A 6.12 (exception/interrupt handling), 6.14 (64-bit mode), 7.7 (TSS stack fields).
import { Ar, Seg } from '../state.js';
import type { NonRootExit } from '../nonroot/types.js';
import { canonical, exc, type ExcFault, type ExecContext, type Fault } from './exec-context.js';
import { checkCodeSegmentForGate, extBit, readGate } from './gates.js';
import { dpl, isWritableData, present, readDescriptor, setNullSegment, setSegment, type Descriptor } from './segments.js';

/** An event to deliver, with what it pushes. */
export interface DeliveryRequest {
  readonly vector: number;
  readonly type: number;
  readonly errorCode?: number;
  /** The RIP pushed as the return address. */
  readonly returnRip: bigint;
}

export type DeliveryOutcome =
  | { readonly kind: 'delivered' }
  | { readonly kind: 'fault'; readonly fault: ExcFault }
  | { readonly kind: 'exit'; readonly exit: NonRootExit }
  | { readonly kind: 'task-gate'; readonly selector: number }
  | { readonly kind: 'unsupported'; readonly what: string };

function outcome(f: Fault): DeliveryOutcome {
  return f.t === 'exit' ? { kind: 'exit', exit: f.exit } : { kind: 'fault', fault: f };
}

export function deliver(ctx: ExecContext, req: DeliveryRequest): DeliveryOutcome {
  const s = ctx.state;
  if (!s.protectedMode) return deliverReal(ctx, req);
  if (s.v8086) return { kind: 'unsupported', what: 'event delivery from virtual-8086 mode' };
  if (s.ia32e) return deliverLong(ctx, req);
  return deliverProtected(ctx, req);
}

/** Real-address mode: 4-byte IVT entries; push FLAGS, CS, IP; clear IF, TF, AC. */
function deliverReal(ctx: ExecContext, req: DeliveryRequest): DeliveryOutcome {
  const s = ctx.state;
  const off = BigInt(req.vector * 4);
  if (off + 3n > BigInt(s.idtrLimit)) return { kind: 'fault', fault: exc(13, req.vector * 8 + 2 + extBit(req.type)) };
  const entry = ctx.readLinear((s.idtrBase + off) & 0xffff_ffffn, 4, true);
  if (typeof entry !== 'bigint') return outcome(entry);
  const flags = ctx.flags & 0xffff;
  let sp = ctx.rsp;
  for (const v of [BigInt(flags), BigInt(s.segSel[Seg.CS]!), req.returnRip & 0xffffn]) {
    const n = ctx.pushAt(sp, v, 2);
    if (typeof n !== 'bigint') return outcome(n);
    sp = n;
  }
  ctx.setRsp(sp);
  const cs = Number(entry >> 16n);
  s.segSel[Seg.CS] = cs;
  s.segBase[Seg.CS] = BigInt(cs << 4);
  s.rip = entry & 0xffffn;
  ctx.flags = ctx.flags & ~(0x200 | 0x100 | 0x40000);
  return { kind: 'delivered' };
}

/** The inner stack for a privilege change, read from the current TSS (32-bit or 16-bit TSS). */
function tssStack(ctx: ExecContext, newDpl: number, ext: number): { ss: number; sp: bigint } | Fault {
  const s = ctx.state;
  const type = s.segAr[Seg.TR]! & Ar.TYPE_MASK;
  const is32 = (type & 8) !== 0;
  const trErr = (s.segSel[Seg.TR]! & 0xfffc) | ext;
  const spOff = is32 ? 4 + 8 * newDpl : 2 + 4 * newDpl;
  const ssOff = is32 ? 8 + 8 * newDpl : 4 + 4 * newDpl;
  const size = is32 ? 4 : 2;
  if (spOff + size - 1 > s.segLimit[Seg.TR]! || ssOff + 1 > s.segLimit[Seg.TR]!) return exc(10, trErr);
  const sp = ctx.readLinear((s.segBase[Seg.TR]! + BigInt(spOff)) & 0xffff_ffffn, size, true);
  if (typeof sp !== 'bigint') return sp;
  const ss = ctx.readLinear((s.segBase[Seg.TR]! + BigInt(ssOff)) & 0xffff_ffffn, 2, true);
  if (typeof ss !== 'bigint') return ss;
  return { ss: Number(ss), sp };
}

/** Write `values` downwards from `top` through a segment described by (base, limit, ar); supervisor access. */
function pushFrame(ctx: ExecContext, base: bigint, limit: number, ar: number, top: bigint, values: bigint[], size: number, addrMask: bigint, faultVector: number, faultEc: number): bigint | Fault {
  let sp = top;
  const expandDown = (ar & 0xc) === 4;
  for (const v of values) {
    sp = (sp - BigInt(size)) & addrMask;
    const last = sp + BigInt(size - 1);
    const ok = expandDown ? sp > BigInt(limit) && last <= addrMask : last <= BigInt(limit);
    if (!ok) return exc(faultVector, faultEc);
    const f = ctx.writeLinear((base + sp) & 0xffff_ffffn, size, v, true);
    if (f) return f;
  }
  return sp;
}

function deliverProtected(ctx: ExecContext, req: DeliveryRequest): DeliveryOutcome {
  const s = ctx.state;
  const ext = extBit(req.type);
  const gate = readGate(ctx, req, false);
  if ('t' in gate) return outcome(gate);
  if (gate.kind === 'task') return { kind: 'task-gate', selector: gate.selector };
  const cs = checkCodeSegmentForGate(ctx, gate.selector, ext);
  if (!('ar' in cs)) return outcome(cs);
  const size = gate.is32 ? 4 : 2;
  const cpl = ctx.cpl;
  const targetDpl = dpl(cs.ar);
  const conforming = (cs.ar & 4) !== 0;
  const oldFlags = BigInt(ctx.flags);
  const frame: bigint[] = [];
  let newSs: { sel: number; d: Descriptor } | undefined;
  let newSp: bigint;
  if (!conforming && targetDpl < cpl) {
    const st = tssStack(ctx, targetDpl, ext);
    if ('t' in st) return outcome(st);
    if ((st.ss & 0xfffc) === 0) return { kind: 'fault', fault: exc(10, ext) };
    const d = readDescriptor(ctx, st.ss, (st.ss & 0xfffc) | ext, 10);
    if (!('ar' in d)) return outcome(d);
    if ((st.ss & 3) !== targetDpl || dpl(d.ar) !== targetDpl || !isWritableData(d.ar)) return { kind: 'fault', fault: exc(10, (st.ss & 0xfffc) | ext) };
    if (!present(d.ar)) return { kind: 'fault', fault: exc(12, (st.ss & 0xfffc) | ext) };
    newSs = { sel: st.ss, d };
    frame.push(BigInt(s.segSel[Seg.SS]!), ctx.rsp);
    const mask = d.ar & Ar.DB ? 0xffff_ffffn : 0xffffn;
    frame.push(oldFlags, BigInt(s.segSel[Seg.CS]!), req.returnRip);
    if (req.errorCode !== undefined) frame.push(BigInt(req.errorCode >>> 0));
    const sp = pushFrame(ctx, d.base, d.limit, d.ar, st.sp & mask, frame, size, mask, 12, (st.ss & 0xfffc) | ext);
    if (typeof sp !== 'bigint') return outcome(sp);
    newSp = sp;
  } else {
    frame.push(oldFlags, BigInt(s.segSel[Seg.CS]!), req.returnRip);
    if (req.errorCode !== undefined) frame.push(BigInt(req.errorCode >>> 0));
    const mask = s.segAr[Seg.SS]! & Ar.DB ? 0xffff_ffffn : 0xffffn;
    const sp = pushFrame(ctx, s.segBase[Seg.SS]!, s.segLimit[Seg.SS]!, s.segAr[Seg.SS]!, ctx.rsp, frame, size, mask, 12, 0);
    if (typeof sp !== 'bigint') return outcome(sp);
    newSp = sp;
  }
  const newCpl = conforming ? cpl : targetDpl;
  if (gate.offset > BigInt(cs.limit)) return { kind: 'fault', fault: exc(13, 0) };
  // Commit: CS, SS:ESP, EIP, flags.
  setSegment(s, Seg.CS, (gate.selector & 0xfffc) | newCpl, cs);
  if (newSs) setSegment(s, Seg.SS, newSs.sel, newSs.d);
  ctx.setReg(4, newSs ? (newSs.d.ar & Ar.DB ? 4 : 2) : (s.segAr[Seg.SS]! & Ar.DB ? 4 : 2), newSp);
  s.rip = gate.offset;
  let f = ctx.flags & ~(0x100 | 0x4000 | 0x10000 | 0x20000);
  if (gate.interrupt) f &= ~0x200;
  ctx.flags = f;
  return { kind: 'delivered' };
}

function deliverLong(ctx: ExecContext, req: DeliveryRequest): DeliveryOutcome {
  const s = ctx.state;
  const ext = extBit(req.type);
  const gate = readGate(ctx, req, true);
  if ('t' in gate) return outcome(gate);
  if (gate.kind === 'task') return { kind: 'fault', fault: exc(13, req.vector * 8 + 2 + ext) };
  const cs = checkCodeSegmentForGate(ctx, gate.selector, ext);
  if (!('ar' in cs)) return outcome(cs);
  if (!(cs.ar & Ar.L) || cs.ar & Ar.DB) return { kind: 'fault', fault: exc(13, (gate.selector & 0xfffc) | ext) };
  const cpl = ctx.cpl;
  const conforming = (cs.ar & 4) !== 0;
  const targetDpl = dpl(cs.ar);
  const newCpl = conforming ? cpl : targetDpl;
  const privilegeChange = newCpl < cpl;
  let rsp = s.gpr[4]!;
  if (!s.longMode64) rsp &= s.segAr[Seg.SS]! & Ar.DB ? 0xffff_ffffn : 0xffffn;
  if (gate.ist !== 0 || privilegeChange) {
    const off = gate.ist !== 0 ? 0x24 + 8 * (gate.ist - 1) : 4 + 8 * newCpl;
    const trErr = (s.segSel[Seg.TR]! & 0xfffc) | ext;
    if (off + 7 > s.segLimit[Seg.TR]!) return { kind: 'fault', fault: exc(10, trErr) };
    const v = ctx.readLinear(BigInt.asUintN(64, s.segBase[Seg.TR]! + BigInt(off)), 8, true);
    if (typeof v !== 'bigint') return outcome(v);
    rsp = v;
  }
  if (!canonical(rsp, ctx.la57)) return { kind: 'fault', fault: exc(12, ext) };
  rsp &= ~0xfn;
  const frame = [BigInt(s.segSel[Seg.SS]!), s.gpr[4]!, BigInt(ctx.flags), BigInt(s.segSel[Seg.CS]!), req.returnRip];
  if (req.errorCode !== undefined) frame.push(BigInt(req.errorCode >>> 0));
  let sp = rsp;
  for (const v of frame) {
    sp = BigInt.asUintN(64, sp - 8n);
    if (!canonical(sp, ctx.la57)) return { kind: 'fault', fault: exc(12, ext) };
    const f = ctx.writeLinear(sp, 8, v, true);
    if (f) return outcome(f);
  }
  if (!canonical(gate.offset, ctx.la57)) return { kind: 'fault', fault: exc(13, 0) };
  setSegment(s, Seg.CS, (gate.selector & 0xfffc) | newCpl, cs);
  if (privilegeChange) setNullSegment(s, Seg.SS, newCpl);
  s.gpr[4] = sp;
  s.rip = gate.offset;
  let f = ctx.flags & ~(0x100 | 0x4000 | 0x10000 | 0x20000);
  if (gate.interrupt) f &= ~0x200;
  ctx.flags = f;
  return { kind: 'delivered' };
}
