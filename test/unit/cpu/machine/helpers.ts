// Test support for the reference machine and the built-in L1: run a config and collect its observations, pick the
// exits to L1 out of the stream, CPU models, and a hex-friendly JSON for failure messages.
// Must not: assert anything itself.
import { CpuModel, findCpuModel } from '../../../../src/cpu/cpu-model.js';
import { Field } from '../../../../src/cpu/generated/vmcs-fields.js';
import { builtinL1 } from '../../../../src/cpu/l1/builtin.js';
import type { L1Config } from '../../../../src/cpu/l1/config.js';
import type { L1Program } from '../../../../src/cpu/l1/machine.js';
import type { ExitInformation, Observation } from '../../../../src/cpu/l1/observation.js';
import { ObservationLog } from '../../../../src/cpu/l1/observe.js';
import { ReferenceMachine, type MachineRunResult, type ScheduledEvent } from '../../../../src/cpu/machine/index.js';

export const KVM_L1 = findCpuModel('kvm-l1')!;
export const SKYLAKE = findCpuModel('intel-core-i7-6700k')!;

/**
 * Skylake with CR4.SMXE allowed in VMX operation (IA32_VMX_CR4_FIXED1[14] = 1). Neither preset allows it, and
 * GETSEC only exits with CR4.SMXE = 1 (it is #UD otherwise, SDM 25.1.2), so the GETSEC exit needs this model.
 */
export const SKYLAKE_SMX = new CpuModel({
  ...SKYLAKE.data,
  id: 'test-skylake-smx',
  vmxMsrs: { ...SKYLAKE.data.vmxMsrs, IA32_VMX_CR4_FIXED1: '0x00000000003767ff' },
});

export interface SeenExit {
  readonly step: number;
  readonly exit: ExitInformation;
  readonly guest: ReadonlyMap<number, bigint>;
  readonly rip: bigint;
  readonly failedCheck?: string;
}

export interface Run {
  readonly machine: ReferenceMachine;
  readonly result: MachineRunResult;
  readonly log: Observation[];
  readonly exits: SeenExit[];
}

export interface RunOptions {
  readonly cpu?: CpuModel;
  readonly schedule?: readonly ScheduledEvent[];
  readonly budget?: number;
}

export function runProgram(program: L1Program, opts: RunOptions = {}): Run {
  const log = new ObservationLog();
  const machine = new ReferenceMachine({
    cpu: opts.cpu ?? KVM_L1, sink: log, ...(opts.schedule ? { schedule: opts.schedule } : {}),
    ...(opts.budget !== undefined ? { l2StepBudget: opts.budget } : {}),
  });
  const result = machine.run(program);
  return { machine, result, log: log.items, exits: exitsOf(log.items) };
}

export function runConfig(config: L1Config, opts: RunOptions = {}): Run {
  return runProgram(builtinL1(config), opts);
}

export function exitsOf(log: readonly Observation[]): SeenExit[] {
  const out: SeenExit[] = [];
  for (const o of log) {
    if (o.kind !== 'exit-to-l1') continue;
    out.push({
      step: o.step, exit: o.exit, guest: o.guestState, rip: o.guestState.get(Field.GUEST_RIP) ?? -1n,
      ...(o.failedCheck !== undefined ? { failedCheck: o.failedCheck } : {}),
    });
  }
  return out;
}

/** JSON with bigints and numbers in hex and Maps as objects (failure messages). */
export function show(v: unknown): string {
  return JSON.stringify(v, (_k, x: unknown) => {
    if (typeof x === 'bigint') return `0x${x.toString(16)}`;
    if (x instanceof Map) return Object.fromEntries([...x.entries()].map(([k, y]) => [typeof k === 'number' ? `0x${k.toString(16)}` : String(k), y]));
    return x;
  });
}
