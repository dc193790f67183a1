// L1's EPT12 tables: the initial build (EptTableBuilder into a staging copy, written to L1 memory in one piece) and
// later changes made the way an L1 hypervisor makes them, with reads and writes of its own memory through L1Machine
// (so hardware-set accessed/dirty flags survive). Must not: invalidate anything (INVEPT is the caller's action).
// SDM Vol. 3C 28.2.2 (entry formats), 24.6.11 (EPTP); reference §8.1–8.2.
import { L1_GPA, L2_GPA, type L1Gpa, type L2Gpa } from '../address.js';
import { EptTableBuilder } from '../ept/builder.js';
import { EptBit } from '../ept/entry.js';
import type { EptPageSize } from '../ept/types.js';
import { PhysicalMemory } from '../memory.js';
import { maskRange } from '../u64.js';
import type { L1Machine } from './machine.js';

const FRAME = maskRange(51, 12);
const LEVEL_OF: Record<EptPageSize, 1 | 2 | 3> = { '4K': 1, '2M': 2, '1G': 3 };
const NON_LEAF_RIGHTS = EptBit.R | EptBit.W | EptBit.X | EptBit.XU;

export interface EptLeafRights {
  readonly read?: boolean;
  readonly write?: boolean;
  readonly execute?: boolean;
  readonly memType?: number;
}

/** A leaf entry for `l1` with the given rights (execute also sets XU, as the builder does). */
export function eptLeaf(l1: bigint, level: 1 | 2 | 3, r: EptLeafRights): bigint {
  let e = l1 | (r.read ?? true ? EptBit.R : 0n) | (r.write ?? true ? EptBit.W : 0n) | (r.execute ?? true ? EptBit.X | EptBit.XU : 0n)
    | (BigInt(r.memType ?? 6) << EptBit.MEMTYPE_SHIFT);
  if (level > 1) e |= EptBit.PS;
  return e;
}

export interface Ept12Mapping4Build {
  readonly l2: bigint;
  readonly l1: bigint;
  readonly pageSize: EptPageSize;
  readonly rights: EptLeafRights;
}

/**
 * Build EPT12 for `mappings` into a staging memory (the first table is the root, at `base`); returns the table
 * bytes to write to L1 memory at `base`, the EPTP and the number of table pages used. Mappings that conflict
 * with an earlier one or do not fit are skipped (reported in `skipped`), as an L1 would refuse them.
 */
export function buildEpt12(base: bigint, pages: number, levels: 4 | 5, accessedDirty: boolean, mappings: readonly Ept12Mapping4Build[]): {
  readonly bytes: Uint8Array;
  readonly eptp: bigint;
  readonly tablesUsed: number;
  readonly skipped: number;
} {
  const staging = new PhysicalMemory<L1Gpa>({ space: 'L1Gpa', maxPages: pages + 1 });
  const b = new EptTableBuilder<L2Gpa, L1Gpa>({ memory: staging, inSpace: L2_GPA, outSpace: L1_GPA, tableArea: { base, pages }, levels });
  let skipped = 0;
  for (const m of mappings) {
    const r = m.rights;
    const res = b.map(L2_GPA.of(m.l2), L1_GPA.of(m.l1), {
      pageSize: m.pageSize, read: r.read ?? true, write: r.write ?? true, execute: r.execute ?? true, userExecute: r.execute ?? true,
      ...(r.memType !== undefined ? { memType: r.memType } : {}),
    });
    if (!res.ok) skipped++;
  }
  const used = b.tablesUsed;
  return { bytes: staging.read(L1_GPA.of(base), used * 4096), eptp: b.eptp({ accessedDirty }), tablesUsed: used, skipped };
}

/**
 * Changes to EPT12 made through L1's own memory accesses. Tables are found by walking from the root; missing ones
 * are allocated from the table area after the initial build; a large page in the way is split into a table of
 * next-size leaves with the same rights (written as one 4-KiB block).
 */
export class Ept12Editor {
  private nextTable: bigint;

  constructor(
    private readonly m: L1Machine,
    private readonly root: bigint,
    private readonly levels: 4 | 5,
    firstFree: bigint,
    private readonly limit: bigint,
  ) {
    this.nextTable = firstFree;
  }

  /** Map the page of `l2` (aligned to `pageSize`) to `l1`; false when no table page is left or a leaf blocks it. */
  map(l2: bigint, l1: bigint, pageSize: EptPageSize, rights: EptLeafRights): boolean {
    const level = LEVEL_OF[pageSize];
    const size = 1n << BigInt(12 + 9 * (level - 1));
    const at = this.entryFor(l2 & ~(size - 1n), level, true);
    if (at === undefined) return false;
    this.m.writeMemory(L1_GPA.of(at), 8, eptLeaf(l1 & ~(size - 1n) & FRAME, level, rights));
    return true;
  }

  /** Rewrite the R/W/X (and XU) bits of the leaf mapping `l2`; false when `l2` is not mapped. */
  protect(l2: bigint, read: boolean, write: boolean, execute: boolean): boolean {
    const leaf = this.findLeaf(l2);
    if (!leaf) return false;
    const rights = (read ? EptBit.R : 0n) | (write ? EptBit.W : 0n) | (execute ? EptBit.X | EptBit.XU : 0n);
    const e = (leaf.entry & ~(EptBit.R | EptBit.W | EptBit.X | EptBit.XU)) | rights;
    if (e !== leaf.entry) this.m.writeMemory(L1_GPA.of(leaf.address), 8, e);
    return true;
  }

  /** Clear the leaf mapping `l2`; false when it is not mapped. */
  unmap(l2: bigint): boolean {
    const leaf = this.findLeaf(l2);
    if (!leaf) return false;
    this.m.writeMemory(L1_GPA.of(leaf.address), 8, 0n);
    return true;
  }

  private read(addr: bigint): bigint {
    return this.m.readMemory(L1_GPA.of(addr), 8);
  }

  private static present(e: bigint): boolean {
    return (e & 7n) !== 0n || (e & EptBit.XU) !== 0n;
  }

  private static index(gpa: bigint, level: number): bigint {
    return (gpa >> BigInt(12 + 9 * (level - 1))) & 0x1ffn;
  }

  /** The leaf entry (any level) translating `l2`, if the walk reaches one (a leaf without rights but with a frame
   * counts: L1 keeps the mapping and only withheld the rights). */
  private findLeaf(l2: bigint): { address: bigint; entry: bigint } | undefined {
    let table = this.root;
    for (let level: number = this.levels; level >= 1; level--) {
      const address = table + Ept12Editor.index(l2, level) * 8n;
      const e = this.read(address);
      const leaf = level === 1 || ((level === 2 || level === 3) && (e & EptBit.PS) !== 0n);
      if (leaf && (e & FRAME) !== 0n) return { address, entry: e };
      if (!Ept12Editor.present(e)) return undefined;
      if (leaf) return { address, entry: e };
      table = e & FRAME;
    }
    return undefined;
  }

  /** Address of the level-`level` entry for `l2`, creating tables (and splitting large pages) above it. */
  private entryFor(l2: bigint, level: 1 | 2 | 3, create: boolean): bigint | undefined {
    let table = this.root;
    for (let l: number = this.levels; l > level; l--) {
      const address = table + Ept12Editor.index(l2, l) * 8n;
      const e = this.read(address);
      if (!Ept12Editor.present(e)) {
        if (!create) return undefined;
        const t = this.alloc();
        if (t === undefined) return undefined;
        // Zero the new table first, as an L1 must: the page may hold anything.
        this.m.writeBytes(L1_GPA.of(t), new Uint8Array(4096));
        this.m.writeMemory(L1_GPA.of(address), 8, t | NON_LEAF_RIGHTS);
        table = t;
      } else if ((l === 2 || l === 3) && (e & EptBit.PS) !== 0n) {
        if (!create) return undefined;
        const t = this.split(e, l as 2 | 3);
        if (t === undefined) return undefined;
        this.m.writeMemory(L1_GPA.of(address), 8, t | NON_LEAF_RIGHTS);
        table = t;
      } else {
        table = e & FRAME;
      }
    }
    return table + Ept12Editor.index(l2, level) * 8n;
  }

  /** A new table holding the large leaf `e` (at `level`) as 512 leaves of the next size; returns its address. */
  private split(e: bigint, level: 2 | 3): bigint | undefined {
    const t = this.alloc();
    if (t === undefined) return undefined;
    const child = level - 1;
    const step = 1n << BigInt(12 + 9 * (child - 1));
    const frame = e & FRAME & ~((1n << BigInt(12 + 9 * (level - 1))) - 1n);
    const attrs = e & ~FRAME & ~EptBit.PS & ~(EptBit.A | EptBit.D);
    const bytes = new Uint8Array(4096);
    const view = new DataView(bytes.buffer);
    for (let i = 0; i < 512; i++) {
      const leaf = (frame + BigInt(i) * step) | attrs | (child > 1 ? EptBit.PS : 0n);
      view.setBigUint64(i * 8, leaf, true);
    }
    this.m.writeBytes(L1_GPA.of(t), bytes);
    return t;
  }

  /** The next unused table page, or undefined when the area is used up. */
  private alloc(): bigint | undefined {
    if (this.nextTable >= this.limit) return undefined;
    const t = this.nextTable;
    this.nextTable += 0x1000n;
    return t;
  }
}
