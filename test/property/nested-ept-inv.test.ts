// P-EPT-INV (reference §9.2): after L1 changes EPT12 (entries cleared, rights changed, frames or tables retargeted) and
// executes INVEPT — single-context with the EPTRTA in use, or all-context — no L2 access is translated by the old
// mapping: every outcome equals the reference walk of the new EPT12 and EPT02 audits clean. With write tracking of every
// EPT12 level the same holds without INVEPT (L0 zaps on the write itself).
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { defaultL0Parts } from '../../src/nested/l0/parts.js';
import { sdmProfile } from '../../src/nested/profile.js';
import { EPT_TABLE_POOL, arbEptCase } from '../support/arbitraries/ept.js';
import { propertyParams } from '../support/property.js';
import { arbEpt01Spec, audit, buildFixture, nestedOutcome, referenceOutcome, show, writeEntry, type NestedEptFixture } from '../unit/nested/ept02/harness.js';
import type { EptCase } from '../support/arbitraries/ept.js';

interface Change {
  readonly which: number;
  readonly op: 'clear' | 'rights' | 'retarget-table' | 'retarget-frame';
  readonly rwx: number;
  readonly slot: number;
  readonly frame: bigint;
}

const arbChange: fc.Arbitrary<Change> = fc.record({
  which: fc.nat(),
  op: fc.constantFrom('clear', 'rights', 'retarget-table', 'retarget-frame'),
  rwx: fc.constantFrom(0, 1, 3, 5, 7),
  slot: fc.integer({ min: 0, max: EPT_TABLE_POOL.length - 1 }),
  frame: fc.bigInt({ min: 0n, max: (1n << 24n) - 1n }),
});

const arbInv = fc.record({
  c: arbEptCase,
  spec: arbEpt01Spec,
  changes: fc.array(arbChange, { minLength: 1, maxLength: 4 }),
  kind: fc.constantFrom('single' as const, 'all' as const),
});

/** The new value of an entry: bits 2:0 and the frame are what a hypervisor changes. */
function changed(old: bigint, ch: Change): bigint {
  switch (ch.op) {
    case 'clear': return 0n;
    case 'rights': return (old & ~7n) | BigInt(ch.rwx);
    case 'retarget-table': return (old & ~0x000f_ffff_ffff_f000n) | EPT_TABLE_POOL[ch.slot]!;
    case 'retarget-frame': {
      // Keep the frame aligned to whatever page size the entry maps (bit 7 makes it a large page at levels 2–3).
      const large = (old & 0x80n) !== 0n;
      const frame = large ? (ch.frame << 12n) & ~0x3fff_ffffn : ch.frame << 12n;
      return (old & ~0x000f_ffff_ffff_f000n) | frame;
    }
  }
}

/** The tables as they are after the changes (so the fixture backs every page a walk will read, before or after). */
function afterChanges(c: EptCase, changes: readonly Change[]): (readonly [bigint, bigint])[] {
  const m = new Map<bigint, bigint>(c.tables.entries.map(([a, v]) => [a, v]));
  for (const ch of changes) {
    const [addr] = c.tables.entries[ch.which % c.tables.entries.length]!;
    m.set(addr, changed(m.get(addr)!, ch));
  }
  return [...m.entries()];
}

function run(c: EptCase, f: NestedEptFixture, changes: readonly Change[], invept: () => void): void {
  for (const { gpa, access } of c.accesses) {
    referenceOutcome(f, gpa, access);
    nestedOutcome(f, gpa, access);
  }
  for (const ch of changes) {
    const [addr] = c.tables.entries[ch.which % c.tables.entries.length]!;
    const old = f.l1Ref.readU64(addr as never);
    writeEntry(addr, changed(old, ch), f.l1Ref, f.l1View);
  }
  invept();
  for (const [i, { gpa, access }] of c.accesses.entries()) {
    const want = referenceOutcome(f, gpa, access);
    const got = nestedOutcome(f, gpa, access);
    expect(show(got), `after the change, access ${i} to 0x${gpa.toString(16)}`).toBe(show(want));
  }
  expect(audit(f).map((x) => `${x.rule}: ${x.expected} / ${x.actual}`)).toEqual([]);
}

describe('P-EPT-INV: no stale EPT02 translation after INVEPT', () => {
  it('EPT12 changed, then INVEPT single-context (matching EPTRTA) or all-context', () => {
    const parts = defaultL0Parts(sdmProfile());
    fc.assert(
      fc.property(arbInv, ({ c, spec, changes, kind }) => {
        const f = buildFixture(c, spec, sdmProfile(), 'non-leaf', [afterChanges(c, changes)]);
        if (typeof f === 'string') return;
        run(c, f, changes, () => {
          parts.invept(f.manager, kind === 'single' ? { kind: 'ept-single-context', eptp: c.eptp } : { kind: 'ept-all-context' });
        });
      }),
      propertyParams({ numRuns: 250 }),
    );
  });

  it('with every EPT12 level write-tracked, the write alone invalidates', () => {
    fc.assert(
      fc.property(arbInv, ({ c, spec, changes }) => {
        const f = buildFixture(c, spec, sdmProfile(), 'all-levels', [afterChanges(c, changes)]);
        if (typeof f === 'string') return;
        run(c, f, changes, () => {});
      }),
      propertyParams({ numRuns: 200 }),
    );
  });
});
