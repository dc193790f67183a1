// Codec for the exit-reason field (VMCS 0x4402): basic reason in bits 15:0 plus the flag bits 26-29 and 31.
// Must not: decide which basic reasons exist or what they mean; that is generated/exit-reasons.ts.
// SDM Vol. 3C 24.9.1 (Table 24-15, basic VM-exit information), 26.8 (entry-failure bit 31).
import { type Decoded, flag32 } from './common.js';

export interface ExitReasonInfo {
  /** Bits 15:0: basic exit reason (SDM Appendix C). */
  readonly basic: number;
  /** Bit 26: a bus lock was asserted while the exiting instruction or event executed (bus-lock detection). */
  readonly busLock: boolean;
  /** Bit 27: VM exit was incident to enclave mode (SGX). */
  readonly enclaveMode: boolean;
  /** Bit 28: pending MTF VM exit (SMM-transfer monitor only). */
  readonly pendingMtf: boolean;
  /** Bit 29: VM exit from VMX root operation (SMM-transfer monitor only). */
  readonly fromVmxRoot: boolean;
  /** Bit 31: VM-entry failure (basic reasons 33, 34, 41). */
  readonly entryFailure: boolean;
}

/** Bit 16 is always cleared, bits 25:17 and 30 are reserved (reference §4.1). */
export const EXIT_REASON_RESERVED_MASK = 0x43ff_0000;

export const EXIT_REASON_ENTRY_FAILURE = 0x8000_0000;

export function encodeExitReason(x: ExitReasonInfo): number {
  return (
    ((x.basic & 0xffff) |
      (x.busLock ? 1 << 26 : 0) |
      (x.enclaveMode ? 1 << 27 : 0) |
      (x.pendingMtf ? 1 << 28 : 0) |
      (x.fromVmxRoot ? 1 << 29 : 0) |
      (x.entryFailure ? EXIT_REASON_ENTRY_FAILURE : 0)) >>>
    0
  );
}

export function decodeExitReason(raw: number): Decoded<ExitReasonInfo, number> {
  const r = raw >>> 0;
  return {
    value: {
      basic: r & 0xffff,
      busLock: flag32(r, 26),
      enclaveMode: flag32(r, 27),
      pendingMtf: flag32(r, 28),
      fromVmxRoot: flag32(r, 29),
      entryFailure: flag32(r, 31),
    },
    reserved: (r & EXIT_REASON_RESERVED_MASK) >>> 0,
    malformed: [],
  };
}

/** Convenience: an exit reason with only the basic reason (and optionally the entry-failure bit) set. */
export function exitReason(basic: number, entryFailure = false): number {
  return encodeExitReason({ basic, busLock: false, enclaveMode: false, pendingMtf: false, fromVmxRoot: false, entryFailure });
}
