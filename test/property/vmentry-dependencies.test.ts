// Exhaustive companion of the perturbation property: from every passing base state, flip each bit of each VMCS field
// (low dword, and bits 32, 47, 48, 56 and 63) and require that every check that now fails lists the flipped field in
// its catalogue `fields`. This proves the catalogue names every input of every check that these bases exercise.
import { describe, expect, it } from 'vitest';
import { ENTRY_CHECKS } from '../../src/cpu/generated/entry-checks.js';
import { slotFields } from '../../src/cpu/vmcs.js';
import { runEntryChecks } from '../../src/cpu/vmentry/index.js';
import { CONTROL_CASES } from '../unit/cpu/vmentry/cases-controls.js';
import { GUEST_CASES } from '../unit/cpu/vmentry/cases-guest.js';
import { HOST_CASES } from '../unit/cpu/vmentry/cases-host.js';
import { MSR_LOAD_CASES, NON_REGISTER_CASES } from '../unit/cpu/vmentry/cases-non-register.js';
import { SEGMENT_CASES } from '../unit/cpu/vmentry/cases-segments.js';
import { presets, runCase } from '../unit/cpu/vmentry/support.js';

const BITS = [...Array.from({ length: 32 }, (_, i) => i), 32, 47, 48, 56, 63];

describe('catalogue fields are complete', () => {
  it('a single-bit flip from any passing base state only fails checks that read the flipped field', () => {
    const fieldsOf = new Map(ENTRY_CHECKS.map((c) => [c.id, new Set(c.fields)]));
    const bases = [
      ...presets().map((cpu) => runCase({ name: `validVmcs(${cpu.id})`, expect: 'pass', needs: (c) => c === cpu, set: () => undefined })),
      ...[...CONTROL_CASES, ...HOST_CASES, ...GUEST_CASES, ...SEGMENT_CASES, ...NON_REGISTER_CASES, ...MSR_LOAD_CASES].filter((c) => c.expect === 'pass').map(runCase),
    ];
    const violations: string[] = [];
    let failingRuns = 0;
    for (const b of bases) {
      expect(b.all.failures).toEqual([]);
      for (const f of slotFields()) {
        const original = b.vmcs.get(f.encoding);
        for (const bit of BITS) {
          b.vmcs.set(f.encoding, original ^ (1n << BigInt(bit)));
          const r = runEntryChecks(b.vmcs, b.env, 'all');
          if (r.failures.length > 0) failingRuns++;
          for (const x of r.failures) if (!fieldsOf.get(x.id)!.has(f.name)) violations.push(`${x.id} after flipping ${f.name} bit ${bit} (base: ${b.model.id})`);
          b.vmcs.set(f.encoding, original);
        }
      }
    }
    expect([...new Set(violations)].slice(0, 20)).toEqual([]);
    expect(failingRuns).toBeGreaterThan(1000);
  });
});
