// The MSR areas: VM-entry MSR-load (26.4), VM-exit MSR-store (27.4), VM-exit MSR-load (27.6). Entries are processed
// in order; the first failure stops processing with its 1-based index, earlier entries already applied.
// Must not: decide what a failure means (exit 34 or VMX abort 1/4 is the caller's call).
// SDM Vol. 3C 24.7.2, 24.8.2 (area format and capacity), 26.4, 27.4, 27.6.
import { Efer, Msr, type CpuState } from '../state.js';
import { type VmxPhysicalAccess, readPhys, writePhys } from './physical.js';

/** Platform answers the model cannot derive from the SDM alone (which MSRs exist, which values WRMSR rejects). */
export interface MsrAccessRules {
  /** WRMSR of `value` to `index` at CPL 0 would raise #GP. */
  wrmsrFaults(index: number, value: bigint): boolean;
  /** RDMSR of `index` at CPL 0 would raise #GP. */
  rdmsrFaults(index: number): boolean;
  /** 512 · (IA32_VMX_MISC[27:25] + 1). */
  readonly maxEntries: number;
}

export interface MsrEntry {
  readonly index: number;
  /** Bits 63:32 of the entry, reserved (must be 0). */
  readonly reserved: number;
  readonly value: bigint;
}

/** Entry `i` (0-based) of the area at `base`: bits 31:0 index, 63:32 reserved, 127:64 value. */
export function readMsrEntry(mem: VmxPhysicalAccess, base: bigint, i: number): MsrEntry {
  const addr = base + BigInt(16 * i);
  const head = readPhys(mem, addr, 8);
  return { index: Number(head & 0xffff_ffffn) >>> 0, reserved: Number(head >> 32n) >>> 0, value: readPhys(mem, addr + 8n, 8) };
}

/** The x2APIC MSR range 800H–8FFH (bits 31:8 = 000008H). The SDM rejects it in every list unconditionally. */
function isX2apicMsr(index: number): boolean {
  return index >>> 8 === 0x8;
}

/** Microcode-update MSRs; the SDM lets a processor refuse them in MSR-load lists, this model always does (as KVM). */
function isMicrocodeMsr(index: number): boolean {
  return index === Msr.IA32_BIOS_UPDT_TRIG || index === Msr.IA32_BIOS_SIGN_ID;
}

/** The value RDMSR returns from a CpuState (TSC and the dedicated registers live outside the MSR map). */
export function readMsr(state: CpuState, index: number): bigint {
  return index === Msr.IA32_TSC ? state.tsc : state.msr(index);
}

/** Apply a WRMSR to a CpuState. EFER.LMA is read-only to WRMSR, so it keeps its current value. */
export function writeMsr(state: CpuState, index: number, value: bigint): void {
  if (index === Msr.IA32_TSC) state.tsc = value;
  else if (index === Msr.IA32_EFER) state.efer = (value & ~Efer.LMA) | (state.efer & Efer.LMA);
  else state.setMsr(index, value);
}

export type MsrListResult = { readonly ok: true } | { readonly ok: false; readonly index: number; readonly reason: string };

/** Why entry `e` may not be loaded by an MSR-load list (26.4 / 27.6), or undefined when it may. */
export function msrLoadRejection(e: MsrEntry, rules: MsrAccessRules): string | undefined {
  if (e.index === Msr.IA32_FS_BASE || e.index === Msr.IA32_GS_BASE) return 'FS/GS base cannot be loaded from an MSR list';
  if (isX2apicMsr(e.index)) return 'x2APIC MSR range 800H-8FFH';
  if (e.index === Msr.IA32_SMM_MONITOR_CTL) return 'IA32_SMM_MONITOR_CTL is writable only in SMM';
  if (isMicrocodeMsr(e.index)) return 'microcode-update MSR';
  if (e.reserved !== 0) return 'entry bits 63:32 are not 0';
  if (rules.wrmsrFaults(e.index, e.value)) return 'WRMSR would raise #GP';
  return undefined;
}

/**
 * Process a load list into `target`. Entries before `failAt` (1-based, from an entry checker that already found
 * the failing entry) are applied and `failAt` itself fails; otherwise the list's own rules decide.
 */
export function loadMsrList(
  mem: VmxPhysicalAccess,
  base: bigint,
  count: number,
  target: CpuState,
  rules: MsrAccessRules,
  failAt?: number,
): MsrListResult {
  for (let i = 0; i < count; i++) {
    if (failAt !== undefined && i + 1 === failAt) return { ok: false, index: i + 1, reason: 'reported by the entry checks' };
    // Capacity: the SDM leaves lists beyond the recommended maximum undefined; this model fails the first entry
    // past it (as KVM does), after applying the ones before.
    if (i >= rules.maxEntries) return { ok: false, index: i + 1, reason: `more than ${rules.maxEntries} entries` };
    const e = readMsrEntry(mem, base, i);
    const why = msrLoadRejection(e, rules);
    if (why !== undefined) return { ok: false, index: i + 1, reason: why };
    writeMsr(target, e.index, e.value);
  }
  return { ok: true };
}

/**
 * Process the VM-exit MSR-store list from `source` (27.4). `rejectX2apic` false lets an x2APIC-range index through to
 * the RDMSR rule (a nested L0's deviation, decided by its caller; a CPU always rejects the range).
 */
export function storeMsrList(mem: VmxPhysicalAccess, base: bigint, count: number, source: CpuState, rules: MsrAccessRules, rejectX2apic = true): MsrListResult {
  for (let i = 0; i < count; i++) {
    if (i >= rules.maxEntries) return { ok: false, index: i + 1, reason: `more than ${rules.maxEntries} entries` };
    const e = readMsrEntry(mem, base, i);
    if (rejectX2apic && isX2apicMsr(e.index)) return { ok: false, index: i + 1, reason: 'x2APIC MSR range 800H-8FFH' };
    if (e.index === Msr.IA32_SMBASE) return { ok: false, index: i + 1, reason: 'IA32_SMBASE is readable only in SMM' };
    if (e.reserved !== 0) return { ok: false, index: i + 1, reason: 'entry bits 63:32 are not 0' };
    if (rules.rdmsrFaults(e.index)) return { ok: false, index: i + 1, reason: 'RDMSR would raise #GP' };
    writePhys(mem, base + BigInt(16 * i) + 8n, 8, readMsr(source, e.index));
  }
  return { ok: true };
}
