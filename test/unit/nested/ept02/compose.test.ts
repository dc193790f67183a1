// Unit tests of the EPT02 composition (reference §8.5–8.6): rights are the intersection, W waits for EPT12's D flag
// under A/D, the page is no larger than either walk's (nor than the hardware allows), the memory type follows the
// profile, EPT01 holes are L0-internal, and the exit L1 gets for an EPT12 fault per profile (N4).
import { describe, expect, it } from 'vitest';
import { HPA, L1_GPA, L2_GPA, guestLinear, type Hpa, type L1Gpa } from '../../../../src/cpu/address.js';
import { EptTableBuilder } from '../../../../src/cpu/ept/builder.js';
import { ept01, ept12, eptCapabilities, eptConfig } from '../../../../src/cpu/ept/eptp.js';
import type { EptAccess, EptCapabilities, EptPageSize } from '../../../../src/cpu/ept/types.js';
import { findCpuModel } from '../../../../src/cpu/cpu-model.js';
import { PhysicalMemory } from '../../../../src/cpu/memory.js';
import { accessFromEpt02Violation, composeEpt02, synthesizedEptExit } from '../../../../src/nested/ept02/compose.js';
import { L1MemoryView } from '../../../../src/nested/ept02/l1-memory.js';
import { kvmProfile, sdmProfile } from '../../../../src/nested/profile.js';

const HOST = findCpuModel('intel-core-i7-6700k')!;
const CAPS: EptCapabilities = eptCapabilities(HOST);
const READ: EptAccess = { type: 'read', cause: { kind: 'no-linear' } };
const WRITE: EptAccess = { type: 'write', cause: { kind: 'no-linear' } };

interface Map12 { l2: bigint; l1: bigint; size?: EptPageSize; w?: boolean; x?: boolean; memType?: number; ipat?: boolean; d?: boolean }
interface Map01 { l1: bigint; h: bigint; size?: EptPageSize; w?: boolean }

function setup(m12: Map12[], m01: Map01[], ad = false) {
  const host = new PhysicalMemory<Hpa>({ space: 'Hpa' });
  const b01 = new EptTableBuilder<L1Gpa, Hpa>({ memory: host, inSpace: L1_GPA, outSpace: HPA, tableArea: { base: 0x100_0000n, pages: 64 } });
  // EPT12's tables live in L1 [0x10_0000, …) mapped RW at host 0x200_0000.
  const t = b01.map(L1_GPA.of(0n), HPA.of(0x200_0000n), { pageSize: '2M' });
  if (!t.ok) throw new Error(t.error.message);
  for (const m of m01) {
    const r = b01.map(L1_GPA.of(m.l1), HPA.of(m.h), { pageSize: m.size ?? '4K', write: m.w ?? true });
    if (!r.ok) throw new Error(r.error.message);
  }
  const e01 = ept01({ eptp: b01.eptp(), config: eptConfig(CAPS), tables: host });
  if (!e01.ok) throw new Error(e01.error.message);
  const view = new L1MemoryView(host, () => e01.ept);
  const l1 = new PhysicalMemory<L1Gpa>({ space: 'L1Gpa' });
  const b12 = new EptTableBuilder({ memory: l1, inSpace: L2_GPA, outSpace: L1_GPA, tableArea: { base: 0x10_0000n, pages: 32 } });
  for (const m of m12) {
    b12.map(L2_GPA.of(m.l2), L1_GPA.of(m.l1), { pageSize: m.size ?? '4K', write: m.w ?? true, execute: m.x ?? true, memType: m.memType ?? 6, ipat: m.ipat ?? false, dirty: m.d ?? false });
  }
  for (const p of l1.pageNumbers()) view.writeBytes(L1_GPA.of(p << 12n), l1.read(L1_GPA.of(p << 12n), 4096));
  const e12 = ept12({ eptp: b12.eptp({ accessedDirty: ad }), config: eptConfig(CAPS), tables: view });
  if (!e12.ok) throw new Error(e12.error.message);
  return { host, ept12: e12.ept, ept01: e01.ept, view };
}

describe('composeEpt02', () => {
  it('maps EPT01(EPT12(gpa)) with the intersection of the rights', () => {
    const f = setup([{ l2: 0x5000n, l1: 0x40_0000n, x: false }], [{ l1: 0x40_0000n, h: 0x900_0000n, w: false }]);
    const r = composeEpt02({ gpa: L2_GPA.of(0x5123n), access: READ, ept12: f.ept12, ept01: f.ept01, hostCaps: CAPS, profile: sdmProfile() });
    expect(r.kind).toBe('map');
    if (r.kind !== 'map') return;
    expect(r.leaf.gpa).toBe(0x5000n);
    expect(r.leaf.hpa).toBe(0x900_0000n);
    expect(r.leaf.l1Gpa).toBe(0x40_0000n);
    expect(r.leaf.permissions).toEqual({ read: true, write: false, execute: false, userExecute: false });
    expect(r.leaf.pageSize).toBe('4K');
  });

  it('uses the smaller of the two page sizes', () => {
    const f = setup([{ l2: 0x4000_0000n, l1: 0x8000_0000n, size: '1G' }], [{ l1: 0x8000_0000n, h: 0x1_0000_0000n, size: '2M' }, { l1: 0x8020_0000n, h: 0x2_0000_0000n, size: '2M' }]);
    const r = composeEpt02({ gpa: L2_GPA.of(0x4021_2345n), access: READ, ept12: f.ept12, ept01: f.ept01, hostCaps: CAPS, profile: sdmProfile() });
    expect(r.kind === 'map' && [r.leaf.pageSize, r.leaf.gpa, r.leaf.hpa]).toEqual(['2M', 0x4020_0000n, 0x2_0000_0000n]);
    const small = composeEpt02({ gpa: L2_GPA.of(0x4000_1000n), access: READ, ept12: f.ept12, ept01: f.ept01, hostCaps: { ...CAPS, pages2M: false, pages1G: false }, profile: sdmProfile() });
    expect(small.kind === 'map' && small.leaf.pageSize).toBe('4K');
  });

  it('withholds W while the EPT12 leaf is not dirty under A/D, and sets A/D in EPT12 as a hardware walk would', () => {
    const f = setup([{ l2: 0x5000n, l1: 0x40_0000n }], [{ l1: 0x40_0000n, h: 0x900_0000n }], true);
    const read = composeEpt02({ gpa: L2_GPA.of(0x5000n), access: READ, ept12: f.ept12, ept01: f.ept01, hostCaps: CAPS, profile: sdmProfile() });
    expect(read.kind === 'map' && read.leaf.permissions.write).toBe(false);
    const leafEntry = () => (read.kind === 'map' ? f.view.readU64(read.walk12!.path.at(-1)!.address as L1Gpa) : 0n);
    expect((leafEntry() >> 8n) & 3n).toBe(1n);
    const write = composeEpt02({ gpa: L2_GPA.of(0x5000n), access: WRITE, ept12: f.ept12, ept01: f.ept01, hostCaps: CAPS, profile: sdmProfile() });
    expect(write.kind === 'map' && write.leaf.permissions.write).toBe(true);
    expect((leafEntry() >> 8n) & 3n).toBe(3n);
  });

  it('memory type: EPT12\'s (sdm) or L0\'s WB + IPAT (kvm, N3)', () => {
    const f = setup([{ l2: 0x5000n, l1: 0x40_0000n, memType: 0, ipat: false }], [{ l1: 0x40_0000n, h: 0x900_0000n }]);
    const sdm = composeEpt02({ gpa: L2_GPA.of(0x5000n), access: READ, ept12: f.ept12, ept01: f.ept01, hostCaps: CAPS, profile: sdmProfile() });
    const kvm = composeEpt02({ gpa: L2_GPA.of(0x5000n), access: READ, ept12: f.ept12, ept01: f.ept01, hostCaps: CAPS, profile: kvmProfile() });
    expect(sdm.kind === 'map' && [sdm.leaf.memType, sdm.leaf.ipat]).toEqual([0, false]);
    expect(kvm.kind === 'map' && [kvm.leaf.memType, kvm.leaf.ipat]).toEqual([6, true]);
  });

  it('an L1 address EPT01 does not map, or maps without the right, is L0-internal', () => {
    const f = setup([{ l2: 0x5000n, l1: 0x40_0000n }, { l2: 0x6000n, l1: 0x50_0000n }], [{ l1: 0x50_0000n, h: 0x900_0000n, w: false }]);
    const hole = composeEpt02({ gpa: L2_GPA.of(0x5000n), access: READ, ept12: f.ept12, ept01: f.ept01, hostCaps: CAPS, profile: sdmProfile() });
    expect(hole.kind === 'l0-internal' && hole.why).toBe('ept01-violation');
    const ro = composeEpt02({ gpa: L2_GPA.of(0x6000n), access: WRITE, ept12: f.ept12, ept01: f.ept01, hostCaps: CAPS, profile: sdmProfile() });
    expect(ro.kind === 'l0-internal' && ro.why).toBe('ept01-denies');
  });

  it('without EPT12 (shadow-on-EPT) L2 GPA = L1 GPA through EPT01', () => {
    const f = setup([], [{ l1: 0x40_0000n, h: 0x900_0000n }]);
    const r = composeEpt02({ gpa: L2_GPA.of(0x40_0010n), access: READ, ept12: null, ept01: f.ept01, hostCaps: CAPS, profile: sdmProfile() });
    expect(r.kind === 'map' && [r.leaf.hpa, r.leaf.permissions.write]).toEqual([0x900_0000n, true]);
  });

  it('an EPT12 fault becomes the exit L1 sees: full qualification (sdm) or bits 0–5, 7, 8 (kvm, N4)', () => {
    const f = setup([{ l2: 0x5000n, l1: 0x40_0000n, w: false }], [{ l1: 0x40_0000n, h: 0x900_0000n }]);
    const access: EptAccess = { type: 'write', cause: { kind: 'final', linear: guestLinear(0x7000n), rights: { user: false, writable: true, executeDisable: false } }, nmiUnblocking: true };
    const r = composeEpt02({ gpa: L2_GPA.of(0x5008n), access, ept12: f.ept12, ept01: f.ept01, hostCaps: CAPS, profile: sdmProfile() });
    expect(r.kind).toBe('ept12-violation');
    if (r.kind !== 'ept12-violation') return;
    const hwQual = (1n << 1n) | (1n << 7n) | (1n << 8n) | (1n << 12n);
    const sdm = synthesizedEptExit(r.fault, hwQual, 0x7008n, sdmProfile());
    expect(sdm).toEqual({ reason: 48, qualification: r.fault.qualification, guestPhysicalAddress: 0x5008n, guestLinearAddress: 0x7008n });
    expect((sdm.qualification >> 12n) & 1n).toBe(1n);
    const kvm = synthesizedEptExit(r.fault, hwQual, 0x7008n, kvmProfile());
    expect(kvm.qualification).toBe((r.fault.qualification & 0x3fn) | (1n << 7n) | (1n << 8n));
  });

  it('rebuilds the access from an EPT02 violation qualification (SDM Table 27-7)', () => {
    expect(accessFromEpt02Violation(0x1n, 0n, CAPS)).toEqual({ type: 'read', cause: { kind: 'no-linear' }, nmiUnblocking: false });
    expect(accessFromEpt02Violation(0x3n | (1n << 7n), 0x10n, CAPS).cause).toEqual({ kind: 'paging-structure', linear: 0x10n });
    const fetch = accessFromEpt02Violation(0x4n | (3n << 7n) | (1n << 12n), 0x20n, { ...CAPS, advancedExitInfo: true });
    expect(fetch).toEqual({ type: 'fetch', cause: { kind: 'final', linear: 0x20n, rights: { user: false, writable: false, executeDisable: false } }, nmiUnblocking: true });
    expect(accessFromEpt02Violation(0x3n | (3n << 7n), 0n, CAPS).type).toBe('rmw');
  });
});
