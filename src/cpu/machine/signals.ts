// INIT, start-up IPI (SIPI) and SMI arriving while L2 runs in VMX non-root operation: what is pending and what each
// does at the next instruction boundary under the activity state. Must not: touch CpuState, deliver anything through
// L2's IDT or model SMM itself. SDM Vol. 3C 25.2 (Other Causes of VM Exits), 26.6.2 (activity-state blocking),
// 27.2.1 (SIPI qualification); Vol. 3A 6.9 (priority: SMI/INIT above MTF, debug traps, NMIs, interrupts).
import { ExitReason } from '../generated/exit-reasons.js';
import type { NonRootExit } from '../nonroot/types.js';

/** Guest activity states (SDM 24.4.2). */
export const Activity = { ACTIVE: 0, HLT: 1, SHUTDOWN: 2, WAIT_FOR_SIPI: 3 } as const;

/**
 * Signals waiting for the next instruction boundary in non-root operation.
 *
 * - INIT: a VM exit (reason 3, qualification 0) in every activity state but wait-for-SIPI, which blocks it: it
 *   stays pending. The exit changes no register and clears no other pending event.
 * - SIPI: a VM exit (reason 4, qualification = the vector) only in wait-for-SIPI; in any other state it is
 *   discarded when it arrives.
 * - SMI: turtles models the default treatment of SMIs and SMM (no SMM monitor is ever activated, so the dual-monitor
 *   "SMM VM exits" with reasons 5 and 6 cannot happen). An SMI in VMX non-root operation then enters SMM, whose
 *   handler is platform firmware outside the model, and RSM returns to non-root operation with the guest state it
 *   saved: nothing L1 or L2 can observe, no VM exit and no L2 step. Wait-for-SIPI blocks SMIs (they stay pending).
 *   `smisHandled` counts the ones taken, so a test can see they arrived.
 */
export class PendingSignals {
  init = false;
  /** Vector of the pending SIPI (a later SIPI replaces an earlier one). */
  sipi: number | undefined;
  smi = false;
  smisHandled = 0;
  /**
   * Whether the SMM in force drops a pending MTF VM exit across SMI/RSM. A CPU keeps it (SDM Vol. 3C 34.14.4: an MTF
   * VM exit pending at the SMI is pending again after RSM), so this is false on the reference; an L0 that emulates
   * SMM for its guest without saving it (KVM N16) sets it for the runs of L2.
   */
  smmLosesPendingMtf = false;

  raiseInit(): void {
    this.init = true;
  }

  raiseSipi(vector: number): void {
    this.sipi = vector & 0xff;
  }

  raiseSmi(): void {
    this.smi = true;
  }

  /** Nothing pending. */
  get idle(): boolean {
    return !this.init && this.sipi === undefined && !this.smi;
  }

  /**
   * Take what is due at this boundary in non-root operation for `activity`: the VM exit it causes, or undefined.
   * SMI first (absorbed by SMM); then a SIPI exits in wait-for-SIPI or is discarded in any other state, so none
   * outlives the boundary it arrived at; then INIT, which wait-for-SIPI blocks. Each exit takes only its own signal.
   */
  atBoundary(activity: number): NonRootExit | undefined {
    const waiting = activity === Activity.WAIT_FOR_SIPI;
    if (this.smi && !waiting) {
      this.smi = false;
      this.smisHandled++;
    }
    if (this.sipi !== undefined) {
      const vector = this.sipi;
      this.sipi = undefined;
      if (waiting) return { reason: ExitReason.SIPI_SIGNAL, qualification: BigInt(vector) };
    }
    if (this.init && !waiting) {
      this.init = false;
      return { reason: ExitReason.INIT_SIGNAL, qualification: 0n };
    }
    return undefined;
  }
}
