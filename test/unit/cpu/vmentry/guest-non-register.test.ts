// Table-driven tests of SDM 26.3.1.5 (activity, interruptibility, pending debug exceptions, VMCS link pointer) and
// the PDPTE checks (26.3.1.6): exit reason 33 with qualification 0, 3 (NMI under STI blocking), 4 (link) or 2 (PDPTE).
import { describe, expect, it } from 'vitest';
import { verdictOf } from '../../../../src/cpu/vmentry/index.js';
import { NON_REGISTER_CASES } from './cases-non-register.js';
import { checkCase } from './support.js';

const qualificationOf = (id: string): bigint =>
  id.startsWith('guest.link.') ? 4n : id.startsWith('guest.pdpte.') ? 2n : id === 'guest.interruptibility.nmi-sti' ? 3n : 0n;

describe('VM-entry guest non-register state and PDPTE checks (SDM 26.3.1.5, 26.3.1.6)', () => {
  for (const c of NON_REGISTER_CASES) {
    it(c.name, () => {
      const r = checkCase(c);
      if (c.expect !== 'pass') {
        expect(verdictOf(r.first)).toMatchObject({ kind: 'entry-failure', exitReason: 33, qualification: qualificationOf(c.expect) });
      }
    });
  }
});
