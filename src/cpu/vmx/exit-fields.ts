// Recording VM-exit information in the VMCS (27.2) for an ordinary VM exit, and the two fields a VM-entry
// failure writes (26.8). `VmExitInfo` is shaped so a NonRootExit from src/cpu/nonroot can be passed as is.
// Must not: decide which exit happens or compute qualifications (nonroot/interp do); layout is exit-info/.
// SDM Vol. 3C 27.2.1-27.2.5, 26.8 step 1; reference §4.1, §7.3.
import type { CpuModel } from '../cpu-model.js';
import { encodeExitReason } from '../exit-info/exit-reason.js';
import type { ExitRecord } from '../exit-info/exit-record.js';
import { Field } from '../generated/vmcs-fields.js';
import type { Vmcs } from '../vmcs.js';

/** One VM exit as the interpreter / non-root rules determined it, plus what only the VM-exit path records. */
export interface VmExitInfo extends ExitRecord {
  /** Exit-reason bit 26 (bus lock detected). */
  readonly busLock?: boolean;
  /** Exit-reason bit 27 (exit from enclave mode). */
  readonly enclaveMode?: boolean;
  /** The guest's PDPTE registers at the exit, if they changed since entry (saved with EPT + PAE paging). */
  readonly pdptes?: readonly bigint[];
  /** Remaining VMX-preemption-timer value, saved when "save VMX-preemption timer value" is 1. */
  readonly preemptionTimer?: number;
}

/**
 * Write the exit-information fields of an ordinary VM exit. Interruption and IDT-vectoring information are
 * always written (0 = invalid when not given); their error codes only when the information says one is valid;
 * guest-linear/-physical address, instruction length and information only when defined (otherwise undefined,
 * which here means unmodified). The VM-entry interruption-information valid bit is cleared on every VM exit.
 */
export function recordExitInformation(vmcs: Vmcs, cpu: CpuModel, exit: VmExitInfo): void {
  const reason = encodeExitReason({
    basic: exit.reason,
    busLock: exit.busLock ?? false,
    enclaveMode: exit.enclaveMode ?? false,
    pendingMtf: false,
    fromVmxRoot: false,
    entryFailure: false,
  });
  vmcs.set32(Field.VM_EXIT_REASON, reason);
  vmcs.set(Field.EXIT_QUALIFICATION, exit.qualification ?? 0n);
  if (exit.guestLinearAddress !== undefined && cpu.fieldSupported(Field.GUEST_LINEAR_ADDRESS)) {
    vmcs.set(Field.GUEST_LINEAR_ADDRESS, exit.guestLinearAddress);
  }
  if (exit.guestPhysicalAddress !== undefined && cpu.fieldSupported(Field.GUEST_PHYSICAL_ADDRESS)) {
    vmcs.set(Field.GUEST_PHYSICAL_ADDRESS, exit.guestPhysicalAddress);
  }
  const intr = (exit.interruptionInfo ?? 0) >>> 0;
  vmcs.set32(Field.VM_EXIT_INTR_INFO, intr);
  if (intr & 0x8000_0000 && intr & 0x800) vmcs.set32(Field.VM_EXIT_INTR_ERROR_CODE, exit.interruptionErrorCode ?? 0);
  const idt = (exit.idtVectoringInfo ?? 0) >>> 0;
  vmcs.set32(Field.IDT_VECTORING_INFO_FIELD, idt);
  if (idt & 0x8000_0000 && idt & 0x800) vmcs.set32(Field.IDT_VECTORING_ERROR_CODE, exit.idtVectoringErrorCode ?? 0);
  if (exit.instructionLength !== undefined) vmcs.set32(Field.VM_EXIT_INSTRUCTION_LEN, exit.instructionLength);
  if (exit.instructionInfo !== undefined) vmcs.set32(Field.VMX_INSTRUCTION_INFO, exit.instructionInfo);
  vmcs.set32(Field.VM_ENTRY_INTR_INFO_FIELD, vmcs.lo(Field.VM_ENTRY_INTR_INFO_FIELD) & 0x7fff_ffff);
}

/** A VM-entry failure writes only the exit reason (bit 31 set, bits 30:16 clear) and the qualification. */
export function recordEntryFailure(vmcs: Vmcs, basicReason: number, qualification: bigint): number {
  const reason = encodeExitReason({ basic: basicReason, busLock: false, enclaveMode: false, pendingMtf: false, fromVmxRoot: false, entryFailure: true });
  vmcs.set32(Field.VM_EXIT_REASON, reason);
  vmcs.set(Field.EXIT_QUALIFICATION, qualification);
  return reason;
}
