// Page-modification logging for L2 emulated by L0 (vmcs02 runs with PML off, its index parked at FFFFh): the gate on
// L0's software walk of EPT12 logs each L2 GPA whose EPT12 dirty flag it sets into vmcs12's PML page and counts
// vmcs12's PML index down, and turns a flag update with the index outside 0–511 into the PML-full exit (reason 62)
// L0 gives L1 (SDM 29.3.6, 27.2.1; KVM nested_vmx_write_pml_buffer). Must not: walk EPT12 itself or touch vmcs02.
import { PageModificationLog } from '../../cpu/ept/pml.js';
import { ExitReason } from '../../cpu/generated/exit-reasons.js';
import { Secondary } from '../../cpu/generated/controls.js';
import { Field } from '../../cpu/generated/vmcs-fields.js';
import type { Vmcs } from '../../cpu/vmcs.js';
import { controlWord } from '../reflect/control-bits.js';
import type { HardwareExit } from '../reflect/types.js';
import type { NestedExitInfo } from '../sync/exit-info.js';

/** L1-physical memory as L0 writes it (the PML page vmcs12 names is an L1 address). */
export interface L1Writes {
  write(gpa: bigint, size: 1 | 2 | 4 | 8, value: bigint): boolean;
}

/** The PML gate for EPT12: vmcs12's PML index and address (the live vmcs12, read at each use), entries in L1 memory. */
export function pml12Gate(vmcs12: () => Vmcs, l1: L1Writes): PageModificationLog {
  return new PageModificationLog({
    readIndex: () => vmcs12().lo(Field.GUEST_PML_INDEX) & 0xffff,
    writeIndex: (i) => vmcs12().set(Field.GUEST_PML_INDEX, BigInt(i & 0xffff)),
    readAddress: () => vmcs12().get(Field.PML_ADDRESS) & ~0xfffn,
    writeEntry: (a, v) => void l1.write(a, 8, v),
  });
}

/** Whether a CPU running vmcs12 logs page modifications ("enable PML" needs "enable EPT", SDM 26.2.1.1). */
export function pml12Enabled(v12: Vmcs): boolean {
  const s = controlWord(v12, 'secondary');
  return (s & Secondary.ENABLE_PML) !== 0 && (s & Secondary.ENABLE_EPT) !== 0;
}

/** Whether IDT-vectoring information names a software interrupt or (privileged) software exception (SDM 24.9.3). */
function softwareEventVectoring(info: number): boolean {
  const type = (info >>> 8) & 7;
  return (info & 0x8000_0000) !== 0 && (type === 4 || type === 5 || type === 6);
}

/**
 * The PML-full exit L1 gets for the access behind an EPT02 violation: qualification bit 12 (NMI unblocking by IRET)
 * as the hardware reported it, IDT-vectoring information of the interrupted delivery, and no guest-linear/-physical
 * address (those keep vmcs12's values, as the CPU leaves them, SDM 27.2.1). The instruction length is defined only
 * when the exit interrupted delivery of a software interrupt or (privileged) software exception: it is then the
 * length of the INT n / INT3 / INTO / INT1 behind the event (SDM 27.2.5), which vmcs02's exit recorded in
 * `hw.instructionLength`; otherwise it keeps vmcs12's value.
 */
export function pmlFullExitToL1(hw: HardwareExit, v12: Vmcs): NestedExitInfo {
  const vectoring = hw.idtVectoringInfo >>> 0;
  return {
    reason: ExitReason.PML_FULL,
    qualification: hw.qualification & (1n << 12n),
    intrInfo: 0,
    intrErrorCode: 0,
    instructionLength: softwareEventVectoring(vectoring) ? hw.instructionLength : v12.lo(Field.VM_EXIT_INSTRUCTION_LEN),
    instructionInfo: v12.lo(Field.VMX_INSTRUCTION_INFO),
    guestLinearAddress: v12.get(Field.GUEST_LINEAR_ADDRESS),
    guestPhysicalAddress: v12.get(Field.GUEST_PHYSICAL_ADDRESS),
    idtVectoringInfo: vectoring,
    idtVectoringErrorCode: hw.idtVectoringErrorCode >>> 0,
    synthesized: true,
  };
}
