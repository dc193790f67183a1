// The EPT02 soundness invariant on hand-built EPT12 (L1 memory), EPT01 and EPT02 (host memory): silent on a correct
// composition, and naming the rule for a wrong host page, union permissions, an oversized page, a wrong memory type and a
// translation that survived an EPT12 change (stale). Checking must not set A/D flags.
import { describe, expect, it } from 'vitest';
import { HPA, L1_GPA, L2_GPA, hpa, l1gpa, l2gpa, type Hpa, type L1Gpa, type L2Gpa } from '../../../src/cpu/address.js';
import { EptTableBuilder, ept01, ept02, ept12, eptCapabilities, eptConfig, type EptMapOptions } from '../../../src/cpu/ept/index.js';
import { PhysicalMemory } from '../../../src/cpu/memory.js';
import { findCpuModel, DEFAULT_CPU_MODEL } from '../../../src/cpu/cpu-model.js';
import { kvmProfile, sdmProfile } from '../../../src/nested/profile.js';
import { Ept12History, checkEpt02 as check, ept02Leaves, type Ept02CheckInput } from '../../../src/checker/invariants/ept02.js';

const checkEpt02 = (i: Ept02CheckInput) => check(i).divergences;

const caps = eptCapabilities(findCpuModel(DEFAULT_CPU_MODEL)!);
const config = eptConfig(caps);

function world(ad = false) {
  const l1 = new PhysicalMemory<L1Gpa>();
  const host = new PhysicalMemory<Hpa>();
  const b12 = new EptTableBuilder<L2Gpa, L1Gpa>({ memory: l1, inSpace: L2_GPA, outSpace: L1_GPA, tableArea: { base: 0x100000n, pages: 16 } });
  const b01 = new EptTableBuilder<L1Gpa, Hpa>({ memory: host, inSpace: L1_GPA, outSpace: HPA, tableArea: { base: 0x1000_0000n, pages: 16 } });
  const b02 = new EptTableBuilder<L2Gpa, Hpa>({ memory: host, inSpace: L2_GPA, outSpace: HPA, tableArea: { base: 0x2000_0000n, pages: 16 } });
  // L1 memory 0–4 MiB is host 0x4000_0000 + same offset (2 MiB pages); L2 page 0x5000 → L1 0x3000, 0x200000 (2M) → 0x200000.
  expect(b01.map(l1gpa(0n), hpa(0x4000_0000n), { pageSize: '2M' }).ok).toBe(true);
  expect(b01.map(l1gpa(0x200000n), hpa(0x4020_0000n), { pageSize: '2M', execute: false }).ok).toBe(true);
  expect(b12.map(l2gpa(0x5000n), l1gpa(0x3000n), { write: false, memType: 4 }).ok).toBe(true);
  expect(b12.map(l2gpa(0x200000n), l1gpa(0x200000n), { pageSize: '2M' }).ok).toBe(true);
  const e12 = ept12({ eptp: b12.eptp({ accessedDirty: ad }), config, tables: l1 });
  const e01 = ept01({ eptp: b01.eptp(), config, tables: host });
  const e02 = ept02({ eptp: b02.eptp(), config, tables: host });
  if (!e12.ok || !e01.ok || !e02.ok) throw new Error('bad EPTP');
  return { l1, host, b12, b01, b02, ept12: e12.ept, ept01: e01.ept, ept02: e02.ept };
}

const good: [bigint, bigint, EptMapOptions][] = [
  [0x5000n, 0x4000_3000n, { write: false, memType: 4 }],
  [0x200000n, 0x4020_0000n, { pageSize: '2M', execute: false }],
];

describe('checkEpt02', () => {
  it('is silent on a sound EPT02 and enumerates its leaves', () => {
    const w = world();
    for (const [g, h, o] of good) expect(w.b02.map(l2gpa(g), hpa(h), o).ok).toBe(true);
    expect(ept02Leaves(w.ept02).map((l) => [l.gpa, l.level])).toEqual([[0x5000n, 1], [0x200000n, 2]]);
    expect(check({ event: 3, profile: sdmProfile(), ept02: w.ept02, ept12: w.ept12, ept01: w.ept01 })).toEqual({ divergences: [], leaves: 2 });
  });

  it('does not set EPT12 accessed/dirty flags while checking', () => {
    const w = world(true);
    for (const [g, h, o] of good) w.b02.map(l2gpa(g), hpa(h), o);
    const before = w.l1.read(l1gpa(0x100000n), 0x4000);
    checkEpt02({ event: 3, profile: sdmProfile(), ept02: w.ept02, ept12: w.ept12, ept01: w.ept01 });
    expect(w.l1.read(l1gpa(0x100000n), 0x4000)).toEqual(before);
  });

  it('reports permissions from the union (W that EPT12 withholds)', () => {
    const w = world();
    w.b02.map(l2gpa(0x5000n), hpa(0x4000_3000n), { memType: 4 });
    const d = checkEpt02({ event: 9, profile: sdmProfile(), ept02: w.ept02, ept12: w.ept12, ept01: w.ept01 });
    expect(d).toHaveLength(1);
    expect(d[0]).toMatchObject({ kind: 'invariant', rule: 'ept02.permissions', event: 9, level: 'L0', actual: 'RWXU' });
    expect(d[0]!.provenance?.map((p) => p.from)).toEqual(['EPT12', 'EPT01']);
  });

  it('reports a wrong host page, an oversized page and a wrong memory type', () => {
    const w = world();
    w.b02.map(l2gpa(0x5000n), hpa(0x4000_4000n), { write: false, memType: 4 });
    w.b02.map(l2gpa(0x200000n), hpa(0x4020_0000n), { pageSize: '2M', execute: false, memType: 0 });
    w.b12.map(l2gpa(0x4000_0000n), l1gpa(0n), { pageSize: '2M' });
    w.b02.map(l2gpa(0x4000_0000n), hpa(0x4000_0000n), { pageSize: '1G', execute: false });
    const d = checkEpt02({ event: 1, profile: sdmProfile(), ept02: w.ept02, ept12: w.ept12, ept01: w.ept01 });
    expect(d.map((x) => x.rule)).toEqual(['ept02.translation', 'ept02.memory-type', 'ept02.page-size']);
  });

  it('applies the profile memory-type rule: kvm is WB + IPAT', () => {
    const w = world();
    w.b02.map(l2gpa(0x5000n), hpa(0x4000_3000n), { write: false, memType: 6, ipat: true });
    expect(checkEpt02({ event: 1, profile: kvmProfile(), ept02: w.ept02, ept12: w.ept12, ept01: w.ept01 })).toEqual([]);
    expect(checkEpt02({ event: 1, profile: sdmProfile(), ept02: w.ept02, ept12: w.ept12, ept01: w.ept01 }).map((x) => x.rule)).toEqual(['ept02.memory-type']);
  });

  it('reports a translation that survived an EPT12 unmap or remap (stale)', () => {
    const w = world();
    for (const [g, h, o] of good) w.b02.map(l2gpa(g), hpa(h), o);
    w.b12.unmap(l2gpa(0x5000n));
    const d = checkEpt02({ event: 4, profile: sdmProfile(), ept02: w.ept02, ept12: w.ept12, ept01: w.ept01 });
    expect(d.map((x) => [x.rule, x.field])).toEqual([['ept02.stale', 'EPT02 0x5000']]);
    w.b12.map(l2gpa(0x5000n), l1gpa(0x7000n), { write: false, memType: 4 });
    expect(checkEpt02({ event: 5, profile: sdmProfile(), ept02: w.ept02, ept12: w.ept12, ept01: w.ept01 }).map((x) => x.rule)).toEqual(['ept02.translation']);
  });

  it('uses L1 GPA = L2 GPA without EPT12 (shadow-on-EPT)', () => {
    const w = world();
    w.b02.map(l2gpa(0x3000n), hpa(0x4000_3000n), {});
    expect(checkEpt02({ event: 1, profile: sdmProfile(), ept02: w.ept02, ept12: null, ept01: w.ept01 })).toEqual([]);
    w.b02.map(l2gpa(0x9000n), hpa(0x4000_3000n), {});
    expect(checkEpt02({ event: 1, profile: sdmProfile(), ept02: w.ept02, ept12: null, ept01: w.ept01 }).map((x) => x.rule)).toEqual(['ept02.translation']);
  });

  it('a leaf may agree with an EPT12 state recorded since the last INVEPT (stale use the SDM allows), not with one before it', () => {
    const w = world();
    for (const [g, h, o] of good) w.b02.map(l2gpa(g), hpa(h), o);
    const history = new Ept12History();
    history.record(w.ept12);
    w.b12.unmap(l2gpa(0x5000n));
    history.record(w.ept12);
    const input = { event: 4, profile: sdmProfile(), ept02: w.ept02, ept12: w.ept12, ept01: w.ept01 };
    expect(checkEpt02({ ...input, ept12Since: history.states(w.ept12) })).toEqual([]);
    history.invalidate(w.ept12.eptp.raw);
    expect(history.states(w.ept12)).toEqual([]);
    expect(checkEpt02({ ...input, ept12Since: history.states(w.ept12) }).map((x) => x.rule)).toEqual(['ept02.stale']);
    history.record(w.ept12);
    history.invalidate('all');
    expect(history.states(w.ept12)).toEqual([]);
  });
});
