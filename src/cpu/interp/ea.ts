// Effective-address and linear-address arithmetic for a decoded memory operand (no limit or canonical
// checks: those raise faults and belong to the executor's segmentation layer).
// Must not: access memory. SDM Vol. 1 3.7.5 (addressing), Vol. 3A 3.4 (segment base + offset).
import type { CpuState } from '../state.js';
import { NO_REG, RIP_BASE, type DecodedInstr, type MemRef } from './decoded.js';

const ADDR_MASK: Record<number, bigint> = { 2: 0xffffn, 4: 0xffff_ffffn, 8: 0xffff_ffff_ffff_ffffn };

export function addrMask(addrSize: number): bigint {
  return ADDR_MASK[addrSize]!;
}

/** Offset within the segment (base + index·scale + disp, truncated to the address size). RIP-relative uses the next RIP. */
export function effectiveAddress(instr: DecodedInstr, mem: MemRef, state: CpuState): bigint {
  let ea = mem.disp;
  if (mem.base === RIP_BASE) ea += state.rip + BigInt(instr.length);
  else if (mem.base !== NO_REG) ea += state.gpr[mem.base]!;
  if (mem.index !== NO_REG) ea += state.gpr[mem.index]! * BigInt(mem.scale);
  return ea & ADDR_MASK[instr.addrSize]!;
}

/**
 * Linear address of an offset in a segment: in 64-bit mode only FS/GS bases apply (SDM 3.4.4); outside it
 * the sum is truncated to 32 bits.
 */
export function linearAddress(state: CpuState, seg: number, offset: bigint): bigint {
  if (state.longMode64) {
    if (seg === 4 || seg === 5) return BigInt.asUintN(64, state.segBase[seg]! + offset);
    return offset;
  }
  return (state.segBase[seg]! + offset) & 0xffff_ffffn;
}
