// Types shared by the EPT walker, the qualification codec, the table builder and the guest-paging walker under EPT:
// capabilities, the walk configuration, the access being translated, and the result values.
// Must not: contain behaviour beyond tiny pure helpers; a fault is a value here, never an exception.
// SDM Vol. 3C 28.2 (EPT translation, misconfigurations, violations), App. A.10 (IA32_VMX_EPT_VPID_CAP); reference §8.
import type { AddressSpace, GuestLinear, GuestPhysical, PhysicalAddress } from '../address.js';
import type { QwordMemory } from '../memory.js';
import type { EptViolationQualification } from './qualification.js';

/** IA32_VMX_EPT_VPID_CAP bits (EPT half) and MAXPHYADDR, read once from a CPU model. */
export interface EptCapabilities {
  readonly maxPhysAddr: number;
  /** bit 0: execute-only translations (bits 2:0 = 100b). */
  readonly executeOnly: boolean;
  /** bit 6: page-walk length 4. */
  readonly walkLength4: boolean;
  /** bit 7: page-walk length 5. */
  readonly walkLength5: boolean;
  /** bit 8: EPTP memory type UC. */
  readonly memTypeUc: boolean;
  /** bit 14: EPTP memory type WB. */
  readonly memTypeWb: boolean;
  /** bit 16: 2-MiB EPT pages. */
  readonly pages2M: boolean;
  /** bit 17: 1-GiB EPT pages. */
  readonly pages1G: boolean;
  /** bit 21: accessed and dirty flags for EPT. */
  readonly accessedDirty: boolean;
  /** bit 22: advanced VM-exit information for EPT violations (qualification bits 9–11). */
  readonly advancedExitInfo: boolean;
  /**
   * EPTP bit 7 (supervisor shadow-stack control) may be 1. No EPT_VPID_CAP bit enumerates it; it follows CET
   * support, so the caller states it (KVM's nested EPT treats the bit as reserved, reference §8.1).
   */
  readonly supervisorShadowStack: boolean;
}

/** Everything the walker needs besides the EPTP: capabilities plus the VM-execution controls that change the walk. */
export interface EptConfig {
  readonly caps: EptCapabilities;
  /** Secondary processor-based control bit 22, "mode-based execute control for EPT" (bit 2 = XS, bit 10 = XU). */
  readonly modeBasedExecute: boolean;
  /**
   * A read-modify-write that causes an EPT violation sets qualification bit 1; whether it also sets bit 0 is
   * implementation-specific (SDM 27.2.1). This model makes it a parameter.
   */
  readonly rmwSetsRead: boolean;
}

export type EptMemType = 0 | 1 | 4 | 5 | 6;
export type EptPageSize = '4K' | '2M' | '1G';

/** A decoded EPTP (SDM 24.6.11). Only produced by validateEptp, so every field is valid for the capabilities. */
export interface DecodedEptp {
  readonly raw: bigint;
  /** bits 2:0, memory type for EPT paging-structure accesses. */
  readonly memType: 0 | 6;
  /** bits 5:3 + 1. */
  readonly walkLength: 4 | 5;
  /** bit 6. */
  readonly accessedDirty: boolean;
  /** bit 7. */
  readonly supervisorShadowStack: boolean;
  /** bits N-1:12, the physical address of the EPT PML4 (or PML5) table. */
  readonly rootAddress: bigint;
  /** bits 51:12, the tag of cached guest-physical and combined mappings (EPTRTA, formerly EP4TA). */
  readonly eptrta: bigint;
}

/**
 * A usable EPT: a validated EPTP, the configuration, the memory holding its tables (in the output space, where
 * the tables live) and the two address-space handles. `In` is fixed by the handle: walkEpt(ept01, someL2Gpa) does
 * not compile.
 */
export interface Ept<In extends GuestPhysical, Out extends PhysicalAddress> {
  readonly eptp: DecodedEptp;
  readonly root: Out;
  readonly config: EptConfig;
  readonly tables: QwordMemory<Out>;
  readonly inSpace: AddressSpace<In>;
  readonly outSpace: AddressSpace<Out>;
  /** Consulted before the walker sets any EPT accessed/dirty flag (page-modification logging, see pml.ts). */
  readonly flagGate?: EptFlagGate;
}

/**
 * Page-modification logging's hook into the walk (SDM 29.3.6). Called only when EPTP[6] = 1 and the successful walk
 * must set at least one accessed/dirty flag; `dirtied` says the leaf's dirty flag goes 0 → 1. Returning false is a
 * page-modification log-full event: the walker sets no flag, and the gate remembers the event so the caller turns
 * the access into the VM exit instead of performing it.
 */
export interface EptFlagGate {
  beforeFlagUpdate(gpa: bigint, dirtied: boolean): boolean;
  /** A log-full event happened since the caller last took it (guest paging-structure writes must then be dropped). */
  readonly fullEventPending: boolean;
  /** Clear the pending event; true if there was one (the access becomes a PML-full VM exit). */
  takeFullEvent(): boolean;
}

/** 'rmw' is a read-modify-write of data (locked instructions, A/D-style updates by software). */
export type EptAccessType = 'read' | 'write' | 'rmw' | 'fetch';

/** Paging rights of the linear address whose translation is being accessed (advanced qualification bits, MBEC). */
export interface LinearRightsSummary {
  /** U/S = 1 in every guest paging-structure entry (or guest paging disabled). */
  readonly user: boolean;
  /** R/W = 1 in every entry (or guest paging disabled). */
  readonly writable: boolean;
  /** XD = 1 in some entry with EFER.NXE = 1 in PAE / 4- / 5-level paging. */
  readonly executeDisable: boolean;
}

/**
 * Why the guest-physical address is accessed. It decides qualification bits 7 and 8 (and 9–11), whether EPT A/D
 * makes the access a write, and which execute bit MBEC checks.
 */
export type EptAccessCause =
  /** Not associated with a linear address: bit 7 = 0 (loads of the PAE PDPTEs by MOV to CR, SDM 27.2.1). */
  | { readonly kind: 'no-linear' }
  /** A guest paging-structure entry read or A/D update while translating `linear`: bit 7 = 1, bit 8 = 0. */
  | { readonly kind: 'paging-structure'; readonly linear: GuestLinear }
  /** The access to the translation of `linear` itself: bit 7 = 1, bit 8 = 1. */
  | { readonly kind: 'final'; readonly linear: GuestLinear; readonly rights: LinearRightsSummary };

export interface EptAccess {
  readonly type: EptAccessType;
  readonly cause: EptAccessCause;
  /** Qualification bit 12 is an input: the access is part of an IRET that unblocks NMIs (SDM 27.2.1). */
  readonly nmiUnblocking?: boolean;
}

/** Permissions granted by the walk: the AND of the walked entries (XU only meaningful with MBEC). */
export interface EptPermissions {
  readonly read: boolean;
  readonly write: boolean;
  /** Bit 2: execute (supervisor-mode linear addresses when MBEC is on). */
  readonly execute: boolean;
  /** Bit 10 with MBEC; without MBEC equal to `execute` (one execute right for everybody). */
  readonly userExecute: boolean;
}

/** One EPT paging-structure entry read during a walk. */
export interface EptWalkStep<Out extends PhysicalAddress> {
  readonly level: 1 | 2 | 3 | 4 | 5;
  readonly address: Out;
  /** The entry as read, before any A/D update. */
  readonly entry: bigint;
}

export interface EptTranslation<In extends PhysicalAddress, Out extends PhysicalAddress> {
  readonly ok: true;
  readonly gpa: In;
  readonly out: Out;
  readonly pageSize: EptPageSize;
  /** Leaf bits 5:3. */
  readonly memType: EptMemType;
  /** Leaf bit 6 (ignore guest PAT). */
  readonly ipat: boolean;
  readonly permissions: EptPermissions;
  /** The leaf's dirty flag after the walk (always false when EPT A/D is off). */
  readonly dirty: boolean;
  readonly path: readonly EptWalkStep<Out>[];
}

export interface EptViolation<In extends PhysicalAddress> {
  readonly ok: false;
  readonly kind: 'violation';
  readonly gpa: In;
  /** The guest-linear-address field, defined when qualification bit 7 is 1. */
  readonly linear: GuestLinear | undefined;
  /** The exit qualification as the VMCS holds it. */
  readonly qualification: bigint;
  /** The same qualification, decoded. */
  readonly fields: EptViolationQualification;
  /** Walked entries up to and including the one that stopped the walk. */
  readonly path: readonly EptWalkStep<PhysicalAddress>[];
}

export interface EptMisconfig<In extends PhysicalAddress> {
  readonly ok: false;
  readonly kind: 'misconfig';
  readonly gpa: In;
  /** Which rule of SDM 28.2.3.1 / reference §8.4 the entry broke. */
  readonly reason: EptMisconfigReason;
  readonly level: 1 | 2 | 3 | 4 | 5;
  readonly entry: bigint;
  readonly path: readonly EptWalkStep<PhysicalAddress>[];
}

export type EptMisconfigReason =
  | 'write-without-read'
  | 'execute-only-unsupported'
  | 'reserved-bits'
  | 'large-page-unsupported'
  | 'leaf-memory-type';

/** A failed EPT translation. Guest paging under EPT reports these unchanged. */
export type EptFault<In extends PhysicalAddress> = EptViolation<In> | EptMisconfig<In>;
export type EptWalkResult<In extends PhysicalAddress, Out extends PhysicalAddress> = EptTranslation<In, Out> | EptFault<In>;

export function pageSizeBytes(size: EptPageSize | '4M'): bigint {
  switch (size) {
    case '4K': return 0x1000n;
    case '2M': return 0x20_0000n;
    case '4M': return 0x40_0000n;
    case '1G': return 0x4000_0000n;
  }
}
