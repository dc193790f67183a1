// Data movement, stack, flags utilities, segment loads with descriptor checks, and control transfer
// (JMP/Jcc/CALL/RET/LOOP/JCXZ, far transfers in real mode, INT/IRET, CLI/STI shadow). SDM Vol. 2 pages.
import { describe, expect, it } from 'vitest';
import { Seg } from '../../../../src/cpu/state.js';
import { F, handlerAddress, L2Layout, L2Selectors } from '../../../../src/cpu/interp/index.js';
import { machine, peek64, poke } from './harness.js';

describe('data movement', () => {
  it('MOVZX/MOVSX/MOVSXD/LEA/XCHG', () => {
    const m = machine('long64', `
      mov eax, 0x80; movzx ebx, al; movsx rcx, al; mov edx, 0x80000000; movsxd rsi, edx
      lea rdi, [rbx + rcx*2 + 3]; mov r8, 1; mov r9, 2; xchg r8, r9; hlt`);
    m.run(50);
    const g = m.state.gpr;
    expect(g[3]).toBe(0x80n);
    expect(g[1]).toBe(0xffff_ffff_ffff_ff80n);
    expect(g[6]).toBe(0xffff_ffff_8000_0000n);
    expect(g[7]).toBe(BigInt.asUintN(64, 0x80n + 2n * 0xffff_ffff_ffff_ff80n + 3n));
    expect(g[8]).toBe(2n);
    expect(g[9]).toBe(1n);
  });
  it('CMOVcc false still zero-extends a 32-bit destination; SETcc', () => {
    const m = machine('long64', 'mov rax, -1; xor ebx, ebx; cmovnz eax, ebx; sete cl; hlt');
    m.run(20);
    expect(m.state.gpr[0]).toBe(0xffff_ffffn);
    expect(m.state.gpr[1]! & 0xffn).toBe(1n);
  });
  it('memory operands, high byte registers, 16-bit addressing in real mode', () => {
    const m = machine('real', 'mov bx, 0x100; mov si, 0x10; mov byte ptr [bx+si], 0x5a; mov ah, [bx+si]; hlt');
    m.run(20);
    expect((m.state.gpr[0]! >> 8n) & 0xffn).toBe(0x5an);
    expect(m.memory.readU8(0x110n as never)).toBe(0x5a);
  });
  it('PUSH/POP sizes and PUSHF/POPF privilege rules', () => {
    const m = machine('long64', 'push 0x1234; pop rbx; pushfq; pop rcx; push 0x3202; popfq; hlt');
    m.run(20);
    expect(m.state.gpr[3]).toBe(0x1234n);
    expect(m.state.gpr[1]).toBe(2n);
    expect(m.state.rflags & 0x3200n).toBe(0x3200n); // CPL 0 may set IF and IOPL
    const u = machine('long64', 'push 0x3202; popfq; hlt', { user: true });
    u.run(20);
    // CPL 3 > IOPL 0: IF and IOPL unchanged; the HLT then faults (#GP) at CPL 3.
    expect(u.state.rip).toBe(handlerAddress(13) + 1n);
  });
  it('LAHF/SAHF, CLC/STC/CMC/CLD/STD, CBW…CQO', () => {
    const m = machine('long64', 'stc; cmc; std; lahf; mov al, 0x80; cbw; cwd; mov eax, -5; cdqe; cqo; hlt');
    m.run(20);
    expect(m.state.rflags & 0x401n).toBe(0x400n);
    expect(m.state.gpr[0]).toBe(BigInt.asUintN(64, -5n));
    expect(m.state.gpr[2]).toBe(0xffff_ffff_ffff_ffffn);
  });
});

describe('segment loads', () => {
  it('real mode: base = selector · 16', () => {
    const m = machine('real', 'mov ax, 0x2000; mov es, ax; hlt');
    m.run(10);
    expect(m.state.segBase[Seg.ES]).toBe(0x20000n);
  });
  it('protected mode: valid data selector loads descriptor, sets accessed', () => {
    const m = machine('protected32', `mov ax, ${L2Selectors.USER_DATA}; mov ax, 0x30; mov fs, ax; hlt`);
    m.run(10);
    expect(m.state.segSel[Seg.FS]).toBe(0x30);
    expect(m.state.segAr[Seg.FS]! & 0xff).toBe(0xf3);
  });
  it('#GP(sel) for a system descriptor, #NP for not present, #GP for SS with RPL ≠ CPL', () => {
    const tss = machine('protected32', 'mov ax, 0x38; mov ds, ax; hlt');
    tss.run(10);
    expect(tss.state.rip).toBe(handlerAddress(13) + 1n);
    const np = machine('protected32', 'mov ax, 0x10; mov ds, ax; hlt');
    poke(np, L2Layout.GDT + 0x10n + 5n, [0x13]); // P = 0
    np.run(10);
    expect(np.state.rip).toBe(handlerAddress(11) + 1n);
    const ss = machine('protected32', 'mov ax, 0x13; mov ss, ax; hlt');
    ss.run(10);
    expect(ss.state.rip).toBe(handlerAddress(13) + 1n);
  });
  it('null selector makes DS unusable; a later access faults #GP(0)', () => {
    const m = machine('protected32', 'xor eax, eax; mov ds, ax; mov ebx, [eax]; hlt');
    m.run(10);
    expect(m.state.rip).toBe(handlerAddress(13) + 1n);
  });
  it('MOV SS sets MOV-SS blocking for the next instruction', () => {
    const m = machine('long64', 'mov ax, ss; mov ss, ax; nop; hlt');
    m.step();
    m.step();
    expect(m.state.interruptibility & 2).toBe(2);
    m.step();
    expect(m.state.interruptibility & 2).toBe(0);
  });
});

describe('control transfer', () => {
  it('CALL/RET near and RET imm16', () => {
    const m = machine('long64', `
      mov rbx, 0
      push 5
      call f
      add rbx, 100
      hlt
      f: add rbx, 1
      ret 8`);
    m.run(50);
    expect(m.state.gpr[3]).toBe(101n);
    expect(m.state.gpr[4]).toBe(L2Layout.STACK_TOP);
  });
  it('LOOP, LOOPNE, JRCXZ and 16-bit counters', () => {
    const m = machine('long64', 'mov ecx, 5; xor eax, eax; top: inc eax; loop top; jrcxz done; mov eax, 99; done: hlt');
    m.run(100);
    expect(m.state.gpr[0]).toBe(5n);
    const r = machine('real', 'mov cx, 3; xor ax, ax; t: add ax, 2; loop t; hlt');
    r.run(100);
    expect(r.state.gpr[0]! & 0xffffn).toBe(6n);
  });
  it('Jcc conditions (signed vs unsigned)', () => {
    const m = machine('long64', 'mov eax, -1; cmp eax, 1; jl less; mov ebx, 1; hlt; less: ja above; mov ebx, 2; hlt; above: mov ebx, 3; hlt');
    m.run(50);
    expect(m.state.gpr[3]).toBe(3n);
  });
  it('indirect JMP/CALL through registers and memory', () => {
    const m = machine('long64', `mov rax, 0x10020; mov qword ptr [0x90000], rax; jmp qword ptr [0x90000]`);
    poke(m, 0x10020n, [0xbb, 0x2a, 0, 0, 0, 0xf4]); // mov ebx, 42; hlt
    m.run(20);
    expect(m.state.gpr[3]).toBe(42n);
  });
  it('near branch beyond the CS limit is #GP(0) (32-bit)', () => {
    const m = machine('protected32', 'jmp eax; hlt');
    m.state.segLimit[Seg.CS] = 0x2_0000;
    m.state.gpr[0] = 0x3_0000n;
    m.run(10);
    expect(m.state.rip).toBe(handlerAddress(13) + 1n);
  });
  it('far JMP in real mode reloads CS', () => {
    const m = machine('real', 'jmp 0x2000:0x10');
    poke(m, 0x20010n, [0xf4]);
    m.run(10);
    expect(m.state.segSel[Seg.CS]).toBe(0x2000);
    expect(m.state.segBase[Seg.CS]).toBe(0x20000n);
    expect(m.state.rip).toBe(0x11n);
  });
  it('INT n and IRET round trip in real mode', () => {
    const m = machine('real', 'int 0x30; mov bx, 7; hlt');
    // Handler for 0x30: iret (replace the hlt stub).
    poke(m, handlerAddress(0x30), [0xcf]);
    m.run(20);
    expect(m.state.gpr[3]! & 0xffffn).toBe(7n);
    expect(m.state.gpr[4]! & 0xffffn).toBe(0x8000n);
  });
  it('INT/IRETQ round trip in 64-bit mode keeps RSP and RFLAGS', () => {
    const m = machine('long64', 'stc; int 0x30; mov ebx, 9; hlt');
    poke(m, handlerAddress(0x30), [0x48, 0xcf]);
    m.run(20);
    expect(m.state.gpr[3]).toBe(9n);
    expect(m.state.gpr[4]).toBe(L2Layout.STACK_TOP);
    expect(Number(m.state.rflags) & F.CF).toBe(F.CF);
  });
  it('INT from CPL 3 switches to the TSS stack; IRETQ returns to CPL 3', () => {
    const m = machine('long64', 'int 0x30; mov ebx, 1; jmp $', { user: true });
    poke(m, handlerAddress(0x30), [0x48, 0xcf]);
    m.step();
    expect(m.state.cpl).toBe(0);
    expect(m.state.gpr[4]).toBe(L2Layout.RING0_STACK_TOP - 40n);
    expect(peek64(m, L2Layout.RING0_STACK_TOP - 16n)).toBe(L2Layout.STACK_TOP - 0x8000n); // saved RSP
    m.step();
    expect(m.state.cpl).toBe(3);
    expect(m.state.segSel[Seg.CS]).toBe(L2Selectors.USER_CODE64);
  });
  it('STI shadow: interrupt delivered only after the next instruction', () => {
    const m = machine('long64', 'sti; mov eax, 1; mov eax, 2; hlt');
    m.interp.raiseInterrupt(0x20);
    expect(m.step().kind).toBe('retired');
    expect(m.step().kind).toBe('retired');
    const r = m.step();
    expect(r.kind).toBe('delivered');
    expect(m.state.gpr[0]).toBe(1n);
  });
  it('CLI at CPL 3 with IOPL 0 is #GP', () => {
    const m = machine('long64', 'cli; hlt', { user: true });
    m.run(10);
    expect(m.state.rip).toBe(handlerAddress(13) + 1n);
  });
  it('single-step trap (TF) delivers #DB after one instruction', () => {
    const m = machine('long64', 'nop; nop; hlt');
    m.state.rflags |= 0x100n;
    expect(m.step().kind).toBe('retired');
    const r = m.step();
    expect(r.kind === 'delivered' && r.event.vector).toBe(1);
    expect(m.state.dr[6]! & (1n << 14n)).toBe(1n << 14n);
  });
});

describe('returns to an outer privilege level', () => {
  it('RETF from CPL 0 to CPL 3 loads SS:ESP from the stack and checks SS against the new CPL', () => {
    const m = machine('protected32', `push ${L2Selectors.USER_DATA}; push 0x70000; push ${L2Selectors.USER_CODE32}; push 0x10020; retf`);
    poke(m, 0x10020n, [0xeb, 0xfe]); // jmp $
    m.run(6);
    expect(m.state.cpl).toBe(3);
    expect(m.state.segSel[Seg.SS]).toBe(L2Selectors.USER_DATA);
    expect(m.state.gpr[4]! & 0xffff_ffffn).toBe(0x70000n);
    expect(m.state.rip).toBe(0x10020n);
  });
  it('RETF to CPL 3 with a ring-0 SS is #GP(selector)', () => {
    const m = machine('protected32', `push ${L2Selectors.DATA}; push 0x70000; push ${L2Selectors.USER_CODE32}; push 0x10020; retf`);
    m.run(6);
    expect(m.state.rip).toBe(handlerAddress(13) + 1n);
    expect(m.state.cpl).toBe(0);
  });
});
