// Types of guest paging: the controls a walk depends on, the access being translated, the physical-access callback
// through which every paging-structure read and A/D write goes (so EPT can translate it), and the result values.
// Must not: contain walking logic; guest faults are values ({ ok: false, fault }), never exceptions.
// SDM Vol. 3A 4.1 (paging modes), 4.6 (access rights), 4.7 (#PF error code); reference §8.3 (walk under EPT).
import type { GuestLinear, PhysicalAddress } from '../address.js';
import type { EptFault } from '../ept/types.js';
import { Cr0, Cr4, Efer, type CpuState } from '../state.js';

export type PagingMode = 'none' | '32bit' | 'pae' | '4level' | '5level';
export type PageSize = '4K' | '2M' | '4M' | '1G';

/** The processor state a translation reads. 64-bit registers are bigint; PKRU is a 32-bit register. */
export interface PagingControls {
  readonly cr0: bigint;
  readonly cr3: bigint;
  readonly cr4: bigint;
  readonly efer: bigint;
  /** Only RFLAGS.AC matters (SMAP). */
  readonly rflags: bigint;
  /** PKRU (used with IA-32e paging and CR4.PKE = 1). */
  readonly pkru: number;
  /** PAE paging: the four PDPTE registers as loaded by MOV to CR3 / VM entry (see pdpte.ts). */
  readonly pdptes?: readonly bigint[];
  /** The guest's MAXPHYADDR (CPUID.80000008H:EAX[7:0]); bits at and above it are reserved in entries. */
  readonly maxPhysAddr: number;
  /** PSE-36 (4-MiB pages map up to 40 address bits); default true, as on every processor with PAE. */
  readonly pse36?: boolean;
  /** 1-GiB pages (CPUID.80000001H:EDX[26]); default true. */
  readonly gbPages?: boolean;
}

export type LinearAccessKind = 'read' | 'write' | 'rmw' | 'fetch';
/**
 * 'user': an explicit access at CPL 3. 'supervisor': an explicit access at CPL < 3. 'implicit-supervisor': a
 * supervisor-mode access made implicitly (GDT/IDT/TSS, …) at any CPL; SMAP denies those regardless of RFLAGS.AC.
 */
export type LinearAccessMode = 'user' | 'supervisor' | 'implicit-supervisor';

export interface LinearAccess {
  readonly kind: LinearAccessKind;
  readonly mode: LinearAccessMode;
}

/** Access rights of a linear address, combined over the paging-structure entries that control its translation. */
export interface LinearRights {
  /** U/S = 1 in every entry: a user-mode address. */
  readonly user: boolean;
  /** R/W = 1 in every entry. */
  readonly writable: boolean;
  /** XD = 1 in some entry, with EFER.NXE = 1 (never in 32-bit paging). */
  readonly executeDisable: boolean;
  /** Protection key (leaf bits 62:59) with IA-32e paging and CR4.PKE = 1, else 0. */
  readonly protectionKey: number;
}

/** #PF error-code bits (SDM 4.7). */
export const PfErr = { P: 1, W: 2, U: 4, RSVD: 8, ID: 16, PK: 32 } as const;

export interface PageFault {
  readonly kind: 'page-fault';
  /** The #PF error code (32 bits; bits 0–5 are produced). */
  readonly errorCode: number;
  /** CR2 on delivery. */
  readonly linear: GuestLinear;
}

/** A guest-paging translation can fail with a page fault, or with an EPT fault on one of its physical accesses. */
export type PagingFault<P extends PhysicalAddress> = PageFault | EptFault<P>;

export type PhysResult<T, P extends PhysicalAddress> =
  | { readonly ok: true; readonly value: T }
  | { readonly ok: false; readonly fault: EptFault<P> };

/** Why the walker touches a physical address. */
export type PagingAccessInfo =
  | { readonly purpose: 'walk' | 'accessed-dirty'; readonly linear: GuestLinear; readonly level: number }
  | { readonly purpose: 'pdpte-load'; readonly index: number };

/**
 * The physical-access callback. Without EPT it reads and writes memory directly; under EPT each access is first
 * translated (and may fail with an EPT fault, reported with "access to a paging-structure entry", bit 8 = 0).
 */
export interface PagingStructureAccess<P extends PhysicalAddress> {
  read(address: P, size: 4 | 8, info: PagingAccessInfo): PhysResult<bigint, P>;
  write(address: P, size: 4 | 8, value: bigint, info: PagingAccessInfo): PhysResult<undefined, P>;
}

/** Called once guest paging allows the access and before A/D flags are set (see walker.ts for why). */
export type FinalAccess<P extends PhysicalAddress, F> = (address: P, info: FinalAccessInfo) => PhysResult<F, P>;
export interface FinalAccessInfo {
  readonly linear: GuestLinear;
  readonly access: LinearAccess;
  readonly rights: LinearRights;
  readonly mode: PagingMode;
}

/** One guest paging-structure entry used by a translation (PAE PDPTE registers are listed with level 3). */
export interface PagingWalkStep<P extends PhysicalAddress> {
  readonly level: 1 | 2 | 3 | 4 | 5;
  /** Undefined for a PAE PDPTE register (not read from memory during the walk). */
  readonly address: P | undefined;
  readonly entry: bigint;
}

export interface LinearTranslation<P extends PhysicalAddress, F = undefined> {
  readonly ok: true;
  readonly linear: GuestLinear;
  readonly phys: P;
  readonly pageSize: PageSize;
  readonly mode: PagingMode;
  readonly rights: LinearRights;
  /** G = 1 in the leaf and CR4.PGE = 1. */
  readonly global: boolean;
  /** 4·PAT + 2·PCD + PWT of the leaf; null when paging is off. */
  readonly patIndex: number | null;
  /** The leaf's dirty flag after the access (true for paging off: nothing to set). */
  readonly dirty: boolean;
  readonly path: readonly PagingWalkStep<P>[];
  /** What the final-access callback returned (e.g. the EPT translation of `phys`). */
  readonly final: F;
}

export type PagingResult<P extends PhysicalAddress, F = undefined> =
  | LinearTranslation<P, F>
  | { readonly ok: false; readonly fault: PagingFault<P> };

/** Controls from a register file plus what CpuState does not hold (PKRU, PDPTE registers, CPUID facts). */
export function pagingControlsFrom(
  state: Pick<CpuState, 'cr0' | 'cr3' | 'cr4' | 'efer' | 'rflags'>,
  extra: Pick<PagingControls, 'maxPhysAddr'> & Partial<Pick<PagingControls, 'pkru' | 'pdptes' | 'pse36' | 'gbPages'>>,
): PagingControls {
  return { cr0: state.cr0, cr3: state.cr3, cr4: state.cr4, efer: state.efer, rflags: state.rflags, pkru: 0, ...extra };
}

export function pagingMode(ctl: Pick<PagingControls, 'cr0' | 'cr4' | 'efer'>): PagingMode {
  if ((ctl.cr0 & Cr0.PG) === 0n) return 'none';
  if ((ctl.cr4 & Cr4.PAE) === 0n) return '32bit';
  if ((ctl.efer & Efer.LMA) === 0n) return 'pae';
  return (ctl.cr4 & Cr4.LA57) !== 0n ? '5level' : '4level';
}

/** Width of linear addresses the mode translates (canonicality width in IA-32e modes). */
export function linearWidth(mode: PagingMode): 32 | 48 | 57 {
  return mode === '4level' ? 48 : mode === '5level' ? 57 : 32;
}

/** True when the walker can be given this address: canonical in IA-32e modes, within 32 bits otherwise. */
export function linearAddressValid(mode: PagingMode, linear: GuestLinear): boolean {
  const w = linearWidth(mode);
  if (w === 32) return (linear as bigint) >> 32n === 0n;
  const top = (linear as bigint) >> BigInt(w - 1);
  return top === 0n || top === (1n << BigInt(65 - w)) - 1n;
}

export function pageSizeOf(size: PageSize): bigint {
  switch (size) {
    case '4K': return 0x1000n;
    case '2M': return 0x20_0000n;
    case '4M': return 0x40_0000n;
    case '1G': return 0x4000_0000n;
  }
}
