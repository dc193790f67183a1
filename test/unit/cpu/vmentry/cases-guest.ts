// Perturbation cases for SDM 26.3.1.1, 26.3.1.3 and 26.3.1.4 (exit reason 33, qualification 0): our own rewrite of
// kvm-unit-tests' vmx_guest_state_area_test expectations (test_guest_dr7, test_load_guest_pat, test_guest_efer,
// test_load_guest_perf_global_ctrl, test_load_guest_bndcfgs, test_canonical, vmx_cet_test) plus the RIP/RFLAGS rules.
import type { CpuModel } from '../../../../src/cpu/cpu-model.js';
import { EntryCtl, Primary, Secondary } from '../../../../src/cpu/generated/controls.js';
import { Field } from '../../../../src/cpu/generated/vmcs-fields.js';
import type { Vmcs } from '../../../../src/cpu/vmcs.js';
import { allow, cpuid, msrBits, off, on, put, type EntryCase, type ModelTweak } from './support.js';

const NON_CANONICAL = 0x0000_8000_0000_0000n;
const offers = (id: string) => (cpu: CpuModel): boolean => cpu.controlOffered(id);
const cr4Allows = (bit: number) => (c: CpuModel): boolean => ((c.cr4Fixed1 >> BigInt(bit)) & 1n) === 1n;
export const urgOffered = (c: CpuModel): boolean => c.controlOffered('secondary.unrestricted-guest') && c.controlOffered('secondary.enable-ept');
export const urg = (v: Vmcs): void => {
  on(v, Field.CPU_BASED_VM_EXEC_CONTROL, Primary.ACTIVATE_SECONDARY_CONTROLS);
  on(v, Field.SECONDARY_VM_EXEC_CONTROL, Secondary.UNRESTRICTED_GUEST | Secondary.ENABLE_EPT);
};
/** Enter compatibility mode instead of 64-bit mode (CS.L = 0, CS.D = 1). */
export const compat = (v: Vmcs): void => v.set32(Field.GUEST_CS_AR_BYTES, 0xc09b);
/** Make every data/code segment valid for virtual-8086 mode (and set RFLAGS.VM). */
export const v86 = (v: Vmcs): void => {
  put(v, Field.GUEST_RFLAGS, 0x2_0002n);
  for (const s of ['CS', 'SS', 'DS', 'ES', 'FS', 'GS'] as const) {
    v.set32(Field[`GUEST_${s}_SELECTOR`], 0x1000);
    put(v, Field[`GUEST_${s}_BASE`], 0x10000n);
    v.set32(Field[`GUEST_${s}_LIMIT`], 0xffff);
    v.set32(Field[`GUEST_${s}_AR_BYTES`], 0xf3);
  }
};
/** Real-address mode under unrestricted guest: CR0.PE = PG = 0, 16-bit segments, no IA-32e mode. */
const realMode = (v: Vmcs): void => {
  urg(v);
  off(v, Field.VM_ENTRY_CONTROLS, EntryCtl.IA32E_MODE_GUEST);
  put(v, Field.GUEST_IA32_EFER, 0x0n);
  put(v, Field.GUEST_CR0, 0x0000_0030n);
  put(v, Field.GUEST_CR4, 0x2000n);
  for (const s of ['CS', 'SS', 'DS', 'ES', 'FS', 'GS'] as const) {
    v.set32(Field[`GUEST_${s}_SELECTOR`], 0x1000); put(v, Field[`GUEST_${s}_BASE`], 0x10000n);
    v.set32(Field[`GUEST_${s}_LIMIT`], 0xffff); v.set32(Field[`GUEST_${s}_AR_BYTES`], 0x93);
  }
  put(v, Field.GUEST_RIP, 0xfff0n);
};
const guestCet: ModelTweak[] = [allow('entry', EntryCtl.LOAD_CET_STATE), cpuid({ cet: true }), msrBits('IA32_VMX_CR4_FIXED1', 1n << 23n)];
const loadCet = (v: Vmcs): void => { on(v, Field.VM_ENTRY_CONTROLS, EntryCtl.LOAD_CET_STATE); put(v, Field.GUEST_SSP, 0x7f_eff8n); };
const inject = (v: Vmcs, info: number): void => v.set32(Field.VM_ENTRY_INTR_INFO_FIELD, info >>> 0);

export const GUEST_CASES: EntryCase[] = [
  // ---- CR0 / CR4 (vmx_guest_state_area_test) ----
  { name: 'vmx_guest_state_area_test: CR0.NE cleared', expect: 'guest.cr0.fixed-bits', set: (v) => put(v, Field.GUEST_CR0, 0x8005_0013n) },
  { name: 'vmx_guest_state_area_test: CR0 bit 32 set', expect: 'guest.cr0.fixed-bits', set: (v) => put(v, Field.GUEST_CR0, 0x1_8005_0033n) },
  { name: 'vmx_guest_state_area_test: CR0.PE cleared without unrestricted guest', expect: 'guest.cr0.fixed-bits', set: (v) => put(v, Field.GUEST_CR0, 0x8005_0032n) },
  { name: 'vmx_guest_state_area_test: CR0.PE/PG not checked with unrestricted guest', expect: 'guest.ia32e.paging', needs: urgOffered, set: (v) => { urg(v); put(v, Field.GUEST_CR0, 0x0005_0032n); } },
  { name: 'vmx_guest_state_area_test: CR0.CD/NW never checked even where FIXED1 clears them', expect: 'pass', synthetic: [msrBits('IA32_VMX_CR0_FIXED1', 0n, 0x6000_0000n)], set: (v) => put(v, Field.GUEST_CR0, 0xe005_0033n) },
  { name: 'vmx_guest_state_area_test: CR0.PG without CR0.PE (unrestricted guest)', expect: 'guest.cr0.pg-without-pe', needs: urgOffered, set: (v) => { urg(v); put(v, Field.GUEST_CR0, 0x8005_0032n); } },
  { name: 'vmx_guest_state_area_test: CR4.VMXE cleared', expect: 'guest.cr4.fixed-bits', set: (v) => put(v, Field.GUEST_CR4, 0x06e0n) },
  { name: 'vmx_guest_state_area_test: CR4 bit 31 set', expect: 'guest.cr4.fixed-bits', set: (v) => put(v, Field.GUEST_CR4, 0x26e0n | (1n << 31n)) },
  { name: 'vmx_cet_test: guest CR4.CET without CR0.WP', expect: 'guest.cr4.cet-requires-wp', needs: (c) => c.cpuid.cet && cr4Allows(23)(c), synthetic: guestCet, set: (v) => { put(v, Field.GUEST_CR4, 0x26e0n | (1n << 23n)); put(v, Field.GUEST_CR0, 0x8004_0033n); } },
  // ---- debug controls (test_guest_dr7) ----
  { name: 'load debug controls: DEBUGCTL reserved bit 2', expect: 'guest.debugctl.reserved', needs: offers('entry.load-debug-controls'), set: (v) => put(v, Field.GUEST_IA32_DEBUGCTL, 0x4n) },
  { name: 'load debug controls: DEBUGCTL bit 15 (RTM_DEBUG) without RTM', expect: 'guest.debugctl.reserved', needs: (c) => offers('entry.load-debug-controls')(c) && !c.cpuid.rtm, synthetic: [cpuid({ rtm: false })], set: (v) => put(v, Field.GUEST_IA32_DEBUGCTL, 0x8000n) },
  { name: 'load debug controls: DEBUGCTL LBR|BTF|FREEZE_WHILE_SMM', expect: 'pass', needs: offers('entry.load-debug-controls'), set: (v) => put(v, Field.GUEST_IA32_DEBUGCTL, 0x4003n) },
  { name: 'load debug controls off: DEBUGCTL reserved bits not checked', expect: 'pass', needs: (c) => (c.allowed('entry').mustBeOne & BigInt(EntryCtl.LOAD_DEBUG_CONTROLS)) === 0n, set: (v) => { off(v, Field.VM_ENTRY_CONTROLS, EntryCtl.LOAD_DEBUG_CONTROLS); put(v, Field.GUEST_IA32_DEBUGCTL, 0xffff_0000n); } },
  { name: 'test_guest_dr7: DR7 bit 32 with "load debug controls"', expect: 'guest.dr7.high-bits', needs: offers('entry.load-debug-controls'), set: (v) => put(v, Field.GUEST_DR7, 0x1_0000_0400n) },
  { name: 'test_guest_dr7: DR7 bit 63 without "load debug controls"', expect: 'pass', needs: (c) => (c.allowed('entry').mustBeOne & BigInt(EntryCtl.LOAD_DEBUG_CONTROLS)) === 0n, set: (v) => { off(v, Field.VM_ENTRY_CONTROLS, EntryCtl.LOAD_DEBUG_CONTROLS); put(v, Field.GUEST_DR7, 1n << 63n); } },
  // ---- IA-32e mode, PCIDE, CR3 ----
  { name: 'vmx_guest_state_area_test: IA-32e mode guest with CR0.PG 0 (unrestricted guest)', expect: 'guest.ia32e.paging', needs: urgOffered, set: (v) => { urg(v); put(v, Field.GUEST_CR0, 0x0005_0033n); } },
  { name: 'vmx_guest_state_area_test: IA-32e mode guest with CR4.PAE 0', expect: 'guest.ia32e.pae', set: (v) => put(v, Field.GUEST_CR4, 0x26c0n) },
  { name: 'CR4.PCIDE outside IA-32e mode', expect: 'guest.cr4.pcide-outside-ia32e', needs: cr4Allows(17), set: (v) => { off(v, Field.VM_ENTRY_CONTROLS, EntryCtl.IA32E_MODE_GUEST); put(v, Field.GUEST_CR4, 0x26e0n | (1n << 17n)); } },
  { name: 'CR4.PCIDE in IA-32e mode', expect: 'pass', needs: cr4Allows(17), set: (v) => put(v, Field.GUEST_CR4, 0x26e0n | (1n << 17n)) },
  { name: 'vmx_guest_state_area_test: CR3 bit at MAXPHYADDR', expect: 'guest.cr3.width', set: (v, cpu) => put(v, Field.GUEST_CR3, 0x2000n | (1n << BigInt(cpu.maxPhysAddr))) },
  { name: 'test_canonical: SYSENTER_ESP not canonical', expect: 'guest.sysenter-esp.canonical', set: (v) => put(v, Field.GUEST_SYSENTER_ESP, NON_CANONICAL) },
  { name: 'test_canonical: SYSENTER_EIP not canonical', expect: 'guest.sysenter-eip.canonical', set: (v) => put(v, Field.GUEST_SYSENTER_EIP, NON_CANONICAL) },
  // ---- vmx_cet_test (guest side) ----
  { name: 'vmx_cet_test: guest S_CET not canonical', expect: 'guest.cet.s-cet-canonical', needs: offers('entry.load-cet-state'), synthetic: guestCet, set: (v) => { loadCet(v); put(v, Field.GUEST_S_CET, NON_CANONICAL); } },
  { name: 'vmx_cet_test: guest S_CET reserved bit 6', expect: 'guest.cet.s-cet-reserved', needs: offers('entry.load-cet-state'), synthetic: guestCet, set: (v) => { loadCet(v); put(v, Field.GUEST_S_CET, 0x40n); } },
  { name: 'vmx_cet_test: guest interrupt SSP table not canonical', expect: 'guest.cet.ssp-table-canonical', needs: offers('entry.load-cet-state'), synthetic: guestCet, set: (v) => { loadCet(v); put(v, Field.GUEST_INTR_SSP_TABLE, NON_CANONICAL); } },
  { name: 'vmx_cet_test: guest SSP not 4-byte aligned', expect: 'guest.ssp.alignment', needs: offers('entry.load-cet-state'), synthetic: guestCet, set: (v) => { loadCet(v); put(v, Field.GUEST_SSP, 0x7f_eff9n); } },
  { name: 'vmx_cet_test: guest SSP bit 32 in compatibility mode', expect: 'guest.ssp.high-bits', needs: offers('entry.load-cet-state'), synthetic: guestCet, set: (v) => { loadCet(v); compat(v); put(v, Field.GUEST_SSP, 0x1_0000_0000n); } },
  { name: 'vmx_cet_test: guest SSP not canonical in 64-bit mode', expect: 'guest.ssp.canonical', needs: offers('entry.load-cet-state'), synthetic: guestCet, set: (v) => { loadCet(v); put(v, Field.GUEST_SSP, NON_CANONICAL); } },
  { name: 'vmx_cet_test: valid guest CET state', expect: 'pass', needs: offers('entry.load-cet-state'), synthetic: guestCet, set: (v) => { loadCet(v); put(v, Field.GUEST_S_CET, 0x5n); put(v, Field.GUEST_INTR_SSP_TABLE, 0x7f_e000n); } },
  // ---- MSRs ----
  { name: 'test_load_guest_perf_global_ctrl: a bit beyond the fixed counters', expect: 'guest.perf-global-ctrl.reserved', needs: (c) => offers('entry.load-ia32-perf-global-ctrl')(c) && c.cpuid.pmuFixedCounters < 32, set: (v, cpu) => put(v, Field.GUEST_IA32_PERF_GLOBAL_CTRL, 1n << BigInt(32 + cpu.cpuid.pmuFixedCounters)) },
  { name: 'test_load_guest_perf_global_ctrl: reserved bits ignored without the control', expect: 'pass', needs: offers('entry.load-ia32-perf-global-ctrl'), set: (v) => { off(v, Field.VM_ENTRY_CONTROLS, EntryCtl.LOAD_IA32_PERF_GLOBAL_CTRL); put(v, Field.GUEST_IA32_PERF_GLOBAL_CTRL, 1n << 62n); } },
  ...[2n, 3n, 9n].map((t): EntryCase => ({ name: `test_load_guest_pat: memory type ${t} in byte 0`, expect: 'guest.pat.memory-types', needs: offers('entry.load-ia32-pat'), set: (v) => put(v, Field.GUEST_IA32_PAT, 0x0007_0406_0007_0400n | t) })),
  { name: 'test_load_guest_pat: every valid memory type', expect: 'pass', needs: offers('entry.load-ia32-pat'), set: (v) => put(v, Field.GUEST_IA32_PAT, 0x0706_0504_0100_0706n) },
  { name: 'test_guest_efer: reserved bit 12 (SVME)', expect: 'guest.efer.reserved', needs: offers('entry.load-ia32-efer'), set: (v) => put(v, Field.GUEST_IA32_EFER, 0x1d01n) },
  { name: 'test_guest_efer: NXE on a processor without XD', expect: 'guest.efer.reserved', needs: (c) => offers('entry.load-ia32-efer')(c) && !c.cpuid.nx, synthetic: [cpuid({ nx: false })], set: (v) => { put(v, Field.HOST_IA32_EFER, 0x501n); put(v, Field.GUEST_IA32_EFER, 0xd01n); } },
  { name: 'test_guest_efer: LMA 0 with "IA-32e mode guest"', expect: 'guest.efer.lma', needs: offers('entry.load-ia32-efer'), set: (v) => put(v, Field.GUEST_IA32_EFER, 0x901n) },
  { name: 'test_guest_efer: LME 0, LMA 1, CR0.PG 1', expect: 'guest.efer.lme', needs: offers('entry.load-ia32-efer'), set: (v) => put(v, Field.GUEST_IA32_EFER, 0xc01n) },
  { name: 'test_guest_efer: invalid EFER ignored without "load IA32_EFER"', expect: 'pass', needs: offers('entry.load-ia32-efer'), set: (v) => { off(v, Field.VM_ENTRY_CONTROLS, EntryCtl.LOAD_IA32_EFER); put(v, Field.GUEST_IA32_EFER, 0x1_0000n); } },
  { name: 'test_load_guest_bndcfgs: reserved bit 2', expect: 'guest.bndcfgs.reserved', needs: offers('entry.load-ia32-bndcfgs'), synthetic: [allow('entry', EntryCtl.LOAD_IA32_BNDCFGS)], set: (v) => { on(v, Field.VM_ENTRY_CONTROLS, EntryCtl.LOAD_IA32_BNDCFGS); put(v, Field.GUEST_BNDCFGS, 0x4n); } },
  { name: 'test_load_guest_bndcfgs: non-canonical bound-directory base', expect: 'guest.bndcfgs.canonical', needs: offers('entry.load-ia32-bndcfgs'), synthetic: [allow('entry', EntryCtl.LOAD_IA32_BNDCFGS)], set: (v) => { on(v, Field.VM_ENTRY_CONTROLS, EntryCtl.LOAD_IA32_BNDCFGS); put(v, Field.GUEST_BNDCFGS, NON_CANONICAL | 0x3n); } },
  { name: 'load IA32_RTIT_CTL: reserved bit 18', expect: 'guest.rtit-ctl.reserved', needs: offers('entry.load-ia32-rtit-ctl'), synthetic: [allow('entry', EntryCtl.LOAD_IA32_RTIT_CTL)], set: (v) => { on(v, Field.VM_ENTRY_CONTROLS, EntryCtl.LOAD_IA32_RTIT_CTL); put(v, Field.GUEST_IA32_RTIT_CTL, 1n << 18n); } },
  { name: 'load IA32_RTIT_CTL: TraceEn|OS|User|BranchEn|ADDR0_CFG', expect: 'pass', needs: offers('entry.load-ia32-rtit-ctl'), synthetic: [allow('entry', EntryCtl.LOAD_IA32_RTIT_CTL)], set: (v) => { on(v, Field.VM_ENTRY_CONTROLS, EntryCtl.LOAD_IA32_RTIT_CTL); put(v, Field.GUEST_IA32_RTIT_CTL, (1n << 32n) | 0x200dn); } },
  { name: 'load guest IA32_LBR_CTL: reserved bit 4', expect: 'guest.lbr-ctl.reserved', needs: offers('entry.load-guest-ia32-lbr-ctl'), synthetic: [allow('entry', EntryCtl.LOAD_GUEST_IA32_LBR_CTL)], set: (v) => { on(v, Field.VM_ENTRY_CONTROLS, EntryCtl.LOAD_GUEST_IA32_LBR_CTL); put(v, Field.GUEST_IA32_LBR_CTL, 0x10n); } },
  { name: 'load PKRS: guest PKRS bit 32', expect: 'guest.pkrs.reserved', needs: offers('entry.load-pkrs'), synthetic: [allow('entry', EntryCtl.LOAD_PKRS)], set: (v) => { on(v, Field.VM_ENTRY_CONTROLS, EntryCtl.LOAD_PKRS); put(v, Field.GUEST_IA32_PKRS, 1n << 32n); } },
  // ---- GDTR / IDTR (test_canonical) ----
  { name: 'test_canonical: GDTR base not canonical', expect: 'guest.gdtr.base-canonical', set: (v) => put(v, Field.GUEST_GDTR_BASE, NON_CANONICAL) },
  { name: 'test_canonical: IDTR base not canonical', expect: 'guest.idtr.base-canonical', set: (v) => put(v, Field.GUEST_IDTR_BASE, NON_CANONICAL) },
  { name: 'GDTR limit above 0xffff', expect: 'guest.gdtr.limit', set: (v) => v.set32(Field.GUEST_GDTR_LIMIT, 0x1_0000) },
  { name: 'IDTR limit above 0xffff', expect: 'guest.idtr.limit', set: (v) => v.set32(Field.GUEST_IDTR_LIMIT, 0x1_0000) },
  // ---- RIP / RFLAGS ----
  { name: 'RIP bit 32 in compatibility mode', expect: 'guest.rip.high-bits', set: (v) => { compat(v); put(v, Field.GUEST_RIP, 0x1_0000_0000n); } },
  { name: 'RIP bit 32 in 64-bit mode', expect: 'pass', set: (v) => put(v, Field.GUEST_RIP, 0x1_0000_0000n) },
  { name: 'RIP not canonical in 64-bit mode', expect: 'guest.rip.canonical', set: (v) => put(v, Field.GUEST_RIP, NON_CANONICAL) },
  { name: 'RIP canonical only for 57 bits with guest CR4.LA57 0', expect: 'guest.rip.canonical', needs: (c) => c.cpuid.la57 && cr4Allows(12)(c), synthetic: [cpuid({ la57: true }), msrBits('IA32_VMX_CR4_FIXED1', 1n << 12n)], set: (v) => put(v, Field.GUEST_RIP, 0x00ff_8000_0000_0000n) },
  { name: 'RIP canonical for 57 bits with guest CR4.LA57 1', expect: 'pass', needs: (c) => c.cpuid.la57 && cr4Allows(12)(c), synthetic: [cpuid({ la57: true }), msrBits('IA32_VMX_CR4_FIXED1', 1n << 12n)], set: (v) => { put(v, Field.GUEST_RIP, 0x00ff_8000_0000_0000n); put(v, Field.GUEST_CR4, 0x36e0n); } },
  ...[3n, 5n, 15n, 22n, 32n].map((b): EntryCase => ({ name: `RFLAGS reserved bit ${b} set`, expect: 'guest.rflags.reserved', set: (v) => put(v, Field.GUEST_RFLAGS, 0x2n | (1n << b)) })),
  { name: 'RFLAGS bit 1 clear', expect: 'guest.rflags.reserved', set: (v) => put(v, Field.GUEST_RFLAGS, 0x0n) },
  { name: 'RFLAGS.VM with "IA-32e mode guest"', expect: 'guest.rflags.vm', set: (v) => v86(v) },
  { name: 'virtual-8086 guest under PAE paging', expect: 'pass', set: (v) => { v86(v); off(v, Field.VM_ENTRY_CONTROLS, EntryCtl.IA32E_MODE_GUEST); put(v, Field.GUEST_IA32_EFER, 0x801n); } },
  { name: 'real-address-mode guest with unrestricted guest', expect: 'pass', needs: urgOffered, set: (v) => realMode(v) },
  { name: 'real-address-mode guest with EFER.LME 1 (LME may differ from LMA while CR0.PG is 0)', expect: 'pass', needs: urgOffered, set: (v) => { realMode(v); put(v, Field.GUEST_IA32_EFER, 0x100n); } },
  { name: 'external interrupt injected with RFLAGS.IF 0', expect: 'guest.rflags.if', set: (v) => inject(v, 0x8000_0020) },
  { name: 'external interrupt injected with RFLAGS.IF 1', expect: 'pass', set: (v) => { inject(v, 0x8000_0020); put(v, Field.GUEST_RFLAGS, 0x202n); } },
];
