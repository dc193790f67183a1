// Memory operands of VMX instructions: segmentation (type/limit checks, or canonicality in 64-bit mode), translation
// through a caller-supplied page walker, the physical access; faults (#GP(0), #SS(0), #PF) come back as values.
// Must not: walk page tables itself or decode ModRM; the interpreter computes the effective address.
// SDM Vol. 2 "Protected Mode Exceptions" of each VMX instruction; Vol. 3A 5.3 (limit checks), 3.3.7.1 (canonical).
import { Ar, Cr0, Cr4, type CpuState, Seg, type SegIndex } from '../state.js';
import { isCanonical } from '../u64.js';
import { GP0, SS0, type VmxFault } from './outcome.js';
import { type VmxPhysicalAccess, readPhys, writePhys } from './physical.js';

/** A decoded memory operand: segment register and effective address (already truncated to the address size). */
export interface MemoryOperand {
  readonly segment: SegIndex;
  readonly offset: bigint;
}

export type AccessKind = 'read' | 'write';

/** Linear → physical translation with paging on; returns a #PF (or other) fault value when it fails. */
export type TranslateFn = (linear: bigint, access: AccessKind, cpl: number) => { ok: true; phys: bigint } | { ok: false; fault: VmxFault };

export type OperandSize = 2 | 4 | 8 | 16;

type Result<T> = ({ ok: true } & T) | { ok: false; fault: VmxFault };

function segFault(seg: SegIndex): VmxFault {
  return seg === Seg.SS ? SS0 : GP0;
}

/** Segmentation: the linear address of the operand, or #GP(0)/#SS(0). */
export function linearAddressOf(state: CpuState, op: MemoryOperand, size: OperandSize, access: AccessKind): Result<{ linear: bigint }> {
  const seg = op.segment;
  if (state.longMode64) {
    // 64-bit mode: only FS/GS bases apply and only canonicality is checked (first and last byte).
    const base = seg === Seg.FS || seg === Seg.GS ? state.segBase[seg]! : 0n;
    const linear = BigInt.asUintN(64, base + op.offset);
    const width = (state.cr4 & Cr4.LA57) !== 0n ? 57 : 48;
    const last = BigInt.asUintN(64, linear + BigInt(size - 1));
    if (!isCanonical(linear, width) || !isCanonical(last, width)) return { ok: false, fault: segFault(seg) };
    return { ok: true, linear };
  }
  const ar = state.segAr[seg]!;
  if (ar & Ar.UNUSABLE) return { ok: false, fault: segFault(seg) };
  const type = ar & Ar.TYPE_MASK;
  const code = (type & 8) !== 0;
  if (access === 'write' && (code || (type & 2) === 0)) return { ok: false, fault: segFault(seg) };
  if (access === 'read' && code && (type & 2) === 0) return { ok: false, fault: segFault(seg) };
  const offset = BigInt.asUintN(32, op.offset);
  const end = offset + BigInt(size - 1);
  const limit = BigInt(state.segLimit[seg]!);
  if (!code && (type & 4) !== 0) {
    // Expand-down data segment: valid offsets are limit+1 .. 0xFFFF (B = 0) or 0xFFFFFFFF (B = 1).
    const upper = ar & Ar.DB ? 0xffff_ffffn : 0xffffn;
    if (offset <= limit || end > upper) return { ok: false, fault: segFault(seg) };
  } else if (end > limit) {
    return { ok: false, fault: segFault(seg) };
  }
  return { ok: true, linear: BigInt.asUintN(32, state.segBase[seg]! + offset) };
}

/** Physical addresses of the operand's bytes, as (address, length) runs split at 4 KiB boundaries. */
function physicalRuns(state: CpuState, linear: bigint, size: OperandSize, access: AccessKind, translate?: TranslateFn): Result<{ runs: { phys: bigint; len: number }[] }> {
  const runs: { phys: bigint; len: number }[] = [];
  let remaining = size;
  let la = linear;
  while (remaining > 0) {
    const inPage = Number(0x1000n - (la & 0xfffn));
    const len = Math.min(inPage, remaining);
    let phys: bigint;
    if ((state.cr0 & Cr0.PG) === 0n) {
      phys = la;
    } else {
      if (!translate) throw new Error('turtles bug: memory operand with paging enabled but no translate function');
      const t = translate(la, access, state.cpl);
      if (!t.ok) return t;
      phys = t.phys;
    }
    runs.push({ phys, len });
    remaining -= len;
    la = BigInt.asUintN(64, la + BigInt(len));
  }
  return { ok: true, runs };
}

function readRun(mem: VmxPhysicalAccess, phys: bigint, len: number): bigint {
  if ((len === 8 || len === 4 || len === 2) && phys % BigInt(len) === 0n) return readPhys(mem, phys, len);
  let v = 0n;
  for (let i = len - 1; i >= 0; i--) v = (v << 8n) | readPhys(mem, phys + BigInt(i), 1);
  return v;
}

function writeRun(mem: VmxPhysicalAccess, phys: bigint, len: number, value: bigint): void {
  if ((len === 8 || len === 4 || len === 2) && phys % BigInt(len) === 0n) {
    writePhys(mem, phys, len, value);
    return;
  }
  for (let i = 0; i < len; i++) writePhys(mem, phys + BigInt(i), 1, (value >> BigInt(8 * i)) & 0xffn);
}

/** Read a little-endian operand of `size` bytes (16 gives a 128-bit bigint, for INVEPT/INVVPID descriptors). */
export function readMemoryOperand(state: CpuState, mem: VmxPhysicalAccess, op: MemoryOperand, size: OperandSize, translate?: TranslateFn): Result<{ value: bigint }> {
  const la = linearAddressOf(state, op, size, 'read');
  if (!la.ok) return la;
  const pr = physicalRuns(state, la.linear, size, 'read', translate);
  if (!pr.ok) return pr;
  let value = 0n;
  let shift = 0n;
  for (const r of pr.runs) {
    // 16-byte operands are read in 8-byte pieces so each piece uses the naturally aligned path when possible.
    for (let done = 0; done < r.len; ) {
      const piece = Math.min(8, r.len - done);
      value |= readRun(mem, r.phys + BigInt(done), piece) << shift;
      shift += BigInt(8 * piece);
      done += piece;
    }
  }
  return { ok: true, value };
}

/** Write an operand; all translations are done before any byte is written, so a fault leaves memory unchanged. */
export function writeMemoryOperand(state: CpuState, mem: VmxPhysicalAccess, op: MemoryOperand, size: OperandSize, value: bigint, translate?: TranslateFn): Result<object> {
  const la = linearAddressOf(state, op, size, 'write');
  if (!la.ok) return la;
  const pr = physicalRuns(state, la.linear, size, 'write', translate);
  if (!pr.ok) return pr;
  let shift = 0n;
  for (const r of pr.runs) {
    for (let done = 0; done < r.len; ) {
      const piece = Math.min(8, r.len - done);
      writeRun(mem, r.phys + BigInt(done), piece, (value >> shift) & ((1n << BigInt(8 * piece)) - 1n));
      shift += BigInt(8 * piece);
      done += piece;
    }
  }
  return { ok: true };
}
