// EPT02 as real EPT paging structures in host memory, filled lazily with composed leaves and kept coherent: each leaf
// remembers the EPT12 table pages its walk read (a host write there zaps it); INVEPT, VMCLEAR/VMPTRLD/VMXOFF and root
// eviction drop whole roots. Must not: walk EPT12, decide reflection, or let a zapped leaf reach the hardware walk.
// Reference: nested-vmx.md §8.6 (fill), §8.7 (write tracking, INVEPT, root cache), §8.8.
import type { Hpa, L1Gpa, L2Gpa } from '../../cpu/address.js';
import { HPA } from '../../cpu/address.js';
import { EptBit, eptEntryIsLeaf, eptEntryPresent, type EptLevel } from '../../cpu/ept/entry.js';
import { ept02 as ept02Handle, eptConfig, eptrtaOf } from '../../cpu/ept/eptp.js';
import { pageSizeBytes, type Ept, type EptAccess, type EptCapabilities, type EptPageSize } from '../../cpu/ept/types.js';
import type { PhysicalMemory } from '../../cpu/memory.js';
import { maskRange } from '../../cpu/u64.js';
import type { Ept02DropReason, Ept02Event, Ept02Leaf, Ept02LeafSpec, Ept02Role, Ept02ZapReason, HostPageAllocator } from './types.js';

const LEVEL_OF: Record<EptPageSize, 1 | 2 | 3> = { '4K': 1, '2M': 2, '1G': 3 };
const NON_LEAF_RIGHTS = EptBit.R | EptBit.W | EptBit.X | EptBit.XU;
const FRAME = maskRange(51, 12);

interface TableInfo {
  readonly level: EptLevel;
  /** Lowest L2 GPA the table translates. */
  readonly base: bigint;
}

/** One EPT02 root: its tables (host pages) and its leaves by "level:gpa". */
class Root {
  readonly tables = new Map<bigint, TableInfo>();
  readonly leaves = new Map<string, Ept02Leaf>();
  constructor(
    readonly key: string,
    readonly role: Ept02Role,
    readonly rootTable: Hpa,
    readonly levels: 4 | 5,
    readonly eptp02: bigint,
    readonly handle: Ept<L2Gpa, Hpa>,
  ) {}
}

export function roleKey(role: Ept02Role): string {
  return role.kind === 'shadow-on-ept'
    ? 'shadow-on-ept'
    : `ept12:${role.eptrta.toString(16)}:${role.walkLength}:${role.accessedDirty ? 1 : 0}:${role.modeBasedExecute ? 1 : 0}`;
}

/** The role of a root shadowing the EPT12 named by `eptp12` (already validated by the VM-entry checks). */
export function ept12Role(eptp12: bigint, modeBasedExecute: boolean): Ept02Role {
  return {
    kind: 'ept12',
    eptp12,
    eptrta: eptrtaOf(eptp12),
    walkLength: ((Number((eptp12 >> 3n) & 7n) + 1) === 5 ? 5 : 4),
    accessedDirty: (eptp12 & (1n << 6n)) !== 0n,
    modeBasedExecute,
  };
}

export type InstallResult = { readonly ok: true; readonly leaf: Ept02Leaf } | { readonly ok: false; readonly reason: 'out-of-pages' | 'gpa-beyond-walk' };

export interface Ept02ManagerOptions {
  readonly host: PhysicalMemory<Hpa>;
  readonly pages: HostPageAllocator;
  /** The hardware's EPT capabilities (EPT02 is walked by the model hardware). */
  readonly hostCaps: EptCapabilities;
  /** The hardware's choice for qualification bit 0 on read-modify-writes (must match the reference's). */
  readonly rmwSetsRead?: boolean;
  /** Cached roots (KVM: the current root and 3 previous ones). */
  readonly maxRoots?: number;
  readonly onEvent?: (e: Ept02Event) => void;
}

export class Ept02Manager {
  private readonly roots = new Map<string, Root>();
  /** Host page (number) of an EPT12 table → leaves whose composition read it: "root key|leaf key". */
  private readonly tracked = new Map<bigint, Set<string>>();
  private suspended = 0;
  private readonly maxRoots: number;

  constructor(private readonly opts: Ept02ManagerOptions) {
    this.maxRoots = opts.maxRoots ?? 4;
    opts.host.onWrite((address, length) => this.hostWrite(address, length));
  }

  /** Run `fn` without write tracking: L0's own EPT12 A/D updates only add rights and must not zap. */
  untracked<T>(fn: () => T): T {
    this.suspended++;
    try {
      return fn();
    } finally {
      this.suspended--;
    }
  }

  /** The root for `role`, created (and older roots evicted) as needed; undefined when host pages ran out. */
  root(role: Ept02Role): { eptp02: bigint; ept: Ept<L2Gpa, Hpa> } | undefined {
    const key = roleKey(role);
    let r = this.roots.get(key);
    if (r) {
      // Most recently used last (eviction takes the oldest).
      this.roots.delete(key);
      this.roots.set(key, r);
      return { eptp02: r.eptp02, ept: r.handle };
    }
    const table = this.opts.pages.alloc();
    if (table === undefined) return undefined;
    const caps = this.opts.hostCaps;
    const levels: 4 | 5 = role.kind === 'ept12' && role.walkLength === 5 && caps.walkLength5 ? 5 : caps.walkLength4 ? 4 : 5;
    const ad = role.kind === 'ept12' && role.accessedDirty && caps.accessedDirty;
    const eptp02 = (table as bigint) | 6n | (BigInt(levels - 1) << 3n) | (ad ? 1n << 6n : 0n);
    const h = ept02Handle({
      eptp: eptp02,
      config: eptConfig(caps, { modeBasedExecute: role.kind === 'ept12' && role.modeBasedExecute, rmwSetsRead: this.opts.rmwSetsRead ?? true }),
      tables: this.opts.host,
    });
    if (!h.ok) throw new Error(`turtles bug: EPTP02 0x${eptp02.toString(16)} rejected by the host: ${h.error.message}`);
    r = new Root(key, role, table, levels, eptp02, h.ept);
    r.tables.set((table as bigint) >> 12n, { level: levels, base: 0n });
    this.roots.set(key, r);
    this.emit({ kind: 'new-root', eptp02, role });
    while (this.roots.size > this.maxRoots) {
      const oldest = this.roots.values().next().value as Root;
      this.dropRoot(oldest, 'root-cache-evicted');
    }
    return { eptp02, ept: h.ept };
  }

  /** Drop every root matching `pred` (all of them when absent). */
  dropRoots(reason: Ept02DropReason, pred: (role: Ept02Role) => boolean = () => true): number {
    let n = 0;
    for (const r of [...this.roots.values()]) {
      if (!pred(r.role)) continue;
      this.dropRoot(r, reason);
      n++;
    }
    return n;
  }

  /** INVEPT single-context: roots shadowing an EPT12 with this EPTRTA (SDM 28.3.3.1; KVM frees the matching roots). */
  invalidateEptrta(eptp: bigint): number {
    const rta = eptrtaOf(eptp);
    return this.dropRoots('invept-single-context', (role) => role.kind === 'ept12' && role.eptrta === rta);
  }

  /** INVEPT all-context: every root shadowing an EPT12 (roots for vmcs12 without EPT are L0's, not tagged by EPTRTA). */
  invalidateAllEpt12(): number {
    return this.dropRoots('invept-all-context', (role) => role.kind === 'ept12');
  }

  /**
   * Install a composed leaf in the root for `role`. `tablePages` are the EPT12 table pages (L1 and host) the
   * composition read; a later write to any of them zaps the leaf.
   */
  install(role: Ept02Role, spec: Ept02LeafSpec, tablePages: { readonly l1: readonly L1Gpa[]; readonly host: readonly Hpa[] }, cause: { gpa: L2Gpa; access: EptAccess }): InstallResult {
    const rootInfo = this.root(role);
    if (!rootInfo) return { ok: false, reason: 'out-of-pages' };
    const r = this.roots.get(roleKey(role))!;
    const level = LEVEL_OF[spec.pageSize];
    const gpa = spec.gpa as bigint;
    if (gpa >> BigInt(12 + 9 * r.levels) !== 0n) return { ok: false, reason: 'gpa-beyond-walk' };
    const host = this.opts.host;
    let table = r.rootTable as bigint;
    for (let l = r.levels as EptLevel; l > level; l = (l - 1) as EptLevel) {
      const addr = HPA.of(table + indexAt(gpa, l) * 8n);
      const e = host.readU64(addr);
      if (eptEntryPresent(e, true) && !eptEntryIsLeaf(e, l)) {
        table = e & FRAME;
        continue;
      }
      if (eptEntryPresent(e, true)) this.zapAt(r, l as 1 | 2 | 3, gpa & ~(levelBytes(l) - 1n), 'split');
      const t = this.opts.pages.alloc();
      if (t === undefined) return { ok: false, reason: 'out-of-pages' };
      r.tables.set((t as bigint) >> 12n, { level: (l - 1) as EptLevel, base: gpa & ~(levelBytes(l) - 1n) });
      this.writeEntry(addr, (t as bigint) | NON_LEAF_RIGHTS);
      table = t as bigint;
    }
    const addr = HPA.of(table + indexAt(gpa, level) * 8n);
    const e = host.readU64(addr);
    if (eptEntryPresent(e, true)) {
      if (eptEntryIsLeaf(e, level)) this.zapAt(r, level, gpa, 'replaced');
      else this.freeSubtree(r, level, gpa, e & FRAME);
    }
    const mbec = r.role.kind === 'ept12' && r.role.modeBasedExecute;
    const p = spec.permissions;
    const entry = (spec.hpa as bigint) | (p.read ? EptBit.R : 0n) | (p.write ? EptBit.W : 0n) | (p.execute ? EptBit.X : 0n)
      | (mbec && p.userExecute ? EptBit.XU : 0n) | (BigInt(spec.memType) << EptBit.MEMTYPE_SHIFT) | (spec.ipat ? EptBit.IPAT : 0n)
      | (level > 1 ? EptBit.PS : 0n);
    this.writeEntry(addr, entry);
    const leaf: Ept02Leaf = {
      ...spec, eptp02: r.eptp02, role: r.role, level, entryAddress: addr,
      ept12TablePages: [...tablePages.l1], ept12TableHostPages: [...tablePages.host],
    };
    const key = leafKey(level, gpa);
    r.leaves.set(key, leaf);
    for (const hp of leaf.ept12TableHostPages) {
      const page = (hp as bigint) >> 12n;
      let s = this.tracked.get(page);
      if (!s) {
        s = new Set();
        this.tracked.set(page, s);
      }
      s.add(`${r.key}|${key}`);
    }
    this.emit({ kind: 'fill', leaf, cause });
    return { ok: true, leaf };
  }

  /** Every present EPT02 leaf, by root (oldest first) then L2 GPA. */
  entries(): Ept02Leaf[] {
    const out: Ept02Leaf[] = [];
    for (const r of this.roots.values()) out.push(...[...r.leaves.values()].sort((a, b) => (a.gpa < b.gpa ? -1 : a.gpa > b.gpa ? 1 : a.level - b.level)));
    return out;
  }

  /** The roots currently cached (EPTP02 and role), oldest first. */
  rootList(): { eptp02: bigint; role: Ept02Role; leaves: number }[] {
    return [...this.roots.values()].map((r) => ({ eptp02: r.eptp02, role: r.role, leaves: r.leaves.size }));
  }

  /** The hardware handle for a cached root, by EPTP02. */
  handleFor(eptp02: bigint): Ept<L2Gpa, Hpa> | undefined {
    for (const r of this.roots.values()) if (r.eptp02 === eptp02) return r.handle;
    return undefined;
  }

  /** Host pages holding EPT12 tables L0 currently shadows (write-tracked). */
  trackedHostPages(): bigint[] {
    return [...this.tracked.keys()].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  }

  /** Zap every leaf that maps host memory in [hpa, hpa + length) (L0 changed EPT01 there). */
  zapHostRange(hpa: bigint, length: bigint): number {
    let n = 0;
    for (const r of this.roots.values()) {
      for (const leaf of [...r.leaves.values()]) {
        const size = pageSizeBytes(leaf.pageSize);
        if ((leaf.hpa as bigint) < hpa + length && hpa < (leaf.hpa as bigint) + size) {
          this.zapAt(r, leaf.level, leaf.gpa as bigint, 'ept01-change');
          n++;
        }
      }
    }
    return n;
  }

  private hostWrite(address: Hpa, length: number): void {
    if (this.suspended > 0 || this.tracked.size === 0 || length <= 0) return;
    const first = (address as bigint) >> 12n;
    const last = ((address as bigint) + BigInt(length - 1)) >> 12n;
    for (let p = first; p <= last; p++) {
      const s = this.tracked.get(p);
      if (!s) continue;
      for (const id of [...s]) {
        const sep = id.indexOf('|');
        const r = this.roots.get(id.slice(0, sep));
        const leaf = r?.leaves.get(id.slice(sep + 1));
        if (r && leaf) this.zapAt(r, leaf.level, leaf.gpa as bigint, 'ept12-table-write');
        else s.delete(id);
      }
    }
  }

  private writeEntry(addr: Hpa, value: bigint): void {
    // EPT02 tables are L0's; writing them is never "an EPT12 write", so tracking is off.
    this.suspended++;
    try {
      const w = this.opts.host.writeU64(addr, value);
      if (!w.ok) throw new Error(`turtles bug: EPT02 table write failed: ${w.error.message}`);
    } finally {
      this.suspended--;
    }
  }

  private untrack(r: Root, key: string, leaf: Ept02Leaf): void {
    for (const hp of leaf.ept12TableHostPages) {
      const page = (hp as bigint) >> 12n;
      const s = this.tracked.get(page);
      if (!s) continue;
      s.delete(`${r.key}|${key}`);
      if (s.size === 0) this.tracked.delete(page);
    }
  }

  private zapAt(r: Root, level: 1 | 2 | 3, gpa: bigint, reason: Ept02ZapReason): void {
    const key = leafKey(level, gpa);
    const leaf = r.leaves.get(key);
    if (!leaf) return;
    this.writeEntry(leaf.entryAddress, 0n);
    r.leaves.delete(key);
    this.untrack(r, key, leaf);
    this.emit({ kind: 'zap', leaf, reason });
  }

  /** Replace a table at (level, gpa) by nothing: zap the leaves under it and free its tables. */
  private freeSubtree(r: Root, level: EptLevel, gpa: bigint, _table: bigint): void {
    const size = levelBytes(level);
    const base = gpa & ~(size - 1n);
    for (const leaf of [...r.leaves.values()]) {
      if ((leaf.gpa as bigint) >= base && (leaf.gpa as bigint) < base + size) this.zapAt(r, leaf.level, leaf.gpa as bigint, 'merged-into-large-page');
    }
    for (const [page, info] of [...r.tables]) {
      if (info.level < level && info.base >= base && info.base < base + size) {
        r.tables.delete(page);
        this.opts.pages.free(HPA.of(page << 12n));
      }
    }
  }

  private dropRoot(r: Root, reason: Ept02DropReason): void {
    for (const [key, leaf] of r.leaves) this.untrack(r, key, leaf);
    const leaves = r.leaves.size;
    r.leaves.clear();
    for (const page of r.tables.keys()) this.opts.pages.free(HPA.of(page << 12n));
    r.tables.clear();
    this.roots.delete(r.key);
    this.emit({ kind: 'drop-root', eptp02: r.eptp02, role: r.role, reason, leaves });
  }

  private emit(e: Ept02Event): void {
    this.opts.onEvent?.(e);
  }
}

function indexAt(gpa: bigint, level: number): bigint {
  return (gpa >> BigInt(12 + 9 * (level - 1))) & 0x1ffn;
}

function levelBytes(level: number): bigint {
  return 1n << BigInt(12 + 9 * (level - 1));
}

function leafKey(level: number, gpa: bigint): string {
  return `${level}:${gpa.toString(16)}`;
}
