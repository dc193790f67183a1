// Event delivery through the IDT outside and inside VMX non-root operation: protected-mode gates with a TSS
// stack switch and error codes, 64-bit IST stacks, #DF delivery, NMI blocking and IRET (with the VMX "NMI
// exiting"/"virtual NMIs" variants), VM-entry injection, exits (EPT-style) during delivery, task switches from
// far JMP, and VMFUNC. SDM Vol. 3A 6.12–6.15, Vol. 3C 25.3, 26.6, 27.2.4.
import { describe, expect, it } from 'vitest';
import { Pin, Primary, Secondary } from '../../../../src/cpu/generated/controls.js';
import { ExitReason as R } from '../../../../src/cpu/generated/exit-reasons.js';
import { decodeInterruptionInfo } from '../../../../src/cpu/exit-info/interruption-info.js';
import { Seg } from '../../../../src/cpu/state.js';
import { IntrType } from '../../../../src/cpu/nonroot/index.js';
import {
  DeterministicPlatform, Interpreter, L2Layout, L2Selectors, handlerAddress, makeNonRootRuntime, type GuestMemoryAccess,
} from '../../../../src/cpu/interp/index.js';
import { machine, peek64, poke, vmcsWith } from './harness.js';

describe('protected-mode delivery', () => {
  it('CPL 3 → 0 through a 32-bit gate: TSS stack, frame with SS:ESP and error code', () => {
    const m = machine('protected32', 'mov ax, 0x1234; mov ds, ax; jmp $', { user: true });
    m.run(5);
    expect(m.state.rip).toBe(handlerAddress(13) + 1n); // the handler's HLT ran
    expect(m.state.cpl).toBe(0);
    expect(m.state.segSel[Seg.SS]).toBe(L2Selectors.DATA);
    const sp = m.state.gpr[4]! & 0xffff_ffffn;
    expect(sp).toBe(L2Layout.RING0_STACK_TOP - 24n);
    const dword = (a: bigint) => m.memory.readU32(a as never);
    expect(dword(sp)).toBe(0x1234); // error code: selector index | TI
    expect(dword(sp + 4n)).toBe(Number(L2Layout.CODE) + 4); // EIP of the faulting MOV DS
    expect(dword(sp + 8n)).toBe(L2Selectors.USER_CODE32);
    expect(dword(sp + 20n)).toBe(L2Selectors.USER_DATA); // old SS
  });
  it('interrupt gates clear IF; trap gates do not', () => {
    const m = machine('protected32', 'sti; int 0x40');
    m.run(5);
    expect(m.state.rflags & 0x200n).toBe(0n);
    const t = machine('protected32', 'sti; int 0x40');
    poke(t, L2Layout.IDT + 0x40n * 8n + 5n, [0xef]); // trap gate
    t.run(5);
    expect(t.state.rflags & 0x200n).toBe(0x200n);
  });
  it('INT n with gate DPL < CPL is #GP(vector·8 + 2)', () => {
    const m = machine('protected32', 'int 0x41; jmp $', { user: true });
    poke(m, L2Layout.IDT + 0x41n * 8n + 5n, [0x8e]); // DPL 0
    m.run(5);
    expect(m.state.rip).toBe(handlerAddress(13) + 1n);
    expect(m.memory.readU32((m.state.gpr[4]! & 0xffff_ffffn) as never)).toBe(0x41 * 8 + 2);
  });
  it('64-bit IST selects the IST stack even without a privilege change', () => {
    const m = machine('long64', 'int 0x42');
    poke(m, L2Layout.IDT + 0x42n * 16n + 4n, [1]); // IST1
    m.run(5);
    expect(m.state.gpr[4]).toBe(L2Layout.RING0_STACK_TOP - 0x1000n - 40n);
  });
  it('#DF is delivered with error code 0 when a contributory fault hits #GP delivery', () => {
    const m = machine('long64', 'mov ax, 0x1234; mov ds, ax');
    poke(m, L2Layout.IDT + 13n * 16n + 5n, [0x6e]); // #GP gate not present → #NP, contributory → #DF
    m.run(5);
    expect(m.state.rip).toBe(handlerAddress(8) + 1n);
    expect(peek64(m, m.state.gpr[4]!)).toBe(0n);
  });
});

describe('NMIs and IRET', () => {
  it('IRET unblocks NMIs outside VMX', () => {
    const m = machine('long64', 'nop; hlt');
    poke(m, handlerAddress(2), [0x48, 0xcf]);
    m.interp.raiseNmi();
    m.step();
    expect(m.state.interruptibility & 8).toBe(8);
    m.step();
    expect(m.state.interruptibility & 8).toBe(0);
  });
  it('in VMX non-root with NMI exiting and no virtual NMIs, IRET leaves NMI blocking alone', () => {
    const m = machine('long64', 'push 0; push 0; hlt', { vmcs: vmcsWith({ PIN_BASED_VM_EXEC_CONTROL: Pin.NMI_EXITING }) });
    m.state.interruptibility = 8;
    // Build an IRETQ frame and execute IRETQ directly.
    poke(m, L2Layout.CODE, [0x48, 0xcf]);
    const sp = m.state.gpr[4]! - 40n;
    for (const [i, v] of [[0, L2Layout.CODE + 2n], [1, BigInt(L2Selectors.CODE64)], [2, 2n], [3, m.state.gpr[4]!], [4, BigInt(L2Selectors.DATA)]] as const) {
      m.memory.writeU64((sp + BigInt(i) * 8n) as never, v);
    }
    m.state.gpr[4] = sp;
    m.step();
    expect(m.state.interruptibility & 8).toBe(8);
    const v = machine('long64', 'hlt', { vmcs: vmcsWith({ PIN_BASED_VM_EXEC_CONTROL: Pin.NMI_EXITING | Pin.VIRTUAL_NMIS }) });
    v.state.interruptibility = 8;
    poke(v, L2Layout.CODE, [0x48, 0xcf]);
    for (const [i, val] of [[0, L2Layout.CODE + 2n], [1, BigInt(L2Selectors.CODE64)], [2, 2n], [3, v.state.gpr[4]!], [4, BigInt(L2Selectors.DATA)]] as const) {
      v.memory.writeU64((sp + BigInt(i) * 8n) as never, val);
    }
    v.state.gpr[4] = sp;
    v.step();
    expect(v.state.interruptibility & 8).toBe(0);
  });
});

describe('VM-entry injection', () => {
  it('injected #GP is delivered even if the exception bitmap intercepts #GP', () => {
    const m = machine('long64', 'hlt', { vmcs: vmcsWith({ EXCEPTION_BITMAP: 1 << 13 }) });
    const r = m.interp.inject(m.state, { vector: 13, type: IntrType.HARDWARE_EXCEPTION, errorCode: 0x18 });
    expect(r.kind).toBe('delivered');
    expect(m.state.rip).toBe(handlerAddress(13));
    expect(peek64(m, m.state.gpr[4]!)).toBe(0x18n);
  });
  it('injected software interrupt pushes RIP + instruction length', () => {
    const m = machine('long64', 'hlt', { vmcs: vmcsWith({}) });
    m.interp.inject(m.state, { vector: 0x80, type: IntrType.SOFTWARE_INTERRUPT, instructionLength: 2 });
    expect(peek64(m, m.state.gpr[4]!)).toBe(L2Layout.CODE + 2n);
  });
  it('MTF with an injected event: exit pending after injection; type 7 makes MTF pending', () => {
    const m = machine('long64', 'hlt', { vmcs: vmcsWith({ CPU_BASED_VM_EXEC_CONTROL: Primary.MONITOR_TRAP_FLAG }) });
    m.interp.inject(m.state, { vector: 0x30, type: IntrType.EXTERNAL_INTERRUPT });
    const r = m.step();
    expect(r.kind === 'vmexit' && r.exit.reason).toBe(R.MONITOR_TRAP_FLAG);
    expect(m.state.rip).toBe(handlerAddress(0x30));
    const n = machine('long64', 'nop; hlt', { vmcs: vmcsWith({}) });
    n.interp.inject(n.state, { vector: 0, type: IntrType.OTHER_EVENT });
    const s = n.step();
    expect(s.kind === 'vmexit' && s.exit.reason).toBe(R.MONITOR_TRAP_FLAG);
  });
});

describe('exits during delivery and task switches', () => {
  it('an EPT-style exit while pushing the frame carries IDT-vectoring information', () => {
    const m = machine('long64', 'int 0x33; hlt', { vmcs: vmcsWith({}) });
    // Wrap the memory: any write to the stack page exits as an EPT violation would.
    const inner = (m.interp as unknown as { mem: GuestMemoryAccess }).mem;
    const stackPage = (L2Layout.STACK_TOP - 8n) & ~0xfffn;
    const mem: GuestMemoryAccess = {
      read: (l, s, k) => inner.read(l, s, k),
      fetch: (l, n, k) => inner.fetch(l, n, k),
      write: (l, s, v, k) => ((l & ~0xfffn) === stackPage
        ? { ok: false, fault: { kind: 'exit', exit: { reason: R.EPT_VIOLATION, qualification: 0x18an, guestPhysicalAddress: l, guestLinearAddress: l } } }
        : inner.write(l, s, v, k)),
    };
    const interp = new Interpreter({ mem, platform: new DeterministicPlatform(), nonRoot: m.interp.nonRoot });
    const r = interp.step(m.state);
    expect(r.kind).toBe('vmexit');
    if (r.kind !== 'vmexit') return;
    expect(r.exit.reason).toBe(R.EPT_VIOLATION);
    expect(decodeInterruptionInfo(r.exit.idtVectoringInfo!, 'idt-vectoring').value).toMatchObject({ vector: 0x33, type: 4, valid: true });
    expect(r.exit.instructionLength).toBe(2);
    expect(m.state.rip).toBe(L2Layout.CODE);
  });
  it('far JMP to a TSS exits as a task switch (source JMP)', () => {
    const m = machine('protected32', `jmp ${L2Selectors.TSS}:0`, { vmcs: vmcsWith({}) });
    // Make the TSS available (type 9) so the JMP is a task switch.
    poke(m, L2Layout.GDT + BigInt(L2Selectors.TSS) + 5n, [0x89]);
    const r = m.step();
    expect(r.kind === 'vmexit' && r.exit.reason).toBe(R.TASK_SWITCH);
    if (r.kind === 'vmexit') expect(r.exit.qualification).toBe(BigInt(L2Selectors.TSS) | (2n << 30n));
  });
  it('IRET with NT set exits as a task switch (source IRET) naming the back link', () => {
    const m = machine('protected32', 'iretd', { vmcs: vmcsWith({}) });
    m.state.rflags |= 0x4000n;
    poke(m, L2Layout.TSS, [0x50, 0]);
    const r = m.step();
    expect(r.kind === 'vmexit' && r.exit.qualification).toBe(0x50n | (1n << 30n));
  });
});

describe('VMFUNC', () => {
  it('#UD unless enabled; exits on a disabled function or a bad EPTP index; switches otherwise', () => {
    const ud = machine('long64', 'xor eax, eax; vmfunc; hlt', { vmcs: vmcsWith({}) });
    ud.run(5);
    expect(ud.state.rip).toBe(handlerAddress(6) + 1n);
    const list = 0xa0000n;
    const fields = { SECONDARY_VM_EXEC_CONTROL: Secondary.ENABLE_VM_FUNCTIONS, VM_FUNCTION_CONTROL: 1n, EPTP_LIST_ADDRESS: list };
    const bad = machine('long64', 'xor eax, eax; mov ecx, 600; vmfunc; hlt', { vmcs: vmcsWith(fields) });
    const r = bad.run(5).last;
    expect(r.kind === 'vmexit' && r.exit.reason).toBe(R.VMFUNC);
    const off = machine('long64', 'mov eax, 1; vmfunc; hlt', { vmcs: vmcsWith(fields) });
    expect(off.run(5).last.kind).toBe('vmexit');
    const switched: [number, bigint][] = [];
    const ok = machine('long64', 'xor eax, eax; mov ecx, 3; vmfunc; hlt', { vmcs: vmcsWith(fields), runtime: { switchEptp: (i, e) => { switched.push([i, e]); } } });
    ok.memory.writeU64((list + 24n) as never, 0x5000n | 0x1en);
    expect(ok.run(10).last.kind).toBe('halted');
    expect(switched).toEqual([[3, 0x501en]]);
  });
  it('VMFUNC outside VMX non-root operation is #UD', () => {
    const m = machine('long64', 'vmfunc; hlt');
    m.run(5);
    expect(m.state.rip).toBe(handlerAddress(6) + 1n);
    void makeNonRootRuntime;
  });
});

describe('compatibility mode', () => {
  it('32-bit code under IA-32e: 32-bit addressing, events through the 64-bit IDT into 64-bit mode', () => {
    const m = machine('long64', new Uint8Array([0xb8, 0xff, 0xff, 0xff, 0xff, 0x40, 0xcd, 0x30])); // mov eax,-1; inc eax; int 0x30
    m.state.segSel[Seg.CS] = L2Selectors.CODE32;
    m.state.segAr[Seg.CS] = 0xc09b;
    expect(m.state.compatibilityMode).toBe(true);
    expect(m.step().kind).toBe('retired');
    expect(m.step().kind).toBe('retired'); // 40h is INC EAX here, not a REX prefix
    expect(m.state.gpr[0]).toBe(0n);
    const r = m.step();
    expect(r.kind).toBe('delivered');
    expect(m.state.longMode64).toBe(true);
    expect(m.state.rip).toBe(handlerAddress(0x30));
    expect(peek64(m, m.state.gpr[4]! + 8n)).toBe(BigInt(L2Selectors.CODE32)); // saved CS
  });
});

describe('debug exceptions in VMX non-root operation', () => {
  it('MOV DR with DR7.GD: #DB exit reports BD and leaves DR6 alone', () => {
    const m = machine('long64', 'mov rax, dr0; hlt', { vmcs: vmcsWith({ EXCEPTION_BITMAP: 1 << 1 }) });
    m.state.dr[7] = 0x2400n;
    const dr6 = m.state.dr[6];
    const r = m.step();
    expect(r.kind === 'vmexit' && r.exit.qualification).toBe(1n << 13n);
    expect(m.state.dr[6]).toBe(dr6);
  });
  it('single-step #DB exit reports BS', () => {
    const m = machine('long64', 'nop; nop; hlt', { vmcs: vmcsWith({ EXCEPTION_BITMAP: 1 << 1 }) });
    m.state.rflags |= 0x100n;
    m.step();
    const r = m.step();
    expect(r.kind === 'vmexit' && r.exit.qualification).toBe(1n << 14n);
    expect(m.state.rip).toBe(L2Layout.CODE + 1n);
  });
});
