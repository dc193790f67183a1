// Page-modification logging (PML): the EptFlagGate that logs the 4-KiB-aligned guest-physical address of every access
// whose EPT leaf dirty flag goes 0 → 1, and signals a page-modification log-full event when a flag must be set while
// the PML index is outside 0–511. Must not: walk EPT itself, read a VMCS directly (PmlStorage does) or decide exits
// beyond the log-full event. SDM Vol. 3C 29.3.6 ("Page-Modification Logging"), 29.3.5 (EPT A/D), 27.2.1 (reason 62).
import { ExitReason } from '../generated/exit-reasons.js';
import type { NonRootExit } from '../nonroot/types.js';
import type { EptFlagGate } from './types.js';

/** Entries in the 4-KiB page-modification log (512 × 8 bytes). */
export const PML_ENTRIES = 512;

/** Where the log and its index live: the PML-address and PML-index VMCS fields and physical memory. */
export interface PmlStorage {
  /** PML index field (16 bits, encoding 0x0812). */
  readIndex(): number;
  writeIndex(index: number): void;
  /** PML address field (encoding 0x200E): a 4-KiB-aligned physical address. */
  readAddress(): bigint;
  /** Write the 64-bit log entry at physical address `address`. */
  writeEntry(address: bigint, value: bigint): void;
}

/** The page-modification log-full VM exit: qualification bit 12 is added by the interpreter when an IRET unblocked NMIs. */
export function pmlFullExit(): NonRootExit {
  return { reason: ExitReason.PML_FULL, qualification: 0n };
}

/**
 * The gate one machine installs on its EPT handle. `enabled` follows "enable PML" of the VMCS in force (set at each
 * VM entry); while it is false every flag update is allowed and nothing is logged.
 */
export class PageModificationLog implements EptFlagGate {
  enabled = false;
  private full = false;

  constructor(private readonly storage: PmlStorage) {}

  get fullEventPending(): boolean {
    return this.full;
  }

  /** Take (and clear) a pending log-full event: true when the current access must become a PML-full VM exit. */
  takeFullEvent(): boolean {
    const f = this.full;
    this.full = false;
    return f;
  }

  /** Drop a pending event without an exit (the access that raised it was abandoned, e.g. by a VM exit of priority). */
  reset(): void {
    this.full = false;
  }

  beforeFlagUpdate(gpa: bigint, dirtied: boolean): boolean {
    if (!this.enabled) return true;
    // Once a log-full event is pending in this access, later walks of it must not set flags either.
    if (this.full) return false;
    const index = this.storage.readIndex() & 0xffff;
    if (index >= PML_ENTRIES) {
      this.full = true;
      return false;
    }
    if (dirtied) {
      // The walker sets the flags right after this returns; nothing observes the order within one walk.
      this.storage.writeEntry(this.storage.readAddress() + BigInt(index) * 8n, BigInt.asUintN(64, gpa) & ~0xfffn);
      this.storage.writeIndex((index - 1) & 0xffff);
    }
    return true;
  }
}
