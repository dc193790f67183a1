// The oracle for INIT, SIPI and SMI: L1 must see the same exits and state whether L2 runs on the reference machine or
// under the nested L0 (which takes the vmcs02 INIT/SIPI exit and synthesizes the identical exit to L1).
// SDM Vol. 3C 25.2; reference §6.4.
import { describe, expect, it } from 'vitest';
import { asm64 } from '../../../../src/asm/index.js';
import { Pin, Primary } from '../../../../src/cpu/generated/controls.js';
import { Field } from '../../../../src/cpu/generated/vmcs-fields.js';
import type { L1Config } from '../../../../src/cpu/l1/config.js';
import type { ScheduledEvent } from '../../../../src/cpu/machine/run-guest.js';
import { exitsOf } from '../machine/helpers.js';
import { firstDifference, runConfigPair } from '../../nested/machine/harness.js';

const CODE = asm64`nop; nop; nop; nop; nop; nop; hlt`;

function pair(extra: Partial<L1Config>, schedule: readonly ScheduledEvent[]) {
  return runConfigPair({
    l2: { mode: 'long64', code: CODE, rflags: 0x202n },
    controls: { primary: Primary.HLT_EXITING },
    policy: {
      rules: [
        { reason: 4, actions: [{ kind: 'vmwrite', encoding: Field.GUEST_ACTIVITY_STATE, value: 0n }] },
        { reason: 'any', actions: [{ kind: 'stop' }] },
      ],
    },
    ...extra,
  }, { schedule, budget: 200 });
}

describe('INIT / SIPI / SMI: reference and nested agree', () => {
  const cases: [string, Partial<L1Config>, ScheduledEvent[], number[]][] = [
    ['INIT while active', {}, [{ at: 2, kind: 'init' }], [3]],
    ['INIT while halted', { controls: {} }, [{ at: 12, kind: 'init' }], [3]],
    ['SIPI in wait-for-SIPI, then the blocked INIT', { controls: { pin: Pin.EXTERNAL_INTERRUPT_EXITING, primary: Primary.HLT_EXITING }, vmcsWrites: [[Field.GUEST_ACTIVITY_STATE, 3n]] },
      [{ at: 1, kind: 'init' }, { at: 1, kind: 'interrupt', vector: 0x41 }, { at: 4, kind: 'sipi', vector: 0x21 }], [4, 3]],
    ['SIPI while active is discarded; SMI is invisible', {}, [{ at: 1, kind: 'sipi', vector: 0x21 }, { at: 3, kind: 'smi' }], [12]],
  ];
  for (const [name, extra, schedule, reasons] of cases) {
    it(name, () => {
      const p = pair(extra, schedule);
      expect(exitsOf(p.reference.log).map((e) => e.exit.exitReason)).toEqual(reasons);
      expect(firstDifference(p.reference.log, p.nested.log)).toBeUndefined();
      expect(p.nested.result.status).toBe(p.reference.result.status);
    });
  }
});
