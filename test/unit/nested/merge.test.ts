// One unit test per merge rule of schemas/nested/merge-rules.json (a rule without a case fails), on validVmcs-based
// vmcs01/vmcs12 with one input changed at a time. Reference: nested-vmx.md §5.2–5.3.
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Field } from '../../../src/cpu/generated/vmcs-fields.js';
import { EntryCtl, ExitCtl, Pin, Primary, Secondary } from '../../../src/cpu/generated/controls.js';
import { Cr0, Cr4, Efer } from '../../../src/cpu/state.js';
import { Vmcs } from '../../../src/cpu/vmcs.js';
import { validVmcs } from '../../../src/cpu/vmentry/valid-state.js';
import { mergeVmcs02 } from '../../../src/nested/merge/merge.js';
import { defaultL0MergeInputs } from '../../../src/nested/merge/l0-inputs.js';
import type { L0MergeInputs, MergeResult } from '../../../src/nested/merge/types.js';
import { kvmProfile, sdmProfile, type L0Profile } from '../../../src/nested/profile.js';
import { TSC_ONE } from '../../../src/nested/tsc.js';
import { HOST_MODEL, L1_MODEL } from '../../support/arbitraries/vmcs12.js';

const root = join(import.meta.dirname, '../../..');
const json = JSON.parse(readFileSync(join(root, 'schemas/nested/merge-rules.json'), 'utf8')) as { fields: { rule: string }[]; groups: { rule: string }[] };
const ruleIds = [...new Set([...json.fields.map((r) => r.rule), ...json.groups.map((g) => g.rule)])];

const F = Field;
function base(): { v01: Vmcs; v12: Vmcs } {
  return { v01: validVmcs(HOST_MODEL), v12: validVmcs(L1_MODEL) };
}
function merge(v01: Vmcs, v12: Vmcs, over: Partial<L0MergeInputs> = {}, profile: L0Profile = sdmProfile()): MergeResult {
  return mergeVmcs02(v01, v12, defaultL0MergeInputs(v01, over), profile);
}
const or32 = (v: Vmcs, f: number, bits: number): void => v.set32(f, v.lo(f) | bits);
const clr32 = (v: Vmcs, f: number, bits: number): void => v.set32(f, v.lo(f) & ~bits);
const ruleOf = (r: MergeResult, f: number): string | undefined => r.provenance.find((p) => p.encoding === f)?.rule;

const cases: Record<string, () => void> = {
  'merge.guest-state': () => {
    const { v01, v12 } = base();
    v12.set(F.GUEST_RIP, 0x1234n);
    v12.set32(F.GUEST_INTERRUPTIBILITY_INFO, 1);
    const real = merge(v01, v12);
    expect(real.vmcs02.get(F.GUEST_RIP)).toBe(0x1234n);
    expect(real.vmcs02.lo(F.GUEST_INTERRUPTIBILITY_INFO)).toBe(1);
    const live = new Vmcs();
    live.set(F.GUEST_RIP, 0x5678n);
    const re = merge(v01, v12, { realEntry: false, l2Live: live });
    expect(re.vmcs02.get(F.GUEST_RIP)).toBe(0x5678n);
    expect(re.provenance.find((p) => p.encoding === F.GUEST_RIP)!.inputs).toContainEqual({ from: 'L0', field: 'l2Live.GUEST_RIP', value: 0x5678n });
  },
  'merge.guest-cr0': () => {
    const { v01, v12 } = base();
    v12.set(F.GUEST_CR0, 0x6000_0031n); // CD, NW, NE, ET, PE
    const r = merge(v01, v12, { cr0AlwaysOn: Cr0.NE | Cr0.PG, cr0AlwaysOff: Cr0.CD | Cr0.NW });
    expect(r.vmcs02.get(F.GUEST_CR0)).toBe(0x8000_0031n);
  },
  'merge.guest-cr4': () => {
    const { v01, v12 } = base();
    v12.set(F.GUEST_CR4, Cr4.PAE);
    expect(merge(v01, v12, { cr4AlwaysOn: Cr4.VMXE }).vmcs02.get(F.GUEST_CR4)).toBe(Cr4.PAE | Cr4.VMXE);
  },
  'merge.guest-cr3': () => {
    const { v01, v12 } = base();
    v12.set(F.GUEST_CR3, 0x7000n);
    expect(merge(v01, v12).vmcs02.get(F.GUEST_CR3)).toBe(0x7000n);
    clr32(v01, F.SECONDARY_VM_EXEC_CONTROL, Secondary.ENABLE_EPT);
    expect(merge(v01, v12, { shadowCr3: 0xabc000n }).vmcs02.get(F.GUEST_CR3)).toBe(0xabc000n);
  },
  'merge.guest-pdptr': () => {
    const { v01, v12 } = base();
    v12.set(F.GUEST_PDPTR2, 0x5001n);
    expect(merge(v01, v12).vmcs02.get(F.GUEST_PDPTR2)).toBe(0x5001n);
    clr32(v12, F.SECONDARY_VM_EXEC_CONTROL, Secondary.ENABLE_EPT);
    expect(merge(v01, v12, { shadowPdptrs: [1n, 2n, 3n, 4n] }).vmcs02.get(F.GUEST_PDPTR2)).toBe(3n);
    clr32(v01, F.SECONDARY_VM_EXEC_CONTROL, Secondary.ENABLE_EPT);
    expect(merge(v01, v12, { shadowPdptrs: [1n, 2n, 3n, 4n] }).vmcs02.get(F.GUEST_PDPTR2)).toBe(0n);
  },
  'merge.cr0-read-shadow': () => {
    const { v01, v12 } = base();
    v12.set(F.GUEST_CR0, 0x8000_0031n);
    v12.set(F.CR0_GUEST_HOST_MASK, Cr0.TS | Cr0.PE);
    v12.set(F.CR0_READ_SHADOW, Cr0.TS);
    expect(merge(v01, v12).vmcs02.get(F.CR0_READ_SHADOW)).toBe(0x8000_0038n);
  },
  'merge.cr4-read-shadow': () => {
    const { v01, v12 } = base();
    v12.set(F.GUEST_CR4, Cr4.VMXE | Cr4.PAE);
    v12.set(F.CR4_GUEST_HOST_MASK, Cr4.VMXE);
    v12.set(F.CR4_READ_SHADOW, 0n);
    expect(merge(v01, v12).vmcs02.get(F.CR4_READ_SHADOW)).toBe(Cr4.PAE);
  },
  'merge.cr0-mask': () => {
    const { v01, v12 } = base();
    v12.set(F.CR0_GUEST_HOST_MASK, Cr0.WP);
    const m = merge(v01, v12, { cr0GuestOwned: Cr0.TS | Cr0.WP | Cr0.NE, cr0AlwaysOn: Cr0.NE, cr0AlwaysOff: 0n }).vmcs02.get(F.CR0_GUEST_HOST_MASK);
    expect(m).toBe(0xffff_ffff_ffff_ffffn & ~Cr0.TS);
  },
  'merge.cr4-mask': () => {
    const { v01, v12 } = base();
    v12.set(F.CR4_GUEST_HOST_MASK, Cr4.PGE);
    const m = merge(v01, v12, { cr4GuestOwned: Cr4.PGE | Cr4.TSD, cr4AlwaysOn: 0n }).vmcs02.get(F.CR4_GUEST_HOST_MASK);
    expect(m).toBe(0xffff_ffff_ffff_ffffn & ~Cr4.TSD);
  },
  'merge.guest-dr7': () => {
    const { v01, v12 } = base();
    v12.set(F.GUEST_DR7, 0x401n);
    expect(merge(v01, v12).vmcs02.get(F.GUEST_DR7)).toBe(0x401n);
    clr32(v12, F.VM_ENTRY_CONTROLS, EntryCtl.LOAD_DEBUG_CONTROLS);
    const l0 = defaultL0MergeInputs(v01);
    expect(mergeVmcs02(v01, v12, { ...l0, l1: { ...l0.l1, dr7: 0x4ffn } }, sdmProfile()).vmcs02.get(F.GUEST_DR7)).toBe(0x4ffn);
  },
  'merge.guest-debugctl': () => {
    const { v01, v12 } = base();
    v12.set(F.GUEST_IA32_DEBUGCTL, 1n);
    expect(merge(v01, v12).vmcs02.get(F.GUEST_IA32_DEBUGCTL)).toBe(1n);
    clr32(v12, F.VM_ENTRY_CONTROLS, EntryCtl.LOAD_DEBUG_CONTROLS);
    expect(merge(v01, v12).vmcs02.get(F.GUEST_IA32_DEBUGCTL)).toBe(0n);
  },
  'merge.guest-pat': () => {
    const { v01, v12 } = base();
    v12.set(F.GUEST_IA32_PAT, 0x0606_0606_0606_0606n);
    expect(merge(v01, v12).vmcs02.get(F.GUEST_IA32_PAT)).toBe(0x0606_0606_0606_0606n);
    clr32(v12, F.VM_ENTRY_CONTROLS, EntryCtl.LOAD_IA32_PAT);
    expect(merge(v01, v12).vmcs02.get(F.GUEST_IA32_PAT)).toBe(0x0007_0406_0007_0406n);
  },
  'merge.guest-efer': () => {
    const { v01, v12 } = base();
    v12.set(F.GUEST_IA32_EFER, Efer.LMA | Efer.LME | Efer.NXE);
    expect(merge(v01, v12).vmcs02.get(F.GUEST_IA32_EFER)).toBe(Efer.LMA | Efer.LME | Efer.NXE);
    clr32(v12, F.VM_ENTRY_CONTROLS, EntryCtl.LOAD_IA32_EFER | EntryCtl.IA32E_MODE_GUEST);
    // L1's EFER (0xd01: SCE, LME, LMA, NXE) with LMA = LME = 0 for a 32-bit L2.
    expect(merge(v01, v12).vmcs02.get(F.GUEST_IA32_EFER)).toBe(Efer.SCE | Efer.NXE);
  },
  'merge.guest-bndcfgs': () => {
    const { v01, v12 } = base();
    v12.set(F.GUEST_BNDCFGS, 0x1001n);
    expect(merge(v01, v12).vmcs02.get(F.GUEST_BNDCFGS)).toBe(0n);
    or32(v12, F.VM_ENTRY_CONTROLS, EntryCtl.LOAD_IA32_BNDCFGS);
    expect(merge(v01, v12).vmcs02.get(F.GUEST_BNDCFGS)).toBe(0x1001n);
  },
  'merge.guest-perf-global-ctrl': () => {
    const { v01, v12 } = base();
    v12.set(F.GUEST_IA32_PERF_GLOBAL_CTRL, 3n);
    expect(merge(v01, v12).vmcs02.get(F.GUEST_IA32_PERF_GLOBAL_CTRL)).toBe(3n);
    clr32(v12, F.VM_ENTRY_CONTROLS, EntryCtl.LOAD_IA32_PERF_GLOBAL_CTRL);
    expect(merge(v01, v12).vmcs02.get(F.GUEST_IA32_PERF_GLOBAL_CTRL)).toBe(0n);
  },
  'merge.guest-activity-state': () => {
    const { v01, v12 } = base();
    v12.set32(F.GUEST_ACTIVITY_STATE, 1);
    expect(merge(v01, v12).vmcs02.lo(F.GUEST_ACTIVITY_STATE)).toBe(0);
  },
  'merge.guest-intr-status': () => {
    const { v01, v12 } = base();
    v12.set32(F.GUEST_INTR_STATUS, 0x3031);
    expect(merge(v01, v12).vmcs02.lo(F.GUEST_INTR_STATUS)).toBe(0);
    or32(v12, F.SECONDARY_VM_EXEC_CONTROL, Secondary.VIRTUAL_INTERRUPT_DELIVERY);
    expect(merge(v01, v12).vmcs02.lo(F.GUEST_INTR_STATUS)).toBe(0x3031);
  },
  'merge.guest-pml-index': () => {
    const { v01, v12 } = base();
    expect(merge(v01, v12).vmcs02.lo(F.GUEST_PML_INDEX)).toBe(0xffff);
  },
  'merge.vmcs-link-pointer': () => {
    const { v01, v12 } = base();
    v12.set(F.VMCS_LINK_POINTER, 0x3000n);
    expect(merge(v01, v12).vmcs02.get(F.VMCS_LINK_POINTER)).toBe(0xffff_ffff_ffff_ffffn);
  },
  'merge.preemption-timer-value': () => {
    const { v01, v12 } = base();
    or32(v12, F.PIN_BASED_VM_EXEC_CONTROL, Pin.ACTIVATE_VMX_PREEMPTION_TIMER);
    v12.set32(F.VMX_PREEMPTION_TIMER_VALUE, 99);
    expect(merge(v01, v12, { preemptionTimer02: 7 }).vmcs02.lo(F.VMX_PREEMPTION_TIMER_VALUE)).toBe(0);
    or32(v01, F.PIN_BASED_VM_EXEC_CONTROL, Pin.ACTIVATE_VMX_PREEMPTION_TIMER);
    expect(merge(v01, v12, { preemptionTimer02: 7 }).vmcs02.lo(F.VMX_PREEMPTION_TIMER_VALUE)).toBe(7);
  },
  'merge.pin-controls': () => {
    const { v01, v12 } = base();
    v01.set32(F.PIN_BASED_VM_EXEC_CONTROL, 0x16 | Pin.EXTERNAL_INTERRUPT_EXITING | Pin.PROCESS_POSTED_INTERRUPTS);
    v12.set32(F.PIN_BASED_VM_EXEC_CONTROL, 0x16 | Pin.NMI_EXITING | Pin.ACTIVATE_VMX_PREEMPTION_TIMER);
    // L1's timer is emulated; posted interrupts only when vmcs12 asks.
    expect(merge(v01, v12).vmcs02.lo(F.PIN_BASED_VM_EXEC_CONTROL)).toBe(0x16 | Pin.EXTERNAL_INTERRUPT_EXITING | Pin.NMI_EXITING);
    or32(v12, F.PIN_BASED_VM_EXEC_CONTROL, Pin.PROCESS_POSTED_INTERRUPTS);
    expect(merge(v01, v12, { postedIntrDesc: null }).vmcs02.lo(F.PIN_BASED_VM_EXEC_CONTROL) & Pin.PROCESS_POSTED_INTERRUPTS).not.toBe(0);
    expect(merge(v01, v12, { postedIntrDesc: null }, kvmProfile()).vmcs02.lo(F.PIN_BASED_VM_EXEC_CONTROL) & Pin.PROCESS_POSTED_INTERRUPTS).toBe(0);
  },
  'merge.posted-intr-nv': () => {
    const { v01, v12 } = base();
    or32(v12, F.PIN_BASED_VM_EXEC_CONTROL, Pin.PROCESS_POSTED_INTERRUPTS);
    v12.set32(F.POSTED_INTR_NV, 0x20);
    expect(merge(v01, v12, { postedIntrNv02: 0xf2, postedIntrDesc: 0x5000n }).vmcs02.lo(F.POSTED_INTR_NV)).toBe(0xf2);
  },
  'merge.posted-intr-desc-addr': () => {
    const { v01, v12 } = base();
    or32(v12, F.PIN_BASED_VM_EXEC_CONTROL, Pin.PROCESS_POSTED_INTERRUPTS);
    expect(merge(v01, v12, { postedIntrDesc: 0x5040n }).vmcs02.get(F.POSTED_INTR_DESC_ADDR)).toBe(0x5040n);
    expect(merge(v01, v12, { postedIntrDesc: null, unbackedPage: 0xdead000n }).vmcs02.get(F.POSTED_INTR_DESC_ADDR)).toBe(0xdead000n);
    const kvm = merge(v01, v12, { postedIntrDesc: null }, kvmProfile());
    expect(kvm.vmcs02.get(F.POSTED_INTR_DESC_ADDR)).toBe(0n);
    expect(kvm.issues.map((i) => i.rule)).toContain('merge.posted-intr-desc-addr');
  },
  'merge.primary-controls': () => {
    const { v01, v12 } = base();
    v01.set32(F.CPU_BASED_VM_EXEC_CONTROL, 0x0401e172 | Primary.INTERRUPT_WINDOW_EXITING | Primary.USE_TPR_SHADOW | Primary.USE_MSR_BITMAPS | Primary.ACTIVATE_SECONDARY_CONTROLS | Primary.ACTIVATE_TERTIARY_CONTROLS);
    v12.set32(F.CPU_BASED_VM_EXEC_CONTROL, 0x0401e172 | Primary.HLT_EXITING | Primary.USE_IO_BITMAPS | Primary.ACTIVATE_SECONDARY_CONTROLS);
    const p = merge(v01, v12, { msrBitmap02: 0x9000n }).vmcs02.lo(F.CPU_BASED_VM_EXEC_CONTROL);
    expect(p & Primary.HLT_EXITING).not.toBe(0);
    expect(p & (Primary.INTERRUPT_WINDOW_EXITING | Primary.USE_TPR_SHADOW | Primary.USE_IO_BITMAPS | Primary.USE_MSR_BITMAPS | Primary.ACTIVATE_TERTIARY_CONTROLS)).toBe(0);
    expect(p & (Primary.UNCONDITIONAL_IO_EXITING | Primary.CR8_LOAD_EXITING | Primary.CR8_STORE_EXITING)).toBe(Primary.UNCONDITIONAL_IO_EXITING | Primary.CR8_LOAD_EXITING | Primary.CR8_STORE_EXITING);
    or32(v12, F.CPU_BASED_VM_EXEC_CONTROL, Primary.USE_MSR_BITMAPS);
    expect(merge(v01, v12, { msrBitmap02: 0x9000n, requestNmiWindow: true }).vmcs02.lo(F.CPU_BASED_VM_EXEC_CONTROL) & (Primary.USE_MSR_BITMAPS | Primary.NMI_WINDOW_EXITING)).toBe(Primary.USE_MSR_BITMAPS | Primary.NMI_WINDOW_EXITING);
    expect(merge(v01, v12, { msrBitmap02: null }).vmcs02.lo(F.CPU_BASED_VM_EXEC_CONTROL) & Primary.USE_MSR_BITMAPS).toBe(0);
  },
  'merge.tpr-threshold': () => {
    const { v01, v12 } = base();
    v12.set32(F.TPR_THRESHOLD, 5);
    expect(merge(v01, v12).vmcs02.lo(F.TPR_THRESHOLD)).toBe(0);
    or32(v12, F.CPU_BASED_VM_EXEC_CONTROL, Primary.USE_TPR_SHADOW);
    expect(merge(v01, v12, { virtualApicPage: 0x6000n }).vmcs02.lo(F.TPR_THRESHOLD)).toBe(5);
  },
  'merge.virtual-apic-page': () => {
    const { v01, v12 } = base();
    or32(v12, F.CPU_BASED_VM_EXEC_CONTROL, Primary.USE_TPR_SHADOW);
    expect(merge(v01, v12, { virtualApicPage: 0x6000n }).vmcs02.get(F.VIRTUAL_APIC_PAGE_ADDR)).toBe(0x6000n);
    expect(merge(v01, v12, { virtualApicPage: null, unbackedPage: 0xdead000n }).vmcs02.get(F.VIRTUAL_APIC_PAGE_ADDR)).toBe(0xdead000n);
    // kvm N2: an illegal address (VMfailValid(7) at the hardware entry) unless the TPR shadow can be dropped.
    expect(merge(v01, v12, { virtualApicPage: null }, kvmProfile()).vmcs02.get(F.VIRTUAL_APIC_PAGE_ADDR)).toBe(0xffff_ffff_ffff_ffffn);
    or32(v12, F.CPU_BASED_VM_EXEC_CONTROL, Primary.CR8_LOAD_EXITING | Primary.CR8_STORE_EXITING);
    const dropped = merge(v01, v12, { virtualApicPage: null }, kvmProfile()).vmcs02;
    expect(dropped.lo(F.CPU_BASED_VM_EXEC_CONTROL) & Primary.USE_TPR_SHADOW).toBe(0);
    expect(dropped.get(F.VIRTUAL_APIC_PAGE_ADDR)).toBe(0n);
  },
  'merge.secondary-controls': () => {
    const { v01, v12 } = base();
    v01.set32(F.SECONDARY_VM_EXEC_CONTROL, Secondary.ENABLE_EPT | Secondary.ENABLE_VPID | Secondary.ENABLE_RDTSCP | Secondary.ENABLE_PML | Secondary.UNRESTRICTED_GUEST | Secondary.WBINVD_EXITING);
    v12.set32(F.SECONDARY_VM_EXEC_CONTROL, Secondary.VMCS_SHADOWING | Secondary.ENABLE_INVPCID);
    const s = merge(v01, v12).vmcs02.lo(F.SECONDARY_VM_EXEC_CONTROL);
    expect(s).toBe((Secondary.ENABLE_EPT | Secondary.ENABLE_VPID | Secondary.WBINVD_EXITING | Secondary.ENABLE_INVPCID) >>> 0);
    v12.set(F.GUEST_CR4, v12.get(F.GUEST_CR4) | Cr4.UMIP);
    expect(merge(v01, v12, { emulatesUmip: true }).vmcs02.lo(F.SECONDARY_VM_EXEC_CONTROL) & Secondary.DESCRIPTOR_TABLE_EXITING).not.toBe(0);
    clr32(v12, F.CPU_BASED_VM_EXEC_CONTROL, Primary.ACTIVATE_SECONDARY_CONTROLS);
    expect(merge(v01, v12).vmcs02.lo(F.SECONDARY_VM_EXEC_CONTROL) & Secondary.ENABLE_INVPCID).toBe(0);
  },
  'merge.apic-access-page': () => {
    const { v01, v12 } = base();
    or32(v12, F.SECONDARY_VM_EXEC_CONTROL, Secondary.VIRTUALIZE_APIC_ACCESSES);
    expect(merge(v01, v12, { apicAccessPage: 0xfee0_0000n }).vmcs02.get(F.APIC_ACCESS_ADDR)).toBe(0xfee0_0000n);
    const kvm = merge(v01, v12, { apicAccessPage: null }, kvmProfile());
    expect(kvm.issues.map((i) => i.rule)).toEqual(['merge.apic-access-page']);
    expect(merge(v01, v12, { apicAccessPage: null }).issues).toEqual([]);
  },
  'merge.eoi-exit-bitmap': () => {
    const { v01, v12 } = base();
    v12.set(F.EOI_EXIT_BITMAP3, 0x8000_0000_0000_0001n);
    expect(merge(v01, v12).vmcs02.get(F.EOI_EXIT_BITMAP3)).toBe(0x8000_0000_0000_0001n);
  },
  'merge.xss-exit-bitmap': () => {
    const { v01, v12 } = base();
    v12.set(F.XSS_EXIT_BITMAP, 0x100n);
    expect(merge(v01, v12).vmcs02.get(F.XSS_EXIT_BITMAP)).toBe(0n);
    or32(v12, F.SECONDARY_VM_EXEC_CONTROL, Secondary.ENABLE_XSAVES_XRSTORS);
    expect(merge(v01, v12).vmcs02.get(F.XSS_EXIT_BITMAP)).toBe(0x100n);
  },
  'merge.encls-exiting-bitmap': () => {
    const { v01, v12 } = base();
    or32(v01, F.SECONDARY_VM_EXEC_CONTROL, Secondary.ENABLE_ENCLS_EXITING);
    or32(v12, F.SECONDARY_VM_EXEC_CONTROL, Secondary.ENABLE_ENCLS_EXITING);
    v12.set(F.ENCLS_EXITING_BITMAP, 0x10n);
    expect(merge(v01, v12, { enclsBitmap01: 0x1n }).vmcs02.get(F.ENCLS_EXITING_BITMAP)).toBe(0x11n);
  },
  'merge.vm-function-control': () => {
    const { v01, v12 } = base();
    v12.set(F.VM_FUNCTION_CONTROL, 1n);
    expect(merge(v01, v12).vmcs02.get(F.VM_FUNCTION_CONTROL)).toBe(0n);
  },
  'merge.pml-address': () => {
    const { v01, v12 } = base();
    v12.set(F.PML_ADDRESS, 0x8000n);
    expect(merge(v01, v12).vmcs02.get(F.PML_ADDRESS)).toBe(0n);
  },
  'merge.exception-bitmap': () => {
    const { v01, v12 } = base();
    v12.set32(F.EXCEPTION_BITMAP, 1 << 6);
    expect(merge(v01, v12, { exceptionBitmap: (1 << 18) | (1 << 14), needsPfIntercept: false }).vmcs02.lo(F.EXCEPTION_BITMAP)).toBe((1 << 18) | (1 << 6));
    expect(merge(v01, v12, { exceptionBitmap: 1 << 18, needsPfIntercept: true }).vmcs02.lo(F.EXCEPTION_BITMAP)).toBe((1 << 18) | (1 << 14) | (1 << 6));
  },
  'merge.pfec-mask': () => {
    const { v01, v12 } = base();
    v12.set32(F.PAGE_FAULT_ERROR_CODE_MASK, 5);
    expect(merge(v01, v12, { needsPfIntercept: false }).vmcs02.lo(F.PAGE_FAULT_ERROR_CODE_MASK)).toBe(5);
    expect(merge(v01, v12, { needsPfIntercept: true }).vmcs02.lo(F.PAGE_FAULT_ERROR_CODE_MASK)).toBe(0);
  },
  'merge.pfec-match': () => {
    const { v01, v12 } = base();
    v12.set32(F.PAGE_FAULT_ERROR_CODE_MATCH, 4);
    expect(merge(v01, v12, { needsPfIntercept: false }).vmcs02.lo(F.PAGE_FAULT_ERROR_CODE_MATCH)).toBe(4);
    expect(merge(v01, v12, { needsPfIntercept: true }).vmcs02.lo(F.PAGE_FAULT_ERROR_CODE_MATCH)).toBe(0);
  },
  'merge.tsc-offset': () => {
    const { v01, v12 } = base();
    or32(v01, F.CPU_BASED_VM_EXEC_CONTROL, Primary.USE_TSC_OFFSETTING);
    v01.set(F.TSC_OFFSET, 1000n);
    or32(v12, F.CPU_BASED_VM_EXEC_CONTROL, Primary.USE_TSC_OFFSETTING);
    v12.set(F.TSC_OFFSET, 20n);
    expect(merge(v01, v12).vmcs02.get(F.TSC_OFFSET)).toBe(1020n);
    or32(v12, F.SECONDARY_VM_EXEC_CONTROL, Secondary.USE_TSC_SCALING);
    v12.set(F.TSC_MULTIPLIER, 2n * TSC_ONE);
    v01.set(F.TSC_OFFSET, BigInt.asUintN(64, -1001n));
    // off01 · 2 rounded toward zero, plus off12.
    expect(merge(v01, v12).vmcs02.get(F.TSC_OFFSET)).toBe(BigInt.asUintN(64, -2002n + 20n));
  },
  'merge.tsc-multiplier': () => {
    const { v01, v12 } = base();
    or32(v01, F.CPU_BASED_VM_EXEC_CONTROL, Primary.USE_TSC_OFFSETTING);
    or32(v01, F.SECONDARY_VM_EXEC_CONTROL, Secondary.USE_TSC_SCALING);
    v01.set(F.TSC_MULTIPLIER, 3n * TSC_ONE);
    expect(merge(v01, v12).vmcs02.get(F.TSC_MULTIPLIER)).toBe(3n * TSC_ONE);
    or32(v12, F.CPU_BASED_VM_EXEC_CONTROL, Primary.USE_TSC_OFFSETTING);
    or32(v12, F.SECONDARY_VM_EXEC_CONTROL, Secondary.USE_TSC_SCALING);
    v12.set(F.TSC_MULTIPLIER, TSC_ONE / 2n);
    expect(merge(v01, v12).vmcs02.get(F.TSC_MULTIPLIER)).toBe((3n * TSC_ONE) / 2n);
  },
  'merge.msr-bitmap': () => {
    const { v01, v12 } = base();
    expect(merge(v01, v12, { msrBitmap02: 0x9000n }).vmcs02.get(F.MSR_BITMAP)).toBe(0x9000n);
    clr32(v12, F.CPU_BASED_VM_EXEC_CONTROL, Primary.USE_MSR_BITMAPS);
    expect(merge(v01, v12, { msrBitmap02: 0x9000n }).vmcs02.get(F.MSR_BITMAP)).toBe(0n);
  },
  'merge.cr3-target-count': () => {
    const { v01, v12 } = base();
    expect(merge(v01, v12).vmcs02.lo(F.CR3_TARGET_COUNT)).toBe(0);
  },
  'merge.ept-pointer': () => {
    const { v01, v12 } = base();
    expect(merge(v01, v12, { eptp02: 0x77_701en }).vmcs02.get(F.EPT_POINTER)).toBe(0x77_701en);
  },
  'merge.vpid': () => {
    const { v01, v12 } = base();
    expect(merge(v01, v12, { vpid02: 9 }).vmcs02.lo(F.VIRTUAL_PROCESSOR_ID)).toBe(9);
    clr32(v01, F.SECONDARY_VM_EXEC_CONTROL, Secondary.ENABLE_VPID);
    expect(merge(v01, v12, { vpid02: 9 }).vmcs02.lo(F.VIRTUAL_PROCESSOR_ID)).toBe(0);
  },
  'merge.entry-controls': () => {
    const { v01, v12 } = base();
    v01.set32(F.VM_ENTRY_CONTROLS, 0x11fb | EntryCtl.LOAD_IA32_PAT);
    const e = merge(v01, v12).vmcs02.lo(F.VM_ENTRY_CONTROLS);
    // vmcs12 loads EFER with LMA → IA32E; PGC is not taken from vmcs12.
    expect(e & (EntryCtl.IA32E_MODE_GUEST | EntryCtl.LOAD_IA32_PAT | EntryCtl.LOAD_DEBUG_CONTROLS)).toBe(EntryCtl.IA32E_MODE_GUEST | EntryCtl.LOAD_IA32_PAT | EntryCtl.LOAD_DEBUG_CONTROLS);
    expect(e & EntryCtl.LOAD_IA32_PERF_GLOBAL_CTRL).toBe(0);
    const hostEfer = v01.get(F.HOST_IA32_EFER);
    v12.set(F.GUEST_IA32_EFER, hostEfer);
    expect(merge(v01, v12).vmcs02.lo(F.VM_ENTRY_CONTROLS) & EntryCtl.LOAD_IA32_EFER).toBe(0);
  },
  'merge.exit-controls': () => {
    const { v01, v12 } = base();
    const x01 = v01.lo(F.VM_EXIT_CONTROLS);
    v12.set(F.GUEST_IA32_EFER, v01.get(F.HOST_IA32_EFER));
    expect(merge(v01, v12).vmcs02.lo(F.VM_EXIT_CONTROLS)).toBe((x01 & ~ExitCtl.LOAD_IA32_EFER) >>> 0);
    v12.set(F.GUEST_IA32_EFER, v01.get(F.HOST_IA32_EFER) ^ Efer.NXE);
    expect(merge(v01, v12).vmcs02.lo(F.VM_EXIT_CONTROLS)).toBe((x01 | ExitCtl.LOAD_IA32_EFER) >>> 0);
  },
  'merge.msr-autoload-lists': () => {
    const { v01, v12 } = base();
    v01.set(F.VM_EXIT_MSR_LOAD_ADDR, 0x4000n);
    v01.set32(F.VM_EXIT_MSR_LOAD_COUNT, 2);
    v12.set32(F.VM_EXIT_MSR_LOAD_COUNT, 7);
    const r = merge(v01, v12).vmcs02;
    expect([r.get(F.VM_EXIT_MSR_LOAD_ADDR), r.lo(F.VM_EXIT_MSR_LOAD_COUNT)]).toEqual([0x4000n, 2]);
  },
  'merge.entry-event-injection': () => {
    const { v01, v12 } = base();
    v12.set32(F.VM_ENTRY_INTR_INFO_FIELD, 0x8000_0b0e);
    v12.set32(F.VM_ENTRY_EXCEPTION_ERROR_CODE, 2);
    expect(merge(v01, v12).vmcs02.lo(F.VM_ENTRY_INTR_INFO_FIELD)).toBe(0x8000_0b0e);
    const re = merge(v01, v12, { realEntry: false, l2Live: new Vmcs(), reinjection: { intrInfo: 0x8000_0020, errorCode: 0, instructionLength: 0 } }).vmcs02;
    expect(re.lo(F.VM_ENTRY_INTR_INFO_FIELD)).toBe(0x8000_0020);
  },
  'merge.l0-owned-controls': () => {
    const { v01, v12 } = base();
    v01.set32(F.PLE_WINDOW, 4096);
    expect(merge(v01, v12).vmcs02.lo(F.PLE_WINDOW)).toBe(4096);
  },
  'merge.tertiary-controls': () => {
    const { v01, v12 } = base();
    v01.set(F.TERTIARY_VM_EXEC_CONTROL, 0x10n);
    expect(merge(v01, v12).vmcs02.get(F.TERTIARY_VM_EXEC_CONTROL)).toBe(0n);
  },
  'merge.host-state': () => {
    const { v01, v12 } = base();
    const host = new Vmcs();
    host.set(F.HOST_RIP, 0xffff_ffff_8123_0000n);
    v12.set(F.HOST_RIP, 0x1000n);
    const r = merge(v01, v12, { host });
    expect(r.vmcs02.get(F.HOST_RIP)).toBe(0xffff_ffff_8123_0000n);
    expect(ruleOf(r, F.HOST_RIP)).toBe('merge.host-state');
  },
  'merge.unused': () => {
    const { v01, v12 } = base();
    expect(v12.get(F.IO_BITMAP_A)).not.toBe(0n);
    const r = merge(v01, v12);
    expect(r.vmcs02.get(F.IO_BITMAP_A)).toBe(0n);
    expect(ruleOf(r, F.VMREAD_BITMAP)).toBe('merge.unused');
  },
  'merge.exit-info-not-written': () => {
    const { v01, v12 } = base();
    v12.set32(F.VM_EXIT_REASON, 12);
    const r = merge(v01, v12);
    expect(r.vmcs02.lo(F.VM_EXIT_REASON)).toBe(0);
    expect(r.provenance.some((p) => p.encoding === F.VM_EXIT_REASON)).toBe(false);
  },
};

describe('merge rules (one case per rule of merge-rules.json)', () => {
  it('every rule id has a case and every case is a rule id', () => {
    expect(Object.keys(cases).sort()).toEqual([...ruleIds].sort());
  });
  for (const id of ruleIds) it(id, () => (cases[id] ?? (() => expect.fail(`no case for ${id}`)))());

  it('is deterministic: the same inputs give byte-identical vmcs02 and provenance', () => {
    const { v01, v12 } = base();
    const a = merge(v01, v12);
    const b = merge(v01, v12);
    expect(a.vmcs02.diff(b.vmcs02)).toEqual([]);
    expect(a.provenance).toEqual(b.provenance);
  });
});
