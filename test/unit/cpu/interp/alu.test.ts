// ALU group: exact status flags on hand-checked vectors, count masking and the undefined-flag table, all
// three IMUL forms, MUL/DIV/IDIV including #DE. Values and flags taken from the SDM instruction pages.
import { describe, expect, it } from 'vitest';
import { F, undefinedFlagsOf } from '../../../../src/cpu/interp/index.js';
import { handlerAddress } from '../../../../src/cpu/interp/index.js';
import { machine } from './harness.js';

const STATUS = 0x8d5;

/** Run `prog` (64-bit) with initial RFLAGS `flags`, return rax/rdx/flags after it halts. */
function run64(prog: string, flags = 0x2): { rax: bigint; rbx: bigint; rdx: bigint; flags: number; rip: bigint } {
  const m = machine('long64', `${prog}; hlt`);
  m.state.rflags = BigInt(flags);
  const r = m.run(200);
  expect(r.last.kind).toBe('halted');
  return { rax: m.state.gpr[0]!, rbx: m.state.gpr[3]!, rdx: m.state.gpr[2]!, flags: Number(m.state.rflags) & STATUS, rip: m.state.rip };
}

describe('add/sub family flags', () => {
  it('ADD 8-bit carry, zero, parity, aux', () => {
    const r = run64('mov al, 0xff; add al, 1');
    expect(r.rax & 0xffn).toBe(0n);
    expect(r.flags).toBe(F.CF | F.ZF | F.PF | F.AF);
  });
  it('ADD signed overflow 0x7f + 1', () => {
    const r = run64('mov al, 0x7f; add al, 1');
    expect(r.flags).toBe(F.OF | F.SF | F.AF);
  });
  it('ADC uses CF', () => {
    const r = run64('stc; mov eax, 0xffffffff; adc eax, 0');
    expect(r.rax).toBe(0n);
    expect(r.flags).toBe(F.CF | F.ZF | F.PF | F.AF);
  });
  it('SUB borrow and overflow 0x80 - 1', () => {
    const r = run64('mov al, 0x80; sub al, 1');
    expect(r.rax & 0xffn).toBe(0x7fn);
    expect(r.flags).toBe(F.OF | F.AF);
  });
  it('SBB with borrow in', () => {
    const r = run64('stc; mov eax, 0; sbb eax, 0');
    expect(r.rax).toBe(0xffff_ffffn);
    expect(r.flags).toBe(F.CF | F.SF | F.PF | F.AF);
  });
  it('CMP does not store; 64-bit', () => {
    const r = run64('mov rax, 5; cmp rax, 6');
    expect(r.rax).toBe(5n);
    expect(r.flags).toBe(F.CF | F.SF | F.PF | F.AF);
  });
  it('INC keeps CF, DEC sets ZF', () => {
    const r = run64('stc; mov eax, 0xffffffff; inc eax');
    expect(r.flags).toBe(F.CF | F.ZF | F.PF | F.AF);
    const d = run64('mov ecx, 1; dec ecx; mov eax, ecx');
    expect(d.flags).toBe(F.ZF | F.PF);
  });
  it('NEG: CF = (src != 0); NEG 0x80 overflows', () => {
    expect(run64('mov al, 0; neg al').flags).toBe(F.ZF | F.PF);
    expect(run64('mov al, 0x80; neg al').flags).toBe(F.CF | F.OF | F.SF);
  });
  it('NOT changes no flags', () => {
    const r = run64('stc; mov eax, 0; not eax', 0x2 | F.ZF);
    expect(r.rax).toBe(0xffff_ffffn);
    expect(r.flags).toBe(F.CF | F.ZF);
  });
  it('32-bit ops zero-extend, 16-bit ops merge', () => {
    const m = machine('long64', 'mov rax, -1; add eax, 1; mov rbx, -1; add bx, 1; hlt');
    m.run(20);
    expect(m.state.gpr[0]).toBe(0n);
    expect(m.state.gpr[3]).toBe(0xffff_ffff_ffff_0000n);
  });
});

describe('logic', () => {
  it('AND/OR/XOR/TEST clear CF and OF, AF undefined', () => {
    const r = run64('stc; mov eax, 0xf0; and eax, 0x0f', 0x2 | F.OF);
    expect(r.flags & ~undefinedFlagsOf('and')).toBe(F.ZF | F.PF);
    expect(undefinedFlagsOf('xor')).toBe(F.AF);
    const t = run64('mov eax, 0x80000000; test eax, eax');
    expect(t.flags & ~F.AF).toBe(F.SF | F.PF);
  });
});

describe('shifts and rotates', () => {
  it('SHL count masked to 5 bits for 32-bit operands', () => {
    const r = run64('mov eax, 1; mov cl, 33; shl eax, cl');
    expect(r.rax).toBe(2n);
  });
  it('count 0 changes no flags', () => {
    const r = run64('stc; mov eax, 1; mov cl, 32; shl eax, cl', 0x2 | F.ZF);
    expect(r.flags).toBe(F.CF | F.ZF);
  });
  it('SHL 1 sets CF from the top bit and OF = MSB ^ CF', () => {
    const r = run64('mov al, 0xc0; shl al, 1');
    expect(r.rax & 0xffn).toBe(0x80n);
    expect(r.flags & ~F.AF).toBe(F.CF | F.SF);
  });
  it('SHR 1: OF = original MSB', () => {
    const r = run64('mov al, 0x81; shr al, 1');
    expect(r.rax & 0xffn).toBe(0x40n);
    expect(r.flags & ~F.AF).toBe(F.CF | F.OF);
  });
  it('SAR keeps the sign; count >= width gives all sign bits and CF = sign', () => {
    const r = run64('mov al, 0x80; mov cl, 12; sar al, cl');
    expect(r.rax & 0xffn).toBe(0xffn);
    expect(r.flags & F.CF).toBe(F.CF);
  });
  it('ROL/ROR only CF/OF; ROR 1 OF = top two bits XOR', () => {
    const r = run64('mov al, 0x01; ror al, 1', 0x2 | F.ZF | F.SF);
    expect(r.rax & 0xffn).toBe(0x80n);
    expect(r.flags).toBe(F.ZF | F.SF | F.CF | F.OF);
  });
  it('RCL through carry, 8-bit count modulo 9', () => {
    const r = run64('stc; mov al, 0; mov cl, 10; rcl al, cl');
    // Rotating CF:AL (9 bits) left by 10 mod 9 = 1: CF moves into bit 0.
    expect(r.rax & 0xffn).toBe(1n);
    expect(r.flags & F.CF).toBe(0);
  });
  it('RCR 1: OF = MSB(dest) XOR CF before rotating', () => {
    const r = run64('stc; mov al, 0; rcr al, 1');
    expect(r.rax & 0xffn).toBe(0x80n);
    expect(r.flags).toBe(F.OF);
  });
  it('undefined-flag table for shifts depends on count', () => {
    expect(undefinedFlagsOf('shl', 1, 4)).toBe(F.AF);
    expect(undefinedFlagsOf('shl', 2, 4)).toBe(F.AF | F.OF);
    expect(undefinedFlagsOf('shl', 9, 1)).toBe(F.AF | F.OF | F.CF);
    expect(undefinedFlagsOf('sar', 9, 1)).toBe(F.AF | F.OF);
    expect(undefinedFlagsOf('shl', 32, 4)).toBe(0);
    expect(undefinedFlagsOf('rol', 3, 4)).toBe(F.OF);
  });
});

describe('multiply and divide', () => {
  it('MUL 8-bit into AX, CF=OF when high half non-zero', () => {
    const r = run64('mov al, 0x80; mov bl, 2; mul bl');
    expect(r.rax & 0xffffn).toBe(0x100n);
    expect(r.flags & (F.CF | F.OF)).toBe(F.CF | F.OF);
  });
  it('MUL 64-bit into RDX:RAX', () => {
    const r = run64('mov rax, -1; mov rbx, -1; mul rbx');
    expect(r.rax).toBe(1n);
    expect(r.rdx).toBe(0xffff_ffff_ffff_fffen);
  });
  it('IMUL one operand signed', () => {
    const r = run64('mov eax, -2; mov ebx, 3; imul ebx');
    expect(r.rax).toBe(0xffff_fffan);
    expect(r.rdx).toBe(0xffff_ffffn);
    expect(r.flags & (F.CF | F.OF)).toBe(0);
  });
  it('IMUL two and three operands truncate and flag overflow', () => {
    const r = run64('mov eax, 0x40000000; mov ebx, 4; imul eax, ebx');
    expect(r.rax).toBe(0n);
    expect(r.flags & (F.CF | F.OF)).toBe(F.CF | F.OF);
    const t = run64('mov rbx, -7; imul rax, rbx, 6');
    expect(t.rax).toBe(BigInt.asUintN(64, -42n));
    expect(t.flags & (F.CF | F.OF)).toBe(0);
  });
  it('DIV and IDIV results', () => {
    const r = run64('mov edx, 0; mov eax, 100; mov ecx, 7; div ecx');
    expect(r.rax).toBe(14n);
    expect(r.rdx).toBe(2n);
    const s = run64('mov eax, -100; cdq; mov ecx, 7; idiv ecx');
    expect(s.rax).toBe(BigInt.asUintN(32, -14n));
    expect(s.rdx).toBe(BigInt.asUintN(32, -2n));
  });
  it('#DE on divide by zero and on quotient overflow', () => {
    for (const prog of ['xor ecx, ecx; div ecx', 'mov edx, 1; mov eax, 0; mov ecx, 1; div ecx', 'mov eax, 0x80000000; cdq; mov ecx, -1; idiv ecx']) {
      const m = machine('long64', `${prog}; hlt`);
      const r = m.run(20);
      expect(r.last.kind).toBe('halted');
      expect(m.state.rip).toBe(handlerAddress(0) + 1n);
    }
  });
});
