// The exit-information record a VM exit carries before it is written into a VMCS: one shape shared by the
// non-root rules (which decide the exit), the VM-exit path (which records it) and L0 (which reflects it).
// Must not: contain logic. SDM Vol. 3C 27.2; reference §4.

/** One VM exit. Absent optional fields are "not defined for this exit" (the VMCS field is left unmodified). */
export interface ExitRecord {
  /** Basic exit reason (bits 15:0); flag bits are added when the exit is recorded. */
  readonly reason: number;
  /** Exit qualification; 0 when the SDM defines none for the reason. */
  readonly qualification?: bigint;
  /** Guest-linear address (string I/O, EPT violations with a linear address, …). */
  readonly guestLinearAddress?: bigint;
  /** Guest-physical address (EPT violation / misconfiguration). */
  readonly guestPhysicalAddress?: bigint;
  /** VM-exit instruction length (exits due to instruction execution and software-event delivery). */
  readonly instructionLength?: number;
  /** VM-exit instruction-information field (SDM 27.2.5), when defined for the exit. */
  readonly instructionInfo?: number;
  /** VM-exit interruption information (exception/NMI exits, external interrupts with ack-on-exit). */
  readonly interruptionInfo?: number;
  readonly interruptionErrorCode?: number;
  /** IDT-vectoring information: the event being delivered when the exit occurred. */
  readonly idtVectoringInfo?: number;
  readonly idtVectoringErrorCode?: number;
}
