// IRET/IRETD/IRETQ: real-address and virtual-8086 (IOPL 3) returns, protected-mode same- and outer-privilege
// returns, IA-32e returns (always popping SS:RSP), task returns (NT = 1) reported as task switches, and the
// NMI-unblocking rule, including its VMX non-root variant. Returns to virtual-8086 mode are a known gap.
// Must not: deliver events. SDM Vol. 2 IRET operation; Vol. 3C 25.3 (IRET in VMX non-root operation).
import { Pin } from '../generated/controls.js';
import { Ar, Rflags, Seg } from '../state.js';
import type { DecodedInstr } from './decoded.js';
import { GP0, canonical, type ExecContext } from './exec-context.js';
import { UNSUPPORTED, type Handler, type Outcome } from './handler.js';
import { nullInaccessibleDataSegments } from './handlers-control.js';
import { checkCodeSegment, checkReturnStackSegment, loadCs, loadRealSegment, setNullSegment, setSegment, type Descriptor } from './segments.js';

/**
 * IRET ends NMI blocking — except in VMX non-root operation with "NMI exiting" = 1 and "virtual NMIs" = 0,
 * where it leaves NMI blocking alone; with "virtual NMIs" it ends virtual-NMI blocking (same state bit).
 */
function unblockNmi(x: ExecContext): void {
  const s = x.state;
  if (!(s.interruptibility & 8)) return;
  const nr = x.nr;
  if (nr && nr.controls.pin & Pin.NMI_EXITING && !(nr.controls.pin & Pin.VIRTUAL_NMIS)) return;
  s.interruptibility &= ~8;
  x.iretUnblockedNmi = true;
}

function iret(x: ExecContext, i: DecodedInstr): Outcome {
  const s = x.state;
  const size = i.opSize;
  if (s.v8086 && x.iopl < 3) return GP0;
  if (s.protectedMode && !s.v8086 && x.flag(Rflags.NT)) {
    if (s.ia32e) return GP0;
    // Task return: the previous-task link is the first word of the current TSS.
    const link = x.readLinear(s.segBase[Seg.TR]! & 0xffff_ffffn, 2, true);
    if (typeof link !== 'bigint') return link;
    return { t: 'task-switch', selector: Number(link), source: 1 };
  }
  unblockNmi(x);
  const eip = x.peek(size);
  if (typeof eip !== 'bigint') return eip;
  const csv = x.peek(size, size);
  if (typeof csv !== 'bigint') return csv;
  const fl = x.peek(size, 2 * size);
  if (typeof fl !== 'bigint') return fl;
  const tempFlags = Number(fl & 0xffff_ffffn);
  const selector = Number(csv & 0xffffn);
  if (!s.protectedMode || s.v8086) {
    // Real mode: all flags but VM/VIF/VIP (32-bit) or the low 16 (16-bit); v86 keeps IOPL too.
    if (eip > BigInt(s.segLimit[Seg.CS]!)) return GP0;
    const keep = s.v8086 ? 0x1a3000 : 0x1a0000;
    const writable = size === 2 ? 0xffff & ~(s.v8086 ? 0x3000 : 0) : 0x257fd5 & ~keep;
    loadRealSegment(s, Seg.CS, selector);
    x.setRsp(x.rsp + BigInt(3 * size));
    x.flags = (x.flags & ~writable) | (tempFlags & writable);
    x.jump(eip & (size === 2 ? 0xffffn : 0xffff_ffffn));
    return undefined;
  }
  if (tempFlags & 0x20000 && x.cpl === 0 && !s.ia32e) return UNSUPPORTED; // return to virtual-8086 mode
  const cs = checkCodeSegment(x, selector, 'return');
  if (!('ar' in cs)) return cs;
  const cpl = x.cpl;
  const rpl = selector & 3;
  const toLong = s.ia32e && (cs.ar & Ar.L) !== 0;
  const popsStack = s.longMode64 || rpl > cpl;
  let newRsp = 0n;
  let ssSel = 0;
  if (popsStack) {
    const sp = x.peek(size, 3 * size);
    if (typeof sp !== 'bigint') return sp;
    const ssv = x.peek(size, 4 * size);
    if (typeof ssv !== 'bigint') return ssv;
    newRsp = sp;
    ssSel = Number(ssv & 0xffffn);
  }
  if (toLong ? !canonical(eip, x.la57) : eip > BigInt(cs.limit)) return GP0;
  // Validate the new SS before committing anything.
  let ssDesc: Descriptor | undefined;
  if (popsStack) {
    if ((ssSel & 0xfffc) === 0) {
      if (!(s.ia32e && rpl < 3 && toLong)) return GP0;
    } else {
      const d = checkReturnStackSegment(x, ssSel, rpl);
      if (!('ar' in d)) return d;
      ssDesc = d;
    }
  }
  let writable = 0x4dd5 | 0x10000 | 0x40000 | 0x200000;
  if (cpl === 0) writable |= 0x3000 | 0x180000;
  if (cpl <= x.iopl) writable |= 0x200;
  if (size === 2) writable &= 0xffff;
  const f = loadCs(x, selector, cs, rpl);
  if (f) return f;
  if (popsStack) {
    if (ssDesc) setSegment(s, Seg.SS, ssSel, ssDesc);
    else setNullSegment(s, Seg.SS, ssSel);
    x.setReg(4, toLong ? 8 : s.segAr[Seg.SS]! & Ar.DB ? 4 : 2, newRsp);
  } else {
    x.setRsp(x.rsp + BigInt(3 * size));
  }
  x.flags = (x.flags & ~writable) | (tempFlags & writable);
  if (rpl > cpl) nullInaccessibleDataSegments(x, rpl);
  x.jump(toLong ? eip : eip & (size === 2 ? 0xffffn : 0xffff_ffffn));
  return undefined;
}

export const IRET_HANDLERS: Record<string, Handler> = { iret, iretd: iret, iretq: iret };
