// Sparse physical memory: zero reads, little-endian widths, page-crossing accesses, the page budget as a value
// (all-or-nothing writes), observers, snapshots/clones and deterministic enumeration. SDM Vol. 1 1.3.1.
import { describe, expect, it } from 'vitest';
import { hpa, l1gpa, type Hpa, type L1Gpa } from '../../../../src/cpu/address.js';
import { PhysicalMemory } from '../../../../src/cpu/memory.js';

describe('PhysicalMemory', () => {
  it('reads never-written memory as zero without allocating', () => {
    const m = new PhysicalMemory<L1Gpa>();
    expect(m.readU64(l1gpa(0x1234_5678n))).toBe(0n);
    expect(m.readU8(l1gpa(0xffn))).toBe(0);
    expect(m.read(l1gpa(0xff0n), 32)).toEqual(new Uint8Array(32));
    expect(m.allocatedPages).toBe(0);
  });

  it('stores little-endian bytes, words, dwords and qwords (bigint)', () => {
    const m = new PhysicalMemory<L1Gpa>();
    expect(m.writeU64(l1gpa(0x1000n), 0x0807_0605_0403_0201n).ok).toBe(true);
    expect([...m.read(l1gpa(0x1000n), 8)]).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    expect(m.readU16(l1gpa(0x1001n))).toBe(0x0302);
    expect(m.readU32(l1gpa(0x1004n))).toBe(0x0807_0605);
    m.writeU32(l1gpa(0x1000n), 0xdead_beef);
    expect(m.readU64(l1gpa(0x1000n))).toBe(0x0807_0605_dead_beefn);
    m.writeU8(l1gpa(0x1007n), 0xff);
    m.writeU16(l1gpa(0x1002n), 0x1234);
    expect(m.readU64(l1gpa(0x1000n))).toBe(0xff07_0605_1234_beefn);
    expect(m.readU64(l1gpa(0x2000n - 8n))).toBe(0n);
    expect(m.writeU64(l1gpa(0x3000n), 0xffff_ffff_ffff_ffffn).ok).toBe(true);
    expect(m.readU64(l1gpa(0x3000n))).toBe(0xffff_ffff_ffff_ffffn);
  });

  it('handles accesses that cross a page boundary', () => {
    const m = new PhysicalMemory<L1Gpa>();
    m.writeU64(l1gpa(0x1ffcn), 0x1122_3344_5566_7788n);
    expect(m.readU64(l1gpa(0x1ffcn))).toBe(0x1122_3344_5566_7788n);
    expect(m.readU32(l1gpa(0x2000n))).toBe(0x1122_3344);
    expect(m.pageNumbers()).toEqual([1n, 2n]);
    const bulk = new Uint8Array(9000).map((_, i) => (i * 7) & 0xff);
    expect(m.write(l1gpa(0x10_0f00n), bulk).ok).toBe(true);
    expect(m.read(l1gpa(0x10_0f00n), 9000)).toEqual(bulk);
  });

  it('refuses writes beyond the page budget as a value, writing nothing', () => {
    const m = new PhysicalMemory<Hpa>({ maxPages: 2, space: 'Hpa' });
    expect(m.writeU8(hpa(0x1000n), 1).ok).toBe(true);
    expect(m.writeU8(hpa(0x5000n), 1).ok).toBe(true);
    expect(m.writeU8(hpa(0x5001n), 2).ok).toBe(true); // same page: no new allocation
    const r = m.writeU64(hpa(0x9000n), 1n);
    expect(r.ok).toBe(false);
    if (!r.ok) {
      expect(r.error.kind).toBe('memory-page-limit');
      expect(r.error.address as bigint).toBe(0x9000n);
      expect(r.error.message).toContain('Hpa 0x9000');
    }
    // A write straddling an existing page and a new one is all-or-nothing.
    const s = m.writeU32(hpa(0x5ffen), 0xaabb_ccdd);
    expect(s.ok).toBe(false);
    expect(m.readU16(hpa(0x5ffen))).toBe(0);
    // Writing zeros needs no page: absent memory already reads as zero.
    expect(m.writeU64(hpa(0x9000n), 0n).ok).toBe(true);
    expect(m.allocatedPages).toBe(2);
  });

  it('treats bad sizes and values as turtles bugs', () => {
    const m = new PhysicalMemory<L1Gpa>();
    expect(() => m.writeU8(l1gpa(0n), 256)).toThrow(RangeError);
    expect(() => m.writeU64(l1gpa(0n), 1n << 64n)).toThrow(RangeError);
    expect(() => m.readU64(l1gpa(0xffff_ffff_ffff_fffcn))).toThrow(/leaves the 64-bit/);
  });

  it('notifies write observers after each write, until removed', () => {
    const m = new PhysicalMemory<L1Gpa>();
    const seen: [bigint, number, bigint][] = [];
    const off = m.onWrite((a, n) => seen.push([a, n, m.readU64(l1gpa(0x2000n))]));
    m.writeU64(l1gpa(0x2000n), 7n);
    m.write(l1gpa(0x3000n), new Uint8Array([1, 2, 3]));
    off();
    m.writeU8(l1gpa(0x2000n), 9);
    expect(seen).toEqual([[0x2000n, 8, 7n], [0x3000n, 3, 7n]]);
    // Refused writes are not reported.
    const small = new PhysicalMemory<L1Gpa>({ maxPages: 0 });
    let calls = 0;
    small.onWrite(() => calls++);
    small.writeU8(l1gpa(0n), 1);
    expect(calls).toBe(0);
  });

  it('clones, snapshots and restores independently of the original', () => {
    const m = new PhysicalMemory<L1Gpa>();
    m.writeU64(l1gpa(0x5000n), 5n);
    m.writeU64(l1gpa(0x1000n), 1n);
    const snap = m.snapshot();
    expect(snap.pages.map(([n]) => n)).toEqual([1n, 5n]);
    const c = m.clone();
    c.writeU64(l1gpa(0x1000n), 2n);
    expect(m.readU64(l1gpa(0x1000n))).toBe(1n);
    expect(c.differingPages(m)).toEqual([1n]);
    m.writeU64(l1gpa(0x5000n), 6n);
    expect(snap.pages[1]![1][0]).toBe(5);
    m.restore(snap);
    expect(m.readU64(l1gpa(0x5000n))).toBe(5n);
    const zeroPage = new PhysicalMemory<L1Gpa>();
    zeroPage.writeU8(l1gpa(0x7000n), 1);
    zeroPage.writeU8(l1gpa(0x7000n), 0);
    expect(zeroPage.contentEquals(new PhysicalMemory<L1Gpa>())).toBe(true);
  });
});
