// The differential runner (src/checker/run.ts) end to end on small built-in L1 configurations: the sdm L0 is silent,
// a wrong L0 (one part substituted) is reported both by an invariant and by an observation, a nested-machine crash is a
// divergence, and divergences a kvm deviation causes are attributed to it by the counterfactual re-run.
import { describe, expect, it } from 'vitest';
import { asm64 } from '../../../src/asm/index.js';
import { Field } from '../../../src/cpu/generated/vmcs-fields.js';
import { Primary } from '../../../src/cpu/generated/controls.js';
import { builtinL1 } from '../../../src/cpu/l1/builtin.js';
import type { L1Config } from '../../../src/cpu/l1/config.js';
import { defaultL0Parts } from '../../../src/nested/l0/parts.js';
import { mergeVmcs02 } from '../../../src/nested/merge/merge.js';
import { kvmProfile, sdmProfile } from '../../../src/nested/profile.js';
import { attribute, checkProgram, unexplainedDivergences } from '../../../src/checker/run.js';
import type { Divergence } from '../../../src/checker/divergence.js';
import fc from 'fast-check';
import { ObservationLog } from '../../../src/cpu/l1/observe.js';
import { NestedMachine } from '../../../src/nested/machine/index.js';
import { compareObservationStreams } from '../../../src/checker/compare.js';
import { ALL_INVARIANTS, NestedMonitor } from '../../../src/checker/nested-monitor.js';
import { L1_MODEL } from '../../support/arbitraries/vmcs12.js';
import { eptCaseArb, ORACLE_L2_BUDGET, oracleProgram, reflectCaseArb } from '../../support/arbitraries/oracle.js';

const STOP = { reason: 18, actions: [{ kind: 'stop' as const }] };
const config: L1Config = {
  l2: { mode: 'long64', code: asm64`cpuid; mov rax, [rsi]; ud2; vmcall`, gprs: [[6, 0x9_0000n]] },
  exceptionBitmap: 1 << 6, ept: {}, controls: { primary: Primary.HLT_EXITING },
  policy: { rules: [STOP, { reason: 0, actions: [{ kind: 'stop' }] }] },
};
const opts = { cpu: L1_MODEL, profile: sdmProfile(), mode: 'all' as const };

describe('checkProgram', () => {
  it('the sdm L0 is indistinguishable: no divergence, and every invariant family ran', () => {
    const r = checkProgram(builtinL1(config), {}, opts);
    expect(r.divergences).toEqual([]);
    const s = r.stats;
    expect(s.observations.nested).toBe(s.observations.reference);
    expect(s.reference.exits).toBe(2);
    expect(s.invariants.mergeChecks).toBeGreaterThanOrEqual(2);
    expect(s.invariants.ept02Checks).toBeGreaterThan(0);
    expect(s.invariants.ept02Leaves).toBeGreaterThan(0);
    expect(s.invariants.reflectionsJudged).toBeGreaterThanOrEqual(2);
    expect(s.invariants.vpidChecks).toBeGreaterThan(0);
    expect(s.unexplained).toBe(0);
  });

  it('a wrong L0 (exception bitmap not merged) is caught by the merge invariant and by L1\'s observations', () => {
    const base = defaultL0Parts(sdmProfile());
    const parts = {
      ...base,
      merge: (...a: Parameters<typeof mergeVmcs02>) => {
        const r = base.merge(...a);
        r.vmcs02.set32(Field.EXCEPTION_BITMAP, a[2].exceptionBitmap);
        return r;
      },
    };
    const r = checkProgram(builtinL1(config), {}, { ...opts, parts });
    const rules = r.divergences.map((d) => d.rule);
    expect(rules).toContain('merge.provenance');
    expect(rules).toContain('merge.exception-bitmap');
    expect(rules.some((x) => x.startsWith('oracle.'))).toBe(true);
    expect(r.divergences.every((d) => d.kind !== 'expected-deviation')).toBe(true);
    const first = checkProgram(builtinL1(config), {}, { ...opts, parts, mode: 'first' });
    expect(first.divergences).toHaveLength(1);
    expect(first.divergences[0]!.event).toBe(Math.min(...r.divergences.map((d) => d.event)));
  });

  it('a nested machine that throws is a divergence, not a crash of the checker', () => {
    const parts = { ...defaultL0Parts(sdmProfile()), merge: () => { throw new Error('boom'); } };
    const r = checkProgram(builtinL1(config), {}, { ...opts, parts });
    expect(r.stats.nested).toBeNull();
    expect(r.divergences.map((d) => [d.rule, d.actual])).toContainEqual(['oracle.nested-error', 'boom']);
  });

  it('kvm: a divergence its declared deviation causes is an expected deviation with the deviation id', () => {
    // A null host SS selector: the SDM makes SS unusable, KVM loads a usable flat segment (N14).
    const c = { config, schedule: [], edits: [{ kind: 'write' as const, field: Field.HOST_SS_SELECTOR, value: 0n }] };
    const sdm = checkProgram(oracleProgram(c), {}, opts);
    expect(sdm.divergences).toEqual([]);
    const kvm = checkProgram(oracleProgram(c), {}, { ...opts, profile: kvmProfile() });
    expect(kvm.divergences.length).toBeGreaterThan(0);
    expect(unexplainedDivergences(kvm)).toEqual([]);
    expect(new Set(kvm.divergences.map((d) => d.deviation))).toEqual(new Set(['kvm.host-null-selector-usable']));
    expect(kvm.divergences.every((d) => d.kind === 'expected-deviation' && d.rule === 'oracle.o3.l1-state' && d.field?.startsWith('SS.'))).toBe(true);
    expect(kvm.stats.counterfactualRuns).toBeGreaterThan(0);
    const omitted = checkProgram(oracleProgram(c), {}, { ...opts, profile: kvmProfile(), expectedDeviations: 'omit' });
    expect(omitted.divergences).toEqual([]);
    expect(omitted.stats.expectedDeviations).toBe(kvm.divergences.length);
  });
});

describe('checking does not disturb the nested run', () => {
  it('the observations of a nested run are the same with every invariant monitored and with none', () => {
    const cases = fc.sample(fc.oneof(eptCaseArb.map((c) => ({ ...c, config: { ...c.config, ept: { ...c.config.ept, accessedDirty: true } } })), reflectCaseArb), { seed: 11, numRuns: 12 });
    for (const c of cases) {
      const plain = new ObservationLog();
      new NestedMachine({ cpu: L1_MODEL, sink: plain, schedule: c.schedule, l2StepBudget: ORACLE_L2_BUDGET }).run(oracleProgram(c));
      const watched = new ObservationLog();
      const monitor = new NestedMonitor(new Set(ALL_INVARIANTS));
      const m = new NestedMachine({
        cpu: L1_MODEL, sink: monitor.observer(watched), records: monitor, parts: monitor.wrap(defaultL0Parts(sdmProfile())), schedule: c.schedule, l2StepBudget: ORACLE_L2_BUDGET,
      });
      monitor.machine = m;
      m.run(oracleProgram(c));
      expect(compareObservationStreams(plain.items, watched.items)).toEqual([]);
      expect(watched.items.length).toBe(plain.items.length);
    }
  });
});

describe('attribute', () => {
  const d = (rule: string, event: number, field?: string): Divergence => ({ kind: 'observation', rule, sdm: 's', event, level: 'L1', expected: '1', actual: '2', explanation: 'e', ...(field ? { field } : {}) });
  const profile = kvmProfile({ only: ['kvm.host-cr0-full-load', 'kvm.abort-as-triple-fault'] });

  it('labels what disappears without the deviation, keeps what persists, and counts re-runs', () => {
    const a = d('oracle.o6.shutdown', 5);
    const b = d('oracle.o3.l1-state', 9, 'cr0');
    const c = d('oracle.o2.qualification', 9, 'EXIT_QUALIFICATION');
    const rerun = (ids: readonly string[]) => [
      ...(ids.includes('kvm.abort-as-triple-fault') ? [] : [a]),
      ...(ids.includes('kvm.host-cr0-full-load') ? [] : [b]),
      c,
    ];
    const r = attribute([a, b, c], profile, rerun);
    expect(r.divergences.map((x) => [x.kind, x.deviation])).toEqual([
      ['expected-deviation', 'kvm.abort-as-triple-fault'], ['expected-deviation', 'kvm.host-cr0-full-load'], ['observation', undefined],
    ]);
    expect(r.runs).toBeGreaterThanOrEqual(2);
  });

  it('names no deviation when none is a candidate, and attributes consequences the map does not name', () => {
    expect(attribute([d('oracle.o2.qualification', 1)], profile, () => []).runs).toBe(0);
    const x = d('oracle.o6.shutdown', 3);
    const later = d('oracle.o1.vmread-value', 7, 'GUEST_RIP');
    const r = attribute([x, later], profile, (ids) => (ids.includes('kvm.abort-as-triple-fault') ? [] : [x, later]));
    expect(r.divergences.map((y) => y.deviation)).toEqual(['kvm.abort-as-triple-fault', 'kvm.abort-as-triple-fault']);
  });
});
