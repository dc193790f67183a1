// Priority of pending nested events while L2 runs (reference §6.5, KVM vmx_check_nested_events; SDM 6.9 "Priority
// among concurrent events" and 25.2): picks the one event to act on now and whether it becomes a VM exit to L1
// (synthesized), an injection into L2, something L0 handles, or nothing. Rule ids are the `priority` rows of
// schemas/nested/reflection.json. Must not: change state.
import { Field } from '../../cpu/generated/vmcs-fields.js';
import { ExitReason } from '../../cpu/generated/exit-reasons.js';
import { ExitCtl, Pin } from '../../cpu/generated/controls.js';
import type { Vmcs } from '../../cpu/vmcs.js';
import { Deviation, type L0Profile } from '../profile.js';
import { vmcs12InterceptsException } from './predicates.js';

const DR6_BD = 1n << 13n;
const VEC_DB = 1;

export interface PendingException {
  readonly vector: number;
  /** Error code, or null when the exception has none. */
  readonly errorCode: number | null;
  /** For #DB: the DR6-like payload (B0–B3, BD, BS, …). */
  readonly payload: bigint;
  /** For #DB: trap-like (data breakpoint, single step), as the CPU would classify it. */
  readonly trapLike: boolean;
  /** Hardware-exception type 3, or 6 for INT3/INTO. */
  readonly type: 3 | 6;
}

export interface PendingNestedEvents {
  /** A VMLAUNCH/VMRESUME emulation has not reached L2 yet: nothing may be delivered. */
  readonly nestedRunPending: boolean;
  /** An event must be re-injected into L2 first; only exceptions may go ahead of it. */
  readonly reinjectionPending: boolean;
  readonly init: boolean;
  /** SIPI vector pending, or null. */
  readonly sipi: number | null;
  readonly l2WaitForSipi: boolean;
  readonly exception: PendingException | null;
  readonly mtf: boolean;
  readonly preemptionTimerExpired: boolean;
  readonly smi: boolean;
  readonly nmi: boolean;
  readonly l2NmiBlocked: boolean;
  /** Vector of a pending maskable interrupt for L1/L2, or null. */
  readonly interrupt: number | null;
  readonly l2InterruptBlocked: boolean;
  readonly postedInterrupt: boolean;
}

export type NestedEventAction =
  | { readonly kind: 'blocked' | 'none' | 'l0'; readonly rule: string }
  | { readonly kind: 'exit'; readonly rule: string; readonly reason: number; readonly qualification: bigint; readonly intrInfo: number; readonly intrErrorCode: number }
  | { readonly kind: 'inject-l2'; readonly rule: string; readonly intrInfo: number; readonly errorCode: number | null };

const VALID = 0x8000_0000;
const ERR_VALID = 1 << 11;

/** Whether a pending #DB is trap-like: as given on hardware; kvm infers it from the payload (N20: all but BD). */
function debugIsTrapLike(e: PendingException, profile: L0Profile): boolean {
  if (profile.deviations.has(Deviation.PENDING_DB_MTF_PRIORITY)) return (e.payload & ~DR6_BD) !== 0n;
  return e.trapLike;
}

function exceptionAction(rule: string, e: PendingException, vmcs12: Vmcs, profile: L0Profile): NestedEventAction {
  const info = VALID | (e.type << 8) | e.vector | (e.errorCode !== null ? ERR_VALID : 0);
  if (vmcs12InterceptsException(vmcs12, e.vector, e.errorCode ?? 0, profile)) {
    // §6.3.4: #DB reports its DR6-like payload as the qualification (SDM 27.2.1); #PF's CR2 is supplied by the caller.
    const qual = e.vector === VEC_DB ? e.payload : 0n;
    return { kind: 'exit', rule, reason: ExitReason.EXCEPTION_NMI, qualification: qual, intrInfo: info >>> 0, intrErrorCode: e.errorCode ?? 0 };
  }
  return { kind: 'inject-l2', rule, intrInfo: info >>> 0, errorCode: e.errorCode };
}

/** The nested event to act on now (highest priority first), per §6.5. */
export function nextNestedEvent(p: PendingNestedEvents, vmcs12: Vmcs, profile: L0Profile): NestedEventAction {
  if (p.nestedRunPending) return { kind: 'blocked', rule: 'priority.blocked-by-pending-entry' };
  const ex = p.exception;
  const trapDb = ex !== null && ex.vector === VEC_DB && debugIsTrapLike(ex, profile);
  if (!p.reinjectionPending) {
    if (p.init && !p.l2WaitForSipi) return exit('priority.init-sipi', ExitReason.INIT_SIGNAL, 0n);
    if (p.sipi !== null && p.l2WaitForSipi) return exit('priority.init-sipi', ExitReason.SIPI_SIGNAL, BigInt(p.sipi & 0xff));
  }
  if (ex !== null && !trapDb) return exceptionAction('priority.fault-exception', ex, vmcs12, profile);
  if (p.reinjectionPending) {
    if (ex !== null) return exceptionAction('priority.trap-debug', ex, vmcs12, profile);
    return { kind: 'blocked', rule: 'priority.blocked-by-reinjection' };
  }
  if (p.mtf) return exit('priority.mtf', ExitReason.MONITOR_TRAP_FLAG, 0n);
  if (ex !== null) return exceptionAction('priority.trap-debug', ex, vmcs12, profile);
  if (p.preemptionTimerExpired) return exit('priority.preemption-timer', ExitReason.PREEMPTION_TIMER, 0n);
  if (p.smi) return { kind: 'l0', rule: 'priority.smi' };
  const pin12 = vmcs12.lo(Field.PIN_BASED_VM_EXEC_CONTROL);
  if (p.nmi) {
    // With NMI exiting the NMI causes the exit whatever L2's NMI blocking (KVM vmx_nmi_blocked).
    if (pin12 & Pin.NMI_EXITING) return { kind: 'exit', rule: 'priority.nmi', reason: ExitReason.EXCEPTION_NMI, qualification: 0n, intrInfo: (VALID | (2 << 8) | 2) >>> 0, intrErrorCode: 0 };
    if (!p.l2NmiBlocked) return { kind: 'inject-l2', rule: 'priority.nmi', intrInfo: (VALID | (2 << 8) | 2) >>> 0, errorCode: null };
  }
  if (p.interrupt !== null) {
    if (pin12 & Pin.EXTERNAL_INTERRUPT_EXITING) {
      // Acknowledge-on-exit: the vector is reported and the interrupt consumed; otherwise it stays pending (info 0).
      const ack = (vmcs12.lo(Field.VM_EXIT_CONTROLS) & ExitCtl.ACKNOWLEDGE_INTERRUPT_ON_EXIT) !== 0;
      return { kind: 'exit', rule: 'priority.interrupt', reason: ExitReason.EXTERNAL_INTERRUPT, qualification: 0n, intrInfo: ack ? (VALID | (p.interrupt & 0xff)) >>> 0 : 0, intrErrorCode: 0 };
    }
    if (!p.l2InterruptBlocked) return { kind: 'inject-l2', rule: 'priority.interrupt', intrInfo: (VALID | (p.interrupt & 0xff)) >>> 0, errorCode: null };
  }
  if (p.postedInterrupt) return { kind: 'l0', rule: 'priority.posted-interrupt' };
  return { kind: 'none', rule: 'priority.none' };
}

function exit(rule: string, reason: number, qualification: bigint): NestedEventAction {
  return { kind: 'exit', rule, reason, qualification, intrInfo: 0, intrErrorCode: 0 };
}

/** Every rule id nextNestedEvent can return (checked against reflection.json's priority rows). */
export const PRIORITY_RULES = [
  'priority.blocked-by-pending-entry', 'priority.blocked-by-reinjection', 'priority.init-sipi', 'priority.fault-exception', 'priority.mtf', 'priority.trap-debug',
  'priority.preemption-timer', 'priority.smi', 'priority.nmi', 'priority.interrupt', 'priority.posted-interrupt', 'priority.none',
] as const;
