// The EPT walker: translate one guest-physical address for one access through a typed Ept<In, Out>, producing a
// translation, an EPT violation (with its qualification) or an EPT misconfiguration, and setting EPT A/D flags.
// Must not: cache translations (tlb.ts does), know about nesting, or throw for anything a guest can arrange.
// SDM Vol. 3C 28.2.2–28.2.4 (walk, misconfig/violation, A/D flags), 28.2.6 (memory type); reference §8.3–8.5.
import type { GuestPhysical, PhysicalAddress } from '../address.js';
import { eptEntryFrame, eptEntryIsLeaf, eptEntryPresent, eptMisconfiguration, EptBit, type EptLevel } from './entry.js';
import {
  buildEptViolationQualification, encodeEptViolationQualification, pagingStructureAccessIsWrite, type WalkedRights,
} from './qualification.js';
import {
  pageSizeBytes, type Ept, type EptAccess, type EptMemType, type EptPageSize, type EptWalkResult, type EptWalkStep,
} from './types.js';

const ALL_RIGHTS: WalkedRights = { read: true, write: true, execute: true, userExecute: true };
const NO_RIGHTS: WalkedRights = { read: false, write: false, execute: false, userExecute: false };
/** R, W, X and XU at their entry positions (bits 0, 1, 2, 10). */
const RIGHT_BITS = 0x407;
const RIGHT_BITS_N = 0x407n;
/** Shift of the 9-bit table index per level (12 + 9·(level − 1)), as bigints made once. */
const LEVEL_SHIFT: readonly bigint[] = [0n, 12n, 21n, 30n, 39n, 48n];

/**
 * Walk `ept` for `gpa`. `NoInfer` keeps the input space fixed by the handle, so an L2Gpa cannot be fed to EPT01.
 * Order per entry (reference §8.3/8.4): not present → violation; misconfigured → misconfiguration; then the
 * rights are ANDed. After the walk the accumulated rights are checked; only a successful translation sets
 * accessed (every entry used) and dirty (leaf, for writes) flags when EPTP[6] = 1.
 */
export function walkEpt<In extends GuestPhysical, Out extends PhysicalAddress>(
  ept: Ept<In, Out>,
  gpa: NoInfer<In>,
  access: EptAccess,
): EptWalkResult<In, Out> {
  const { config, eptp } = ept;
  const mbec = config.modeBasedExecute;
  const levels = eptp.walkLength;
  const path: EptWalkStep<Out>[] = [];
  // A 4-level EPT translates 48 guest-physical bits, a 5-level one 57. An address with a bit above that (possible only
  // when MAXPHYADDR > 48 with 4-level EPT) has no entry that could map it: reported like a not-present entry. [verify]
  if ((gpa as bigint) >> (levels === 5 ? 57n : 48n) !== 0n) return violation(ept, gpa, access, NO_RIGHTS, path);

  let table = ept.root as bigint;
  // Rights ANDed over the entries as bits R 0, W 1, X 2, XU 10 (the entry's own positions): no object per level.
  let rightBits = RIGHT_BITS;
  let leafLevel: EptLevel = 1;
  let leafEntry = 0n;
  for (let level = levels as EptLevel; ; level = (level - 1) as EptLevel) {
    const shift = LEVEL_SHIFT[level]!;
    const address = ept.outSpace.of(table + (((gpa as bigint) >> shift) & 0x1ffn) * 8n);
    const entry = ept.tables.readU64(address);
    path.push({ level, address, entry });
    if (!eptEntryPresent(entry, mbec)) return violation(ept, gpa, access, NO_RIGHTS, path);
    const reason = eptMisconfiguration(entry, level, config);
    if (reason !== undefined) {
      return { ok: false, kind: 'misconfig', gpa, reason, level, entry, path };
    }
    rightBits &= Number(entry & RIGHT_BITS_N);
    const leaf = eptEntryIsLeaf(entry, level);
    if (leaf) {
      leafLevel = level;
      leafEntry = entry;
      break;
    }
    table = eptEntryFrame(entry, level, false);
  }
  const rights: WalkedRights = rightBits === RIGHT_BITS ? ALL_RIGHTS : {
    read: (rightBits & 1) !== 0, write: (rightBits & 2) !== 0, execute: (rightBits & 4) !== 0, userExecute: (rightBits & 0x400) !== 0,
  };

  if (!permits(access, rights, mbec, eptp.accessedDirty)) return violation(ept, gpa, access, rights, path);

  const pageSize: EptPageSize = leafLevel === 3 ? '1G' : leafLevel === 2 ? '2M' : '4K';
  const size = pageSizeBytes(pageSize);
  const out = ept.outSpace.of(eptEntryFrame(leafEntry, leafLevel, true) | ((gpa as bigint) & (size - 1n)));
  const writes = isWriteLike(access, eptp.accessedDirty);
  let dirty = false;
  if (eptp.accessedDirty) {
    const gate = ept.flagGate;
    const leafDirty = (leafEntry & EptBit.D) !== 0n;
    // PML (SDM 29.3.6): a log-full event leaves every flag as it was; the gate tells the caller to exit instead.
    const needUpdate = flagsNeedUpdate(path, writes);
    if (gate && needUpdate && !gate.beforeFlagUpdate(gpa as bigint, writes && !leafDirty)) dirty = leafDirty;
    // Every flag already set: setAccessedDirty would write nothing and report the leaf's D flag.
    else dirty = needUpdate ? setAccessedDirty(ept, path, writes) : leafDirty;
  }
  return {
    ok: true,
    gpa,
    out,
    pageSize,
    memType: Number((leafEntry >> EptBit.MEMTYPE_SHIFT) & 7n) as EptMemType,
    ipat: (leafEntry & EptBit.IPAT) !== 0n,
    permissions: {
      read: rights.read,
      write: rights.write,
      execute: rights.execute,
      userExecute: mbec ? rights.userExecute : rights.execute,
    },
    dirty,
    path,
  };
}

/** Whether the access counts as a write for permission checks, the D flag and the qualification. */
function isWriteLike(access: EptAccess, eptAccessedDirty: boolean): boolean {
  return access.type === 'write' || access.type === 'rmw' || pagingStructureAccessIsWrite(access, eptAccessedDirty);
}

function permits(access: EptAccess, rights: WalkedRights, mbec: boolean, eptAccessedDirty: boolean): boolean {
  if (access.type === 'fetch') {
    // With MBEC the execute bit depends on the paging mode of the linear address (U/S AND over guest entries).
    const userLinear = access.cause.kind === 'final' && access.cause.rights.user;
    return mbec && userLinear ? rights.userExecute : rights.execute;
  }
  // A read needs R; a write needs W (and R, implied: W without R is a misconfiguration).
  if (isWriteLike(access, eptAccessedDirty)) return rights.write && rights.read;
  return rights.read;
}

function violation<In extends GuestPhysical, Out extends PhysicalAddress>(
  ept: Ept<In, Out>,
  gpa: In,
  access: EptAccess,
  walked: WalkedRights,
  path: readonly EptWalkStep<Out>[],
): EptWalkResult<In, Out> {
  const fields = buildEptViolationQualification(access, walked, ept.config, ept.eptp.accessedDirty);
  return {
    ok: false,
    kind: 'violation',
    gpa,
    linear: access.cause.kind === 'no-linear' ? undefined : access.cause.linear,
    qualification: encodeEptViolationQualification(fields),
    fields,
    path,
  };
}

/** Whether setAccessedDirty would write anything: an entry without A, or (for writes) a leaf without D. */
function flagsNeedUpdate(path: readonly EptWalkStep<PhysicalAddress>[], write: boolean): boolean {
  for (const step of path) if ((step.entry & EptBit.A) === 0n) return true;
  return write && (path[path.length - 1]!.entry & EptBit.D) === 0n;
}

/**
 * Set A in every entry used, top-down, and D in the leaf for writes; an entry is written only when a flag changes.
 * Values are tracked per address so an entry used at two levels (aliased tables) is updated consistently.
 * Returns the leaf's D flag afterwards.
 */
function setAccessedDirty<In extends GuestPhysical, Out extends PhysicalAddress>(
  ept: Ept<In, Out>,
  path: readonly EptWalkStep<Out>[],
  write: boolean,
): boolean {
  const current = new Map<bigint, bigint>();
  let leafValue = 0n;
  path.forEach((step, i) => {
    const isLeaf = i === path.length - 1;
    const before = current.get(step.address) ?? step.entry;
    const after = before | EptBit.A | (isLeaf && write ? EptBit.D : 0n);
    if (after !== before) {
      const r = ept.tables.writeU64(step.address, after);
      // The entry was just read as present (non-zero), so its page exists and the write cannot need a new page.
      if (!r.ok) throw new Error(`turtles bug: EPT A/D update failed: ${r.error.message}`);
    }
    current.set(step.address, after);
    if (isLeaf) leafValue = after;
  });
  return (leafValue & EptBit.D) !== 0n;
}
