// Event rules in VMX non-root operation: exception bitmap (with #PF mask/match), IDT-vectoring information for
// exits during delivery, #DF and triple fault, NMIs and external interrupts (pin controls, acknowledge on exit),
// interrupt/NMI windows with STI and MOV-SS blocking, MTF and the VMX-preemption timer. SDM Vol. 3C 25.2, 25.5,
// 26.7, 27.2.2–27.2.4.
import { describe, expect, it } from 'vitest';
import { ExitCtl, Pin, Primary } from '../../../../src/cpu/generated/controls.js';
import { ExitReason as R } from '../../../../src/cpu/generated/exit-reasons.js';
import { decodeInterruptionInfo } from '../../../../src/cpu/exit-info/interruption-info.js';
import { Seg } from '../../../../src/cpu/state.js';
import { exceptionExits, readNonRootControls } from '../../../../src/cpu/nonroot/index.js';
import { handlerAddress, L2Layout, type StepResult } from '../../../../src/cpu/interp/index.js';
import { machine, poke, vmcsWith } from '../interp/harness.js';

function vmexit(r: StepResult) {
  if (r.kind !== 'vmexit') throw new Error(`expected vmexit, got ${r.kind}`);
  return r.exit;
}

describe('exception bitmap', () => {
  it('#UD exits when EB[6] is set, is delivered otherwise', () => {
    const x = machine('long64', 'ud2; hlt', { vmcs: vmcsWith({ EXCEPTION_BITMAP: 1 << 6 }) });
    const e = vmexit(x.run(5).last);
    expect(e.reason).toBe(R.EXCEPTION_NMI);
    expect(decodeInterruptionInfo(e.interruptionInfo!, 'exit').value).toMatchObject({ vector: 6, type: 3, errorCodeValid: false, valid: true });
    expect(x.state.rip).toBe(L2Layout.CODE);
    // An opcode iced-x86 does not decode at all raises #UD the same way.
    const y = machine('long64', new Uint8Array([0x0f, 0x04, 0xf4]), { vmcs: vmcsWith({}) });
    expect(y.run(5).last.kind).toBe('halted');
    expect(y.state.rip).toBe(handlerAddress(6) + 1n);
  });
  it('#GP exit carries the error code', () => {
    const m = machine('long64', 'mov ax, 0x1234; mov ds, ax; hlt', { vmcs: vmcsWith({ EXCEPTION_BITMAP: 1 << 13 }) });
    const e = vmexit(m.run(5).last);
    expect(decodeInterruptionInfo(e.interruptionInfo!, 'exit').value).toMatchObject({ vector: 13, type: 3, errorCodeValid: true });
    // Selector 0x1234 has TI = 1 (LDT, unusable here): error code = selector index | TI.
    expect(e.interruptionErrorCode).toBe(0x1234);
  });
  it('INT3 exits as a software exception with its length; INT n never consults the bitmap', () => {
    const m = machine('long64', 'int3; hlt', { vmcs: vmcsWith({ EXCEPTION_BITMAP: 1 << 3 }) });
    const e = vmexit(m.run(5).last);
    expect(decodeInterruptionInfo(e.interruptionInfo!, 'exit').value).toMatchObject({ vector: 3, type: 6 });
    expect(e.instructionLength).toBe(1);
    const n = machine('long64', 'int 3; hlt', { vmcs: vmcsWith({ EXCEPTION_BITMAP: 1 << 3 }) });
    expect(n.run(5).last.kind).toBe('halted');
    expect(n.state.rip).toBe(handlerAddress(3) + 1n);
  });
  it('#PF uses PFEC mask/match: EB[14] XOR ((ec & mask) != match)', () => {
    const c = (eb: number, mask: number, match: number) => readNonRootControls(vmcsWith({ EXCEPTION_BITMAP: eb, PAGE_FAULT_ERROR_CODE_MASK: mask, PAGE_FAULT_ERROR_CODE_MATCH: match }));
    expect(exceptionExits(c(1 << 14, 0, 0), 14, 0x7)).toBe(true);
    expect(exceptionExits(c(1 << 14, 0, 1), 14, 0x7)).toBe(false);
    expect(exceptionExits(c(0, 2, 2), 14, 0x3)).toBe(false);
    expect(exceptionExits(c(0, 2, 2), 14, 0x1)).toBe(true);
  });
  it('a #PF exit reports the address and does not write CR2', () => {
    const m = machine('long64', 'mov rax, 0x80000000; mov rbx, [rax]; hlt', { vmcs: vmcsWith({ EXCEPTION_BITMAP: 1 << 14 }) });
    // Beyond the identity map (1 GiB): not present.
    m.state.gpr[0] = 0n;
    const r = m.run(5).last;
    const e = vmexit(r);
    expect(e.qualification).toBe(0x8000_0000n);
    expect(e.interruptionErrorCode).toBe(0);
    expect(m.state.cr2).toBe(0n);
  });
});

describe('faults during event delivery', () => {
  it('an intercepted #GP while delivering INT n records IDT-vectoring info and the INT length', () => {
    const m = machine('long64', 'int 0x40; hlt', { vmcs: vmcsWith({ EXCEPTION_BITMAP: 1 << 13 }) });
    m.state.idtrLimit = 0x40 * 16 - 1; // vector 0x40 beyond the IDT limit → #GP(0x40·8 + 2)
    const e = vmexit(m.run(5).last);
    expect(decodeInterruptionInfo(e.interruptionInfo!, 'exit').value).toMatchObject({ vector: 13, type: 3, errorCodeValid: true });
    expect(e.interruptionErrorCode).toBe(0x40 * 8 + 2);
    expect(decodeInterruptionInfo(e.idtVectoringInfo!, 'idt-vectoring').value).toMatchObject({ vector: 0x40, type: 4, valid: true, errorCodeValid: false });
    expect(e.instructionLength).toBe(2);
    expect(m.state.rip).toBe(L2Layout.CODE);
  });
  it('contributory during contributory becomes #DF, reported without IDT-vectoring info', () => {
    const m = machine('long64', 'mov ax, 0x1234; mov ds, ax; hlt', { vmcs: vmcsWith({ EXCEPTION_BITMAP: 1 << 8 }) });
    m.state.idtrLimit = 13 * 16 - 1; // #GP's own gate is out of range → #GP during #GP → #DF
    const e = vmexit(m.run(5).last);
    expect(decodeInterruptionInfo(e.interruptionInfo!, 'exit').value).toMatchObject({ vector: 8, type: 3, errorCodeValid: true });
    expect(e.interruptionErrorCode).toBe(0);
    expect(e.idtVectoringInfo).toBeUndefined();
  });
  it('a fault while delivering #DF is a triple fault: exit 2', () => {
    const m = machine('long64', 'mov ax, 0x1234; mov ds, ax; hlt', { vmcs: vmcsWith({}) });
    m.state.idtrLimit = 0; // nothing can be delivered
    const e = vmexit(m.run(5).last);
    expect(e.reason).toBe(R.TRIPLE_FAULT);
    expect(e.idtVectoringInfo).toBeUndefined();
  });
  it('a #PF while delivering an external interrupt is handled serially; vectoring = the interrupt', () => {
    const m = machine('long64', 'nop; hlt', { vmcs: vmcsWith({ EXCEPTION_BITMAP: 1 << 14 }) });
    m.state.rflags |= 0x200n;
    m.state.gpr[4] = 0x8000_0000n; // beyond the identity map: the first push faults
    m.interp.raiseInterrupt(0x44);
    const e = vmexit(m.step());
    expect(decodeInterruptionInfo(e.interruptionInfo!, 'exit').value).toMatchObject({ vector: 14, type: 3, errorCodeValid: true });
    expect(e.interruptionErrorCode).toBe(2); // write, supervisor, not present
    expect(e.qualification).toBe(0x8000_0000n - 8n);
    expect(decodeInterruptionInfo(e.idtVectoringInfo!, 'idt-vectoring').value).toMatchObject({ vector: 0x44, type: 0, valid: true });
  });
  it('a task gate in the IDT exits as a task switch with IDT-vectoring info (32-bit)', () => {
    const m = machine('protected32', 'int 0x30; hlt', { vmcs: vmcsWith({}) });
    // Task gate (type 5, P, DPL 3) for vector 0x30 naming TSS selector 0x38.
    const lo = (0x38 << 16) >>> 0;
    const hi = 0xe500;
    const addr = L2Layout.IDT + 0x30n * 8n;
    poke(m, addr, [lo & 0xff, (lo >> 8) & 0xff, (lo >> 16) & 0xff, lo >>> 24, hi & 0xff, hi >> 8, 0, 0]);
    const e = vmexit(m.run(5).last);
    expect(e.reason).toBe(R.TASK_SWITCH);
    expect(e.qualification).toBe(0x38n | (3n << 30n));
    expect(decodeInterruptionInfo(e.idtVectoringInfo!, 'idt-vectoring').value).toMatchObject({ vector: 0x30, type: 4 });
  });
});

describe('NMIs and external interrupts', () => {
  it('NMI exiting: exit with type 2 vector 2', () => {
    const m = machine('long64', 'nop; hlt', { vmcs: vmcsWith({ PIN_BASED_VM_EXEC_CONTROL: Pin.NMI_EXITING }) });
    m.interp.raiseNmi();
    const e = vmexit(m.step());
    expect(decodeInterruptionInfo(e.interruptionInfo!, 'exit').value).toMatchObject({ vector: 2, type: 2, valid: true });
  });
  it('NMI without exiting is delivered and blocks further NMIs until IRET', () => {
    const m = machine('long64', 'nop; hlt', { vmcs: vmcsWith({}) });
    m.interp.raiseNmi();
    expect(m.step().kind).toBe('delivered');
    expect(m.state.rip).toBe(handlerAddress(2));
    expect(m.state.interruptibility & 8).toBe(8);
  });
  it('external interrupt without ack: exits even with RFLAGS.IF = 0 (SDM 25.4.1), info invalid, interrupt stays pending', () => {
    const m = machine('long64', 'nop; hlt', { vmcs: vmcsWith({ PIN_BASED_VM_EXEC_CONTROL: Pin.EXTERNAL_INTERRUPT_EXITING }) });
    expect(m.state.rflags & 0x200n).toBe(0n);
    m.interp.raiseInterrupt(0x41);
    const e = vmexit(m.step());
    expect(e.reason).toBe(R.EXTERNAL_INTERRUPT);
    expect(e.interruptionInfo).toBe(0);
    expect(m.interp.aux.pendingInterrupts.has(0x41)).toBe(true);
  });
  it('with external-interrupt exiting, blocking by STI still holds the exit back for one instruction', () => {
    const m = machine('long64', 'sti; nop; nop; hlt', { vmcs: vmcsWith({ PIN_BASED_VM_EXEC_CONTROL: Pin.EXTERNAL_INTERRUPT_EXITING }) });
    expect(m.step().kind).toBe('retired'); // STI with IF = 0: blocking by STI for the next instruction
    m.interp.raiseInterrupt(0x41);
    expect(m.step().kind).toBe('retired'); // NOP in the STI shadow
    expect(vmexit(m.step()).reason).toBe(R.EXTERNAL_INTERRUPT);
  });
  it('external interrupt with acknowledge-on-exit reports and consumes the vector', () => {
    const m = machine('long64', 'nop; hlt', { vmcs: vmcsWith({ PIN_BASED_VM_EXEC_CONTROL: Pin.EXTERNAL_INTERRUPT_EXITING, VM_EXIT_CONTROLS: ExitCtl.ACKNOWLEDGE_INTERRUPT_ON_EXIT }) });
    m.state.rflags |= 0x200n;
    m.interp.raiseInterrupt(0x41);
    const e = vmexit(m.step());
    expect(decodeInterruptionInfo(e.interruptionInfo!, 'exit').value).toMatchObject({ vector: 0x41, type: 0, valid: true });
    expect(m.interp.aux.pendingInterrupts.size).toBe(0);
  });
  it('interrupts wake HLT and are delivered through the IDT without exiting', () => {
    const m = machine('long64', 'sti; hlt; nop; hlt', { vmcs: vmcsWith({}) });
    expect(m.run(10).last.kind).toBe('halted');
    m.interp.raiseInterrupt(0x50);
    expect(m.step().kind).toBe('delivered');
    expect(m.state.rip).toBe(handlerAddress(0x50));
    expect(m.state.activity).toBe(0);
  });
});

describe('windows, MTF, preemption timer', () => {
  it('interrupt window opens after the STI shadow', () => {
    const m = machine('long64', 'sti; nop; nop; hlt', { vmcs: vmcsWith({ CPU_BASED_VM_EXEC_CONTROL: Primary.INTERRUPT_WINDOW_EXITING }) });
    expect(m.step().kind).toBe('retired');
    expect(m.step().kind).toBe('retired');
    const e = vmexit(m.step());
    expect(e.reason).toBe(R.INTERRUPT_WINDOW);
    expect(m.state.rip).toBe(L2Layout.CODE + 2n);
  });
  it('MOV SS blocks the interrupt window for one instruction', () => {
    const m = machine('long64', 'mov ax, ss; mov ss, ax; nop; hlt', { vmcs: vmcsWith({ CPU_BASED_VM_EXEC_CONTROL: Primary.INTERRUPT_WINDOW_EXITING }) });
    m.state.rflags |= 0x200n;
    m.state.interruptibility = 2; // pretend we're already in a MOV-SS shadow
    expect(m.step().kind).toBe('retired');
    expect(vmexit(m.step()).reason).toBe(R.INTERRUPT_WINDOW);
  });
  it('NMI window: exits when NMIs are unblocked', () => {
    const m = machine('long64', 'nop; hlt', { vmcs: vmcsWith({ PIN_BASED_VM_EXEC_CONTROL: Pin.NMI_EXITING | Pin.VIRTUAL_NMIS, CPU_BASED_VM_EXEC_CONTROL: Primary.NMI_WINDOW_EXITING }) });
    m.state.interruptibility = 8;
    expect(m.step().kind).toBe('retired');
    m.state.interruptibility = 0;
    expect(vmexit(m.step()).reason).toBe(R.NMI_WINDOW);
  });
  it('MTF exits after each instruction, trap-like', () => {
    const m = machine('long64', 'mov eax, 1; mov ebx, 2; hlt', { vmcs: vmcsWith({ CPU_BASED_VM_EXEC_CONTROL: Primary.MONITOR_TRAP_FLAG }) });
    expect(m.step().kind).toBe('retired');
    expect(vmexit(m.step()).reason).toBe(R.MONITOR_TRAP_FLAG);
    expect(m.state.rip).toBe(L2Layout.CODE + 5n);
  });
  it('preemption timer counts down once per 2^rate TSC ticks and exits at zero', () => {
    const m = machine('long64', 'nop; nop; nop; nop; nop; nop; nop; nop; hlt', {
      vmcs: vmcsWith({ PIN_BASED_VM_EXEC_CONTROL: Pin.ACTIVATE_VMX_PREEMPTION_TIMER }),
      runtime: { preemptionTimerRate: 1 },
      preemptionTimer: 2n,
    });
    m.state.tsc = 0n;
    let n = 0;
    let r = m.step();
    while (r.kind === 'retired') { n++; r = m.step(); }
    expect(vmexit(r).reason).toBe(R.PREEMPTION_TIMER);
    expect(n).toBe(4);
  });
  it('preemption timer value 0 exits before the first instruction', () => {
    const m = machine('long64', 'nop; hlt', { vmcs: vmcsWith({ PIN_BASED_VM_EXEC_CONTROL: Pin.ACTIVATE_VMX_PREEMPTION_TIMER }), preemptionTimer: 0n });
    expect(vmexit(m.step()).reason).toBe(R.PREEMPTION_TIMER);
    expect(m.state.rip).toBe(L2Layout.CODE);
  });
  it('timer keeps counting in HLT', () => {
    const m = machine('long64', 'hlt', { vmcs: vmcsWith({ PIN_BASED_VM_EXEC_CONTROL: Pin.ACTIVATE_VMX_PREEMPTION_TIMER }), preemptionTimer: 3n });
    let r = m.step();
    let halted = 0;
    while (r.kind === 'retired' || r.kind === 'halted') { if (r.kind === 'halted') halted++; r = m.step(); }
    expect(vmexit(r).reason).toBe(R.PREEMPTION_TIMER);
    expect(halted).toBe(2);
    expect(m.state.activity).toBe(1);
    void Seg;
  });
});

describe('PAUSE-loop exiting', () => {
  it('exits once PAUSEs closer than PLE_Gap span more than PLE_Window', () => {
    const prog = Array.from({ length: 12 }, () => 'pause').join('; ');
    const m = machine('long64', `${prog}; hlt`, { vmcs: vmcsWith({ SECONDARY_VM_EXEC_CONTROL: 1 << 10, PLE_GAP: 2, PLE_WINDOW: 5 }) });
    let n = 0;
    let r = m.step();
    while (r.kind === 'retired') { n++; r = m.step(); }
    expect(vmexit(r).reason).toBe(R.PAUSE_INSTRUCTION);
    // TSC advances 1 per PAUSE: the loop starts at the first PAUSE and exceeds the window at the 7th.
    expect(n).toBe(6);
  });
  it('a gap larger than PLE_Gap restarts the loop; CPL 3 ignores PAUSE-loop exiting', () => {
    const m = machine('long64', 'pause; nop; nop; nop; pause; pause; hlt', { vmcs: vmcsWith({ SECONDARY_VM_EXEC_CONTROL: 1 << 10, PLE_GAP: 2, PLE_WINDOW: 3 }) });
    expect(m.run(20).last.kind).toBe('halted');
    const u = machine('long64', `${Array.from({ length: 10 }, () => 'pause').join('; ')}; jmp $`, { vmcs: vmcsWith({ SECONDARY_VM_EXEC_CONTROL: 1 << 10, PLE_GAP: 2, PLE_WINDOW: 1 }), user: true });
    expect(u.run(30).last.kind).toBe('retired');
  });
});
