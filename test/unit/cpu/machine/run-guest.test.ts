// runGuestUntilExit on its own, with a VMCS and an interpreter and no L1 (as the nested machine calls it with vmcs02):
// the injected event before the first instruction, scheduled events raised at their L2 step (in input order when due
// together), the step budget, the preemption-timer value at the exit, and leaving non-root operation at an exit.
import { describe, expect, it } from 'vitest';
import { asm64 } from '../../../../src/asm/index.js';
import { ExitCtl, Pin, Primary } from '../../../../src/cpu/generated/controls.js';
import { handlerAddress, L2Layout } from '../../../../src/cpu/interp/l2-env.js';
import type { EventRecord } from '../../../../src/cpu/interp/types.js';
import { ExternalEvents, runGuestUntilExit, type ScheduledEvent } from '../../../../src/cpu/machine/index.js';
import { machine, vmcsWith } from '../interp/harness.js';

function guest(code: Uint8Array, fields: Parameters<typeof vmcsWith>[0]) {
  const m = machine('long64', code, { vmcs: vmcsWith(fields) });
  return { m, runtime: m.interp.nonRoot! };
}

describe('runGuestUntilExit', () => {
  it('delivers the injected event first, then runs to the exit; reports steps and delivered events', () => {
    const { m, runtime } = guest(asm64`nop`, { CPU_BASED_VM_EXEC_CONTROL: Primary.HLT_EXITING });
    const delivered: EventRecord[] = [];
    const events = new ExternalEvents();
    const r = runGuestUntilExit({
      interp: m.interp, runtime, guest: m.state, entry: { pendingMtf: false, injected: { vector: 0x30, type: 0 } }, events, budget: 100, delivered,
    });
    // The handler stub is "hlt": HLT exiting makes it the exit.
    expect(r.kind).toBe('vm-exit');
    if (r.kind !== 'vm-exit') return;
    expect(r.exit.reason).toBe(12);
    expect(m.state.rip).toBe(handlerAddress(0x30));
    expect(delivered).toEqual([{ vector: 0x30, type: 0 }]);
    // Neither the injection nor the exiting HLT is a step of progress.
    expect(r.steps).toBe(0);
    expect(events.l2Steps).toBe(0);
    expect(m.interp.nonRoot).toBeNull();
  });

  it('counts only steps of progress: an exiting instruction re-run after the exit does not advance the clock', () => {
    const { m, runtime } = guest(asm64`nop; cpuid`, {});
    const events = new ExternalEvents();
    for (let i = 0; i < 3; i++) {
      const r = runGuestUntilExit({ interp: m.interp, runtime, guest: m.state, entry: { pendingMtf: false }, events, budget: 10 });
      expect(r).toMatchObject({ kind: 'vm-exit', exit: { reason: 10 } });
    }
    expect(events.l2Steps).toBe(1);
  });

  it('raises scheduled events at their step, across runs, in input order when due together', () => {
    const schedule: ScheduledEvent[] = [{ at: 3, kind: 'interrupt', vector: 0x40 }, { at: 3, kind: 'nmi' }, { at: 1, kind: 'timer' }];
    const events = new ExternalEvents(schedule);
    expect(events.pending).toBe(3);
    const { m, runtime } = guest(asm64`sti; l: nop; jmp l`, {
      PIN_BASED_VM_EXEC_CONTROL: Pin.EXTERNAL_INTERRUPT_EXITING | Pin.NMI_EXITING, VM_EXIT_CONTROLS: ExitCtl.ACKNOWLEDGE_INTERRUPT_ON_EXIT,
    });
    const first = runGuestUntilExit({ interp: m.interp, runtime, guest: m.state, entry: { pendingMtf: false }, events, budget: 100 });
    // The timer interrupt (vector 0x20) due at step 1 is blocked by STI for one instruction, then exits (acknowledged).
    expect(first).toMatchObject({ kind: 'vm-exit', exit: { reason: 1, interruptionInfo: 0x8000_0020 }, steps: 2 });
    expect(events.pending).toBe(2);
    const second = runGuestUntilExit({ interp: m.interp, runtime, guest: m.state, entry: { pendingMtf: false }, events, budget: 100 });
    // NMI has priority over the pending interrupts.
    expect(second.kind === 'vm-exit' && second.exit.reason).toBe(0);
    expect(second.kind === 'vm-exit' && second.exit.interruptionInfo).toBe(0x8000_0202);
    expect(events.pending).toBe(0);
  });

  it('stops at the budget without an exit; a budget of 0 runs nothing', () => {
    const { m, runtime } = guest(asm64`l: jmp l`, {});
    const events = new ExternalEvents();
    expect(runGuestUntilExit({ interp: m.interp, runtime, guest: m.state, entry: { pendingMtf: false }, events, budget: 0 })).toEqual({ kind: 'budget-exhausted', steps: 0 });
    expect(runGuestUntilExit({ interp: m.interp, runtime, guest: m.state, entry: { pendingMtf: false }, events, budget: 25 })).toEqual({ kind: 'budget-exhausted', steps: 25 });
    expect(events.l2Steps).toBe(25);
    expect(m.state.rip).toBe(L2Layout.CODE);
  });

  it('reports the remaining preemption-timer value with the exit when the timer is active', () => {
    const { m, runtime } = guest(asm64`nop; nop; cpuid`, { PIN_BASED_VM_EXEC_CONTROL: Pin.ACTIVATE_VMX_PREEMPTION_TIMER });
    const r = runGuestUntilExit({ interp: m.interp, runtime, guest: m.state, entry: { pendingMtf: false, preemptionTimer: 1000 }, events: new ExternalEvents(), budget: 10 });
    expect(r).toMatchObject({ kind: 'vm-exit', exit: { reason: 10 }, preemptionTimer: 1000 - 2 });
  });

  it('a pending MTF from the entry exits before the first instruction', () => {
    const { m, runtime } = guest(asm64`nop`, {});
    const r = runGuestUntilExit({ interp: m.interp, runtime, guest: m.state, entry: { pendingMtf: true }, events: new ExternalEvents(), budget: 10 });
    expect(r).toMatchObject({ kind: 'vm-exit', exit: { reason: 37 }, steps: 0 });
    expect(m.state.rip).toBe(L2Layout.CODE);
  });
});
