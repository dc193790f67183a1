// Values the non-root rule set produces: a VM exit with the information a real CPU would record (reason,
// qualification, addresses, instruction length/information, interruption and IDT-vectoring information).
// Must not: write a VMCS or load host state; src/cpu/vmx owns turning a NonRootExit into a VM exit.
// SDM Vol. 3C 27.2 (recording VM-exit information), reference §4.

import type { ExitRecord } from '../exit-info/exit-record.js';

/** One VM exit as decided in VMX non-root operation: the shared exit record with the qualification always given. */
export type NonRootExit = ExitRecord & { readonly qualification: bigint };

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
