// The EPT-violation exit qualification (exit reason 48): a typed record, its encoder/decoder, and the builder the
// walker uses to derive it from the access, the walked entries and the capabilities.
// Must not: walk tables or read memory; undefined bits are produced as 0 so the encoding is deterministic.
// SDM Vol. 3C 27.2.1 Table 27-7 (EPT-violation qualification), 28.2.3.2; reference §4.3.4, §8.5.
import type { EptAccess, EptConfig } from './types.js';

/** Bits 0–16 of the qualification, one field per architectural bit. */
export interface EptViolationQualification {
  /** bit 0: data read. */
  readonly read: boolean;
  /** bit 1: data write. */
  readonly write: boolean;
  /** bit 2: instruction fetch. */
  readonly fetch: boolean;
  /** bit 3: AND of bit 0 (R) over the EPT entries walked; 0 if the walk met a not-present entry. */
  readonly readable: boolean;
  /** bit 4: AND of bit 1 (W). */
  readonly writable: boolean;
  /** bit 5: AND of bit 2 (X; XS with mode-based execute control). */
  readonly executable: boolean;
  /** bit 6: AND of bit 10 (XU) with mode-based execute control; undefined (0 here) without it. */
  readonly userExecutable: boolean;
  /** bit 7: the guest-linear-address field is valid. */
  readonly linearValid: boolean;
  /** bit 8 (when bit 7 = 1): 1 = access to the final translation, 0 = access to a guest paging-structure entry. */
  readonly finalTranslation: boolean;
  /** bit 9 (advanced info, bits 7 = 8 = 1): the linear address is a user-mode address. */
  readonly userLinear: boolean;
  /** bit 10 (advanced info): the linear address is writable (R/W AND). */
  readonly writableLinear: boolean;
  /** bit 11 (advanced info): the linear address is execute-disable. */
  readonly executeDisableLinear: boolean;
  /** bit 12: NMI unblocking due to IRET. */
  readonly nmiUnblocking: boolean;
  /** bit 13: shadow-stack access (never produced by this model). */
  readonly shadowStack: boolean;
  /** bit 14: supervisor shadow-stack page (never produced by this model). */
  readonly supervisorShadowStackPage: boolean;
  /** bit 15: related to guest-paging verification (never produced by this model). */
  readonly guestPagingVerification: boolean;
  /** bit 16: asynchronous to instruction execution (never produced by this model). */
  readonly asynchronous: boolean;
}

/** Field name for each bit position 0..16, in order. */
export const EPT_QUALIFICATION_BITS = [
  'read', 'write', 'fetch', 'readable', 'writable', 'executable', 'userExecutable', 'linearValid',
  'finalTranslation', 'userLinear', 'writableLinear', 'executeDisableLinear', 'nmiUnblocking', 'shadowStack',
  'supervisorShadowStackPage', 'guestPagingVerification', 'asynchronous',
] as const satisfies readonly (keyof EptViolationQualification)[];

/** Bits 63:17 are reserved (cleared to 0 by the processor). */
export const EPT_QUALIFICATION_RESERVED_MASK = ~((1n << 17n) - 1n) & 0xffff_ffff_ffff_ffffn;

export function encodeEptViolationQualification(q: EptViolationQualification): bigint {
  let v = 0n;
  EPT_QUALIFICATION_BITS.forEach((name, i) => {
    if (q[name]) v |= 1n << BigInt(i);
  });
  return v;
}

export type EptQualificationDecode =
  | { readonly ok: true; readonly value: EptViolationQualification }
  | { readonly ok: false; readonly kind: 'reserved-bits'; readonly reservedBits: bigint };

/** Decode a 64-bit qualification; a value with any of bits 63:17 set is reported, not silently truncated. */
export function decodeEptViolationQualification(x: bigint): EptQualificationDecode {
  const reserved = x & EPT_QUALIFICATION_RESERVED_MASK;
  if (reserved !== 0n || x < 0n) return { ok: false, kind: 'reserved-bits', reservedBits: reserved };
  const q: Record<string, boolean> = {};
  EPT_QUALIFICATION_BITS.forEach((name, i) => {
    q[name] = ((x >> BigInt(i)) & 1n) === 1n;
  });
  return { ok: true, value: q as unknown as EptViolationQualification };
}

/** The AND of the R, W, X (XS) and XU bits over the walked entries, as the walker accumulates it. */
export interface WalkedRights {
  readonly read: boolean;
  readonly write: boolean;
  readonly execute: boolean;
  readonly userExecute: boolean;
}

/**
 * With EPTP[6] = 1 every processor access to a guest paging-structure entry is treated as a write for EPT, and an
 * EPT violation it causes sets both bit 0 and bit 1 (SDM 28.2.3.2 footnote; the reference only says "bit 1").
 * PDPTE loads (cause 'no-linear') stay reads.
 */
export function pagingStructureAccessIsWrite(access: EptAccess, eptAccessedDirty: boolean): boolean {
  return eptAccessedDirty && access.cause.kind === 'paging-structure';
}

/** Build the qualification for a violation of `access` after walking entries whose rights AND to `walked`. */
export function buildEptViolationQualification(
  access: EptAccess,
  walked: WalkedRights,
  config: EptConfig,
  eptAccessedDirty: boolean,
): EptViolationQualification {
  const asWrite = pagingStructureAccessIsWrite(access, eptAccessedDirty);
  let read = access.type === 'read';
  let write = access.type === 'write';
  if (access.type === 'rmw') {
    write = true;
    read = config.rmwSetsRead;
  }
  if (asWrite) {
    read = true;
    write = true;
  }
  const cause = access.cause;
  const linearValid = cause.kind !== 'no-linear';
  const finalTranslation = cause.kind === 'final';
  // Bits 9–11 are defined only with bits 7 and 8 both 1 and cap bit 22; elsewhere "undefined", produced as 0.
  const advanced = config.caps.advancedExitInfo && cause.kind === 'final';
  return {
    read,
    write,
    fetch: access.type === 'fetch',
    readable: walked.read,
    writable: walked.write,
    executable: walked.execute,
    userExecutable: config.modeBasedExecute && walked.userExecute,
    linearValid,
    finalTranslation,
    userLinear: advanced && cause.kind === 'final' && cause.rights.user,
    writableLinear: advanced && cause.kind === 'final' && cause.rights.writable,
    executeDisableLinear: advanced && cause.kind === 'final' && cause.rights.executeDisable,
    nmiUnblocking: access.nmiUnblocking === true,
    shadowStack: false,
    supervisorShadowStackPage: false,
    guestPagingVerification: false,
    asynchronous: false,
  };
}
