// Perturbation cases for SDM 26.2.2-26.2.4 (VMfailValid(8)): our own rewrite of kvm-unit-tests'
// vmx_host_state_area_test expectations (test_host_ctl_regs, test_host_segment_regs, test_host_desc_tables,
// test_host_addr_size, test_load_host_pat, test_load_host_perf_global_ctrl, test_host_efer, test_canonical, CET).
import type { CpuModel } from '../../../../src/cpu/cpu-model.js';
import { EntryCtl, ExitCtl } from '../../../../src/cpu/generated/controls.js';
import { Field } from '../../../../src/cpu/generated/vmcs-fields.js';
import type { Vmcs } from '../../../../src/cpu/vmcs.js';
import { allow, cpuid, msrBits, off, on, put, type EntryCase } from './support.js';

const NON_CANONICAL = 0x0000_8000_0000_0000n;
const offers = (id: string) => (cpu: CpuModel): boolean => cpu.controlOffered(id);
const cetExit = [allow('exit', ExitCtl.LOAD_CET_STATE), cpuid({ cet: true }), msrBits('IA32_VMX_CR4_FIXED1', 1n << 23n)];
const loadCet = (v: Vmcs): void => { on(v, Field.VM_EXIT_CONTROLS, ExitCtl.LOAD_CET_STATE); put(v, Field.HOST_SSP, 0xffff_c900_0000_7ff8n); };
/** A 32-bit host: "host address-space size" 0, no IA-32e guest needed yet, host EFER without LMA/LME. */
const host32 = (v: Vmcs): void => {
  off(v, Field.VM_EXIT_CONTROLS, ExitCtl.HOST_ADDRESS_SPACE_SIZE);
  put(v, Field.HOST_IA32_EFER, 0x1n);
  put(v, Field.HOST_RIP, 0x0010_0000n);
  for (const f of [Field.HOST_GS_BASE, Field.HOST_TR_BASE, Field.HOST_GDTR_BASE, Field.HOST_IDTR_BASE, Field.HOST_RSP]) put(v, f, 0x20_0000n);
};
const sel = ['ES', 'CS', 'SS', 'DS', 'FS', 'GS', 'TR'] as const;
const selField = (s: (typeof sel)[number]): number => Field[`HOST_${s}_SELECTOR`];

export const HOST_CASES: EntryCase[] = [
  // ---- test_host_ctl_regs ----
  { name: 'test_host_ctl_regs: CR0.NE cleared (IA32_VMX_CR0_FIXED0)', expect: 'host.cr0.fixed-bits', set: (v) => put(v, Field.HOST_CR0, 0x8005_0013n) },
  { name: 'test_host_ctl_regs: CR0 bit 32 set (IA32_VMX_CR0_FIXED1)', expect: 'host.cr0.fixed-bits', set: (v) => put(v, Field.HOST_CR0, 0x1_8005_0033n) },
  { name: 'test_host_ctl_regs: CR0.CD/NW never checked even where FIXED1 clears them', expect: 'pass', synthetic: [msrBits('IA32_VMX_CR0_FIXED1', 0n, 0x6000_0000n)], set: (v) => put(v, Field.HOST_CR0, 0xe005_0033n) },
  { name: 'test_host_ctl_regs: CR0 bit FIXED1 clears (not CD/NW) set', expect: 'host.cr0.fixed-bits', synthetic: [msrBits('IA32_VMX_CR0_FIXED1', 0n, 0x0000_0008n)], set: (v) => put(v, Field.HOST_CR0, 0x8005_003bn) },
  { name: 'test_host_ctl_regs: CR4.VMXE cleared (IA32_VMX_CR4_FIXED0)', expect: 'host.cr4.fixed-bits', set: (v) => put(v, Field.HOST_CR4, 0x06e0n) },
  { name: 'test_host_ctl_regs: CR4 bit FIXED1 reports reserved set', expect: 'host.cr4.fixed-bits', set: (v) => put(v, Field.HOST_CR4, 0x26e0n | (1n << 31n)) },
  { name: 'host CR4.CET without CR0.WP', expect: 'host.cr4.cet-requires-wp', needs: (c) => c.cpuid.cet && ((c.cr4Fixed1 >> 23n) & 1n) === 1n, synthetic: [msrBits('IA32_VMX_CR4_FIXED1', 1n << 23n), cpuid({ cet: true })], set: (v) => { put(v, Field.HOST_CR4, 0x26e0n | (1n << 23n)); put(v, Field.HOST_CR0, 0x8004_0033n); } },
  { name: 'test_host_ctl_regs: CR3 bit at MAXPHYADDR', expect: 'host.cr3.width', set: (v, cpu) => put(v, Field.HOST_CR3, 0x1000n | (1n << BigInt(cpu.maxPhysAddr))) },
  { name: 'test_host_ctl_regs: CR3 bit 63', expect: 'host.cr3.width', set: (v) => put(v, Field.HOST_CR3, 0x1000n | (1n << 63n)) },
  { name: 'vmx_host_state_area_test: SYSENTER_ESP not canonical', expect: 'host.sysenter-esp.canonical', set: (v) => put(v, Field.HOST_IA32_SYSENTER_ESP, NON_CANONICAL) },
  { name: 'vmx_host_state_area_test: SYSENTER_EIP not canonical', expect: 'host.sysenter-eip.canonical', set: (v) => put(v, Field.HOST_IA32_SYSENTER_EIP, NON_CANONICAL) },
  // ---- vmx_cet_test (host side) ----
  { name: 'vmx_cet_test: host S_CET not canonical', expect: 'host.cet.s-cet-canonical', needs: offers('exit.load-cet-state'), synthetic: cetExit, set: (v) => { loadCet(v); put(v, Field.HOST_S_CET, NON_CANONICAL); } },
  { name: 'vmx_cet_test: host S_CET reserved bits 9:6', expect: 'host.cet.s-cet-reserved', needs: offers('exit.load-cet-state'), synthetic: cetExit, set: (v) => { loadCet(v); put(v, Field.HOST_S_CET, 0x40n); } },
  { name: 'vmx_cet_test: host S_CET with SUPPRESS and TRACKER', expect: 'host.cet.s-cet-reserved', needs: offers('exit.load-cet-state'), synthetic: cetExit, set: (v) => { loadCet(v); put(v, Field.HOST_S_CET, 0xc00n); } },
  { name: 'vmx_cet_test: host interrupt SSP table not canonical', expect: 'host.cet.ssp-table-canonical', needs: offers('exit.load-cet-state'), synthetic: cetExit, set: (v) => { loadCet(v); put(v, Field.HOST_INTR_SSP_TABLE, NON_CANONICAL); } },
  { name: 'vmx_cet_test: host SSP not 4-byte aligned', expect: 'host.cet.ssp-alignment', needs: offers('exit.load-cet-state'), synthetic: cetExit, set: (v) => { loadCet(v); put(v, Field.HOST_SSP, 0xffff_c900_0000_7ffan); } },
  { name: 'vmx_cet_test: valid host CET state', expect: 'pass', needs: offers('exit.load-cet-state'), synthetic: cetExit, set: (v) => { loadCet(v); put(v, Field.HOST_S_CET, 0x1n); put(v, Field.HOST_INTR_SSP_TABLE, 0xffff_8880_0000_1000n); } },
  // ---- test_load_host_perf_global_ctrl / test_load_host_pat / test_host_efer ----
  { name: 'test_load_host_perf_global_ctrl: a bit beyond the general-purpose counters', expect: 'host.perf-global-ctrl.reserved', needs: (c) => offers('exit.load-ia32-perf-global-ctrl')(c) && c.cpuid.pmuGpCounters < 32, set: (v, cpu) => put(v, Field.HOST_IA32_PERF_GLOBAL_CTRL, 1n << BigInt(cpu.cpuid.pmuGpCounters)) },
  { name: 'test_load_host_perf_global_ctrl: every counter enabled', expect: 'pass', needs: offers('exit.load-ia32-perf-global-ctrl'), set: (v, cpu) => put(v, Field.HOST_IA32_PERF_GLOBAL_CTRL, ((1n << BigInt(cpu.cpuid.pmuFixedCounters)) - 1n) << 32n | ((1n << BigInt(cpu.cpuid.pmuGpCounters)) - 1n)) },
  { name: 'test_load_host_perf_global_ctrl: reserved bits ignored without the control', expect: 'pass', needs: offers('exit.load-ia32-perf-global-ctrl'), set: (v) => { off(v, Field.VM_EXIT_CONTROLS, ExitCtl.LOAD_IA32_PERF_GLOBAL_CTRL); put(v, Field.HOST_IA32_PERF_GLOBAL_CTRL, 1n << 63n); } },
  ...[2n, 3n, 8n, 0xffn].map((t): EntryCase => ({ name: `test_load_host_pat: memory type ${t} in byte 5`, expect: 'host.pat.memory-types', needs: offers('exit.load-ia32-pat'), set: (v) => put(v, Field.HOST_IA32_PAT, 0x0007_0406_0007_0406n & ~(0xffn << 40n) | (t << 40n)) })),
  { name: 'test_load_host_pat: invalid PAT ignored without "load IA32_PAT"', expect: 'pass', needs: offers('exit.load-ia32-pat'), set: (v) => { off(v, Field.VM_EXIT_CONTROLS, ExitCtl.LOAD_IA32_PAT); put(v, Field.HOST_IA32_PAT, 0x0202_0202_0202_0202n); } },
  { name: 'test_host_efer: reserved bit 12 (SVME)', expect: 'host.efer.reserved', needs: offers('exit.load-ia32-efer'), set: (v) => put(v, Field.HOST_IA32_EFER, 0x1d01n) },
  { name: 'test_host_efer: reserved bit 63', expect: 'host.efer.reserved', needs: offers('exit.load-ia32-efer'), set: (v) => put(v, Field.HOST_IA32_EFER, 0xd01n | (1n << 63n)) },
  { name: 'test_host_efer: LMA 0 with a 64-bit host', expect: 'host.efer.lma', needs: offers('exit.load-ia32-efer'), set: (v) => put(v, Field.HOST_IA32_EFER, 0x901n) },
  { name: 'test_host_efer: LME 0 with a 64-bit host', expect: 'host.efer.lme', needs: offers('exit.load-ia32-efer'), set: (v) => put(v, Field.HOST_IA32_EFER, 0xc01n) },
  { name: 'test_host_efer: any EFER without "load IA32_EFER"', expect: 'pass', needs: offers('exit.load-ia32-efer'), set: (v) => { off(v, Field.VM_EXIT_CONTROLS, ExitCtl.LOAD_IA32_EFER); put(v, Field.HOST_IA32_EFER, 0xffffn); } },
  { name: 'host PKRS bits 63:32', expect: 'host.pkrs.reserved', needs: offers('exit.load-pkrs'), synthetic: [allow('exit', ExitCtl.LOAD_PKRS)], set: (v) => { on(v, Field.VM_EXIT_CONTROLS, ExitCtl.LOAD_PKRS); put(v, Field.HOST_IA32_PKRS, 1n << 32n); } },
  // ---- test_host_segment_regs ----
  ...sel.map((s): EntryCase => ({ name: `test_host_segment_regs: HOST_${s}_SELECTOR RPL 3`, expect: `host.sel.${s.toLowerCase()}.rpl-ti` as EntryCase['expect'], set: (v) => v.set32(selField(s), (v.lo(selField(s)) | 3) >>> 0) })),
  ...sel.map((s): EntryCase => ({ name: `test_host_segment_regs: HOST_${s}_SELECTOR TI set`, expect: `host.sel.${s.toLowerCase()}.rpl-ti` as EntryCase['expect'], set: (v) => v.set32(selField(s), (v.lo(selField(s)) | 4) >>> 0) })),
  { name: 'test_host_segment_regs: CS selector 0', expect: 'host.sel.cs.null', set: (v) => v.set32(Field.HOST_CS_SELECTOR, 0) },
  { name: 'test_host_segment_regs: TR selector 0', expect: 'host.sel.tr.null', set: (v) => v.set32(Field.HOST_TR_SELECTOR, 0) },
  { name: 'test_host_segment_regs: SS selector 0 with a 64-bit host', expect: 'pass', set: (v) => v.set32(Field.HOST_SS_SELECTOR, 0) },
  { name: 'test_host_segment_regs: SS selector 0 with a 32-bit host', expect: 'host.sel.ss.null', env: { hostIa32e: false }, set: (v) => { host32(v); off(v, Field.VM_ENTRY_CONTROLS, EntryCtl.IA32E_MODE_GUEST); v.set32(Field.HOST_SS_SELECTOR, 0); } },
  { name: 'test_host_segment_regs: DS/ES/FS/GS selectors 0', expect: 'pass', set: (v) => { for (const s of ['DS', 'ES', 'FS', 'GS'] as const) v.set32(selField(s), 0); } },
  // ---- test_host_desc_tables / test_canonical ----
  ...(['FS', 'GS', 'GDTR', 'IDTR', 'TR'] as const).map((b): EntryCase => ({ name: `test_host_desc_tables: HOST_${b}_BASE not canonical`, expect: `host.${b.toLowerCase()}-base.canonical` as EntryCase['expect'], set: (v) => put(v, Field[`HOST_${b}_BASE`], NON_CANONICAL) })),
  { name: 'test_canonical: 57-bit canonical host base on a 5-level-paging processor', expect: 'pass', needs: (c) => c.cpuid.la57, synthetic: [cpuid({ la57: true })], set: (v) => put(v, Field.HOST_GS_BASE, 0x00ff_8000_0000_0000n) },
  // ---- test_host_addr_size ----
  { name: 'test_host_addr_size: no Intel 64, "IA-32e mode guest" 1', expect: 'host.addr-size.no-intel64', needs: (c) => !c.controlOffered('exit.host-address-space-size') && c.controlOffered('entry.ia32e-mode-guest'),
    synthetic: [(d) => { for (const n of ['IA32_VMX_EXIT_CTLS', 'IA32_VMX_TRUE_EXIT_CTLS'] as const) d.vmxMsrs[n] = '0x' + (BigInt(d.vmxMsrs[n]!) & ~(0x200n << 32n)).toString(16); }],
    env: { hostIa32e: undefined }, set: (v) => host32(v) },
  { name: 'test_host_addr_size: outside IA-32e mode with "IA-32e mode guest"', expect: 'host.addr-size.outside-ia32e-guest', env: { hostIa32e: false }, set: () => undefined },
  { name: 'test_host_addr_size: outside IA-32e mode with "host address-space size"', expect: 'host.addr-size.outside-ia32e-hass', env: { hostIa32e: false }, set: (v) => off(v, Field.VM_ENTRY_CONTROLS, EntryCtl.IA32E_MODE_GUEST) },
  { name: 'test_host_addr_size: in IA-32e mode without "host address-space size"', expect: 'host.addr-size.inside-ia32e-hass', env: { hostIa32e: true }, set: (v) => host32(v) },
  { name: 'test_host_addr_size: "IA-32e mode guest" without "host address-space size" (host mode unknown)', expect: 'host.addr-size.hass0-ia32e-guest', env: { hostIa32e: undefined }, set: (v) => host32(v) },
  { name: 'test_host_addr_size: 32-bit host with CR4.PCIDE', expect: 'host.addr-size.hass0-pcide', needs: (c) => ((c.cr4Fixed1 >> 17n) & 1n) === 1n, env: { hostIa32e: false }, set: (v) => { host32(v); off(v, Field.VM_ENTRY_CONTROLS, EntryCtl.IA32E_MODE_GUEST); put(v, Field.HOST_CR4, 0x26e0n | (1n << 17n)); } },
  { name: 'test_host_addr_size: 32-bit host with RIP bit 32', expect: 'host.addr-size.hass0-rip', env: { hostIa32e: false }, set: (v) => { host32(v); off(v, Field.VM_ENTRY_CONTROLS, EntryCtl.IA32E_MODE_GUEST); put(v, Field.HOST_RIP, 0x1_0010_0000n); } },
  { name: 'vmx_cet_test: 32-bit host with SSP bit 32', expect: 'host.addr-size.hass0-ssp', needs: offers('exit.load-cet-state'), synthetic: cetExit, env: { hostIa32e: false }, set: (v) => { host32(v); off(v, Field.VM_ENTRY_CONTROLS, EntryCtl.IA32E_MODE_GUEST); loadCet(v); put(v, Field.HOST_SSP, 0x1_0000_0000n); } },
  { name: 'test_host_addr_size: 64-bit host with CR4.PAE 0', expect: 'host.addr-size.hass1-pae', set: (v) => put(v, Field.HOST_CR4, 0x26c0n) },
  { name: 'test_host_addr_size: 64-bit host with a non-canonical RIP', expect: 'host.addr-size.hass1-rip', set: (v) => put(v, Field.HOST_RIP, NON_CANONICAL) },
  { name: 'test_host_addr_size: RIP canonical only for 57 bits, host CR4.LA57 0', expect: 'host.addr-size.hass1-rip', needs: (c) => c.cpuid.la57, synthetic: [cpuid({ la57: true }), msrBits('IA32_VMX_CR4_FIXED1', 1n << 12n)], set: (v) => put(v, Field.HOST_RIP, 0x00ff_8000_0000_0000n) },
  { name: 'test_host_addr_size: RIP canonical for 57 bits, host CR4.LA57 1', expect: 'pass', needs: (c) => c.cpuid.la57 && ((c.cr4Fixed1 >> 12n) & 1n) === 1n, synthetic: [cpuid({ la57: true }), msrBits('IA32_VMX_CR4_FIXED1', 1n << 12n)], set: (v) => { put(v, Field.HOST_RIP, 0x00ff_8000_0000_0000n); put(v, Field.HOST_CR4, 0x36e0n); } },
  { name: 'vmx_cet_test: 64-bit host with a non-canonical SSP', expect: 'host.addr-size.hass1-ssp', needs: offers('exit.load-cet-state'), synthetic: cetExit, set: (v) => { loadCet(v); put(v, Field.HOST_SSP, NON_CANONICAL); } },
];
