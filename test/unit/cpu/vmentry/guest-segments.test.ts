// Table-driven tests of SDM 26.3.1.2 (guest segment registers, LDTR and TR; exit reason 33, qualification 0).
import { describe, expect, it } from 'vitest';
import { verdictOf } from '../../../../src/cpu/vmentry/index.js';
import { SEGMENT_CASES } from './cases-segments.js';
import { checkCase } from './support.js';

describe('VM-entry guest segment-register checks (SDM 26.3.1.2)', () => {
  for (const c of SEGMENT_CASES) {
    it(c.name, () => {
      const r = checkCase(c);
      if (c.expect !== 'pass') expect(verdictOf(r.first)).toMatchObject({ kind: 'entry-failure', exitReason: 33, qualification: 0n });
    });
  }
});
