// TLB model: linear (VPID, PCID), guest-physical (EPTRTA) and combined (VPID, PCID, EPTRTA) mapping caches and every
// operation that invalidates them; paging-structure caches are not modelled (never caching a partial walk is allowed).
// Must not: walk tables, check rights (callers re-check cached rights), or keep what an operation must invalidate.
// SDM Vol. 3A 4.10, Vol. 3C 28.3; reference §5.6, §8.7.
import type { GuestLinear, GuestPhysical, PhysicalAddress } from './address.js';
import type { EptPageSize, EptPermissions } from './ept/types.js';
import { pageSizeOf, type LinearRights, type PageSize } from './paging/types.js';

export interface LinearMapping<H extends PhysicalAddress> {
  readonly kind: 'linear';
  readonly vpid: number;
  readonly pcid: number;
  /** Page-aligned linear base of the page. */
  readonly base: GuestLinear;
  readonly pageSize: PageSize;
  /** Physical base of the page. */
  readonly phys: H;
  readonly rights: LinearRights;
  /** Shared by all PCIDs of the VPID (G = 1 with CR4.PGE = 1 when created). */
  readonly global: boolean;
  /** The leaf's D flag was 1: writes may use the entry. A write through a clean entry must walk to set D. */
  readonly dirty: boolean;
  readonly patIndex: number | null;
}

export interface GuestPhysicalMapping<G extends GuestPhysical, H extends PhysicalAddress> {
  readonly kind: 'guest-physical';
  readonly eptrta: bigint;
  readonly base: G;
  readonly pageSize: EptPageSize;
  readonly out: H;
  readonly permissions: EptPermissions;
  readonly memType: number;
  readonly ipat: boolean;
  /** EPT D flag set, or EPT A/D disabled: writes may use the entry. */
  readonly dirty: boolean;
}

export interface CombinedMapping<G extends GuestPhysical, H extends PhysicalAddress> {
  readonly kind: 'combined';
  readonly vpid: number;
  readonly pcid: number;
  readonly eptrta: bigint;
  readonly base: GuestLinear;
  /** The smaller of the guest page and the EPT page containing it. */
  readonly pageSize: PageSize;
  readonly gpa: G;
  readonly out: H;
  readonly rights: LinearRights;
  readonly permissions: EptPermissions;
  readonly global: boolean;
  /** Guest D and (with EPT A/D) EPT D both set. */
  readonly dirty: boolean;
  readonly patIndex: number | null;
  readonly memType: number;
  readonly ipat: boolean;
}

export type TlbMapping<G extends GuestPhysical, H extends PhysicalAddress> =
  LinearMapping<H> | GuestPhysicalMapping<G, H> | CombinedMapping<G, H>;

export interface TlbHit<M, A extends PhysicalAddress> {
  readonly mapping: M;
  /** The translation of the looked-up address (mapping base output + offset in the page). */
  readonly address: A;
}

/** What a lookup is for: a write may not use a clean entry (SDM 4.8: the D flag must be set in memory first). */
export interface LookupOptions {
  readonly write: boolean;
}

export type InvvpidType = 0 | 1 | 2 | 3;
export type InvpcidType = 0 | 1 | 2 | 3;
export type InveptType = 1 | 2;

const LINEAR_SIZES: readonly PageSize[] = ['4K', '2M', '4M', '1G'];
const EPT_SIZES: readonly EptPageSize[] = ['4K', '2M', '1G'];

export class Tlb<G extends GuestPhysical, H extends PhysicalAddress> {
  /** Per kind; the oldest entry is evicted first (eviction is always allowed). */
  readonly capacity: number;
  private readonly linear = new Map<string, LinearMapping<H>>();
  private readonly guestPhysical = new Map<string, GuestPhysicalMapping<G, H>>();
  private readonly combined = new Map<string, CombinedMapping<G, H>>();

  constructor(options: { readonly capacity?: number } = {}) {
    this.capacity = options.capacity ?? 4096;
  }

  get size(): { linear: number; guestPhysical: number; combined: number } {
    return { linear: this.linear.size, guestPhysical: this.guestPhysical.size, combined: this.combined.size };
  }

  /** Cache a linear mapping (created only while EPT is not in use, SDM 28.3.1). */
  fillLinear(m: Omit<LinearMapping<H>, 'kind'>): void {
    checkAligned(m.base, pageSizeOf(m.pageSize));
    checkAligned(m.phys, pageSizeOf(m.pageSize));
    const full: LinearMapping<H> = { kind: 'linear', ...m };
    insert(this.linear, linearKey(m.vpid, m.global ? null : m.pcid, m.pageSize, m.base), full, this.capacity);
  }

  fillGuestPhysical(m: Omit<GuestPhysicalMapping<G, H>, 'kind'>): void {
    checkAligned(m.base, pageSizeOf(m.pageSize));
    checkAligned(m.out, pageSizeOf(m.pageSize));
    insert(this.guestPhysical, gpaKey(m.eptrta, m.pageSize, m.base), { kind: 'guest-physical', ...m }, this.capacity);
  }

  fillCombined(m: Omit<CombinedMapping<G, H>, 'kind'>): void {
    checkAligned(m.base, pageSizeOf(m.pageSize));
    checkAligned(m.out, pageSizeOf(m.pageSize));
    checkAligned(m.gpa, pageSizeOf(m.pageSize));
    const key = `${m.eptrta.toString(16)}/${linearKey(m.vpid, m.global ? null : m.pcid, m.pageSize, m.base)}`;
    insert(this.combined, key, { kind: 'combined', ...m }, this.capacity);
  }

  /** Linear mappings usable for (vpid, pcid): that PCID's, or global ones of the VPID (SDM 28.3.2). */
  lookupLinear(vpid: number, pcid: number, linear: GuestLinear, options: LookupOptions): TlbHit<LinearMapping<H>, H> | undefined {
    for (const size of LINEAR_SIZES) {
      const base = align(linear, size);
      for (const key of [linearKey(vpid, pcid, size, base), linearKey(vpid, null, size, base)]) {
        const m = this.linear.get(key);
        if (m !== undefined && (m.dirty || !options.write)) {
          return { mapping: m, address: offsetInto(m.phys, linear, size) };
        }
      }
    }
    return undefined;
  }

  lookupGuestPhysical(eptrta: bigint, gpa: G, options: LookupOptions): TlbHit<GuestPhysicalMapping<G, H>, H> | undefined {
    for (const size of EPT_SIZES) {
      const m = this.guestPhysical.get(gpaKey(eptrta, size, align(gpa, size)));
      if (m !== undefined && (m.dirty || !options.write)) return { mapping: m, address: offsetInto(m.out, gpa, size) };
    }
    return undefined;
  }

  lookupCombined(
    vpid: number, pcid: number, eptrta: bigint, linear: GuestLinear, options: LookupOptions,
  ): TlbHit<CombinedMapping<G, H>, H> | undefined {
    const tag = eptrta.toString(16);
    for (const size of LINEAR_SIZES) {
      const base = align(linear, size);
      for (const key of [linearKey(vpid, pcid, size, base), linearKey(vpid, null, size, base)]) {
        const m = this.combined.get(`${tag}/${key}`);
        if (m !== undefined && (m.dirty || !options.write)) return { mapping: m, address: offsetInto(m.out, linear, size) };
      }
    }
    return undefined;
  }

  /**
   * INVLPG (and an emulated one): linear and combined mappings of `vpid` for the page of `linear`, global ones
   * included, for every PCID (the SDM requires the current PCID and globals) and every EPTRTA (SDM 28.3.3.1).
   */
  invlpg(vpid: number, linear: GuestLinear): void {
    this.dropLinearAndCombined((m) => m.vpid === vpid && covers(m, linear));
  }

  /** INVPCID (SDM 4.10.4.1): 0 individual address, 1 single PCID, 2 all incl. globals, 3 all but globals. */
  invpcid(vpid: number, type: InvpcidType, pcid: number, linear?: GuestLinear): void {
    this.dropLinearAndCombined((m) => {
      if (m.vpid !== vpid) return false;
      switch (type) {
        case 0: return !m.global && m.pcid === pcid && linear !== undefined && covers(m, linear);
        case 1: return !m.global && m.pcid === pcid;
        case 2: return true;
        case 3: return !m.global;
      }
    });
  }

  /**
   * MOV to CR3 (and task switches loading CR3): with CR4.PCIDE = 0 every non-global mapping of PCID 0; with
   * PCIDE = 1 the non-global mappings of the new PCID unless bit 63 of the source was 1 (SDM 4.10.4.1).
   */
  movToCr3(vpid: number, options: { readonly pcide: boolean; readonly pcid: number; readonly noFlush: boolean }): void {
    if (options.pcide && options.noFlush) return;
    const pcid = options.pcide ? options.pcid : 0;
    this.dropLinearAndCombined((m) => m.vpid === vpid && !m.global && m.pcid === pcid);
  }

  /**
   * Everything of one VPID, globals too when `includeGlobal`: MOV to CR4 changing PGE, PCIDE 1→0, PAE, PSE, SMEP or
   * LA57, MOV to CR0 changing PG (SDM 4.10.4.1 lists narrower scopes for some; dropping all is permitted).
   */
  flushVpid(vpid: number, options: { readonly includeGlobal: boolean }): void {
    this.dropLinearAndCombined((m) => m.vpid === vpid && (options.includeGlobal || !m.global));
  }

  /**
   * INVVPID (SDM 28.3.3.1): 0 individual address (globals included), 1 single context, 2 all contexts except
   * VPID 0, 3 single context retaining globals. Every PCID and every EPTRTA. Operand checks (VPID 0, canonical
   * address, supported type) belong to the instruction, not here.
   */
  invvpid(type: InvvpidType, vpid: number, linear?: GuestLinear): void {
    this.dropLinearAndCombined((m) => {
      switch (type) {
        case 0: return m.vpid === vpid && linear !== undefined && covers(m, linear);
        case 1: return m.vpid === vpid;
        case 2: return m.vpid !== 0;
        case 3: return m.vpid === vpid && !m.global;
      }
    });
  }

  /**
   * INVEPT (SDM 28.3.3.1): single-context (1) drops guest-physical and combined mappings tagged with `eptrta`
   * (EPTP bits 51:12), for all VPIDs and PCIDs; all-context (2) drops them for every EPTRTA.
   */
  invept(type: InveptType, eptrta?: bigint): void {
    const hit = (t: bigint): boolean => type === 2 || t === eptrta;
    dropWhere(this.guestPhysical, (m) => hit(m.eptrta));
    dropWhere(this.combined, (m) => hit(m.eptrta));
  }

  /**
   * VM entry and VM exit: with "enable VPID" = 0 they invalidate linear and combined mappings of VPID 0 (all PCIDs,
   * all EPTRTAs); with VPID enabled nothing. Guest-physical mappings are never touched by transitions (SDM 26.3.2.5,
   * 27.5.5; reference §5.6).
   */
  vmTransition(options: { readonly vpidEnabled: boolean }): void {
    if (options.vpidEnabled) return;
    this.dropLinearAndCombined((m) => m.vpid === 0);
  }

  /**
   * An EPT violation invalidates guest-physical mappings (for the current EPTRTA) used to translate `gpa`, and, when
   * `gpa` translated a linear address, combined mappings for that linear address for the current VPID and EPTRTA
   * (all PCIDs here, more than required).
   */
  eptViolation(eptrta: bigint, gpa: G, linear?: { readonly vpid: number; readonly linear: GuestLinear }): void {
    dropWhere(this.guestPhysical, (m) => m.eptrta === eptrta && coversGpa(m, gpa));
    if (linear !== undefined) {
      dropWhere(this.combined, (m) => m.eptrta === eptrta && m.vpid === linear.vpid && covers(m, linear.linear));
    }
  }

  flushAll(): void {
    this.linear.clear();
    this.guestPhysical.clear();
    this.combined.clear();
  }

  /** All cached mappings, in insertion order per kind (deterministic). */
  mappings(): TlbMapping<G, H>[] {
    return [...this.linear.values(), ...this.guestPhysical.values(), ...this.combined.values()];
  }

  private dropLinearAndCombined(pred: (m: LinearMapping<H> | CombinedMapping<G, H>) => boolean): void {
    dropWhere(this.linear, pred);
    dropWhere(this.combined, pred);
  }
}

function linearKey(vpid: number, pcid: number | null, size: PageSize, base: bigint): string {
  return `${vpid}:${pcid === null ? 'g' : pcid}:${size}:${base.toString(16)}`;
}

function gpaKey(eptrta: bigint, size: EptPageSize, base: bigint): string {
  return `${eptrta.toString(16)}:${size}:${base.toString(16)}`;
}

function insert<M>(map: Map<string, M>, key: string, value: M, capacity: number): void {
  map.delete(key);
  map.set(key, value);
  while (map.size > capacity) {
    const oldest = map.keys().next().value as string;
    map.delete(oldest);
  }
}

function dropWhere<M>(map: Map<string, M>, pred: (m: M) => boolean): void {
  for (const [k, m] of [...map]) if (pred(m)) map.delete(k);
}

function align<A extends bigint>(a: A, size: PageSize | EptPageSize): A {
  return (a & ~(pageSizeOf(size) - 1n)) as A;
}

function offsetInto<A extends PhysicalAddress>(base: A, addr: bigint, size: PageSize | EptPageSize): A {
  return ((base as bigint) | (addr & (pageSizeOf(size) - 1n))) as A;
}

function covers(m: { readonly base: GuestLinear; readonly pageSize: PageSize }, linear: GuestLinear): boolean {
  return align(linear, m.pageSize) === m.base;
}

function coversGpa<G extends GuestPhysical>(m: { readonly base: G; readonly pageSize: EptPageSize }, gpa: G): boolean {
  return align(gpa, m.pageSize) === m.base;
}

function checkAligned(a: bigint, size: bigint): void {
  if ((a & (size - 1n)) !== 0n) throw new RangeError(`turtles bug: TLB fill with unaligned address 0x${a.toString(16)}`);
}
