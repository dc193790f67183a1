// Hardware VMCS shadowing for L1 (KVM enable_shadow_vmcs): the vmcs12 fields L1 may VMREAD/VMWRITE without exiting,
// the bitmaps that say so, and the copies keeping the hardware shadow VMCS and vmcs12 coherent. Must not: decide when
// to sync (L0 does) or shadow a field L0 changes while emulating instructions (VM_INSTRUCTION_ERROR).
// Reference: nested-vmx.md §2.3 VMREAD/VMWRITE, §9.3 N9; KVM vmcs_shadow_fields.h; SDM 24.10, 25.1.3.
import type { CpuModel } from '../../cpu/cpu-model.js';
import { Field } from '../../cpu/generated/vmcs-fields.js';
import { slotOf, type Vmcs } from '../../cpu/vmcs.js';

const F = Field;

/**
 * Fields KVM lets L1 VMWRITE and VMREAD through the shadow VMCS. VM_INSTRUCTION_ERROR and anything else L0 writes while
 * emulating a VMX instruction are deliberately absent (they would need a sync after every emulated instruction).
 */
export const KVM_SHADOW_RW: readonly number[] = [
  F.GUEST_INTR_STATUS, F.GUEST_PML_INDEX, F.HOST_FS_SELECTOR, F.HOST_GS_SELECTOR,
  F.CPU_BASED_VM_EXEC_CONTROL, F.EXCEPTION_BITMAP, F.VM_ENTRY_EXCEPTION_ERROR_CODE, F.VM_ENTRY_INTR_INFO_FIELD,
  F.VM_ENTRY_INSTRUCTION_LEN, F.TPR_THRESHOLD, F.GUEST_INTERRUPTIBILITY_INFO, F.VMX_PREEMPTION_TIMER_VALUE,
  F.GUEST_RIP, F.GUEST_RSP, F.GUEST_CR0, F.GUEST_CR3, F.GUEST_CR4, F.GUEST_RFLAGS, F.CR0_GUEST_HOST_MASK,
  F.CR0_READ_SHADOW, F.CR4_READ_SHADOW, F.HOST_FS_BASE, F.HOST_GS_BASE,
];

/** Fields KVM lets L1 VMREAD (only) through the shadow VMCS: exit information L0 writes at nested VM exits. */
export const KVM_SHADOW_RO: readonly number[] = [
  F.VM_EXIT_REASON, F.VM_EXIT_INTR_INFO, F.VM_EXIT_INSTRUCTION_LEN, F.IDT_VECTORING_INFO_FIELD, F.IDT_VECTORING_ERROR_CODE,
  F.VM_EXIT_INTR_ERROR_CODE, F.GUEST_CS_AR_BYTES, F.GUEST_SS_AR_BYTES, F.EXIT_QUALIFICATION, F.GUEST_LINEAR_ADDRESS,
  F.GUEST_PHYSICAL_ADDRESS, F.GUEST_PHYSICAL_ADDRESS_HIGH,
];

export interface ShadowFieldSets {
  /** VMREAD and VMWRITE go to the shadow VMCS. */
  readonly rw: readonly number[];
  /** VMREAD goes to the shadow VMCS; VMWRITE exits. */
  readonly ro: readonly number[];
}

/** The shadowed fields usable here: the hardware must support a field to hold it, and L1 must be offered it. */
export function shadowFieldSets(host: CpuModel, l1: CpuModel): ShadowFieldSets {
  const usable = (e: number) => host.fieldSupported(e) && l1.fieldSupported(e);
  return { rw: KVM_SHADOW_RW.filter(usable), ro: KVM_SHADOW_RO.filter(usable) };
}

/** VMREAD and VMWRITE bitmaps (4 KiB each, bit = 1 → exit) letting exactly the shadowed fields through (SDM 24.6.15). */
export function shadowBitmaps(sets: ShadowFieldSets): { readonly vmread: Uint8Array; readonly vmwrite: Uint8Array } {
  const vmread = new Uint8Array(4096).fill(0xff);
  const vmwrite = new Uint8Array(4096).fill(0xff);
  const clear = (b: Uint8Array, e: number) => {
    const i = e & 0x7fff;
    b[i >> 3] = b[i >> 3]! & ~(1 << (i & 7));
  };
  for (const e of sets.rw) {
    clear(vmread, e);
    clear(vmwrite, e);
  }
  for (const e of sets.ro) clear(vmread, e);
  return { vmread, vmwrite };
}

/** Storage slots of the full (even) fields behind a list: a _HIGH encoding is held by its full field. */
function fullSlots(list: readonly number[]): Int32Array {
  return Int32Array.from(new Set(list.map((e) => e & ~1)), (e) => {
    const slot = slotOf(e);
    if (slot < 0) throw new Error(`turtles bug: shadowed VMCS field 0x${e.toString(16)} is not in the field table`);
    return slot;
  });
}

/** The slot lists of each field set, computed once per set (L0 keeps one set for its lifetime). */
const SLOTS = new WeakMap<ShadowFieldSets, { readonly all: Int32Array; readonly rw: Int32Array }>();

function slotsOf(sets: ShadowFieldSets): { readonly all: Int32Array; readonly rw: Int32Array } {
  let s = SLOTS.get(sets);
  if (!s) {
    s = { all: fullSlots([...sets.rw, ...sets.ro]), rw: fullSlots(sets.rw) };
    SLOTS.set(sets, s);
  }
  return s;
}

/** vmcs12 → hardware shadow VMCS (KVM copy_vmcs12_to_shadow): every shadowed field, RW and RO. */
export function copyVmcs12ToShadow(vmcs12: Vmcs, shadow: Vmcs, sets: ShadowFieldSets): void {
  shadow.copySlotsFrom(vmcs12, slotsOf(sets).all);
}

/** Hardware shadow VMCS → vmcs12 (KVM copy_shadow_to_vmcs12): only the fields L1 can write there. */
export function copyShadowToVmcs12(shadow: Vmcs, vmcs12: Vmcs, sets: ShadowFieldSets): void {
  vmcs12.copySlotsFrom(shadow, slotsOf(sets).rw);
}

/** Whether `encoding` lives in the shadow VMCS (L0 must mirror an emulated VMWRITE of it there). */
export function isShadowed(encoding: number, sets: ShadowFieldSets): boolean {
  return sets.rw.includes(encoding) || sets.ro.includes(encoding) || sets.rw.includes(encoding & ~1) || sets.ro.includes(encoding & ~1);
}
