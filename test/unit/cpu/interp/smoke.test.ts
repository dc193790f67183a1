import { describe, expect, it } from 'vitest';
import { machine } from './harness.js';
import { handlerAddress } from '../../../../src/cpu/interp/index.js';

describe('smoke', () => {
  it('runs 64-bit code to hlt', () => {
    const m = machine('long64', 'mov eax, 5; add eax, 7; push rax; pop rbx; hlt');
    const r = m.run(100);
    expect(r.last.kind).toBe('halted');
    expect(m.state.gpr[3]).toBe(12n);
  });
  it('runs real mode code', () => {
    const m = machine('real', 'mov ax, 0x1234; mov bx, ax; int 0x21');
    const r = m.run(10);
    expect(r.last.kind).toBe('halted');
    expect(m.state.gpr[3]).toBe(0x1234n);
    expect(m.state.rip).toBe(handlerAddress(0x21) + 1n);
  });
  it('protected mode #DE', () => {
    const m = machine('protected32', 'xor ecx, ecx; div ecx; hlt');
    const r = m.run(10);
    expect(r.last.kind).toBe('halted');
    expect(m.state.rip).toBe(handlerAddress(0) + 1n);
  });
});
