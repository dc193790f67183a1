// The guest page walker: one linear address, one access, in 32-bit (PSE, PSE-36), PAE, 4- or 5-level paging, with
// reserved bits, rights and A/D updates; every paging-structure access goes through a callback (EPT can translate it).
// Must not: cache (tlb.ts) or check segmentation/canonicality (the caller raises #GP/#SS first).
// SDM Vol. 3A 4.3–4.5 (modes), 4.6 (rights), 4.7 (#PF), 4.8 (A/D); Vol. 3C 28.2.3.3.
import type { AddressSpace, GuestLinear, PhysicalAddress } from '../address.js';
import { Cr4, Efer } from '../state.js';
import { maskRange } from '../u64.js';
import { accessErrorBits, accessFaultCode, PteBit, reservedMask } from './permissions.js';
import {
  linearAddressValid, pagingMode, PfErr, type FinalAccess, type LinearAccess, type LinearRights, type PageSize,
  type PagingControls, type PagingMode, type PagingResult, type PagingStructureAccess, type PagingWalkStep,
} from './types.js';

type Level = 1 | 2 | 3 | 4 | 5;

const NO_PAGING_RIGHTS: LinearRights = { user: true, writable: true, executeDisable: false, protectionKey: 0 };

/**
 * Translate `linear` for `access`. Order, as on hardware and in KVM's paging_tmpl.h: each level is read (an EPT fault
 * there ends the walk), a not-present entry faults with P = 0, a reserved bit faults with RSVD = 1; after the leaf the
 * combined rights are checked. If `final` is given it runs next (under EPT: the EPT walk of the final guest-physical
 * address), and only when it succeeds are the A flags (every entry used, top-down) and the leaf's D flag (writes)
 * set. Setting A/D only for accesses that complete is this model's choice (KVM's software walker does the same);
 * callers that want A/D before the final EPT check pass no `final` and translate the result themselves.
 */
export function translateLinear<P extends PhysicalAddress, F = undefined>(
  ctl: PagingControls,
  linear: GuestLinear,
  access: LinearAccess,
  space: AddressSpace<P>,
  mem: PagingStructureAccess<P>,
  final?: FinalAccess<P, F>,
): PagingResult<P, F> {
  const mode = pagingMode(ctl);
  if (!linearAddressValid(mode, linear)) {
    throw new RangeError(`turtles bug: linear 0x${linear.toString(16)} reached the ${mode} walker; #GP/#SS come first`);
  }
  const pf = (errorCode: number): PagingResult<P, F> => ({ ok: false, fault: { kind: 'page-fault', errorCode, linear } });
  const baseErr = accessErrorBits(access, mode, ctl);

  if (mode === 'none') {
    const phys = space.of(linear as bigint);
    const f = final?.(phys, { linear, access, rights: NO_PAGING_RIGHTS, mode });
    if (f !== undefined && !f.ok) return f;
    return {
      ok: true, linear, phys, pageSize: '4K', mode, rights: NO_PAGING_RIGHTS, global: false, patIndex: null, dirty: true,
      path: [], final: (f?.value as F),
    };
  }

  const path: PagingWalkStep<P>[] = [];
  const entrySize: 4 | 8 = mode === '32bit' ? 4 : 8;
  let table: bigint;
  let top: Level;
  if (mode === '32bit') {
    table = ctl.cr3 & maskRange(31, 12);
    top = 2;
  } else if (mode === 'pae') {
    // PAE walks start from the PDPTE registers; the PDPTE has no U/S, R/W or XD and no accessed flag.
    const pdpte = ctl.pdptes?.[Number(((linear as bigint) >> 30n) & 3n)] ?? 0n;
    path.push({ level: 3, address: undefined, entry: pdpte });
    if ((pdpte & PteBit.P) === 0n) return pf(baseErr);
    table = pdpte & maskRange(51, 12);
    top = 2;
  } else {
    table = ctl.cr3 & maskRange(ctl.maxPhysAddr - 1, 12);
    top = mode === '5level' ? 5 : 4;
  }

  const nxe = mode !== '32bit' && (ctl.efer & Efer.NXE) !== 0n;
  let user = true;
  let writable = true;
  let xd = false;
  let leaf = 0n;
  let leafLevel: Level = 1;
  let large = false;
  for (let level: Level = top; ; level = (level - 1) as Level) {
    const address = space.of(table + entryIndex(mode, level, linear) * BigInt(entrySize));
    const r = mem.read(address, entrySize, { purpose: 'walk', linear, level });
    if (!r.ok) return r;
    const e = r.value;
    path.push({ level, address, entry: e });
    if ((e & PteBit.P) === 0n) return pf(baseErr);
    const ps = level > 1 && (e & PteBit.PS) !== 0n && (mode !== '32bit' || (ctl.cr4 & Cr4.PSE) !== 0n);
    if ((e & reservedMask(mode, level, ps, ctl)) !== 0n) return pf(baseErr | PfErr.P | PfErr.RSVD);
    user &&= (e & PteBit.US) !== 0n;
    writable &&= (e & PteBit.RW) !== 0n;
    xd ||= nxe && (e & PteBit.XD) !== 0n;
    if (level === 1 || ps) {
      leaf = e;
      leafLevel = level;
      large = ps;
      break;
    }
    table = mode === '32bit' ? e & maskRange(31, 12) : e & maskRange(51, 12);
  }

  const pke = (mode === '4level' || mode === '5level') && (ctl.cr4 & Cr4.PKE) !== 0n;
  const rights: LinearRights = {
    user, writable, executeDisable: xd, protectionKey: pke ? Number((leaf >> 59n) & 0xfn) : 0,
  };
  const fault = accessFaultCode(rights, access, mode, ctl);
  if (fault !== 0) return pf(fault);

  const pageSize: PageSize = !large ? '4K' : mode === '32bit' ? '4M' : leafLevel === 3 ? '1G' : '2M';
  const phys = space.of(leafAddress(mode, leaf, pageSize, linear as bigint));
  const f = final?.(phys, { linear, access, rights, mode });
  if (f !== undefined && !f.ok) return f;

  const write = access.kind === 'write' || access.kind === 'rmw';
  let leafAfter = leaf;
  // With every A (and for a write the leaf's D) already set the loop below would write nothing: skip it.
  if (flagsNeedUpdate(path, leafLevel, write)) {
    const current = new Map<bigint, bigint>();
    for (const step of path) {
      if (step.address === undefined) continue;
      const isLeaf = step.level === leafLevel;
      const before = current.get(step.address) ?? step.entry;
      const after = before | PteBit.A | (isLeaf && write ? PteBit.D : 0n);
      if (after !== before) {
        const w = mem.write(step.address, entrySize, after, { purpose: 'accessed-dirty', linear, level: step.level });
        if (!w.ok) return w;
      }
      current.set(step.address, after);
      if (isLeaf) leafAfter = after;
    }
  }

  const patBit = large ? PteBit.PAT_LARGE : PteBit.PAT_4K;
  const patIndex = ((leaf & patBit) !== 0n ? 4 : 0) + ((leaf & PteBit.PCD) !== 0n ? 2 : 0) + ((leaf & PteBit.PWT) !== 0n ? 1 : 0);
  return {
    ok: true,
    linear,
    phys,
    pageSize,
    mode,
    rights,
    global: (leaf & PteBit.G) !== 0n && (ctl.cr4 & Cr4.PGE) !== 0n,
    patIndex,
    dirty: (leafAfter & PteBit.D) !== 0n,
    path,
    final: f?.value as F,
  };
}

/** Whether the A/D pass would write: an entry (with an address) without A, or for a write the leaf without D. */
function flagsNeedUpdate(path: readonly PagingWalkStep<PhysicalAddress>[], leafLevel: Level, write: boolean): boolean {
  for (const step of path) {
    if (step.address === undefined) continue;
    if ((step.entry & PteBit.A) === 0n) return true;
    if (write && step.level === leafLevel && (step.entry & PteBit.D) === 0n) return true;
  }
  return false;
}

/** Shift of the 9-bit table index per level (12 + 9·(level − 1)), as bigints made once. */
const LEVEL_SHIFT: readonly bigint[] = [0n, 12n, 21n, 30n, 39n, 48n];

function entryIndex(mode: PagingMode, level: Level, linear: GuestLinear): bigint {
  if (mode === '32bit') return ((linear as bigint) >> (level === 2 ? 22n : 12n)) & 0x3ffn;
  return ((linear as bigint) >> LEVEL_SHIFT[level]!) & 0x1ffn;
}

function leafAddress(mode: PagingMode, leaf: bigint, size: PageSize, linear: bigint): bigint {
  switch (size) {
    case '4K':
      return (mode === '32bit' ? leaf & maskRange(31, 12) : leaf & maskRange(51, 12)) | (linear & 0xfffn);
    case '4M':
      // PSE-36: PDE bits 20:13 hold physical bits 39:32 (the ones at and above MAXPHYADDR are reserved, so zero).
      return (leaf & maskRange(31, 22)) | (((leaf >> 13n) & 0xffn) << 32n) | (linear & maskRange(21, 0));
    case '2M':
      return (leaf & maskRange(51, 21)) | (linear & maskRange(20, 0));
    case '1G':
      return (leaf & maskRange(51, 30)) | (linear & maskRange(29, 0));
  }
}
