// The incremental vmcs02 merge (src/nested/merge/incremental.ts): a step is re-derived exactly when a source its recorded
// inputs name changed, and over random VMWRITE / L0-input sequences every merge equals the from-scratch merge (same
// vmcs02 words, same provenance records and values).
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { Field } from '../../../src/cpu/generated/vmcs-fields.js';
import { Primary } from '../../../src/cpu/generated/controls.js';
import { slotFields, Vmcs } from '../../../src/cpu/vmcs.js';
import { validVmcs } from '../../../src/cpu/vmentry/valid-state.js';
import { dependenciesOf, MergeSources } from '../../../src/nested/merge/incremental.js';
import { mergeVmcs02, mergeVmcs02FromScratch } from '../../../src/nested/merge/merge.js';
import { defaultL0MergeInputs } from '../../../src/nested/merge/l0-inputs.js';
import type { L0MergeInputs, MergeResult } from '../../../src/nested/merge/types.js';
import { kvmProfile, sdmProfile, type L0Profile } from '../../../src/nested/profile.js';
import { propertyParams } from '../../support/property.js';
import { HOST_MODEL, L1_MODEL } from '../../support/arbitraries/vmcs12.js';

const F = Field;
const WRITABLE = slotFields().filter((f) => f.type !== 'read-only data');

function plain(r: MergeResult): unknown {
  return {
    words: [...r.vmcs02.words],
    provenance: r.provenance.map((p) => ({ field: p.field, encoding: p.encoding, rule: p.rule, value: p.value, inputs: p.inputs.map((x) => ({ ...x })) })),
    issues: r.issues,
  };
}

function recordOf(r: MergeResult, encoding: number): object {
  const p = r.provenance.find((x) => x.encoding === encoding);
  if (!p) throw new Error(`no provenance for 0x${encoding.toString(16)}`);
  return p;
}

describe('dependenciesOf / MergeSources', () => {
  it('a write to a vmcs12 field marks exactly the steps that name it as changed', () => {
    const v01 = validVmcs(HOST_MODEL);
    const v12 = validVmcs(L1_MODEL);
    const l0 = defaultL0MergeInputs(v01);
    const profile = sdmProfile();
    const s = new MergeSources();
    expect(s.begin(v01, v12, l0, profile)).toBe(false);
    const merged = new Vmcs();
    // Dependencies are read off during a merge, before the snapshot that ends it (an L0 item first named later counts as changed).
    const readsTpr = dependenciesOf([{ from: 'vmcs12', field: 'TPR_THRESHOLD', value: 0n }, { from: 'L0', field: 'merged.CPU_BASED_VM_EXEC_CONTROL', value: 0n }]);
    const readsRip = dependenciesOf([{ from: 'L0', field: 'realEntry', value: 1n }, { from: 'vmcs12', field: 'GUEST_RIP', value: 0n }]);
    const opaque = dependenciesOf([{ from: 'L0', field: 'somethingNoRuleRecords', value: 0n }]);
    s.end(v01, v12, l0, profile, merged);
    v12.set(F.TPR_THRESHOLD, v12.get(F.TPR_THRESHOLD) ^ 1n);
    expect(s.begin(v01, v12, l0, profile)).toBe(true);
    expect(s.unchanged(readsTpr)).toBe(false);
    expect(s.unchanged(readsRip)).toBe(true);
    expect(s.unchanged(opaque)).toBe(false);
    // An L0 item compared by value (a new object with the same values is unchanged), a profile by its deviations.
    const same = defaultL0MergeInputs(v01);
    const flipped = defaultL0MergeInputs(v01, { realEntry: false, l2Live: v12.clone() });
    s.end(v01, v12, l0, profile, merged);
    expect(s.begin(v01, v12, same, sdmProfile())).toBe(true);
    expect(s.unchanged(readsRip)).toBe(true);
    expect(s.unchanged(dependenciesOf([{ from: 'L0', field: 'deviation.kvm.unbacked-vmcs12-pages', value: 0n }]))).toBe(true);
    s.end(v01, v12, same, profile, merged);
    expect(s.begin(v01, v12, flipped, kvmProfile())).toBe(true);
    expect(s.unchanged(readsRip)).toBe(false);
    expect(s.unchanged(dependenciesOf([{ from: 'L0', field: 'deviation.kvm.unbacked-vmcs12-pages', value: 0n }]))).toBe(false);
  });

  it('after a write to vmcs12.TPR_THRESHOLD the merge re-derives TPR_THRESHOLD and hands out the other records again', () => {
    const v01 = validVmcs(HOST_MODEL);
    const v12 = validVmcs(L1_MODEL);
    v12.set32(F.CPU_BASED_VM_EXEC_CONTROL, v12.lo(F.CPU_BASED_VM_EXEC_CONTROL) | Primary.USE_TPR_SHADOW);
    const profile = sdmProfile();
    mergeVmcs02(v01, v12, defaultL0MergeInputs(v01), profile);
    const before = mergeVmcs02(v01, v12, defaultL0MergeInputs(v01), profile);
    v12.set32(F.TPR_THRESHOLD, (v12.lo(F.TPR_THRESHOLD) + 1) & 0xf);
    const after = mergeVmcs02(v01, v12, defaultL0MergeInputs(v01), profile);
    expect(recordOf(after, F.TPR_THRESHOLD)).not.toBe(recordOf(before, F.TPR_THRESHOLD));
    expect(after.vmcs02.lo(F.TPR_THRESHOLD)).toBe(v12.lo(F.TPR_THRESHOLD));
    expect(recordOf(after, F.GUEST_RIP)).toBe(recordOf(before, F.GUEST_RIP));
    expect(recordOf(after, F.PIN_BASED_VM_EXEC_CONTROL)).toBe(recordOf(before, F.PIN_BASED_VM_EXEC_CONTROL));
    expect(plain(after)).toEqual(plain(mergeVmcs02FromScratch(v01, v12, defaultL0MergeInputs(v01), profile)));
  });
});

type Op =
  | { kind: 'vmwrite12' | 'vmwrite01'; field: number; value: bigint }
  | { kind: 'resume'; live: { field: number; value: bigint }[] }
  | { kind: 'real' }
  | { kind: 'l0'; over: Partial<L0MergeInputs> }
  | { kind: 'profile'; kvm: boolean };

const fieldArb = fc.constantFrom(...WRITABLE.map((f) => f.encoding));
const valueArb = fc.oneof(fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), fc.constantFrom(0n, 1n, 0xffff_ffffn, 0x8000_0000n, 0x80n));
const l0OverArb: fc.Arbitrary<Partial<L0MergeInputs>> = fc.record({
  exceptionBitmap: fc.nat({ max: 0xffff_ffff }),
  needsPfIntercept: fc.boolean(),
  msrBitmap02: fc.option(fc.constant(0x5000n), { nil: null }),
  virtualApicPage: fc.option(fc.constant(0x6000n), { nil: null }),
  apicAccessPage: fc.option(fc.constant(0x7000n), { nil: null }),
  postedIntrDesc: fc.option(fc.constant(0x8000n), { nil: null }),
  requestInterruptWindow: fc.boolean(),
  emulatesUmip: fc.boolean(),
  shadowPdptrs: fc.option(fc.array(fc.bigInt({ min: 0n, max: 0xffffn }), { minLength: 4, maxLength: 4 }), { nil: null }),
  reinjection: fc.option(fc.record({ intrInfo: fc.nat({ max: 0xffff_ffff }), errorCode: fc.nat({ max: 0xffff }), instructionLength: fc.nat({ max: 15 }) }), { nil: null }),
  eptp02: fc.bigInt({ min: 0n, max: 0xffff_f000n }),
}, { requiredKeys: [] });

const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 6, arbitrary: fc.record({ kind: fc.constant('vmwrite12' as const), field: fieldArb, value: valueArb }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('vmwrite01' as const), field: fieldArb, value: valueArb }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('resume' as const), live: fc.array(fc.record({ field: fieldArb, value: valueArb }), { maxLength: 4 }) }) },
  { weight: 2, arbitrary: fc.constant({ kind: 'real' as const }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('l0' as const), over: l0OverArb }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('profile' as const), kvm: fc.boolean() }) },
);

describe('incremental merge = from-scratch merge', () => {
  it('holds after every step of random VMWRITE / L2-resume / L0-input / profile sequences', () => {
    fc.assert(
      fc.property(fc.array(opArb, { minLength: 1, maxLength: 24 }), (ops) => {
        const v01 = validVmcs(HOST_MODEL);
        const v12 = validVmcs(L1_MODEL);
        let over: Partial<L0MergeInputs> = {};
        let live: Vmcs | null = null;
        let profile: L0Profile = sdmProfile();
        for (const op of ops) {
          switch (op.kind) {
            case 'vmwrite12': v12.set(op.field, op.value); break;
            case 'vmwrite01': v01.set(op.field, op.value); break;
            case 'resume': {
              // L0 resumes L2: its live state is the previous vmcs02 with what L2 changed since.
              live = mergeVmcs02FromScratch(v01, v12, defaultL0MergeInputs(v01, over), profile).vmcs02;
              for (const w of op.live) live.set(w.field, w.value);
              break;
            }
            case 'real': live = null; break;
            case 'l0': over = { ...over, ...op.over }; break;
            case 'profile': profile = op.kvm ? kvmProfile() : sdmProfile(); break;
          }
          const inputs = (): L0MergeInputs => defaultL0MergeInputs(v01, { ...over, ...(live ? { realEntry: false, l2Live: live.clone() } : {}) });
          const incremental = mergeVmcs02(v01, v12, inputs(), profile);
          const scratch = mergeVmcs02FromScratch(v01, v12, inputs(), profile);
          expect(plain(incremental)).toEqual(plain(scratch));
        }
      }),
      propertyParams({ numRuns: 60 }),
    );
  });
});
