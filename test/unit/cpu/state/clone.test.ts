// CpuState copies: a clone equals its source and shares nothing mutable with it, including when many states are
// made (the GPR arrays are views into shared chunks, which must never overlap).
import { describe, expect, it } from 'vitest';
import { CpuState, Msr, Seg } from '../../../../src/cpu/state.js';

describe('CpuState.clone', () => {
  it('equals the source field by field and is independent of it', () => {
    const s = new CpuState();
    s.gpr[3] = 0xdead_beef_0000_0001n;
    s.rip = 0x1234n;
    s.segBase[Seg.FS] = 0x7000n;
    s.setMsr(Msr.IA32_STAR, 5n);
    s.dr[0] = 9n;
    const c = s.clone();
    expect(c).toEqual(s);
    expect([...c.msrs.keys()]).toEqual([...s.msrs.keys()]);
    c.gpr[3] = 1n;
    c.segBase[Seg.FS] = 0n;
    c.setMsr(Msr.IA32_STAR, 6n);
    c.dr[0] = 0n;
    c.segSel[Seg.CS] = 0;
    expect(s.gpr[3]).toBe(0xdead_beef_0000_0001n);
    expect(s.segBase[Seg.FS]).toBe(0x7000n);
    expect(s.msr(Msr.IA32_STAR)).toBe(5n);
    expect(s.dr[0]).toBe(9n);
    expect(s.segSel[Seg.CS]).toBe(0xf000);
  });

  it('a fresh state is the reset state, and states made in bulk never share GPR storage', () => {
    const states = Array.from({ length: 100 }, (_, i) => {
      const s = i % 2 === 0 ? new CpuState() : new CpuState().clone();
      expect(s.gpr.length).toBe(16);
      expect([...s.gpr]).toEqual(new Array(16).fill(0n));
      expect(s.rip).toBe(0xfff0n);
      expect(s.msr(Msr.IA32_PAT)).toBe(0x0007040600070406n);
      return s;
    });
    states.forEach((s, i) => s.gpr.fill(BigInt(i + 1)));
    states.forEach((s, i) => expect([...s.gpr]).toEqual(new Array(16).fill(BigInt(i + 1))));
  });
});
