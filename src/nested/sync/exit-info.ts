// writeExitInfo12: the VM-exit information fields of vmcs12 for an exit L0 delivers to L1 (reflected or synthesized),
// including IDT-vectoring information for an event whose injection into L2 did not complete.
// Must not: mutate inputs (returns a new vmcs12), sync guest state (vmcs12-sync.ts) or load L1 state (host-state.ts).
// Reference: nested-vmx.md §7.3, §7.6 (KVM prepare_vmcs12, vmcs12_save_pending_event); SDM 27.2.1–27.2.4, 27.2.5.
import { Field } from '../../cpu/generated/vmcs-fields.js';
import { ExitReason } from '../../cpu/generated/exit-reasons.js';
import type { Vmcs } from '../../cpu/vmcs.js';
import { Deviation, type L0Profile } from '../profile.js';

export interface NestedExitInfo {
  /** Full exit reason: basic reason in bits 15:0, bit 31 for VM-entry failures (33, 34, 41). */
  readonly reason: number;
  readonly qualification: bigint;
  readonly intrInfo: number;
  readonly intrErrorCode: number;
  readonly instructionLength: number;
  readonly instructionInfo: number;
  readonly guestLinearAddress: bigint;
  readonly guestPhysicalAddress: bigint;
  /** Hardware IDT-vectoring information of the vmcs02 exit (used when no pendingInjection is given). */
  readonly idtVectoringInfo: number;
  readonly idtVectoringErrorCode: number;
  /** L0 built this exit itself (§6.4) rather than copying a hardware exit. */
  readonly synthesized: boolean;
}

/** An event L0 or L1 was injecting into L2 whose delivery did not complete. */
export interface PendingInjection {
  /** Interruption type: 0 external interrupt, 2 NMI, 3 hardware exception, 4 software interrupt, 5 privileged software exception, 6 software exception. */
  readonly type: 0 | 2 | 3 | 4 | 5 | 6;
  readonly vector: number;
  readonly errorCode: number | null;
  /** Instruction length of a software event (types 4–6), reported in VM_EXIT_INSTRUCTION_LEN. */
  readonly instructionLength: number;
}

export interface ExitInfoResult {
  readonly vmcs12: Vmcs;
  readonly written: string[];
  /** The exit makes vmcs12's launch state "launched" (not for VM-entry failures). */
  readonly launched: boolean;
}

const VALID = 0x8000_0000;
const ERR_VALID = 1 << 11;
const ENTRY_FAILURE = 0x8000_0000;
const VEC_DF = 8;

export function writeExitInfo12(vmcs12: Vmcs, exit: NestedExitInfo, pendingInjection: PendingInjection | null, profile: L0Profile): ExitInfoResult {
  const out = vmcs12.clone();
  const written: string[] = [];
  const put32 = (enc: number, n: string, v: number): void => {
    out.set32(enc, v >>> 0);
    written.push(n);
  };
  const put = (enc: number, n: string, v: bigint): void => {
    out.set(enc, v);
    written.push(n);
  };
  put32(Field.VM_EXIT_REASON, 'VM_EXIT_REASON', exit.reason);
  put(Field.EXIT_QUALIFICATION, 'EXIT_QUALIFICATION', exit.qualification);
  // A VM-entry failure writes only the reason and the qualification (SDM 26.7, reference §7.6).
  if ((exit.reason & ENTRY_FAILURE) !== 0) return { vmcs12: out, written, launched: false };

  // The injection the entry asked for has been consumed (delivered, or captured as IDT-vectoring below).
  put32(Field.VM_ENTRY_INTR_INFO_FIELD, 'VM_ENTRY_INTR_INFO_FIELD', vmcs12.lo(Field.VM_ENTRY_INTR_INFO_FIELD) & ~VALID);

  const intrValid = (exit.intrInfo & VALID) !== 0;
  put32(Field.VM_EXIT_INTR_INFO, 'VM_EXIT_INTR_INFO', exit.intrInfo);
  if (intrValid && (exit.intrInfo & ERR_VALID) !== 0) {
    // kvm (N19): synthesized exception exits carry only error-code bits 15:0.
    const ec = exit.synthesized && profile.deviations.has(Deviation.EXCEPTION_ERROR_CODE_16BIT) ? exit.intrErrorCode & 0xffff : exit.intrErrorCode;
    put32(Field.VM_EXIT_INTR_ERROR_CODE, 'VM_EXIT_INTR_ERROR_CODE', ec);
  }
  put32(Field.VM_EXIT_INSTRUCTION_LEN, 'VM_EXIT_INSTRUCTION_LEN', exit.instructionLength);
  put32(Field.VMX_INSTRUCTION_INFO, 'VMX_INSTRUCTION_INFO', exit.instructionInfo);
  put(Field.GUEST_LINEAR_ADDRESS, 'GUEST_LINEAR_ADDRESS', exit.guestLinearAddress);

  const basic = exit.reason & 0xffff;
  // Triple faults and #DF exits never report vectoring information (SDM 27.2.4).
  const isDf = basic === ExitReason.EXCEPTION_NMI && intrValid && (exit.intrInfo & 0xff) === VEC_DF && ((exit.intrInfo >>> 8) & 7) === 3;
  if (basic === ExitReason.TRIPLE_FAULT || isDf) {
    put32(Field.IDT_VECTORING_INFO_FIELD, 'IDT_VECTORING_INFO_FIELD', 0);
  } else if (pendingInjection !== null) {
    const p = pendingInjection;
    const info = VALID | (p.type << 8) | (p.vector & 0xff) | (p.errorCode !== null ? ERR_VALID : 0);
    put32(Field.IDT_VECTORING_INFO_FIELD, 'IDT_VECTORING_INFO_FIELD', info);
    if (p.errorCode !== null) put32(Field.IDT_VECTORING_ERROR_CODE, 'IDT_VECTORING_ERROR_CODE', p.errorCode);
    // A software event is re-executed by re-injection with its length (SDM 27.2.5).
    if (p.type === 4 || p.type === 5 || p.type === 6) out.set32(Field.VM_EXIT_INSTRUCTION_LEN, p.instructionLength);
  } else if ((exit.idtVectoringInfo & VALID) !== 0) {
    put32(Field.IDT_VECTORING_INFO_FIELD, 'IDT_VECTORING_INFO_FIELD', exit.idtVectoringInfo);
    if (exit.idtVectoringInfo & ERR_VALID) put32(Field.IDT_VECTORING_ERROR_CODE, 'IDT_VECTORING_ERROR_CODE', exit.idtVectoringErrorCode);
  } else {
    put32(Field.IDT_VECTORING_INFO_FIELD, 'IDT_VECTORING_INFO_FIELD', 0);
  }

  // Only EPT violations and misconfigurations write the guest-physical address (SDM 27.2.1); others leave it.
  if (basic === ExitReason.EPT_VIOLATION || basic === ExitReason.EPT_MISCONFIG) put(Field.GUEST_PHYSICAL_ADDRESS, 'GUEST_PHYSICAL_ADDRESS', exit.guestPhysicalAddress);
  return { vmcs12: out, written, launched: true };
}
