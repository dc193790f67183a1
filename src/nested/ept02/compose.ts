// Multi-dimensional paging (Turtles): one EPT02 translation from L0's software walk of EPT12 and its EPT01 walk — rights
// ⊆ perm12 ∩ perm01 (no W while EPT12's leaf D is 0 under A/D), page ≤ both, memory type by profile — the exit L1 sees
// for an EPT12 fault, and the access rebuilt from an EPT02 exit. Must not: write EPT02 or act on EPT01 faults.
// Reference: nested-vmx.md §8.3–8.6, §8.8, §9.3 N3/N4; SDM 27.2.1 (Table 27-7), 28.2.3.2, 28.2.6.
import type { GuestLinear, Hpa, L1Gpa, L2Gpa } from '../../cpu/address.js';
import { guestLinear, l2gpaToL1gpaIdentity } from '../../cpu/address.js';
import { ExitReason } from '../../cpu/generated/exit-reasons.js';
import { walkEpt } from '../../cpu/ept/walker.js';
import {
  pageSizeBytes, type Ept, type EptAccess, type EptAccessType, type EptCapabilities, type EptMisconfig, type EptPageSize,
  type EptPermissions, type EptViolation, type EptWalkResult,
} from '../../cpu/ept/types.js';
import { Deviation, type L0Profile } from '../profile.js';
import type { Ept02LeafSpec } from './types.js';

/** Qualification bits L0 copies from the EPT02 exit into a synthesized EPT12 violation (kvm: bits 7 and 8 only). */
const GLA_BITS = (1n << 7n) | (1n << 8n);
const BASIC_BITS = 0x3fn;

const ALL: EptPermissions = { read: true, write: true, execute: true, userExecute: true };

/** The L2 access behind an EPT02 violation, rebuilt from its qualification, GPA and guest-linear address (SDM 27.2.1). */
export function accessFromEpt02Violation(qualification: bigint, linear: bigint, hostCaps: EptCapabilities): EptAccess {
  const q = qualification;
  const b = (n: bigint): boolean => ((q >> n) & 1n) === 1n;
  const nmiUnblocking = b(12n);
  let type: EptAccessType = 'read';
  if (b(2n)) type = 'fetch';
  else if (b(1n)) type = b(0n) ? 'rmw' : 'write';
  if (!b(7n)) return { type, cause: { kind: 'no-linear' }, nmiUnblocking };
  const gl: GuestLinear = guestLinear(BigInt.asUintN(64, linear));
  // A guest paging-structure access (bit 8 = 0): under EPT A/D the hardware reports it as a read and a write whatever it
  // was, and the software walk treats it as write-like either way, so the rebuilt type gives the same walk.
  if (!b(8n)) return { type, cause: { kind: 'paging-structure', linear: gl }, nmiUnblocking };
  // Bits 9–11 describe the linear address only with advanced VM-exit information (cap bit 22); otherwise L0 assumes a
  // supervisor, writable, executable linear address (only mode-based execute control would care). [verify]
  const adv = hostCaps.advancedExitInfo;
  const rights = { user: adv && b(9n), writable: adv ? b(10n) : true, executeDisable: adv && b(11n) };
  return { type, cause: { kind: 'final', linear: gl, rights }, nmiUnblocking };
}

export type ComposeOutcome =
  /** EPT12 denies the access: L0 synthesizes exit 48 to L1 (§8.5). */
  | { readonly kind: 'ept12-violation'; readonly fault: EptViolation<L2Gpa> }
  /** EPT12 is misconfigured: L0 synthesizes exit 49 to L1. */
  | { readonly kind: 'ept12-misconfig'; readonly fault: EptMisconfig<L2Gpa> }
  /** EPT12 translates but L0 has no (suitable) mapping for the L1 address: MMIO or a bug in L0's policy (L0-internal). */
  | { readonly kind: 'l0-internal'; readonly l1Gpa: L1Gpa; readonly why: 'ept01-violation' | 'ept01-misconfig' | 'ept01-denies' | 'no-execute-only'; readonly walk01?: EptWalkResult<L1Gpa, Hpa> }
  /** A leaf to install in EPT02. */
  | { readonly kind: 'map'; readonly leaf: Ept02LeafSpec; readonly walk12: EptWalkResult<L2Gpa, L1Gpa> | null; readonly walk01: EptWalkResult<L1Gpa, Hpa> };

export interface ComposeInput {
  readonly gpa: L2Gpa;
  readonly access: EptAccess;
  /** EPT12 (tables in L1 memory, read through EPT01 with A/D updates as the reference makes them); null = vmcs12 without EPT (§8.8). */
  readonly ept12: Ept<L2Gpa, L1Gpa> | null;
  readonly ept01: Ept<L1Gpa, Hpa>;
  /** The hardware's EPT capabilities (page sizes EPT02 may use, execute-only). */
  readonly hostCaps: EptCapabilities;
  readonly profile: L0Profile;
}

const SIZES: readonly EptPageSize[] = ['4K', '2M', '1G'];

function smaller(a: EptPageSize, b: EptPageSize): EptPageSize {
  return SIZES.indexOf(a) <= SIZES.indexOf(b) ? a : b;
}

/** The largest page size the hardware supports that is ≤ `s`. */
function hostPageSize(s: EptPageSize, caps: EptCapabilities): EptPageSize {
  if (s === '1G' && !caps.pages1G) s = '2M';
  if (s === '2M' && !caps.pages2M) s = '4K';
  return s;
}

function permits(access: EptAccess, p: EptPermissions, mbec: boolean, ad: boolean): boolean {
  if (access.type === 'fetch') {
    const user = access.cause.kind === 'final' && access.cause.rights.user;
    return mbec && user ? p.userExecute : p.execute;
  }
  const writeLike = access.type === 'write' || access.type === 'rmw' || (ad && access.cause.kind === 'paging-structure');
  return writeLike ? p.write && p.read : p.read;
}

/**
 * Compose the EPT02 translation for (gpa, access). The EPT12 walk is L0's software walk and sets EPT12 A/D flags the
 * way the reference's hardware walk would (same walker, same access); the EPT01 walk is L0's own.
 */
export function composeEpt02(input: ComposeInput): ComposeOutcome {
  const { gpa, access, ept12, ept01, hostCaps, profile } = input;
  let walk12: EptWalkResult<L2Gpa, L1Gpa> | null = null;
  let g1: L1Gpa;
  let perm12 = ALL;
  let size12: EptPageSize = '1G';
  let memType12 = 6;
  let ipat12 = false;
  let dirty12 = true;
  let ad12 = false;
  if (ept12 !== null) {
    walk12 = walkEpt(ept12, gpa, access);
    if (!walk12.ok) return walk12.kind === 'violation' ? { kind: 'ept12-violation', fault: walk12 } : { kind: 'ept12-misconfig', fault: walk12 };
    g1 = walk12.out;
    perm12 = walk12.permissions;
    size12 = walk12.pageSize;
    memType12 = walk12.memType;
    ipat12 = walk12.ipat;
    dirty12 = walk12.dirty;
    ad12 = ept12.eptp.accessedDirty;
  } else {
    g1 = l2gpaToL1gpaIdentity(gpa);
  }
  // L0's own walk: a read for the mapping itself; rights come from the translation, not from this access.
  const walk01 = walkEpt(ept01, g1, { type: 'read', cause: { kind: 'no-linear' } });
  if (!walk01.ok) return { kind: 'l0-internal', l1Gpa: g1, why: walk01.kind === 'violation' ? 'ept01-violation' : 'ept01-misconfig', walk01 };
  const perm01 = walk01.permissions;
  const mbec = ept12 !== null && ept12.config.modeBasedExecute;
  const permissions: EptPermissions = {
    read: perm12.read && perm01.read,
    // The first write through an EPT12 leaf whose D is still 0 must reach L0 so it can set D (§8.6).
    write: perm12.write && perm01.write && !(ad12 && !dirty12),
    execute: perm12.execute && perm01.execute,
    userExecute: (mbec ? perm12.userExecute : perm12.execute) && perm01.userExecute,
  };
  // EPT12 allowed the access (a write-like one has just set D), so only EPT01 can still deny it.
  if (!permits(access, permissions, mbec, ad12)) {
    return { kind: 'l0-internal', l1Gpa: g1, why: 'ept01-denies', walk01 };
  }
  if (permissions.execute && !permissions.read && !permissions.write && !hostCaps.executeOnly) {
    return { kind: 'l0-internal', l1Gpa: g1, why: 'no-execute-only', walk01 };
  }
  const pageSize = hostPageSize(smaller(size12, walk01.pageSize), hostCaps);
  const bytes = pageSizeBytes(pageSize);
  const kvmMemType = profile.name === 'kvm';
  // sdm: the leaf carries EPT12's memory type and IPAT, so the hardware combines them with L2's PAT exactly as a CPU
  // running EPT12 would (28.2.6.2); without EPT12 L0's EPT01 type stands in. kvm: L0's policy, WB + IPAT for RAM (N3).
  const memType = kvmMemType ? 6 : ept12 !== null ? memType12 : walk01.memType;
  const ipat = kvmMemType ? true : ept12 !== null ? ipat12 : walk01.ipat;
  const leaf: Ept02LeafSpec = {
    gpa: ((gpa as bigint) & ~(bytes - 1n)) as L2Gpa,
    pageSize,
    hpa: ((walk01.out as bigint) & ~(bytes - 1n)) as Hpa,
    permissions,
    memType: memType as 0 | 1 | 4 | 5 | 6,
    ipat,
    l1Gpa: ((g1 as bigint) & ~(bytes - 1n)) as L1Gpa,
    perm12,
    perm01,
    pageSize12: size12,
    pageSize01: walk01.pageSize,
    dirty12,
    memType12,
    ipat12,
  };
  return { kind: 'map', leaf, walk12, walk01 };
}

/** The exit L0 delivers to L1 for an EPT12 fault found by its software walk (§6.4, §8.5). */
export interface SynthesizedEptExit {
  readonly reason: 48 | 49;
  readonly qualification: bigint;
  readonly guestPhysicalAddress: L2Gpa;
  /** Defined for exit 48 when qualification bit 7 is 1 (the hardware's guest-linear address). */
  readonly guestLinearAddress?: bigint;
}

/**
 * sdm: the qualification the reference's walk of EPT12 produces for the same access (bits 0–12 as the SDM defines
 * them). kvm (N4, `kvm.ept-violation-qual-basic`): bits 0–5 from the software walk, 7–8 from the EPT02 exit, the rest 0.
 */
export function synthesizedEptExit(
  fault: EptViolation<L2Gpa> | EptMisconfig<L2Gpa>,
  hardwareQualification: bigint,
  hardwareLinear: bigint,
  profile: L0Profile,
): SynthesizedEptExit {
  if (fault.kind === 'misconfig') return { reason: ExitReason.EPT_MISCONFIG as 49, qualification: 0n, guestPhysicalAddress: fault.gpa };
  const qualification = profile.deviations.has(Deviation.EPT_VIOLATION_QUAL_BASIC)
    ? (fault.qualification & BASIC_BITS) | (hardwareQualification & GLA_BITS)
    : fault.qualification;
  return {
    reason: ExitReason.EPT_VIOLATION as 48,
    qualification,
    guestPhysicalAddress: fault.gpa,
    ...((qualification & (1n << 7n)) !== 0n ? { guestLinearAddress: BigInt.asUintN(64, hardwareLinear) } : {}),
  };
}
