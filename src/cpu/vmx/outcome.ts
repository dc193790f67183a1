// Result values of VMX instructions, VM entries and VM exits, and the three RFLAGS result patterns.
// Must not: perform any VMX check; the processor decides, this module only names and applies outcomes.
// SDM Vol. 3C 30.2 (VMsucceed / VMfailInvalid / VMfailValid conventions); reference §2.1.
import type { CpuState } from '../state.js';

export const Vector = { DE: 0, DB: 1, NMI: 2, BP: 3, UD: 6, DF: 8, TS: 10, NP: 11, SS: 12, GP: 13, PF: 14, MC: 18 } as const;

/** A fault raised instead of completing the instruction; RFLAGS are untouched. */
export interface VmxFault {
  readonly kind: 'fault';
  readonly vector: number;
  readonly errorCode?: number;
  /** For #PF: the faulting linear address (the interpreter loads CR2 when it delivers the fault). */
  readonly address?: bigint;
}

export const UD: VmxFault = { kind: 'fault', vector: Vector.UD };
export const GP0: VmxFault = { kind: 'fault', vector: Vector.GP, errorCode: 0 };
export const SS0: VmxFault = { kind: 'fault', vector: Vector.SS, errorCode: 0 };

/** What INVEPT/INVVPID asked to invalidate; the processor keeps no TLB, so the caller applies it. */
export type TlbInvalidation =
  | { readonly kind: 'ept-single-context'; readonly eptp: bigint }
  | { readonly kind: 'ept-all-context' }
  | { readonly kind: 'vpid-individual-address'; readonly vpid: number; readonly linearAddress: bigint }
  | { readonly kind: 'vpid-single-context'; readonly vpid: number }
  | { readonly kind: 'vpid-all-context' }
  | { readonly kind: 'vpid-single-context-retaining-globals'; readonly vpid: number };

/** An event VM entry injects (SDM 26.6); the interpreter delivers it through the guest IDT. */
export interface InjectedEvent {
  readonly vector: number;
  /** Interruption type (exit-info IntrType). */
  readonly type: number;
  readonly errorCode?: number;
  /** VM-entry instruction length, for software interrupts and software/privileged-software exceptions. */
  readonly instructionLength?: number;
}

export interface VmEntryOutcome {
  readonly kind: 'vm-entry';
  readonly instruction: 'vmlaunch' | 'vmresume';
  /** The guest (L2) state after VM entry; the interpreter runs it and passes it back to vmExit. */
  readonly guest: CpuState;
  /** Vectored event to deliver before the first guest instruction (types 0–6). */
  readonly injected?: InjectedEvent;
  /** Type 7 vector 0 injection: an MTF VM exit is pending after entry (SDM 26.6.2). */
  readonly pendingMtf: boolean;
  /** PDPTEs loaded for PAE paging (from GUEST_PDPTRn with EPT, else from memory at CR3); undefined otherwise. */
  readonly pdptes?: readonly bigint[];
  /** VMX-preemption timer value loaded, when the timer is activated. */
  readonly preemptionTimer?: number;
}

/** VM entry failed after the basic checks; host state was loaded and L1 continues at HOST_RIP. */
export interface EntryFailureExitOutcome {
  readonly kind: 'entry-failure-exit';
  /** Full exit-reason value (bit 31 set). */
  readonly exitReason: number;
  readonly qualification: bigint;
  /** Catalogue check id that failed (undefined for MSR-load failures found by the loader itself). */
  readonly checkId?: string;
}

/** A VMX abort (SDM 27.7): indicator written at offset 4 of the current VMCS region; the processor shut down. */
export interface VmxAbortOutcome {
  readonly kind: 'vmx-abort';
  readonly indicator: number;
}

export type VmxInstrOutcome =
  | { readonly kind: 'vmsucceed'; readonly value?: bigint; readonly invalidation?: TlbInvalidation }
  | { readonly kind: 'vmfail-invalid' }
  | { readonly kind: 'vmfail-valid'; readonly error: number }
  | VmxFault
  /** Executed in VMX non-root operation: the instruction causes a VM exit with this basic reason (the caller
   * supplies qualification/instruction information and calls vmExit). */
  | { readonly kind: 'vm-exit'; readonly reason: number }
  | VmEntryOutcome
  | EntryFailureExitOutcome
  | VmxAbortOutcome;

/** Result of VmxProcessor.vmExit. */
export type VmExitOutcome = { readonly kind: 'host'; readonly state: CpuState } | VmxAbortOutcome;

// CF, PF, AF, ZF, SF, OF: the arithmetic flags the VMX conventions define.
const CF = 1n << 0n;
const ZF = 1n << 6n;
export const VMX_RESULT_FLAGS = (1n << 0n) | (1n << 2n) | (1n << 4n) | (1n << 6n) | (1n << 7n) | (1n << 11n);

/** VMsucceed: CF = PF = AF = ZF = SF = OF = 0. */
export function flagsSucceed(rflags: bigint): bigint {
  return rflags & ~VMX_RESULT_FLAGS;
}

/** VMfailInvalid: CF = 1, the others 0. */
export function flagsFailInvalid(rflags: bigint): bigint {
  return (rflags & ~VMX_RESULT_FLAGS) | CF;
}

/** VMfailValid: ZF = 1, the others 0. */
export function flagsFailValid(rflags: bigint): bigint {
  return (rflags & ~VMX_RESULT_FLAGS) | ZF;
}

/** Which result pattern RFLAGS shows (for property tests and observers); undefined if none matches. */
export function flagsPattern(rflags: bigint): 'succeed' | 'fail-invalid' | 'fail-valid' | undefined {
  const f = rflags & VMX_RESULT_FLAGS;
  return f === 0n ? 'succeed' : f === CF ? 'fail-invalid' : f === ZF ? 'fail-valid' : undefined;
}
