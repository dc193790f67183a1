// Table-driven tests of SDM 26.2.2-26.2.4 (host state and address-space size → VMfailValid(8)).
import { describe, expect, it } from 'vitest';
import { verdictOf } from '../../../../src/cpu/vmentry/index.js';
import { HOST_CASES } from './cases-host.js';
import { checkCase } from './support.js';

describe('VM-entry host-state checks (SDM 26.2.2-26.2.4)', () => {
  for (const c of HOST_CASES) {
    it(c.name, () => {
      const r = checkCase(c);
      if (c.expect !== 'pass') {
        expect(verdictOf(r.first)).toMatchObject({ kind: 'vmfail', error: 8 });
        expect(r.first.failures[0]!.stage).toBe('host-state');
      }
    });
  }
});
