// Non-root instruction rules end to end: an L2 program runs under a VMCS and the first VM exit is compared
// with what SDM 25.1.2/25.1.3 and 27.2 prescribe (reason, qualification, length, instruction information),
// including the faults that take priority over the exit (SDM 25.1.1).
import { describe, expect, it } from 'vitest';
import { ExitReason as R } from '../../../../src/cpu/generated/exit-reasons.js';
import { Primary, Secondary } from '../../../../src/cpu/generated/controls.js';
import { decodeInstructionInfo } from '../../../../src/cpu/exit-info/instruction-info.js';
import { decodeCrAccess, decodeIo, decodeMovDr } from '../../../../src/cpu/exit-info/qualifications.js';
import { Cr4, Seg } from '../../../../src/cpu/state.js';
import { handlerAddress, L2Layout, type L2Mode, type StepResult } from '../../../../src/cpu/interp/index.js';
import type { NonRootExit } from '../../../../src/cpu/nonroot/types.js';
import { machine, poke, vmcsWith, type Machine } from '../interp/harness.js';

type Fields = Parameters<typeof vmcsWith>[0];

function runUnder(mode: L2Mode, prog: string, fields: Fields, setup?: (m: Machine) => void): { m: Machine; last: StepResult } {
  const m = machine(mode, `${prog}; hlt`, { vmcs: vmcsWith(fields) });
  setup?.(m);
  const r = m.run(200);
  return { m, last: r.last };
}

function exitOf(mode: L2Mode, prog: string, fields: Fields, setup?: (m: Machine) => void): NonRootExit {
  const { last } = runUnder(mode, prog, fields, setup);
  if (last.kind !== 'vmexit') throw new Error(`expected a VM exit, got ${JSON.stringify(last, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString(16) : v))}`);
  return last.exit;
}

function noExit(mode: L2Mode, prog: string, fields: Fields, setup?: (m: Machine) => void): Machine {
  const { m, last } = runUnder(mode, prog, fields, setup);
  expect(last.kind).toBe('halted');
  return m;
}

describe('unconditional exits', () => {
  it('CPUID exits even at CPL 3, with its length', () => {
    const m = machine('long64', 'nop; cpuid; hlt', { vmcs: vmcsWith({}), user: true });
    const r = m.run(10);
    expect(r.last.kind).toBe('vmexit');
    if (r.last.kind !== 'vmexit') return;
    expect(r.last.exit.reason).toBe(R.CPUID);
    expect(r.last.exit.instructionLength).toBe(2);
    expect(m.state.rip).toBe(L2Layout.CODE + 1n); // fault-like: RIP at CPUID
  });
  it('INVD exits at CPL 0 but #GP has priority at CPL 3', () => {
    expect(exitOf('long64', 'invd', {}).reason).toBe(R.INVD);
    const m = machine('long64', 'invd; hlt', { vmcs: vmcsWith({}), user: true });
    expect(m.run(10).last.kind).toBe('halted');
    expect(m.state.rip).toBe(handlerAddress(13) + 1n);
  });
  it('XSETBV: #UD without CR4.OSXSAVE precedes the exit', () => {
    const m = noExit('long64', 'xsetbv', {});
    expect(m.state.rip).toBe(handlerAddress(6) + 1n);
    expect(exitOf('long64', 'xsetbv', {}, (x) => { x.state.cr4 |= Cr4.OSXSAVE; }).reason).toBe(R.XSETBV);
  });
  it('VMCALL exits in real mode too', () => {
    expect(exitOf('real', 'vmcall', {}).reason).toBe(R.VMCALL);
  });
  it('VMX instructions: #UD in real mode precedes; CPL 3 still exits', () => {
    const m = noExit('real', 'vmxoff', {});
    expect(m.state.rip).toBe(handlerAddress(6) + 1n);
    const u = machine('long64', 'vmxoff; hlt', { vmcs: vmcsWith({}), user: true });
    const r = u.run(5);
    expect(r.last.kind === 'vmexit' && r.last.exit.reason).toBe(R.VMXOFF);
  });
  it('VMPTRLD reports displacement and instruction information', () => {
    const e = exitOf('long64', 'vmptrld qword ptr [rbx + rcx*8 - 0x10]', {});
    expect(e.reason).toBe(R.VMPTRLD);
    expect(e.qualification).toBe(BigInt.asUintN(64, -0x10n));
    const info = decodeInstructionInfo(R.VMPTRLD, e.instructionInfo!)!.value as Record<string, unknown>;
    expect(info).toMatchObject({ scaling: 3, addressSize: 2, segment: Seg.DS, indexReg: 1, indexInvalid: false, baseReg: 3, baseInvalid: false });
  });
  it('RIP-relative VMCLEAR: qualification is the effective address', () => {
    const e = exitOf('long64', 'vmclear qword ptr [rip + 0x100]', {});
    expect(e.qualification).toBe(L2Layout.CODE + BigInt(e.instructionLength!) + 0x100n);
    const info = decodeInstructionInfo(R.VMCLEAR, e.instructionInfo!)!.value as Record<string, unknown>;
    expect(info).toMatchObject({ baseInvalid: true, indexInvalid: true });
  });
  it('INVEPT: reg2 holds the type register', () => {
    const e = exitOf('long64', 'invept r9, oword ptr [rsp + 8]', {});
    expect(e.reason).toBe(R.INVEPT);
    const info = decodeInstructionInfo(R.INVEPT, e.instructionInfo!)!.value as Record<string, unknown>;
    expect(info).toMatchObject({ reg2: 9, baseReg: 4, segment: Seg.SS });
    expect(e.qualification).toBe(8n);
  });
});

describe('VMREAD/VMWRITE and VMCS shadowing', () => {
  it('exits without shadowing, reporting register forms', () => {
    const e = exitOf('long64', 'vmread rax, rcx', {});
    expect(e.reason).toBe(R.VMREAD);
    const info = decodeInstructionInfo(R.VMREAD, e.instructionInfo!)!.value as Record<string, unknown>;
    expect(info).toMatchObject({ register: true, reg1: 0, reg2: 1 });
    const w = exitOf('long64', 'vmwrite rdx, qword ptr [rbx]', {});
    expect(w.reason).toBe(R.VMWRITE);
    expect(decodeInstructionInfo(R.VMWRITE, w.instructionInfo!)!.value).toMatchObject({ register: false, reg2: 2, baseReg: 3 });
  });
  it('with shadowing: bitmap bit 0 goes to the shadow VMCS, bit 1 exits, encodings above bit 14 exit', () => {
    const bitmap = 0x50000n;
    const fields: Fields = { SECONDARY_VM_EXEC_CONTROL: Secondary.VMCS_SHADOWING, VMREAD_BITMAP: bitmap, VMWRITE_BITMAP: bitmap };
    const shadow = new Map<number, bigint>([[0x4402, 0x1234n]]);
    const runtime = { shadowVmcs: { read: (e: number) => shadow.get(e), write: () => 'ok' as const } };
    const m = machine('long64', 'mov ecx, 0x4402; vmread rax, rcx; hlt', { vmcs: vmcsWith(fields), runtime });
    expect(m.run(10).last.kind).toBe('halted');
    expect(m.state.gpr[0]).toBe(0x1234n);
    expect(m.state.rflags & 0x41n).toBe(0n);
    const x = machine('long64', 'mov ecx, 0x4402; vmread rax, rcx; hlt', { vmcs: vmcsWith(fields), runtime });
    poke(x, bitmap + (0x4402n >> 3n), [1 << (0x4402 & 7)]);
    const r = x.run(10);
    expect(r.last.kind === 'vmexit' && r.last.exit.reason).toBe(R.VMREAD);
    const big = machine('long64', 'mov ecx, 0x8000; vmread rax, rcx; hlt', { vmcs: vmcsWith(fields), runtime });
    expect(big.run(10).last.kind).toBe('vmexit');
  });
});

describe('conditional instruction exits', () => {
  const cases: [string, string, Fields, number][] = [
    ['HLT', 'hlt', { CPU_BASED_VM_EXEC_CONTROL: Primary.HLT_EXITING }, R.HLT],
    ['INVLPG', 'invlpg [rax]', { CPU_BASED_VM_EXEC_CONTROL: Primary.INVLPG_EXITING }, R.INVLPG],
    ['RDPMC', 'rdpmc', { CPU_BASED_VM_EXEC_CONTROL: Primary.RDPMC_EXITING }, R.RDPMC],
    ['RDTSC', 'rdtsc', { CPU_BASED_VM_EXEC_CONTROL: Primary.RDTSC_EXITING }, R.RDTSC],
    ['RDTSCP', 'rdtscp', { CPU_BASED_VM_EXEC_CONTROL: Primary.RDTSC_EXITING, SECONDARY_VM_EXEC_CONTROL: Secondary.ENABLE_RDTSCP }, R.RDTSCP],
    ['MONITOR', 'monitor', { CPU_BASED_VM_EXEC_CONTROL: Primary.MONITOR_EXITING }, R.MONITOR_INSTRUCTION],
    ['MWAIT', 'mwait', { CPU_BASED_VM_EXEC_CONTROL: Primary.MWAIT_EXITING }, R.MWAIT_INSTRUCTION],
    ['PAUSE', 'pause', { CPU_BASED_VM_EXEC_CONTROL: Primary.PAUSE_EXITING }, R.PAUSE_INSTRUCTION],
    ['WBINVD', 'wbinvd', { SECONDARY_VM_EXEC_CONTROL: Secondary.WBINVD_EXITING }, R.WBINVD],
    ['RDRAND', 'rdrand eax', { SECONDARY_VM_EXEC_CONTROL: Secondary.RDRAND_EXITING }, R.RDRAND],
    ['RDSEED', 'rdseed rax', { SECONDARY_VM_EXEC_CONTROL: Secondary.RDSEED_EXITING }, R.RDSEED],
    ['SGDT', 'sgdt [rax]', { SECONDARY_VM_EXEC_CONTROL: Secondary.DESCRIPTOR_TABLE_EXITING }, R.GDTR_IDTR],
    ['STR', 'str eax', { SECONDARY_VM_EXEC_CONTROL: Secondary.DESCRIPTOR_TABLE_EXITING }, R.LDTR_TR],
  ];
  for (const [name, prog, fields, reason] of cases) {
    it(`${name} exits with its control and executes without it`, () => {
      const setup = (m: Machine) => { m.state.gpr[0] = L2Layout.DATA; };
      const e = exitOf('long64', prog, fields, setup);
      expect(e.reason).toBe(reason);
      expect(e.instructionLength).toBeGreaterThan(0);
      const without = { ...fields, CPU_BASED_VM_EXEC_CONTROL: 0, SECONDARY_VM_EXEC_CONTROL: name === 'RDTSCP' ? Secondary.ENABLE_RDTSCP : 0 };
      const m = noExit('long64', prog, without, setup);
      // Executed, then the trailing HLT retired (RIP after it); HLT itself halts at once.
      expect(m.state.rip).toBe(L2Layout.CODE + BigInt(e.instructionLength!) + (name === 'HLT' ? 0n : 1n));
    });
  }
  it('INVLPG qualification is the linear address (FS base included)', () => {
    const e = exitOf('long64', 'invlpg fs:[rax + 0x10]', { CPU_BASED_VM_EXEC_CONTROL: Primary.INVLPG_EXITING }, (m) => {
      m.state.gpr[0] = 0x1000n;
      m.state.segBase[Seg.FS] = 0x7000_0000n;
    });
    expect(e.qualification).toBe(0x7000_1010n);
  });
  it('RDTSCP is #UD without "enable RDTSCP"', () => {
    const m = noExit('long64', 'rdtscp', { CPU_BASED_VM_EXEC_CONTROL: Primary.RDTSC_EXITING });
    expect(m.state.rip).toBe(handlerAddress(6) + 1n);
  });
  it('RDTSC #GP (CR4.TSD, CPL 3) has priority over the exit', () => {
    const m = machine('long64', 'rdtsc; hlt', { vmcs: vmcsWith({ CPU_BASED_VM_EXEC_CONTROL: Primary.RDTSC_EXITING }), user: true });
    m.state.cr4 |= Cr4.TSD;
    m.run(10);
    expect(m.state.rip).toBe(handlerAddress(13) + 1n);
  });
  it('MWAIT qualification bit 0 reports an armed monitor', () => {
    const e = exitOf('long64', 'xor ecx, ecx; monitor; mwait', { CPU_BASED_VM_EXEC_CONTROL: Primary.MWAIT_EXITING });
    expect(e.qualification).toBe(1n);
  });
  it('RDRAND instruction information: register and operand size', () => {
    const e = exitOf('long64', 'rdrand r10w', { SECONDARY_VM_EXEC_CONTROL: Secondary.RDRAND_EXITING });
    expect(decodeInstructionInfo(R.RDRAND, e.instructionInfo!)!.value).toMatchObject({ register: 10, operandSize: 0 });
  });
  it('LGDT in 32-bit mode: operand size, identity, displacement', () => {
    const e = exitOf('protected32', 'lgdt [ebx + 0x20]', { SECONDARY_VM_EXEC_CONTROL: Secondary.DESCRIPTOR_TABLE_EXITING });
    expect(e.qualification).toBe(0x20n);
    expect(decodeInstructionInfo(R.GDTR_IDTR, e.instructionInfo!)!.value).toMatchObject({ instruction: 'lgdt', operandSize32: true, addressSize: 1, baseReg: 3 });
  });
  it('LLDT register form and #UD in real mode before the exit', () => {
    const e = exitOf('long64', 'lldt dx', { SECONDARY_VM_EXEC_CONTROL: Secondary.DESCRIPTOR_TABLE_EXITING });
    expect(decodeInstructionInfo(R.LDTR_TR, e.instructionInfo!)!.value).toMatchObject({ instruction: 'lldt', register: true, reg1: 2 });
    const m = noExit('real', 'sldt ax', { SECONDARY_VM_EXEC_CONTROL: Secondary.DESCRIPTOR_TABLE_EXITING });
    expect(m.state.rip).toBe(handlerAddress(6) + 1n);
  });
  it('INVPCID needs "enable INVPCID" and exits on INVLPG exiting', () => {
    const m = noExit('long64', 'invpcid rax, oword ptr [rbx]', { CPU_BASED_VM_EXEC_CONTROL: Primary.INVLPG_EXITING });
    expect(m.state.rip).toBe(handlerAddress(6) + 1n);
    const e = exitOf('long64', 'invpcid rax, oword ptr [rbx]', { CPU_BASED_VM_EXEC_CONTROL: Primary.INVLPG_EXITING, SECONDARY_VM_EXEC_CONTROL: Secondary.ENABLE_INVPCID });
    expect(e.reason).toBe(R.INVPCID);
  });
  it('UMWAIT/TPAUSE exit on RDTSC exiting (SDM), #UD without user-wait-pause', () => {
    const m = noExit('long64', 'tpause eax', { CPU_BASED_VM_EXEC_CONTROL: Primary.RDTSC_EXITING });
    expect(m.state.rip).toBe(handlerAddress(6) + 1n);
    const e = exitOf('long64', 'tpause ecx', { CPU_BASED_VM_EXEC_CONTROL: Primary.RDTSC_EXITING, SECONDARY_VM_EXEC_CONTROL: Secondary.ENABLE_USER_WAIT_AND_PAUSE });
    expect(e.reason).toBe(R.TPAUSE);
    expect(e.instructionInfo).toBe(1 << 3);
  });
});

describe('CR and DR accesses', () => {
  it('MOV to CR0 exits iff a masked bit differs from the shadow', () => {
    const fields: Fields = { CR0_GUEST_HOST_MASK: 0x20n, CR0_READ_SHADOW: 0x20n };
    const e = exitOf('long64', 'mov rax, cr0; and eax, 0xffffffdf; mov cr0, rax', fields);
    expect(e.reason).toBe(R.CR_ACCESS);
    expect(decodeCrAccess(e.qualification).value).toEqual({ access: 'mov-to-cr', cr: 0, gpr: 0 });
    noExit('long64', 'mov rax, cr0; or eax, 0x20; mov cr0, rax', fields);
  });
  it('MOV from CR0/CR4 returns the shadow for masked bits', () => {
    const m = noExit('long64', 'mov rbx, cr4', { CR4_GUEST_HOST_MASK: 0x2000n, CR4_READ_SHADOW: 0n }, (x) => { x.state.cr4 |= Cr4.VMXE; });
    expect(m.state.gpr[3]! & 0x2000n).toBe(0n);
    expect(m.state.cr4 & Cr4.VMXE).toBe(Cr4.VMXE);
  });
  it('non-exiting MOV to CR0 leaves masked bits unchanged', () => {
    const m = noExit('long64', 'mov rax, cr0; or eax, 0x40000000; mov cr0, rax', { CR0_GUEST_HOST_MASK: 0x4000_0000n, CR0_READ_SHADOW: 0x4000_0000n });
    expect(m.state.cr0 & 0x4000_0000n).toBe(0n);
  });
  it('CR3 load exiting honours the CR3-target values', () => {
    const fields: Fields = { CPU_BASED_VM_EXEC_CONTROL: Primary.CR3_LOAD_EXITING, CR3_TARGET_COUNT: 1, CR3_TARGET_VALUE0: 0x20_0000n };
    noExit('long64', 'mov rax, cr3; mov cr3, rax', fields);
    const e = exitOf('long64', 'mov r12, 0x300000; mov cr3, r12', fields);
    expect(decodeCrAccess(e.qualification).value).toEqual({ access: 'mov-to-cr', cr: 3, gpr: 12 });
  });
  it('CR3 store and CR8 load/store exiting', () => {
    expect(decodeCrAccess(exitOf('long64', 'mov rdx, cr3', { CPU_BASED_VM_EXEC_CONTROL: Primary.CR3_STORE_EXITING }).qualification).value)
      .toEqual({ access: 'mov-from-cr', cr: 3, gpr: 2 });
    expect(decodeCrAccess(exitOf('long64', 'mov cr8, rsi', { CPU_BASED_VM_EXEC_CONTROL: Primary.CR8_LOAD_EXITING }).qualification).value)
      .toEqual({ access: 'mov-to-cr', cr: 8, gpr: 6 });
    expect(decodeCrAccess(exitOf('long64', 'mov rdi, cr8', { CPU_BASED_VM_EXEC_CONTROL: Primary.CR8_STORE_EXITING }).qualification).value)
      .toEqual({ access: 'mov-from-cr', cr: 8, gpr: 7 });
  });
  it('TPR shadow: MOV to CR8 writes VTPR and may exit TPR-below-threshold (trap-like)', () => {
    const vapic = 0xa0000n;
    const fields: Fields = { CPU_BASED_VM_EXEC_CONTROL: Primary.USE_TPR_SHADOW, VIRTUAL_APIC_PAGE_ADDR: vapic, TPR_THRESHOLD: 5 };
    const { m, last } = runUnder('long64', 'mov eax, 3; mov cr8, rax; nop', fields);
    expect(last.kind === 'vmexit' && last.exit.reason).toBe(R.TPR_BELOW_THRESHOLD);
    expect(m.memory.readU8((vapic + 0x80n) as never)).toBe(0x30);
    expect(m.state.rip).toBe(L2Layout.CODE + 5n + 4n); // after MOV to CR8
    const r = noExit('long64', 'mov eax, 7; mov cr8, rax; mov rbx, cr8', fields);
    expect(r.state.gpr[3]).toBe(7n);
    expect(r.state.cr8).toBe(0n);
  });
  it('CLTS exits iff TS is set in both mask and shadow; otherwise TS is owned by the host', () => {
    expect(decodeCrAccess(exitOf('long64', 'clts', { CR0_GUEST_HOST_MASK: 8n, CR0_READ_SHADOW: 8n }).qualification).value).toEqual({ access: 'clts' });
    const m = noExit('long64', 'clts', { CR0_GUEST_HOST_MASK: 8n, CR0_READ_SHADOW: 0n }, (x) => { x.state.cr0 |= 8n; });
    expect(m.state.cr0 & 8n).toBe(8n);
    const n = noExit('long64', 'clts', {}, (x) => { x.state.cr0 |= 8n; });
    expect(n.state.cr0 & 8n).toBe(0n);
  });
  it('LMSW: PE can be set but not cleared; memory source reported', () => {
    const fields: Fields = { CR0_GUEST_HOST_MASK: 1n, CR0_READ_SHADOW: 0n };
    const e = exitOf('long64', 'mov word ptr [rbx], 0x1; lmsw word ptr [rbx]', fields, (m) => { m.state.gpr[3] = L2Layout.DATA; });
    expect(decodeCrAccess(e.qualification).value).toEqual({ access: 'lmsw', memoryOperand: true, sourceData: 1 });
    expect(e.guestLinearAddress).toBe(L2Layout.DATA);
    noExit('long64', 'xor eax, eax; lmsw ax', fields);
    const t = exitOf('long64', 'mov eax, 8; lmsw ax', { CR0_GUEST_HOST_MASK: 8n, CR0_READ_SHADOW: 0n });
    expect(decodeCrAccess(t.qualification).value).toEqual({ access: 'lmsw', memoryOperand: false, sourceData: 8 });
  });
  it('MOV DR exits on MOV-DR exiting; DR4 with CR4.DE is #UD first', () => {
    const e = exitOf('long64', 'mov dr7, r11', { CPU_BASED_VM_EXEC_CONTROL: Primary.MOV_DR_EXITING });
    expect(decodeMovDr(e.qualification).value).toEqual({ dr: 7, direction: 'to-dr', gpr: 11 });
    const f = exitOf('long64', 'mov rcx, dr6', { CPU_BASED_VM_EXEC_CONTROL: Primary.MOV_DR_EXITING });
    expect(decodeMovDr(f.qualification).value).toEqual({ dr: 6, direction: 'from-dr', gpr: 1 });
    const m = noExit('long64', 'mov rax, dr4', { CPU_BASED_VM_EXEC_CONTROL: Primary.MOV_DR_EXITING }, (x) => { x.state.cr4 |= Cr4.DE; });
    expect(m.state.rip).toBe(handlerAddress(6) + 1n);
  });
  it('MOV to CR is #GP at CPL 3 before any exit', () => {
    const m = machine('long64', 'mov cr0, rax; hlt', { vmcs: vmcsWith({ CR0_GUEST_HOST_MASK: -1n }), user: true });
    m.run(10);
    expect(m.state.rip).toBe(handlerAddress(13) + 1n);
  });
});

describe('I/O', () => {
  it('unconditional I/O exiting; qualification fields', () => {
    const e = exitOf('long64', 'mov dx, 0x3f8; out dx, ax', { CPU_BASED_VM_EXEC_CONTROL: Primary.UNCONDITIONAL_IO_EXITING });
    expect(decodeIo(e.qualification).value).toEqual({ size: 2, direction: 'out', string: false, rep: false, immediate: false, port: 0x3f8 });
    const i = exitOf('long64', 'in eax, 0x71', { CPU_BASED_VM_EXEC_CONTROL: Primary.UNCONDITIONAL_IO_EXITING });
    expect(decodeIo(i.qualification).value).toEqual({ size: 4, direction: 'in', string: false, rep: false, immediate: true, port: 0x71 });
  });
  it('I/O bitmaps: any byte of the access; B covers 8000h-FFFFh; wrap exits', () => {
    const a = 0xb0000n;
    const b = 0xb1000n;
    const fields: Fields = { CPU_BASED_VM_EXEC_CONTROL: Primary.USE_IO_BITMAPS | Primary.UNCONDITIONAL_IO_EXITING, IO_BITMAP_A: a, IO_BITMAP_B: b };
    // Port 0x81 intercepted: a dword access at 0x80 touches it.
    const setA = (m: Machine) => poke(m, a + 0x10n, [0x02]);
    noExit('long64', 'mov dx, 0x7c; out dx, eax', fields, setA);
    expect(exitOf('long64', 'mov dx, 0x80; out dx, eax', fields, setA).reason).toBe(R.IO_INSTRUCTION);
    const setB = (m: Machine) => poke(m, b + 0x1n, [0x01]);
    expect(exitOf('long64', 'mov dx, 0x8008; in al, dx', fields, setB).reason).toBe(R.IO_INSTRUCTION);
    expect(exitOf('long64', 'mov dx, 0xffff; in ax, dx', fields).reason).toBe(R.IO_INSTRUCTION);
  });
  it('string I/O: linear address, REP, instruction information', () => {
    const e = exitOf('long64', 'mov dx, 0x60; mov edi, 0x90000; rep insw', { CPU_BASED_VM_EXEC_CONTROL: Primary.UNCONDITIONAL_IO_EXITING });
    expect(decodeIo(e.qualification).value).toMatchObject({ size: 2, direction: 'in', string: true, rep: true, port: 0x60 });
    expect(e.guestLinearAddress).toBe(0x90000n);
    const o = exitOf('protected32', 'mov dx, 0x60; outsb dx, byte ptr fs:[esi]', { CPU_BASED_VM_EXEC_CONTROL: Primary.UNCONDITIONAL_IO_EXITING }, (m) => {
      m.state.segBase[Seg.FS] = 0x1000n;
      m.state.gpr[6] = 0x20n;
    });
    expect(o.guestLinearAddress).toBe(0x1020n);
    expect(decodeInstructionInfo(R.IO_INSTRUCTION, o.instructionInfo!)!.value).toMatchObject({ addressSize: 1, segment: Seg.FS });
  });
  it('TSS I/O permission #GP (CPL > IOPL) has priority over the exit', () => {
    const m = machine('long64', 'mov dx, 0x20; in al, dx; hlt', { vmcs: vmcsWith({ CPU_BASED_VM_EXEC_CONTROL: Primary.UNCONDITIONAL_IO_EXITING }), user: true });
    poke(m, L2Layout.IO_BITMAP + 4n, [0x01]);
    m.run(10);
    expect(m.state.rip).toBe(handlerAddress(13) + 1n);
    const ok = machine('long64', 'mov dx, 0x21; in al, dx; hlt', { vmcs: vmcsWith({ CPU_BASED_VM_EXEC_CONTROL: Primary.UNCONDITIONAL_IO_EXITING }), user: true });
    poke(ok, L2Layout.IO_BITMAP + 4n, [0x01]);
    expect(ok.run(10).last.kind).toBe('vmexit');
  });
});

describe('MSR bitmaps', () => {
  const bm = 0xc0000n;
  const fields: Fields = { CPU_BASED_VM_EXEC_CONTROL: Primary.USE_MSR_BITMAPS, MSR_BITMAP: bm };
  it('without MSR bitmaps every RDMSR exits', () => {
    expect(exitOf('long64', 'mov ecx, 0x10; rdmsr', {}).reason).toBe(R.MSR_READ);
  });
  it('low/high ranges and read/write halves; outside the ranges exits', () => {
    noExit('long64', 'mov ecx, 0x174; rdmsr', fields);
    expect(exitOf('long64', 'mov ecx, 0x174; rdmsr', fields, (m) => poke(m, bm + (0x174n >> 3n), [1 << (0x174 & 7)])).reason).toBe(R.MSR_READ);
    noExit('long64', 'mov ecx, 0x174; xor eax, eax; xor edx, edx; wrmsr', fields, (m) => poke(m, bm + (0x174n >> 3n), [1 << (0x174 & 7)]));
    expect(exitOf('long64', 'mov ecx, 0xc0000100; wrmsr', fields, (m) => poke(m, bm + 3072n + 0x20n, [1])).reason).toBe(R.MSR_WRITE);
    expect(exitOf('long64', 'mov ecx, 0x2000; rdmsr', fields).reason).toBe(R.MSR_READ);
    expect(exitOf('long64', 'mov ecx, 0x40000000; rdmsr', fields).reason).toBe(R.MSR_READ);
  });
  it('RDMSR of IA32_TSC applies the TSC offset when it does not exit', () => {
    const m = noExit('long64', 'mov ecx, 0x10; rdmsr', { ...fields, CPU_BASED_VM_EXEC_CONTROL: Primary.USE_MSR_BITMAPS | Primary.USE_TSC_OFFSETTING, TSC_OFFSET: 1000n });
    expect(m.state.gpr[0]! | (m.state.gpr[2]! << 32n)).toBe(1000n + 1n);
  });
});
