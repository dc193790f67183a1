// GuestMemoryAccess over the real translation modules: guest paging (paging/) with paging structures and data
// in a PhysicalMemory, optionally under an EPT (ept/) whose faults become EPT-violation/-misconfiguration exits.
// Page-crossing accesses translate every page before writing any byte. Must not: cache translations (tlb.ts
// is the machine's business) or check segmentation/canonicality (the interpreter raises #GP/#SS first).
// SDM Vol. 3A 4 (paging, #PF), Vol. 3C 28.2.3 (EPT violations and misconfigurations), 27.2.1 (exit fields).
import { ExitReason } from '../generated/exit-reasons.js';
import { guestLinear, type AddressSpace, type GuestLinear, type GuestPhysical, type PhysicalAddress } from '../address.js';
import type { PhysicalMemory } from '../memory.js';
import type { Ept, EptFault } from '../ept/types.js';
import { eptViolationConvertible } from '../ept/ve.js';
import { walkEpt } from '../ept/walker.js';
import { directPagingAccess, translateLinearUnderEpt } from '../paging/under-ept.js';
import { translateLinear } from '../paging/walker.js';
import type { LinearAccess, PagingControls, PagingFault } from '../paging/types.js';
import { Rflags, type CpuState } from '../state.js';
import type { NonRootExit } from '../nonroot/types.js';
import type { AccessKind, GuestFault, GuestMemoryAccess, MemFetch, MemRead, MemWrite } from './types.js';

const PAGE = 0x1000n;
const OK_WRITE: MemWrite = Object.freeze({ ok: true as const });

export interface GuestMemoryOptions {
  /** CPUID MAXPHYADDR of the guest (reserved-bit checks in paging entries). */
  readonly maxPhysAddr: number;
  /** PAE paging: the PDPTE registers (loaded by VM entry / MOV to CR3); read when a PAE walk starts. */
  readonly pdptes?: () => readonly bigint[] | undefined;
  /** PKRU for protection keys (0 when absent). */
  readonly pkru?: () => number;
  /**
   * APIC-access page virtualization in force (src/cpu/apic VirtualApic), consulted after each linear access is
   * translated: the physical address to use instead, or the APIC-access exit the access causes (SDM 29.4).
   */
  readonly apicPage?: () => ApicPageRedirect | null | undefined;
}

/** Where a translated linear access really goes under "virtualize APIC accesses". */
export interface ApicPageRedirect {
  redirect(phys: bigint, size: number, type: 'read' | 'write' | 'fetch'): bigint | NonRootExit;
}

const ACCESS_KINDS = ['read', 'write', 'rmw', 'fetch'] as const;
const ACCESS_MODES = ['user', 'supervisor', 'implicit-supervisor'] as const;
/** Index kind·3 + mode, in the orders above. */
const LINEAR_ACCESSES: readonly LinearAccess[] = ACCESS_KINDS.flatMap((k) => ACCESS_MODES.map((m) => Object.freeze({ kind: k, mode: m })));

/** The (frozen, shared) LinearAccess for an access kind: one per kind and mode instead of an object per access. */
function linearAccessOf(kind: AccessKind): LinearAccess {
  const m = kind.implicit ? 2 : kind.user ? 0 : 1;
  const t = kind.type;
  const k = t === 'read' ? 0 : t === 'write' ? 1 : 3;
  return LINEAR_ACCESSES[k * 3 + m]!;
}

/** Convert an EPT fault to the VM exit it causes (reason 48 with qualification and addresses, or 49). */
export function eptFaultExit<P extends PhysicalAddress>(f: EptFault<P>): NonRootExit {
  if (f.kind === 'violation') {
    return {
      reason: ExitReason.EPT_VIOLATION,
      qualification: f.qualification,
      guestPhysicalAddress: f.gpa as bigint,
      ...(f.linear !== undefined ? { guestLinearAddress: f.linear as bigint } : {}),
    };
  }
  return { reason: ExitReason.EPT_MISCONFIG, qualification: 0n, guestPhysicalAddress: f.gpa as bigint };
}

function pagingFault<P extends PhysicalAddress>(f: PagingFault<P>): GuestFault {
  if (f.kind === 'page-fault') return { kind: 'exception', vector: 14, errorCode: f.errorCode, address: f.linear as bigint };
  return eptGuestFault(f);
}

/** An EPT fault as a GuestFault: the VM exit, marked when the violation is convertible to a #VE. */
export function eptGuestFault<P extends PhysicalAddress>(f: EptFault<P>): GuestFault {
  const exit = eptFaultExit(f);
  return f.kind === 'violation' && eptViolationConvertible(f) ? { kind: 'exit', exit, veConvertible: true } : { kind: 'exit', exit };
}

/** The shared page-splitting logic; `translate` maps one linear address to a physical one in the data space. */
abstract class PagedAccess<H extends PhysicalAddress> implements GuestMemoryAccess {
  constructor(
    protected readonly state: CpuState,
    protected readonly memory: PhysicalMemory<H>,
    protected readonly options: GuestMemoryOptions,
  ) {}

  /**
   * Whether `c` still describes the current controls (what controls() would return, field by field), without
   * building a new object: the translation caches ask this on every access.
   */
  protected controlsUnchanged(c: PagingControls): boolean {
    const s = this.state;
    if (c.cr0 !== s.cr0 || c.cr3 !== s.cr3 || c.cr4 !== s.cr4 || c.efer !== s.efer || c.rflags !== (s.rflags & Rflags.AC)) return false;
    if (c.pkru !== (this.options.pkru?.() ?? 0) || c.maxPhysAddr !== this.options.maxPhysAddr) return false;
    const a = c.pdptes;
    const b = this.options.pdptes?.();
    if (a === b) return true;
    // Absent and empty PDPTE lists are the same (controls() leaves the field out for both).
    const la = a?.length ?? 0;
    if (la !== (b?.length ?? 0)) return false;
    for (let i = 0; i < la; i++) if (a![i] !== b![i]) return false;
    return true;
  }

  protected controls(): PagingControls {
    const s = this.state;
    const pdptes = this.options.pdptes?.();
    return {
      cr0: s.cr0, cr3: s.cr3, cr4: s.cr4, efer: s.efer, rflags: s.rflags & Rflags.AC,
      pkru: this.options.pkru?.() ?? 0, maxPhysAddr: this.options.maxPhysAddr,
      ...(pdptes ? { pdptes } : {}),
    };
  }

  protected abstract translate(linear: GuestLinear, access: LinearAccess): { ok: true; phys: H } | { ok: false; fault: GuestFault };

  /** Wrap linear arithmetic the way the current mode does (32 bits outside IA-32e mode). */
  private wrap(a: bigint): bigint {
    return this.state.ia32e ? BigInt.asUintN(64, a) : a & 0xffff_ffffn;
  }

  /** The physical address an access really uses under APIC-access virtualization, or the exit it causes. */
  private apicRedirect(phys: H, size: number, kind: LinearAccess['kind']): H | NonRootExit {
    const apic = this.options.apicPage?.();
    if (!apic) return phys;
    const r = apic.redirect(phys as bigint, size, kind === 'rmw' ? 'write' : kind);
    return typeof r === 'bigint' ? (r as H) : r;
  }

  /** Physical pieces (address, length) covering [linear, linear + size), or the first fault. */
  private pieces(linear: bigint, size: number, access: LinearAccess): { ok: true; parts: [H, number][] } | { ok: false; fault: GuestFault } {
    const parts: [H, number][] = [];
    let done = 0;
    let cur = linear;
    while (done < size) {
      const n = Math.min(Number(PAGE - (cur & (PAGE - 1n))), size - done);
      const t = this.translate(guestLinear(cur), access);
      if (!t.ok) return t;
      const phys = this.apicRedirect(t.phys, n, access.kind);
      if (typeof phys !== 'bigint') return { ok: false, fault: { kind: 'exit', exit: phys } };
      parts.push([phys, n]);
      done += n;
      cur = this.wrap(cur + BigInt(n));
    }
    return { ok: true, parts };
  }

  /** The physical address of an access that stays within one page (what pieces() gives as its single part). */
  private single(linear: bigint, size: number, access: LinearAccess): { ok: true; phys: H } | { ok: false; fault: GuestFault } {
    const t = this.translate(guestLinear(linear), access);
    if (!t.ok) return t;
    const phys = this.apicRedirect(t.phys, size, access.kind);
    if (typeof phys !== 'bigint') return { ok: false, fault: { kind: 'exit', exit: phys } };
    return t.phys === phys ? t : { ok: true, phys };
  }

  read(linear: bigint, size: number, kind: AccessKind): MemRead {
    if (Number(linear & (PAGE - 1n)) + size <= 0x1000 && (size === 1 || size === 2 || size === 4 || size === 8)) {
      const t = this.single(linear, size, linearAccessOf(kind));
      if (!t.ok) return t;
      const phys = t.phys;
      switch (size) {
        case 1: return { ok: true, value: BigInt(this.memory.readU8(phys)) };
        case 2: return { ok: true, value: BigInt(this.memory.readU16(phys)) };
        case 4: return { ok: true, value: BigInt(this.memory.readU32(phys)) };
        default: return { ok: true, value: this.memory.readU64(phys) };
      }
    }
    const p = this.pieces(linear, size, linearAccessOf(kind));
    if (!p.ok) return p;
    if (p.parts.length === 1) {
      // Common case: one page, a natural width.
      const phys = p.parts[0]![0];
      switch (size) {
        case 1: return { ok: true, value: BigInt(this.memory.readU8(phys)) };
        case 2: return { ok: true, value: BigInt(this.memory.readU16(phys)) };
        case 4: return { ok: true, value: BigInt(this.memory.readU32(phys)) };
        case 8: return { ok: true, value: this.memory.readU64(phys) };
        default: break;
      }
    }
    let v = 0n;
    let shift = 0n;
    for (const [phys, n] of p.parts) {
      const bytes = this.memory.read(phys, n);
      for (let i = 0; i < n; i++) {
        v |= BigInt(bytes[i]!) << shift;
        shift += 8n;
      }
    }
    return { ok: true, value: v };
  }

  write(linear: bigint, size: number, value: bigint, kind: AccessKind): MemWrite {
    if (Number(linear & (PAGE - 1n)) + size <= 0x1000 && (size === 1 || size === 2 || size === 4 || size === 8)) {
      const t = this.single(linear, size, linearAccessOf(kind));
      if (!t.ok) return t;
      const phys = t.phys;
      const r = size === 8 ? this.memory.writeU64(phys, BigInt.asUintN(64, value))
        : size === 4 ? this.memory.writeU32(phys, Number(value & 0xffff_ffffn))
          : size === 2 ? this.memory.writeU16(phys, Number(value & 0xffffn)) : this.memory.writeU8(phys, Number(value & 0xffn));
      if (!r.ok) throw new Error(`turtles bug: guest write exceeded the memory budget: ${r.error.message}`);
      return OK_WRITE;
    }
    const p = this.pieces(linear, size, linearAccessOf(kind));
    if (!p.ok) return p;
    if (p.parts.length === 1 && (size === 1 || size === 2 || size === 4 || size === 8)) {
      const phys = p.parts[0]![0];
      const r = size === 8 ? this.memory.writeU64(phys, BigInt.asUintN(64, value))
        : size === 4 ? this.memory.writeU32(phys, Number(value & 0xffff_ffffn))
          : size === 2 ? this.memory.writeU16(phys, Number(value & 0xffffn)) : this.memory.writeU8(phys, Number(value & 0xffn));
      if (!r.ok) throw new Error(`turtles bug: guest write exceeded the memory budget: ${r.error.message}`);
      return { ok: true };
    }
    let v = value;
    for (const [phys, n] of p.parts) {
      const bytes = new Uint8Array(n);
      for (let i = 0; i < n; i++) {
        bytes[i] = Number(v & 0xffn);
        v >>= 8n;
      }
      const r = this.memory.write(phys, bytes);
      if (!r.ok) throw new Error(`turtles bug: guest write exceeded the memory budget: ${r.error.message}`);
    }
    return { ok: true };
  }

  fetch(linear: bigint, maxBytes: number, kind: AccessKind): MemFetch {
    const access = linearAccessOf(kind);
    const first = this.translate(guestLinear(linear), access);
    if (!first.ok) return first;
    const apicExit = this.apicRedirect(first.phys, 1, access.kind);
    if (typeof apicExit !== 'bigint') return { ok: false, fault: { kind: 'exit', exit: apicExit } };
    const inPage = Number(PAGE - (linear & (PAGE - 1n)));
    if (inPage >= maxBytes) return { ok: true, bytes: this.memory.read(first.phys, maxBytes), phys: first.phys as bigint };
    const head = this.memory.read(first.phys, inPage);
    const next = this.translate(guestLinear(this.wrap(linear + BigInt(inPage))), access);
    if (!next.ok) return { ok: true, bytes: head, phys: first.phys as bigint, fault: next.fault };
    const nextApic = this.apicRedirect(next.phys, 1, access.kind);
    if (typeof nextApic !== 'bigint') return { ok: true, bytes: head, phys: first.phys as bigint, fault: { kind: 'exit', exit: nextApic } };
    const out = new Uint8Array(maxBytes);
    out.set(head, 0);
    out.set(this.memory.read(next.phys, maxBytes - inPage), inPage);
    return { ok: true, bytes: out, phys: first.phys as bigint };
  }
}

/** One cached successful translation of a linear page for one kind of access. */
interface CachedPage<P> {
  readonly physPage: bigint;
  readonly phys: P;
}

/**
 * Guest paging with paging structures and data in the same physical space (no EPT): L2 run without EPT,
 * or any plain guest. Paging off means linear = physical.
 *
 * Successful translations are cached per (linear page, access type, privilege) to avoid walking on every
 * access. The cache is exact, not a TLB: it is dropped whenever a control the walk reads changes (CR0, CR3,
 * CR4, EFER, RFLAGS.AC, PKRU, PDPTEs) and whenever any byte of a page that held a paging-structure entry of a
 * cached walk is written (by the guest or anyone else, through the memory's write observers). A first write
 * through a page walks again, so accessed/dirty flags are set exactly as without the cache.
 */
export class DirectGuestMemory<P extends PhysicalAddress> extends PagedAccess<P> {
  private readonly cache = new Map<number, (CachedPage<P> | undefined)[]>();
  private readonly watched = new Set<number>();
  private ctl: PagingControls | undefined;

  constructor(state: CpuState, memory: PhysicalMemory<P>, private readonly space: AddressSpace<P>, options: GuestMemoryOptions) {
    super(state, memory, options);
    memory.onWrite((address, length) => {
      if (this.watched.size === 0) return;
      const first = Number((address as bigint) >> 12n);
      const last = Number(((address as bigint) + BigInt(length - 1)) >> 12n);
      for (let pg = first; pg <= last; pg++) {
        if (this.watched.has(pg)) {
          this.flush();
          return;
        }
      }
    });
  }

  /** Drop every cached translation (also done automatically; exposed for callers that change state behind us). */
  flush(): void {
    this.cache.clear();
    this.watched.clear();
  }

  private currentControls(): PagingControls {
    const o = this.ctl;
    if (o && this.controlsUnchanged(o)) return o;
    const c = this.controls();
    this.flush();
    this.ctl = c;
    return c;
  }

  protected translate(linear: GuestLinear, access: LinearAccess): { ok: true; phys: P } | { ok: false; fault: GuestFault } {
    const ctl = this.currentControls();
    const page = Number((linear as bigint) >> 12n);
    const slot = translationSlot(access);
    const offset = (linear as bigint) & 0xfffn;
    const hit = this.cache.get(page)?.[slot];
    if (hit) return { ok: true, phys: this.space.of(hit.physPage | offset) };
    const r = translateLinear(ctl, linear, access, this.space, directPagingAccess(this.memory));
    if (!r.ok) return { ok: false, fault: pagingFault(r.fault) };
    for (const step of r.path) if (step.address !== undefined) this.watched.add(Number((step.address as bigint) >> 12n));
    let entries = this.cache.get(page);
    if (!entries) {
      entries = [];
      this.cache.set(page, entries);
    }
    entries[slot] = { physPage: (r.phys as bigint) & ~0xfffn, phys: r.phys };
    return { ok: true, phys: r.phys };
  }
}

/** Cache slot of an access: kind (read 0, write 1, rmw 2, fetch 3) · 3 + mode (user 0, supervisor 1, implicit 2). */
export function translationSlot(access: LinearAccess): number {
  // Comparisons of interned strings, not a keyed property lookup: this runs on every guest memory access.
  const k = access.kind, m = access.mode;
  return (k === 'read' ? 0 : k === 'write' ? 3 : k === 'rmw' ? 6 : 9) + (m === 'user' ? 0 : m === 'supervisor' ? 1 : 2);
}

/**
 * Guest paging under EPT (VMX non-root operation with "enable EPT"): every guest paging-structure access and the
 * final guest-physical address are translated by `ept`; EPT faults become VM exits (reasons 48/49).
 */
export class EptGuestMemory<G extends GuestPhysical, H extends PhysicalAddress> extends PagedAccess<H> {
  constructor(state: CpuState, memory: PhysicalMemory<H>, private readonly ept: () => Ept<G, H>, options: GuestMemoryOptions) {
    super(state, memory, options);
  }

  protected translate(linear: GuestLinear, access: LinearAccess): { ok: true; phys: H } | { ok: false; fault: GuestFault } {
    const r = translateLinearUnderEpt(this.controls(), linear, access, this.ept(), this.memory);
    return r.ok ? { ok: true, phys: r.final.out } : { ok: false, fault: pagingFault(r.fault) };
  }

  /** Translate one guest-physical address through the EPT (for callers that access guest-physical memory). */
  translatePhysical(gpa: G, type: 'read' | 'write'): { ok: true; phys: H } | { ok: false; exit: NonRootExit } {
    const t = walkEpt(this.ept(), gpa, { type, cause: { kind: 'no-linear' } });
    return t.ok ? { ok: true, phys: t.out } : { ok: false, exit: eptFaultExit(t) };
  }
}
