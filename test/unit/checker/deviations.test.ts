// The deviation → affected-rules map (src/checker/deviations.ts): every observable KVM deviation has effects, every
// effect names rules the catalogue has and fields that exist, the sdm profile attributes nothing, and the map is narrow
// where the deviation is narrow (a field-specific deviation does not explain another field).
import { describe, expect, it } from 'vitest';
import { fieldByName } from '../../../src/cpu/vmcs.js';
import { KVM_OBSERVABLE_DEVIATIONS, kvmProfile, sdmProfile } from '../../../src/nested/profile.js';
import { DEVIATION_EFFECTS, asExpectedDeviation, deviationCandidates, deviationMayCause, sameDivergence } from '../../../src/checker/deviations.js';
import { CHECKER_RULES } from '../../../src/checker/rules.js';
import type { Divergence } from '../../../src/checker/divergence.js';

const d = (rule: string, field?: string): Divergence => ({
  kind: 'observation', rule, sdm: 'x', event: 3, level: 'L1', expected: '0x1', actual: '0x2', explanation: 'x', ...(field ? { field } : {}),
});

describe('DEVIATION_EFFECTS', () => {
  it('covers every observable deviation with rules from the catalogue and real field names', () => {
    const ids = [...CHECKER_RULES.keys()];
    for (const id of KVM_OBSERVABLE_DEVIATIONS) {
      const effects = DEVIATION_EFFECTS[id];
      expect(effects.length, id).toBeGreaterThan(0);
      for (const e of effects) {
        const matches = ids.filter((r) => (e.rule.endsWith('*') ? r.startsWith(e.rule.slice(0, -1)) : r === e.rule));
        if (!e.rule.startsWith('merge.')) expect(matches.length, `${id}: ${e.rule}`).toBeGreaterThan(0);
        for (const f of e.fields ?? []) expect(fieldByName(f), `${id}: ${f}`).toBeDefined();
      }
    }
  });

  it('the sdm profile explains nothing; kvm explains a divergence only through a deviation that may cause it', () => {
    expect(deviationCandidates(sdmProfile(), d('oracle.o6.shutdown'))).toEqual([]);
    expect(deviationCandidates(kvmProfile(), d('oracle.o6.shutdown'))).toContain('kvm.abort-as-triple-fault');
    expect(deviationCandidates(kvmProfile({ without: ['kvm.abort-as-triple-fault'] }), d('oracle.o6.abort-indicator'))).not.toContain('kvm.abort-as-triple-fault');
    expect(deviationMayCause('kvm.preemption-timer-not-saved-on-pending-entry', d('oracle.o2.guest-state', 'VMX_PREEMPTION_TIMER_VALUE'))).toBe(true);
    expect(deviationMayCause('kvm.preemption-timer-not-saved-on-pending-entry', d('oracle.o2.guest-state', 'GUEST_RIP'))).toBe(false);
    expect(deviationMayCause('kvm.vmwrite-ar-bytes-masked', d('oracle.o1.vmread-value', 'GUEST_CS_AR_BYTES'))).toBe(true);
    expect(deviationMayCause('kvm.vmwrite-ar-bytes-masked', d('oracle.o1.vmread-value', 'GUEST_CS_BASE'))).toBe(false);
    // Field-specific deviations do not claim other fields.
    expect(deviationMayCause('kvm.debugctl-bits-dropped', d('oracle.o2.guest-state', 'GUEST_RIP'))).toBe(false);
    expect(deviationMayCause('kvm.ept-violation-qual-basic', d('oracle.o2.qualification', 'EXIT_QUALIFICATION'))).toBe(true);
    expect(deviationMayCause('kvm.ept-violation-qual-basic', d('oracle.o2.exit-reason', 'VM_EXIT_REASON'))).toBe(false);
  });

  it('relabels a divergence as an expected deviation and matches the same divergence across runs', () => {
    const x = asExpectedDeviation(d('oracle.o6.shutdown'), 'kvm.abort-as-triple-fault');
    expect(x).toMatchObject({ kind: 'expected-deviation', deviation: 'kvm.abort-as-triple-fault', rule: 'oracle.o6.shutdown' });
    expect(sameDivergence(d('oracle.o1.rflags'), { ...d('oracle.o1.rflags'), actual: '0x9' })).toBe(true);
    expect(sameDivergence(d('oracle.o1.rflags'), { ...d('oracle.o1.rflags'), event: 4 })).toBe(false);
  });
});
