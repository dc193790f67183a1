// Test support for the VM-entry checks: CPU models (the presets, and synthetic variants for features no preset
// offers), a byte-addressed physical memory for readPhys, and the runner for table-driven perturbation cases.
// Must not: hide a failure; a case that cannot run on any model throws.
import { expect } from 'vitest';
import { CpuModel, cpuModelIds, DEFAULT_CPU_MODEL, findCpuModel } from '../../../../src/cpu/cpu-model.js';
import type { CpuModelData, VmxMsrName } from '../../../../src/cpu/cpu-model-data.js';
import type { EntryCheckId } from '../../../../src/cpu/generated/entry-checks.js';
import { Vmcs } from '../../../../src/cpu/vmcs.js';
import { runEntryChecks, validVmcs, verdictOf, type EntryCheckReport, type EntryEnvironment } from '../../../../src/cpu/vmentry/index.js';

/** The presets, the default first (cases run on the first preset that offers what they need). */
export function presets(): CpuModel[] {
  const ids = [DEFAULT_CPU_MODEL, ...cpuModelIds().filter((id) => id !== DEFAULT_CPU_MODEL)];
  return ids.map((id) => findCpuModel(id)!).filter((m) => m !== undefined);
}

// ---- synthetic models ----

export type ModelTweak = (d: CpuModelData) => void;

const MSR_OF: Record<string, VmxMsrName[]> = {
  pin: ['IA32_VMX_PINBASED_CTLS', 'IA32_VMX_TRUE_PINBASED_CTLS'],
  primary: ['IA32_VMX_PROCBASED_CTLS', 'IA32_VMX_TRUE_PROCBASED_CTLS'],
  exit: ['IA32_VMX_EXIT_CTLS', 'IA32_VMX_TRUE_EXIT_CTLS'],
  entry: ['IA32_VMX_ENTRY_CTLS', 'IA32_VMX_TRUE_ENTRY_CTLS'],
};
const msrValue = (d: CpuModelData, n: VmxMsrName): bigint => BigInt(d.vmxMsrs[n] ?? '0x0');
const setMsr = (d: CpuModelData, n: VmxMsrName, v: bigint): void => {
  d.vmxMsrs[n] = '0x' + BigInt.asUintN(64, v).toString(16).padStart(16, '0');
};

/** Let a 32-bit control group's bits be 1 (allowed-1 in the high dword of the MSR and its TRUE_ twin). */
export function allow(group: 'pin' | 'primary' | 'exit' | 'entry', bits: number): ModelTweak {
  return (d) => {
    for (const n of MSR_OF[group]!) if (d.vmxMsrs[n] !== undefined) setMsr(d, n, msrValue(d, n) | (BigInt(bits >>> 0) << 32n));
  };
}
/** Let secondary controls be 1 (and "activate secondary controls"). */
export function allowSecondary(bits: number): ModelTweak {
  return (d) => {
    allow('primary', 0x8000_0000)(d);
    setMsr(d, 'IA32_VMX_PROCBASED_CTLS2', msrValue(d, 'IA32_VMX_PROCBASED_CTLS2') | (BigInt(bits >>> 0) << 32n));
  };
}
/** Let tertiary controls be 1 (and "activate tertiary controls"). */
export function allowTertiary(bits: bigint): ModelTweak {
  return (d) => {
    allow('primary', 0x2_0000)(d);
    setMsr(d, 'IA32_VMX_PROCBASED_CTLS3', msrValue(d, 'IA32_VMX_PROCBASED_CTLS3') | bits);
  };
}
export function allowExit2(bits: bigint): ModelTweak {
  return (d) => {
    allow('exit', 0x8000_0000)(d);
    setMsr(d, 'IA32_VMX_EXIT_CTLS2', msrValue(d, 'IA32_VMX_EXIT_CTLS2') | bits);
  };
}
export function msrBits(name: VmxMsrName, set: bigint, clear = 0n): ModelTweak {
  return (d) => setMsr(d, name, (msrValue(d, name) | set) & ~clear);
}
export function cpuid(facts: Partial<CpuModelData['cpuid']>): ModelTweak {
  return (d) => Object.assign(d.cpuid, facts);
}

/** A new (uncached) model: the default preset with the tweaks applied. */
export function syntheticModel(...tweaks: ModelTweak[]): CpuModel {
  const base = findCpuModel(DEFAULT_CPU_MODEL)!;
  const d = JSON.parse(JSON.stringify(base.data)) as CpuModelData;
  d.id = `${d.id}+synthetic`;
  for (const t of tweaks) t(d);
  return new CpuModel(d);
}

// ---- physical memory ----

/** Sparse little-endian byte memory; unwritten bytes read as 0 (RAM of zeros). */
export class PhysMemory {
  private readonly bytes = new Map<bigint, number>();
  write(addr: bigint, value: bigint, size: number): this {
    for (let i = 0; i < size; i++) this.bytes.set(addr + BigInt(i), Number((value >> BigInt(8 * i)) & 0xffn));
    return this;
  }
  read(addr: bigint, size: 4 | 8): bigint {
    let v = 0n;
    for (let i = size - 1; i >= 0; i--) v = (v << 8n) | BigInt(this.bytes.get(addr + BigInt(i)) ?? 0);
    return v;
  }
  /** A VM-entry MSR-load list: 16-byte entries (index, reserved dword, value). */
  msrList(addr: bigint, entries: readonly { index: number; reserved?: number; value?: bigint }[]): this {
    entries.forEach((e, i) => {
      const at = addr + BigInt(16 * i);
      this.write(at, BigInt(e.index >>> 0), 4).write(at + 4n, BigInt((e.reserved ?? 0) >>> 0), 4).write(at + 8n, e.value ?? 0n, 8);
    });
    return this;
  }
}

// ---- cases ----

export const CURRENT_VMPTR = 0x7000n;

export interface EntryCase {
  /** "<kvm-unit-tests function or topic>: <what is wrong>". */
  name: string;
  /** The check that fails first ('first' mode), or 'pass'. */
  expect: EntryCheckId | 'pass';
  /** Run on the first preset for which this holds; without it, on the default preset. */
  needs?: (cpu: CpuModel) => boolean;
  /** When no preset satisfies `needs` (or no preset is wanted), the default preset with these tweaks. */
  synthetic?: ModelTweak[];
  env?: Partial<Omit<EntryEnvironment, 'cpu' | 'readPhys'>>;
  memory?: (m: PhysMemory, cpu: CpuModel) => void;
  set: (v: Vmcs, cpu: CpuModel) => void;
}

export interface CaseRun {
  model: CpuModel;
  synthetic: boolean;
  vmcs: Vmcs;
  env: EntryEnvironment;
  first: EntryCheckReport;
  all: EntryCheckReport;
}

export function modelFor(c: EntryCase): { model: CpuModel; synthetic: boolean } {
  if (c.needs) {
    const m = presets().find((p) => c.needs!(p));
    if (m) return { model: m, synthetic: false };
  } else if (!c.synthetic) return { model: presets()[0]!, synthetic: false };
  if (!c.synthetic) throw new Error(`case "${c.name}": no preset satisfies its needs and it has no synthetic model`);
  const model = syntheticModel(...c.synthetic);
  if (c.needs && !c.needs(model)) throw new Error(`case "${c.name}": the synthetic model does not satisfy its needs`);
  return { model, synthetic: true };
}

export function runCase(c: EntryCase): CaseRun {
  const { model, synthetic } = modelFor(c);
  const vmcs = validVmcs(model);
  c.set(vmcs, model);
  const mem = new PhysMemory();
  c.memory?.(mem, model);
  const env: EntryEnvironment = {
    cpu: model, hostIa32e: true, inSmm: false, currentVmptr: CURRENT_VMPTR, wrmsrFaults: () => false,
    readPhys: (a, s) => mem.read(a, s), ...c.env,
  };
  return { model, synthetic, vmcs, env, first: runEntryChecks(vmcs, env, 'first'), all: runEntryChecks(vmcs, env, 'all') };
}

/** Assert a case: the expected first failure (or pass), 'first' agreeing with 'all', and a consistent verdict. */
export function checkCase(c: EntryCase): CaseRun {
  const r = runCase(c);
  const got = r.first.failures[0]?.id ?? 'pass';
  expect(got, `${c.name} on ${r.model.id}: ${r.first.failures[0]?.detail ?? 'passed'}`).toBe(c.expect);
  expect(r.first.failures.length).toBeLessThanOrEqual(1);
  expect(r.all.failures[0]?.id ?? 'pass').toBe(got);
  if (c.expect !== 'pass') {
    const v = verdictOf(r.first);
    expect(v.kind).not.toBe('pass');
    expect(r.first.failures[0]!.detail.length).toBeGreaterThan(0);
  }
  return r;
}

// ---- VMCS edit helpers ----

export function on(v: Vmcs, enc: number, bits: number): void {
  v.set32(enc, (v.lo(enc) | bits) >>> 0);
}
export function off(v: Vmcs, enc: number, bits: number): void {
  v.set32(enc, (v.lo(enc) & ~bits) >>> 0);
}
export function put(v: Vmcs, enc: number, value: bigint): void {
  v.set(enc, value);
}
/** A bit of a 32-bit control group that the model reports as reserved-to-0, or undefined. */
export function reservedBit(mayBeOne: bigint): number | undefined {
  for (let b = 0; b < 32; b++) if (((mayBeOne >> BigInt(b)) & 1n) === 0n) return 1 << b >>> 0;
  return undefined;
}
