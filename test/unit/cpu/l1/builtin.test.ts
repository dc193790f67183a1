// The built-in L1: controls fitted to the capability MSRs it reads (or written exactly), the validator, L2 in real and
// 32-bit protected mode (unrestricted guest over EPT), its emulation of instructions for L2, VMCS switching, L2's
// VMREAD/VMWRITE reaching the shadow VMCS, VMFUNC EPTP switching, and TSC offsetting as L2 reads it.
import { describe, expect, it } from 'vitest';
import { asm16, asm32, asm64 } from '../../../../src/asm/index.js';
import { EntryCtl, ExitCtl, Pin, Primary, Secondary } from '../../../../src/cpu/generated/controls.js';
import { Field } from '../../../../src/cpu/generated/vmcs-fields.js';
import { handlerAddress, L2Layout } from '../../../../src/cpu/interp/l2-env.js';
import { emulatedCpuid, emulatedMsrValue, emulatedPortValue } from '../../../../src/cpu/l1/emulate.js';
import { validateL1Config, type L1Config } from '../../../../src/cpu/l1/config.js';
import type { Observation } from '../../../../src/cpu/l1/observation.js';
import { KVM_L1, runConfig } from '../machine/helpers.js';

const STOP_AT_HLT = { reason: 12, actions: [{ kind: 'stop' as const }] };

function written(log: readonly Observation[], field: number): bigint | undefined {
  const o = log.find((x) => x.kind === 'vmx-instruction' && x.instruction === 'vmwrite' && x.operands[0] === BigInt(field));
  return o && o.kind === 'vmx-instruction' ? o.operands[1] : undefined;
}

function l2State(log: readonly Observation[], n = 0): ReadonlyMap<string, bigint> {
  return log.filter((o): o is Extract<Observation, { kind: 'l2-state' }> => o.kind === 'l2-state')[n]!.detail;
}

describe('controls (SDM App. A.3-A.5; kvm-unit-tests style fitting)', () => {
  it('validateL1Config names must-be-one bits left clear and bits the model does not allow', () => {
    const problems = validateL1Config({ l2: { mode: 'long64', code: new Uint8Array() }, controls: { pin: 1 << 7 | 1, primary: 1 << 17, exit: 0, entry: 0 } }, KVM_L1);
    expect(problems).toContainEqual({ group: 'pin', kind: 'must-be-one', bits: 0x16 });
    expect(problems).toContainEqual({ group: 'primary', kind: 'not-allowed', bits: 1 << 17 });
    expect(problems.some((p) => p.group === 'secondary')).toBe(false); // not activated: not checked
  });

  it('adjust mode: must-be-one bits set, unsupported ones dropped, and what the config needs added', () => {
    const run = runConfig({
      l2: { mode: 'long64', code: asm64`hlt` }, controls: { primary: Primary.HLT_EXITING | (1 << 17), secondary: 1 << 30 },
      ept: {}, vpid: 7, preemptionTimer: 100, tscOffset: 5n, policy: { rules: [STOP_AT_HLT] },
    });
    const pin = Number(written(run.log, Field.PIN_BASED_VM_EXEC_CONTROL));
    const primary = Number(written(run.log, Field.CPU_BASED_VM_EXEC_CONTROL));
    const secondary = Number(written(run.log, Field.SECONDARY_VM_EXEC_CONTROL));
    expect(KVM_L1.controlsValid('pin', BigInt(pin))).toBe(true);
    expect(pin & Pin.ACTIVATE_VMX_PREEMPTION_TIMER).not.toBe(0);
    expect(primary & (1 << 17)).toBe(0);
    expect(primary & (Primary.HLT_EXITING | Primary.ACTIVATE_SECONDARY_CONTROLS | Primary.USE_TSC_OFFSETTING)).toBe(
      Primary.HLT_EXITING | Primary.ACTIVATE_SECONDARY_CONTROLS | Primary.USE_TSC_OFFSETTING,
    );
    expect(secondary).toBe(Secondary.ENABLE_EPT | Secondary.ENABLE_VPID);
    expect(Number(written(run.log, Field.VM_EXIT_CONTROLS)) & ExitCtl.HOST_ADDRESS_SPACE_SIZE).not.toBe(0);
    expect(Number(written(run.log, Field.VM_ENTRY_CONTROLS)) & EntryCtl.IA32E_MODE_GUEST).not.toBe(0);
    expect(written(run.log, Field.VIRTUAL_PROCESSOR_ID)).toBe(7n);
    expect(run.exits.map((e) => e.exit.exitReason)).toEqual([12]);
  });
});

describe('L2 modes (buildL2Environment under unrestricted guest)', () => {
  it('real mode: exits at CS-relative RIPs with 16-bit instruction lengths', () => {
    const run = runConfig({ l2: { mode: 'real', code: asm16`cpuid; in al, 0x61; hlt` }, controls: { primary: Primary.HLT_EXITING | Primary.UNCONDITIONAL_IO_EXITING }, policy: { rules: [STOP_AT_HLT] } });
    expect(run.exits.map((e) => [e.exit.exitReason, e.rip, e.exit.instructionLength])).toEqual([[10, 0n, 2], [30, 2n, 2], [12, 4n, 1]]);
    expect(run.exits[0]!.guest.get(Field.GUEST_CS_BASE)).toBe(L2Layout.CODE);
    expect(Number(written(run.log, Field.SECONDARY_VM_EXEC_CONTROL)) & Secondary.UNRESTRICTED_GUEST).not.toBe(0);
    expect(Number(written(run.log, Field.VM_ENTRY_CONTROLS)) & EntryCtl.IA32E_MODE_GUEST).toBe(0);
  });

  it('32-bit protected mode without paging', () => {
    const run = runConfig({ l2: { mode: 'protected32', code: asm32`mov eax, 0x12345678; cpuid; hlt` }, controls: { primary: Primary.HLT_EXITING }, policy: { rules: [STOP_AT_HLT] } });
    expect(run.exits.map((e) => [e.exit.exitReason, e.rip - L2Layout.CODE])).toEqual([[10, 5n], [12, 7n]]);
    expect(l2State(run.log, 0).get('rax')).toBe(0x12345678n);
  });
});

describe('emulation for L2 (deterministic results, then RIP past the instruction)', () => {
  it('CPUID, RDMSR after WRMSR, RDMSR of an unwritten MSR, IN', () => {
    const run = runConfig({
      l2: { mode: 'long64', code: asm64`mov eax, 7; xor ecx, ecx; cpuid; mov r12, rax; mov r13, rbx; mov ecx, 0x174; mov eax, 0x11; mov edx, 0x22; wrmsr; xor eax, eax; xor edx, edx; rdmsr; mov r14, rax; mov r15, rdx; mov ecx, 0x175; rdmsr; mov rbp, rax; mov rax, 0xffffffffffffffff; in ax, 0x70; hlt` },
      controls: { primary: Primary.HLT_EXITING | Primary.UNCONDITIONAL_IO_EXITING }, policy: { rules: [STOP_AT_HLT] },
    });
    expect(run.exits.map((e) => e.exit.exitReason)).toEqual([10, 32, 31, 31, 30, 12]);
    const s = l2State(run.log, 5);
    const cpuid = emulatedCpuid(7, 0);
    expect(s.get('r12')).toBe(BigInt(cpuid[0]));
    expect(s.get('r13')).toBe(BigInt(cpuid[1]));
    expect(s.get('r14')).toBe(0x11n);
    expect(s.get('r15')).toBe(0x22n);
    expect(s.get('rbp')).toBe(emulatedMsrValue(0x175) & 0xffff_ffffn);
    expect(s.get('rax')).toBe(0xffff_ffff_ffff_0000n | BigInt(emulatedPortValue(0x70, 2)));
  });

  it('skip clears blocking by STI: a skipped instruction right after STI ends the shadow', () => {
    const run = runConfig({
      l2: { mode: 'long64', code: asm64`sti; cpuid; hlt` }, controls: { primary: Primary.HLT_EXITING }, policy: { rules: [STOP_AT_HLT] },
    });
    expect(run.exits[0]!.guest.get(Field.GUEST_INTERRUPTIBILITY_INFO)).toBe(1n);
    expect(written(run.log.filter((o) => o.step > run.exits[0]!.step), Field.GUEST_INTERRUPTIBILITY_INFO)).toBe(0n);
  });
});

describe('VMCS handling', () => {
  it('switch-vmcs: VMCLEAR the current VMCS, VMPTRLD the other, VMLAUNCH it (L2 starts over), and back', () => {
    const run = runConfig({
      l2: { mode: 'long64', code: asm64`cpuid; cpuid; hlt` }, controls: { primary: Primary.HLT_EXITING },
      policy: { rules: [{ reason: 10, actions: [{ kind: 'emulate' }, { kind: 'switch-vmcs' }] }, STOP_AT_HLT] },
      maxExits: 6,
    });
    const entries = run.log.filter((o) => o.kind === 'vmx-instruction' && (o.instruction === 'vmlaunch' || o.instruction === 'vmresume'))
      .map((o) => (o.kind === 'vmx-instruction' ? o.instruction : ''));
    expect(entries).toEqual(['vmlaunch', 'vmlaunch', 'vmlaunch', 'vmlaunch', 'vmlaunch']);
    // VMCS A: CPUID at +0 (skipped), switched away; VMCS B starts at +0 too; back to A (cleared, so launched again)
    // at +2; B at +2; A reaches its HLT at +4.
    expect(run.exits.map((e) => [e.exit.exitReason, e.rip - L2Layout.CODE])).toEqual([[10, 0n], [10, 0n], [10, 2n], [10, 2n], [12, 4n]]);
    expect(run.log.filter((o) => o.kind === 'vmx-instruction' && o.instruction === 'vmptrld').map((o) => (o.kind === 'vmx-instruction' ? o.operands[0] : 0n)))
      .toEqual([0x0100_2000n, 0x0100_1000n, 0x0100_2000n, 0x0100_1000n, 0x0100_2000n, 0x0100_1000n]);
  });

  it('VMCS shadowing: L2\'s VMWRITE/VMREAD of a shadowed field reach the shadow VMCS without exiting', () => {
    const run = runConfig({
      l2: { mode: 'long64', code: asm64`mov ecx, ${Field.GUEST_RIP}; mov rax, 0x4321; vmwrite rcx, rax; vmread rdx, rcx; mov ecx, ${Field.GUEST_RSP}; vmread rsi, rcx; hlt` },
      controls: { primary: Primary.HLT_EXITING, secondary: Secondary.VMCS_SHADOWING },
      shadowFields: [Field.GUEST_RIP],
      policy: { rules: [STOP_AT_HLT] },
    });
    // GUEST_RSP is not shadowed: that VMREAD exits (and is emulated as VMfailInvalid).
    expect(run.exits.map((e) => e.exit.exitReason)).toEqual([23, 12]);
    expect(l2State(run.log, 1).get('rdx')).toBe(0x4321n);
    expect(l2State(run.log, 1).get('rflags')! & 1n).toBe(1n);
  });

  it('VMFUNC EPTP switching: a valid list entry switches without exiting; an invalid one exits with reason 59', () => {
    const run = runConfig({
      l2: { mode: 'long64', code: asm64`xor eax, eax; xor ecx, ecx; vmfunc; mov ecx, 1; vmfunc; hlt` },
      controls: { primary: Primary.HLT_EXITING, secondary: Secondary.ENABLE_VM_FUNCTIONS }, ept: {}, vmfuncControls: 1n,
      policy: { rules: [{ reason: 59, actions: [{ kind: 'skip' }] }, STOP_AT_HLT] },
    });
    expect(run.exits.map((e) => [e.exit.exitReason, e.rip - L2Layout.CODE])).toEqual([[59, 12n], [12, 15n]]);
  });

  it('TSC offsetting: L2\'s RDTSC reads the TSC plus the offset', () => {
    const run = runConfig({ l2: { mode: 'long64', code: asm64`rdtsc; hlt` }, tscOffset: 0x1_0000_0000n, controls: { primary: Primary.HLT_EXITING }, policy: { rules: [STOP_AT_HLT] } });
    const s = l2State(run.log, 0);
    expect(s.get('rdx')).toBe(1n);
    expect(s.get('rax')! < 0x1000n).toBe(true);
  });

  it('an injected #PF from L1 reaches L2\'s handler; reinject of the IDT-vectoring event on an EPT fix', () => {
    const config: L1Config = {
      l2: { mode: 'long64', code: asm64`hlt` }, controls: { primary: Primary.HLT_EXITING }, injection: { vector: 14, type: 3, errorCode: 2 },
      policy: { rules: [STOP_AT_HLT] },
    };
    const run = runConfig(config);
    expect(run.exits[0]!.rip).toBe(handlerAddress(14));
    expect(run.log.find((o) => o.kind === 'l2-state')).toMatchObject({ deliveredEvents: ['e/3/2'] });
  });
});
