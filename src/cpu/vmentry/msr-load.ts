// Stage 4 of VM entry: processing of the VM-entry MSR-load list (failure = exit reason 34, qualification = the
// 1-based index of the failing entry). Entries are checked in list order; 'first' mode stops at the first failing one.
// Must not: apply the MSR writes (that is the VM-entry implementation's job) or read memory except through readPhys.
// SDM Vol. 3C 26.4 (loading MSRs); list capacity from IA32_VMX_MISC[27:25] (Appendix A.6).
import { ck, fail, has, hex32, hi, lo, ne, slot, type CheckContext } from './context.js';

const S_COUNT = slot('VM_ENTRY_MSR_LOAD_COUNT'), S_ADDR = slot('VM_ENTRY_MSR_LOAD_ADDR');
const K = {
  fsGs: ck('msr-load.entry.fs-gs-base'), x2apic: ck('msr-load.entry.x2apic'), smm: ck('msr-load.entry.smm-monitor-ctl'),
  ucode: ck('msr-load.entry.microcode'), rsvd: ck('msr-load.entry.reserved-bits'), wrmsr: ck('msr-load.entry.wrmsr-fault'),
  capacity: ck('msr-load.list.capacity'),
} as const;
const ENTRY_CHECKS = [K.fsGs, K.x2apic, K.smm, K.ucode, K.rsvd, K.wrmsr] as const;

const IA32_FS_BASE = 0xc000_0100, IA32_GS_BASE = 0xc000_0101, IA32_SMM_MONITOR_CTL = 0x9b;
const IA32_BIOS_UPDT_TRIG = 0x79, IA32_BIOS_SIGN_ID = 0x8b;

/** SDM 26.4: VM-entry MSR-load list. */
export function loadGuestMsrs(c: CheckContext): void {
  if (!has(c, S_COUNT)) {
    for (const k of ENTRY_CHECKS) ne(c, k);
    ne(c, K.capacity);
    return;
  }
  const count = lo(c, S_COUNT);
  if (count === 0) return;
  const cap = c.cpu.maxMsrListEntries;
  const n = Math.min(count, cap);
  const read = c.env.readPhys;
  if (!has(c, S_ADDR) || read === undefined) for (const k of ENTRY_CHECKS) ne(c, k);
  else {
    const base = (BigInt(hi(c, S_ADDR)) << 32n) | BigInt(lo(c, S_ADDR));
    for (let i = 0; i < n; i++) if (checkEntry(c, read, base + BigInt(16 * i), i)) return;
  }
  // Beyond the recommended maximum the SDM leaves behaviour undefined (A.6); the model fails the entry at that
  // index, as KVM does (reference §3.4 M-CAP), after the entries before it were processed.
  if (count > cap) fail(c, K.capacity, `VM_ENTRY_MSR_LOAD_COUNT ${count} exceeds the ${cap}-entry list capacity (IA32_VMX_MISC[27:25])`, BigInt(cap + 1));
}

/** One 16-byte entry: index in bits 31:0, reserved dword in 63:32, value in 127:64. Returns true to stop. */
function checkEntry(c: CheckContext, read: (addr: bigint, size: 4 | 8) => bigint | undefined, at: bigint, i: number): boolean {
  const head = read(at, 8);
  if (head === undefined) {
    for (const k of ENTRY_CHECKS) ne(c, k);
    return false;
  }
  const q = BigInt(i + 1);
  const index = Number(head & 0xffff_ffffn) >>> 0, reserved = Number(head >> 32n) >>> 0;
  const what = (): string => `VM-entry MSR-load entry ${i + 1} (MSR ${hex32(index)})`;
  if ((index === IA32_FS_BASE || index === IA32_GS_BASE) && fail(c, K.fsGs, `${what()}: IA32_FS_BASE/IA32_GS_BASE cannot be loaded from the list`, q)) return true;
  // Unconditional in SDM 26.4 (whatever the APIC mode); KVM rejects it only while L1 has x2APIC enabled (reference
  // §3.4 M-X2APIC), so EntryEnvironment.x2apicEnabled is not consulted here.
  if (index >>> 8 === 0x8 && fail(c, K.x2apic, `${what()}: x2APIC MSRs (800H-8FFH) cannot be loaded from the list`, q)) return true;
  if (index === IA32_SMM_MONITOR_CTL) {
    if (c.env.inSmm === undefined) ne(c, K.smm);
    else if (!c.env.inSmm && fail(c, K.smm, `${what()}: IA32_SMM_MONITOR_CTL is writable only in SMM`, q)) return true;
  }
  if ((index === IA32_BIOS_UPDT_TRIG || index === IA32_BIOS_SIGN_ID) && fail(c, K.ucode, `${what()}: microcode-update MSRs cannot be loaded on VM entry`, q)) return true;
  if (reserved !== 0 && fail(c, K.rsvd, `${what()}: reserved bits 63:32 are ${hex32(reserved)}`, q)) return true;
  const faults = c.env.wrmsrFaults;
  const v = faults === undefined ? undefined : read(at + 8n, 8);
  if (faults === undefined || v === undefined) ne(c, K.wrmsr);
  else if (faults(index, v) && fail(c, K.wrmsr, `${what()}: WRMSR of 0x${v.toString(16)} would raise #GP(0)`, q)) return true;
  return false;
}
