// EPTP validation and capabilities: each rule of SDM 26.2.1.1 / reference §8.1 produces its own error kind, and the
// capability bits are read from the CPU-model presets. SDM Vol. 3C 24.6.11, 26.2.1.1, App. A.10.
import { describe, expect, it } from 'vitest';
import { CpuModel, DEFAULT_CPU_MODEL, findCpuModel } from '../../../../src/cpu/cpu-model.js';
import { eptCapabilities, eptConfig, eptrtaOf, makeEpt, validateEptp } from '../../../../src/cpu/ept/eptp.js';
import type { EptCapabilities } from '../../../../src/cpu/ept/types.js';
import { PhysicalMemory } from '../../../../src/cpu/memory.js';
import { L1_GPA, L2_GPA, type L1Gpa } from '../../../../src/cpu/address.js';

const FULL: EptCapabilities = {
  maxPhysAddr: 46, executeOnly: true, walkLength4: true, walkLength5: true, memTypeUc: true, memTypeWb: true,
  pages2M: true, pages1G: true, accessedDirty: true, advancedExitInfo: true, supervisorShadowStack: false,
};
const WB4 = 0x1en; // memory type 6, page-walk length 4

describe('validateEptp', () => {
  it('accepts valid EPTPs and decodes their fields', () => {
    const v = validateEptp(0x1234_5000n | WB4 | 0x40n, FULL);
    expect(v).toEqual({
      ok: true,
      eptp: {
        raw: 0x1234_505en, memType: 6, walkLength: 4, accessedDirty: true, supervisorShadowStack: false,
        rootAddress: 0x1234_5000n, eptrta: 0x1234_5000n,
      },
    });
    const five = validateEptp(0x8000n | 0x20n, FULL); // UC, length 5
    expect(five.ok && five.eptp.walkLength).toBe(5);
    expect(five.ok && five.eptp.memType).toBe(0);
  });

  it.each([
    ['memory type WC', 0x1000n | 0x19n, FULL, 'eptp-memory-type'],
    ['UC without cap bit 8', 0x1000n | 0x18n, { ...FULL, memTypeUc: false }, 'eptp-memory-type'],
    ['WB without cap bit 14', 0x1000n | WB4, { ...FULL, memTypeWb: false }, 'eptp-memory-type'],
    ['walk length 3', 0x1000n | 0x16n, FULL, 'eptp-walk-length'],
    ['walk length 5 without cap bit 7', 0x1000n | 0x26n, { ...FULL, walkLength5: false }, 'eptp-walk-length'],
    ['A/D without cap bit 21', 0x1000n | WB4 | 0x40n, { ...FULL, accessedDirty: false }, 'eptp-accessed-dirty-unsupported'],
    ['supervisor shadow-stack without CET', 0x1000n | WB4 | 0x80n, FULL, 'eptp-shadow-stack-unsupported'],
    ['bits 11:8', 0x1000n | WB4 | 0x100n, FULL, 'eptp-reserved-bits'],
    ['bit at MAXPHYADDR', (1n << 46n) | WB4, FULL, 'eptp-reserved-bits'],
    ['bit 63', (1n << 63n) | WB4, FULL, 'eptp-reserved-bits'],
  ] as const)('rejects %s', (_name, eptp, caps, kind) => {
    const v = validateEptp(eptp, caps);
    expect(v.ok).toBe(false);
    if (!v.ok) {
      expect(v.error.kind).toBe(kind);
      expect(v.error.eptp).toBe(eptp);
    }
  });

  it('allows bit 7 when supervisor shadow stacks are supported', () => {
    expect(validateEptp(0x1000n | WB4 | 0x80n, { ...FULL, supervisorShadowStack: true }).ok).toBe(true);
  });

  it('EPTRTA is bits 51:12 regardless of the low control bits', () => {
    expect(eptrtaOf(0x000f_ffff_ffff_f05en)).toBe(0x000f_ffff_ffff_f000n);
    expect(eptrtaOf(0xfff0_0000_0000_105en)).toBe(0x1000n);
  });
});

describe('EPT capabilities from CPU models', () => {
  // A model built from inline data (presets are data that other work changes): only the EPT/VPID MSR matters here.
  const model = (eptVpidCap: string, maxPhysAddr: number): CpuModel => new CpuModel({
    id: 'test', description: 'test', provenance: 'test',
    cpuid: { ...findCpuModel(DEFAULT_CPU_MODEL)!.cpuid, maxPhysAddr },
    vmxMsrs: { IA32_VMX_EPT_VPID_CAP: eptVpidCap },
    featureControl: '0x5', unsupportedFields: [], fieldsIgnoreFeatures: true,
  });

  it('reads each IA32_VMX_EPT_VPID_CAP bit it uses', () => {
    // Bits 0, 6, 7, 8, 14, 16, 17, 20, 21, 22, 25, 26 (a Sapphire Rapids-like value).
    expect(eptCapabilities(model('0x00000f01067341c1', 46))).toEqual({
      maxPhysAddr: 46, executeOnly: true, walkLength4: true, walkLength5: true, memTypeUc: true, memTypeWb: true,
      pages2M: true, pages1G: true, accessedDirty: true, advancedExitInfo: true, supervisorShadowStack: false,
    });
    // What KVM offers L1 (reference §1.5): no UC EPTP memory type, no advanced exit information, no 5-level here.
    expect(eptCapabilities(model('0x00000f0106334041', 39))).toEqual({
      maxPhysAddr: 39, executeOnly: true, walkLength4: true, walkLength5: false, memTypeUc: false, memTypeWb: true,
      pages2M: true, pages1G: true, accessedDirty: true, advancedExitInfo: false, supervisorShadowStack: false,
    });
    expect(eptCapabilities(model('0x0', 36), { supervisorShadowStack: true }).supervisorShadowStack).toBe(true);
  });

  it('makeEpt binds a valid EPTP to its table memory and root', () => {
    const mem = new PhysicalMemory<L1Gpa>();
    const h = makeEpt({ eptp: 0x3000n | WB4, config: eptConfig(FULL), tables: mem, inSpace: L2_GPA, outSpace: L1_GPA });
    expect(h.ok && (h.ept.root as bigint)).toBe(0x3000n);
    const bad = makeEpt({ eptp: 0x3000n | 0x1fn, config: eptConfig(FULL), tables: mem, inSpace: L2_GPA, outSpace: L1_GPA });
    expect(bad.ok).toBe(false);
  });
});
