// Running a guest in VMX non-root operation until it exits: deliver the VM-entry injection, raise scheduled external
// events at their L2 step, step the interpreter until a VM exit, and stop at a step budget. Shared by the reference
// machine (vmcs12, EPT12 over L1 memory) and the nested machine (vmcs02, EPT02 over host memory).
// Must not: write a VMCS, load host state, know L0/L1, or allocate per L2 step. SDM Vol. 3C 26.6 (injection), 25.
import type { InjectedEvent } from '../vmx/outcome.js';
import type { Interpreter } from '../interp/interpreter.js';
import type { NonRootRuntime } from '../interp/runtime.js';
import type { EventRecord, GuestMemoryAccess, MemFetch, MemRead, MemWrite, AccessKind } from '../interp/types.js';
import type { NonRootExit } from '../nonroot/types.js';
import type { CpuState } from '../state.js';

/**
 * One external event in a machine's inputs, due before the L2 step with index `at`. L2 steps are counted over the
 * whole run, across VM entries, and only for architectural progress in non-root operation: an instruction (or REP
 * iteration) retired, an event delivered through L2's IDT, or one idle tick in HLT. A step that ends in a VM exit
 * does not count, nor does the delivery of a VM-entry injection, so an L0 that handles an exit itself and resumes L2
 * (re-injecting what it interrupted) keeps the same clock as the reference. An event due while L1 runs stays due
 * until L2 runs again. 'timer' is the platform interval timer: an external interrupt at `vector` (default 0x20).
 */
export type ScheduledEvent =
  | { readonly at: number; readonly kind: 'interrupt'; readonly vector: number }
  | { readonly at: number; readonly kind: 'nmi' }
  | { readonly at: number; readonly kind: 'timer'; readonly vector?: number }
  /** INIT, start-up IPI and SMI: what each does in non-root operation is in signals.ts. */
  | { readonly at: number; readonly kind: 'init' }
  | { readonly at: number; readonly kind: 'sipi'; readonly vector: number }
  | { readonly at: number; readonly kind: 'smi' };

export const DEFAULT_TIMER_VECTOR = 0x20;

/** The external-event schedule and the run's L2 step clock. Events with the same `at` are raised in input order. */
export class ExternalEvents {
  /** L2 steps taken so far in this run. */
  l2Steps = 0;
  /** Told of each event as it is raised, with the L2 step it is raised before (the recorder's `external` events). */
  onRaise: ((e: ScheduledEvent, step: number) => void) | undefined;
  private readonly events: readonly ScheduledEvent[];
  private next = 0;

  constructor(schedule: readonly ScheduledEvent[] = []) {
    // Stable sort by due step (Array.prototype.sort is stable).
    this.events = [...schedule].sort((a, b) => a.at - b.at);
  }

  /** Events not raised yet. */
  get pending(): number {
    return this.events.length - this.next;
  }

  /** Raise into `interp` every event due at the current step (interrupt vectors go to its IRR; NMIs, INIT, SIPI, SMI pend). */
  raiseDue(interp: Interpreter): void {
    const ev = this.events;
    while (this.next < ev.length && ev[this.next]!.at <= this.l2Steps) {
      const e = ev[this.next++]!;
      this.onRaise?.(e, this.l2Steps);
      switch (e.kind) {
        case 'nmi': interp.raiseNmi(); break;
        case 'init': interp.signals.raiseInit(); break;
        case 'sipi': interp.signals.raiseSipi(e.vector); break;
        case 'smi': interp.signals.raiseSmi(); break;
        default: interp.raiseInterrupt(e.kind === 'timer' ? (e.vector ?? DEFAULT_TIMER_VECTOR) : e.vector);
      }
    }
  }
}

/**
 * A GuestMemoryAccess that forwards to a target chosen per VM entry (direct L1-physical memory, or memory under an
 * EPT), so one Interpreter — with its pending-event state and decode cache — serves every entry.
 */
export class GuestMemoryPort implements GuestMemoryAccess {
  target: GuestMemoryAccess | null = null;

  private get t(): GuestMemoryAccess {
    const t = this.target;
    if (!t) throw new Error('turtles bug: guest memory used before a VM entry bound it');
    return t;
  }

  read(linear: bigint, size: number, kind: AccessKind): MemRead {
    return this.t.read(linear, size, kind);
  }

  write(linear: bigint, size: number, value: bigint, kind: AccessKind): MemWrite {
    return this.t.write(linear, size, value, kind);
  }

  fetch(linear: bigint, maxBytes: number, kind: AccessKind): MemFetch {
    return this.t.fetch(linear, maxBytes, kind);
  }
}

/** What the VM entry produced that the guest run needs (a subset of VmEntryOutcome). */
export interface GuestEntry {
  readonly injected?: InjectedEvent;
  readonly pendingMtf: boolean;
  /** VMX-preemption timer start value when the timer is activated. */
  readonly preemptionTimer?: number;
}

export interface RunGuestArgs {
  /** The interpreter: its `mem` must be `port` (or memory already bound to `guest`). */
  readonly interp: Interpreter;
  /** The controls in force: makeNonRootRuntime(vmcs, env, …) for the VMCS the entry used. */
  readonly runtime: NonRootRuntime;
  /** The guest state the VM entry loaded; the run updates it in place. */
  readonly guest: CpuState;
  readonly entry: GuestEntry;
  /** When given, `memory` is bound to `port` for this run (an EptGuestMemory or DirectGuestMemory over `guest`). */
  readonly port?: GuestMemoryPort;
  readonly memory?: GuestMemoryAccess;
  readonly events: ExternalEvents;
  /** Maximum L2 steps (see ScheduledEvent) in this run before it stops with 'budget-exhausted'. */
  readonly budget: number;
  /** Receives every event delivered through L2's IDT in this run, in order (cleared first). */
  readonly delivered?: EventRecord[];
}

/** `steps`: L2 steps (architectural progress, see ScheduledEvent) this run took. */
export type GuestRunResult =
  /** A VM exit; `preemptionTimer` is the remaining timer value when the timer is active (saved if the exit control asks). */
  | { readonly kind: 'vm-exit'; readonly exit: NonRootExit; readonly steps: number; readonly preemptionTimer?: number }
  /** `budget` steps passed without a VM exit; the guest is still in non-root operation (state as after the last step). */
  | { readonly kind: 'budget-exhausted'; readonly steps: number }
  /** The guest executed an instruction the interpreter does not implement (a listed known gap); state unchanged by it. */
  | { readonly kind: 'unsupported'; readonly steps: number; readonly mnemonic: string; readonly rip: bigint };

const PIN_PREEMPTION_TIMER = 0x40;

/**
 * Run `guest` in VMX non-root operation under `runtime` until a VM exit (SDM 26.6 then 25): the injected event (or
 * pending MTF) from the entry first, then per step: raise the external events due, step the interpreter. The
 * interpreter leaves non-root operation when the run ends with an exit. Never hangs: at most `budget` steps.
 */
export function runGuestUntilExit(a: RunGuestArgs): GuestRunResult {
  const { interp, guest, events } = a;
  if (a.port && a.memory) a.port.target = a.memory;
  const delivered = a.delivered;
  if (delivered) delivered.length = 0;
  interp.enterNonRoot(a.runtime, BigInt(a.entry.preemptionTimer ?? 0));
  // Virtual-interrupt delivery: VM entry loads RVI/SVI, virtualizes the PPR and evaluates pending virtual interrupts.
  a.runtime.apic?.onVmEntry();
  if (a.entry.pendingMtf) interp.setPendingMtf();
  if (a.entry.injected) {
    const r = interp.inject(guest, a.entry.injected);
    if (r.kind === 'vmexit') return exited(interp, a.runtime, r.exit, 0);
    if (r.kind === 'delivered') delivered?.push(r.event);
    else if (r.kind === 'unsupported') return { kind: 'unsupported', steps: 0, mnemonic: r.mnemonic, rip: r.rip };
  }
  // The TPR-threshold VM exit immediately after VM entry (SDM 26.7.7), taken after any injected event is delivered.
  const tprExit = a.runtime.apic?.entryTprExit();
  if (tprExit) return exited(interp, a.runtime, tprExit, 0);
  const budget = a.budget;
  for (let n = 0; n < budget; ) {
    events.raiseDue(interp);
    const r = interp.step(guest);
    switch (r.kind) {
      case 'retired':
      case 'halted':
        break;
      case 'delivered':
        delivered?.push(r.event);
        break;
      case 'vmexit':
        return exited(interp, a.runtime, r.exit, n);
      case 'unsupported':
        return { kind: 'unsupported', steps: n, mnemonic: r.mnemonic, rip: r.rip };
      case 'shutdown':
        throw new Error('turtles bug: the interpreter reported shutdown in VMX non-root operation (a triple fault must exit)');
    }
    n++;
    events.l2Steps++;
  }
  return { kind: 'budget-exhausted', steps: budget };
}

function exited(interp: Interpreter, runtime: NonRootRuntime, exit: NonRootExit, steps: number): GuestRunResult {
  const timer = runtime.controls.pin & PIN_PREEMPTION_TIMER ? Number(interp.preemptionTimerValue & 0xffff_ffffn) : undefined;
  interp.leaveNonRoot();
  return timer === undefined ? { kind: 'vm-exit', exit, steps } : { kind: 'vm-exit', exit, steps, preemptionTimer: timer };
}
