// The observations the oracle compares between the reference and the nested machine (DESIGN.md §3,
// reference §9.1 classes O1–O6). Both machines emit the same types in the same order for the same L1 program
// and L2 inputs; the checker compares them step by step. Must not: hold machine state or know about L0.

/** Every exit-information field L1 can VMREAD after an exit to L1 (O2), as raw field values. */
export interface ExitInformation {
  readonly exitReason: number;
  readonly qualification: bigint;
  readonly guestLinearAddress: bigint;
  readonly guestPhysicalAddress: bigint;
  readonly interruptionInfo: number;
  readonly interruptionErrorCode: number;
  readonly idtVectoringInfo: number;
  readonly idtVectoringErrorCode: number;
  readonly instructionLength: number;
  readonly instructionInfo: number;
}

export type Observation =
  /** O1: one VMX instruction executed by L1 and its outcome as L1 sees it. */
  | { readonly kind: 'vmx-instruction'; readonly step: number; readonly instruction: string; readonly operands: readonly bigint[];
      readonly outcome: string; readonly error?: number; readonly vector?: number; readonly value?: bigint; readonly rflags: bigint;
      /** VMfailValid(7/8) of VMLAUNCH/VMRESUME: the catalogue id of the failing VM-entry check, when the machine knows it. */
      readonly failedCheck?: string }
  /** O2: a VM exit delivered to L1 (or a VM-entry failure), with every exit-information field and the guest-state
   * fields as L1 would VMREAD them afterwards (encoding → value). */
  | { readonly kind: 'exit-to-l1'; readonly step: number; readonly exit: ExitInformation; readonly guestState: ReadonlyMap<number, bigint>;
      /** VM-entry failure (exit reason bit 31): the catalogue id of the failing check, when the machine knows it. */
      readonly failedCheck?: string }
  /** O3: L1's architectural state after an exit (registers, CRs, segments, MSRs), as a canonical text digest. */
  | { readonly kind: 'l1-state'; readonly step: number; readonly digest: string; readonly detail: ReadonlyMap<string, bigint> }
  /** O4: L2 architectural state at an exit to L1 (registers and the events delivered through its IDT since entry). */
  | { readonly kind: 'l2-state'; readonly step: number; readonly detail: ReadonlyMap<string, bigint>; readonly deliveredEvents: readonly string[] }
  /** O5: L1-physical memory after a step: a digest, and the pages that changed (page number → FNV-1a hash). */
  | { readonly kind: 'l1-memory'; readonly step: number; readonly digest: bigint; readonly changedPages: ReadonlyMap<bigint, bigint> }
  /** O6: L1 shut down (VMX abort with its indicator, or a triple fault). */
  | { readonly kind: 'shutdown'; readonly step: number; readonly why: 'vmx-abort' | 'triple-fault'; readonly abortIndicator?: number };

export type ObservationKind = Observation['kind'];

/** Who receives observations as a machine runs. */
export interface ObservationSink {
  observe(o: Observation): void;
}
