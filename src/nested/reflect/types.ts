// Inputs and outputs of the reflection decision: the hardware exit from vmcs02, L0's own interception needs, and
// the callbacks through which L2 registers and L1 memory (vmcs12's bitmaps) are read.
// Must not: contain decision logic. Reference: nested-vmx.md §6.1–6.3.
import type { L0Profile } from '../profile.js';

/** A VM exit from vmcs02 as the hardware reported it (values read from vmcs02's exit-information fields). */
export interface HardwareExit {
  /** VM_EXIT_REASON: basic reason in bits 15:0, flags above (bit 31 = VM-entry failure). */
  readonly reason: number;
  readonly qualification: bigint;
  readonly intrInfo: number;
  readonly intrErrorCode: number;
  readonly idtVectoringInfo: number;
  readonly idtVectoringErrorCode: number;
  readonly instructionLength: number;
  readonly instructionInfo: number;
  readonly guestLinearAddress: bigint;
  readonly guestPhysicalAddress: bigint;
}

/** Why L0 itself intercepts events while L2 runs (KVM nested_vmx_l0_wants_exit inputs). */
export interface L0ExitPolicy {
  /** L0 must see every #PF (shadow paging, or L2's MAXPHYADDR smaller than the host's). */
  readonly needsPfIntercept: boolean;
  /** A host async page fault is pending for this vCPU. */
  readonly asyncPfPending: boolean;
  /** Host debugging of the guest: single-step or hardware breakpoints (#DB is L0's). */
  readonly hostSingleStepOrHwBreakpoints: boolean;
  /** Host debugging with software breakpoints (#BP is L0's). */
  readonly hostSwBreakpoints: boolean;
  /** The guest cannot receive #AC (split-lock detection in the host). */
  readonly guestCannotReceiveAc: boolean;
  /** L0 exposes SGX to L1 (ENCLS exits may belong to L1). */
  readonly sgxExposedToL1: boolean;
  /** The exit is a Hyper-V L2 TLB-flush hypercall L0 handles (enlightened VMCS only). */
  readonly hypervTlbFlushHypercall: boolean;
}

export interface ReflectionContext {
  readonly profile: L0Profile;
  readonly l0: L0ExitPolicy;
  /** L2's general-purpose register `reg` (0 = RAX … 15 = R15) at the exit, as the instruction sees it (32 bits outside 64-bit mode). */
  readonly l2Gpr: (reg: number) => bigint;
  /** L2's value of an MSR that an exit rule needs (IA32_XSS for XSAVES/XRSTORS). */
  readonly l2Msr: (index: number) => bigint;
  /** Reads L1-physical memory (vmcs12's bitmaps); null when the bytes are not readable. */
  readonly readL1Memory: (gpa: bigint, size: number) => Uint8Array | null;
}

export interface ReflectionDecision {
  readonly reflect: boolean;
  /** l0Wants rule id when L0 keeps the exit, else the l1Wants rule id (whether it matched or not). */
  readonly rule: string;
  readonly handledBy: 'L0' | 'L1';
}

/** An L0-policy with no interception needs of its own beyond what L0 always owns. */
export function quietL0Policy(): L0ExitPolicy {
  return {
    needsPfIntercept: false, asyncPfPending: false, hostSingleStepOrHwBreakpoints: false, hostSwBreakpoints: false,
    guestCannotReceiveAc: false, sgxExposedToL1: false, hypervTlbFlushHypercall: false,
  };
}
