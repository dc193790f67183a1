// Perturbation cases for SDM 26.3.1.5 (activity, interruptibility, pending debug exceptions, VMCS link pointer) and
// the PDPTE checks (26.3.1.6), plus SDM 26.4 (MSR loading, exit reason 34). Includes our rewrite of what
// kvm-unit-tests' vmx_pending_event_test, vmx_db_test, vmx_pae_test and test_entry_msr_load expect.
import type { CpuModel } from '../../../../src/cpu/cpu-model.js';
import { EntryCtl, Primary, Secondary } from '../../../../src/cpu/generated/controls.js';
import { Field } from '../../../../src/cpu/generated/vmcs-fields.js';
import type { Vmcs } from '../../../../src/cpu/vmcs.js';
import { allow, cpuid, CURRENT_VMPTR, off, on, put, type EntryCase } from './support.js';

const VALID = 0x8000_0000;
const ev = (type: number, vector: number, deliver = false): number => VALID | (type << 8) | vector | (deliver ? 0x800 : 0);
const inject = (v: Vmcs, info: number, errorCode = 0): void => { v.set32(Field.VM_ENTRY_INTR_INFO_FIELD, info >>> 0); v.set32(Field.VM_ENTRY_EXCEPTION_ERROR_CODE, errorCode); };
const act = (v: Vmcs, state: number): void => v.set32(Field.GUEST_ACTIVITY_STATE, state);
const intr = (v: Vmcs, bits: number): void => v.set32(Field.GUEST_INTERRUPTIBILITY_INFO, bits);
const rflags = (v: Vmcs, value: bigint): void => put(v, Field.GUEST_RFLAGS, value);
const pdbg = (v: Vmcs, value: bigint): void => put(v, Field.GUEST_PENDING_DBG_EXCEPTIONS, value);
const supports = (state: number) => (c: CpuModel): boolean => c.activityStateSupported(state);
const smmEntry = (c: CpuModel): boolean => c.controlOffered('entry.entry-to-smm');
const smmTweak = [allow('entry', EntryCtl.ENTRY_TO_SMM)];
/** A ring-3 64-bit guest (CS and SS at DPL/RPL 3), as HLT with SS.DPL ≠ 0 needs. */
const ring3 = (v: Vmcs): void => {
  v.set32(Field.GUEST_CS_SELECTOR, 0x13); v.set32(Field.GUEST_CS_AR_BYTES, 0xa0fb);
  v.set32(Field.GUEST_SS_SELECTOR, 0x1b); v.set32(Field.GUEST_SS_AR_BYTES, 0xc0f3);
};
const LINK = 0x5000n;
const linkTo = (v: Vmcs, addr = LINK): void => put(v, Field.VMCS_LINK_POINTER, addr);
/** A 32-bit PAE guest: "IA-32e mode guest" 0, EFER.LMA/LME 0, CS.L 0 (CR0.PG and CR4.PAE stay 1). */
const pae = (v: Vmcs): void => {
  off(v, Field.VM_ENTRY_CONTROLS, EntryCtl.IA32E_MODE_GUEST);
  put(v, Field.GUEST_IA32_EFER, 0x801n);
  v.set32(Field.GUEST_CS_AR_BYTES, 0xc09b);
};
const usesEpt = (c: CpuModel): boolean => c.controlOffered('secondary.enable-ept');
const noEpt = (v: Vmcs): void => off(v, Field.SECONDARY_VM_EXEC_CONTROL, Secondary.ENABLE_EPT);

export const NON_REGISTER_CASES: EntryCase[] = [
  // ---- activity state ----
  { name: 'activity state 4 (undefined)', expect: 'guest.activity.supported', set: (v) => act(v, 4) },
  { name: 'activity state shutdown where IA32_VMX_MISC[7] is 0', expect: 'guest.activity.supported', needs: (c) => !c.activityStateSupported(2), synthetic: [(d) => { d.vmxMsrs.IA32_VMX_MISC = '0x' + (BigInt(d.vmxMsrs.IA32_VMX_MISC!) & ~0x80n).toString(16); }], set: (v) => act(v, 2) },
  { name: 'activity state HLT', expect: 'pass', needs: supports(1), set: (v) => act(v, 1) },
  { name: 'activity state HLT with SS.DPL 3', expect: 'guest.activity.hlt-ss-dpl', needs: supports(1), set: (v) => { ring3(v); act(v, 1); } },
  { name: 'vmx_pending_event_test: HLT with blocking by STI', expect: 'guest.activity.blocking', needs: supports(1), set: (v) => { act(v, 1); intr(v, 1); rflags(v, 0x202n); } },
  { name: 'vmx_pending_event_test: HLT with an injected #GP', expect: 'guest.activity.hlt-event', needs: supports(1), set: (v) => { act(v, 1); inject(v, ev(3, 13, true)); } },
  { name: 'vmx_pending_event_test: HLT with an injected #DB', expect: 'pass', needs: supports(1), set: (v) => { act(v, 1); inject(v, ev(3, 1)); } },
  { name: 'vmx_pending_event_test: HLT with an injected NMI', expect: 'pass', needs: supports(1), set: (v) => { act(v, 1); inject(v, ev(2, 2)); } },
  { name: 'shutdown with an injected external interrupt', expect: 'guest.activity.shutdown-event', needs: supports(2), set: (v) => { act(v, 2); rflags(v, 0x202n); inject(v, ev(0, 0x30)); } },
  { name: 'shutdown with an injected #MC', expect: 'pass', needs: supports(2), set: (v) => { act(v, 2); inject(v, ev(3, 18)); } },
  { name: 'wait-for-SIPI with an injected NMI', expect: 'guest.activity.sipi-event', needs: supports(3), set: (v) => { act(v, 3); inject(v, ev(2, 2)); } },
  { name: 'wait-for-SIPI with "entry to SMM" (in SMM)', expect: 'guest.activity.sipi-entry-to-smm', env: { inSmm: true }, needs: (c) => supports(3)(c) && smmEntry(c), synthetic: smmTweak, set: (v) => { act(v, 3); on(v, Field.VM_ENTRY_CONTROLS, EntryCtl.ENTRY_TO_SMM); intr(v, 4); } },
  // ---- interruptibility state ----
  { name: 'interruptibility bit 5 (reserved)', expect: 'guest.interruptibility.reserved', set: (v) => intr(v, 0x20) },
  { name: 'blocking by STI and MOV SS together', expect: 'guest.interruptibility.sti-and-mov-ss', set: (v) => { intr(v, 3); rflags(v, 0x202n); } },
  { name: 'blocking by STI with RFLAGS.IF 0', expect: 'guest.interruptibility.sti-if', set: (v) => intr(v, 1) },
  { name: 'vmx_pending_event_test: external interrupt injected under MOV-SS blocking', expect: 'guest.interruptibility.ext-int-blocking', set: (v) => { intr(v, 2); rflags(v, 0x202n); inject(v, ev(0, 0x30)); } },
  { name: 'vmx_pending_event_test: NMI injected under MOV-SS blocking', expect: 'guest.interruptibility.nmi-mov-ss', set: (v) => { intr(v, 2); inject(v, ev(2, 2)); } },
  { name: 'blocking by SMI outside SMM', expect: 'guest.interruptibility.smi-outside-smm', env: { inSmm: false }, set: (v) => intr(v, 4) },
  { name: 'blocking by SMI inside SMM', expect: 'pass', env: { inSmm: true }, set: (v) => intr(v, 4) },
  { name: '"entry to SMM" without blocking by SMI', expect: 'guest.interruptibility.smi-entry-to-smm', env: { inSmm: true }, needs: smmEntry, synthetic: smmTweak, set: (v) => on(v, Field.VM_ENTRY_CONTROLS, EntryCtl.ENTRY_TO_SMM) },
  { name: 'vmx_pending_event_test: NMI injected under STI blocking (qualification 3)', expect: 'guest.interruptibility.nmi-sti', set: (v) => { intr(v, 1); rflags(v, 0x202n); inject(v, ev(2, 2)); } },
  { name: 'NMI injected while "virtual NMIs" and blocking by NMI', expect: 'guest.interruptibility.virtual-nmi-blocking', needs: (c) => c.controlOffered('pin.virtual-nmis'), set: (v) => { intr(v, 8); inject(v, ev(2, 2)); } },
  { name: 'NMI injected with blocking by NMI but without "virtual NMIs"', expect: 'pass', needs: (c) => c.controlOffered('pin.virtual-nmis'), set: (v) => { off(v, Field.PIN_BASED_VM_EXEC_CONTROL, 0x20); intr(v, 8); inject(v, ev(2, 2)); } },
  { name: 'enclave interruption with blocking by MOV SS', expect: 'guest.interruptibility.enclave', set: (v) => intr(v, 0x12) },
  { name: 'enclave interruption on a processor without SGX', expect: 'guest.interruptibility.enclave', needs: (c) => !c.controlOffered('secondary.enable-encls-exiting'), set: (v) => intr(v, 0x10) },
  // ---- pending debug exceptions (vmx_db_test) ----
  { name: 'vmx_db_test: pending debug bit 4 (reserved)', expect: 'guest.pending-dbg.reserved', set: (v) => pdbg(v, 0x10n) },
  { name: 'vmx_db_test: pending debug bit 32 (reserved)', expect: 'guest.pending-dbg.reserved', set: (v) => pdbg(v, 1n << 32n) },
  { name: 'vmx_db_test: STI blocking, TF 1, BTF 0, BS 0', expect: 'guest.pending-dbg.bs-set', set: (v) => { intr(v, 1); rflags(v, 0x302n); } },
  { name: 'vmx_db_test: STI blocking, TF 1, BTF 0, BS 1', expect: 'pass', set: (v) => { intr(v, 1); rflags(v, 0x302n); pdbg(v, 0x4000n); } },
  { name: 'vmx_db_test: HLT, TF 0, BS 1', expect: 'guest.pending-dbg.bs-clear', needs: supports(1), set: (v) => { act(v, 1); pdbg(v, 0x4000n); } },
  { name: 'vmx_db_test: STI blocking, TF 1, BTF 1, BS 1', expect: 'guest.pending-dbg.bs-clear', set: (v) => { intr(v, 1); rflags(v, 0x302n); put(v, Field.GUEST_IA32_DEBUGCTL, 0x2n); pdbg(v, 0x4000n); } },
  { name: 'vmx_db_test: MOV-SS blocking, TF 1, BTF 0, BS 1, IF 0', expect: 'pass', set: (v) => { intr(v, 2); rflags(v, 0x102n); pdbg(v, 0x4000n); } },
  { name: 'vmx_db_test: BS 1 without blocking or HLT', expect: 'pass', set: (v) => pdbg(v, 0x4000n) },
  { name: 'pending debug RTM without enabled-breakpoint bit 12', expect: 'guest.pending-dbg.rtm-bits', needs: (c) => c.cpuid.rtm, synthetic: [cpuid({ rtm: true })], set: (v) => pdbg(v, 0x1_0000n) },
  { name: 'pending debug RTM with B0', expect: 'guest.pending-dbg.rtm-bits', needs: (c) => c.cpuid.rtm, synthetic: [cpuid({ rtm: true })], set: (v) => pdbg(v, 0x1_1001n) },
  { name: 'pending debug RTM on a processor without RTM', expect: 'guest.pending-dbg.rtm-unsupported', needs: (c) => !c.cpuid.rtm, synthetic: [cpuid({ rtm: false })], set: (v) => pdbg(v, 0x1_1000n) },
  { name: 'pending debug RTM with blocking by MOV SS', expect: 'guest.pending-dbg.rtm-mov-ss', needs: (c) => c.cpuid.rtm, synthetic: [cpuid({ rtm: true })], set: (v) => { intr(v, 2); pdbg(v, 0x1_1000n); } },
  { name: 'pending debug RTM with bit 12', expect: 'pass', needs: (c) => c.cpuid.rtm, synthetic: [cpuid({ rtm: true })], set: (v) => pdbg(v, 0x1_1000n) },
  // ---- VMCS link pointer (qualification 4) ----
  { name: 'VMCS link pointer not 4-KByte aligned', expect: 'guest.link.alignment', set: (v) => linkTo(v, 0x5008n) },
  { name: 'VMCS link pointer beyond MAXPHYADDR', expect: 'guest.link.width', set: (v, cpu) => linkTo(v, 1n << BigInt(cpu.maxPhysAddr)) },
  { name: 'VMCS link pointer to a region with another revision', expect: 'guest.link.revision-id', memory: (m, cpu) => m.write(LINK, BigInt(cpu.vmcsRevision ^ 1), 4), set: (v) => linkTo(v) },
  { name: 'VMCS link pointer to a shadow VMCS without "VMCS shadowing"', expect: 'guest.link.shadow-bit', memory: (m, cpu) => m.write(LINK, BigInt(cpu.vmcsRevision) | (1n << 31n), 4), set: (v) => linkTo(v) },
  { name: 'VMCS link pointer to an ordinary VMCS with "VMCS shadowing"', expect: 'guest.link.shadow-bit', needs: (c) => c.controlOffered('secondary.vmcs-shadowing'), memory: (m, cpu) => m.write(LINK, BigInt(cpu.vmcsRevision), 4), set: (v) => { on(v, Field.CPU_BASED_VM_EXEC_CONTROL, Primary.ACTIVATE_SECONDARY_CONTROLS); on(v, Field.SECONDARY_VM_EXEC_CONTROL, Secondary.VMCS_SHADOWING); put(v, Field.VMREAD_BITMAP, 0x1b000n); put(v, Field.VMWRITE_BITMAP, 0x1c000n); linkTo(v); } },
  { name: 'VMCS link pointer to a shadow VMCS with "VMCS shadowing"', expect: 'pass', needs: (c) => c.controlOffered('secondary.vmcs-shadowing'), memory: (m, cpu) => m.write(LINK, BigInt(cpu.vmcsRevision) | (1n << 31n), 4), set: (v) => { on(v, Field.CPU_BASED_VM_EXEC_CONTROL, Primary.ACTIVATE_SECONDARY_CONTROLS); on(v, Field.SECONDARY_VM_EXEC_CONTROL, Secondary.VMCS_SHADOWING); put(v, Field.VMREAD_BITMAP, 0x1b000n); put(v, Field.VMWRITE_BITMAP, 0x1c000n); linkTo(v); } },
  { name: 'VMCS link pointer equal to the current-VMCS pointer', expect: 'guest.link.current-vmcs', memory: (m, cpu) => m.write(CURRENT_VMPTR, BigInt(cpu.vmcsRevision), 4), set: (v) => linkTo(v, CURRENT_VMPTR) },
  { name: 'VMCS link pointer equal to the executive-VMCS pointer (in SMM)', expect: 'guest.link.executive-vmcs', env: { inSmm: true }, memory: (m, cpu) => m.write(LINK, BigInt(cpu.vmcsRevision), 4), set: (v) => { linkTo(v); put(v, Field.EXECUTIVE_VMCS_POINTER, LINK); } },
  { name: 'VMCS link pointer equal to the current-VMCS pointer (in SMM, no entry to SMM)', expect: 'pass', env: { inSmm: true }, memory: (m, cpu) => m.write(CURRENT_VMPTR, BigInt(cpu.vmcsRevision), 4), set: (v) => linkTo(v, CURRENT_VMPTR) },
  // ---- PDPTEs (vmx_pae_test, qualification 2) ----
  ...[0, 1, 2, 3].map((i): EntryCase => ({ name: `vmx_pae_test: GUEST_PDPTR${i} present with reserved bit 1 (EPT)`, expect: `guest.pdpte.${i}.reserved` as EntryCase['expect'], needs: usesEpt, set: (v) => { pae(v); put(v, Field[`GUEST_PDPTR${i}` as 'GUEST_PDPTR0'], 0x3003n); } })),
  { name: 'vmx_pae_test: GUEST_PDPTR0 present with a bit beyond MAXPHYADDR (EPT)', expect: 'guest.pdpte.0.reserved', needs: usesEpt, set: (v, cpu) => { pae(v); put(v, Field.GUEST_PDPTR0, (1n << BigInt(cpu.maxPhysAddr)) | 0x3001n); } },
  { name: 'vmx_pae_test: not-present PDPTE with reserved bits (EPT)', expect: 'pass', needs: usesEpt, set: (v) => { pae(v); put(v, Field.GUEST_PDPTR1, 0x1e6n); } },
  { name: 'vmx_pae_test: PDPTE 2 in memory at CR3 with reserved bit 5 (no EPT)', expect: 'guest.pdpte.2.reserved', needs: usesEpt, memory: (m) => m.write(0x2000n, 0x3001n, 8).write(0x2010n, 0x4021n, 8), set: (v) => { pae(v); noEpt(v); } },
  { name: 'vmx_pae_test: valid PDPTEs in memory at CR3 (no EPT)', expect: 'pass', needs: usesEpt, memory: (m) => m.write(0x2000n, 0x3001n, 8).write(0x2008n, 0x4001n, 8), set: (v) => { pae(v); noEpt(v); } },
  { name: 'vmx_pae_test: GUEST_PDPTR fields ignored in IA-32e mode', expect: 'pass', needs: usesEpt, set: (v) => put(v, Field.GUEST_PDPTR3, 0xffff_ffff_ffff_ffffn) },
];

// ---- SDM 26.4: MSR loading (exit reason 34, qualification = entry index) ----
const LIST = 0x20000n;
const list = (v: Vmcs, count: number): void => { v.set32(Field.VM_ENTRY_MSR_LOAD_COUNT, count); put(v, Field.VM_ENTRY_MSR_LOAD_ADDR, LIST); };

export const MSR_LOAD_CASES: EntryCase[] = [
  { name: 'test_entry_msr_load: IA32_FS_BASE in the list', expect: 'msr-load.entry.fs-gs-base', memory: (m) => m.msrList(LIST, [{ index: 0xc000_0100 }]), set: (v) => list(v, 1) },
  { name: 'test_entry_msr_load: IA32_GS_BASE as the second entry', expect: 'msr-load.entry.fs-gs-base', memory: (m) => m.msrList(LIST, [{ index: 0x277, value: 0x0007_0406_0007_0406n }, { index: 0xc000_0101 }]), set: (v) => list(v, 2) },
  { name: 'x2APIC TPR MSR (808H) in the list', expect: 'msr-load.entry.x2apic', memory: (m) => m.msrList(LIST, [{ index: 0x808 }]), set: (v) => list(v, 1) },
  { name: 'x2APIC MSR in the list while x2APIC is disabled (the SDM check is unconditional)', expect: 'msr-load.entry.x2apic', env: { x2apicEnabled: false }, memory: (m) => m.msrList(LIST, [{ index: 0x830 }]), set: (v) => list(v, 1) },
  { name: 'IA32_SMM_MONITOR_CTL outside SMM', expect: 'msr-load.entry.smm-monitor-ctl', memory: (m) => m.msrList(LIST, [{ index: 0x9b }]), set: (v) => list(v, 1) },
  { name: 'IA32_SMM_MONITOR_CTL inside SMM', expect: 'pass', env: { inSmm: true }, memory: (m) => m.msrList(LIST, [{ index: 0x9b }]), set: (v) => list(v, 1) },
  { name: 'IA32_BIOS_UPDT_TRIG in the list', expect: 'msr-load.entry.microcode', memory: (m) => m.msrList(LIST, [{ index: 0x79 }]), set: (v) => list(v, 1) },
  { name: 'IA32_BIOS_SIGN_ID in the list', expect: 'msr-load.entry.microcode', memory: (m) => m.msrList(LIST, [{ index: 0x8b }]), set: (v) => list(v, 1) },
  { name: 'test_entry_msr_load: reserved dword not 0', expect: 'msr-load.entry.reserved-bits', memory: (m) => m.msrList(LIST, [{ index: 0x277, reserved: 1, value: 0x0007_0406_0007_0406n }]), set: (v) => list(v, 1) },
  { name: 'WRMSR of the value would #GP', expect: 'msr-load.entry.wrmsr-fault', env: { wrmsrFaults: (i, val) => i === 0x277 && val === 0x2n }, memory: (m) => m.msrList(LIST, [{ index: 0x10 }, { index: 0x277, value: 0x2n }]), set: (v) => list(v, 2) },
  { name: 'list of valid entries', expect: 'pass', memory: (m) => m.msrList(LIST, [{ index: 0x277, value: 0x0007_0406_0007_0406n }, { index: 0xc000_0102, value: 0x1000n }]), set: (v) => list(v, 2) },
  { name: 'count one above the list capacity', expect: 'msr-load.list.capacity', set: (v, cpu) => list(v, cpu.maxMsrListEntries + 1) },
];
