// Small shared pieces of the non-root rules: decision constructors, the privilege/mode predicates that
// decide fault-vs-exit priority, and the per-call inputs a rule may need beyond instruction and state.
// Must not: encode exit information beyond the generic instruction exit. SDM Vol. 3C 25.1.1.
import type { CpuState } from '../state.js';
import type { DecodedInstr } from '../interp/decoded.js';
import type { NonRootDecision, NonRootExit } from './types.js';

export const EXECUTE: NonRootDecision = { kind: 'execute' };
export const UD: NonRootDecision = { kind: 'fault', vector: 6 };
export const GP0: NonRootDecision = { kind: 'fault', vector: 13, errorCode: 0 };

/** Inputs some rules need that are neither VMCS nor register state (the interpreter supplies them). */
export interface RuleInputs {
  /** LMSW m16: the source operand, already read (operand-fetch faults precede the exit, SDM 25.1.1). */
  readonly memSource?: bigint;
  /** MWAIT: address-range monitoring hardware is armed (qualification bit 0). */
  readonly monitorArmed?: boolean;
  /** PAUSE-loop exiting: the current PAUSE loop has exceeded PLE_Window (caller tracks PAUSE timing). */
  readonly pauseLoopExceeded?: boolean;
}

export const NO_INPUTS: RuleInputs = {};

/** Fault-like VM exit caused by executing `instr` (instruction length always recorded, SDM 27.2.5). */
export function instrExit(reason: number, instr: DecodedInstr, qualification = 0n, extra: Partial<NonRootExit> = {}): NonRootDecision {
  return { kind: 'exit', exit: { reason, qualification, instructionLength: instr.length, ...extra } };
}

/** Current privilege level; 0 in real-address mode regardless of SS.DPL. */
export function cplOf(state: CpuState): number {
  if (!state.protectedMode) return 0;
  if (state.v8086) return 3;
  return state.cpl;
}

/** Privileged instructions: #GP(0) when CPL > 0 (also covers virtual-8086 mode, CPL 3). */
export function privileged(state: CpuState): boolean {
  return cplOf(state) > 0;
}

/** VMX-instruction #UD conditions that precede the VM exit: CR0.PE = 0, RFLAGS.VM = 1, compatibility mode. */
export function vmxInstructionUd(state: CpuState): boolean {
  return !state.protectedMode || state.v8086 || state.compatibilityMode;
}

export function cr4(state: CpuState, bit: bigint): boolean {
  return (state.cr4 & bit) !== 0n;
}

export function cr0(state: CpuState, bit: bigint): boolean {
  return (state.cr0 & bit) !== 0n;
}

/** Test bit `n` of a bitmap page at `base` through the env; unreadable bytes count as set (exit). */
export function bitmapBit(read: (addr: bigint) => number | undefined, base: bigint, n: number): boolean {
  const byte = read(base + BigInt(n >>> 3));
  if (byte === undefined) return true;
  return ((byte >> (n & 7)) & 1) === 1;
}
