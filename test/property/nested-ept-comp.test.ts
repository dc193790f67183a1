// P-EPT-COMP and P-EPT-AD (reference §9.2): for generated EPT12/EPT01 pairs and sequences of L2 accesses, the nested
// outcome (host address, EPT violation 48 with its qualification, misconfiguration 49, or L0-internal) equals the
// reference's walk of EPT12 followed by L1 memory (EPT01); every EPT02 leaf stays within perm12 ∩ perm01, no larger
// than both pages, with the profile's memory type; and EPT12's A/D flags end up exactly as the reference's.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { kvmProfile, sdmProfile } from '../../src/nested/profile.js';
import { arbEptCase } from '../support/arbitraries/ept.js';
import { propertyParams } from '../support/property.js';
import { arbEpt01Spec, audit, buildFixture, ept12Entries, nestedOutcome, referenceOutcome, show } from '../unit/nested/ept02/harness.js';

// The L1 capabilities are generated; the "hardware" offers at least as much (WB EPTP, 4-level walks, both large page
// sizes, execute-only, A/D so EPTP02 A/D = EPTP12 A/D) and advanced exit information when mode-based execute is on
// (L0 can only tell a user fetch from the EPT02 exit with bits 9–11).
const arbCase = fc.record({ c: arbEptCase, spec: arbEpt01Spec });

/** kvm's basic qualification keeps bits 0–5, 7 and 8 (N4); those must still equal the reference's. */
const KVM_BITS = 0x1bfn;

describe('P-EPT-COMP: EPT12 ∘ EPT01 through EPT02', () => {
  for (const [name, profile, mask] of [['sdm', sdmProfile(), (1n << 64n) - 1n], ['kvm', kvmProfile(), KVM_BITS]] as const) {
    it(`outcomes, rights, page sizes and memory types (${name} profile)`, () => {
      fc.assert(
        fc.property(arbCase, ({ c, spec }) => {
          const f = buildFixture(c, spec, profile);
          if (typeof f === 'string') return; // EPTP12 not valid for the generated capabilities: nothing to compare
          for (const [i, { gpa, access }] of c.accesses.entries()) {
            const want = referenceOutcome(f, gpa, access);
            const got = nestedOutcome(f, gpa, access);
            const norm = (o: typeof want) => (o.kind === 'exit' ? { ...o, qualification: o.qualification & mask } : o);
            expect(show(norm(got)), `access ${i} to L2 GPA 0x${gpa.toString(16)} (${access.type}, ${access.cause.kind})`).toBe(show(norm(want)));
            const issues = audit(f);
            expect(issues.map((x) => `${x.rule}: want ${x.expected}, got ${x.actual} (leaf 0x${x.leaf.gpa.toString(16)} ${x.leaf.pageSize})`)).toEqual([]);
          }
        }),
        propertyParams({ numRuns: 300 }),
      );
    });
  }

  it('repeated accesses hit EPT02 (L0 fills once per page and access class)', () => {
    fc.assert(
      fc.property(arbCase, ({ c, spec }) => {
        const f = buildFixture(c, spec, sdmProfile());
        if (typeof f === 'string') return;
        const { gpa, access } = c.accesses[0]!;
        const first = nestedOutcome(f, gpa, access);
        const fills = f.fills.length;
        const again = nestedOutcome(f, gpa, access);
        expect(show(again)).toBe(show(first));
        if (first.kind === 'hpa') expect(f.fills.length).toBe(fills);
      }),
      propertyParams({ numRuns: 60 }),
    );
  });
});

describe('P-EPT-AD: EPT12 accessed/dirty flags', () => {
  it('after a sequence of L2 accesses EPT12 A/D equal the reference walk\'s', () => {
    fc.assert(
      fc.property(arbCase, ({ c, spec }) => {
        const f = buildFixture(c, spec, sdmProfile());
        if (typeof f === 'string') return;
        for (const { gpa, access } of c.accesses) {
          referenceOutcome(f, gpa, access);
          nestedOutcome(f, gpa, access);
        }
        const { ref, nested } = ept12Entries(f, c.tables);
        expect(nested.map((v) => v.toString(16))).toEqual(ref.map((v) => v.toString(16)));
      }),
      propertyParams({ numRuns: 250 }),
    );
  });

  it('accesses repeated in a different order still leave the reference\'s A/D flags', () => {
    fc.assert(
      fc.property(arbCase, fc.array(fc.nat(), { minLength: 1, maxLength: 12 }), ({ c, spec }, order) => {
        const f = buildFixture(c, spec, sdmProfile());
        if (typeof f === 'string') return;
        for (const k of order) {
          const { gpa, access } = c.accesses[k % c.accesses.length]!;
          referenceOutcome(f, gpa, access);
          nestedOutcome(f, gpa, access);
        }
        const { ref, nested } = ept12Entries(f, c.tables);
        expect(nested).toEqual(ref);
      }),
      propertyParams({ numRuns: 80 }),
    );
  });
});
