// Table-driven tests of SDM 26.3.1.1, 26.3.1.3 and 26.3.1.4 (exit reason 33, qualification 0).
import { describe, expect, it } from 'vitest';
import { verdictOf } from '../../../../src/cpu/vmentry/index.js';
import { GUEST_CASES } from './cases-guest.js';
import { checkCase } from './support.js';

describe('VM-entry guest control-register, MSR, GDTR/IDTR, RIP and RFLAGS checks (SDM 26.3.1.1, 26.3.1.3, 26.3.1.4)', () => {
  for (const c of GUEST_CASES) {
    it(c.name, () => {
      const r = checkCase(c);
      if (c.expect !== 'pass') expect(verdictOf(r.first)).toMatchObject({ kind: 'entry-failure', exitReason: 33, qualification: 0n });
    });
  }
});
