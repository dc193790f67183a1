// Codec for the shared interruption-information format: VM-exit interruption information (0x4404),
// IDT-vectoring information (0x4408) and VM-entry interruption information (0x4016).
// Must not: check injection validity (that is the VM-entry check E-EVT-*); it only reports reserved bits.
// SDM Vol. 3C 24.8.3 (Table 24-17), 24.9.2 (Tables 24-18, 24-19).
import { type Decoded, flag32 } from './common.js';

/** Interruption types (bits 10:8). Type 1 is reserved. */
export const IntrType = {
  EXTERNAL_INTERRUPT: 0,
  RESERVED: 1,
  NMI: 2,
  HARDWARE_EXCEPTION: 3,
  SOFTWARE_INTERRUPT: 4,
  PRIVILEGED_SOFTWARE_EXCEPTION: 5,
  SOFTWARE_EXCEPTION: 6,
  OTHER_EVENT: 7,
} as const;

/** Which of the three fields sharing this format a value came from; they differ only in bit 12. */
export type InterruptionInfoKind = 'exit' | 'idt-vectoring' | 'entry';

export interface InterruptionInfo {
  /** Bits 7:0. */
  readonly vector: number;
  /** Bits 10:8 (see IntrType). */
  readonly type: number;
  /** Bit 11: error code valid (exit, IDT-vectoring) / deliver error code (entry). */
  readonly errorCodeValid: boolean;
  /**
   * Bit 12. Exit: NMI unblocking due to IRET. IDT-vectoring: undefined (kept so decoding is lossless).
   * Entry: reserved, must be 0.
   */
  readonly nmiUnblocking: boolean;
  /** Bit 31. */
  readonly valid: boolean;
}

export const INTR_INFO_VALID = 0x8000_0000;
export const INTR_INFO_DELIVER_ERROR_CODE = 0x800;
export const INTR_INFO_NMI_UNBLOCKING = 0x1000;

/** Reserved bits 30:13 (all kinds) plus bit 12 for the entry field. */
export function interruptionInfoReservedMask(kind: InterruptionInfoKind): number {
  return kind === 'entry' ? 0x7fff_f000 : 0x7fff_e000;
}

export function encodeInterruptionInfo(x: InterruptionInfo): number {
  return (
    ((x.vector & 0xff) |
      ((x.type & 7) << 8) |
      (x.errorCodeValid ? INTR_INFO_DELIVER_ERROR_CODE : 0) |
      (x.nmiUnblocking ? INTR_INFO_NMI_UNBLOCKING : 0) |
      (x.valid ? INTR_INFO_VALID : 0)) >>>
    0
  );
}

export function decodeInterruptionInfo(raw: number, kind: InterruptionInfoKind): Decoded<InterruptionInfo, number> {
  const r = raw >>> 0;
  const type = (r >>> 8) & 7;
  const value: InterruptionInfo = {
    vector: r & 0xff,
    type,
    errorCodeValid: flag32(r, 11),
    // The entry field reserves bit 12: it is reported in `reserved` and not echoed in the value.
    nmiUnblocking: kind === 'entry' ? false : flag32(r, 12),
    valid: flag32(r, 31),
  };
  const malformed: string[] = [];
  if (value.valid && type === IntrType.RESERVED) malformed.push('type');
  return { value, reserved: (r & interruptionInfoReservedMask(kind)) >>> 0, malformed };
}

/** Convenience constructor for a valid event (the usual way exits and injections are built). */
export function interruptionInfo(vector: number, type: number, errorCodeValid = false, nmiUnblocking = false): number {
  return encodeInterruptionInfo({ vector, type, errorCodeValid, nmiUnblocking, valid: true });
}

/** Exceptions that push an error code when delivered as hardware exceptions in protected mode (SDM 6.3.1). */
export const EXCEPTIONS_WITH_ERROR_CODE: ReadonlySet<number> = new Set([8, 10, 11, 12, 13, 14, 17, 21]);
