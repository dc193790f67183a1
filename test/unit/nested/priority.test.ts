// The priority of pending nested events (reference §6.5) and what each becomes (exit to L1, injection into L2, L0).
import { describe, expect, it } from 'vitest';
import { Field } from '../../../src/cpu/generated/vmcs-fields.js';
import { ExitCtl, Pin } from '../../../src/cpu/generated/controls.js';
import { validVmcs } from '../../../src/cpu/vmentry/valid-state.js';
import { nextNestedEvent, type PendingNestedEvents } from '../../../src/nested/reflect/priority.js';
import { kvmProfile, sdmProfile } from '../../../src/nested/profile.js';
import { L1_MODEL } from '../../support/arbitraries/vmcs12.js';

const none: PendingNestedEvents = {
  nestedRunPending: false, reinjectionPending: false, init: false, sipi: null, l2WaitForSipi: false, exception: null, mtf: false,
  preemptionTimerExpired: false, smi: false, nmi: false, l2NmiBlocked: false, interrupt: null, l2InterruptBlocked: false, postedInterrupt: false,
};
const all: PendingNestedEvents = {
  ...none, init: true, exception: { vector: 13, errorCode: 0, payload: 0n, trapLike: false, type: 3 }, mtf: true, preemptionTimerExpired: true,
  smi: true, nmi: true, interrupt: 0x30, postedInterrupt: true,
};
const dbTrap = { vector: 1, errorCode: null, payload: 1n << 14n, trapLike: true, type: 3 as const };

describe('nextNestedEvent (§6.5)', () => {
  const v12 = validVmcs(L1_MODEL);
  v12.set32(Field.EXCEPTION_BITMAP, 1 << 13);
  const sdm = sdmProfile();
  it('walks the priority order', () => {
    let p: PendingNestedEvents = all;
    const order: string[] = [];
    for (;;) {
      const a = nextNestedEvent(p, v12, sdm);
      order.push(a.rule);
      if (a.rule === 'priority.init-sipi') p = { ...p, init: false };
      else if (a.rule === 'priority.fault-exception') p = { ...p, exception: null };
      else if (a.rule === 'priority.mtf') p = { ...p, mtf: false };
      else if (a.rule === 'priority.preemption-timer') p = { ...p, preemptionTimerExpired: false };
      else if (a.rule === 'priority.smi') p = { ...p, smi: false };
      else if (a.rule === 'priority.nmi') p = { ...p, nmi: false };
      else if (a.rule === 'priority.interrupt') p = { ...p, interrupt: null };
      else if (a.rule === 'priority.posted-interrupt') p = { ...p, postedInterrupt: false };
      else break;
    }
    expect(order).toEqual(['priority.init-sipi', 'priority.fault-exception', 'priority.mtf', 'priority.preemption-timer', 'priority.smi', 'priority.nmi', 'priority.interrupt', 'priority.posted-interrupt', 'priority.none']);
  });
  it('a pending VM entry blocks everything; a re-injection blocks all but exceptions', () => {
    expect(nextNestedEvent({ ...all, nestedRunPending: true }, v12, sdm).kind).toBe('blocked');
    expect(nextNestedEvent({ ...all, reinjectionPending: true }, v12, sdm).rule).toBe('priority.fault-exception');
    expect(nextNestedEvent({ ...all, exception: null, reinjectionPending: true }, v12, sdm).rule).toBe('priority.blocked-by-reinjection');
  });
  it('exceptions exit when vmcs12 intercepts them, else go to L2; trap-like #DB comes after MTF', () => {
    expect(nextNestedEvent({ ...none, exception: { vector: 13, errorCode: 5, payload: 0n, trapLike: false, type: 3 } }, v12, sdm)).toMatchObject({ kind: 'exit', reason: 0, intrInfo: 0x8000_0b0d, intrErrorCode: 5 });
    expect(nextNestedEvent({ ...none, exception: { vector: 6, errorCode: null, payload: 0n, trapLike: false, type: 3 } }, v12, sdm)).toMatchObject({ kind: 'inject-l2', intrInfo: 0x8000_0306 });
    expect(nextNestedEvent({ ...none, mtf: true, exception: dbTrap }, v12, sdm).rule).toBe('priority.mtf');
    // A code breakpoint (fault-like, B0 set) goes before MTF on hardware; kvm infers "trap" from the payload (N20).
    const codeBp = { vector: 1, errorCode: null, payload: 1n, trapLike: false, type: 3 as const };
    expect(nextNestedEvent({ ...none, mtf: true, exception: codeBp }, v12, sdm).rule).toBe('priority.fault-exception');
    expect(nextNestedEvent({ ...none, mtf: true, exception: codeBp }, v12, kvmProfile()).rule).toBe('priority.mtf');
  });
  it('NMI and interrupts: exit with the vmcs12 controls (ack-on-exit reports the vector), else inject unless L2 blocks', () => {
    const v = validVmcs(L1_MODEL);
    v.set32(Field.PIN_BASED_VM_EXEC_CONTROL, v.lo(Field.PIN_BASED_VM_EXEC_CONTROL) & ~(Pin.NMI_EXITING | Pin.EXTERNAL_INTERRUPT_EXITING));
    expect(nextNestedEvent({ ...none, nmi: true }, v, sdm)).toMatchObject({ kind: 'inject-l2', intrInfo: 0x8000_0202 });
    expect(nextNestedEvent({ ...none, nmi: true, l2NmiBlocked: true, interrupt: 0x40 }, v, sdm)).toMatchObject({ kind: 'inject-l2', intrInfo: 0x8000_0040 });
    expect(nextNestedEvent({ ...none, interrupt: 0x40, l2InterruptBlocked: true }, v, sdm).kind).toBe('none');
    v.set32(Field.PIN_BASED_VM_EXEC_CONTROL, v.lo(Field.PIN_BASED_VM_EXEC_CONTROL) | Pin.NMI_EXITING | Pin.EXTERNAL_INTERRUPT_EXITING);
    expect(nextNestedEvent({ ...none, nmi: true, l2NmiBlocked: true }, v, sdm)).toMatchObject({ kind: 'exit', reason: 0, intrInfo: 0x8000_0202 });
    v.set32(Field.VM_EXIT_CONTROLS, v.lo(Field.VM_EXIT_CONTROLS) | ExitCtl.ACKNOWLEDGE_INTERRUPT_ON_EXIT);
    expect(nextNestedEvent({ ...none, interrupt: 0x40, l2InterruptBlocked: true }, v, sdm)).toMatchObject({ kind: 'exit', reason: 1, intrInfo: 0x8000_0040 });
    v.set32(Field.VM_EXIT_CONTROLS, v.lo(Field.VM_EXIT_CONTROLS) & ~ExitCtl.ACKNOWLEDGE_INTERRUPT_ON_EXIT);
    expect(nextNestedEvent({ ...none, interrupt: 0x40 }, v, sdm)).toMatchObject({ kind: 'exit', reason: 1, intrInfo: 0 });
  });
  it('SIPI exits only in wait-for-SIPI; INIT is held while L2 waits for SIPI', () => {
    expect(nextNestedEvent({ ...none, sipi: 0x9a, l2WaitForSipi: true, init: true }, v12, sdm)).toMatchObject({ kind: 'exit', reason: 4, qualification: 0x9an });
    expect(nextNestedEvent({ ...none, sipi: 0x9a }, v12, sdm).kind).toBe('none');
  });
});
