// Perturbation cases for SDM 26.2.1 (VMfailValid(7)): our own rewrite of what kvm-unit-tests' vmx_controls_test
// expects (test_pin_based_ctls, test_cr3_targets, test_io_bitmaps, test_msr_bitmap, test_apic_virt_addr,
// test_tpr_threshold*, test_apic_virtual_ctls, test_nmi_ctrls, test_vpid, test_ept_eptp, test_pml,
// test_vm_exit_ctls, test_exit_msr_store, test_vm_entry_ctls, test_invalid_event_injection, test_entry_msr_load ...).
// Each case starts from validVmcs() and breaks exactly one rule.
import type { CpuModel } from '../../../../src/cpu/cpu-model.js';
import { EntryCtl, ExitCtl, Pin, Primary, Secondary } from '../../../../src/cpu/generated/controls.js';
import { Field } from '../../../../src/cpu/generated/vmcs-fields.js';
import type { Vmcs } from '../../../../src/cpu/vmcs.js';
import {
  allow, allowExit2, allowSecondary, allowTertiary, cpuid, msrBits, off, on, put, reservedBit, type EntryCase,
} from './support.js';

const offers = (id: string) => (cpu: CpuModel): boolean => cpu.controlOffered(id);
const beyond = (cpu: CpuModel): bigint => 1n << BigInt(cpu.maxPhysAddr);
const sec = (v: Vmcs, bits: number): void => { on(v, Field.CPU_BASED_VM_EXEC_CONTROL, Primary.ACTIVATE_SECONDARY_CONTROLS); on(v, Field.SECONDARY_VM_EXEC_CONTROL, bits); };
const tprShadow = (v: Vmcs): void => { on(v, Field.CPU_BASED_VM_EXEC_CONTROL, Primary.USE_TPR_SHADOW); put(v, Field.VIRTUAL_APIC_PAGE_ADDR, 0x14000n); };
const inject = (v: Vmcs, info: number, errorCode = 0, len = 0): void => {
  v.set32(Field.VM_ENTRY_INTR_INFO_FIELD, info >>> 0);
  v.set32(Field.VM_ENTRY_EXCEPTION_ERROR_CODE, errorCode);
  v.set32(Field.VM_ENTRY_INSTRUCTION_LEN, len);
};
const VALID = 0x8000_0000, DELIVER = 0x800;
const ev = (type: number, vector: number, deliver = false): number => VALID | (type << 8) | vector | (deliver ? DELIVER : 0);

/** An address case: the control that enables the address, the field, and what breaks it. */
function addressCases(kut: string, what: string, field: number, enable: (v: Vmcs) => void, prefix: string, needs?: (c: CpuModel) => boolean, synthetic?: EntryCase['synthetic'], alignBit = 0x800n): EntryCase[] {
  return [
    { name: `${kut}: ${what} not aligned`, expect: `ctrl.${prefix}.alignment` as EntryCase['expect'], needs, synthetic, set: (v) => { enable(v); put(v, field, 0x30000n | alignBit); } },
    { name: `${kut}: ${what} beyond MAXPHYADDR`, expect: `ctrl.${prefix}.width` as EntryCase['expect'], needs, synthetic, set: (v, cpu) => { enable(v); put(v, field, beyond(cpu)); } },
  ];
}

export const CONTROL_CASES: EntryCase[] = [
  // ---- test_pin_based_ctls / test_primary_processor_based_ctls / test_secondary_processor_based_ctls ----
  { name: 'test_pin_based_ctls: a default1 pin control cleared', expect: 'ctrl.pin.allowed-settings', set: (v) => off(v, Field.PIN_BASED_VM_EXEC_CONTROL, 0x2) },
  { name: 'test_pin_based_ctls: a reserved pin control set', expect: 'ctrl.pin.allowed-settings', set: (v, cpu) => on(v, Field.PIN_BASED_VM_EXEC_CONTROL, reservedBit(cpu.allowed('pin').mayBeOne)!) },
  { name: 'test_primary_processor_based_ctls: a default1 control cleared', expect: 'ctrl.primary.allowed-settings', set: (v) => off(v, Field.CPU_BASED_VM_EXEC_CONTROL, 0x2) },
  { name: 'test_primary_processor_based_ctls: reserved bit 0 set', expect: 'ctrl.primary.allowed-settings', set: (v) => on(v, Field.CPU_BASED_VM_EXEC_CONTROL, 0x1) },
  { name: 'test_secondary_processor_based_ctls: a reserved secondary control set', expect: 'ctrl.secondary.allowed-settings', needs: offers('primary.activate-secondary-controls'), set: (v, cpu) => sec(v, reservedBit(cpu.allowed('secondary').mayBeOne)!) },
  { name: 'test_secondary_processor_based_ctls: reserved secondary bits ignored while "activate secondary controls" is 0', expect: 'pass', needs: offers('primary.activate-secondary-controls'), set: (v, cpu) => { off(v, Field.CPU_BASED_VM_EXEC_CONTROL, Primary.ACTIVATE_SECONDARY_CONTROLS); v.set32(Field.SECONDARY_VM_EXEC_CONTROL, reservedBit(cpu.allowed('secondary').mayBeOne)!); } },
  { name: 'tertiary controls: a reserved tertiary control set', expect: 'ctrl.tertiary.allowed-settings', needs: offers('primary.activate-tertiary-controls'), synthetic: [allowTertiary(0x10n)], set: (v) => { on(v, Field.CPU_BASED_VM_EXEC_CONTROL, Primary.ACTIVATE_TERTIARY_CONTROLS); put(v, Field.TERTIARY_VM_EXEC_CONTROL, 1n << 40n); } },
  // ---- test_cr3_targets ----
  { name: 'test_cr3_targets: count one above IA32_VMX_MISC[24:16]', expect: 'ctrl.cr3-target-count.limit', set: (v, cpu) => v.set32(Field.CR3_TARGET_COUNT, cpu.cr3TargetCount + 1) },
  { name: 'test_cr3_targets: count equal to IA32_VMX_MISC[24:16]', expect: 'pass', set: (v, cpu) => v.set32(Field.CR3_TARGET_COUNT, cpu.cr3TargetCount) },
  // ---- test_io_bitmaps / test_msr_bitmap ----
  ...addressCases('test_io_bitmaps', 'I/O bitmap A', Field.IO_BITMAP_A, (v) => on(v, Field.CPU_BASED_VM_EXEC_CONTROL, Primary.USE_IO_BITMAPS), 'io-bitmap-a'),
  ...addressCases('test_io_bitmaps', 'I/O bitmap B', Field.IO_BITMAP_B, (v) => on(v, Field.CPU_BASED_VM_EXEC_CONTROL, Primary.USE_IO_BITMAPS), 'io-bitmap-b'),
  { name: 'test_io_bitmaps: bad address ignored while "use I/O bitmaps" is 0', expect: 'pass', set: (v) => { off(v, Field.CPU_BASED_VM_EXEC_CONTROL, Primary.USE_IO_BITMAPS); put(v, Field.IO_BITMAP_A, 0x123n); } },
  ...addressCases('test_msr_bitmap', 'MSR bitmap', Field.MSR_BITMAP, (v) => on(v, Field.CPU_BASED_VM_EXEC_CONTROL, Primary.USE_MSR_BITMAPS), 'msr-bitmap'),
  // ---- test_apic_virt_addr / test_tpr_threshold / test_tpr_threshold_values ----
  ...addressCases('test_apic_virt_addr', 'virtual-APIC address', Field.VIRTUAL_APIC_PAGE_ADDR, (v) => on(v, Field.CPU_BASED_VM_EXEC_CONTROL, Primary.USE_TPR_SHADOW), 'virtual-apic'),
  { name: 'test_tpr_threshold: bits 31:4 set without virtual-interrupt delivery', expect: 'ctrl.tpr-threshold.reserved', set: (v) => { tprShadow(v); v.set32(Field.TPR_THRESHOLD, 0x10); } },
  { name: 'test_tpr_threshold_values: threshold 5 above VTPR[7:4] = 4', expect: 'ctrl.tpr-threshold.vtpr', memory: (m) => m.write(0x14080n, 0x40n, 4), set: (v) => { tprShadow(v); v.set32(Field.TPR_THRESHOLD, 5); } },
  { name: 'test_tpr_threshold_values: threshold 5 equal to VTPR[7:4] = 5', expect: 'pass', memory: (m) => m.write(0x14080n, 0x50n, 4), set: (v) => { tprShadow(v); v.set32(Field.TPR_THRESHOLD, 5); } },
  { name: 'test_tpr_threshold_values: no VTPR comparison with "virtualize APIC accesses"', expect: 'pass', needs: offers('secondary.virtualize-apic-accesses'), memory: (m) => m.write(0x14080n, 0x00n, 4), set: (v) => { tprShadow(v); sec(v, Secondary.VIRTUALIZE_APIC_ACCESSES); put(v, Field.APIC_ACCESS_ADDR, 0x15000n); v.set32(Field.TPR_THRESHOLD, 0xf); } },
  // ---- test_apic_virtual_ctls / test_virtual_intr_ctls ----
  { name: 'test_apic_virtual_ctls: virtualize x2APIC mode without TPR shadow', expect: 'ctrl.no-tpr-shadow.virtualize-x2apic', needs: offers('secondary.virtualize-x2apic-mode'), set: (v) => sec(v, Secondary.VIRTUALIZE_X2APIC_MODE) },
  { name: 'test_apic_virtual_ctls: APIC-register virtualization without TPR shadow', expect: 'ctrl.no-tpr-shadow.apic-register-virtualization', needs: offers('secondary.apic-register-virtualization'), synthetic: [allowSecondary(Secondary.APIC_REGISTER_VIRTUALIZATION)], set: (v) => sec(v, Secondary.APIC_REGISTER_VIRTUALIZATION) },
  { name: 'test_apic_virtual_ctls: virtual-interrupt delivery without TPR shadow', expect: 'ctrl.no-tpr-shadow.virtual-interrupt-delivery', needs: offers('secondary.virtual-interrupt-delivery'), synthetic: [allowSecondary(Secondary.VIRTUAL_INTERRUPT_DELIVERY)], set: (v) => sec(v, Secondary.VIRTUAL_INTERRUPT_DELIVERY) },
  { name: 'IPI virtualization without TPR shadow', expect: 'ctrl.no-tpr-shadow.ipi-virtualization', needs: offers('primary.activate-tertiary-controls'), synthetic: [allowTertiary(0x10n)], set: (v) => { on(v, Field.CPU_BASED_VM_EXEC_CONTROL, Primary.ACTIVATE_TERTIARY_CONTROLS); put(v, Field.TERTIARY_VM_EXEC_CONTROL, 0x10n); put(v, Field.PID_POINTER_TABLE, 0x16000n); } },
  { name: 'test_apic_virtual_ctls: virtualize x2APIC mode together with virtualize APIC accesses', expect: 'ctrl.virtualize-x2apic.apic-access', needs: (c) => c.controlOffered('secondary.virtualize-x2apic-mode') && c.controlOffered('secondary.virtualize-apic-accesses'), set: (v) => { tprShadow(v); sec(v, Secondary.VIRTUALIZE_X2APIC_MODE | Secondary.VIRTUALIZE_APIC_ACCESSES); put(v, Field.APIC_ACCESS_ADDR, 0x15000n); } },
  { name: 'test_virtual_intr_ctls: virtual-interrupt delivery without external-interrupt exiting', expect: 'ctrl.virtual-interrupt-delivery.external-interrupt-exiting', needs: offers('secondary.virtual-interrupt-delivery'), synthetic: [allowSecondary(Secondary.VIRTUAL_INTERRUPT_DELIVERY)], set: (v) => { tprShadow(v); sec(v, Secondary.VIRTUAL_INTERRUPT_DELIVERY); off(v, Field.PIN_BASED_VM_EXEC_CONTROL, Pin.EXTERNAL_INTERRUPT_EXITING); } },
  // ---- test_nmi_ctrls ----
  { name: 'test_nmi_ctrls: virtual NMIs without NMI exiting', expect: 'ctrl.nmi.virtual-nmis-without-nmi-exiting', needs: offers('pin.virtual-nmis'), set: (v) => { on(v, Field.PIN_BASED_VM_EXEC_CONTROL, Pin.VIRTUAL_NMIS); off(v, Field.PIN_BASED_VM_EXEC_CONTROL, Pin.NMI_EXITING); } },
  { name: 'test_nmi_ctrls: NMI-window exiting without virtual NMIs', expect: 'ctrl.nmi.nmi-window-without-virtual-nmis', needs: offers('primary.nmi-window-exiting'), set: (v) => { off(v, Field.PIN_BASED_VM_EXEC_CONTROL, Pin.VIRTUAL_NMIS); on(v, Field.CPU_BASED_VM_EXEC_CONTROL, Primary.NMI_WINDOW_EXITING); } },
  { name: 'test_nmi_ctrls: NMI exiting and virtual NMIs and NMI-window exiting', expect: 'pass', needs: (c) => c.controlOffered('pin.virtual-nmis') && c.controlOffered('primary.nmi-window-exiting'), set: (v) => { on(v, Field.PIN_BASED_VM_EXEC_CONTROL, Pin.VIRTUAL_NMIS | Pin.NMI_EXITING); on(v, Field.CPU_BASED_VM_EXEC_CONTROL, Primary.NMI_WINDOW_EXITING); } },
  // ---- test_apic_access_addr ----
  ...addressCases('test_apic_access_addr', 'APIC-access address', Field.APIC_ACCESS_ADDR, (v) => sec(v, Secondary.VIRTUALIZE_APIC_ACCESSES), 'apic-access', offers('secondary.virtualize-apic-accesses')),
  // ---- test_posted_intr ----
  ...((): EntryCase[] => {
    const synthetic = [allow('pin', Pin.PROCESS_POSTED_INTERRUPTS), allowSecondary(Secondary.VIRTUAL_INTERRUPT_DELIVERY)];
    const needs = (c: CpuModel): boolean => c.controlOffered('pin.process-posted-interrupts') && c.controlOffered('secondary.virtual-interrupt-delivery');
    const posted = (v: Vmcs): void => {
      tprShadow(v);
      on(v, Field.PIN_BASED_VM_EXEC_CONTROL, Pin.PROCESS_POSTED_INTERRUPTS | Pin.EXTERNAL_INTERRUPT_EXITING);
      sec(v, Secondary.VIRTUAL_INTERRUPT_DELIVERY);
      on(v, Field.VM_EXIT_CONTROLS, ExitCtl.ACKNOWLEDGE_INTERRUPT_ON_EXIT);
      v.set32(Field.POSTED_INTR_NV, 0xf2);
      put(v, Field.POSTED_INTR_DESC_ADDR, 0x17040n);
    };
    return [
      { name: 'test_posted_intr: valid posted-interrupt setup', expect: 'pass', needs, synthetic, set: posted },
      { name: 'test_posted_intr: without virtual-interrupt delivery', expect: 'ctrl.posted-interrupts.virtual-interrupt-delivery', needs, synthetic, set: (v) => { posted(v); off(v, Field.SECONDARY_VM_EXEC_CONTROL, Secondary.VIRTUAL_INTERRUPT_DELIVERY); } },
      { name: 'test_posted_intr: without acknowledge interrupt on exit', expect: 'ctrl.posted-interrupts.acknowledge-interrupt-on-exit', needs, synthetic, set: (v) => { posted(v); off(v, Field.VM_EXIT_CONTROLS, ExitCtl.ACKNOWLEDGE_INTERRUPT_ON_EXIT); } },
      { name: 'test_posted_intr: notification vector above 255', expect: 'ctrl.posted-interrupts.notification-vector', needs, synthetic, set: (v) => { posted(v); v.set32(Field.POSTED_INTR_NV, 0x1f2); } },
      { name: 'test_posted_intr: descriptor not 64-byte aligned', expect: 'ctrl.posted-interrupts.descriptor-alignment', needs, synthetic, set: (v) => { posted(v); put(v, Field.POSTED_INTR_DESC_ADDR, 0x17020n); } },
      { name: 'test_posted_intr: descriptor beyond MAXPHYADDR', expect: 'ctrl.posted-interrupts.descriptor-width', needs, synthetic, set: (v, cpu) => { posted(v); put(v, Field.POSTED_INTR_DESC_ADDR, beyond(cpu)); } },
    ];
  })(),
  // ---- test_vpid ----
  { name: 'test_vpid: VPID 0 with "enable VPID"', expect: 'ctrl.vpid.nonzero', needs: offers('secondary.enable-vpid'), set: (v) => { sec(v, Secondary.ENABLE_VPID); v.set32(Field.VIRTUAL_PROCESSOR_ID, 0); } },
  { name: 'test_vpid: VPID 0 without "enable VPID"', expect: 'pass', needs: offers('secondary.enable-vpid'), set: (v) => { off(v, Field.SECONDARY_VM_EXEC_CONTROL, Secondary.ENABLE_VPID); v.set32(Field.VIRTUAL_PROCESSOR_ID, 0); } },
  // ---- test_ept_eptp / test_eptp_ad_bit ----
  ...((): EntryCase[] => {
    const needs = offers('secondary.enable-ept');
    const eptp = (v: Vmcs, value: bigint): void => { sec(v, Secondary.ENABLE_EPT); put(v, Field.EPT_POINTER, value); };
    return [
      { name: 'test_ept_eptp: memory type 1 (reserved)', expect: 'ctrl.eptp.memory-type', needs, set: (v) => eptp(v, 0x13000n | (3n << 3n) | 1n) },
      { name: 'test_ept_eptp: memory type UC without IA32_VMX_EPT_VPID_CAP[8]', expect: 'ctrl.eptp.memory-type', needs: (c) => needs(c) && !c.eptCap(8), synthetic: [msrBits('IA32_VMX_EPT_VPID_CAP', 0n, 1n << 8n)], set: (v) => eptp(v, 0x13000n | (3n << 3n)) },
      { name: 'test_ept_eptp: memory type UC with IA32_VMX_EPT_VPID_CAP[8]', expect: 'pass', needs: (c) => needs(c) && c.eptCap(8), set: (v) => eptp(v, 0x13000n | (3n << 3n)) },
      { name: 'test_ept_eptp: page-walk length 3', expect: 'ctrl.eptp.walk-length', needs, set: (v) => eptp(v, 0x13000n | (2n << 3n) | 6n) },
      { name: 'test_ept_eptp: page-walk length 5 without 5-level EPT', expect: 'ctrl.eptp.walk-length', needs: (c) => needs(c) && !c.eptCap(7), synthetic: [msrBits('IA32_VMX_EPT_VPID_CAP', 0n, 1n << 7n)], set: (v) => eptp(v, 0x13000n | (4n << 3n) | 6n) },
      { name: 'test_ept_eptp: page-walk length 5 with 5-level EPT', expect: 'pass', needs: (c) => needs(c) && c.eptCap(7), synthetic: [msrBits('IA32_VMX_EPT_VPID_CAP', 1n << 7n)], set: (v) => eptp(v, 0x13000n | (4n << 3n) | 6n) },
      { name: 'test_eptp_ad_bit: A/D enable without IA32_VMX_EPT_VPID_CAP[21]', expect: 'ctrl.eptp.accessed-dirty', needs: (c) => needs(c) && !c.eptCap(21), synthetic: [msrBits('IA32_VMX_EPT_VPID_CAP', 0n, 1n << 21n)], set: (v) => eptp(v, 0x13000n | 0x40n | (3n << 3n) | 6n) },
      { name: 'test_eptp_ad_bit: A/D enable with IA32_VMX_EPT_VPID_CAP[21]', expect: 'pass', needs: (c) => needs(c) && c.eptCap(21), set: (v) => eptp(v, 0x13000n | 0x40n | (3n << 3n) | 6n) },
      { name: 'test_ept_eptp: bit 7 (supervisor shadow stack) without CET', expect: 'ctrl.eptp.supervisor-shadow-stack', needs: (c) => needs(c) && !c.cpuid.cet, synthetic: [cpuid({ cet: false })], set: (v) => eptp(v, 0x13000n | 0x80n | (3n << 3n) | 6n) },
      { name: 'test_ept_eptp: reserved bits 11:8', expect: 'ctrl.eptp.reserved', needs, set: (v) => eptp(v, 0x13000n | 0x200n | (3n << 3n) | 6n) },
      { name: 'test_ept_eptp: bits beyond MAXPHYADDR', expect: 'ctrl.eptp.width', needs, set: (v, cpu) => eptp(v, beyond(cpu) | 0x13000n | (3n << 3n) | 6n) },
    ];
  })(),
  // ---- test_pml / unrestricted guest / mode-based execute / SPP ----
  { name: 'test_pml: PML without EPT', expect: 'ctrl.pml.requires-ept', needs: offers('secondary.enable-pml'), set: (v) => { sec(v, Secondary.ENABLE_PML); off(v, Field.SECONDARY_VM_EXEC_CONTROL, Secondary.ENABLE_EPT); put(v, Field.PML_ADDRESS, 0x18000n); } },
  ...addressCases('test_pml', 'PML address', Field.PML_ADDRESS, (v) => sec(v, Secondary.ENABLE_PML | Secondary.ENABLE_EPT), 'pml', (c) => c.controlOffered('secondary.enable-pml') && c.controlOffered('secondary.enable-ept')),
  { name: 'vmx_controls_test: unrestricted guest without EPT', expect: 'ctrl.unrestricted-guest.requires-ept', needs: offers('secondary.unrestricted-guest'), set: (v) => { sec(v, Secondary.UNRESTRICTED_GUEST); off(v, Field.SECONDARY_VM_EXEC_CONTROL, Secondary.ENABLE_EPT); } },
  { name: 'test_mode_based_execute_control: MBEC without EPT', expect: 'ctrl.mode-based-execute.requires-ept', needs: offers('secondary.mode-based-execute-control'), synthetic: [allowSecondary(Secondary.MODE_BASED_EXECUTE_CONTROL)], set: (v) => { sec(v, Secondary.MODE_BASED_EXECUTE_CONTROL); off(v, Field.SECONDARY_VM_EXEC_CONTROL, Secondary.ENABLE_EPT); } },
  { name: 'sub-page write permissions without EPT', expect: 'ctrl.spp.requires-ept', needs: offers('secondary.sub-page-write-permissions'), synthetic: [allowSecondary(Secondary.SUB_PAGE_WRITE_PERMISSIONS)], set: (v) => { sec(v, Secondary.SUB_PAGE_WRITE_PERMISSIONS); off(v, Field.SECONDARY_VM_EXEC_CONTROL, Secondary.ENABLE_EPT); put(v, Field.SPPTP, 0x19000n); } },
  ...addressCases('sub-page write permissions', 'SPPTP', Field.SPPTP, (v) => sec(v, Secondary.SUB_PAGE_WRITE_PERMISSIONS | Secondary.ENABLE_EPT), 'spp', (c) => c.controlOffered('secondary.sub-page-write-permissions') && c.controlOffered('secondary.enable-ept'), [allowSecondary(Secondary.SUB_PAGE_WRITE_PERMISSIONS)]),
  // ---- VM functions / VMCS shadowing / #VE / IPI virtualization ----
  { name: 'vmx_controls_test: VM-function control bit the VMFUNC MSR does not allow', expect: 'ctrl.vmfunc.allowed-settings', needs: offers('secondary.enable-vm-functions'), set: (v) => { sec(v, Secondary.ENABLE_VM_FUNCTIONS); put(v, Field.VM_FUNCTION_CONTROL, 2n); } },
  { name: 'vmx_controls_test: VM-function controls ignored without "enable VM functions"', expect: 'pass', needs: offers('secondary.enable-vm-functions'), set: (v) => { off(v, Field.SECONDARY_VM_EXEC_CONTROL, Secondary.ENABLE_VM_FUNCTIONS); put(v, Field.VM_FUNCTION_CONTROL, 0xffn); } },
  { name: 'vmx_controls_test: EPTP switching without EPT', expect: 'ctrl.vmfunc.eptp-switching-requires-ept', needs: offers('secondary.enable-vm-functions'), set: (v) => { sec(v, Secondary.ENABLE_VM_FUNCTIONS); off(v, Field.SECONDARY_VM_EXEC_CONTROL, Secondary.ENABLE_EPT); put(v, Field.VM_FUNCTION_CONTROL, 1n); put(v, Field.EPTP_LIST_ADDRESS, 0x1a000n); } },
  ...addressCases('vmx_controls_test', 'EPTP-list address', Field.EPTP_LIST_ADDRESS, (v) => { sec(v, Secondary.ENABLE_VM_FUNCTIONS | Secondary.ENABLE_EPT); put(v, Field.VM_FUNCTION_CONTROL, 1n); }, 'vmfunc.eptp-list', (c) => c.controlOffered('secondary.enable-vm-functions') && c.controlOffered('secondary.enable-ept')),
  ...addressCases('vmx_vmcs_shadow_test', 'VMREAD bitmap', Field.VMREAD_BITMAP, (v) => { sec(v, Secondary.VMCS_SHADOWING); put(v, Field.VMWRITE_BITMAP, 0x1b000n); }, 'vmcs-shadowing.vmread-bitmap', offers('secondary.vmcs-shadowing')),
  ...addressCases('vmx_vmcs_shadow_test', 'VMWRITE bitmap', Field.VMWRITE_BITMAP, (v) => { sec(v, Secondary.VMCS_SHADOWING); put(v, Field.VMREAD_BITMAP, 0x1c000n); }, 'vmcs-shadowing.vmwrite-bitmap', offers('secondary.vmcs-shadowing')),
  ...addressCases('EPT-violation #VE', '#VE information address', Field.VE_INFORMATION_ADDRESS, (v) => sec(v, Secondary.EPT_VIOLATION_VE), 'ept-violation-ve.info', offers('secondary.ept-violation-ve'), [allowSecondary(Secondary.EPT_VIOLATION_VE)]),
  ...addressCases('IPI virtualization', 'PID-pointer table', Field.PID_POINTER_TABLE, (v) => { tprShadow(v); on(v, Field.CPU_BASED_VM_EXEC_CONTROL, Primary.ACTIVATE_TERTIARY_CONTROLS); put(v, Field.TERTIARY_VM_EXEC_CONTROL, 0x10n); }, 'ipi-virtualization.pid-table', offers('primary.activate-tertiary-controls'), [allowTertiary(0x10n)], 0x4n),
  // ---- test_vm_exit_ctls / test_vmx_preemption_timer / test_exit_msr_store ----
  { name: 'test_vm_exit_ctls: a default1 exit control cleared', expect: 'ctrl.exit.allowed-settings', set: (v) => off(v, Field.VM_EXIT_CONTROLS, 0x1) },
  { name: 'test_vm_exit_ctls: a reserved exit control set', expect: 'ctrl.exit.allowed-settings', set: (v, cpu) => on(v, Field.VM_EXIT_CONTROLS, reservedBit(cpu.allowed('exit').mayBeOne)!) },
  { name: 'secondary VM-exit controls: a reserved bit set', expect: 'ctrl.exit2.allowed-settings', needs: offers('exit.activate-secondary-controls'), synthetic: [allowExit2(0x1n)], set: (v) => { on(v, Field.VM_EXIT_CONTROLS, ExitCtl.ACTIVATE_SECONDARY_CONTROLS); put(v, Field.SECONDARY_VM_EXIT_CONTROLS, 0x2n); } },
  { name: 'test_vmx_preemption_timer: save timer value without an active timer', expect: 'ctrl.exit.save-preemption-timer', needs: offers('exit.save-vmx-preemption-timer-value'), set: (v) => { off(v, Field.PIN_BASED_VM_EXEC_CONTROL, Pin.ACTIVATE_VMX_PREEMPTION_TIMER); on(v, Field.VM_EXIT_CONTROLS, ExitCtl.SAVE_VMX_PREEMPTION_TIMER_VALUE); } },
  ...msrAreaCases('test_exit_msr_store', 'VM-exit MSR-store', Field.VM_EXIT_MSR_STORE_COUNT, Field.VM_EXIT_MSR_STORE_ADDR, 'exit-msr-store'),
  ...msrAreaCases('test_vm_exit_ctls', 'VM-exit MSR-load', Field.VM_EXIT_MSR_LOAD_COUNT, Field.VM_EXIT_MSR_LOAD_ADDR, 'exit-msr-load'),
  // ---- test_vm_entry_ctls / test_invalid_event_injection / test_entry_msr_load ----
  { name: 'test_vm_entry_ctls: a default1 entry control cleared', expect: 'ctrl.entry.allowed-settings', set: (v) => off(v, Field.VM_ENTRY_CONTROLS, 0x1) },
  { name: 'test_vm_entry_ctls: a reserved entry control set', expect: 'ctrl.entry.allowed-settings', set: (v, cpu) => on(v, Field.VM_ENTRY_CONTROLS, reservedBit(cpu.allowed('entry').mayBeOne)!) },
  { name: 'test_invalid_event_injection: interruption type 1 (reserved)', expect: 'ctrl.entry.event.type-reserved', set: (v) => inject(v, ev(1, 0x20)) },
  { name: 'test_invalid_event_injection: type 7 (other event) without MTF support', expect: 'ctrl.entry.event.type-reserved', needs: (c) => !c.controlOffered('primary.monitor-trap-flag'), synthetic: [(d) => { for (const n of ['IA32_VMX_PROCBASED_CTLS', 'IA32_VMX_TRUE_PROCBASED_CTLS'] as const) if (d.vmxMsrs[n]) d.vmxMsrs[n] = '0x' + (BigInt(d.vmxMsrs[n]!) & ~(0x0800_0000n << 32n)).toString(16); }], set: (v) => inject(v, ev(7, 0)) },
  { name: 'test_invalid_event_injection: pending MTF (type 7, vector 0) with MTF support', expect: 'pass', needs: offers('primary.monitor-trap-flag'), set: (v) => inject(v, ev(7, 0)) },
  { name: 'test_invalid_event_injection: NMI with vector 3', expect: 'ctrl.entry.event.nmi-vector', set: (v) => inject(v, ev(2, 3)) },
  { name: 'test_invalid_event_injection: hardware exception vector 32', expect: 'ctrl.entry.event.hw-exception-vector', set: (v) => inject(v, ev(3, 32)) },
  { name: 'test_invalid_event_injection: other event with vector 1', expect: 'ctrl.entry.event.other-event-vector', needs: offers('primary.monitor-trap-flag'), set: (v) => inject(v, ev(7, 1)) },
  { name: 'test_invalid_event_injection: #GP without an error code in protected mode', expect: 'ctrl.entry.event.error-code-missing', needs: (c) => !c.relaxedErrorCodeCheck, set: (v) => inject(v, ev(3, 13)) },
  { name: 'test_invalid_event_injection: #GP without an error code with IA32_VMX_BASIC[56]', expect: 'pass', needs: (c) => c.relaxedErrorCodeCheck, synthetic: [msrBits('IA32_VMX_BASIC', 1n << 56n)], set: (v) => inject(v, ev(3, 13)) },
  { name: 'test_invalid_event_injection: #GP with its error code', expect: 'pass', set: (v) => inject(v, ev(3, 13, true), 0x10) },
  { name: 'test_invalid_event_injection: error code with an external interrupt', expect: 'ctrl.entry.event.error-code-not-hw-exception', set: (v) => inject(v, ev(0, 0x20, true)) },
  { name: 'test_invalid_event_injection: error code while guest CR0.PE = 0', expect: 'ctrl.entry.event.error-code-real-mode', set: (v) => { inject(v, ev(3, 13, true)); off(v, Field.GUEST_CR0, 0x1); } },
  { name: 'test_invalid_event_injection: error code with #UD', expect: 'ctrl.entry.event.error-code-vector', needs: (c) => !c.relaxedErrorCodeCheck, set: (v) => inject(v, ev(3, 6, true)) },
  { name: 'test_invalid_event_injection: error code with #UD and IA32_VMX_BASIC[56]', expect: 'pass', needs: (c) => c.relaxedErrorCodeCheck, synthetic: [msrBits('IA32_VMX_BASIC', 1n << 56n)], set: (v) => inject(v, ev(3, 6, true)) },
  { name: 'test_invalid_event_injection: reserved bits 30:12', expect: 'ctrl.entry.event.reserved-bits', set: (v) => inject(v, ev(0, 0x20) | 0x1000) },
  { name: 'test_invalid_event_injection: error code bits 31:16', expect: 'ctrl.entry.event.error-code-reserved', set: (v) => inject(v, ev(3, 13, true), 0x1_0000) },
  { name: 'test_invalid_event_injection: error code bit 15 (allowed by current SDM editions)', expect: 'pass', set: (v) => inject(v, ev(3, 13, true), 0x8000) },
  { name: 'test_invalid_event_injection: software interrupt with length 16', expect: 'ctrl.entry.event.instruction-length', set: (v) => inject(v, ev(4, 0x80), 0, 16) },
  { name: 'test_invalid_event_injection: software exception with length 0 without IA32_VMX_MISC[30]', expect: 'ctrl.entry.event.instruction-length-zero', needs: (c) => !c.zeroLengthInjection, synthetic: [msrBits('IA32_VMX_MISC', 0n, 1n << 30n)], set: (v) => inject(v, ev(6, 3), 0, 0) },
  { name: 'test_invalid_event_injection: software exception with length 0 and IA32_VMX_MISC[30]', expect: 'pass', needs: (c) => c.zeroLengthInjection, synthetic: [msrBits('IA32_VMX_MISC', 1n << 30n)], set: (v) => inject(v, ev(6, 3), 0, 0) },
  ...msrAreaCases('test_entry_msr_load', 'VM-entry MSR-load', Field.VM_ENTRY_MSR_LOAD_COUNT, Field.VM_ENTRY_MSR_LOAD_ADDR, 'entry-msr-load'),
  { name: 'entry to SMM outside SMM', expect: 'ctrl.entry.smm-outside-smm', needs: offers('entry.entry-to-smm'), synthetic: [allow('entry', EntryCtl.ENTRY_TO_SMM)], set: (v) => on(v, Field.VM_ENTRY_CONTROLS, EntryCtl.ENTRY_TO_SMM) },
  { name: 'deactivate dual-monitor treatment outside SMM', expect: 'ctrl.entry.dual-monitor-outside-smm', needs: offers('entry.deactivate-dual-monitor-treatment'), synthetic: [allow('entry', EntryCtl.DEACTIVATE_DUAL_MONITOR_TREATMENT)], set: (v) => on(v, Field.VM_ENTRY_CONTROLS, EntryCtl.DEACTIVATE_DUAL_MONITOR_TREATMENT) },
  { name: 'entry to SMM together with deactivate dual-monitor treatment (in SMM)', expect: 'ctrl.entry.smm-and-dual-monitor', env: { inSmm: true }, needs: (c) => c.controlOffered('entry.entry-to-smm') && c.controlOffered('entry.deactivate-dual-monitor-treatment'), synthetic: [allow('entry', EntryCtl.ENTRY_TO_SMM | EntryCtl.DEACTIVATE_DUAL_MONITOR_TREATMENT)], set: (v) => on(v, Field.VM_ENTRY_CONTROLS, EntryCtl.ENTRY_TO_SMM | EntryCtl.DEACTIVATE_DUAL_MONITOR_TREATMENT) },
];

function msrAreaCases(kut: string, what: string, count: number, addr: number, prefix: string): EntryCase[] {
  return [
    { name: `${kut}: ${what} area not 16-byte aligned`, expect: `ctrl.${prefix}.alignment` as EntryCase['expect'], set: (v) => { v.set32(count, 1); put(v, addr, 0x20008n); } },
    { name: `${kut}: ${what} area beyond MAXPHYADDR`, expect: `ctrl.${prefix}.width` as EntryCase['expect'], set: (v, cpu) => { v.set32(count, 1); put(v, addr, beyond(cpu)); } },
    { name: `${kut}: ${what} area's last byte beyond MAXPHYADDR`, expect: `ctrl.${prefix}.last-byte` as EntryCase['expect'], set: (v, cpu) => { v.set32(count, 2); put(v, addr, beyond(cpu) - 16n); } },
    { name: `${kut}: ${what} area ending exactly at MAXPHYADDR`, expect: 'pass', set: (v, cpu) => { v.set32(count, 1); put(v, addr, beyond(cpu) - 16n); } },
    { name: `${kut}: ${what} bad address ignored with count 0`, expect: 'pass', set: (v) => { v.set32(count, 0); put(v, addr, 0x7n); } },
  ];
}

