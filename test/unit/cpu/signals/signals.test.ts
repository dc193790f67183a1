// INIT, SIPI and SMI while L2 runs on the reference machine: INIT exits (reason 3) from the active, HLT and shutdown
// states but is blocked (kept pending) in wait-for-SIPI; a SIPI exits (reason 4, qualification = vector) only in
// wait-for-SIPI and is discarded otherwise; wait-for-SIPI blocks NMIs and interrupts, shutdown blocks interrupts; an
// SMI under the default SMM treatment is invisible; INIT outranks a pending MTF exit.
// Expectations from SDM Vol. 3C 25.2, 26.6.2, 27.2.1 and Vol. 3A 6.9.
import { describe, expect, it } from 'vitest';
import { asm64 } from '../../../../src/asm/index.js';
import { Pin, Primary } from '../../../../src/cpu/generated/controls.js';
import { Field } from '../../../../src/cpu/generated/vmcs-fields.js';
import type { L1Config } from '../../../../src/cpu/l1/config.js';
import { L2Layout } from '../../../../src/cpu/interp/l2-env.js';
import type { ScheduledEvent } from '../../../../src/cpu/machine/run-guest.js';
import { runConfig, SKYLAKE } from '../machine/helpers.js';

const STOP = { kind: 'stop' as const };
const CODE = asm64`nop; nop; nop; nop; nop; nop; nop; nop; hlt`;
/** RFLAGS.IF = 1, so only the activity state can hold an external interrupt back. */
const IF_SET = { mode: 'long64' as const, code: CODE, rflags: 0x202n };

function run(config: Partial<L1Config>, schedule: readonly ScheduledEvent[], budget = 200) {
  return runConfig({
    l2: { mode: 'long64', code: CODE },
    controls: { primary: Primary.HLT_EXITING },
    policy: { rules: [{ reason: 'any', actions: [STOP] }] },
    ...config,
  }, { cpu: SKYLAKE, schedule, budget });
}

const activity = (r: ReturnType<typeof run>, i: number) => r.exits[i]!.guest.get(Field.GUEST_ACTIVITY_STATE);

describe('INIT (SDM 25.2)', () => {
  it('exits with reason 3 and qualification 0 at the next boundary, RIP after the retired instructions', () => {
    const r = run({}, [{ at: 2, kind: 'init' }]);
    expect(r.exits.map((e) => e.exit.exitReason)).toEqual([3]);
    expect(r.exits[0]!.exit.qualification).toBe(0n);
    expect(r.exits[0]!.rip).toBe(L2Layout.CODE + 2n);
    expect(activity(r, 0)).toBe(0n);
  });

  it('wakes a halted L2 into an exit that saves the HLT activity state', () => {
    const r = run({ controls: {} }, [{ at: 20, kind: 'init' }]);
    expect(r.exits.map((e) => e.exit.exitReason)).toEqual([3]);
    expect(r.exits[0]!.rip).toBe(L2Layout.CODE + 9n);
    expect(activity(r, 0)).toBe(1n);
  });

  it('outranks a pending MTF VM exit (SDM 25.5.2: SMIs and INITs take priority over MTF)', () => {
    const mtf = run({ controls: { primary: Primary.MONITOR_TRAP_FLAG | Primary.HLT_EXITING } }, []);
    expect(mtf.exits.map((e) => e.exit.exitReason)).toEqual([37]);
    const r = run({ controls: { primary: Primary.MONITOR_TRAP_FLAG | Primary.HLT_EXITING } }, [{ at: 1, kind: 'init' }]);
    expect(r.exits.map((e) => e.exit.exitReason)).toEqual([3]);
    expect(r.exits[0]!.rip).toBe(L2Layout.CODE + 1n);
  });

  it('exits from the shutdown state, where external interrupts are blocked even with external-interrupt exiting', () => {
    const r = run({ l2: IF_SET, controls: { pin: Pin.EXTERNAL_INTERRUPT_EXITING }, vmcsWrites: [[Field.GUEST_ACTIVITY_STATE, 2n]] },
      [{ at: 1, kind: 'interrupt', vector: 0x40 }, { at: 4, kind: 'init' }]);
    expect(r.exits.map((e) => e.exit.exitReason)).toEqual([3]);
    expect(r.exits[0]!.rip).toBe(L2Layout.CODE);
    expect(activity(r, 0)).toBe(2n);
  });
});

describe('SIPI and wait-for-SIPI (SDM 25.2, 26.6.2)', () => {
  it('in wait-for-SIPI: INIT, NMI and interrupts are blocked; the SIPI exits with its vector; the blocked INIT exits once active', () => {
    const r = run({
      l2: IF_SET,
      controls: { pin: Pin.EXTERNAL_INTERRUPT_EXITING | Pin.NMI_EXITING, primary: Primary.HLT_EXITING },
      vmcsWrites: [[Field.GUEST_ACTIVITY_STATE, 3n]],
      policy: { rules: [{ reason: 4, actions: [{ kind: 'vmwrite', encoding: Field.GUEST_ACTIVITY_STATE, value: 0n }] }, { reason: 'any', actions: [STOP] }] },
    }, [{ at: 1, kind: 'init' }, { at: 1, kind: 'nmi' }, { at: 1, kind: 'interrupt', vector: 0x40 }, { at: 6, kind: 'sipi', vector: 0x9a }]);
    expect(r.exits.map((e) => e.exit.exitReason)).toEqual([4, 3]);
    expect(r.exits[0]!.exit.qualification).toBe(0x9an);
    expect(r.exits[0]!.rip).toBe(L2Layout.CODE);
    expect(activity(r, 0)).toBe(3n);
    // Once active, the pending INIT comes before the pending NMI and interrupt.
    expect(r.exits[1]!.exit.qualification).toBe(0n);
    expect(activity(r, 1)).toBe(0n);
  });

  it('a SIPI while active (or halted) is discarded: no exit, and none later in wait-for-SIPI', () => {
    const r = run({}, [{ at: 1, kind: 'sipi', vector: 0x10 }]);
    expect(r.exits.map((e) => e.exit.exitReason)).toEqual([12]);
    expect(r.exits[0]!.rip).toBe(L2Layout.CODE + 8n);
    const later = run({
      policy: { rules: [{ reason: 12, actions: [{ kind: 'vmwrite', encoding: Field.GUEST_ACTIVITY_STATE, value: 3n }] }, { reason: 'any', actions: [STOP] }] },
    }, [{ at: 1, kind: 'sipi', vector: 0x10 }, { at: 30, kind: 'init' }], 60);
    // L2 waits for a SIPI that was already discarded; the INIT is blocked: the run ends on its step budget.
    expect(later.exits.map((e) => e.exit.exitReason)).toEqual([12]);
    expect(later.result.status).toBe('budget-exhausted');
  });
});

describe('SMI under the default treatment (SDM 25.2, 34.14)', () => {
  it('is taken and returned from invisibly: same exits and state as without it', () => {
    const base = run({}, []);
    const r = run({}, [{ at: 3, kind: 'smi' }]);
    expect(r.exits.map((e) => e.exit.exitReason)).toEqual([12]);
    expect(r.exits[0]!.rip).toBe(base.exits[0]!.rip);
    expect(r.exits[0]!.guest).toEqual(base.exits[0]!.guest);
    expect(r.machine.interp.signals.smisHandled).toBe(1);
  });

  it('stays pending in wait-for-SIPI', () => {
    const r = run({ vmcsWrites: [[Field.GUEST_ACTIVITY_STATE, 3n]] }, [{ at: 1, kind: 'smi' }, { at: 3, kind: 'sipi', vector: 1 }]);
    expect(r.exits.map((e) => e.exit.exitReason)).toEqual([4]);
    expect(r.machine.interp.signals.smisHandled).toBe(0);
    expect(r.machine.interp.signals.smi).toBe(true);
  });
});
