// The reference machine as an L1Machine: VMX-instruction outcomes L1 sees (VMsucceed / VMfailInvalid / VMfailValid
// with the SDM's error numbers, faults), VM-entry failures and VMfailValid(7/8) naming their checks, VMX abort, the
// observation stream (order, steps, which operations emit what), the run ending on an L2 budget, and determinism.
// Expectations from SDM 30.2–30.4, 26.1, 26.7–26.8, 27.7 and the machine's documented observation rules.
import { describe, expect, it } from 'vitest';
import { asm64 } from '../../../../src/asm/index.js';
import { L1_GPA } from '../../../../src/cpu/address.js';
import { ExitCtl, Pin, Primary } from '../../../../src/cpu/generated/controls.js';
import { Field } from '../../../../src/cpu/generated/vmcs-fields.js';
import { builtinL1 } from '../../../../src/cpu/l1/builtin.js';
import { L1Layout } from '../../../../src/cpu/l1/config.js';
import type { L1Machine } from '../../../../src/cpu/l1/machine.js';
import { L1_DEFAULTS, ReferenceMachine } from '../../../../src/cpu/machine/index.js';
import { findCpuModel } from '../../../../src/cpu/cpu-model.js';
import { KVM_L1, runConfig, runProgram, show } from './helpers.js';

const CORE2 = findCpuModel('intel-core2-x6800')!;

const VMXON = L1_GPA.of(0x1000n);
const VMCS_A = L1_GPA.of(0x2000n);
const VMCS_B = L1_GPA.of(0x3000n);

/** Revision identifiers into the VMXON region and two VMCS regions, then VMXON. */
function vmxOn(m: L1Machine): void {
  const rev = m.rdmsr(0x480) & 0x7fff_ffffn;
  for (const r of [VMXON, VMCS_A, VMCS_B]) m.writeMemory(r, 4, rev);
  expect(m.vmxon(VMXON).kind).toBe('vmsucceed');
}

describe('VMX instruction outcomes L1 sees (SDM 30.2-30.4)', () => {
  it('every VMfail path with its error number, and the faults', () => {
    const seen: unknown[] = [];
    const { result } = runProgram((m) => {
      seen.push(m.vmclear(VMCS_A)); // #UD outside VMX operation
      vmxOn(m);
      seen.push(m.vmxon(VMXON)); // VMfailInvalid: no current VMCS for error 15
      seen.push(m.vmlaunch()); // VMfailInvalid: no current VMCS
      seen.push(m.vmptrst()); // FFFFFFFF_FFFFFFFF
      seen.push(m.vmclear(L1_GPA.of(0x2004n))); // unaligned → VMfail(2) = VMfailInvalid here
      seen.push(m.vmptrld(VMCS_A));
      seen.push(m.vmxon(VMXON)); // 15
      seen.push(m.vmclear(L1_GPA.of(0x2004n))); // 2
      seen.push(m.vmclear(VMXON)); // 3
      seen.push(m.vmresume()); // 5: not launched
      seen.push(m.vmptrld(L1_GPA.of(0x4000n))); // 11: zero revision
      seen.push(m.vmptrld(VMXON)); // 10
      seen.push(m.vmptrld(L1_GPA.of(0x2008n))); // 9
      seen.push(m.vmread(0x1234_5678n)); // 12
      seen.push(m.vmwrite(0x4402n, 1n)); // exit reason: read-only, but kvm-l1 has MISC[29] (VMWRITE to any field)
      seen.push(m.vmread(0x4402n));
      seen.push(m.invept(3n, 0n)); // 28: type 3 unsupported
      seen.push(m.invvpid(1n, 0, 0n)); // 28: VPID 0
      seen.push(m.vmptrst());
      seen.push(m.vmxoff());
    });
    expect(result.status).toBe('completed');
    expect(seen).toEqual([
      { kind: 'fault', vector: 6 },
      { kind: 'vmfail-invalid' },
      { kind: 'vmfail-invalid' },
      { kind: 'vmsucceed', value: 0xffff_ffff_ffff_ffffn },
      { kind: 'vmfail-invalid' },
      { kind: 'vmsucceed' },
      { kind: 'vmfail-valid', error: 15 },
      { kind: 'vmfail-valid', error: 2 },
      { kind: 'vmfail-valid', error: 3 },
      { kind: 'vmfail-valid', error: 5 },
      { kind: 'vmfail-valid', error: 11 },
      { kind: 'vmfail-valid', error: 10 },
      { kind: 'vmfail-valid', error: 9 },
      { kind: 'vmfail-valid', error: 12 },
      { kind: 'vmsucceed' },
      { kind: 'vmsucceed', value: 1n },
      { kind: 'vmfail-valid', error: 28 },
      { kind: 'vmfail-valid', error: 28 },
      { kind: 'vmsucceed', value: 0x2000n },
      { kind: 'vmsucceed' },
    ]);
  });

  it('VMWRITE to a read-only field fails with error 13 on a CPU without IA32_VMX_MISC[29]', () => {
    const { result } = runProgram((m) => {
      vmxOn(m);
      m.vmclear(VMCS_A);
      m.vmptrld(VMCS_A);
      expect(m.rdmsr(0x485) & (1n << 29n)).toBe(0n);
      expect(m.vmwrite(0x4402n, 1n)).toEqual({ kind: 'vmfail-valid', error: 13 });
    }, { cpu: CORE2 });
    expect(result.status).toBe('completed');
  });

  it('L1 reads the capability MSRs of the model the machine runs (SDM App. A)', () => {
    runProgram((m) => {
      expect(m.rdmsr(0x480)).toBe(KVM_L1.msr('IA32_VMX_BASIC'));
      expect(m.rdmsr(0x48b)).toBe(KVM_L1.msr('IA32_VMX_PROCBASED_CTLS2'));
      expect(m.rdmsr(0x48e)).toBe(KVM_L1.msr('IA32_VMX_TRUE_PROCBASED_CTLS'));
      expect(m.rdmsr(0x3a) & 5n).toBe(5n);
    });
  });
});

describe('VM entry failing (SDM 26.1-26.3, 26.7)', () => {
  it('an invalid control: VMfailValid(7) on VMLAUNCH, naming the check; the error field reads 7', () => {
    const run = runConfig({ l2: { mode: 'long64', code: asm64`hlt` }, controlsMode: 'exact', controls: { pin: 0, primary: 0, exit: 0, entry: 0 } });
    const launch = run.log.find((o) => o.kind === 'vmx-instruction' && o.instruction === 'vmlaunch');
    expect(launch).toMatchObject({ outcome: 'vmfail-valid', error: 7, failedCheck: 'ctrl.pin.allowed-settings' });
    const errorRead = run.log.find((o) => o.kind === 'vmx-instruction' && o.instruction === 'vmread' && o.operands[0] === BigInt(Field.VM_INSTRUCTION_ERROR));
    expect(errorRead).toMatchObject({ outcome: 'vmsucceed', value: 7n });
    expect(run.exits).toEqual([]);
  });

  it('an invalid host field: VMfailValid(8)', () => {
    const run = runConfig({ l2: { mode: 'long64', code: asm64`hlt` }, vmcsWrites: [[Field.HOST_CR0, 0n]] });
    const launch = run.log.find((o) => o.kind === 'vmx-instruction' && o.instruction === 'vmlaunch');
    expect(launch).toMatchObject({ outcome: 'vmfail-valid', error: 8 });
    expect((launch as { failedCheck?: string }).failedCheck).toMatch(/^host\./);
  });

  it('invalid guest state: exit 33 with bit 31 and the check; L1 resumes at HOST_RIP; the launch state stays clear', () => {
    const run = runConfig({
      l2: { mode: 'long64', code: asm64`hlt` }, vmcsWrites: [[Field.GUEST_RFLAGS, 0n]],
      policy: { rules: [{ reason: 33, from: 1, count: 1, actions: [{ kind: 'vmwrite', encoding: Field.GUEST_RFLAGS, value: 2n }] }, { reason: 12, actions: [{ kind: 'stop' }] }] },
      controls: { primary: Primary.HLT_EXITING },
    });
    expect(run.exits.map((e) => [e.exit.exitReason, e.failedCheck])).toEqual([[0x8000_0021, 'guest.rflags.reserved'], [12, undefined]]);
    expect(run.exits[0]!.exit.qualification).toBe(0n);
    const l1 = run.log.find((o) => o.kind === 'l1-state');
    expect(l1 && l1.kind === 'l1-state' ? l1.detail.get('rip') : undefined).toBe(L1_DEFAULTS.RIP);
    // After the failure L1 must VMLAUNCH again (VMRESUME would fail with error 5): the second entry is a VMLAUNCH.
    const entries = run.log.filter((o) => o.kind === 'vmx-instruction' && (o.instruction === 'vmlaunch' || o.instruction === 'vmresume'));
    expect(entries.map((o) => (o.kind === 'vmx-instruction' ? [o.instruction, o.outcome] : []))).toEqual([['vmlaunch', 'vm-exit'], ['vmlaunch', 'vm-exit']]);
  });

  it('a bad VMCS link pointer: exit 33 with qualification 4', () => {
    const run = runConfig({ l2: { mode: 'long64', code: asm64`hlt` }, vmcsWrites: [[Field.VMCS_LINK_POINTER, 0x5000n]] });
    expect(run.exits.map((e) => [e.exit.exitReason, e.exit.qualification])).toEqual([[0x8000_0021, 4n]]);
  });

  it('a failing VM-exit MSR-load entry is a VMX abort: shutdown with indicator 4, written at offset 4 of the VMCS', () => {
    const entry = new Uint8Array(16);
    new DataView(entry.buffer).setUint32(0, 0xc000_0100, true); // IA32_FS_BASE may not be in the list (SDM 26.4)
    const run = runConfig({
      l2: { mode: 'long64', code: asm64`hlt` }, controls: { primary: Primary.HLT_EXITING },
      l1Data: [{ gpa: 0x0101_0000n, bytes: entry }],
      vmcsWrites: [[Field.VM_EXIT_MSR_LOAD_ADDR, 0x0101_0000n], [Field.VM_EXIT_MSR_LOAD_COUNT, 1n]],
    });
    expect(run.result.status).toBe('shutdown');
    const shutdown = run.log.find((o) => o.kind === 'shutdown');
    expect(shutdown).toMatchObject({ why: 'vmx-abort', abortIndicator: 4 });
    expect(run.machine.memory.readU32(L1_GPA.of(L1Layout.VMCS + 4n))).toBe(4);
    expect(() => run.machine.vmxoff()).toThrow(/turtles bug/);
  });
});

describe('observations (the machine\'s documented rules)', () => {
  it('steps count L1 operations; each emits O1 / O4 / O2 / O3 / O5 in order when they apply', () => {
    const { log } = runConfig({ l2: { mode: 'long64', code: asm64`cpuid; hlt` }, controls: { primary: Primary.HLT_EXITING }, policy: { rules: [{ reason: 12, actions: [{ kind: 'stop' }] }] } });
    const launchStep = log.find((o) => o.kind === 'vmx-instruction' && o.instruction === 'vmlaunch')!.step;
    expect(log.filter((o) => o.step === launchStep).map((o) => o.kind)).toEqual(['vmx-instruction', 'l2-state', 'exit-to-l1', 'l1-state', 'l1-memory']);
    // Steps never decrease; memory writes and VMCLEAR/VMXOFF emit O5; VMREAD/VMWRITE/VMPTRLD do not.
    for (let i = 1; i < log.length; i++) expect(log[i]!.step).toBeGreaterThanOrEqual(log[i - 1]!.step);
    const byStep = new Map<number, string[]>();
    for (const o of log) byStep.set(o.step, [...(byStep.get(o.step) ?? []), o.kind === 'vmx-instruction' ? o.instruction : o.kind]);
    for (const kinds of byStep.values()) {
      if (kinds[0] === 'vmread' || kinds[0] === 'vmwrite' || kinds[0] === 'vmptrld' || kinds[0] === 'vmxon') expect(kinds).toHaveLength(1);
      if (kinds[0] === 'vmclear' || kinds[0] === 'vmxoff') expect(kinds).toEqual([kinds[0], 'l1-memory']);
    }
  });

  it('VMCS regions are masked in the memory digest: only their first 8 bytes count', () => {
    const digests: bigint[] = [];
    const { log } = runProgram((m) => {
      vmxOn(m);
      m.vmclear(VMCS_A); // the region is a VMCS from now on
      m.writeMemory(L1_GPA.of(VMCS_A + 0x100n), 8, 0x55n); // inside the region: masked
      m.writeMemory(L1_GPA.of(VMCS_A + 4n), 4, 0x1n); // the abort dword: observable
    });
    for (const o of log) if (o.kind === 'l1-memory') digests.push(o.digest);
    expect(digests).toHaveLength(6);
    expect(digests[4]).toBe(digests[3]);
    expect(digests[5]).not.toBe(digests[4]);
  });

  it('the same program and inputs give the same stream', () => {
    const config = {
      l2: { mode: 'long64' as const, code: asm64`sti; l: rdtsc; cpuid; in al, 0x60; jmp l` }, ept: {}, maxExits: 30,
      controls: { primary: Primary.RDTSC_EXITING | Primary.HLT_EXITING | Primary.UNCONDITIONAL_IO_EXITING, pin: Pin.EXTERNAL_INTERRUPT_EXITING, exit: ExitCtl.ACKNOWLEDGE_INTERRUPT_ON_EXIT },
    };
    const a = runConfig(config, { schedule: [{ at: 7, kind: 'interrupt', vector: 0x30 }] });
    const b = runConfig(config, { schedule: [{ at: 7, kind: 'interrupt', vector: 0x30 }] });
    expect(show(b.log)).toBe(show(a.log));
    expect(a.exits).toHaveLength(30);
    expect(new Set(a.exits.map((e) => e.exit.exitReason))).toEqual(new Set([1, 10, 12, 16, 30]));
  });
});

describe('L2 that does not exit', () => {
  it('ends the run at the step budget: vmlaunch returns l2-stopped, later operations are a program bug', () => {
    let launch: unknown;
    const m = new ReferenceMachine({ cpu: KVM_L1, l2StepBudget: 50 });
    const r = m.run((l1) => {
      builtinL1({ l2: { mode: 'long64', code: asm64`l: jmp l` }, maxExits: 1 })({
        ...bind(l1),
        vmlaunch: () => {
          launch = l1.vmlaunch();
          return launch as ReturnType<L1Machine['vmlaunch']>;
        },
      });
    });
    expect(launch).toEqual({ kind: 'l2-stopped', why: 'budget-exhausted', l2Steps: 50 });
    expect(r.status).toBe('budget-exhausted');
    expect(() => m.vmxoff()).toThrow(/turtles bug/);
  });

  it('a VM exit before the budget is a normal run whatever the exit controls (host address-space size forced on)', () => {
    const run = runConfig({ l2: { mode: 'long64', code: asm64`cpuid; hlt` }, controls: { exit: ExitCtl.LOAD_IA32_EFER | ExitCtl.LOAD_IA32_PAT } });
    expect(run.exits[0]!.exit.exitReason).toBe(10);
  });
});

/** Every L1Machine method of `m`, bound (so one can be overridden). */
function bind(m: L1Machine): L1Machine {
  return {
    vmxon: (a) => m.vmxon(a), vmxoff: () => m.vmxoff(), vmclear: (a) => m.vmclear(a), vmptrld: (a) => m.vmptrld(a),
    vmptrst: () => m.vmptrst(), vmread: (e) => m.vmread(e), vmwrite: (e, v) => m.vmwrite(e, v), vmlaunch: () => m.vmlaunch(),
    vmresume: () => m.vmresume(), invept: (t, e) => m.invept(t, e), invvpid: (t, v, l) => m.invvpid(t, v, l),
    readMemory: (a, s) => m.readMemory(a, s), writeMemory: (a, s, v) => m.writeMemory(a, s, v), writeBytes: (a, b) => m.writeBytes(a, b),
    rdmsr: (i) => m.rdmsr(i), wrmsr: (i, v) => m.wrmsr(i, v), setGpr: (i, v) => m.setGpr(i, v), l1State: () => m.l1State(),
  };
}
