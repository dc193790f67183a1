// Public types of the VM-entry check engine: what a caller supplies (the environment) and what it gets back
// (failures naming catalogue checks, the checks that could not be decided, and the CPU-visible verdict).
// Must not: contain behaviour; the stages live in controls.ts, host-state.ts, guest-*.ts and msr-load.ts.
// SDM Vol. 3C 26.1-26.4 (check classes), 26.7 (VM-entry failures), 30.4 (VM-instruction errors 7 and 8).
import type { CpuModel } from '../cpu-model.js';
import type { EntryCheckClass, EntryCheckId, EntryCheckStage } from '../generated/entry-checks.js';

export type { EntryCheckClass, EntryCheckId, EntryCheckStage } from '../generated/entry-checks.js';

export interface EntryEnvironment {
  cpu: CpuModel;
  /** IA32_EFER.LMA of the hypervisor executing VMLAUNCH/VMRESUME; undefined = unknown (a dump) → those checks are not evaluated. */
  hostIa32e?: boolean;
  /** Physical reads for the checks that need memory (VMCS link pointer's revision dword, PDPTEs at guest CR3 without EPT, MSR-load list entries, VTPR in the virtual-APIC page). Returns undefined when unknown → that check is not evaluated. */
  readPhys?: (addr: bigint, size: 4 | 8) => bigint | undefined;
  /** Whether WRMSR(index, value) would #GP for the guest being entered (M-WRMSR). Undefined → not evaluated. */
  wrmsrFaults?: (index: number, value: bigint) => boolean;
  /**
   * Whether the local APIC is in x2APIC mode. Not consulted by the architectural checks: SDM 26.4 rejects an
   * MSR-load index with bits 31:8 = 000008H whatever the APIC mode (reference §3.4 M-X2APIC describes KVM,
   * which only rejects it while x2APIC is enabled; a KVM model applies that relaxation on top).
   */
  x2apicEnabled?: boolean;
  /** The logical processor is in SMM (entry-to-SMM, SMI blocking, IA32_SMM_MONITOR_CTL, link-pointer rules). Undefined → those checks are not evaluated when they need it. */
  inSmm?: boolean;
  /** Current-VMCS pointer (SDM 26.3.1.5: the VMCS link pointer must differ from it). Undefined → that check is not evaluated. */
  currentVmptr?: bigint;
}

export interface EntryCheckFailure {
  id: EntryCheckId;
  sdm: string;
  stage: EntryCheckStage;
  class: EntryCheckClass;
  /** exit-33: 0/2/3/4; exit-34: 1-based entry index; else null. */
  qualification: bigint | null;
  /** Every VMCS field the check reads (catalogue `fields`) that the state shows, with its value. */
  fields: { name: string; encoding: string /* "0x%08x" */; value: bigint }[];
  /** One line: what was wrong with which value. */
  detail: string;
}

export interface EntryCheckReport {
  /** In the order the CPU meets them (stage order, catalogue order within a stage, MSR-load entries in list order). */
  failures: EntryCheckFailure[];
  /** Checks that needed a field, a memory value or an environment fact that was not known; each id once. */
  notEvaluated: EntryCheckId[];
  /** Checks decided (passed or failed): in 'first' mode those up to and including the failing one in catalogue order. */
  evaluatedCount: number;
}

export type VmEntryVerdict =
  | { kind: 'pass' }
  | { kind: 'vmfail'; error: 7 | 8; failure: EntryCheckFailure }
  | { kind: 'entry-failure'; exitReason: 33 | 34; qualification: bigint; failure: EntryCheckFailure };

export type EntryCheckMode = 'first' | 'all';
