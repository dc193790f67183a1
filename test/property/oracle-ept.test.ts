// End-to-end oracle properties about nested EPT (reference §9.2): P-EPT-COMP, P-EPT-AD, P-EPT-INV,
// each run through checkProgram (reference machine vs nested machine, observations O1–O6 compared step by step, merge /
// EPT02 / reflection / VPID invariants checked on the nested run) on the sdm profile, which must show no divergence.
// Focused unit-level variants live where each spec's `unit` says (test/property/nested-*.test.ts); they are not repeated.
import { describe, expect, it } from 'vitest';
import { sdmProfile } from '../../src/nested/profile.js';
import { oracleProperty, runOracleProperty, type OraclePropertyId } from '../support/arbitraries/oracle.js';
import { propertyParams } from '../support/property.js';

describe('oracle properties: nested EPT (sdm profile)', () => {
  for (const id of ['P-EPT-COMP', 'P-EPT-AD', 'P-EPT-INV'] as OraclePropertyId[]) {
    const p = oracleProperty(id);
    it(`${id}: ${p.title}`, () => {
      const r = runOracleProperty(p, sdmProfile(), propertyParams({ numRuns: p.numRuns }));
      expect(r.shortfalls.join('; '), `generator coverage for ${id}`).toBe('');
    });
  }
});
