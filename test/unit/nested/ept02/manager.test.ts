// Unit tests of EPT02 as real tables (reference §8.6–8.7): installed leaves are what the hardware walks, larger and
// smaller pages replace each other cleanly, roots are cached (current + 3) and dropped by INVEPT per EPTRTA or all, a
// write to a tracked EPT12 table page zaps exactly the leaves derived from it (and 'non-leaf' tracking leaves a changed
// EPT12 leaf stale until INVEPT, as the SDM allows), and every change is reported as an event.
import { describe, expect, it } from 'vitest';
import { HPA, L1_GPA, L2_GPA, type Hpa, type L1Gpa, type L2Gpa } from '../../../../src/cpu/address.js';
import { findCpuModel } from '../../../../src/cpu/cpu-model.js';
import { EptTableBuilder } from '../../../../src/cpu/ept/builder.js';
import { ept12, eptCapabilities, eptConfig } from '../../../../src/cpu/ept/eptp.js';
import { walkEpt } from '../../../../src/cpu/ept/walker.js';
import type { EptAccess, EptPageSize } from '../../../../src/cpu/ept/types.js';
import { PhysicalMemory } from '../../../../src/cpu/memory.js';
import {
  Ept02Manager, HostPagePool, L1MemoryView, buildEpt01, defaultEpt01Policy, ept12Role, fillEpt02, type Ept02Event, type Ept02LeafSpec,
} from '../../../../src/nested/ept02/index.js';
import { sdmProfile } from '../../../../src/nested/profile.js';

const CAPS = eptCapabilities(findCpuModel('intel-core-i7-6700k')!);
const READ: EptAccess = { type: 'read', cause: { kind: 'no-linear' } };
const ALL = { read: true, write: true, execute: true, userExecute: true };

function manager(maxRoots?: number) {
  const host = new PhysicalMemory<Hpa>({ space: 'Hpa' });
  const events: Ept02Event[] = [];
  const m = new Ept02Manager({ host, pages: new HostPagePool(host, { base: 0x100_0000n, pages: 256 }), hostCaps: CAPS, onEvent: (e) => events.push(e), ...(maxRoots ? { maxRoots } : {}) });
  return { host, m, events };
}

function spec(gpa: bigint, hpa: bigint, pageSize: EptPageSize = '4K', permissions = ALL): Ept02LeafSpec {
  return {
    gpa: L2_GPA.of(gpa), pageSize, hpa: HPA.of(hpa), permissions, memType: 6, ipat: false, l1Gpa: L1_GPA.of(gpa), perm12: ALL, perm01: ALL,
    pageSize12: pageSize, pageSize01: pageSize, dirty12: true, memType12: 6, ipat12: false,
  };
}

const ROLE_A = ept12Role(0x50_001en, false);
const ROLE_B = ept12Role(0x60_001en, false);
const NO_PAGES = { l1: [], host: [] };
const CAUSE = { gpa: L2_GPA.of(0n), access: READ };

describe('Ept02Manager', () => {
  it('installs leaves the hardware walk finds, with the rights and memory type given', () => {
    const { m } = manager();
    m.install(ROLE_A, { ...spec(0x5000n, 0x9000n), permissions: { ...ALL, write: false } }, NO_PAGES, CAUSE);
    const root = m.root(ROLE_A)!;
    const t = walkEpt(root.ept, L2_GPA.of(0x5123n), READ);
    expect(t.ok && [t.out, t.permissions.write, t.memType]).toEqual([0x9123n, false, 6]);
    expect(walkEpt(root.ept, L2_GPA.of(0x5000n), { type: 'write', cause: { kind: 'no-linear' } }).ok).toBe(false);
    expect(m.entries().map((l) => [l.gpa, l.level])).toEqual([[0x5000n, 1]]);
  });

  it('a large page replaces the small ones under it, and a small one splits a large page', () => {
    const { m, events } = manager();
    m.install(ROLE_A, spec(0x20_0000n, 0x40_0000n), NO_PAGES, CAUSE);
    m.install(ROLE_A, spec(0x20_1000n, 0x40_1000n), NO_PAGES, CAUSE);
    m.install(ROLE_A, spec(0x20_0000n, 0x80_0000n, '2M'), NO_PAGES, CAUSE);
    expect(events.filter((e) => e.kind === 'zap').map((e) => e.kind === 'zap' && e.reason)).toEqual(['merged-into-large-page', 'merged-into-large-page']);
    expect(m.entries().map((l) => [l.gpa, l.pageSize])).toEqual([[0x20_0000n, '2M']]);
    m.install(ROLE_A, spec(0x20_3000n, 0x99_3000n), NO_PAGES, CAUSE);
    expect(events.at(-2)).toMatchObject({ kind: 'zap', reason: 'split' });
    const t = walkEpt(m.root(ROLE_A)!.ept, L2_GPA.of(0x20_3000n), READ);
    expect(t.ok && t.out).toBe(0x99_3000n);
    expect(walkEpt(m.root(ROLE_A)!.ept, L2_GPA.of(0x20_4000n), READ).ok).toBe(false);
  });

  it('caches four roots, evicting the least recently used', () => {
    const { m, events } = manager();
    const roles = [1, 2, 3, 4, 5].map((i) => ept12Role(BigInt(i) << 20n | 0x1en, false));
    for (const r of roles.slice(0, 4)) m.root(r);
    m.root(roles[0]!); // most recently used again
    m.root(roles[4]!);
    const dropped = events.filter((e) => e.kind === 'drop-root');
    expect(dropped).toHaveLength(1);
    expect(dropped[0]).toMatchObject({ reason: 'root-cache-evicted', role: roles[1] });
  });

  it('INVEPT single-context drops only roots with that EPTRTA; all-context keeps the no-EPT12 root', () => {
    const { m } = manager();
    m.root(ROLE_A);
    m.root(ROLE_B);
    m.root({ kind: 'shadow-on-ept' });
    expect(m.invalidateEptrta(0x50_005en)).toBe(1); // same EPTRTA, different low bits: still that root
    expect(m.rootList().map((r) => r.role.kind === 'ept12' && r.role.eptrta)).toEqual([0x60_0000n, false]);
    expect(m.invalidateAllEpt12()).toBe(1);
    expect(m.rootList().map((r) => r.role.kind)).toEqual(['shadow-on-ept']);
  });

  it('a host write to a tracked EPT12 page zaps the leaves derived from it; L0\'s own writes do not', () => {
    const { host, m, events } = manager();
    m.install(ROLE_A, spec(0x5000n, 0x9000n), { l1: [L1_GPA.of(0x10_0000n)], host: [HPA.of(0x300_0000n)] }, CAUSE);
    m.install(ROLE_A, spec(0x6000n, 0xa000n), { l1: [L1_GPA.of(0x11_0000n)], host: [HPA.of(0x301_0000n)] }, CAUSE);
    m.untracked(() => host.writeU64(HPA.of(0x300_0008n), 5n));
    expect(m.entries()).toHaveLength(2);
    host.writeU64(HPA.of(0x300_0010n), 7n);
    expect(m.entries().map((l) => l.gpa)).toEqual([0x6000n]);
    expect(events.at(-1)).toMatchObject({ kind: 'zap', reason: 'ept12-table-write' });
    expect(m.trackedHostPages()).toEqual([0x301_0000n >> 12n]);
  });
});

describe('fillEpt02 write tracking', () => {
  /** EPT12 in L1 memory behind the default EPT01; one L2 page mapped. */
  function world(tracking: 'non-leaf' | 'all-levels') {
    const host = new PhysicalMemory<Hpa>({ space: 'Hpa' });
    const e01 = buildEpt01({ host, caps: CAPS, policy: defaultEpt01Policy(), tableArea: { base: 0x10_0000n, pages: 64 } });
    if (!e01.ok) throw new Error(e01.message);
    const view = new L1MemoryView(host, () => e01.ept);
    const l1 = new PhysicalMemory<L1Gpa>({ space: 'L1Gpa' });
    const b = new EptTableBuilder({ memory: l1, inSpace: L2_GPA, outSpace: L1_GPA, tableArea: { base: 0x20_0000n, pages: 16 } });
    b.map(L2_GPA.of(0x5000n), L1_GPA.of(0x40_0000n));
    for (const p of l1.pageNumbers()) view.writeBytes(L1_GPA.of(p << 12n), l1.read(L1_GPA.of(p << 12n), 4096));
    const e12 = ept12({ eptp: b.eptp(), config: eptConfig(CAPS), tables: view });
    if (!e12.ok) throw new Error(e12.error.message);
    const m = new Ept02Manager({ host, pages: new HostPagePool(host, { base: 0x1000_0000n, pages: 64 }), hostCaps: CAPS });
    const role = ept12Role(b.eptp(), false);
    const ctx = { manager: m, role, ept12: e12.ept, ept01: e01.ept, hostCaps: CAPS, profile: sdmProfile(), tracking };
    const access = (gpa: bigint): bigint | string => {
      for (let i = 0; i < 3; i++) {
        const hw = walkEpt(m.root(role)!.ept, L2_GPA.of(gpa) as L2Gpa, READ);
        if (hw.ok) return hw.out as bigint;
        if (hw.kind !== 'violation') return 'misconfig';
        const f = fillEpt02(ctx, { gpa: L2_GPA.of(gpa), qualification: hw.qualification, linear: 0n });
        if (f.kind !== 'filled') return f.kind;
      }
      return 'loop';
    };
    const pte = b.entryAddress(L2_GPA.of(0x5000n), 1)!;
    return { m, view, access, pte };
  }

  it('non-leaf: a changed EPT12 leaf stays in EPT02 until INVEPT', () => {
    const w = world('non-leaf');
    expect(w.access(0x5000n)).toBe((1n << 38n) + 0x40_0000n);
    w.view.writeU64(w.pte, 0x50_0000n | 7n | (6n << 3n));
    expect(w.access(0x5000n)).toBe((1n << 38n) + 0x40_0000n);
    w.m.invalidateAllEpt12();
    expect(w.access(0x5000n)).toBe((1n << 38n) + 0x50_0000n);
  });

  it('all-levels: the write itself invalidates', () => {
    const w = world('all-levels');
    expect(w.access(0x5000n)).toBe((1n << 38n) + 0x40_0000n);
    w.view.writeU64(w.pte, 0n);
    expect(w.access(0x5000n)).toBe('ept12-fault');
  });
});
