// Guest paging entry bits, reserved-bit masks per mode and level, and the access-rights decision (U/S, R/W with
// CR0.WP, XD with EFER.NXE, SMEP, SMAP with RFLAGS.AC and implicit accesses, protection keys) with its #PF error code.
// Must not: read memory. The rights check is separate from the walk so a TLB hit can be re-checked against the
// current CR0/CR4/PKRU, as hardware does. SDM Vol. 3A 4.3–4.5 (entry formats), 4.6 (access rights), 4.7 (#PF).
import { Cr0, Cr4, Efer, Rflags } from '../state.js';
import { maskRange } from '../u64.js';
import { PfErr, type LinearAccess, type LinearRights, type PagingControls, type PagingMode } from './types.js';

export const PteBit = {
  P: 1n << 0n,
  RW: 1n << 1n,
  US: 1n << 2n,
  PWT: 1n << 3n,
  PCD: 1n << 4n,
  A: 1n << 5n,
  D: 1n << 6n,
  /** bit 7: PS in PDE/PDPTE, PAT in a 4-KiB PTE. */
  PS: 1n << 7n,
  PAT_4K: 1n << 7n,
  G: 1n << 8n,
  /** bit 12: PAT in an entry that maps a large page. */
  PAT_LARGE: 1n << 12n,
  XD: 1n << 63n,
} as const;

/** Mask of reserved bits of a PAE-mode PDPTE when P = 1 (checked when the PDPTE registers are loaded). */
export function paePdpteReservedMask(maxPhysAddr: number): bigint {
  return maskRange(63, maxPhysAddr) | maskRange(8, 5) | maskRange(2, 1);
}

/**
 * Reserved bits of a present entry at `level`, given whether it maps a page (PS = 1 above level 1). For 32-bit
 * paging only a 4-MiB PDE has reserved bits: 21:(M−19) with M = min(MAXPHYADDR, 40) under PSE-36 (else M = 32).
 * KVM fixes M at 36 for PSE-36; the SDM's M is used here.
 */
export function reservedMask(mode: PagingMode, level: number, largePage: boolean, ctl: PagingControls): bigint {
  const m = ctl.maxPhysAddr;
  const nx = (ctl.efer & Efer.NXE) === 0n ? PteBit.XD : 0n;
  switch (mode) {
    case 'none':
      return 0n;
    case '32bit': {
      if (level !== 2 || !largePage) return 0n;
      const mm = ctl.pse36 === false ? 32 : Math.min(m, 40);
      return maskRange(21, mm - 19);
    }
    case 'pae': {
      const base = maskRange(62, m) | nx;
      return level === 2 && largePage ? base | maskRange(20, 13) : base;
    }
    case '4level':
    case '5level': {
      const base = (m < 52 ? maskRange(51, m) : 0n) | nx;
      if (level >= 4) return base | PteBit.PS;
      if (level === 3 && largePage) return ctl.gbPages === false ? base | PteBit.PS : base | maskRange(29, 13);
      if (level === 2 && largePage) return base | maskRange(20, 13);
      return base;
    }
  }
}

/** Whether an instruction fetch sets the I/D bit of the error code (SDM 4.7). */
function idFlagApplies(mode: PagingMode, ctl: PagingControls): boolean {
  const smep = (ctl.cr4 & Cr4.SMEP) !== 0n;
  const paeNx = mode !== '32bit' && mode !== 'none' && (ctl.efer & Efer.NXE) !== 0n;
  return smep || paeNx;
}

/** Error-code bits every #PF carries for this access (W/R, U/S, I/D). */
export function accessErrorBits(access: LinearAccess, mode: PagingMode, ctl: PagingControls): number {
  let e = 0;
  if (access.kind === 'write' || access.kind === 'rmw') e |= PfErr.W;
  if (access.mode === 'user') e |= PfErr.U;
  if (access.kind === 'fetch' && idFlagApplies(mode, ctl)) e |= PfErr.ID;
  return e;
}

/**
 * The #PF error code for an access with these rights, or 0 when it is allowed. PK is reported whenever PKRU
 * denies the data access, also when ordinary rights deny it too (SDM 4.7 defines the PK bit by the PKRU condition).
 */
export function accessFaultCode(rights: LinearRights, access: LinearAccess, mode: PagingMode, ctl: PagingControls): number {
  if (mode === 'none') return 0;
  const write = access.kind === 'write' || access.kind === 'rmw';
  const fetch = access.kind === 'fetch';
  const supervisor = access.mode !== 'user';
  const wp = (ctl.cr0 & Cr0.WP) !== 0n;
  const nxe = mode !== '32bit' && (ctl.efer & Efer.NXE) !== 0n;
  const xd = nxe && rights.executeDisable;
  let denied: boolean;
  if (!supervisor) {
    denied = !rights.user || (write && !rights.writable) || (fetch && xd);
  } else if (fetch) {
    denied = (rights.user && (ctl.cr4 & Cr4.SMEP) !== 0n) || xd;
  } else {
    const smapBlocks = rights.user && (ctl.cr4 & Cr4.SMAP) !== 0n
      && (access.mode === 'implicit-supervisor' || (ctl.rflags & Rflags.AC) === 0n);
    denied = smapBlocks || (write && wp && !rights.writable);
  }
  const pk = pkeyDenies(rights, write, fetch, supervisor, wp, mode, ctl);
  if (!denied && !pk) return 0;
  return PfErr.P | accessErrorBits(access, mode, ctl) | (pk ? PfErr.PK : 0);
}

/** Protection keys (SDM 4.6.2): data accesses to user-mode addresses, IA-32e paging with CR4.PKE = 1. */
function pkeyDenies(
  rights: LinearRights, write: boolean, fetch: boolean, supervisor: boolean, wp: boolean, mode: PagingMode, ctl: PagingControls,
): boolean {
  if (fetch || !rights.user) return false;
  if (!(mode === '4level' || mode === '5level') || (ctl.cr4 & Cr4.PKE) === 0n) return false;
  const ad = (ctl.pkru >>> (2 * rights.protectionKey)) & 1;
  const wd = (ctl.pkru >>> (2 * rights.protectionKey + 1)) & 1;
  if (ad === 1) return true;
  // WD stops writes by user mode, and supervisor-mode writes only when CR0.WP = 1.
  return wd === 1 && write && (!supervisor || wp);
}
