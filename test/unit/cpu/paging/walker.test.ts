// Guest page walker scenarios in each mode: translations of every page size, PSE-36, PAE PDPTE registers,
// reserved-bit faults per mode, A/D flags (order, only on success), global pages, PAT index, PDPTE loading.
// SDM Vol. 3A 4.3 (32-bit), 4.4 (PAE), 4.5 (4/5-level), 4.7 (#PF error code), 4.8 (A/D).
import { describe, expect, it } from 'vitest';
import { guestLinear, L1_GPA, l1gpa, type L1Gpa } from '../../../../src/cpu/address.js';
import { PhysicalMemory } from '../../../../src/cpu/memory.js';
import { Cr0, Cr4, Efer } from '../../../../src/cpu/state.js';
import { GuestPageTableBuilder, type GuestMapOptions, type GuestPagingMode } from '../../../../src/cpu/paging/builder.js';
import { loadPaePdptes } from '../../../../src/cpu/paging/pdpte.js';
import { translateLinear } from '../../../../src/cpu/paging/walker.js';
import { directPagingAccess } from '../../../../src/cpu/paging/under-ept.js';
import { pagingMode, PfErr, type LinearAccess, type PagingControls, type PagingStructureAccess } from '../../../../src/cpu/paging/types.js';

const SUP_READ: LinearAccess = { kind: 'read', mode: 'supervisor' };
const SUP_WRITE: LinearAccess = { kind: 'write', mode: 'supervisor' };

function controls(mode: GuestPagingMode, cr3: bigint, extra: Partial<PagingControls> = {}): PagingControls {
  const pae = mode !== '32bit';
  const long = mode === '4level' || mode === '5level';
  return {
    cr0: Cr0.PE | Cr0.PG | Cr0.WP,
    cr3,
    cr4: (pae ? Cr4.PAE : Cr4.PSE) | (mode === '5level' ? Cr4.LA57 : 0n) | Cr4.PGE,
    efer: (long ? Efer.LME | Efer.LMA : 0n) | Efer.NXE,
    rflags: 2n,
    pkru: 0,
    maxPhysAddr: 46,
    ...extra,
  };
}

function setup(mode: GuestPagingMode) {
  const mem = new PhysicalMemory<L1Gpa>();
  const b = new GuestPageTableBuilder<L1Gpa>({ mode, memory: mem, space: L1_GPA, tableArea: { base: 0x10_0000n, pages: 32 } });
  const map = (l: bigint, p: bigint, o: GuestMapOptions = {}): void => {
    const r = b.map(guestLinear(l), l1gpa(p), o);
    if (!r.ok) throw new Error(r.error.message);
  };
  const ctl = (extra: Partial<PagingControls> = {}): PagingControls =>
    controls(mode, b.cr3, mode === 'pae' ? { pdptes: b.pdptes(), ...extra } : extra);
  const walk = (c: PagingControls, l: bigint, a: LinearAccess = SUP_READ) => translateLinear(c, guestLinear(l), a, L1_GPA, directPagingAccess(mem));
  return { mem, b, map, ctl, walk };
}

describe('translations per paging mode', () => {
  it('32-bit paging: 4-KiB pages and 4-MiB pages with PSE-36 high bits', () => {
    const s = setup('32bit');
    s.map(0x0040_1000n, 0x0765_4000n);
    s.map(0x0080_0000n, 0x12_0040_0000n, { pageSize: '4M' }); // physical bits 39:32 = 0x12
    const t = s.walk(s.ctl(), 0x0040_1abcn);
    expect(t.ok && [t.phys as bigint, t.pageSize, t.mode]).toEqual([0x0765_4abcn, '4K', '32bit']);
    const big = s.walk(s.ctl(), 0x00bf_fffcn);
    expect(big.ok && [big.phys as bigint, big.pageSize]).toEqual([0x12_007f_fffcn, '4M']);
    // Without CR4.PSE the PS bit is ignored: the PDE names a page table (here, the 4-MiB frame page: all zero).
    const noPse = s.walk(s.ctl({ cr4: 0n }), 0x0080_0000n);
    expect(noPse).toMatchObject({ ok: false, fault: { kind: 'page-fault', errorCode: 0 } });
    // With MAXPHYADDR 36, PDE bits 20:17 are reserved (M = min(MAXPHYADDR, 40) = 36).
    const rsvd = s.walk(s.ctl({ maxPhysAddr: 36 }), 0x0080_0000n);
    expect(rsvd).toMatchObject({ ok: false, fault: { errorCode: PfErr.P | PfErr.RSVD } });
    // Without PSE-36 all of 21:13 are reserved.
    expect(s.walk(s.ctl({ pse36: false }), 0x0080_0000n)).toMatchObject({ ok: false, fault: { errorCode: PfErr.P | PfErr.RSVD } });
  });

  it('PAE paging: PDPTE registers, 2-MiB pages, XD', () => {
    const s = setup('pae');
    s.map(0xc000_0000n, 0x1_2340_0000n, { pageSize: '2M', executeDisable: true });
    s.map(0x0000_3000n, 0x5000n);
    const t = s.walk(s.ctl(), 0xc012_3456n);
    expect(t.ok && [t.phys as bigint, t.pageSize]).toEqual([0x1_2352_3456n, '2M']);
    expect(t.ok && t.path.map((x) => [x.level, x.address === undefined])).toEqual([[3, true], [2, false]]);
    const fetch = s.walk(s.ctl(), 0xc000_0000n, { kind: 'fetch', mode: 'supervisor' });
    expect(fetch).toMatchObject({ ok: false, fault: { errorCode: PfErr.P | PfErr.ID } });
    // With EFER.NXE = 0 bit 63 is reserved.
    expect(s.walk(s.ctl({ efer: 0n }), 0xc000_0000n)).toMatchObject({ ok: false, fault: { errorCode: PfErr.P | PfErr.RSVD } });
    // A not-present PDPTE register.
    expect(s.walk(s.ctl(), 0x4000_0000n)).toMatchObject({ ok: false, fault: { errorCode: 0 } });
  });

  it('4-level paging: 1-GiB, 2-MiB and 4-KiB pages; 1-GiB pages need the feature', () => {
    const s = setup('4level');
    s.map(0xffff_8000_0000_0000n, 0x4000_0000n, { pageSize: '1G', global: true });
    s.map(0x7f00_0020_0000n, 0x60_0000n, { pageSize: '2M', pat: true, pcd: true });
    s.map(0x1000n, 0x9000n, { pwt: true });
    const g = s.walk(s.ctl(), 0xffff_8000_1234_5678n);
    expect(g.ok && [g.phys as bigint, g.pageSize, g.global]).toEqual([0x5234_5678n, '1G', true]);
    expect(s.walk(s.ctl({ cr4: Cr4.PAE }), 0xffff_8000_1234_5678n)).toMatchObject({ ok: true, global: false });
    const m = s.walk(s.ctl(), 0x7f00_002f_ffffn);
    expect(m.ok && [m.phys as bigint, m.pageSize, m.patIndex]).toEqual([0x6f_ffffn, '2M', 6]);
    const k = s.walk(s.ctl(), 0x1008n);
    expect(k.ok && [k.phys as bigint, k.patIndex]).toEqual([0x9008n, 1]);
    expect(s.walk(s.ctl({ gbPages: false }), 0xffff_8000_0000_0000n)).toMatchObject({ ok: false, fault: { errorCode: PfErr.P | PfErr.RSVD } });
  });

  it('5-level paging uses bits 56:48 for the PML5 index', () => {
    const s = setup('5level');
    s.map(0x00ff_0000_0000_0000n, 0x7000n);
    const t = s.walk(s.ctl(), 0x00ff_0000_0000_0042n);
    expect(t.ok && [t.phys as bigint, t.path.length]).toEqual([0x7042n, 5]);
  });

  it('paging disabled is the identity with full rights', () => {
    const t = translateLinear(controls('32bit', 0n, { cr0: Cr0.PE }), guestLinear(0x1234n), { kind: 'write', mode: 'user' }, L1_GPA, directPagingAccess(new PhysicalMemory<L1Gpa>()));
    expect(t.ok && [t.phys as bigint, t.mode, t.patIndex]).toEqual([0x1234n, 'none', null]);
  });
});

describe('reserved bits in IA-32e paging', () => {
  it.each([
    ['bit above MAXPHYADDR in a PTE', 1, 1n << 46n],
    ['PS in a PML4E', 4, 0x80n],
    ['bit 13 of a 2-MiB PDE', 2, 0x2000n | 0x80n],
  ] as const)('%s is a RSVD fault', (_name, level, bits) => {
    const s = setup('4level');
    s.map(0x20_0000n, 0x40_0000n, { pageSize: level === 2 ? '2M' : '4K' });
    const addr = s.b.entryAddress(guestLinear(0x20_0000n), level)!;
    s.mem.writeU64(addr, s.mem.readU64(addr) | bits);
    expect(s.walk(s.ctl(), 0x20_0000n, SUP_WRITE)).toMatchObject({ ok: false, fault: { errorCode: PfErr.P | PfErr.W | PfErr.RSVD } });
  });

  it('a not-present entry faults with P = 0 even when reserved bits are set', () => {
    const s = setup('4level');
    s.map(0x1000n, 0x9000n);
    const addr = s.b.entryAddress(guestLinear(0x1000n), 1)!;
    s.mem.writeU64(addr, (1n << 50n) | 0x9000n);
    expect(s.walk(s.ctl(), 0x1000n, { kind: 'read', mode: 'user' })).toMatchObject({ ok: false, fault: { errorCode: PfErr.U } });
  });

  it('refuses non-canonical addresses as a caller bug (#GP/#SS come first)', () => {
    const s = setup('4level');
    expect(() => s.walk(s.ctl(), 0x0000_8000_0000_0000n)).toThrow(/turtles bug/);
  });
});

describe('accessed and dirty flags', () => {
  it('sets A on every entry top-down and D on the leaf for writes, writing only changed entries', () => {
    const s = setup('4level');
    s.map(0x1000n, 0x9000n);
    const writes: bigint[] = [];
    const direct = directPagingAccess(s.mem);
    const spy: PagingStructureAccess<L1Gpa> = {
      read: direct.read,
      write: (a, size, v, info) => { writes.push(a as bigint); expect(info.purpose).toBe('accessed-dirty'); return direct.write(a, size, v, info); },
    };
    const r = translateLinear(s.ctl(), guestLinear(0x1000n), SUP_READ, L1_GPA, spy);
    expect(r.ok && r.dirty).toBe(false);
    const levels = [4, 3, 2, 1] as const;
    expect(writes).toEqual(levels.map((l) => s.b.entryAddress(guestLinear(0x1000n), l)! as bigint));
    for (const l of levels) expect(s.mem.readU64(s.b.entryAddress(guestLinear(0x1000n), l)!) & 0x60n).toBe(0x20n);
    writes.length = 0;
    const w = translateLinear(s.ctl(), guestLinear(0x1000n), SUP_WRITE, L1_GPA, spy);
    expect(w.ok && w.dirty).toBe(true);
    expect(writes).toEqual([s.b.entryAddress(guestLinear(0x1000n), 1)! as bigint]);
    // Non-leaf entries never get D.
    expect(s.mem.readU64(s.b.entryAddress(guestLinear(0x1000n), 2)!) & 0x40n).toBe(0n);
  });

  it('sets nothing when the access faults', () => {
    const s = setup('4level');
    s.map(0x1000n, 0x9000n, { writable: false });
    expect(s.walk(s.ctl(), 0x1000n, SUP_WRITE)).toMatchObject({ ok: false, fault: { errorCode: PfErr.P | PfErr.W } });
    for (const l of [4, 3, 2, 1] as const) expect(s.mem.readU64(s.b.entryAddress(guestLinear(0x1000n), l)!) & 0x60n).toBe(0n);
  });

  it('32-bit paging updates 4-byte entries', () => {
    const s = setup('32bit');
    s.map(0x5000n, 0x9000n);
    expect(s.walk(s.ctl(), 0x5000n, SUP_WRITE).ok).toBe(true);
    const pte = s.b.entryAddress(guestLinear(0x5000n), 1)!;
    expect(s.mem.readU32(pte)).toBe(0x9000 | 0x67);
    expect(s.mem.readU32(l1gpa((pte as bigint) + 4n))).toBe(0);
  });
});

describe('PAE PDPTE loading', () => {
  it('loads four PDPTEs at CR3[31:5] and #GPs on reserved bits of a present one', () => {
    const mem = new PhysicalMemory<L1Gpa>();
    mem.writeU64(l1gpa(0x1020n), 0x5001n);
    mem.writeU64(l1gpa(0x1038n), 0x6001n | 0x18n);
    const ok = loadPaePdptes(0x1020n | 0x18n, 46, L1_GPA, directPagingAccess(mem));
    expect(ok).toEqual({ ok: true, pdptes: [0x5001n, 0n, 0n, 0x6019n] });
    mem.writeU64(l1gpa(0x1028n), 0x7001n | 0x2n); // bit 1 reserved
    expect(loadPaePdptes(0x1020n, 46, L1_GPA, directPagingAccess(mem))).toEqual({ ok: false, fault: { kind: 'general-protection', errorCode: 0, index: 1 } });
    mem.writeU64(l1gpa(0x1028n), 0x7000n | 0x2n); // not present: reserved bits do not matter
    expect(loadPaePdptes(0x1020n, 46, L1_GPA, directPagingAccess(mem)).ok).toBe(true);
  });

  it('pagingMode follows CR0.PG, CR4.PAE, EFER.LMA and CR4.LA57', () => {
    expect(pagingMode({ cr0: 0n, cr4: Cr4.PAE, efer: Efer.LMA })).toBe('none');
    expect(pagingMode({ cr0: Cr0.PG, cr4: 0n, efer: 0n })).toBe('32bit');
    expect(pagingMode({ cr0: Cr0.PG, cr4: Cr4.PAE, efer: Efer.LME })).toBe('pae');
    expect(pagingMode({ cr0: Cr0.PG, cr4: Cr4.PAE | Cr4.LA57, efer: Efer.LMA })).toBe('5level');
  });
});
