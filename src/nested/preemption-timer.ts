// Emulated VMX-preemption timer for L2 (vmcs12 "activate VMX-preemption timer"): deadline and remaining-value
// arithmetic over L1's TSC, which in turtles is an instruction count. The timer decrements each time bit `rate` of the
// TSC changes, so value v armed at TSC t expires when (TSC >> rate) reaches v + (t >> rate) (SDM 25.5.1).
// Must not: read clocks or VMCS storage; reference §5.5, SDM 25.5.1, 27.3.4 (saving the timer value).
import { Pin, ExitCtl } from '../cpu/generated/controls.js';
import { Deviation, type L0Profile } from './profile.js';

/** Rate KVM advertises to L1 (IA32_VMX_MISC[4:0] = 5). */
export const KVM_PREEMPTION_TIMER_RATE = 5;

/** Deadline in units of (TSC >> rate), set on the first entry after VMLAUNCH/VMRESUME. */
export function preemptionDeadline(timerValue12: number, l1Tsc: bigint, rate = KVM_PREEMPTION_TIMER_RATE): bigint {
  return BigInt(timerValue12 >>> 0) + (l1Tsc >> BigInt(rate));
}

/**
 * Timer value left at `l1Tsc` (0 once expired); always fits the 32-bit field. The arithmetic is modulo the TSC's
 * 2^64 (the TSC can wrap after L2 writes IA32_TSC): the timer never holds more than 2^32 − 1, so a larger
 * difference means the deadline has passed.
 */
export function preemptionRemaining(deadline: bigint, l1Tsc: bigint, rate = KVM_PREEMPTION_TIMER_RATE): number {
  const left = BigInt.asUintN(64 - rate, deadline - (l1Tsc >> BigInt(rate)));
  return left > 0xffff_ffffn ? 0 : Number(left);
}

/** TSC increments from `tsc` until the timer reaches 0 (0 when it already has): to the next 2^rate boundary, then whole periods. */
export function preemptionTicksLeft(deadline: bigint, tsc: bigint, rate = KVM_PREEMPTION_TIMER_RATE): bigint {
  const left = BigInt(preemptionRemaining(deadline, tsc, rate));
  if (left === 0n) return 0n;
  const r = BigInt(rate);
  return (left << r) - (tsc & ((1n << r) - 1n));
}

/**
 * The deadline after L2 wrote the TSC from `before` to `written` (WRMSR IA32_TSC, emulated by L0): the timer counts
 * only increments (SDM 25.5.1), so the value left is kept and the deadline moves with the TSC (KVM's timer is a host
 * timer that TSC writes do not touch either).
 */
export function preemptionDeadlineAfterTscWrite(deadline: bigint, before: bigint, written: bigint, rate = KVM_PREEMPTION_TIMER_RATE): bigint {
  const r = BigInt(rate);
  return BigInt.asUintN(64 - rate, deadline - (before >> r) + (BigInt.asUintN(64, written) >> r));
}

/** The timer has counted down to 0 (a value of 0 expires before any L2 instruction). */
export function preemptionExpired(deadline: bigint, l1Tsc: bigint, rate = KVM_PREEMPTION_TIMER_RATE): boolean {
  return preemptionRemaining(deadline, l1Tsc, rate) === 0;
}

/** vmcs12 activates the timer for L2. */
export function vmcs12UsesPreemptionTimer(pin12: number): boolean {
  return (pin12 & Pin.ACTIVATE_VMX_PREEMPTION_TIMER) !== 0;
}

/**
 * Value to store in vmcs12 VMX_PREEMPTION_TIMER_VALUE at a nested VM exit, or null to leave the field unchanged.
 * SDM 27.3.4: saved when "save VMX-preemption timer value" is 1 (a timer exit saves 0). The kvm profile does not
 * save while the nested VM entry is still pending (N6).
 */
export function savedPreemptionTimerValue(pin12: number, exit12: number, deadline: bigint | null, l1Tsc: bigint, nestedRunPending: boolean, profile: L0Profile, rate = KVM_PREEMPTION_TIMER_RATE): number | null {
  if (!vmcs12UsesPreemptionTimer(pin12) || (exit12 & ExitCtl.SAVE_VMX_PREEMPTION_TIMER_VALUE) === 0) return null;
  if (nestedRunPending && profile.deviations.has(Deviation.PREEMPTION_TIMER_NOT_SAVED_ON_PENDING_ENTRY)) return null;
  if (deadline === null) return null;
  return preemptionRemaining(deadline, l1Tsc, rate);
}
