// Test harness: an L2 machine (environment, memory, interpreter, platform) in one call, optionally in VMX
// non-root operation under a Vmcs whose bitmaps live in the same memory. Used by interp/nonroot tests and
// the properties. Must not: assert anything itself.
import { L2_GPA, type L2Gpa } from '../../../../src/cpu/address.js';
import { PhysicalMemory, type MemorySnapshot } from '../../../../src/cpu/memory.js';
import { Cr4, CpuState } from '../../../../src/cpu/state.js';
import { Vmcs } from '../../../../src/cpu/vmcs.js';
import { Field } from '../../../../src/cpu/generated/vmcs-fields.js';
import { assembleOrThrow } from '../../../../src/asm/assemble.js';
import {
  DeterministicPlatform, DirectGuestMemory, Interpreter, L2Layout, buildL2Environment, makeNonRootRuntime,
  type L2Mode, type NonRootRuntime, type PlatformConfig, type StepResult,
} from '../../../../src/cpu/interp/index.js';
import type { NonRootEnv } from '../../../../src/cpu/nonroot/controls.js';

export interface Machine {
  readonly state: CpuState;
  readonly memory: PhysicalMemory<L2Gpa>;
  readonly interp: Interpreter;
  readonly platform: DeterministicPlatform;
  readonly env: NonRootEnv;
  step(): StepResult;
  /** Run until something other than retire/deliver, or `max` steps. */
  run(max?: number): { steps: number; last: StepResult };
}

export interface MachineOptions {
  readonly user?: boolean;
  readonly platform?: PlatformConfig;
  /** Run in VMX non-root operation under this VMCS. */
  readonly vmcs?: Vmcs;
  readonly runtime?: Partial<Omit<NonRootRuntime, 'controls' | 'env'>>;
  readonly preemptionTimer?: bigint;
  readonly insOutsInfo?: boolean;
}

export function bitnessOf(mode: L2Mode): 16 | 32 | 64 {
  return mode === 'real' ? 16 : mode === 'protected32' ? 32 : 64;
}

export function codeIp(mode: L2Mode): bigint {
  return mode === 'real' ? 0n : L2Layout.CODE;
}

/** Built environments by mode/privilege: building page tables for every test would dominate run time. */
const templates = new Map<string, { snapshot: MemorySnapshot; state: CpuState }>();

function environment(mode: L2Mode, user: boolean): { memory: PhysicalMemory<L2Gpa>; state: CpuState } {
  const key = `${mode}:${user}`;
  let t = templates.get(key);
  if (!t) {
    const memory = new PhysicalMemory<L2Gpa>({ space: 'L2Gpa' });
    const state = new CpuState();
    buildL2Environment(state, { mode, memory, space: L2_GPA, code: new Uint8Array(0), ...(user ? { user: true } : {}) });
    t = { snapshot: memory.snapshot(), state };
    templates.set(key, t);
  }
  const memory = new PhysicalMemory<L2Gpa>({ space: 'L2Gpa' });
  memory.restore(t.snapshot);
  return { memory, state: t.state.clone() };
}

export function machine(mode: L2Mode, code: string | Uint8Array, opts: MachineOptions = {}): Machine {
  const { memory, state } = environment(mode, opts.user === true);
  const bytes = typeof code === 'string' ? assembleOrThrow(code, bitnessOf(mode), codeIp(mode)) : code;
  const w = memory.write(L2_GPA.of(L2Layout.CODE), bytes);
  if (!w.ok) throw new Error(w.error.message);
  const mem = new DirectGuestMemory(state, memory, L2_GPA, { maxPhysAddr: 46 });
  const platform = new DeterministicPlatform(opts.platform ?? {});
  const env: NonRootEnv = {
    readPhysByte: (a) => memory.readU8(L2_GPA.of(a)),
    insOutsInfo: opts.insOutsInfo ?? true,
  };
  let nonRoot: NonRootRuntime | null = null;
  if (opts.vmcs) {
    // A valid VMX non-root guest has CR4.VMXE = 1 (IA32_VMX_CR4_FIXED0).
    state.cr4 |= Cr4.VMXE;
    nonRoot = makeNonRootRuntime(opts.vmcs, env, {
      preemptionTimerRate: 0,
      writePhysByte: (a, v) => memory.writeU8(L2_GPA.of(a), v & 0xff).ok,
      ...(opts.runtime ?? {}),
    });
  }
  const interp = new Interpreter({ mem, platform, nonRoot });
  if (nonRoot && opts.preemptionTimer !== undefined) interp.enterNonRoot(nonRoot, opts.preemptionTimer);
  return {
    state, memory, interp, platform, env,
    step: () => interp.step(state),
    run: (max = 10_000) => interp.run(state, max),
  };
}

/** A Vmcs with the given controls (secondary activated automatically when given). */
export function vmcsWith(fields: Partial<Record<keyof typeof Field, bigint | number>>): Vmcs {
  const v = new Vmcs();
  for (const [name, value] of Object.entries(fields)) v.set(Field[name as keyof typeof Field], BigInt(value as bigint | number));
  if (fields.SECONDARY_VM_EXEC_CONTROL !== undefined) {
    v.set(Field.CPU_BASED_VM_EXEC_CONTROL, v.get(Field.CPU_BASED_VM_EXEC_CONTROL) | 0x8000_0000n);
  }
  return v;
}

/** Write bytes into the machine's memory (physical = linear in the environment). */
export function poke(m: Machine, addr: bigint, bytes: number[] | Uint8Array): void {
  const r = m.memory.write(L2_GPA.of(addr), bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes));
  if (!r.ok) throw new Error(r.error.message);
}

export function peek64(m: Machine, addr: bigint): bigint {
  return m.memory.readU64(L2_GPA.of(addr));
}
