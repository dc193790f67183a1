// String instructions (REP/REPE/REPNE, DF, address size, per-iteration stepping) and system instructions
// executed without exits (CPUID, MSRs, CRs, TSC, XSETBV, RDRAND, descriptor tables, ports). SDM Vol. 2 pages.
import { describe, expect, it } from 'vitest';
import { Cr4, Msr, Seg } from '../../../../src/cpu/state.js';
import { handlerAddress, L2Layout, L2Selectors, LatchDevice } from '../../../../src/cpu/interp/index.js';
import { machine, peek64, poke } from './harness.js';

describe('string instructions', () => {
  it('REP MOVSB copies, one iteration per step', () => {
    const m = machine('long64', 'mov rsi, 0x90000; mov rdi, 0x91000; mov rcx, 4; rep movsb; hlt');
    poke(m, 0x90000n, [1, 2, 3, 4]);
    for (let i = 0; i < 3; i++) m.step();
    const rip = m.state.rip;
    m.step();
    expect(m.state.rip).toBe(rip); // still on REP MOVSB after the first iteration
    m.run(20);
    expect(m.memory.readU32(0x91000n as never)).toBe(0x04030201);
    expect(m.state.gpr[1]).toBe(0n);
  });
  it('REP with RCX = 0 does nothing', () => {
    const m = machine('long64', 'mov rdi, 0x91000; xor ecx, ecx; mov al, 7; rep stosb; hlt');
    m.run(20);
    expect(m.memory.readU8(0x91000n as never)).toBe(0);
    expect(m.state.gpr[7]).toBe(0x91000n);
  });
  it('STD makes STOSD go down', () => {
    const m = machine('long64', 'std; mov rdi, 0x91008; mov ecx, 2; mov eax, 0xaabbccdd; rep stosd; hlt');
    m.run(20);
    expect(m.memory.readU32(0x91008n as never)).toBe(0xaabbccdd);
    expect(m.memory.readU32(0x91004n as never)).toBe(0xaabbccdd);
    expect(m.state.gpr[7]).toBe(0x91000n);
  });
  it('REPE CMPSB stops at the first difference; REPNE SCASB finds a byte', () => {
    const m = machine('long64', 'mov rsi, 0x90000; mov rdi, 0x91000; mov ecx, 8; repe cmpsb; hlt');
    poke(m, 0x90000n, [1, 2, 3, 4]);
    poke(m, 0x91000n, [1, 2, 9, 4]);
    m.run(50);
    expect(m.state.gpr[1]).toBe(5n);
    expect(m.state.rflags & 0x40n).toBe(0n);
    const s = machine('long64', 'mov rdi, 0x91000; mov ecx, 10; mov al, 0x33; repne scasb; hlt');
    poke(s, 0x91000n, [0x11, 0x22, 0x33]);
    s.run(50);
    expect(s.state.gpr[7]).toBe(0x91003n);
    expect(s.state.rflags & 0x40n).toBe(0x40n);
  });
  it('address-size prefix: 32-bit ESI/EDI/ECX in 64-bit mode', () => {
    const m = machine('long64', 'mov rsi, 0x100090000; mov rdi, 0x100091000; mov rcx, 0x100000001; rep movsb byte ptr [edi], byte ptr [esi]; hlt');
    poke(m, 0x90000n, [0x5c]);
    m.run(20);
    expect(m.memory.readU8(0x91000n as never)).toBe(0x5c);
    expect(m.state.gpr[6]).toBe(0x90001n); // 32-bit write zero-extends RSI
  });
  it('LODS with a segment override', () => {
    const m = machine('protected32', 'mov esi, 0x10; lodsd eax, dword ptr gs:[esi]; hlt');
    m.state.segBase[Seg.GS] = 0x90000n;
    poke(m, 0x90010n, [0x78, 0x56, 0x34, 0x12]);
    m.run(10);
    expect(m.state.gpr[0]).toBe(0x12345678n);
  });
  it('INS/OUTS move data through ports', () => {
    const latch = new LatchDevice();
    const m = machine('long64', 'mov dx, 0x300; mov rsi, 0x90000; mov ecx, 2; rep outsw; mov rdi, 0x91000; mov ecx, 1; insw; hlt', {
      platform: { devices: new Map([[0x300, latch]]) },
    });
    poke(m, 0x90000n, [0x11, 0x22, 0x33, 0x44]);
    m.run(50);
    expect(m.platform.portWrites.map((w) => w.value)).toEqual([0x2211, 0x4433]);
    expect(m.memory.readU16(0x91000n as never)).toBe(0x4433);
  });
  it('IN/OUT at CPL 3 consult the TSS I/O permission bitmap', () => {
    const m = machine('long64', 'mov dx, 0x40; in al, dx; hlt', { user: true });
    poke(m, L2Layout.IO_BITMAP + 8n, [0x01]);
    m.run(10);
    expect(m.state.rip).toBe(handlerAddress(13) + 1n);
    const ok = machine('long64', 'mov dx, 0x41; in al, dx; jmp $', { user: true });
    poke(ok, L2Layout.IO_BITMAP + 8n, [0x01]);
    ok.run(5);
    expect(ok.state.gpr[0]! & 0xffn).toBe(BigInt((0x41 ^ 0xa5) & 0xff));
  });
});

describe('system instructions', () => {
  it('CPUID returns the platform table; leaf 1 OSXSAVE mirrors CR4', () => {
    const m = machine('long64', 'xor eax, eax; cpuid; mov r8d, ebx; mov eax, 1; cpuid; hlt');
    m.state.cr4 |= Cr4.OSXSAVE;
    m.run(20);
    expect(m.state.gpr[8]).toBe(0x756e6547n);
    expect((m.state.gpr[1]! >> 27n) & 1n).toBe(1n);
  });
  it('RDMSR/WRMSR: existing MSRs round-trip, missing ones #GP', () => {
    const m = machine('long64', 'mov ecx, 0x174; mov eax, 0x10; xor edx, edx; wrmsr; xor eax, eax; rdmsr; mov ecx, 0x12345; rdmsr; hlt');
    m.run(20);
    expect(m.state.msr(Msr.IA32_SYSENTER_CS)).toBe(0x10n);
    expect(m.state.rip).toBe(handlerAddress(13) + 1n);
  });
  it('WRMSR of a non-canonical FS base is #GP', () => {
    const m = machine('long64', 'mov ecx, 0xc0000100; mov edx, 0x00800000; xor eax, eax; wrmsr; hlt');
    m.run(10);
    expect(m.state.rip).toBe(handlerAddress(13) + 1n);
  });
  it('RDTSC counts instructions', () => {
    const m = machine('long64', 'nop; nop; rdtsc; hlt');
    m.state.tsc = 100n;
    m.run(10);
    expect(m.state.gpr[0]).toBe(102n);
  });
  it('MOV to CR4 with a reserved bit is #GP; MOV to CR0 PG without PE is #GP', () => {
    const m = machine('long64', 'mov rax, cr4; bts rax, 12; mov cr4, rax; hlt');
    m.run(10);
    expect(m.state.rip).toBe(handlerAddress(13) + 1n);
  });
  it('XSETBV/XGETBV', () => {
    const m = machine('long64', 'xor ecx, ecx; mov eax, 7; xor edx, edx; xsetbv; xor eax, eax; xgetbv; hlt');
    m.state.cr4 |= Cr4.OSXSAVE;
    m.run(10);
    expect(m.state.gpr[0]).toBe(7n);
    const bad = machine('long64', 'xor ecx, ecx; mov eax, 4; xor edx, edx; xsetbv; hlt');
    bad.state.cr4 |= Cr4.OSXSAVE;
    bad.run(10);
    expect(bad.state.rip).toBe(handlerAddress(13) + 1n);
  });
  it('RDRAND is deterministic per seed and sets CF', () => {
    const a = machine('long64', 'rdrand rax; hlt', { platform: { seed: 42 } });
    const b = machine('long64', 'rdrand rax; hlt', { platform: { seed: 42 } });
    a.run(5);
    b.run(5);
    expect(a.state.gpr[0]).toBe(b.state.gpr[0]);
    expect(a.state.rflags & 1n).toBe(1n);
    const f = machine('long64', 'rdrand eax; hlt', { platform: { rdrandFailEvery: 1 } });
    f.run(5);
    expect(f.state.rflags & 1n).toBe(0n);
    expect(f.state.gpr[0]).toBe(0n);
  });
  it('SGDT/LIDT/STR/SLDT', () => {
    const m = machine('long64', 'sgdt [0x90000]; str ax; sldt bx; mov word ptr [0x90100], 0xfff; mov qword ptr [0x90102], 0x5000; lidt [0x90100]; hlt');
    m.run(20);
    expect(m.memory.readU16(0x90000n as never)).toBe(10 * 8 - 1);
    expect(peek64(m, 0x90002n)).toBe(L2Layout.GDT);
    expect(m.state.gpr[0]! & 0xffffn).toBe(BigInt(L2Selectors.TSS));
    expect(m.state.idtrBase).toBe(0x5000n);
    expect(m.state.idtrLimit).toBe(0xfff);
  });
  it('LGDT at CPL 3 is #GP', () => {
    const m = machine('long64', 'lgdt [0x90000]; hlt', { user: true });
    m.run(10);
    expect(m.state.rip).toBe(handlerAddress(13) + 1n);
  });
  it('HLT enters the HLT state until an event', () => {
    const m = machine('long64', 'hlt; mov eax, 1');
    expect(m.step().kind).toBe('retired');
    expect(m.step().kind).toBe('halted');
    expect(m.state.activity).toBe(1);
  });
  it('triple fault outside VMX is shutdown', () => {
    const m = machine('long64', 'ud2');
    m.state.idtrLimit = 0;
    expect(m.step().kind).toBe('shutdown');
    expect(m.state.activity).toBe(2);
  });
  it('MOV DR with DR7.GD raises #DB', () => {
    const m = machine('long64', 'mov rax, dr0; hlt');
    m.state.dr[7] = 0x2400n;
    m.run(10);
    expect(m.state.rip).toBe(handlerAddress(1) + 1n);
  });
});
