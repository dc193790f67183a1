// Segment descriptors and segment-register loads: reading GDT/LDT entries (implicit supervisor accesses),
// converting them to the VMX access-rights format, the protected-mode checks of MOV/POP Sreg and of far
// control transfers, and real/virtual-8086 loads. Must not: deliver the faults it returns.
// SDM Vol. 3A 3.4.5 (descriptor format), 5.5–5.8 (privilege checks), Vol. 2 MOV (Sreg) / POP operation.
import { Ar, Seg, type CpuState } from '../state.js';
import { exc, type ExecContext, type Fault } from './exec-context.js';

export interface Descriptor {
  /** Raw low and high dwords (and the upper qword of 16-byte system descriptors in IA-32e mode). */
  readonly lo: number;
  readonly hi: number;
  readonly base: bigint;
  /** Byte-granular limit (G applied). */
  readonly limit: number;
  /** VMX-format access rights (type 3:0, S 4, DPL 6:5, P 7, AVL 12, L 13, D/B 14, G 15). */
  readonly ar: number;
}

export function parseDescriptor(lo: number, hi: number): Descriptor {
  const rawLimit = (lo & 0xffff) | (hi & 0x000f_0000);
  const g = (hi & 0x0080_0000) !== 0;
  const limit = g ? ((rawLimit << 12) | 0xfff) >>> 0 : rawLimit;
  const base = BigInt(((lo >>> 16) | ((hi & 0xff) << 16) | (hi & 0xff00_0000)) >>> 0);
  const ar = ((hi >>> 8) & 0xff) | ((hi >>> 8) & 0xf000);
  return { lo: lo >>> 0, hi: hi >>> 0, base, limit, ar };
}

export const dpl = (ar: number): number => (ar >> Ar.DPL_SHIFT) & 3;
export const present = (ar: number): boolean => (ar & Ar.P) !== 0;
export const isSystem = (ar: number): boolean => (ar & Ar.S) === 0;
export const isCode = (ar: number): boolean => !isSystem(ar) && (ar & 8) !== 0;
export const isConforming = (ar: number): boolean => isCode(ar) && (ar & 4) !== 0;
export const isReadable = (ar: number): boolean => !isCode(ar) || (ar & 2) !== 0;
export const isWritableData = (ar: number): boolean => !isSystem(ar) && (ar & 8) === 0 && (ar & 2) !== 0;

/** Linear address of the descriptor for `selector`, or a fault with `errorCode` when outside the table. */
export function descriptorAddress(ctx: ExecContext, selector: number, errorCode: number, vector = 13): bigint | Fault {
  const s = ctx.state;
  const ti = (selector & 4) !== 0;
  const index = selector & 0xfff8;
  let base: bigint;
  let limit: number;
  if (ti) {
    if (s.segAr[Seg.LDTR]! & Ar.UNUSABLE) return exc(vector, errorCode);
    base = s.segBase[Seg.LDTR]!;
    limit = s.segLimit[Seg.LDTR]!;
  } else {
    base = s.gdtrBase;
    limit = s.gdtrLimit;
  }
  if (index + 7 > limit) return exc(vector, errorCode);
  return s.longMode64 || s.ia32e ? BigInt.asUintN(64, base + BigInt(index)) : (base + BigInt(index)) & 0xffff_ffffn;
}

/** Read the 8-byte descriptor for `selector` (implicit supervisor access). */
export function readDescriptor(ctx: ExecContext, selector: number, errorCode: number, vector = 13): Descriptor | Fault {
  const addr = descriptorAddress(ctx, selector, errorCode, vector);
  if (typeof addr !== 'bigint') return addr;
  const v = ctx.readLinear(addr, 8, true);
  if (typeof v !== 'bigint') return v;
  return parseDescriptor(Number(v & 0xffff_ffffn), Number(v >> 32n));
}

/** Set the accessed bit of a code/data descriptor in memory if clear (SDM 3.4.5.1). */
export function markAccessed(ctx: ExecContext, selector: number, d: Descriptor): Fault | undefined {
  if (isSystem(d.ar) || d.ar & 1) return undefined;
  const addr = descriptorAddress(ctx, selector, selector & 0xfffc);
  if (typeof addr !== 'bigint') return addr;
  return ctx.writeLinear(addr + 5n, 1, BigInt(((d.hi >>> 8) & 0xff) | 1), true);
}

/** Install a descriptor in a segment register (selector, base, limit, VMX access rights). */
export function setSegment(s: CpuState, seg: number, selector: number, d: Descriptor): void {
  s.segSel[seg] = selector & 0xffff;
  s.segBase[seg] = d.base;
  s.segLimit[seg] = d.limit >>> 0;
  // Code/data registers always hold the accessed bit once loaded (it was set in the descriptor).
  s.segAr[seg] = (d.ar | (isSystem(d.ar) ? 0 : 1)) >>> 0;
}

/** A null selector load: the register becomes unusable (base kept, as Intel does for FS/GS in 64-bit mode). */
export function setNullSegment(s: CpuState, seg: number, selector: number): void {
  s.segSel[seg] = selector & 0xffff;
  s.segAr[seg] = Ar.UNUSABLE | (seg === Seg.SS ? (selector & 3) << Ar.DPL_SHIFT : 0);
}

/** Real-address or virtual-8086 mode load: base = selector · 16; limit and attributes as the mode requires. */
export function loadRealSegment(s: CpuState, seg: number, selector: number): void {
  s.segSel[seg] = selector & 0xffff;
  s.segBase[seg] = BigInt((selector & 0xffff) << 4);
  if (s.v8086) {
    s.segLimit[seg] = 0xffff;
    s.segAr[seg] = seg === Seg.CS ? 0xfb : 0xf3;
  } else if (s.segAr[seg]! & Ar.UNUSABLE) {
    // Real mode keeps cached limit/attributes ("unreal" segments) but a register must be usable again.
    s.segLimit[seg] = 0xffff;
    s.segAr[seg] = seg === Seg.CS ? 0x9b : 0x93;
  }
}

/**
 * MOV Sreg / POP Sreg for DS, ES, FS, GS, SS (CS cannot be loaded this way: #UD at decode). Returns a fault
 * or undefined after loading. SS loads set MOV-SS blocking in the caller.
 */
export function loadDataSegment(ctx: ExecContext, seg: number, selector: number): Fault | undefined {
  const s = ctx.state;
  if (!s.protectedMode || s.v8086) {
    loadRealSegment(s, seg, selector);
    return undefined;
  }
  const cpl = ctx.cpl;
  const rpl = selector & 3;
  const nullSel = (selector & 0xfffc) === 0;
  if (seg === Seg.SS) {
    if (nullSel) {
      // 64-bit mode lets CPL < 3 load a null SS whose RPL equals CPL.
      if (s.longMode64 && cpl < 3 && rpl === cpl) {
        setNullSegment(s, seg, selector);
        return undefined;
      }
      return exc(13, 0);
    }
    const d = readDescriptor(ctx, selector, selector & 0xfffc);
    if (!('ar' in d)) return d;
    if (rpl !== cpl || !isWritableData(d.ar) || dpl(d.ar) !== cpl) return exc(13, selector & 0xfffc);
    if (!present(d.ar)) return exc(12, selector & 0xfffc);
    const f = markAccessed(ctx, selector, d);
    if (f) return f;
    setSegment(s, seg, selector, d);
    return undefined;
  }
  if (nullSel) {
    setNullSegment(s, seg, selector);
    return undefined;
  }
  const d = readDescriptor(ctx, selector, selector & 0xfffc);
  if (!('ar' in d)) return d;
  if (isSystem(d.ar) || !isReadable(d.ar)) return exc(13, selector & 0xfffc);
  if (!isConforming(d.ar) && (rpl > dpl(d.ar) || cpl > dpl(d.ar))) return exc(13, selector & 0xfffc);
  if (!present(d.ar)) return exc(11, selector & 0xfffc);
  const f = markAccessed(ctx, selector, d);
  if (f) return f;
  setSegment(s, seg, selector, d);
  return undefined;
}

/**
 * Checks for a code segment reached by a far JMP/CALL/RET/IRET or an interrupt gate: present code segment
 * with the privilege relation the transfer needs. Returns the descriptor or a fault (#GP/#NP(selector)).
 */
export function checkCodeSegment(
  ctx: ExecContext, selector: number, mode: 'jmp-call' | 'return', ext = 0,
): Descriptor | Fault {
  const ec = (selector & 0xfffc) | ext;
  if ((selector & 0xfffc) === 0) return exc(13, ext);
  const d = readDescriptor(ctx, selector, ec);
  if (!('ar' in d)) return d;
  if (!isCode(d.ar)) return exc(13, ec);
  const cpl = ctx.cpl;
  const rpl = selector & 3;
  if (mode === 'jmp-call') {
    if (isConforming(d.ar) ? dpl(d.ar) > cpl : rpl > cpl || dpl(d.ar) !== cpl) return exc(13, ec);
  } else {
    if (rpl < cpl) return exc(13, ec);
    if (isConforming(d.ar) ? dpl(d.ar) > rpl : dpl(d.ar) !== rpl) return exc(13, ec);
  }
  if (ctx.state.ia32e && d.ar & Ar.L && d.ar & Ar.DB) return exc(13, ec);
  if (!present(d.ar)) return exc(11, ec);
  return d;
}

/**
 * The stack segment a return to an outer privilege level loads (RETF, IRET): checked against the new CPL, not
 * the current one (CPL is SS.DPL in this model, so SS cannot be loaded through loadDataSegment here).
 */
export function checkReturnStackSegment(ctx: ExecContext, ssSel: number, newCpl: number): Descriptor | Fault {
  if ((ssSel & 0xfffc) === 0) return exc(13, 0);
  const d = readDescriptor(ctx, ssSel, ssSel & 0xfffc);
  if (!('ar' in d)) return d;
  if ((ssSel & 3) !== newCpl || !isWritableData(d.ar) || dpl(d.ar) !== newCpl) return exc(13, ssSel & 0xfffc);
  if (!present(d.ar)) return exc(12, ssSel & 0xfffc);
  return d;
}

/** Load CS from a checked descriptor at privilege `cpl` (RPL of the stored selector := cpl). */
export function loadCs(ctx: ExecContext, selector: number, d: Descriptor, cpl: number): Fault | undefined {
  const f = markAccessed(ctx, selector, d);
  if (f) return f;
  setSegment(ctx.state, Seg.CS, (selector & 0xfffc) | cpl, d);
  // CPL is SS.DPL in the VMX model; the caller loads SS for privilege changes. CS.DPL must track CPL for
  // non-conforming segments already; conforming code keeps its DPL in AR.
  return undefined;
}
