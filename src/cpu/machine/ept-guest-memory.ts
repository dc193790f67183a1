// Guest memory under EPT with an exact translation cache (per linear page, access type and privilege): the same walk
// as EptGuestMemory, remembered until anything it depended on may have changed; not a TLB, results are a fresh walk's.
// Must not: keep a translation across a write to a page the walk read, a control change or a new EPT.
// SDM Vol. 3C 28.2 (EPT translation), Vol. 3A 4 (paging); A/D flags are set exactly as without the cache.
import { guestLinear, type GuestLinear, type GuestPhysical, type PhysicalAddress } from '../address.js';
import { pmlFullExit } from '../ept/pml.js';
import type { Ept } from '../ept/types.js';
import { EptGuestMemory, eptGuestFault, translationSlot, type GuestMemoryOptions } from '../interp/guest-memory.js';
import type { GuestFault } from '../interp/types.js';
import type { PhysicalMemory, QwordMemory } from '../memory.js';
import { translateLinearUnderEpt, type PagingMemory } from '../paging/under-ept.js';
import type { LinearAccess, PagingControls } from '../paging/types.js';
import type { CpuState } from '../state.js';


/**
 * Why a cached translation stays exact: it is dropped (the whole cache is) when the paging controls or the EPT
 * handle change, and when any byte is written to a page that held an EPT entry or a guest paging-structure entry
 * read by a cached walk — by L2, by L1, or by a walker setting accessed/dirty flags. An access type that would set a
 * flag not yet set (dirty on a first write) has its own slot and so walks again.
 */
export class CachedEptGuestMemory<G extends GuestPhysical, H extends PhysicalAddress> extends EptGuestMemory<G, H> {
  private readonly cache = new Map<number, (bigint | undefined)[]>();
  private readonly watched = new Set<number>();
  private walkPages: number[] = [];
  private ctl: PagingControls | undefined;
  private handle: Ept<G, H> | undefined;
  private recording: Ept<G, H> | undefined;
  private readonly recordingMemory: PagingMemory<H>;

  constructor(state: CpuState, memory: PhysicalMemory<H>, private readonly current: () => Ept<G, H>, options: GuestMemoryOptions) {
    super(state, memory, current, options);
    const note = (a: bigint) => this.walkPages.push(Number(a >> 12n));
    const tables: QwordMemory<H> = {
      readU64: (a) => {
        note(a as bigint);
        return memory.readU64(a);
      },
      writeU64: (a, v) => memory.writeU64(a, v),
    };
    this.recordingMemory = {
      readU32: (a) => {
        note(a as bigint);
        return memory.readU32(a);
      },
      readU64: (a) => {
        note(a as bigint);
        return memory.readU64(a);
      },
      // After a page-modification log-full event the access does not occur: its guest A/D updates are dropped too.
      writeU32: (a, v) => (this.handle?.flagGate?.fullEventPending ? { ok: true } : memory.writeU32(a, v)),
      writeU64: (a, v) => (this.handle?.flagGate?.fullEventPending ? { ok: true } : memory.writeU64(a, v)),
    };
    this.tablesWrapper = tables;
    memory.onWrite((address, length) => {
      if (this.watched.size === 0) return;
      const first = Number((address as bigint) >> 12n);
      const last = Number(((address as bigint) + BigInt(length - 1)) >> 12n);
      for (let p = first; p <= last; p++) {
        if (this.watched.has(p)) {
          this.flush();
          return;
        }
      }
    });
  }

  private readonly tablesWrapper: QwordMemory<H>;

  /** Drop every cached translation. */
  flush(): void {
    this.cache.clear();
    this.watched.clear();
  }

  private sameControls(c: PagingControls): boolean {
    const o = this.ctl;
    if (!o || o.cr0 !== c.cr0 || o.cr3 !== c.cr3 || o.cr4 !== c.cr4 || o.efer !== c.efer || o.rflags !== c.rflags || o.pkru !== c.pkru) return false;
    const a = o.pdptes;
    const b = c.pdptes;
    if (a === b) return true;
    if (!a || !b || a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
    return true;
  }

  protected override translate(linear: GuestLinear, access: LinearAccess): { ok: true; phys: H } | { ok: false; fault: GuestFault } {
    const ept = this.current();
    if (ept !== this.handle) {
      this.handle = ept;
      this.recording = { ...ept, tables: this.tablesWrapper };
      this.flush();
    }
    let ctl = this.ctl;
    if (!ctl || !this.controlsUnchanged(ctl)) {
      const fresh = this.controls();
      // Equal controls (a new object with the same values) keep the cache, as before this check was cheap.
      if (!this.sameControls(fresh)) {
        this.flush();
        this.ctl = fresh;
      }
      ctl = fresh;
    }
    const page = Number((linear as bigint) >> 12n);
    const slot = translationSlot(access);
    const hit = this.cache.get(page)?.[slot];
    const out = ept.outSpace;
    if (hit !== undefined) return { ok: true, phys: out.of(hit | ((linear as bigint) & 0xfffn)) };
    this.walkPages = [];
    const r = translateLinearUnderEpt(ctl, guestLinear(linear as bigint), access, this.recording!, this.recordingMemory);
    // A PML log-full event came first in this access (SDM 29.3.6): whatever the walk went on to find, it exits.
    if (ept.flagGate?.takeFullEvent()) return { ok: false, fault: { kind: 'exit', exit: pmlFullExit() } };
    if (!r.ok) {
      const f = r.fault;
      return f.kind === 'page-fault'
        ? { ok: false, fault: { kind: 'exception', vector: 14, errorCode: f.errorCode, address: f.linear as bigint } }
        : { ok: false, fault: eptGuestFault(f) };
    }
    // Pages are watched only after the walk: its own A/D writes may have flushed older entries meanwhile.
    for (const p of this.walkPages) this.watched.add(p);
    let entries = this.cache.get(page);
    if (!entries) {
      entries = [];
      this.cache.set(page, entries);
    }
    const phys = r.final.out as bigint;
    entries[slot] = phys & ~0xfffn;
    return { ok: true, phys: r.final.out };
  }
}
