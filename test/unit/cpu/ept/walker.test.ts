// EPT walker scenarios: translations of every page size and walk length, violations with their qualification,
// misconfigurations and their priority, execute-only and mode-based execute, A/D flags, and the table builder.
// SDM Vol. 3C 28.2.2–28.2.4, 27.2.1 Table 27-7; reference §8.2–8.5.
import { describe, expect, it } from 'vitest';
import { guestLinear, L1_GPA, L2_GPA, l1gpa, l2gpa, type L1Gpa, type L2Gpa } from '../../../../src/cpu/address.js';
import { PhysicalMemory } from '../../../../src/cpu/memory.js';
import { EptTableBuilder, type EptMapOptions } from '../../../../src/cpu/ept/builder.js';
import { eptConfig, makeEpt } from '../../../../src/cpu/ept/eptp.js';
import { walkEpt } from '../../../../src/cpu/ept/walker.js';
import type { Ept, EptAccess, EptCapabilities, EptConfig } from '../../../../src/cpu/ept/types.js';

const CAPS: EptCapabilities = {
  maxPhysAddr: 46, executeOnly: true, walkLength4: true, walkLength5: true, memTypeUc: true, memTypeWb: true,
  pages2M: true, pages1G: true, accessedDirty: true, advancedExitInfo: true, supervisorShadowStack: false,
};
const LIN = guestLinear(0x7fff_1234n);
const FINAL_SUP = { kind: 'final', linear: LIN, rights: { user: false, writable: true, executeDisable: false } } as const;
const FINAL_USER = { kind: 'final', linear: LIN, rights: { user: true, writable: false, executeDisable: true } } as const;
const read: EptAccess = { type: 'read', cause: FINAL_SUP };
const write: EptAccess = { type: 'write', cause: FINAL_SUP };

function setup(options: { levels?: 4 | 5; ad?: boolean; config?: Partial<EptConfig>; caps?: Partial<EptCapabilities> } = {}) {
  const mem = new PhysicalMemory<L1Gpa>();
  const b = new EptTableBuilder<L2Gpa, L1Gpa>({
    memory: mem, inSpace: L2_GPA, outSpace: L1_GPA, tableArea: { base: 0x10_0000n, pages: 64 }, levels: options.levels ?? 4,
  });
  const config = { ...eptConfig({ ...CAPS, ...options.caps }), ...options.config };
  const ept = (): Ept<L2Gpa, L1Gpa> => {
    const h = makeEpt({ eptp: b.eptp({ accessedDirty: options.ad ?? false }), config, tables: mem, inSpace: L2_GPA, outSpace: L1_GPA });
    if (!h.ok) throw new Error(h.error.message);
    return h.ept;
  };
  const map = (g: bigint, h: bigint, o: EptMapOptions = {}): void => {
    const r = b.map(l2gpa(g), l1gpa(h), o);
    if (!r.ok) throw new Error(r.error.message);
  };
  return { mem, b, ept, map };
}

describe('walkEpt translations', () => {
  it('translates 4-KiB, 2-MiB and 1-GiB pages with memory type, IPAT and rights', () => {
    const { ept, map } = setup();
    map(0x1000n, 0x9000n, { memType: 4, ipat: true, write: false });
    map(0x20_0000n, 0x60_0000n, { pageSize: '2M', memType: 1 });
    map(0x4000_0000n, 0x8000_0000n, { pageSize: '1G', execute: false });
    const e = ept();
    const t4 = walkEpt(e, l2gpa(0x1abcn), read);
    expect(t4).toMatchObject({ ok: true, pageSize: '4K', memType: 4, ipat: true, permissions: { read: true, write: false, execute: true, userExecute: true } });
    expect(t4.ok && (t4.out as bigint)).toBe(0x9abcn);
    expect(t4.ok && t4.path.map((s) => s.level)).toEqual([4, 3, 2, 1]);
    const t2 = walkEpt(e, l2gpa(0x2f_f00dn), write);
    expect(t2.ok && [t2.out as bigint, t2.pageSize, t2.memType]).toEqual([0x6f_f00dn, '2M', 1]);
    const t1 = walkEpt(e, l2gpa(0x7654_3210n), read);
    expect(t1.ok && [t1.out as bigint, t1.pageSize]).toEqual([0xb654_3210n, '1G']);
    expect(t1.ok && t1.permissions.execute).toBe(false);
  });

  it('walks five levels with a 5-level EPTP', () => {
    const { ept, map } = setup({ levels: 5 });
    map(0x1_0000_0000_0000n, 0x3000n);
    const t = walkEpt(ept(), l2gpa(0x1_0000_0000_0123n), read);
    expect(t.ok && (t.out as bigint)).toBe(0x3123n);
    expect(t.ok && t.path.length).toBe(5);
  });
});

describe('walkEpt violations and their qualification', () => {
  it('a not-present entry: access bits, rights 0, linear valid, final translation', () => {
    const { ept, map } = setup();
    map(0x1000n, 0x9000n);
    const v = walkEpt(ept(), l2gpa(0x2000n), read);
    expect(v.ok).toBe(false);
    if (v.ok || v.kind !== 'violation') return;
    // Advanced bits 9–11 (cap 22, final access): supervisor, writable, executable.
    expect(v.qualification).toBe(0x1n | 0x80n | 0x100n | 0x400n);
    expect(v.linear).toBe(LIN);
    expect(v.gpa as bigint).toBe(0x2000n);
    expect(v.path.length).toBe(4);
  });

  it('a write to a read-only page reports the walked rights and the linear-address rights', () => {
    const { ept, map } = setup();
    map(0x1000n, 0x9000n, { write: false });
    const v = walkEpt(ept(), l2gpa(0x1008n), { type: 'write', cause: FINAL_USER, nmiUnblocking: true });
    if (v.ok || v.kind !== 'violation') throw new Error('expected a violation');
    expect(v.fields).toMatchObject({ write: true, read: false, readable: true, writable: false, executable: true, userLinear: true, writableLinear: false, executeDisableLinear: true, nmiUnblocking: true });
    expect(v.qualification).toBe(0x2n | 0x8n | 0x20n | 0x80n | 0x100n | 0x200n | 0x800n | 0x1000n);
  });

  it('paging-structure accesses: bit 8 = 0, no advanced bits; with EPT A/D they are writes (bits 0 and 1)', () => {
    const noAd = setup();
    noAd.map(0x1000n, 0x9000n, { write: false, read: false, execute: false });
    const ps = { type: 'read', cause: { kind: 'paging-structure', linear: LIN } } as const;
    const v1 = walkEpt(noAd.ept(), l2gpa(0x1000n), ps);
    expect(!v1.ok && v1.kind === 'violation' && v1.qualification).toBe(0x1n | 0x80n);
    const ad = setup({ ad: true });
    ad.map(0x1000n, 0x9000n, { write: false });
    const v2 = walkEpt(ad.ept(), l2gpa(0x1000n), ps);
    expect(!v2.ok && v2.kind === 'violation' && v2.qualification).toBe(0x3n | 0x8n | 0x20n | 0x80n);
    // PDPTE loads (no linear address) stay reads even with EPT A/D and have bit 7 = 0.
    const v3 = walkEpt(ad.ept(), l2gpa(0x1000n), { type: 'read', cause: { kind: 'no-linear' } });
    expect(v3.ok).toBe(true);
    const v4 = walkEpt(ad.ept(), l2gpa(0x5000n), { type: 'read', cause: { kind: 'no-linear' } });
    expect(!v4.ok && v4.kind === 'violation' && v4.qualification).toBe(0x1n);
    expect(!v4.ok && v4.kind === 'violation' && v4.linear).toBe(undefined);
  });

  it('read-modify-write sets bit 1, and bit 0 per the implementation choice', () => {
    for (const rmwSetsRead of [true, false]) {
      const { ept, map } = setup({ config: { rmwSetsRead } });
      map(0x1000n, 0x9000n, { write: false });
      const v = walkEpt(ept(), l2gpa(0x1000n), { type: 'rmw', cause: { kind: 'no-linear' } });
      expect(!v.ok && v.kind === 'violation' && v.qualification & 3n).toBe(rmwSetsRead ? 3n : 2n);
    }
  });

  it('addresses beyond a 4-level walk are violations with nothing walked', () => {
    const { ept } = setup({ caps: { maxPhysAddr: 52 } });
    const v = walkEpt(ept(), l2gpa(1n << 48n), read);
    expect(!v.ok && v.kind === 'violation' && [v.path.length, v.qualification & 0x38n]).toEqual([0, 0n]);
  });
});

describe('walkEpt misconfigurations', () => {
  it.each([
    ['write-only leaf', 1, 0x9000n | 0x30n | 0b010n, 'write-without-read'],
    ['write+execute leaf', 1, 0x9000n | 0x30n | 0b110n, 'write-without-read'],
    ['reserved bit above MAXPHYADDR', 1, 0x9000n | 0x37n | (1n << 46n), 'reserved-bits'],
    ['leaf memory type 2', 1, 0x9000n | 0x17n, 'leaf-memory-type'],
    ['leaf memory type 7', 1, 0x9000n | 0x3fn, 'leaf-memory-type'],
    ['2-MiB leaf with bits 20:12 set', 2, 0x20_0000n | 0x1000n | 0xb7n, 'reserved-bits'],
    ['1-GiB leaf with bits 29:12 set', 3, 0x4000_0000n | 0x20_0000n | 0xb7n, 'reserved-bits'],
  ] as const)('%s', (_name, level, entry, reason) => {
    const { ept, b } = setup();
    expect(b.setEntry(l2gpa(0n), level, entry).ok).toBe(true);
    const m = walkEpt(ept(), l2gpa(0x10n), read);
    expect(m).toMatchObject({ ok: false, kind: 'misconfig', reason, level });
  });

  it('reserved bits of referencing entries, large pages without the capability, execute-only without it', () => {
    const s1 = setup();
    s1.b.setEntry(l2gpa(0n), 4, 0x20_0000n | 0x7n | 0x8n); // PML4E with bit 3
    expect(walkEpt(s1.ept(), l2gpa(0n), read)).toMatchObject({ kind: 'misconfig', reason: 'reserved-bits', level: 4 });
    const s2 = setup();
    s2.b.setEntry(l2gpa(0n), 4, 0x20_0000n | 0x87n); // PML4E with bit 7
    expect(walkEpt(s2.ept(), l2gpa(0n), read)).toMatchObject({ kind: 'misconfig', reason: 'reserved-bits', level: 4 });
    const s3 = setup();
    s3.b.setEntry(l2gpa(0n), 2, 0x20_0000n | 0x7n | 0x40n); // non-leaf PDE with bit 6
    expect(walkEpt(s3.ept(), l2gpa(0n), read)).toMatchObject({ kind: 'misconfig', reason: 'reserved-bits', level: 2 });
    const s4 = setup({ caps: { pages1G: false } });
    s4.map(0n, 0n, { pageSize: '1G' });
    expect(walkEpt(s4.ept(), l2gpa(0n), read)).toMatchObject({ kind: 'misconfig', reason: 'large-page-unsupported', level: 3 });
    const s5 = setup({ caps: { executeOnly: false } });
    s5.map(0n, 0x9000n, { read: false, write: false });
    expect(walkEpt(s5.ept(), l2gpa(0n), { type: 'fetch', cause: FINAL_SUP })).toMatchObject({ kind: 'misconfig', reason: 'execute-only-unsupported' });
  });

  it('not present beats misconfigured; misconfigured beats a violation at the same entry', () => {
    const s = setup();
    // Bits 2:0 = 0 with reserved bits and a bad memory type: not present, so a violation.
    s.b.setEntry(l2gpa(0n), 1, (1n << 50n) | 0x38n);
    expect(walkEpt(s.ept(), l2gpa(0n), read)).toMatchObject({ kind: 'violation' });
    // Write-only leaf read: misconfiguration although the read right is also missing.
    s.b.setEntry(l2gpa(0n), 1, 0x9000n | 0x32n);
    expect(walkEpt(s.ept(), l2gpa(0n), read)).toMatchObject({ kind: 'misconfig' });
  });
});

describe('execute-only and mode-based execute control', () => {
  it('execute-only pages can be fetched but not read', () => {
    const { ept, map } = setup();
    map(0n, 0x9000n, { read: false, write: false });
    expect(walkEpt(ept(), l2gpa(0n), { type: 'fetch', cause: FINAL_SUP }).ok).toBe(true);
    const v = walkEpt(ept(), l2gpa(0n), read);
    expect(!v.ok && v.kind === 'violation' && (v.qualification & 0x3fn)).toBe(0x1n | 0x20n);
  });

  it('with MBEC, user-mode linear addresses need XU (bit 10) and bit 6 reports it', () => {
    const { ept, map } = setup({ config: { modeBasedExecute: true } });
    map(0n, 0x9000n, { userExecute: false });
    map(0x1000n, 0xa000n, { execute: false, userExecute: true });
    const e = ept();
    expect(walkEpt(e, l2gpa(0n), { type: 'fetch', cause: FINAL_SUP }).ok).toBe(true);
    const v = walkEpt(e, l2gpa(0n), { type: 'fetch', cause: FINAL_USER });
    expect(!v.ok && v.kind === 'violation' && v.fields).toMatchObject({ fetch: true, executable: true, userExecutable: false });
    expect(walkEpt(e, l2gpa(0x1000n), { type: 'fetch', cause: FINAL_USER }).ok).toBe(true);
    const w = walkEpt(e, l2gpa(0x1000n), { type: 'fetch', cause: FINAL_SUP });
    expect(!w.ok && w.kind === 'violation' && w.fields).toMatchObject({ executable: false, userExecutable: true });
    // An entry with only XU set is present under MBEC.
    map(0x2000n, 0xb000n, { read: false, write: false, execute: false, userExecute: true });
    expect(walkEpt(e, l2gpa(0x2000n), { type: 'fetch', cause: FINAL_USER }).ok).toBe(true);
  });

  it('without MBEC bit 10 is ignored and bit 6 is 0', () => {
    const { ept, map } = setup();
    map(0n, 0x9000n, { userExecute: true, execute: false });
    const v = walkEpt(ept(), l2gpa(0n), { type: 'fetch', cause: FINAL_USER });
    expect(!v.ok && v.kind === 'violation' && v.fields.userExecutable).toBe(false);
  });
});

describe('EPT accessed and dirty flags', () => {
  it('sets A on every entry used and D on the leaf for writes, only on success, only with EPTP[6]', () => {
    const { ept, map, b, mem } = setup({ ad: true });
    map(0x1000n, 0x9000n);
    map(0x2000n, 0xa000n, { write: false });
    const e = ept();
    const at = (g: bigint, level: 1 | 2 | 3 | 4): bigint => mem.readU64(b.entryAddress(l2gpa(g), level)!);
    expect(walkEpt(e, l2gpa(0x1000n), read).ok).toBe(true);
    for (const l of [4, 3, 2, 1] as const) expect(at(0x1000n, l) & 0x300n).toBe(0x100n);
    const w = walkEpt(e, l2gpa(0x1000n), write);
    expect(w.ok && w.dirty).toBe(true);
    expect(at(0x1000n, 1) & 0x300n).toBe(0x300n);
    expect(at(0x1000n, 2) & 0x200n).toBe(0n);
    // A failed write sets nothing on its leaf.
    expect(walkEpt(e, l2gpa(0x2000n), write).ok).toBe(false);
    expect(at(0x2000n, 1) & 0x300n).toBe(0n);
    // A guest paging-structure read counts as a write: D on the leaf.
    expect(walkEpt(e, l2gpa(0x1000n), { type: 'read', cause: { kind: 'paging-structure', linear: LIN } }).ok).toBe(true);
    const off = setup({ ad: false });
    off.map(0x1000n, 0x9000n);
    expect(walkEpt(off.ept(), l2gpa(0x1000n), write).ok).toBe(true);
    expect(off.mem.readU64(off.b.entryAddress(l2gpa(0x1000n), 1)!) & 0x300n).toBe(0n);
  });
});

describe('EptTableBuilder', () => {
  it('reports misaligned mappings, conflicts and exhausted table space as values', () => {
    const { b } = setup();
    expect(b.map(l2gpa(0x1000n), l1gpa(0x20_0000n), { pageSize: '2M' })).toMatchObject({ ok: false, error: { kind: 'ept-build-misaligned' } });
    expect(b.map(l2gpa(0n), l1gpa(0n), { pageSize: '2M' }).ok).toBe(true);
    expect(b.map(l2gpa(0x1000n), l1gpa(0x1000n))).toMatchObject({ ok: false, error: { kind: 'ept-build-conflict' } });
    expect(b.tablesUsed).toBe(3);
    const tiny = new EptTableBuilder<L2Gpa, L1Gpa>({
      memory: new PhysicalMemory<L1Gpa>(), inSpace: L2_GPA, outSpace: L1_GPA, tableArea: { base: 0x1000n, pages: 2 },
    });
    expect(tiny.map(l2gpa(0n), l1gpa(0n))).toMatchObject({ ok: false, error: { kind: 'ept-build-table-space' } });
  });

  it('unmaps and reports entry addresses', () => {
    const { b, ept, map } = setup();
    map(0x5000n, 0x9000n);
    expect(b.entryAddress(l2gpa(0x5000n), 1)).toBeDefined();
    expect(b.entryAddress(l2gpa(0x4000_0000n), 1)).toBeUndefined();
    expect(walkEpt(ept(), l2gpa(0x5000n), read).ok).toBe(true);
    expect(b.unmap(l2gpa(0x5000n)).ok).toBe(true);
    expect(walkEpt(ept(), l2gpa(0x5000n), read).ok).toBe(false);
    expect(b.eptp({ memType: 0, accessedDirty: true })).toBe((b.root as bigint) | 0x18n | 0x40n);
  });
});
