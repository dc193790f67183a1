// Shared fast-check arbitraries for guest paging: controls for every mode, page-table sets built from per-level
// choices (not-present, table, leaf, stray bits, aliased tables) and accesses near the mapped addresses; reused by
// the nested-EPT properties. Must not: call the walker under test (table sets are plain data for models).
// SDM Vol. 3A 4.3–4.8.
import fc from 'fast-check';
import { guestLinear, type GuestLinear } from '../../../src/cpu/address.js';
import { Cr0, Cr4, Efer, Rflags } from '../../../src/cpu/state.js';
import type { LinearAccess, PagingControls, PagingMode } from '../../../src/cpu/paging/types.js';

/** Pages that may hold guest paging structures (below 4 GiB, so usable by 32-bit and PAE paging too). */
export const PAGING_TABLE_POOL: readonly bigint[] = [
  0x20_0000n, 0x20_1000n, 0x20_2000n, 0x20_3000n, 0x20_4000n, 0x20_5000n, 0x20_6000n, 0x20_7000n,
];

export interface PagingEntryChoice {
  readonly kind: 'not-present' | 'table' | 'leaf';
  readonly rw: boolean;
  readonly us: boolean;
  readonly pwt: boolean;
  readonly pcd: boolean;
  readonly accessed: boolean;
  readonly dirty: boolean;
  readonly global: boolean;
  readonly pat: boolean;
  readonly xd: boolean;
  readonly pkey: number;
  /** One stray bit (or none): reserved, ignored, frame or flag bits. */
  readonly stray: number | null;
  readonly tableSlot: number;
  /** Page number of a leaf's frame (aligned to the leaf's size when laid out). */
  readonly frame: bigint;
  /** A 'leaf' at level ≥ 4 (PS set there: reserved) only when true; otherwise the choice becomes a table. */
  readonly highLeaf: boolean;
  /** 32-bit 4-MiB PDE bits 21:13 (bit 21 reserved, 20:13 physical bits 39:32 under PSE-36). */
  readonly pse36Bits: number;
}

const mostly = (p: boolean, w = 4): fc.Arbitrary<boolean> =>
  fc.oneof({ weight: w, arbitrary: fc.constant(p) }, { weight: 1, arbitrary: fc.constant(!p) });

export const arbPagingEntryChoice: fc.Arbitrary<PagingEntryChoice> = fc.record({
  kind: fc.oneof(
    { weight: 1, arbitrary: fc.constant('not-present' as const) },
    { weight: 10, arbitrary: fc.constant('table' as const) },
    { weight: 4, arbitrary: fc.constant('leaf' as const) },
  ),
  rw: mostly(true),
  us: mostly(true),
  pwt: fc.boolean(),
  pcd: fc.boolean(),
  accessed: fc.boolean(),
  dirty: fc.boolean(),
  global: fc.boolean(),
  pat: fc.boolean(),
  xd: mostly(false),
  pkey: fc.integer({ min: 0, max: 15 }),
  stray: fc.oneof({ weight: 12, arbitrary: fc.constant(null) }, { weight: 1, arbitrary: fc.integer({ min: 1, max: 63 }) }),
  tableSlot: fc.integer({ min: 0, max: PAGING_TABLE_POOL.length - 1 }),
  // Mostly below 2^36 (valid for every MAXPHYADDR); sometimes up to 2^52, hitting reserved bits 51:M.
  frame: fc.oneof(
    { weight: 6, arbitrary: fc.bigInt({ min: 0n, max: (1n << 24n) - 1n }) },
    { weight: 1, arbitrary: fc.bigInt({ min: 0n, max: (1n << 40n) - 1n }) },
  ),
  highLeaf: mostly(false, 15),
  pse36Bits: fc.oneof({ weight: 2, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.integer({ min: 0, max: 511 }) }),
});

/** Guest page tables as data. `pdptes` are the PAE PDPTE registers (PAE mode only). */
export interface PagingTableSet {
  readonly mode: PagingMode;
  readonly entrySize: 4 | 8;
  readonly cr3: bigint;
  readonly pdptes: readonly bigint[] | undefined;
  readonly entries: ReadonlyArray<readonly [address: bigint, value: bigint]>;
}

export interface PagingPathSpec {
  readonly linear: bigint;
  readonly choices: readonly PagingEntryChoice[];
}

function topLevel(mode: PagingMode): number {
  return mode === '32bit' ? 2 : mode === 'pae' ? 3 : mode === '4level' ? 4 : mode === '5level' ? 5 : 0;
}

function indexOf(mode: PagingMode, level: number, linear: bigint): bigint {
  if (mode === '32bit') return (linear >> (level === 2 ? 22n : 12n)) & 0x3ffn;
  if (mode === 'pae' && level === 3) return (linear >> 30n) & 3n;
  return (linear >> BigInt(12 + 9 * (level - 1))) & 0x1ffn;
}

function flagsOf(c: PagingEntryChoice): bigint {
  return 1n | (c.rw ? 2n : 0n) | (c.us ? 4n : 0n) | (c.pwt ? 8n : 0n) | (c.pcd ? 0x10n : 0n) | (c.accessed ? 0x20n : 0n);
}

/**
 * Lay out paths (PAE: level 3 becomes the PDPTE registers, always valid as MOV to CR3 guarantees). A path follows
 * an entry an earlier path made when that entry references a table, and stops at anything else.
 */
export function layoutPagingTables(mode: PagingMode, cr3: bigint, pse: boolean, paths: readonly PagingPathSpec[]): PagingTableSet {
  const entrySize = mode === '32bit' ? 4 : 8;
  const map = new Map<bigint, bigint>();
  const pdptes: (bigint | undefined)[] = [undefined, undefined, undefined, undefined];
  const top = topLevel(mode);
  for (const p of paths) {
    let table = cr3;
    for (let level = top; level >= 1; level--) {
      const c = p.choices[top - level];
      if (c === undefined) break;
      if (mode === 'pae' && level === 3) {
        const i = Number(indexOf(mode, 3, p.linear));
        const existing = pdptes[i];
        if (existing === undefined) {
          pdptes[i] = c.kind === 'not-present' ? 0n : PAGING_TABLE_POOL[c.tableSlot]! | 1n | (c.pwt ? 8n : 0n) | (c.pcd ? 0x10n : 0n);
        }
        const v = pdptes[i]!;
        if ((v & 1n) === 0n) break;
        table = v & 0xffff_f000n;
        continue;
      }
      const addr = table + indexOf(mode, level, p.linear) * BigInt(entrySize);
      const existing = map.get(addr);
      const large = (e: bigint): boolean => level > 1 && (e & 0x80n) !== 0n && (mode !== '32bit' || pse);
      if (existing !== undefined) {
        if ((existing & 1n) === 0n || large(existing) || level === 1) break;
        table = existing & (mode === '32bit' ? 0xffff_f000n : 0x000f_ffff_ffff_f000n);
        continue;
      }
      const strayLimit = entrySize * 8;
      const stray = c.stray === null || c.stray >= strayLimit ? 0n : 1n << BigInt(c.stray);
      if (c.kind === 'not-present') {
        map.set(addr, ((c.frame << 12n) | stray | 0x40n) & ~1n & (mode === '32bit' ? 0xffff_ffffn : (1n << 64n) - 1n));
        break;
      }
      const xd = mode !== '32bit' && c.xd ? 1n << 63n : 0n;
      if ((c.kind === 'table' || (level >= 4 && !c.highLeaf)) && level > 1) {
        const next = PAGING_TABLE_POOL[c.tableSlot]!;
        map.set(addr, next | flagsOf(c) | xd | stray);
        table = next;
        continue;
      }
      let e = flagsOf(c) | (c.dirty ? 0x40n : 0n) | (c.global ? 0x100n : 0n) | xd | stray;
      if (level === 1) {
        e |= (c.frame << 12n) | (c.pat ? 0x80n : 0n);
        if (mode === '32bit') e &= 0xffff_ffffn;
      } else if (mode === '32bit') {
        // 4-MiB PDE: bits 31:22 and, under PSE-36, bits 20:13 = physical bits 39:32.
        e |= 0x80n | ((c.frame << 12n) & 0xffc0_0000n) | (BigInt(c.pse36Bits) << 13n) | (c.pat ? 0x1000n : 0n);
        e &= 0xffff_ffffn;
      } else {
        const shift = level === 3 ? 30n : 21n;
        e |= 0x80n | (((c.frame << 12n) >> shift) << shift) | (c.pat ? 0x1000n : 0n);
      }
      if (mode === '4level' || mode === '5level') e |= BigInt(c.pkey) << 59n;
      map.set(addr, e);
      break;
    }
  }
  return {
    mode,
    entrySize,
    cr3,
    pdptes: mode === 'pae' ? pdptes.map((v) => v ?? 0n) : undefined,
    entries: [...map.entries()],
  };
}

export const arbPagingMode: fc.Arbitrary<PagingMode> = fc.oneof(
  { weight: 1, arbitrary: fc.constant('none' as const) },
  { weight: 3, arbitrary: fc.constant('32bit' as const) },
  { weight: 3, arbitrary: fc.constant('pae' as const) },
  { weight: 4, arbitrary: fc.constant('4level' as const) },
  { weight: 3, arbitrary: fc.constant('5level' as const) },
);

/** Random linear addresses valid for the mode (32-bit, or canonical 48/57-bit). */
export function arbLinearFor(mode: PagingMode): fc.Arbitrary<bigint> {
  if (mode === 'none' || mode === '32bit' || mode === 'pae') return fc.bigInt({ min: 0n, max: 0xffff_ffffn });
  const w = mode === '4level' ? 48n : 57n;
  return fc.bigInt({ min: 0n, max: (1n << w) - 1n }).map((x) => BigInt.asUintN(64, BigInt.asIntN(Number(w), x)));
}

export interface ControlChoices {
  readonly wp: boolean;
  readonly pse: boolean;
  readonly pge: boolean;
  readonly smep: boolean;
  readonly smap: boolean;
  readonly pke: boolean;
  readonly nxe: boolean;
  readonly ac: boolean;
  readonly pkru: number;
  readonly maxPhysAddr: number;
  readonly gbPages: boolean;
  readonly pse36: boolean;
}

export const arbControlChoices: fc.Arbitrary<ControlChoices> = fc.record({
  wp: fc.boolean(),
  pse: mostly(true),
  pge: fc.boolean(),
  smep: fc.boolean(),
  smap: fc.boolean(),
  pke: fc.boolean(),
  nxe: mostly(true, 2),
  ac: fc.boolean(),
  pkru: fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 0xffff_ffff })),
  maxPhysAddr: fc.constantFrom(36, 40, 46, 52),
  gbPages: mostly(true),
  pse36: mostly(true),
});

export function pagingControls(mode: PagingMode, cr3: bigint, pdptes: readonly bigint[] | undefined, c: ControlChoices): PagingControls {
  const paging = mode !== 'none';
  const pae = mode === 'pae' || mode === '4level' || mode === '5level';
  const long = mode === '4level' || mode === '5level';
  return {
    cr0: Cr0.PE | Cr0.ET | (paging ? Cr0.PG : 0n) | (c.wp ? Cr0.WP : 0n),
    cr3,
    cr4: (pae ? Cr4.PAE : 0n) | (mode === '5level' ? Cr4.LA57 : 0n) | (c.pse ? Cr4.PSE : 0n) | (c.pge ? Cr4.PGE : 0n)
      | (c.smep ? Cr4.SMEP : 0n) | (c.smap ? Cr4.SMAP : 0n) | (c.pke ? Cr4.PKE : 0n),
    efer: (long ? Efer.LME | Efer.LMA : 0n) | (c.nxe ? Efer.NXE : 0n),
    rflags: 0x2n | (c.ac ? Rflags.AC : 0n),
    pkru: c.pkru,
    ...(pdptes ? { pdptes } : {}),
    maxPhysAddr: c.maxPhysAddr,
    gbPages: c.gbPages,
    pse36: c.pse36,
  };
}

export const arbLinearAccess: fc.Arbitrary<LinearAccess> = fc.record({
  kind: fc.constantFrom('read' as const, 'write' as const, 'rmw' as const, 'fetch' as const),
  mode: fc.constantFrom('user' as const, 'supervisor' as const, 'implicit-supervisor' as const),
}).map((a) => (a.kind === 'fetch' && a.mode === 'implicit-supervisor' ? { ...a, mode: 'supervisor' as const } : a));

/** A whole guest-paging scenario: controls, tables and a sequence of accesses near the mapped addresses. */
export interface PagingCase {
  readonly controls: PagingControls;
  readonly tables: PagingTableSet;
  readonly accesses: ReadonlyArray<{ readonly linear: GuestLinear; readonly access: LinearAccess }>;
}

export const arbPagingCase: fc.Arbitrary<PagingCase> = arbPagingMode.chain((mode) =>
  fc.record({
    ctl: arbControlChoices,
    cr3Slot: fc.integer({ min: 0, max: PAGING_TABLE_POOL.length - 1 }),
    paths: fc.array(fc.record({ linear: arbLinearFor(mode), choices: fc.array(arbPagingEntryChoice, { minLength: 5, maxLength: 5 }) }), {
      minLength: 1, maxLength: 4,
    }),
    picks: fc.array(
      fc.record({
        which: fc.nat(),
        granule: fc.oneof(
          { weight: 5, arbitrary: fc.constant(0x1000n) },
          { weight: 1, arbitrary: fc.constant(0x40_0000n) },
          { weight: 1, arbitrary: fc.constant(0x4000_0000n) },
        ),
        offset: fc.bigInt({ min: 0n, max: 0x3fff_ffffn }),
        fresh: fc.oneof({ weight: 6, arbitrary: fc.constant(null) }, { weight: 1, arbitrary: arbLinearFor(mode) }),
        access: arbLinearAccess,
      }),
      { minLength: 1, maxLength: 6 },
    ),
  }).map(({ ctl, cr3Slot, paths, picks }) => {
    const cr3 = PAGING_TABLE_POOL[cr3Slot]!;
    const tables = layoutPagingTables(mode, cr3, ctl.pse, paths);
    const controls = pagingControls(mode, cr3, tables.pdptes, ctl);
    const accesses = picks.map((p) => {
      const target = paths[p.which % paths.length]!.linear;
      const linear = p.fresh ?? ((target & ~(p.granule - 1n)) | (p.offset & (p.granule - 1n)));
      return { linear: guestLinear(linear), access: p.access };
    });
    return { controls, tables, accesses };
  }),
);
