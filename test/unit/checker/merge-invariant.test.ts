// The merge invariant (src/checker/invariants/merge.ts) on hand-built and generated vmcs01/vmcs12 + L0 inputs: silent on
// what mergeVmcs02 produces (sdm and kvm), and it names the rule of a field that a wrong merge got wrong — including
// wrong values whose provenance was made to agree, which only the independent re-derivation can see.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { Field } from '../../../src/cpu/generated/vmcs-fields.js';
import { EntryCtl, Primary } from '../../../src/cpu/generated/controls.js';
import { mergeVmcs02 } from '../../../src/nested/merge/merge.js';
import { defaultL0MergeInputs } from '../../../src/nested/merge/l0-inputs.js';
import { mergeMsrBitmap, nestedMsrPassthrough } from '../../../src/nested/msr-bitmap.js';
import { kvmProfile, sdmProfile } from '../../../src/nested/profile.js';
import { checkMerge, type MergeCheckInput } from '../../../src/checker/invariants/merge.js';
import { propertyParams } from '../../support/property.js';
import { HOST_PAGES, vmcs01PolicyArb, vmcs12WorldArb, type Vmcs01Policy, type Vmcs12World } from '../../support/arbitraries/vmcs12.js';

function build(p: Vmcs01Policy, w: Vmcs12World, profile = sdmProfile(), needsPf = false): MergeCheckInput {
  const bitmap12 = w.memory.read(w.vmcs12.get(Field.MSR_BITMAP), 4096)!;
  const pri12 = w.vmcs12.lo(Field.CPU_BASED_VM_EXEC_CONTROL);
  const sec12 = pri12 & Primary.ACTIVATE_SECONDARY_CONTROLS ? w.vmcs12.lo(Field.SECONDARY_VM_EXEC_CONTROL) : 0;
  const bitmap02 = mergeMsrBitmap(p.msrBitmap01, bitmap12, nestedMsrPassthrough(sec12));
  const l0 = defaultL0MergeInputs(p.vmcs01, { msrBitmap02: HOST_PAGES.msr02, needsPfIntercept: needsPf });
  const r = mergeVmcs02(p.vmcs01, w.vmcs12, l0, profile);
  return { event: 7, vmcs01: p.vmcs01, vmcs12: w.vmcs12, l0, profile, vmcs02: r.vmcs02, provenance: r.provenance, msrBitmaps: { bitmap01: p.msrBitmap01, bitmap12, bitmap02 } };
}

describe('checkMerge', () => {
  it('reports nothing for what mergeVmcs02 builds (sdm and kvm, with and without L0 #PF interception)', () => {
    fc.assert(fc.property(vmcs01PolicyArb, vmcs12WorldArb, fc.boolean(), fc.boolean(), (p, w, kvm, pf) => {
      const d = checkMerge(build(p, w, kvm ? kvmProfile() : sdmProfile(), pf));
      if (d.length > 0) throw new Error(`unexpected: ${JSON.stringify(d.map((x) => [x.rule, x.field, x.expected, x.actual]))}`);
    }), propertyParams({ numRuns: 60 }));
  });

  it('names the exception-bitmap rule when vmcs12 vectors are missing from vmcs02, even with matching provenance', () => {
    const [p, w] = fc.sample(fc.tuple(vmcs01PolicyArb, vmcs12WorldArb), { seed: 1, numRuns: 1 })[0]!;
    w.vmcs12.set32(Field.EXCEPTION_BITMAP, 1 << 6);
    const input = build(p, w);
    const wrong = input.vmcs02.clone();
    wrong.set32(Field.EXCEPTION_BITMAP, input.l0.exceptionBitmap & ~(1 << 6) & ~(1 << 14));
    // Provenance rewritten to agree with the wrong value: only re-derivation can tell.
    const prov = input.provenance.map((x) => (x.encoding === Field.EXCEPTION_BITMAP ? { ...x, value: wrong.get(Field.EXCEPTION_BITMAP) } : x));
    const d = checkMerge({ ...input, vmcs02: wrong, provenance: prov });
    const rules = d.map((x) => x.rule);
    expect(rules).toContain('merge.exception-bitmap');
    const eb = d.find((x) => x.rule === 'merge.exception-bitmap' && x.field === 'EXCEPTION_BITMAP')!;
    expect(eb.kind).toBe('invariant');
    expect(eb.level).toBe('L0');
    expect(BigInt(eb.expected) & (1n << 6n)).toBe(1n << 6n);
  });

  it('reports a field without provenance and provenance that misquotes vmcs12', () => {
    const [p, w] = fc.sample(fc.tuple(vmcs01PolicyArb, vmcs12WorldArb), { seed: 2, numRuns: 1 })[0]!;
    const input = build(p, w);
    const missing = checkMerge({ ...input, provenance: input.provenance.filter((x) => x.field !== 'GUEST_RIP') });
    expect(missing.some((x) => x.rule === 'merge.provenance' && x.field === 'GUEST_RIP')).toBe(true);
    const lied = input.provenance.map((x) => (x.field === 'GUEST_RIP' ? { ...x, inputs: x.inputs.map((i) => (i.from === 'vmcs12' ? { ...i, value: i.value ^ 0x10n } : i)) } : x));
    const d = checkMerge({ ...input, provenance: lied });
    expect(d.map((x) => [x.rule, x.field])).toContainEqual(['merge.provenance', 'GUEST_RIP']);
  });

  it('reports a CR0 read shadow taken from the wrong VMCS', () => {
    const [p, w] = fc.sample(fc.tuple(vmcs01PolicyArb, vmcs12WorldArb), { seed: 3, numRuns: 1 })[0]!;
    w.vmcs12.set(Field.CR0_GUEST_HOST_MASK, 0x8000_0001n);
    w.vmcs12.set(Field.CR0_READ_SHADOW, 0x1n);
    w.vmcs12.set(Field.GUEST_CR0, 0x8000_0031n);
    const input = build(p, w);
    const wrong = input.vmcs02.clone();
    wrong.set(Field.CR0_READ_SHADOW, p.vmcs01.get(Field.CR0_READ_SHADOW) ^ 0x8000_0000n);
    const d = checkMerge({ ...input, vmcs02: wrong });
    expect(d.some((x) => x.rule === 'merge.cr0-read-shadow' && x.expected === '0x31')).toBe(true);
  });

  it('reports an MSR bitmap merged as an intersection', () => {
    const [p, w] = fc.sample(fc.tuple(vmcs01PolicyArb, vmcs12WorldArb), { seed: 4, numRuns: 1 })[0]!;
    w.vmcs12.set32(Field.CPU_BASED_VM_EXEC_CONTROL, w.vmcs12.lo(Field.CPU_BASED_VM_EXEC_CONTROL) | Primary.USE_MSR_BITMAPS);
    const bm12 = new Uint8Array(4096);
    bm12[0x10 >> 3] = 1 << (0x10 & 7); // RDMSR of IA32_TSC exits for L1
    w.memory.map(w.vmcs12.get(Field.MSR_BITMAP), bm12);
    const input = build(p, w);
    const inter = input.msrBitmaps!.bitmap01!.map((b, i) => b & bm12[i]!);
    const d = checkMerge({ ...input, msrBitmaps: { ...input.msrBitmaps!, bitmap02: inter } });
    const r = d.find((x) => x.rule === 'merge.msr-bitmap');
    if ((input.msrBitmaps!.bitmap01![2]! & 1) === 0) expect(r?.field).toBe('MSR 0x10 read');
    else expect(r).toBeDefined();
  });

  it('names the primary-controls rule when CR8 exiting is not forced without a TPR shadow (CVE-2017-12154)', () => {
    const [p, w] = fc.sample(fc.tuple(vmcs01PolicyArb, vmcs12WorldArb), { seed: 5, numRuns: 1 })[0]!;
    w.vmcs12.set32(Field.CPU_BASED_VM_EXEC_CONTROL, w.vmcs12.lo(Field.CPU_BASED_VM_EXEC_CONTROL) & ~(Primary.USE_TPR_SHADOW | Primary.CR8_LOAD_EXITING | Primary.CR8_STORE_EXITING));
    const input = build(p, w);
    const wrong = input.vmcs02.clone();
    wrong.set32(Field.CPU_BASED_VM_EXEC_CONTROL, input.vmcs02.lo(Field.CPU_BASED_VM_EXEC_CONTROL) & ~(Primary.CR8_LOAD_EXITING | Primary.CR8_STORE_EXITING));
    const d = checkMerge({ ...input, vmcs02: wrong });
    expect(d.some((x) => x.rule === 'merge.primary-controls' && x.field === 'CPU_BASED_VM_EXEC_CONTROL')).toBe(true);
  });

  it('derives the kvm and sdm EFER rules for an L2 entered with paging off (SDM 26.3.2.1 vs KVM nested_vmx_calc_efer)', () => {
    const [p, w] = fc.sample(fc.tuple(vmcs01PolicyArb, vmcs12WorldArb), { seed: 6, numRuns: 1 })[0]!;
    w.vmcs12.set32(Field.VM_ENTRY_CONTROLS, w.vmcs12.lo(Field.VM_ENTRY_CONTROLS) & ~(EntryCtl.LOAD_IA32_EFER | EntryCtl.IA32E_MODE_GUEST));
    w.vmcs12.set(Field.GUEST_CR0, 0x30n);
    for (const profile of [sdmProfile(), kvmProfile()]) expect(checkMerge(build(p, w, profile))).toEqual([]);
    const sdm = build(p, w, sdmProfile());
    expect(sdm.vmcs02.get(Field.GUEST_IA32_EFER) & 0x100n).toBe(sdm.l0.l1.efer & 0x100n);
  });
});
