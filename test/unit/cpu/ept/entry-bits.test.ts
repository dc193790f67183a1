// The EPT misconfiguration rules, evaluated on 32-bit halves of the entry, against a bigint statement of the same
// rules written here from SDM Vol. 3C 28.2.3.1 (XWR encodings, reserved bits 51:MAXPHYADDR and per-level bits,
// large-page support, leaf memory type), over random entries, levels and capabilities; and the remembered EPT
// capabilities / EPTP validations answering as fresh ones.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { eptMisconfiguration, type EptLevel } from '../../../../src/cpu/ept/entry.js';
import { eptConfig } from '../../../../src/cpu/ept/eptp.js';
import type { EptCapabilities, EptMisconfigReason } from '../../../../src/cpu/ept/types.js';
import { propertyParams } from '../../../support/property.js';

const bitsSet = (e: bigint, hi: number, lo: number): boolean => ((e >> BigInt(lo)) & ((1n << BigInt(hi - lo + 1)) - 1n)) !== 0n;

function reference(e: bigint, level: EptLevel, caps: EptCapabilities): EptMisconfigReason | undefined {
  const xwr = Number(e & 7n);
  if (xwr === 2 || xwr === 6) return 'write-without-read';
  if (xwr === 4 && !caps.executeOnly) return 'execute-only-unsupported';
  if (caps.maxPhysAddr < 52 && bitsSet(e, 51, caps.maxPhysAddr)) return 'reserved-bits';
  const memType = (): EptMisconfigReason | undefined => ([0, 1, 4, 5, 6].includes(Number((e >> 3n) & 7n)) ? undefined : 'leaf-memory-type');
  if (level >= 4) return bitsSet(e, 7, 3) ? 'reserved-bits' : undefined;
  if (level === 1) return memType();
  const ps = bitsSet(e, 7, 7);
  if (!ps) return bitsSet(e, 6, 3) ? 'reserved-bits' : undefined;
  if (level === 3 && !caps.pages1G) return 'large-page-unsupported';
  if (level === 2 && !caps.pages2M) return 'large-page-unsupported';
  if (bitsSet(e, level === 3 ? 29 : 20, 12)) return 'reserved-bits';
  return memType();
}

const arbCaps = fc.record({
  maxPhysAddr: fc.integer({ min: 32, max: 52 }), executeOnly: fc.boolean(), pages2M: fc.boolean(), pages1G: fc.boolean(),
}).map((c): EptCapabilities => ({
  ...c, walkLength4: true, walkLength5: true, memTypeUc: true, memTypeWb: true, accessedDirty: true, advancedExitInfo: true,
  supervisorShadowStack: false,
}));
// Mostly sparse entries (few bits set) so every rule, not just "reserved bits", is reached.
const arbEntry = fc.oneof(
  fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }),
  fc.array(fc.integer({ min: 0, max: 63 }), { maxLength: 5 }).map((bs) => bs.reduce((e, b) => e | (1n << BigInt(b)), 0n)),
  fc.tuple(fc.integer({ min: 0, max: 7 }), fc.integer({ min: 0, max: 7 }), fc.boolean(), fc.bigInt({ min: 0n, max: (1n << 40n) - 1n }))
    .map(([xwr, mt, ps, frame]) => BigInt(xwr) | (BigInt(mt) << 3n) | (ps ? 0x80n : 0n) | (frame << 12n)),
);

describe('eptMisconfiguration on 32-bit halves', () => {
  it('classifies exactly as the bigint statement of SDM 28.2.3.1', () => {
    fc.assert(
      fc.property(arbEntry, fc.constantFrom<EptLevel>(1, 2, 3, 4, 5), arbCaps, (e, level, caps) => {
        expect(eptMisconfiguration(e, level, eptConfig(caps))).toBe(reference(e, level, caps));
      }),
      propertyParams({ numRuns: 3000 }),
    );
  });

  it('reserved bits at MAXPHYADDR and at bit 51 are both seen', () => {
    const caps = { maxPhysAddr: 40, executeOnly: true, pages2M: true, pages1G: true, walkLength4: true, walkLength5: true,
      memTypeUc: true, memTypeWb: true, accessedDirty: true, advancedExitInfo: true, supervisorShadowStack: false };
    const c = eptConfig(caps);
    expect(eptMisconfiguration(0x37n | (1n << 40n), 1, c)).toBe('reserved-bits');
    expect(eptMisconfiguration(0x37n | (1n << 51n), 1, c)).toBe('reserved-bits');
    expect(eptMisconfiguration(0x37n | (1n << 39n) | (1n << 52n), 1, c)).toBeUndefined();
  });
});

describe('EPT capability and EPTP-validation memos', () => {
  it('give the same answers as fresh computations, per model and per EPTP', async () => {
    const { findCpuModel } = await import('../../../../src/cpu/cpu-model.js');
    const { eptCapabilities, validateEptp } = await import('../../../../src/cpu/ept/eptp.js');
    const model = findCpuModel('kvm-l1')!;
    const caps = eptCapabilities(model);
    expect(eptCapabilities(model)).toBe(caps);
    expect(eptCapabilities(model, { supervisorShadowStack: true })).toEqual({ ...caps, supervisorShadowStack: true });
    expect(caps.walkLength4).toBe(model.eptCap(6));
    expect(caps.accessedDirty).toBe(model.eptCap(21));
    // A valid WB 4-level EPTP, the same with A/D, with reserved bit 8, with memory type 3; each asked twice, and
    // through a structurally equal capabilities object that the memo does not know.
    const eptps = [0x1000_1en, 0x1000_5en, 0x1000_11en, 0x1000_1bn];
    for (const e of eptps) {
      const first = validateEptp(e, caps);
      expect(validateEptp(e, caps)).toEqual(first);
      expect(validateEptp(e, { ...caps })).toEqual(first);
    }
    expect(validateEptp(0x1000_1en, caps).ok).toBe(true);
    expect(validateEptp(0x1000_11en, caps)).toMatchObject({ ok: false, error: { kind: 'eptp-reserved-bits' } });
    expect(validateEptp(0x1000_1bn, caps)).toMatchObject({ ok: false, error: { kind: 'eptp-memory-type' } });
    // More distinct EPTPs than the memo holds still validate correctly.
    for (let i = 0; i < 600; i++) expect(validateEptp(BigInt(i) << 12n | 0x1en, caps).ok).toBe(true);
  });
});
