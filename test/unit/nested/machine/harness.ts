// Test support for the nested machine: run one L1 program on the reference machine and on the nested machine with the
// same inputs, and report the first observation that differs (step, kind, both values in hex) — the oracle of
// DESIGN.md §3 applied directly. Must not: be imported by src/; it asserts nothing itself.
import { findCpuModel, type CpuModel } from '../../../../src/cpu/cpu-model.js';
import { builtinL1 } from '../../../../src/cpu/l1/builtin.js';
import type { L1Config } from '../../../../src/cpu/l1/config.js';
import type { L1Program } from '../../../../src/cpu/l1/machine.js';
import type { Observation } from '../../../../src/cpu/l1/observation.js';
import { ObservationLog } from '../../../../src/cpu/l1/observe.js';
import { ReferenceMachine, type MachineRunResult, type ScheduledEvent } from '../../../../src/cpu/machine/index.js';
import type { PlatformConfig } from '../../../../src/cpu/interp/platform.js';
import { NestedMachine } from '../../../../src/nested/machine/nested-machine.js';
import { NestedRecordLog } from '../../../../src/nested/l0/records.js';
import type { L0Parts } from '../../../../src/nested/l0/parts.js';
import { sdmProfile, type L0Profile } from '../../../../src/nested/profile.js';

export const KVM_L1 = findCpuModel('kvm-l1')!;
export const HOST = findCpuModel('intel-core-i7-6700k')!;

export interface PairOptions {
  readonly cpu?: CpuModel;
  readonly profile?: L0Profile;
  readonly parts?: L0Parts;
  readonly schedule?: readonly ScheduledEvent[];
  readonly budget?: number;
  readonly platform?: PlatformConfig;
  readonly shadowVmcs?: boolean;
}

export interface Pair {
  readonly reference: { readonly machine: ReferenceMachine; readonly result: MachineRunResult; readonly log: readonly Observation[] };
  readonly nested: { readonly machine: NestedMachine; readonly result: MachineRunResult; readonly log: readonly Observation[]; readonly records: NestedRecordLog };
}

export function runPair(program: L1Program, o: PairOptions = {}): Pair {
  const cpu = o.cpu ?? KVM_L1;
  const common = {
    cpu, ...(o.schedule ? { schedule: o.schedule } : {}), ...(o.budget !== undefined ? { l2StepBudget: o.budget } : {}),
    ...(o.platform ? { platform: o.platform } : {}),
  };
  const rlog = new ObservationLog();
  const rm = new ReferenceMachine({ ...common, sink: rlog });
  const rres = rm.run(program);
  const nlog = new ObservationLog();
  const records = new NestedRecordLog();
  const nm = new NestedMachine({
    ...common, sink: nlog, records, profile: o.profile ?? sdmProfile(), ...(o.parts ? { parts: o.parts } : {}),
    ...(o.shadowVmcs !== undefined ? { shadowVmcs: o.shadowVmcs } : {}),
  });
  const nres = nm.run(program);
  return { reference: { machine: rm, result: rres, log: rlog.items }, nested: { machine: nm, result: nres, log: nlog.items, records } };
}

export function runConfigPair(config: L1Config, o: PairOptions = {}): Pair {
  return runPair(builtinL1(config), o);
}

/** JSON with bigints in hex, Maps as objects and object keys sorted (so field order does not matter). */
export function hexJson(v: unknown): string {
  return JSON.stringify(v, (_k, x: unknown) => {
    if (typeof x === 'bigint') return `0x${x.toString(16)}`;
    if (x instanceof Map) return Object.fromEntries([...x.entries()].map(([k, y]) => [typeof k === 'number' ? `0x${k.toString(16)}` : String(k), y]));
    if (x && typeof x === 'object' && !Array.isArray(x)) return Object.fromEntries(Object.entries(x).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
    return x;
  });
}

/** The first differing observation, described for a failure message; undefined when the streams are equal. */
export function firstDifference(a: readonly Observation[], b: readonly Observation[]): string | undefined {
  const n = Math.max(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a[i];
    const y = b[i];
    const sx = hexJson(x);
    const sy = hexJson(y);
    if (sx === sy) continue;
    if (x && y && x.kind === y.kind && x.kind !== 'vmx-instruction' && x.kind !== 'shutdown') {
      const dx = detailMap(x);
      const dy = detailMap(y);
      const keys = [...new Set([...dx.keys(), ...dy.keys()])].filter((k) => dx.get(k) !== dy.get(k));
      return `observation ${i} (${x.kind}, step ${x.step}) differs in ${keys.slice(0, 12).map((k) => `${k}: reference ${dx.get(k)} nested ${dy.get(k)}`).join('; ')}`;
    }
    return `observation ${i} differs:\n  reference ${sx}\n  nested    ${sy}`;
  }
  return undefined;
}

function detailMap(o: Observation): Map<string, string> {
  const m = new Map<string, string>();
  const flat = (prefix: string, v: unknown): void => {
    if (v instanceof Map) for (const [k, x] of v) flat(`${prefix}${typeof k === 'number' ? `0x${k.toString(16)}` : String(k)}.`, x);
    else if (v && typeof v === 'object' && !Array.isArray(v)) for (const [k, x] of Object.entries(v)) flat(`${prefix}${k}.`, x);
    else m.set(prefix.slice(0, -1), hexJson(v));
  };
  flat('', o);
  return m;
}
