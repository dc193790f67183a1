// VPID for L2: which VPID vmcs02 uses (vpid02 or L1's vpid01) and the TLB flushes L0 must perform on nested VM entry,
// nested VM exit and L1's INVVPID so that L1 sees the architectural VPID semantics (SDM 28.3.3.3, 28.3.3.1).
// Must not: hold state (the caller keeps lastVpid12) or touch EPT (guest-physical mappings are never flushed here).
// Reference: nested-vmx.md §5.6, §2.3 INVVPID; KVM nested_vmx_transition_tlb_flush.
import { Primary, Secondary } from '../cpu/generated/controls.js';

export type TlbFlush =
  | { readonly kind: 'none' }
  /** Invalidate linear and combined mappings tagged with `vpid`. */
  | { readonly kind: 'context'; readonly vpid: number }
  /** Invalidate mappings of one linear address tagged with `vpid`. */
  | { readonly kind: 'address'; readonly vpid: number; readonly address: bigint };

export interface VpidPlan {
  /** VIRTUAL_PROCESSOR_ID to write into vmcs02. */
  readonly vpid: number;
  readonly flush: TlbFlush;
  /** The vpid12 to remember for the next entry (unchanged when vmcs12 does not enable VPID). */
  readonly lastVpid12: number | null;
  readonly rule: 'vpid.l2-shares-vpid01' | 'vpid.vpid02-new-vpid12' | 'vpid.vpid02-same-vpid12' | 'vpid.no-vpid02';
}

/** vmcs12 "enable VPID" (a secondary control: only effective with "activate secondary controls"). */
export function vmcs12EnablesVpid(primary12: number, secondary12: number): boolean {
  return (primary12 & Primary.ACTIVATE_SECONDARY_CONTROLS) !== 0 && (secondary12 & Secondary.ENABLE_VPID) !== 0;
}

/**
 * Nested VM entry. vmcs12 without VPID: L2 runs on vpid01 and, as entry architecturally flushes VPID 0's mappings,
 * vpid01's context is flushed. With VPID and a vpid02: flush vpid02 only when vpid12 differs from the last one L0 saw
 * (a new ASID whose mappings L1 never created). With VPID but no vpid02 (L0 has no separate tag): flush the current
 * context every time.
 */
export function nestedEntryVpid(primary12: number, secondary12: number, vpid12: number, vpid01: number, vpid02: number | null, lastVpid12: number | null): VpidPlan {
  if (!vmcs12EnablesVpid(primary12, secondary12)) {
    return { vpid: vpid01, flush: { kind: 'context', vpid: vpid01 }, lastVpid12, rule: 'vpid.l2-shares-vpid01' };
  }
  if (vpid02 === null) {
    return { vpid: vpid01, flush: { kind: 'context', vpid: vpid01 }, lastVpid12: vpid12, rule: 'vpid.no-vpid02' };
  }
  if (lastVpid12 !== vpid12) {
    return { vpid: vpid02, flush: { kind: 'context', vpid: vpid02 }, lastVpid12: vpid12, rule: 'vpid.vpid02-new-vpid12' };
  }
  return { vpid: vpid02, flush: { kind: 'none' }, lastVpid12: vpid12, rule: 'vpid.vpid02-same-vpid12' };
}

/**
 * Nested VM exit to L1: when vmcs12 does not enable VPID the exit architecturally flushes VPID 0 (L1's mappings,
 * which L0 keeps under vpid01); with VPID and a vpid02 nothing needs flushing; without vpid02 L1 and L2 shared vpid01.
 */
export function nestedExitFlush(primary12: number, secondary12: number, vpid01: number, vpid02: number | null): TlbFlush {
  if (!vmcs12EnablesVpid(primary12, secondary12) || vpid02 === null) return { kind: 'context', vpid: vpid01 };
  return { kind: 'none' };
}

/**
 * L1's INVVPID (types 0 individual address, 1 single context, 2 all contexts, 3 single context retaining globals),
 * already validated: every vpid12 maps onto vpid02, so L0 flushes vpid02 — the address for type 0, the whole context
 * otherwise (over-flushing is permitted). Without vpid02, L2 ran on vpid01.
 */
export function invvpidFlush(type: 0 | 1 | 2 | 3, address: bigint, vpid01: number, vpid02: number | null): TlbFlush {
  const vpid = vpid02 ?? vpid01;
  if (type === 0) return { kind: 'address', vpid, address };
  return { kind: 'context', vpid };
}
