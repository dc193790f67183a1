// Values the non-root rule set produces: a VM exit with the information a real CPU would record (reason,
// qualification, addresses, instruction length/information, interruption and IDT-vectoring information).
// Must not: write a VMCS or load host state; src/cpu/vmx owns turning a NonRootExit into a VM exit.
// SDM Vol. 3C 27.2 (recording VM-exit information), reference §4.

/** One VM exit as decided in VMX non-root operation. Absent optional fields are "not defined for this exit". */
export interface NonRootExit {
  /** Basic exit reason (ExitReason.*); bit 31 etc. are added by the VM-exit code. */
  readonly reason: number;
  /** Exit qualification (0n where the SDM defines none). */
  readonly qualification: bigint;
  /** Guest-linear address (string I/O, EPT violations with a linear address, …). */
  readonly guestLinearAddress?: bigint;
  /** Guest-physical address (EPT violation / misconfiguration). */
  readonly guestPhysicalAddress?: bigint;
  /** VM-exit instruction length (exits due to instruction execution and software-event delivery). */
  readonly instructionLength?: number;
  /** VM-exit instruction-information field (SDM 27.2.5), when defined for the exit. */
  readonly instructionInfo?: number;
  /** VM-exit interruption information (exception/NMI exits, external interrupts with ack-on-exit). */
  readonly interruptionInfo?: number;
  readonly interruptionErrorCode?: number;
  /** IDT-vectoring information: the event being delivered when the exit occurred. */
  readonly idtVectoringInfo?: number;
  readonly idtVectoringErrorCode?: number;
}

/** Outcome of evaluating one instruction under the VMCS controls. */
export type NonRootDecision =
  /** The instruction causes a VM exit (fault-like unless the reason is trap-like). */
  | { readonly kind: 'exit'; readonly exit: NonRootExit }
  /** A fault that has priority over any VM exit (SDM 25.1.1) or that the controls make the instruction raise (#UD). */
  | { readonly kind: 'fault'; readonly vector: number; readonly errorCode?: number }
  /** No VM exit: the instruction executes (with the non-root behaviour changes of SDM 25.3). */
  | { readonly kind: 'execute' };

/** Interruption-information types and the encoder come from the shared exit-info codecs (SDM 24.8.3 / 27.2.2). */
export { IntrType, interruptionInfo } from '../exit-info/interruption-info.js';
import { EXCEPTIONS_WITH_ERROR_CODE } from '../exit-info/interruption-info.js';

/** Exception vectors by mnemonic. */
export const Vec = {
  DE: 0, DB: 1, NMI: 2, BP: 3, OF: 4, BR: 5, UD: 6, NM: 7, DF: 8, TS: 10, NP: 11, SS: 12, GP: 13, PF: 14,
  MF: 16, AC: 17, MC: 18, XM: 19, VE: 20, CP: 21,
} as const;

/** Vectors whose hardware exceptions push an error code (SDM 6.13). */
export function exceptionHasErrorCode(vector: number): boolean {
  return EXCEPTIONS_WITH_ERROR_CODE.has(vector);
}
