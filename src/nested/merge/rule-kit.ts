// The shape of a merge rule: `gather` names every input the rule reads (vmcs01/vmcs12 fields, L0 items, already merged
// vmcs02 controls) and `compute` derives the vmcs02 value from those inputs alone, so provenance always reproduces.
// Must not: read anything in `compute` that `gather` did not record, nor let `gather` read a source it does not record
// (its recorded inputs are also its dependency set: the incremental merge skips a step whose named sources are unchanged).
// Reference: nested-vmx.md §5.2; rule ids are the rows of schemas/nested/merge-rules.json.
import { fieldDef, type Vmcs } from '../../cpu/vmcs.js';
import type { VmcsFieldDef } from '../../cpu/generated/vmcs-fields.js';
import type { L0Profile } from '../profile.js';
import type { L0MergeInputs, ProvenanceInput } from './types.js';

export interface MergeEnv {
  readonly vmcs01: Vmcs;
  readonly vmcs12: Vmcs;
  readonly l0: L0MergeInputs;
  readonly profile: L0Profile;
  /** vmcs02 as merged so far (controls are merged before the fields that depend on them). */
  readonly merged: Vmcs;
}

/**
 * Looks up recorded inputs by "from.field" (e.g. "vmcs12.GUEST_CR0", "L0.realEntry", "L0.merged.CPU_BASED_VM_EXEC_CONTROL").
 * A rule records a handful of inputs, so a backward scan (the last recording of a key wins) is cheaper than building a
 * keyed map for every merged field.
 */
export class InputLookup {
  constructor(private readonly inputs: readonly ProvenanceInput[]) {}

  private find(key: string): ProvenanceInput | undefined {
    for (let k = this.inputs.length - 1; k >= 0; k--) {
      const i = this.inputs[k]!;
      const field = i.field ?? '';
      const fromLength = i.from.length;
      if (key.length === fromLength + 1 + field.length && key.charCodeAt(fromLength) === 46 && key.startsWith(i.from) && key.endsWith(field)) return i;
    }
    return undefined;
  }

  get(key: string): bigint {
    const v = this.find(key);
    if (v === undefined) throw new Error(`turtles bug: merge rule reads ${key}, which it did not record`);
    return v.value;
  }

  /** A 32-bit control word as a number. */
  n(key: string): number {
    return Number(this.get(key) & 0xffff_ffffn) >>> 0;
  }

  flag(key: string): boolean {
    return this.get(key) !== 0n;
  }

  has(key: string): boolean {
    return this.find(key) !== undefined;
  }
}

export interface MergeRuleImpl {
  readonly id: string;
  gather(env: MergeEnv, field: VmcsFieldDef): ProvenanceInput[];
  compute(inp: InputLookup, field: VmcsFieldDef): bigint;
}

export function in01(env: MergeEnv, encoding: number): ProvenanceInput {
  return { from: 'vmcs01', field: name(encoding), value: env.vmcs01.get(encoding) };
}

export function in12(env: MergeEnv, encoding: number): ProvenanceInput {
  return { from: 'vmcs12', field: name(encoding), value: env.vmcs12.get(encoding) };
}

/** An L0 item (booleans as 0/1, absent addresses as 0 plus a separate "...Backed" flag). */
export function inL0(field: string, value: bigint | number | boolean): ProvenanceInput {
  const v = typeof value === 'bigint' ? value : typeof value === 'boolean' ? (value ? 1n : 0n) : BigInt(value);
  return { from: 'L0', field, value: v };
}

/** A vmcs02 control already decided by the merge (L0's decision, recorded as an L0 input). */
export function inMerged(env: MergeEnv, encoding: number): ProvenanceInput {
  return { from: 'L0', field: `merged.${name(encoding)}`, value: env.merged.get(encoding) };
}

/** Whether the profile applies a deviation, recorded as an input so the value stays reproducible. */
export function inDeviation(env: MergeEnv, id: string): ProvenanceInput {
  return { from: 'L0', field: `deviation.${id}`, value: env.profile.deviations.has(id) ? 1n : 0n };
}

/** Guest-state source: vmcs12 on the entry that emulates VMLAUNCH/VMRESUME, L2's live state otherwise. */
export function inGuest(env: MergeEnv, encoding: number): ProvenanceInput {
  if (env.l0.realEntry) return in12(env, encoding);
  if (!env.l0.l2Live) throw new Error('turtles bug: merge for a non-real entry needs l2Live');
  return { from: 'L0', field: `l2Live.${name(encoding)}`, value: env.l0.l2Live.get(encoding) };
}

/** The guest-state value recorded by `inGuest`, whichever source it was. */
export function guestValue(inp: InputLookup, field: string): bigint {
  return inp.flag('L0.realEntry') ? inp.get(`vmcs12.${field}`) : inp.get(`L0.l2Live.${field}`);
}

export function name(encoding: number): string {
  const d = fieldDef(encoding);
  if (!d) throw new Error(`turtles bug: no field 0x${encoding.toString(16)}`);
  return d.name;
}
