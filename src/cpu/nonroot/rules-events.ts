// Rules for exits not caused by an instruction's own execution: exceptions (exception bitmap with the #PF
// error-code mask/match rule), NMIs and external interrupts (pin controls, acknowledge-on-exit), interrupt-
// and NMI-window exiting, the monitor trap flag, the VMX-preemption timer, TPR-below-threshold, task switches
// and triple faults. Must not: deliver events (the interpreter does). SDM Vol. 3C 25.2, 25.5.1, 25.5.2,
// 26.7.5–26.7.8, 27.2.2, 29.1.2; reference §4.3.5, §6.3.4.
import { ExitCtl, Pin, Primary, Secondary } from '../generated/controls.js';
import { ExitReason } from '../generated/exit-reasons.js';
import { encodeTaskSwitch } from '../exit-info/qualifications.js';
import { Rflags, type CpuState } from '../state.js';
import type { NonRootControls } from './controls.js';
import { IntrType, interruptionInfo, type NonRootExit } from './types.js';

export const Interruptibility = { STI: 1, MOV_SS: 2, SMI: 4, NMI: 8 } as const;

/** Exception bitmap rule: vector v ≠ 14 exits iff EB[v]; #PF exits iff EB[14] XOR ((PFEC & mask) ≠ match). */
export function exceptionExits(c: NonRootControls, vector: number, errorCode = 0): boolean {
  const eb = ((c.exceptionBitmap >>> vector) & 1) === 1;
  if (vector !== 14) return eb;
  const matches = ((errorCode & c.pfecMask) >>> 0) === c.pfecMatch >>> 0;
  return eb === matches;
}

/** Details of an exception that causes an exception-or-NMI exit. */
export interface ExceptionExitInput {
  readonly vector: number;
  /** IntrType: 3 hardware, 5 privileged software (INT1), 6 software (INT3/INTO). */
  readonly type: number;
  readonly errorCode?: number;
  /** #PF linear address or #DB DR6-style bits (SDM 27.2.1); 0 otherwise. */
  readonly qualification?: bigint;
  /** Length of INT3/INTO/INT1 (software-exception types record it). */
  readonly instructionLength?: number;
  /** The fault happened while IRET was unblocking NMIs (interruption info bit 12). */
  readonly nmiUnblockingIret?: boolean;
}

export function exceptionExit(e: ExceptionExitInput): NonRootExit {
  const hasEc = e.errorCode !== undefined;
  const exit: NonRootExit = {
    reason: ExitReason.EXCEPTION_NMI,
    qualification: e.qualification ?? 0n,
    interruptionInfo: interruptionInfo(e.vector, e.type, hasEc, e.nmiUnblockingIret ?? false),
    ...(hasEc ? { interruptionErrorCode: e.errorCode! >>> 0 } : {}),
    ...(e.instructionLength !== undefined && (e.type === IntrType.SOFTWARE_EXCEPTION || e.type === IntrType.PRIVILEGED_SOFTWARE_EXCEPTION)
      ? { instructionLength: e.instructionLength }
      : {}),
  };
  return exit;
}

/** An NMI exits iff "NMI exiting" (pin bit 3); the exit reports vector 2, type NMI. */
export function nmiExits(c: NonRootControls): boolean {
  return (c.pin & Pin.NMI_EXITING) !== 0;
}

export function nmiExit(): NonRootExit {
  return { reason: ExitReason.EXCEPTION_NMI, qualification: 0n, interruptionInfo: interruptionInfo(2, IntrType.NMI, false) };
}

/** An unblocked external interrupt exits iff "external-interrupt exiting". */
export function externalInterruptExits(c: NonRootControls): boolean {
  return (c.pin & Pin.EXTERNAL_INTERRUPT_EXITING) !== 0;
}

/**
 * The exit for an external interrupt: with "acknowledge interrupt on exit" the interrupt is acknowledged and
 * its vector reported (valid, type 0); without it the interruption information is invalid (0) and the
 * interrupt stays pending.
 */
export function externalInterruptExit(c: NonRootControls, vector: number): { readonly exit: NonRootExit; readonly acknowledged: boolean } {
  const ack = (c.exitControls & ExitCtl.ACKNOWLEDGE_INTERRUPT_ON_EXIT) !== 0;
  return {
    exit: { reason: ExitReason.EXTERNAL_INTERRUPT, qualification: 0n, interruptionInfo: ack ? interruptionInfo(vector, IntrType.EXTERNAL_INTERRUPT, false) : 0 },
    acknowledged: ack,
  };
}

/** Maskable interrupts are unblocked: RFLAGS.IF = 1 and no blocking by STI or MOV SS. */
export function interruptsUnblocked(state: CpuState): boolean {
  return (state.rflags & Rflags.IF) !== 0n && (state.interruptibility & (Interruptibility.STI | Interruptibility.MOV_SS)) === 0;
}

/** Interrupt-window exit before the next instruction: control set and interrupts unblocked (SDM 26.7.5). */
export function interruptWindowExits(c: NonRootControls, state: CpuState): boolean {
  return (c.primary & Primary.INTERRUPT_WINDOW_EXITING) !== 0 && interruptsUnblocked(state);
}

/**
 * NMIs (or, with "virtual NMIs", virtual NMIs) are unblocked: no NMI blocking and no MOV-SS blocking. The SDM
 * lets STI blocking also hold NMIs off ("may"); this model does (as KVM's nmi_allowed does), so the window
 * and NMI delivery wait for the STI shadow to end.
 */
export function nmisUnblocked(state: CpuState): boolean {
  return (state.interruptibility & (Interruptibility.NMI | Interruptibility.MOV_SS | Interruptibility.STI)) === 0;
}

/** NMI-window exit: control set (only legal with virtual NMIs) and (virtual-)NMIs unblocked (SDM 26.7.6). */
export function nmiWindowExits(c: NonRootControls, state: CpuState): boolean {
  return (c.primary & Primary.NMI_WINDOW_EXITING) !== 0 && nmisUnblocked(state);
}

export function windowExit(nmi: boolean): NonRootExit {
  return { reason: nmi ? ExitReason.NMI_WINDOW : ExitReason.INTERRUPT_WINDOW, qualification: 0n };
}

export function mtfEnabled(c: NonRootControls): boolean {
  return (c.primary & Primary.MONITOR_TRAP_FLAG) !== 0;
}

/** The MTF exit is trap-like: guest RIP already points past the instruction (or at the handler). */
export function mtfExit(): NonRootExit {
  return { reason: ExitReason.MONITOR_TRAP_FLAG, qualification: 0n };
}

export function preemptionTimerActive(c: NonRootControls): boolean {
  return (c.pin & Pin.ACTIVATE_VMX_PREEMPTION_TIMER) !== 0;
}

/**
 * Decrements of the VMX-preemption timer while the TSC advanced from `before` to `after`: the timer counts
 * down each time bit `rate` of the TSC changes due to an increment, i.e. once per 2^rate TSC ticks (SDM 25.5.1).
 * `after` is `before` plus a small increment modulo 2^64: an increment that wraps the TSC still changes bit `rate`.
 */
export function preemptionTimerTicks(before: bigint, after: bigint, rate: number): bigint {
  const r = BigInt(rate);
  return BigInt.asUintN(64 - rate, (after >> r) - (before >> r));
}

export function preemptionTimerExit(): NonRootExit {
  return { reason: ExitReason.PREEMPTION_TIMER, qualification: 0n };
}

/**
 * TPR below threshold (trap-like, after MOV to CR8 / a VTPR write, and at VM entry): "use TPR shadow" set,
 * "virtual-interrupt delivery" clear, and TPR_THRESHOLD[3:0] > VTPR[7:4] (SDM 29.1.2).
 */
export function tprBelowThreshold(c: NonRootControls, vtpr: number): boolean {
  if (!(c.primary & Primary.USE_TPR_SHADOW)) return false;
  if (c.secondary & Secondary.VIRTUAL_INTERRUPT_DELIVERY) return false;
  return (c.tprThreshold & 0xf) > ((vtpr >> 4) & 0xf);
}

export function tprBelowThresholdExit(): NonRootExit {
  return { reason: ExitReason.TPR_BELOW_THRESHOLD, qualification: 0n };
}

/** Task-switch source (qualification bits 31:30). */
export const TaskSwitchSource = { CALL: 0, IRET: 1, JMP: 2, IDT_TASK_GATE: 3 } as const;

/** Task switches exit unconditionally; qualification = TSS selector | source << 30. */
export function taskSwitchExit(selector: number, source: number, instructionLength?: number): NonRootExit {
  const sources = ['call', 'iret', 'jmp', 'idt-task-gate'] as const;
  return {
    reason: ExitReason.TASK_SWITCH,
    qualification: encodeTaskSwitch({ selector: selector & 0xffff, source: sources[source & 3]! }),
    ...(instructionLength !== undefined ? { instructionLength } : {}),
  };
}

/** A triple fault in VMX non-root operation exits (reason 2); no IDT-vectoring information is recorded. */
export function tripleFaultExit(): NonRootExit {
  return { reason: ExitReason.TRIPLE_FAULT, qualification: 0n };
}
