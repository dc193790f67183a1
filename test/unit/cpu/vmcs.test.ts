// VMCS storage: encoding decode agrees with the table, width masking and high-half access (SDM App. B).
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { VMCS_FIELDS } from '../../../src/cpu/generated/vmcs-fields.js';
import { Vmcs, PartialVmcs, decodeEncoding, fieldDef, slotOf, widthMask } from '../../../src/cpu/vmcs.js';
import { propertyParams } from '../../support/property.js';

const arbField = fc.constantFrom(...VMCS_FIELDS);
const arbU64 = fc.bigInt({ min: 0n, max: (1n << 64n) - 1n });

describe('Vmcs storage', () => {
  it('P-ENC: decoding any encoding in the table gives its width, type, index and access', () => {
    fc.assert(
      fc.property(arbField, (f) => {
        const d = decodeEncoding(f.encoding);
        expect(d.width).toBe(f.width);
        expect(d.index).toBe(f.index);
        expect(fieldDef(f.encoding)).toBe(f);
      }),
      propertyParams(),
    );
  });

  it('stores a full field truncated to its width and reads it back', () => {
    fc.assert(
      fc.property(arbField.filter((f) => f.access === 'full'), arbU64, (f, v) => {
        const vmcs = new Vmcs();
        vmcs.set(f.encoding, v);
        expect(vmcs.get(f.encoding)).toBe(v & widthMask(f.width));
      }),
      propertyParams(),
    );
  });

  it('a high access reads and replaces only bits 63:32 of the 64-bit field', () => {
    fc.assert(
      fc.property(arbField.filter((f) => f.access === 'high'), arbU64, arbU64, (f, full, high) => {
        const vmcs = new Vmcs();
        vmcs.set(f.encoding & ~1, full);
        expect(vmcs.get(f.encoding)).toBe(full >> 32n);
        vmcs.set(f.encoding, high);
        expect(vmcs.get(f.encoding & ~1)).toBe(((high & 0xffff_ffffn) << 32n) | (full & 0xffff_ffffn));
      }),
      propertyParams(),
    );
  });

  it('lo/hi words agree with the bigint view', () => {
    fc.assert(
      fc.property(arbField.filter((f) => f.access === 'full'), arbU64, (f, v) => {
        const vmcs = new Vmcs();
        vmcs.set(f.encoding, v);
        const got = (BigInt(vmcs.hi(f.encoding)) << 32n) | BigInt(vmcs.lo(f.encoding));
        expect(got).toBe(vmcs.get(f.encoding));
      }),
      propertyParams(),
    );
  });

  it('has no slot for encodings outside the table', () => {
    expect(slotOf(0x7ffe)).toBe(-1);
    expect(new Vmcs().read(0x7ffe)).toBeUndefined();
    expect(() => new Vmcs().get(0x7ffe)).toThrow(/turtles bug/);
  });

  it('diff names exactly the slots that changed', () => {
    const a = new Vmcs();
    const b = a.clone();
    b.set(0x681e, 0x1234n);
    b.set(0x4002, 0x8000_0000n);
    expect(b.diff(a)).toEqual([slotOf(0x4002), slotOf(0x681e)].sort((x, y) => x - y));
  });

  it('a partial state answers only for the fields it holds, high halves included', () => {
    const p = new PartialVmcs();
    p.set(0x2800, 0xffff_ffff_ffff_ffffn);
    expect(p.read(0x2801)).toBe(0xffff_ffffn);
    expect(p.read(0x6800)).toBeUndefined();
    p.set(0x0800, 0x12345n);
    expect(p.read(0x0800)).toBe(0x2345n);
  });
});
