// Table-driven tests of SDM 26.2.1 (VM-execution, VM-exit and VM-entry control fields → VMfailValid(7)).
import { describe, expect, it } from 'vitest';
import { verdictOf } from '../../../../src/cpu/vmentry/index.js';
import { CONTROL_CASES } from './cases-controls.js';
import { checkCase } from './support.js';

describe('VM-entry control checks (SDM 26.2.1)', () => {
  for (const c of CONTROL_CASES) {
    it(c.name, () => {
      const r = checkCase(c);
      if (c.expect !== 'pass') {
        const v = verdictOf(r.first);
        expect(v).toMatchObject({ kind: 'vmfail', error: 7 });
        expect(r.first.failures[0]!.stage).toBe('controls');
        expect(r.first.failures[0]!.qualification).toBeNull();
      }
    });
  }
});
