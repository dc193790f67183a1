// The contract between the dispatcher and instruction handlers: a handler executes one instruction on an
// ExecContext and returns an Outcome value (faults and exits are values, never throws).
// Must not: contain instruction semantics. SDM Vol. 3A 6.5 (faults vs traps: what RIP an outcome implies).
import type { DecodedInstr } from './decoded.js';
import type { ExecContext, Fault } from './exec-context.js';

export type Outcome =
  /** Completed; RIP := ctx.nextRip. */
  | undefined
  /** A fault (RIP stays at the instruction) or a VM exit raised while executing (`{ t: 'exit' }`). */
  | Fault
  /** Not implemented by the interpreter: nothing was changed. */
  | { readonly t: 'unsupported' }
  /** INT n / INT3 / INTO / INT1: deliver a software event with the next RIP as return address. */
  | { readonly t: 'soft-int'; readonly vector: number; readonly type: number }
  /** HLT (or MWAIT) completed: RIP advances and the processor enters the HLT activity state. */
  | { readonly t: 'halt' }
  /** One iteration of a REP string instruction done and more remain: RIP stays. */
  | { readonly t: 'repeat' }
  /** A task switch (far JMP/CALL to a TSS or task gate, IRET with NT): exits in VMX non-root operation. */
  | { readonly t: 'task-switch'; readonly selector: number; readonly source: number };

export type Handler = (x: ExecContext, i: DecodedInstr) => Outcome;

export const UNSUPPORTED: Outcome = { t: 'unsupported' };
