// The compiled provenance-quote check (src/checker/invariants/merge-quotes.ts) against a plain lookup of each input's
// source: on real merges and on records with one input's value changed (vmcs01, vmcs12, merged, host, l2Live, L0 and
// l1 items, out-of-range values), the first misquoted input it names is the reference's, frozen (cached) or not.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { Field } from '../../../src/cpu/generated/vmcs-fields.js';
import type { Vmcs } from '../../../src/cpu/vmcs.js';
import { holdsValue, misquoted, RecordFactsCache } from '../../../src/checker/invariants/merge-quotes.js';
import { mergeVmcs02 } from '../../../src/nested/merge/merge.js';
import { defaultL0MergeInputs } from '../../../src/nested/merge/l0-inputs.js';
import type { FieldProvenance, L0MergeInputs, ProvenanceInput } from '../../../src/nested/merge/types.js';
import { slotOf } from '../../../src/cpu/vmcs.js';
import { sdmProfile } from '../../../src/nested/profile.js';
import { propertyParams } from '../../support/property.js';
import { vmcs01PolicyArb, vmcs12WorldArb } from '../../support/arbitraries/vmcs12.js';

interface Sources { vmcs01: Vmcs; vmcs12: Vmcs; vmcs02: Vmcs; l0: L0MergeInputs }

const enc = (name: string): number | undefined => (Object.prototype.hasOwnProperty.call(Field, name) ? (Field as Record<string, number>)[name] : undefined);

/** The value the input's source holds now, or undefined when the input names nothing checkable. */
function actual(s: Sources, x: ProvenanceInput): bigint | undefined {
  const f = x.field;
  if (f === undefined) return undefined;
  if (x.from === 'vmcs01' || x.from === 'vmcs12') {
    const e = enc(f);
    return e === undefined ? undefined : (x.from === 'vmcs01' ? s.vmcs01 : s.vmcs12).get(e);
  }
  const dot = f.indexOf('.');
  const head = dot < 0 ? f : f.slice(0, dot);
  const rest = dot < 0 ? '' : f.slice(dot + 1);
  if (head === 'merged' || head === 'host' || head === 'l2Live') {
    const v = head === 'merged' ? s.vmcs02 : head === 'host' ? s.l0.host : s.l0.l2Live;
    const e = enc(rest);
    return v && e !== undefined ? v.get(e) : undefined;
  }
  if (head === 'l1') {
    const y = (s.l0.l1 as unknown as Record<string, unknown>)[rest];
    return typeof y === 'bigint' ? y : undefined;
  }
  if (rest !== '') return undefined;
  const y = (s.l0 as unknown as Record<string, unknown>)[head];
  return typeof y === 'bigint' ? y : typeof y === 'number' ? BigInt(y >>> 0) : typeof y === 'boolean' ? (y ? 1n : 0n) : undefined;
}

function reference(s: Sources, p: FieldProvenance): ProvenanceInput | undefined {
  return p.inputs.find((x) => {
    const v = actual(s, x);
    return v !== undefined && v !== x.value;
  });
}

const slow = (s: Sources, x: ProvenanceInput): boolean => {
  const v = actual(s, x);
  return v !== undefined && v !== x.value;
};

function withInput(p: FieldProvenance, k: number, value: bigint, freeze: boolean): FieldProvenance {
  const inputs = p.inputs.map((x, j) => (j === k ? { ...x, value } : { ...x }));
  const q = { ...p, inputs };
  if (freeze) {
    inputs.forEach((x) => Object.freeze(x));
    Object.freeze(inputs);
    Object.freeze(q);
  }
  return q;
}

describe('compiled provenance quotes', () => {
  it('name the same misquoted input as a plain source lookup, and hold exactly the recorded value', () => {
    fc.assert(fc.property(vmcs01PolicyArb, vmcs12WorldArb, fc.boolean(), fc.constantFrom(1n, 1n << 40n, -1n, 1n << 70n), (p, w, real, delta) => {
      const profile = sdmProfile();
      const live = mergeVmcs02(p.vmcs01, w.vmcs12, defaultL0MergeInputs(p.vmcs01), profile).vmcs02;
      live.set(Field.GUEST_RIP, live.get(Field.GUEST_RIP) ^ 0x10n);
      const l0 = defaultL0MergeInputs(p.vmcs01, real ? {} : { realEntry: false, l2Live: live });
      const r = mergeVmcs02(p.vmcs01, w.vmcs12, l0, profile);
      const s: Sources = { vmcs01: p.vmcs01, vmcs12: w.vmcs12, vmcs02: r.vmcs02, l0 };
      const cache = new RecordFactsCache();
      for (const rec of r.provenance) {
        const slot = slotOf(rec.encoding);
        const facts = cache.facts(slot, rec);
        expect(misquoted(s, facts, slow)).toBe(undefined);
        expect(holdsValue(r.vmcs02, slot, facts)).toBe(true);
        expect(holdsValue(r.vmcs02, slot, cache.facts(slot, { ...rec, value: rec.value + delta }))).toBe(false);
        for (let k = 0; k < rec.inputs.length; k++) {
          for (const freeze of [true, false]) {
            const lie = withInput(rec, k, delta < 0n ? delta : rec.inputs[k]!.value ^ delta, freeze);
            const expected = reference(s, lie);
            expect(misquoted(s, cache.facts(slot, lie), slow)).toBe(expected);
          }
        }
      }
    }), propertyParams({ numRuns: 12 }));
  });
});
