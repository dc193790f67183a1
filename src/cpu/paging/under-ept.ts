// Physical-access callbacks for the guest page walker (direct, or each access translated through an EPT) and the
// two-dimensional translation linear → guest-physical → output space of VMX non-root operation with EPT.
// Must not: cache translations or decide VM exits; EPT faults are returned for the caller to turn into exits.
// SDM Vol. 3C 28.2.3.2 (violations during the guest walk), 28.2.3.3 (guest-physical address translation).
import type { GuestLinear, GuestPhysical, PhysicalAddress } from '../address.js';
import type { PhysicalMemory } from '../memory.js';
import { toU32 } from '../u64.js';
import { walkEpt } from '../ept/walker.js';
import type { Ept, EptAccessCause, EptTranslation } from '../ept/types.js';
import { translateLinear } from './walker.js';
import type { LinearAccess, PagingAccessInfo, PagingControls, PagingResult, PagingStructureAccess } from './types.js';

/** What the walkers need from memory holding guest paging structures. */
export type PagingMemory<P extends PhysicalAddress> = Pick<PhysicalMemory<P>, 'readU32' | 'readU64' | 'writeU32' | 'writeU64'>;

function readEntry<A extends PhysicalAddress>(mem: PagingMemory<A>, address: A, size: 4 | 8): bigint {
  return size === 4 ? BigInt(mem.readU32(address)) : mem.readU64(address);
}

function writeEntry<A extends PhysicalAddress>(mem: PagingMemory<A>, address: A, size: 4 | 8, value: bigint): void {
  const r = size === 4 ? mem.writeU32(address, toU32(value)) : mem.writeU64(address, value);
  // A/D writes target entries just read as present, whose pages therefore exist: no page needs allocating.
  if (!r.ok) throw new Error(`turtles bug: paging-structure write failed: ${r.error.message}`);
}

/** Paging structures live in the same space the walk produces (no EPT: L1 on the reference machine, L0 itself). */
export function directPagingAccess<P extends PhysicalAddress>(mem: PagingMemory<P>): PagingStructureAccess<P> {
  return {
    read: (address, size) => ({ ok: true, value: readEntry(mem, address, size) }),
    write: (address, size, value) => {
      writeEntry(mem, address, size, value);
      return { ok: true, value: undefined };
    },
  };
}

function causeOf(info: PagingAccessInfo): EptAccessCause {
  // PDPTE loads by MOV to CR are not part of translating a linear address: qualification bit 7 = 0, and they stay
  // reads even with EPT A/D enabled (SDM 28.2.3.2).
  return info.purpose === 'pdpte-load' ? { kind: 'no-linear' } : { kind: 'paging-structure', linear: info.linear };
}

/**
 * Guest paging structures at guest-physical addresses: each read is an EPT read and each A/D update an EPT write,
 * both "accesses to a paging-structure entry" (bit 8 = 0). With EPTP[6] = 1 the walker in ept/ makes the reads
 * writes as well.
 */
export function eptPagingAccess<G extends GuestPhysical, H extends PhysicalAddress>(
  ept: Ept<G, H>,
  mem: PagingMemory<H>,
  options: { readonly nmiUnblocking?: boolean } = {},
): PagingStructureAccess<G> {
  const nmi = options.nmiUnblocking === true;
  return {
    read: (address, size, info) => {
      const t = walkEpt(ept, address, { type: 'read', cause: causeOf(info), nmiUnblocking: nmi });
      if (!t.ok) return { ok: false, fault: t };
      return { ok: true, value: readEntry(mem, t.out, size) };
    },
    write: (address, size, value, info) => {
      const t = walkEpt(ept, address, { type: 'write', cause: causeOf(info), nmiUnblocking: nmi });
      if (!t.ok) return { ok: false, fault: t };
      writeEntry(mem, t.out, size, value);
      return { ok: true, value: undefined };
    },
  };
}

/**
 * Translate a guest-linear address the way hardware does with EPT: guest paging with every paging-structure access
 * through `ept`, then the final guest-physical address through `ept` (bit 8 = 1, MBEC and advanced-information
 * rights from the guest walk). Guest A/D flags are set only when everything succeeds (see walker.ts).
 */
export function translateLinearUnderEpt<G extends GuestPhysical, H extends PhysicalAddress>(
  ctl: PagingControls,
  linear: GuestLinear,
  access: LinearAccess,
  ept: Ept<G, H>,
  mem: PagingMemory<H>,
  options: { readonly nmiUnblocking?: boolean } = {},
): PagingResult<G, EptTranslation<G, H>> {
  const nmi = options.nmiUnblocking === true;
  return translateLinear(ctl, linear, access, ept.inSpace, eptPagingAccess(ept, mem, options), (gpa, info) => {
    const t = walkEpt(ept, gpa, {
      type: access.kind,
      cause: {
        kind: 'final',
        linear,
        rights: { user: info.rights.user, writable: info.rights.writable, executeDisable: info.rights.executeDisable },
      },
      nmiUnblocking: nmi,
    });
    return t.ok ? { ok: true, value: t } : { ok: false, fault: t };
  });
}
