// End-to-end oracle properties about which exits reach L1 (reference §9.2): P-SUPERSET, P-REFLECT, P-PRIO, P-CHECK,
// each run through checkProgram (reference machine vs nested machine, observations O1–O6 compared step by step, merge /
// EPT02 / reflection / VPID invariants checked on the nested run) on the sdm profile, which must show no divergence.
// Focused unit-level variants live where each spec's `unit` says (test/property/nested-*.test.ts); they are not repeated.
// Plus the general differential mix (every generated configuration, not aimed at one property).
import { describe, expect, it } from 'vitest';
import { sdmProfile } from '../../src/nested/profile.js';
import { GENERAL_MIX, oracleProperty, runOracleProperty, type OraclePropertyId } from '../support/arbitraries/oracle.js';
import { propertyParams } from '../support/property.js';

describe('oracle properties: exits (sdm profile)', () => {
  for (const id of ['P-SUPERSET', 'P-REFLECT', 'P-PRIO', 'P-CHECK'] as OraclePropertyId[]) {
    const p = oracleProperty(id);
    it(`${id}: ${p.title}`, () => {
      const r = runOracleProperty(p, sdmProfile(), propertyParams({ numRuns: p.numRuns }));
      expect(r.shortfalls.join('; '), `generator coverage for ${id}`).toBe('');
    });
  }

  it(`general mix: ${GENERAL_MIX.title}`, () => {
    const r = runOracleProperty(GENERAL_MIX, sdmProfile(), propertyParams({ numRuns: GENERAL_MIX.numRuns }));
    expect(r.shortfalls.join('; ')).toBe('');
  });
});
