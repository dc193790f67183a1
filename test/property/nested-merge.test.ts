// Properties of the vmcs02 merge alone (reference §9.2): P-SUPERSET (every event that exits under vmcs12 exits under
// vmcs02, judged by the simple model in test/support/arbitraries/vmcs12.ts), P-SHADOW (CR reads and the three-way
// sync), P-TSC (two-stage composition), and provenance (every entry names a rule of merge-rules.json and its inputs
// reproduce the value).
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Field } from '../../src/cpu/generated/vmcs-fields.js';
import { Primary, Secondary } from '../../src/cpu/generated/controls.js';
import { Vmcs } from '../../src/cpu/vmcs.js';
import { mergeVmcs02, MERGE_RULES } from '../../src/nested/merge/merge.js';
import { defaultL0MergeInputs } from '../../src/nested/merge/l0-inputs.js';
import { InputLookup } from '../../src/nested/merge/rule-kit.js';
import { nestedReadCr } from '../../src/nested/merge/rules-guest.js';
import type { L0MergeInputs } from '../../src/nested/merge/types.js';
import { mergeMsrBitmap, nestedMsrPassthrough } from '../../src/nested/msr-bitmap.js';
import { threeWayCr } from '../../src/nested/sync/vmcs12-sync.js';
import { guestTsc, TSC_ONE } from '../../src/nested/tsc.js';
import { kvmProfile, sdmProfile } from '../../src/nested/profile.js';
import { propertyParams } from '../support/property.js';
import {
  HOST_PAGES, l2EventArb, PageMemory, simpleExits, tscMultiplierArb, vmcs01PolicyArb, vmcs12WorldArb, type Vmcs01Policy, type Vmcs12World,
} from '../support/arbitraries/vmcs12.js';

const root = join(import.meta.dirname, '../..');
const mergeRules = JSON.parse(readFileSync(join(root, 'schemas/nested/merge-rules.json'), 'utf8')) as {
  fields: { field: string; rule: string }[];
  groups: { rule: string; fields: string[] }[];
};
const ruleOfField = new Map<string, string>([...mergeRules.fields.map((r) => [r.field, r.rule] as const), ...mergeRules.groups.flatMap((g) => g.fields.map((f) => [f, g.rule] as const))]);

const l0ChoicesArb = fc.record({
  needsPfIntercept: fc.boolean(),
  exceptionBitmap: fc.nat({ max: 0xffff_ffff }),
  cr0GuestOwned: fc.bigInt({ min: 0n, max: 0xffff_ffffn }),
  cr4GuestOwned: fc.bigInt({ min: 0n, max: 0x3f_ffffn }),
  requestInterruptWindow: fc.boolean(),
  requestNmiWindow: fc.boolean(),
  emulatesUmip: fc.boolean(),
});

interface Setup {
  readonly vmcs02: Vmcs;
  readonly hostMemory: PageMemory;
  readonly l0: L0MergeInputs;
}

/** Merge with the vmcs02 MSR bitmap built by msr-bitmap.ts and mapped in host memory. */
function setup(p: Vmcs01Policy, w: Vmcs12World, choices: Partial<L0MergeInputs>): Setup {
  const hostMemory = new PageMemory();
  const bitmap12 = w.memory.read(w.vmcs12.get(Field.MSR_BITMAP), 4096)!;
  const pri12 = w.vmcs12.lo(Field.CPU_BASED_VM_EXEC_CONTROL);
  const sec12 = pri12 & Primary.ACTIVATE_SECONDARY_CONTROLS ? w.vmcs12.lo(Field.SECONDARY_VM_EXEC_CONTROL) : 0;
  hostMemory.map(HOST_PAGES.msr02, mergeMsrBitmap(p.msrBitmap01, bitmap12, nestedMsrPassthrough(sec12)));
  const l0 = defaultL0MergeInputs(p.vmcs01, { ...choices, msrBitmap02: HOST_PAGES.msr02 });
  return { vmcs02: mergeVmcs02(p.vmcs01, w.vmcs12, l0, sdmProfile()).vmcs02, hostMemory, l0 };
}

describe('P-SUPERSET: exits(vmcs12, e) ⇒ exits(vmcs02, e)', () => {
  it('holds for generated vmcs01 policies, vmcs12 configurations and L2 events', () => {
    fc.assert(
      fc.property(vmcs01PolicyArb, vmcs12WorldArb, l0ChoicesArb, fc.array(l2EventArb, { minLength: 1, maxLength: 8 }), (p, w, c, events) => {
        const s = setup(p, w, c);
        for (const e of events) {
          if (simpleExits(w.vmcs12, e, w.memory.read)) {
            expect(simpleExits(s.vmcs02, e, s.hostMemory.read), `event ${JSON.stringify(e, (_k, x: unknown) => (typeof x === 'bigint' ? `${x}n` : x))}`).toBe(true);
          }
        }
      }),
      propertyParams({ numRuns: 200 }),
    );
  });
});

/**
 * CR0 bits VM entry never loads from GUEST_CR0 (ET, NW, CD, reserved; SDM 26.3.2.1): on a CPU they are the processor's
 * (L1's), not vmcs12's, so these field-level properties compare only the loaded bits; the unloaded ones are checked end
 * to end by the oracle (test/property/oracle-state.test.ts P-SHADOW, test/unit/nested/l0/oracle-regressions.test.ts).
 */
const loadedBits = (cr: 0 | 4): bigint => (cr === 0 ? ~(0x10n | 0xffc0n | (1n << 17n) | 0x1ff8_0000n | (3n << 29n)) & 0xffff_ffff_ffff_ffffn : 0xffff_ffff_ffff_ffffn);

describe('P-SHADOW', () => {
  it('L2 reads of CR0/CR4 under vmcs02 equal nested_read_cr0/cr4(vmcs12)', () => {
    fc.assert(
      fc.property(vmcs01PolicyArb, vmcs12WorldArb, l0ChoicesArb, (p, w, c) => {
        const s = setup(p, w, c);
        for (const [g, m, sh, cr] of [[Field.GUEST_CR0, Field.CR0_GUEST_HOST_MASK, Field.CR0_READ_SHADOW, 0], [Field.GUEST_CR4, Field.CR4_GUEST_HOST_MASK, Field.CR4_READ_SHADOW, 4]] as const) {
          const l2Reads = nestedReadCr(s.vmcs02.get(g), s.vmcs02.get(m), s.vmcs02.get(sh));
          expect(l2Reads & loadedBits(cr)).toBe(nestedReadCr(w.vmcs12.get(g), w.vmcs12.get(m), w.vmcs12.get(sh)) & loadedBits(cr));
        }
      }),
      propertyParams({ numRuns: 200 }),
    );
  });

  it('after L2 writes that do not exit to L1, reads agree and the three-way sync saves what the CPU holds', () => {
    fc.assert(
      fc.property(vmcs01PolicyArb, vmcs12WorldArb, l0ChoicesArb, fc.constantFrom(0 as const, 4 as const), fc.array(fc.bigInt({ min: 0n, max: 0xffff_ffffn }), { minLength: 1, maxLength: 4 }), (p, w, c, cr, writes) => {
        const s = setup(p, w, c);
        const [g, m, sh] = cr === 0 ? [Field.GUEST_CR0, Field.CR0_GUEST_HOST_MASK, Field.CR0_READ_SHADOW] : [Field.GUEST_CR4, Field.CR4_GUEST_HOST_MASK, Field.CR4_READ_SHADOW];
        const [on, off] = cr === 0 ? [s.l0.cr0AlwaysOn, s.l0.cr0AlwaysOff] : [s.l0.cr4AlwaysOn, s.l0.cr4AlwaysOff];
        const mask12 = w.vmcs12.get(m);
        const shadow12 = w.vmcs12.get(sh);
        const mask02 = s.vmcs02.get(m);
        // Reference CPU running vmcs12.
        let crR = w.vmcs12.get(g);
        // Nested: vmcs02's CR and read shadow as the hardware and L0 keep them.
        let cr02 = s.vmcs02.get(g);
        let shadow02 = s.vmcs02.get(sh);
        for (const v of writes) {
          if ((mask12 & (v ^ shadow12)) !== 0n) break; // this write would exit to L1: the property covers L2-only writes
          crR = (crR & mask12) | (v & ~mask12);
          if ((mask02 & (v ^ shadow02)) !== 0n) {
            // Exit to L0, which emulates the write with L2 semantics: L2's new value lives in the shadow for the bits
            // L0 traps and in the hardware CR (with L0's forced bits) for the rest.
            shadow02 = (shadow02 & mask12) | (v & ~mask12);
            cr02 = ((((cr02 & mask12) | (v & ~mask12)) & ~off) | on) & 0xffff_ffff_ffff_ffffn;
          } else {
            cr02 = (cr02 & mask02) | (v & ~mask02);
          }
          expect(nestedReadCr(cr02, mask02, shadow02) & loadedBits(cr)).toBe(nestedReadCr(crR, mask12, shadow12) & loadedBits(cr));
        }
        expect(threeWayCr(cr02, mask02, shadow02, w.vmcs12.get(g), mask12) & loadedBits(cr)).toBe(crR & loadedBits(cr));
      }),
      propertyParams({ numRuns: 200 }),
    );
  });
});

describe('P-TSC: L2 TSC under vmcs02 = L1 TSC under vmcs01 composed with vmcs12, within 48-bit fixed-point rounding', () => {
  const signedU64 = fc.bigInt({ min: -(1n << 50n), max: 1n << 50n }).map((x) => BigInt.asUintN(64, x));
  it('holds for random offsets and multipliers', () => {
    fc.assert(
      fc.property(vmcs01PolicyArb, vmcs12WorldArb, signedU64, tscMultiplierArb, signedU64, tscMultiplierArb, fc.bigInt({ min: 0n, max: 1n << 52n }), (p, w, off01, mul01, off12, mul12, host) => {
        const v01 = p.vmcs01.clone();
        v01.set32(Field.CPU_BASED_VM_EXEC_CONTROL, v01.lo(Field.CPU_BASED_VM_EXEC_CONTROL) | Primary.USE_TSC_OFFSETTING | Primary.ACTIVATE_SECONDARY_CONTROLS);
        v01.set32(Field.SECONDARY_VM_EXEC_CONTROL, v01.lo(Field.SECONDARY_VM_EXEC_CONTROL) | Secondary.USE_TSC_SCALING);
        v01.set(Field.TSC_OFFSET, off01);
        v01.set(Field.TSC_MULTIPLIER, mul01);
        const v12 = w.vmcs12.clone();
        v12.set(Field.TSC_OFFSET, off12);
        v12.set(Field.TSC_MULTIPLIER, mul12);
        const l1Unwrapped = ((host * mul01) >> 48n) + BigInt.asIntN(64, off01);
        fc.pre(l1Unwrapped >= 0n && l1Unwrapped < 1n << 62n);
        const vmcs02 = mergeVmcs02(v01, v12, defaultL0MergeInputs(v01), sdmProfile()).vmcs02;
        const eff = (v: Vmcs): { off: bigint; mul: bigint } => {
          const pri = v.lo(Field.CPU_BASED_VM_EXEC_CONTROL);
          const sec = pri & Primary.ACTIVATE_SECONDARY_CONTROLS ? v.lo(Field.SECONDARY_VM_EXEC_CONTROL) : 0;
          const offs = (pri & Primary.USE_TSC_OFFSETTING) !== 0;
          return { off: offs ? v.get(Field.TSC_OFFSET) : 0n, mul: offs && sec & Secondary.USE_TSC_SCALING ? v.get(Field.TSC_MULTIPLIER) : TSC_ONE };
        };
        const e01 = eff(v01);
        const e12 = eff(v12);
        const e02 = eff(vmcs02);
        const twoStage = guestTsc(guestTsc(host, e01.off, e01.mul), e12.off, e12.mul);
        const direct = guestTsc(host, e02.off, e02.mul);
        const diff = BigInt.asIntN(64, direct - twoStage);
        if (e12.mul === TSC_ONE) expect(diff).toBe(0n);
        const tol = (e12.mul >> 48n) + (host >> 48n) + 3n;
        expect(diff <= tol && diff >= -tol, `diff ${diff} tol ${tol}`).toBe(true);
      }),
      propertyParams({ numRuns: 200 }),
    );
  });
});

describe('provenance', () => {
  it('every entry names the JSON rule of its field and its inputs reproduce the value', () => {
    fc.assert(
      fc.property(vmcs01PolicyArb, vmcs12WorldArb, l0ChoicesArb, fc.boolean(), fc.boolean(), vmcs12WorldArb, (p, w, c, realEntry, kvm, live) => {
        const l0 = defaultL0MergeInputs(p.vmcs01, { ...c, realEntry, l2Live: live.vmcs12, msrBitmap02: HOST_PAGES.msr02 });
        const { vmcs02, provenance } = mergeVmcs02(p.vmcs01, w.vmcs12, l0, kvm ? kvmProfile() : sdmProfile());
        for (const entry of provenance) {
          expect(ruleOfField.get(entry.field), entry.field).toBe(entry.rule);
          const impl = MERGE_RULES.get(entry.rule)!;
          const scratch = new Vmcs();
          scratch.set(entry.encoding, impl.compute(new InputLookup(entry.inputs), { ...fieldOf(entry.encoding) }));
          expect(scratch.get(entry.encoding), `${entry.field} via ${entry.rule}`).toBe(entry.value);
          expect(vmcs02.get(entry.encoding)).toBe(entry.value);
          for (const i of entry.inputs) {
            if (i.from === 'vmcs12' && i.field) expect(i.value).toBe(w.vmcs12.get((Field as Record<string, number>)[i.field]!));
            if (i.from === 'vmcs01' && i.field) expect(i.value).toBe(p.vmcs01.get((Field as Record<string, number>)[i.field]!));
          }
        }
      }),
      propertyParams({ numRuns: 100 }),
    );
  });
});

import { fieldDef } from '../../src/cpu/vmcs.js';
function fieldOf(encoding: number) {
  return fieldDef(encoding)!;
}
