// The divergence record: one observation that differs between the reference and the nested run, one invariant a
// nested run breaks, or one recorded observation a replay does not reproduce. The same record is what replay
// reports, the JSON output (`turtles replay --json`) and the triage UI show. Must not: format for a terminal.

export type DivergenceKind =
  /** Reference and nested runs observed different values (oracle classes O1–O6). */
  | 'observation'
  /** A nested-run invariant failed: merge, EPT02 soundness, reflection (DESIGN.md §3). */
  | 'invariant'
  /** A trace's recorded observation disagrees with what the model recomputes, or is malformed for its exit reason. */
  | 'recorded'
  /** An observation divergence caused by a deviation the L0 profile declares (`deviation` names it); not a failure. */
  | 'expected-deviation';

export type Level = 'L0' | 'L1' | 'L2';

export interface ProvenanceInput {
  readonly from: 'vmcs01' | 'vmcs12' | 'L0' | 'EPT12' | 'EPT01' | 'trace';
  readonly field?: string;
  readonly value: string;
}

export interface Divergence {
  readonly kind: DivergenceKind;
  /** Oracle class for observation divergences (reference §9.1). */
  readonly observationClass?: 'O1' | 'O2' | 'O3' | 'O4' | 'O5' | 'O6';
  /** Stable rule or check id: a merge rule (merge.*), reflection rule (reflect.*), EPT rule (ept02.*), VM-entry check
   * (ctrl.* / host.* / guest.* / msr-load.*), oracle rule (oracle.*) or trace rule (trace.*). */
  readonly rule: string;
  /** SDM section the rule implements. */
  readonly sdm: string;
  /** Index of the event (trace) or step (live run) at which it happened. */
  readonly event: number;
  readonly level: Level;
  /** VMCS field name, register, or memory location concerned. */
  readonly field?: string;
  /** Values as 0x-prefixed hex (or text for non-numeric observations). */
  readonly expected: string;
  readonly actual: string;
  /** Where the actual value came from (vmcs02 field provenance, EPT walk inputs). */
  readonly provenance?: readonly ProvenanceInput[];
  /** One line a hypervisor developer can act on. */
  readonly explanation: string;
  /** For kind 'expected-deviation': the profile's deviation id (schemas/nested/kvm-deviations.json) that causes it. */
  readonly deviation?: string;
}

/** Collect every divergence, or stop at the first (`--first`). */
export interface DivergenceCollector {
  add(d: Divergence): void;
  readonly stopped: boolean;
  readonly divergences: readonly Divergence[];
}

export function collector(mode: 'all' | 'first'): DivergenceCollector {
  const list: Divergence[] = [];
  return {
    add(d) {
      if (mode === 'first' && list.length > 0) return;
      list.push(d);
    },
    get stopped() {
      return mode === 'first' && list.length > 0;
    },
    divergences: list,
  };
}

export function hexValue(v: bigint | number): string {
  return '0x' + (typeof v === 'bigint' ? v : BigInt(v)).toString(16);
}
