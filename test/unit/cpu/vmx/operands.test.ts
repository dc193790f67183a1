// Memory operands of VMX instructions: 64-bit canonical checks (#GP vs #SS), legacy segment type and limit checks
// (incl. expand-down), page-crossing translation, #PF values, and no partial stores when the second page faults.
import { describe, expect, it } from 'vitest';
import { Seg } from '../../../../src/cpu/state.js';
import { linearAddressOf, readMemoryOperand, writeMemoryOperand } from '../../../../src/cpu/vmx/operands.js';
import { MapMemory, identity, root32, root64 } from './helpers.js';

describe('64-bit mode', () => {
  it('adds only FS/GS bases and checks canonicality of the first and last byte', () => {
    const s = root64();
    s.segBase[Seg.FS] = 0x1000n;
    s.segBase[Seg.DS] = 0x5000n; // ignored in 64-bit mode
    expect(linearAddressOf(s, { segment: Seg.FS, offset: 0x10n }, 8, 'read')).toEqual({ ok: true, linear: 0x1010n });
    expect(linearAddressOf(s, { segment: Seg.DS, offset: 0x10n }, 8, 'read')).toEqual({ ok: true, linear: 0x10n });
    expect(linearAddressOf(s, { segment: Seg.DS, offset: 0x7fff_ffff_fffcn }, 8, 'read')).toMatchObject({ ok: false, fault: { vector: 13 } });
    expect(linearAddressOf(s, { segment: Seg.SS, offset: 0x8000_0000_0000n }, 8, 'write')).toMatchObject({ ok: false, fault: { vector: 12 } });
  });
});

describe('legacy segmentation', () => {
  it('faults on an unusable segment, a write to code, a read from execute-only code', () => {
    const s = root32();
    s.segAr[Seg.ES] = 0x1_0000;
    expect(linearAddressOf(s, { segment: Seg.ES, offset: 0n }, 4, 'read')).toMatchObject({ ok: false, fault: { vector: 13, errorCode: 0 } });
    expect(linearAddressOf(s, { segment: Seg.CS, offset: 0n }, 4, 'write')).toMatchObject({ ok: false, fault: { vector: 13 } });
    s.segAr[Seg.CS] = 0xc099; // execute-only
    expect(linearAddressOf(s, { segment: Seg.CS, offset: 0n }, 4, 'read')).toMatchObject({ ok: false, fault: { vector: 13 } });
    s.segAr[Seg.SS] = 0xc091; // read-only stack data: a write faults with #SS
    expect(linearAddressOf(s, { segment: Seg.SS, offset: 0n }, 4, 'write')).toMatchObject({ ok: false, fault: { vector: 12 } });
  });

  it('checks limits (expand-up and expand-down) and wraps base + offset at 32 bits', () => {
    const s = root32();
    s.segLimit[Seg.DS] = 0xfff;
    expect(linearAddressOf(s, { segment: Seg.DS, offset: 0xff8n }, 8, 'read')).toMatchObject({ ok: true });
    expect(linearAddressOf(s, { segment: Seg.DS, offset: 0xff9n }, 8, 'read')).toMatchObject({ ok: false });
    s.segAr[Seg.ES] = 0x4097; // expand-down, B = 1
    s.segLimit[Seg.ES] = 0xfff;
    expect(linearAddressOf(s, { segment: Seg.ES, offset: 0xff8n }, 8, 'read')).toMatchObject({ ok: false });
    expect(linearAddressOf(s, { segment: Seg.ES, offset: 0x1000n }, 8, 'read')).toMatchObject({ ok: true });
    s.segBase[Seg.FS] = 0xffff_f000n;
    expect(linearAddressOf(s, { segment: Seg.FS, offset: 0x2000n }, 4, 'read')).toEqual({ ok: true, linear: 0x1000n });
  });
});

describe('translation and physical access', () => {
  it('reads across a page boundary through two translations and reads 16-byte descriptors', () => {
    const mem = new MapMemory().map(0x10000n, 0x3000);
    const s = root64();
    // Linear page 0x1000 → physical 0x11000, linear 0x2000 → physical 0x10000.
    const translate = (la: bigint) => ({ ok: true as const, phys: (la & 0xfffn) | (la >> 12n === 1n ? 0x11000n : 0x10000n) });
    mem.write(0x11ffcn, 4, 0x4433_2211n);
    mem.write(0x10000n, 4, 0x8877_6655n);
    expect(readMemoryOperand(s, mem, { segment: Seg.DS, offset: 0x1ffcn }, 8, translate)).toEqual({ ok: true, value: 0x8877_6655_4433_2211n });
    mem.write(0x10100n, 8, 0x1111n);
    mem.write(0x10108n, 8, 0x2222n);
    expect(readMemoryOperand(s, mem, { segment: Seg.DS, offset: 0x2100n }, 16, translate)).toEqual({ ok: true, value: (0x2222n << 64n) | 0x1111n });
  });

  it('returns the page walk fault and writes nothing when any page of a store faults', () => {
    const mem = new MapMemory().map(0x1000n, 0x2000);
    const s = root64();
    const translate = (la: bigint) =>
      la >= 0x2000n ? { ok: false as const, fault: { kind: 'fault' as const, vector: 14, errorCode: 2, address: la } } : identity(la);
    const w = writeMemoryOperand(s, mem, { segment: Seg.DS, offset: 0x1ffcn }, 8, 0xffff_ffff_ffff_ffffn, translate);
    expect(w).toEqual({ ok: false, fault: { kind: 'fault', vector: 14, errorCode: 2, address: 0x2000n } });
    expect(mem.read(0x1ffcn, 4)).toBe(0n);
  });

  it('with paging off, linear is physical; with paging on and no translate function it is a turtles bug', () => {
    const mem = new MapMemory().map(0x3000n);
    const s = root32();
    s.cr0 &= ~(1n << 31n);
    mem.write(0x3010n, 4, 0xabcdn);
    expect(readMemoryOperand(s, mem, { segment: Seg.DS, offset: 0x3010n }, 4)).toEqual({ ok: true, value: 0xabcdn });
    expect(() => readMemoryOperand(root64(), mem, { segment: Seg.DS, offset: 0x3010n }, 4)).toThrow(/turtles bug/);
  });
});
