// The nested-only records the nested machine emits for the checker and the triage UI beside the O1–O6 observations:
// every L2 entry with vmcs02 and its provenance, every L2 exit with the hardware exit information, the reflection
// decision and what L0 did with it, EPT02 fills / zaps / dropped roots, VPID flushes, L0-internal events.
// Must not: contain behaviour. Reference: DESIGN.md §3 (invariants), §5 (trace observations: vmcs02, EPT02, reflection).
import type { Vmcs } from '../../cpu/vmcs.js';
import type { FieldProvenance, MergeIssue } from '../merge/types.js';
import type { HardwareExit, ReflectionDecision } from '../reflect/types.js';
import type { NestedExitInfo } from '../sync/exit-info.js';
import type { TlbFlush, VpidPlan } from '../vpid.js';
import type { Ept02Event } from '../ept02/types.js';

export type NestedRecord =
  /** A hardware VM entry of vmcs02 (the emulated VMLAUNCH/VMRESUME, or L0 resuming L2 after handling an exit). */
  | {
      readonly kind: 'l2-entry';
      readonly step: number;
      /** True for the entry that emulates L1's VMLAUNCH/VMRESUME. */
      readonly realEntry: boolean;
      readonly vmcs02: Vmcs;
      readonly provenance: readonly FieldProvenance[];
      readonly issues: readonly MergeIssue[];
      readonly eptp02: bigint;
      readonly vpid: VpidPlan | null;
    }
  /** A hardware VM exit from vmcs02 and L0's decision. */
  | {
      readonly kind: 'l2-exit';
      readonly step: number;
      readonly hardware: HardwareExit;
      readonly decision: ReflectionDecision;
      /** What L0 did: reflected it, handled it invisibly, or turned it into an exit it synthesized. */
      readonly handling: 'reflected' | 'l0-handled' | 'synthesized';
      /** Short name of the L0 handler that ran ("ept02-fill", "emulate-io", "forward-nmi", …). */
      readonly handler: string;
    }
  /** An exit L0 delivers to L1 (reflected or synthesized), with the information it wrote into vmcs12. */
  | { readonly kind: 'exit-to-l1'; readonly step: number; readonly exit: NestedExitInfo; readonly rule: string }
  | { readonly kind: 'ept02'; readonly step: number; readonly event: Ept02Event }
  | { readonly kind: 'vpid-flush'; readonly step: number; readonly flush: TlbFlush; readonly cause: string }
  /** An exit of L1 itself (in VMX non-root under vmcs01) that L0 handled. */
  | { readonly kind: 'l1-exit'; readonly step: number; readonly reason: number; readonly handler: string }
  /** VMLAUNCH/VMRESUME emulation stopped at a VM-entry check on vmcs12 (the same catalogue id the reference reports). */
  | { readonly kind: 'nested-entry-check'; readonly step: number; readonly checkId: string; readonly outcome: 'vmfail-7' | 'vmfail-8' | 'exit-33' | 'exit-34' }
  /** Something L0 could not do as a CPU would (MMIO it does not model, out of pages, a failed hardware entry, …). */
  | { readonly kind: 'l0-internal'; readonly step: number; readonly what: string };

export interface NestedRecordSink {
  record(r: NestedRecord): void;
}

/** Collects nested records in order (tests, the recorder). */
export class NestedRecordLog implements NestedRecordSink {
  readonly items: NestedRecord[] = [];

  record(r: NestedRecord): void {
    this.items.push(r);
  }

  ofKind<K extends NestedRecord['kind']>(kind: K): Extract<NestedRecord, { kind: K }>[] {
    return this.items.filter((r): r is Extract<NestedRecord, { kind: K }> => r.kind === kind);
  }
}
