// PhysicalMemory's single-page fast paths (qword/dword/word reads and writes assembled from 32-bit halves, one-page
// bulk reads, zero writes that need no page) against a byte-level model written here: same bytes, same allocation,
// same observer notifications, same all-or-nothing page budget. SDM Vol. 1 1.3.1 (little-endian byte order).
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { l1gpa, type L1Gpa } from '../../../../src/cpu/address.js';
import { PhysicalMemory } from '../../../../src/cpu/memory.js';
import { propertyParams } from '../../../support/property.js';

type Op =
  | { readonly t: 'w'; readonly size: 1 | 2 | 4 | 8; readonly addr: bigint; readonly value: bigint }
  | { readonly t: 'bytes'; readonly addr: bigint; readonly bytes: Uint8Array }
  | { readonly t: 'r'; readonly size: 1 | 2 | 4 | 8; readonly addr: bigint }
  | { readonly t: 'rb'; readonly addr: bigint; readonly length: number };

// Addresses cluster around page ends of a few pages (including the last page of the 64-bit space) so accesses
// often cross a boundary or land on a page not allocated yet.
const arbAddr = fc.tuple(fc.constantFrom(0n, 0x1000n, 0x2000n, 0x7_ffff_f000n, 0xffff_ffff_ffff_e000n), fc.integer({ min: 0, max: 0x1fff }))
  .map(([base, off]) => {
    const a = base + BigInt(off < 0x40 ? 0x1000 - 0x20 + off : off);
    return a > 0xffff_ffff_ffff_ffe0n ? 0xffff_ffff_ffff_ffe0n : a;
  });
const arbValue = (size: 1 | 2 | 4 | 8) =>
  fc.oneof(fc.constant(0n), fc.bigInt({ min: 0n, max: (1n << BigInt(8 * size)) - 1n }), fc.constant((1n << BigInt(8 * size)) - 1n));
const arbSize = fc.constantFrom<1 | 2 | 4 | 8>(1, 2, 4, 8);
const arbOp: fc.Arbitrary<Op> = fc.oneof(
  fc.tuple(arbSize, arbAddr).chain(([size, addr]) => arbValue(size).map((value): Op => ({ t: 'w', size, addr, value }))),
  fc.tuple(arbAddr, fc.uint8Array({ maxLength: 24 })).map(([addr, bytes]): Op => ({ t: 'bytes', addr, bytes })),
  fc.tuple(arbSize, arbAddr).map(([size, addr]): Op => ({ t: 'r', size, addr })),
  fc.tuple(arbAddr, fc.integer({ min: 0, max: 24 })).map(([addr, length]): Op => ({ t: 'rb', addr, length })),
);

/** The model: bytes by address, allocated pages, page budget. */
class ByteModel {
  readonly bytes = new Map<bigint, number>();
  readonly pages = new Set<bigint>();
  constructor(readonly maxPages: number) {}

  write(addr: bigint, data: number[]): boolean {
    const need = new Set<bigint>();
    data.forEach((b, i) => {
      const p = (addr + BigInt(i)) >> 12n;
      if (b !== 0 && !this.pages.has(p)) need.add(p);
    });
    if (need.size > 0 && this.pages.size + need.size > this.maxPages) return false;
    for (const p of need) this.pages.add(p);
    data.forEach((b, i) => {
      const a = addr + BigInt(i);
      if (this.pages.has(a >> 12n)) this.bytes.set(a, b);
    });
    return true;
  }

  read(addr: bigint, n: number): number[] {
    return Array.from({ length: n }, (_, i) => this.bytes.get(addr + BigInt(i)) ?? 0);
  }
}

const le = (v: bigint, n: number): number[] => Array.from({ length: n }, (_, i) => Number((v >> BigInt(8 * i)) & 0xffn));
const fromLe = (b: number[]): bigint => b.reduceRight((acc, x) => (acc << 8n) | BigInt(x), 0n);

describe('PhysicalMemory fast paths', () => {
  it('agree with a byte model over random access sequences (values, allocation, observers, budget)', () => {
    fc.assert(
      fc.property(fc.array(arbOp, { maxLength: 60 }), fc.integer({ min: 1, max: 6 }), (ops, maxPages) => {
        const m = new PhysicalMemory<L1Gpa>({ maxPages });
        const model = new ByteModel(maxPages);
        const seen: [bigint, number][] = [];
        m.onWrite((a, n) => seen.push([a as bigint, n]));
        const expectedSeen: [bigint, number][] = [];
        for (const op of ops) {
          const a = l1gpa(op.addr);
          switch (op.t) {
            case 'w': {
              const r = op.size === 8 ? m.writeU64(a, op.value)
                : op.size === 4 ? m.writeU32(a, Number(op.value)) : op.size === 2 ? m.writeU16(a, Number(op.value)) : m.writeU8(a, Number(op.value));
              const ok = model.write(op.addr, le(op.value, op.size));
              expect(r.ok).toBe(ok);
              if (ok) expectedSeen.push([op.addr, op.size]);
              break;
            }
            case 'bytes': {
              const ok = model.write(op.addr, [...op.bytes]);
              expect(m.write(a, op.bytes).ok).toBe(ok);
              if (ok) expectedSeen.push([op.addr, op.bytes.length]);
              break;
            }
            case 'r': {
              const want = fromLe(model.read(op.addr, op.size));
              const got = op.size === 8 ? m.readU64(a) : BigInt(op.size === 4 ? m.readU32(a) : op.size === 2 ? m.readU16(a) : m.readU8(a));
              expect(got).toBe(want);
              break;
            }
            case 'rb':
              expect([...m.read(a, op.length)]).toEqual(model.read(op.addr, op.length));
              break;
          }
          expect(m.allocatedPages).toBe(model.pages.size);
        }
        expect(seen).toEqual(expectedSeen);
      }),
      propertyParams({ numRuns: 300 }),
    );
  });

  it('a one-page bulk read is a copy, not a view of the page', () => {
    const m = new PhysicalMemory<L1Gpa>();
    m.writeU32(l1gpa(0x1000n), 0x0403_0201);
    const r = m.read(l1gpa(0x1000n), 4);
    r[0] = 0xff;
    expect(m.readU32(l1gpa(0x1000n))).toBe(0x0403_0201);
  });

  it('a zero write to an absent page allocates nothing but still notifies observers', () => {
    const m = new PhysicalMemory<L1Gpa>();
    const seen: number[] = [];
    m.onWrite((_a, n) => seen.push(n));
    expect(m.writeU64(l1gpa(0x5000n), 0n).ok).toBe(true);
    expect(m.allocatedPages).toBe(0);
    expect(seen).toEqual([8]);
  });

  it('an observer that unsubscribes another during notification does not stop that write reaching it', () => {
    const m = new PhysicalMemory<L1Gpa>();
    const calls: string[] = [];
    let offB = (): void => undefined;
    m.onWrite(() => {
      calls.push('a');
      offB();
    });
    offB = m.onWrite(() => calls.push('b'));
    m.writeU8(l1gpa(0x10n), 1);
    m.writeU8(l1gpa(0x10n), 2);
    expect(calls).toEqual(['a', 'b', 'a']);
  });
});
