// Types of L0's EPT02 (L2Gpa → Hpa, built from EPT12 ∘ EPT01): composed leaves with the inputs that produced them,
// the events the checker records (fills, zaps, dropped roots), and the host-page allocator EPT02 tables come from.
// Must not: contain behaviour. Reference: nested-vmx.md §8.6 (composition), §8.7 (invalidation), §8.8 (no EPT12).
import type { Hpa, L1Gpa, L2Gpa } from '../../cpu/address.js';
import type { EptAccess, EptPageSize, EptPermissions } from '../../cpu/ept/types.js';

/** Host pages for L0's own structures (EPT02 tables). Pages come zeroed; `free` zeroes them again. */
export interface HostPageAllocator {
  /** A zeroed 4 KiB host page, or undefined when L0's page pool is exhausted. */
  alloc(): Hpa | undefined;
  free(page: Hpa): void;
}

/**
 * What an EPT02 root shadows: L1's EPT12 (tagged like a TLB entry by EPTRTA plus the walk-relevant EPTP bits and
 * vmcs12's mode-based-execute control), or L0's guest-mode copy of EPT01 when vmcs12 does not enable EPT (§8.8).
 */
export type Ept02Role =
  | { readonly kind: 'ept12'; readonly eptp12: bigint; readonly eptrta: bigint; readonly walkLength: 4 | 5; readonly accessedDirty: boolean; readonly modeBasedExecute: boolean }
  | { readonly kind: 'shadow-on-ept' };

/** One composed translation as L0 decided it (before it is written into EPT02). */
export interface Ept02LeafSpec {
  /** Base of the EPT02 page (aligned to `pageSize`). */
  readonly gpa: L2Gpa;
  readonly pageSize: EptPageSize;
  /** Base of the host page the EPT02 page maps. */
  readonly hpa: Hpa;
  /** EPT02 rights: ⊆ perm12 ∩ perm01, W withheld while the EPT12 leaf's D is 0 under EPT12 A/D. */
  readonly permissions: EptPermissions;
  /** EPT02 leaf memory type and IPAT (sdm: EPT12's; kvm: L0 policy WB + IPAT, N3). */
  readonly memType: 0 | 1 | 4 | 5 | 6;
  readonly ipat: boolean;
  /** L1-physical base the EPT02 page corresponds to (EPT12's output for `gpa`). */
  readonly l1Gpa: L1Gpa;
  readonly perm12: EptPermissions;
  readonly perm01: EptPermissions;
  readonly pageSize12: EptPageSize;
  readonly pageSize01: EptPageSize;
  /** EPT12 leaf D flag after L0's walk (meaningful with EPT12 A/D only). */
  readonly dirty12: boolean;
  readonly memType12: number;
  readonly ipat12: boolean;
}

/** A present EPT02 leaf with what it was derived from. */
export interface Ept02Leaf extends Ept02LeafSpec {
  /** EPTP02 of the root holding the leaf. */
  readonly eptp02: bigint;
  readonly role: Ept02Role;
  /** Level of the EPT02 entry (1 = 4 KiB, 2 = 2 MiB, 3 = 1 GiB). */
  readonly level: 1 | 2 | 3;
  /** Host address of the EPT02 entry. */
  readonly entryAddress: Hpa;
  /** L1 pages holding the EPT12 entries the composition walked (write-tracked: a write there zaps the leaf). */
  readonly ept12TablePages: readonly L1Gpa[];
  /** Host pages backing `ept12TablePages` (what the write observer sees). */
  readonly ept12TableHostPages: readonly Hpa[];
}

export type Ept02ZapReason =
  | 'ept12-table-write'
  | 'replaced'
  | 'split'
  | 'merged-into-large-page'
  | 'ept01-change';

export type Ept02DropReason =
  | 'invept-single-context'
  | 'invept-all-context'
  | 'vmclear'
  | 'vmptrld'
  | 'vmxoff'
  | 'root-cache-evicted'
  | 'ept01-change'
  | 'l0-request';

/** What happened to EPT02 (recorded by the nested machine for the checker and the triage UI). */
export type Ept02Event =
  | { readonly kind: 'fill'; readonly leaf: Ept02Leaf; readonly cause: { readonly gpa: L2Gpa; readonly access: EptAccess } }
  | { readonly kind: 'zap'; readonly leaf: Ept02Leaf; readonly reason: Ept02ZapReason }
  | { readonly kind: 'new-root'; readonly eptp02: bigint; readonly role: Ept02Role }
  | { readonly kind: 'drop-root'; readonly eptp02: bigint; readonly role: Ept02Role; readonly reason: Ept02DropReason; readonly leaves: number };
