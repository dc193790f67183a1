// The kvm profile's differences from a CPU are exactly its named deviations (reference §9.3,
// schemas/nested/kvm-deviations.json): every oracle property's cases run on the kvm L0 through checkProgram, and every
// divergence must be attributed — by the counterfactual re-run without the deviation — to a deviation the profile
// declares. A KVM behaviour the model applies without naming it shows up here as an unexplained divergence.
import { describe, expect, it } from 'vitest';
import { kvmProfile } from '../../src/nested/profile.js';
import { GENERAL_MIX, ORACLE_PROPERTIES, oracleProperty, runOracleProperty, type OracleProperty } from '../support/arbitraries/oracle.js';
import { propertyParams } from '../support/property.js';

describe('kvm profile: divergences are named deviations only', () => {
  for (const p of ORACLE_PROPERTIES) {
    it(`${p.id} cases on the kvm L0`, () => {
      runOracleProperty(p, kvmProfile(), propertyParams({ numRuns: Math.ceil(p.numRuns / 2) }));
    });
  }

  it('the general differential mix (all L2 modes, exact controls, raw VMCS writes, event schedules) on the kvm L0', () => {
    runOracleProperty(GENERAL_MIX, kvmProfile(), propertyParams({ numRuns: GENERAL_MIX.numRuns }));
  });

  it('named deviations are observed and attributed (host-state load, N14)', () => {
    const base = oracleProperty('P-EXITSTATE');
    const p: OracleProperty = {
      ...base,
      coverage: [{ name: 'runs with an expected deviation', min: 3, test: (_c, r) => r.divergences.some((d) => d.kind === 'expected-deviation' && d.deviation?.startsWith('kvm.host-')) }],
    };
    const r = runOracleProperty(p, kvmProfile(), propertyParams({ numRuns: base.numRuns }));
    expect(r.shortfalls.join('; ')).toBe('');
  });
});
