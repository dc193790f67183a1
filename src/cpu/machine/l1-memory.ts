// L1-physical memory as the single-level machine sees it: a PhysicalMemory<L1Gpa> that backs every address below
// 2^MAXPHYADDR, adapted to the VMX processor's physical-memory port, plus the default L1 processor state.
// Must not: translate addresses or know about L2. SDM Vol. 3C 24.2 (regions), Vol. 3A 3.3.6 (MAXPHYADDR).
import { L1_GPA, type L1Gpa } from '../address.js';
import type { CpuModel } from '../cpu-model.js';
import type { PhysicalMemory } from '../memory.js';
import { CpuState, Msr, Seg } from '../state.js';
import type { VmxPhysicalAccess } from '../vmx/physical.js';

/**
 * VmxPhysicalAccess over L1-physical memory: every address below 2^MAXPHYADDR is RAM (sparse, reads 0 until
 * written); above it nothing backs the address (reads undefined → all ones, writes dropped).
 */
export class L1PhysicalPort implements VmxPhysicalAccess {
  readonly limit: bigint;

  constructor(readonly memory: PhysicalMemory<L1Gpa>, maxPhysAddr: number) {
    this.limit = 1n << BigInt(maxPhysAddr);
  }

  backed(addr: bigint, size: number): boolean {
    return addr >= 0n && addr + BigInt(size) <= this.limit;
  }

  read(addr: bigint, size: 1 | 2 | 4 | 8): bigint | undefined {
    if (!this.backed(addr, size)) return undefined;
    const a = L1_GPA.of(addr);
    switch (size) {
      case 1: return BigInt(this.memory.readU8(a));
      case 2: return BigInt(this.memory.readU16(a));
      case 4: return BigInt(this.memory.readU32(a));
      case 8: return this.memory.readU64(a);
    }
  }

  write(addr: bigint, size: 1 | 2 | 4 | 8, value: bigint): boolean {
    if (!this.backed(addr, size)) return false;
    const a = L1_GPA.of(addr);
    const v = BigInt.asUintN(size * 8, value);
    const r = size === 8 ? this.memory.writeU64(a, v) : size === 4 ? this.memory.writeU32(a, Number(v))
      : size === 2 ? this.memory.writeU16(a, Number(v)) : this.memory.writeU8(a, Number(v));
    if (!r.ok) throw new Error(`turtles bug: L1 memory exceeded its page budget: ${r.error.message}`);
    return true;
  }

  /** One byte, or undefined above MAXPHYADDR (for bitmap reads by the non-root rules). */
  readByte(addr: bigint): number | undefined {
    return this.backed(addr, 1) ? this.memory.readU8(L1_GPA.of(addr)) : undefined;
  }

  /** Bulk write; bytes above MAXPHYADDR are dropped. */
  writeBytes(addr: bigint, bytes: Uint8Array): void {
    let n = bytes.length;
    if (!this.backed(addr, 0)) return;
    if (addr + BigInt(n) > this.limit) n = Number(this.limit - addr);
    const r = this.memory.write(L1_GPA.of(addr), n === bytes.length ? bytes : bytes.subarray(0, n));
    if (!r.ok) throw new Error(`turtles bug: L1 memory exceeded its page budget: ${r.error.message}`);
  }
}

/** Where the default L1 state puts things (all canonical / inside any MAXPHYADDR ≥ 32). */
export const L1_DEFAULTS = {
  RIP: 0xffff_8000_0010_0000n,
  RSP: 0xffff_8000_0020_0000n,
  CR3: 0x00ff_f000n,
  GDTR_BASE: 0xffff_8000_0000_1000n,
  IDTR_BASE: 0xffff_8000_0000_2000n,
  TR_BASE: 0xffff_8000_0000_3000n,
  CODE_SELECTOR: 0x08,
  DATA_SELECTOR: 0x10,
  TR_SELECTOR: 0x18,
} as const;

/**
 * L1 at the start of a run: a 64-bit kernel at CPL 0 with paging on (its own page tables are never walked: L1's
 * operations name L1-physical addresses), CR0/CR4 inside the model's VMX fixed bits, IA32_FEATURE_CONTROL locked
 * with VMX outside SMX enabled. Both machines start L1 from this state.
 */
export function defaultL1State(cpu: CpuModel): CpuState {
  const s = new CpuState();
  s.cr0 = 0x8000_0031n | cpu.cr0Fixed0; // PG | NE | ET | PE
  s.cr4 = 0x2020n | cpu.cr4Fixed0; // VMXE | PAE
  s.cr3 = L1_DEFAULTS.CR3;
  s.efer = 0xd01n; // NXE | LMA | LME | SCE
  const seg = (i: number, sel: number, base: bigint, limit: number, ar: number) => {
    s.segSel[i] = sel;
    s.segBase[i] = base;
    s.segLimit[i] = limit;
    s.segAr[i] = ar;
  };
  seg(Seg.CS, L1_DEFAULTS.CODE_SELECTOR, 0n, 0xffff_ffff, 0xa09b);
  for (const i of [Seg.SS, Seg.DS, Seg.ES, Seg.FS, Seg.GS]) seg(i, L1_DEFAULTS.DATA_SELECTOR, 0n, 0xffff_ffff, 0xc093);
  seg(Seg.TR, L1_DEFAULTS.TR_SELECTOR, L1_DEFAULTS.TR_BASE, 0x67, 0x8b);
  seg(Seg.LDTR, 0, 0n, 0, 0x1_0000);
  s.gdtrBase = L1_DEFAULTS.GDTR_BASE;
  s.gdtrLimit = 0x7f;
  s.idtrBase = L1_DEFAULTS.IDTR_BASE;
  s.idtrLimit = 0xfff;
  s.rip = L1_DEFAULTS.RIP;
  s.gpr[4] = L1_DEFAULTS.RSP;
  s.rflags = 0x2n;
  s.setMsr(Msr.IA32_FEATURE_CONTROL, cpu.featureControl | 0x5n);
  return s;
}

/** Copy every field of `src` into `dst` (so a guest state object can live across VM entries). */
export function assignCpuState(dst: CpuState, src: CpuState): void {
  dst.gpr.set(src.gpr);
  dst.rip = src.rip;
  dst.rflags = src.rflags;
  dst.cr0 = src.cr0;
  dst.cr2 = src.cr2;
  dst.cr3 = src.cr3;
  dst.cr4 = src.cr4;
  dst.cr8 = src.cr8;
  dst.dr.set(src.dr);
  dst.efer = src.efer;
  dst.segSel.set(src.segSel);
  dst.segBase.set(src.segBase);
  dst.segLimit.set(src.segLimit);
  dst.segAr.set(src.segAr);
  dst.gdtrBase = src.gdtrBase;
  dst.gdtrLimit = src.gdtrLimit;
  dst.idtrBase = src.idtrBase;
  dst.idtrLimit = src.idtrLimit;
  dst.msrs.clear();
  for (const [k, v] of src.msrs) dst.msrs.set(k, v);
  dst.interruptibility = src.interruptibility;
  dst.activity = src.activity;
  dst.pendingDebugExceptions = src.pendingDebugExceptions;
  dst.tsc = src.tsc;
}
