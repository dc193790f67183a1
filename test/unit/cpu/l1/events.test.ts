// Events L1 sees: exception exits selected by the exception bitmap and the #PF error-code mask/match, exceptions
// delivered to L2 instead, exits during event delivery (IDT-vectoring information), external interrupts and NMIs
// from the machine's schedule (with and without acknowledge-on-exit), interrupt and NMI windows, the preemption
// timer, MTF and VM-entry injection. Expectations from SDM 25.2, 25.3, 26.6, 27.2.2–27.2.4.
import { describe, expect, it } from 'vitest';
import { asm64 } from '../../../../src/asm/index.js';
import { ExitCtl, Pin, Primary } from '../../../../src/cpu/generated/controls.js';
import { Field } from '../../../../src/cpu/generated/vmcs-fields.js';
import { handlerAddress, L2Layout } from '../../../../src/cpu/interp/l2-env.js';
import { L1Layout, type L1Config } from '../../../../src/cpu/l1/config.js';
import type { Observation } from '../../../../src/cpu/l1/observation.js';
import { runConfig, type RunOptions } from '../machine/helpers.js';

const STOP_AT_HLT = { reason: 12, actions: [{ kind: 'stop' as const }] };
/** A load from 2 GiB: L2's identity map covers 1 GiB, so this is a not-present #PF with error code 0. */
const PF_READ = asm64`mov rbx, 0x80000000; mov rax, [rbx]; hlt`;
/** Where the faulting load is. */
const PF_RIP = L2Layout.CODE + BigInt(asm64`mov rbx, 0x80000000`.length);

function run(config: Partial<L1Config> & { code: Uint8Array }, opts: RunOptions = {}) {
  const { code, ...rest } = config;
  return runConfig({ l2: { mode: 'long64', code }, ept: {}, policy: { rules: [STOP_AT_HLT] }, ...rest, controls: { primary: Primary.HLT_EXITING, ...rest.controls } }, opts);
}

function l2States(log: readonly Observation[]): Extract<Observation, { kind: 'l2-state' }>[] {
  return log.filter((o): o is Extract<Observation, { kind: 'l2-state' }> => o.kind === 'l2-state');
}

describe('exception exits and the #PF error-code filter (SDM 25.2)', () => {
  it('EB[14] = 1 and (EC & MASK) = MATCH: exit 0 with #PF info, its error code and the faulting address', () => {
    const r = run({ code: PF_READ, exceptionBitmap: 1 << 14, pfecMask: 0, pfecMatch: 0, policy: { rules: [{ reason: 0, actions: [{ kind: 'stop' }] }] } });
    expect(r.exits).toHaveLength(1);
    const x = r.exits[0]!.exit;
    expect(x.exitReason).toBe(0);
    expect(x.interruptionInfo).toBe(0x8000_0b0e); // valid, error code, hardware exception, vector 14
    expect(x.interruptionErrorCode).toBe(0);
    expect(x.qualification).toBe(0x8000_0000n);
    expect(x.idtVectoringInfo >>> 31).toBe(0);
    expect(r.exits[0]!.rip).toBe(PF_RIP);
  });

  it('EB[14] = 1 but (EC & MASK) ≠ MATCH: no exit, the #PF is delivered through L2\'s IDT', () => {
    const r = run({ code: PF_READ, exceptionBitmap: 1 << 14, pfecMask: 1, pfecMatch: 1 });
    expect(r.exits.map((e) => e.exit.exitReason)).toEqual([12]);
    expect(r.exits[0]!.rip).toBe(handlerAddress(14));
    expect(l2States(r.log)[0]!.deliveredEvents).toEqual(['e/3/0']);
    expect(l2States(r.log)[0]!.detail.get('cr2')).toBe(0x8000_0000n);
  });

  it('EB[14] = 0 and (EC & MASK) ≠ MATCH: the filter inverts, the #PF exits', () => {
    const r = run({ code: PF_READ, exceptionBitmap: 0, pfecMask: 1, pfecMatch: 1, policy: { rules: [{ reason: 0, actions: [{ kind: 'stop' }] }] } });
    expect(r.exits.map((e) => [e.exit.exitReason, e.exit.interruptionInfo])).toEqual([[0, 0x8000_0b0e]]);
  });

  it('INT3 with EB[3]: a software exception (type 6) reporting its instruction length; re-injected, L2 takes it', () => {
    const r = run({ code: asm64`int3; hlt`, exceptionBitmap: 1 << 3 });
    expect(r.exits.map((e) => e.exit.exitReason)).toEqual([0, 12]);
    const x = r.exits[0]!.exit;
    expect(x.interruptionInfo).toBe(0x8000_0603);
    expect(x.instructionLength).toBe(1);
    // The default handling re-injects it with the same length: L2's #BP handler runs and halts.
    expect(r.exits[1]!.rip).toBe(handlerAddress(3));
    expect(l2States(r.log)[1]!.deliveredEvents).toEqual(['3/6']);
  });

  it('an EPT violation while delivering an exception reports it as IDT-vectoring information, and L1 re-injects it', () => {
    // The IDT page is not mapped at first: delivering #UD reads the gate through EPT12 and faults.
    const r = run({
      code: asm64`ud2; hlt`,
      ept: { mappings: [{ l2: L2Layout.IDT, l1: L1Layout.L2_BASE + L2Layout.IDT, read: false, write: false, execute: false }] },
    });
    expect(r.exits.map((e) => e.exit.exitReason)).toEqual([48, 12]);
    const x = r.exits[0]!.exit;
    expect(x.idtVectoringInfo).toBe(0x8000_0306);
    expect(x.guestPhysicalAddress).toBe(L2Layout.IDT + 6n * 16n);
    expect(x.qualification & 0x3fn).toBe(1n); // a read, nothing permitted
    expect(r.exits[1]!.rip).toBe(handlerAddress(6));
  });
});

describe('external interrupts and NMIs from the schedule (SDM 25.2, 27.2.2)', () => {
  const LOOP = asm64`sti; l: nop; jmp l`;

  it('external-interrupt exiting with acknowledge-on-exit: exit 1 with the vector; L1 injects it and L2 takes it', () => {
    const r = run({
      code: LOOP, controls: { pin: Pin.EXTERNAL_INTERRUPT_EXITING, exit: ExitCtl.ACKNOWLEDGE_INTERRUPT_ON_EXIT },
    }, { schedule: [{ at: 3, kind: 'interrupt', vector: 0x41 }] });
    expect(r.exits.map((e) => e.exit.exitReason)).toEqual([1, 12]);
    expect(r.exits[0]!.exit.interruptionInfo).toBe(0x8000_0041);
    expect(r.exits[1]!.rip).toBe(handlerAddress(0x41));
    expect(l2States(r.log)[1]!.deliveredEvents).toEqual(['41/0']);
  });

  it('without acknowledge-on-exit the interruption information is invalid and the interrupt stays pending', () => {
    const r = run({ code: LOOP, controls: { pin: Pin.EXTERNAL_INTERRUPT_EXITING } }, { schedule: [{ at: 2, kind: 'timer' }] });
    expect(r.exits.map((e) => e.exit.exitReason)).toEqual([1, 12]);
    expect(r.exits[0]!.exit.interruptionInfo >>> 31).toBe(0);
    // L1 turns external-interrupt exiting off: the still-pending timer interrupt (vector 0x20) reaches L2's IDT.
    expect(r.exits[1]!.rip).toBe(handlerAddress(0x20));
  });

  it('an interrupt arriving while RFLAGS.IF = 0 exits at once; L1 holds it until an interrupt window', () => {
    const r = run({
      code: asm64`cli; nop; nop; sti; nop; l: jmp l`, controls: { pin: Pin.EXTERNAL_INTERRUPT_EXITING, exit: ExitCtl.ACKNOWLEDGE_INTERRUPT_ON_EXIT },
    }, { schedule: [{ at: 1, kind: 'interrupt', vector: 0x50 }] });
    // With external-interrupt exiting RFLAGS.IF does not block the interrupt (SDM Vol. 3C Table 25-5): exit 1 right
    // after CLI. L2 cannot take the acknowledged vector yet, so L1 opens an interrupt window: exit 7 once STI's shadow
    // ends (after the NOP behind STI), then L1's injection reaches the handler.
    expect(r.exits.map((e) => e.exit.exitReason)).toEqual([1, 7, 12]);
    expect(r.exits[0]!.rip).toBe(L2Layout.CODE + 1n);
    expect(r.exits[1]!.rip).toBe(L2Layout.CODE + 5n);
    expect(r.exits[2]!.rip).toBe(handlerAddress(0x50));
  });

  it('interrupt-window exiting: exit 7 at the first boundary with IF = 1 and no STI blocking', () => {
    const r = run({ code: asm64`cli; nop; sti; nop; hlt`, controls: { primary: Primary.INTERRUPT_WINDOW_EXITING | Primary.HLT_EXITING } });
    expect(r.exits.map((e) => [e.exit.exitReason, e.rip - L2Layout.CODE])).toEqual([[7, 4n], [12, 4n]]);
  });

  it('NMI exiting: an NMI from the schedule exits with type 2 vector 2', () => {
    const r = run({ code: asm64`l: nop; jmp l`, controls: { pin: Pin.NMI_EXITING } }, { schedule: [{ at: 4, kind: 'nmi' }] });
    expect(r.exits[0]!.exit.exitReason).toBe(0);
    expect(r.exits[0]!.exit.interruptionInfo).toBe(0x8000_0202);
  });

  it('NMI-window exiting (with virtual NMIs): exit 8 before the first instruction when NMIs are not blocked', () => {
    const r = run({ code: asm64`nop; hlt`, controls: { pin: Pin.NMI_EXITING | Pin.VIRTUAL_NMIS, primary: Primary.NMI_WINDOW_EXITING | Primary.HLT_EXITING } });
    expect(r.exits.map((e) => [e.exit.exitReason, e.rip - L2Layout.CODE])).toEqual([[8, 0n], [12, 1n]]);
  });
});

describe('timer, MTF and injection', () => {
  it('VMX-preemption timer 0: exit 52 before any instruction; the saved value is 0', () => {
    const r = run({ code: asm64`nop; hlt`, preemptionTimer: 0, controls: { exit: ExitCtl.SAVE_VMX_PREEMPTION_TIMER_VALUE } });
    expect(r.exits.map((e) => [e.exit.exitReason, e.rip - L2Layout.CODE])).toEqual([[52, 0n], [12, 1n]]);
    expect(r.exits[0]!.guest.get(Field.VMX_PREEMPTION_TIMER_VALUE)).toBe(0n);
  });

  it('a running preemption timer expires after 2^rate TSC ticks per count (rate 5 on kvm-l1)', () => {
    const r = run({ code: asm64`l: nop; jmp l`, preemptionTimer: 2, policy: { rules: [{ reason: 52, actions: [{ kind: 'stop' }] }] } });
    expect(r.exits.map((e) => e.exit.exitReason)).toEqual([52]);
    expect(r.result.l2Steps).toBeGreaterThanOrEqual(32);
    expect(r.result.l2Steps).toBeLessThanOrEqual(96);
  });

  it('monitor trap flag: exit 37 after each instruction, RIP at the next one', () => {
    const r = run({ code: asm64`nop; inc eax; hlt`, controls: { primary: Primary.MONITOR_TRAP_FLAG | Primary.HLT_EXITING }, policy: { rules: [STOP_AT_HLT, { reason: 37, actions: [] }] } });
    expect(r.exits.map((e) => [e.exit.exitReason, e.rip - L2Layout.CODE])).toEqual([[37, 1n], [37, 3n], [12, 3n]]);
  });

  it('VM-entry injection: an external interrupt goes through L2\'s IDT before its first instruction', () => {
    const ok = run({ code: asm64`hlt`, injection: { vector: 0x33, type: 0 } });
    // RFLAGS.IF = 0: injecting an external interrupt fails the guest-state checks (exit 33 with bit 31).
    expect(ok.exits[0]!.exit.exitReason).toBe(0x8000_0021);
    expect(ok.exits[0]!.failedCheck).toBe('guest.rflags.if');
    const on = runConfig({
      l2: { mode: 'long64', code: asm64`hlt`, rflags: 0x200n }, ept: {}, controls: { primary: Primary.HLT_EXITING },
      injection: { vector: 0x33, type: 0 }, policy: { rules: [STOP_AT_HLT] },
    });
    expect(on.exits[0]!.rip).toBe(handlerAddress(0x33));
    expect(l2States(on.log)[0]!.deliveredEvents).toEqual(['33/0']);
  });
});
