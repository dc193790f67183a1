// Types of the vmcs02 merge: what L0 owns (L0MergeInputs), provenance records, and the merge result.
// Must not: contain merge logic (controls.ts, guest-state.ts, merge.ts) or read memory.
// Reference: nested-vmx.md §5.1–5.2 (vmcs02 = merge(vmcs01 policy, vmcs12, L0 state)).
import type { Vmcs } from '../../cpu/vmcs.js';

/** One input of a merged value: a field of vmcs01 or vmcs12, or a named L0MergeInputs item. */
export interface ProvenanceInput {
  readonly from: 'vmcs01' | 'vmcs12' | 'L0';
  /** VMCS field name for vmcs01/vmcs12 inputs; the L0MergeInputs key (e.g. "exceptionBitmap", "l2Live.GUEST_RIP") for L0. */
  readonly field?: string;
  readonly value: bigint;
}

/** How one vmcs02 field got its value: rule id from schemas/nested/merge-rules.json and the inputs it used. */
export interface FieldProvenance {
  readonly field: string;
  readonly encoding: number;
  readonly rule: string;
  readonly inputs: readonly ProvenanceInput[];
  readonly value: bigint;
}

/** L1's current values that L2 inherits when vmcs12 does not load its own (§5.2 "else L1's"). */
export interface L1InheritedState {
  readonly dr7: bigint;
  readonly debugctl: bigint;
  readonly pat: bigint;
  readonly efer: bigint;
  readonly bndcfgs: bigint;
  readonly perfGlobalCtrl: bigint;
  /** L1's architectural CR0: VM entry never loads ET, NW, CD and the reserved bits from GUEST_CR0 (SDM 26.3.2.1), so L2 has L1's. */
  readonly cr0: bigint;
}

/** Everything L0 owns or decides that the merge needs besides vmcs01 and vmcs12. */
export interface L0MergeInputs {
  /** L0's host state for vmcs02: the HOST_* fields are read from here (the same host state as vmcs01's). */
  readonly host: Vmcs;
  /** True on the entry that emulates L1's VMLAUNCH/VMRESUME (KVM nested_run_pending); false when L0 resumes L2 after handling an exit itself. */
  readonly realEntry: boolean;
  /** L2's live guest state (the previous vmcs02): the guest-state source when realEntry is false. */
  readonly l2Live: Vmcs | null;
  /** Exception vectors L0 itself intercepts while L2 runs. Bit 14 (#PF) is ignored: #PF interception is `needsPfIntercept`. */
  readonly exceptionBitmap: number;
  /** L0 must see every #PF (shadow paging, or L2's MAXPHYADDR smaller than the host's). */
  readonly needsPfIntercept: boolean;
  /** CR0/CR4 bits L0 lets the guest own (KVM: CR0 ⊆ {TS, WP with EPT}; CR4 ⊆ {PVI, DE, PCE, OSFXSR, OSXMMEXCPT, PGE, TSD, FSGSBASE}). */
  readonly cr0GuestOwned: bigint;
  readonly cr4GuestOwned: bigint;
  /** Bits L0 forces on / off in the hardware CR0/CR4 while L2 runs (vmx_set_cr0/cr4: e.g. NE, PG/PE without unrestricted guest, VMXE). */
  readonly cr0AlwaysOn: bigint;
  readonly cr0AlwaysOff: bigint;
  readonly cr4AlwaysOn: bigint;
  readonly cr4AlwaysOff: bigint;
  /** Shadow page-table root for L2 when vmcs01 does not enable EPT (L0 shadow paging). */
  readonly shadowCr3: bigint;
  /** PDPTEs L0 loaded from L2's CR3 when L0 uses EPT, vmcs12 does not, and L2 uses PAE paging; null otherwise. */
  readonly shadowPdptrs: readonly bigint[] | null;
  /** EPTP of EPT02 (root built by L0 from EPT12 and EPT01, or L0's guest-mode copy of EPT01 when vmcs12 has no EPT). */
  readonly eptp02: bigint;
  /** VPID that L2 runs with (from src/nested/vpid.ts nestedEntryVpid). */
  readonly vpid02: number;
  /** Host-physical address of the merged MSR bitmap page (src/nested/msr-bitmap.ts), or null when it could not be built. */
  readonly msrBitmap02: bigint | null;
  /** Host-physical pages backing vmcs12's L1-physical pointers; null = no memory behind the L1 address. */
  readonly virtualApicPage: bigint | null;
  readonly apicAccessPage: bigint | null;
  readonly postedIntrDesc: bigint | null;
  /** sdm profile: the page L0 maps for an unbacked vmcs12 pointer (reads return all ones, writes are dropped, as for nonexistent memory). */
  readonly unbackedPage: bigint;
  /** L0's notification vector for L2's posted interrupts (L1's vector is kept in software). */
  readonly postedIntrNv02: number;
  readonly l1: L1InheritedState;
  /** L0's own preemption-timer value when vmcs01 activates the timer. */
  readonly preemptionTimer02: number;
  /** L0's ENCLS-exiting bitmap. */
  readonly enclsBitmap01: bigint;
  /** L0 emulates UMIP for its guests (sets descriptor-table exiting when L2's CR4.UMIP is 1). */
  readonly emulatesUmip: boolean;
  /** L0 wants an interrupt-/NMI-window exit for its own purposes while L2 runs. */
  readonly requestInterruptWindow: boolean;
  readonly requestNmiWindow: boolean;
  /** Event L0 re-injects into L2 on an entry that is not a real VMLAUNCH/VMRESUME (KVM re-injection), or null. */
  readonly reinjection: { readonly intrInfo: number; readonly errorCode: number; readonly instructionLength: number } | null;
}

/** Something the merge could not express as a vmcs02 value (kvm profile, reference §9.3 N2). */
export interface MergeIssue {
  readonly kind: 'internal-error';
  readonly rule: string;
  readonly field: string;
  readonly message: string;
}

export interface MergeResult {
  readonly vmcs02: Vmcs;
  readonly provenance: FieldProvenance[];
  readonly issues: MergeIssue[];
}
