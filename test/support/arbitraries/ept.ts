// Shared fast-check arbitraries for EPT: capabilities, configurations, valid EPTPs, EPT table sets built from
// per-level choices (not-present, table, leaf, stray bits), and EPT accesses. Reused by the nested-EPT properties.
// Must not: call the walker under test; table sets are plain data (address → entry) so models can read them too.
// SDM Vol. 3C 28.2 (EPT), App. A.10; reference §8.
import fc from 'fast-check';
import type { GuestLinear } from '../../../src/cpu/address.js';
import { guestLinear } from '../../../src/cpu/address.js';
import type { EptAccess, EptAccessCause, EptAccessType, EptCapabilities, EptConfig } from '../../../src/cpu/ept/types.js';

/** Pages that may hold EPT tables in generated sets (all below 2^36, so valid for every generated MAXPHYADDR). */
export const EPT_TABLE_POOL: readonly bigint[] = [0x10_0000n, 0x10_1000n, 0x10_2000n, 0x10_3000n, 0x10_4000n, 0x10_5000n, 0x10_6000n];

export const arbEptCapabilities: fc.Arbitrary<EptCapabilities> = fc
  .record({
    maxPhysAddr: fc.constantFrom(36, 39, 46, 52),
    executeOnly: fc.boolean(),
    walkLength4: fc.boolean(),
    walkLength5: fc.boolean(),
    memTypeUc: fc.boolean(),
    memTypeWb: fc.boolean(),
    pages2M: fc.oneof({ weight: 4, arbitrary: fc.constant(true) }, { weight: 1, arbitrary: fc.constant(false) }),
    pages1G: fc.oneof({ weight: 3, arbitrary: fc.constant(true) }, { weight: 1, arbitrary: fc.constant(false) }),
    accessedDirty: fc.boolean(),
    advancedExitInfo: fc.boolean(),
    supervisorShadowStack: fc.boolean(),
  })
  // A processor supports at least one walk length and one EPTP memory type.
  .map((c) => ({ ...c, walkLength4: c.walkLength4 || !c.walkLength5, memTypeWb: c.memTypeWb || !c.memTypeUc }));

export function arbEptConfig(caps: EptCapabilities): fc.Arbitrary<EptConfig> {
  return fc.record({ caps: fc.constant(caps), modeBasedExecute: fc.boolean(), rmwSetsRead: fc.boolean() });
}

/** An EPTP valid for `caps` with the given root (memory type, walk length and A/D drawn from what caps allow). */
export function arbValidEptp(caps: EptCapabilities, root: bigint): fc.Arbitrary<bigint> {
  const memTypes: bigint[] = [...(caps.memTypeUc ? [0n] : []), ...(caps.memTypeWb ? [6n] : [])];
  const lengths: bigint[] = [...(caps.walkLength4 ? [3n] : []), ...(caps.walkLength5 ? [4n] : [])];
  return fc.record({
    mt: fc.constantFrom(...memTypes),
    pwl: fc.constantFrom(...lengths),
    ad: caps.accessedDirty ? fc.boolean() : fc.constant(false),
  }).map(({ mt, pwl, ad }) => root | mt | (pwl << 3n) | (ad ? 1n << 6n : 0n));
}

/** What to put in one EPT entry on a generated path. */
export interface EptEntryChoice {
  readonly kind: 'not-present' | 'table' | 'leaf';
  /** Bits 2:0. */
  readonly rwx: number;
  readonly xu: boolean;
  readonly memType: number;
  readonly ipat: boolean;
  readonly accessed: boolean;
  readonly dirty: boolean;
  /** One stray bit (or none) anywhere in 63:3: reserved, ignored, frame or flag bits. */
  readonly stray: number | null;
  readonly tableSlot: number;
  /** Output frame (page number) for a leaf, before alignment to the leaf's page size. */
  readonly frame: bigint;
  /** A 'leaf' at level 4 or 5 (bit 7 set: misconfigured) only when this is true; else it becomes a table. */
  readonly highLeaf: boolean;
}

export const arbEptEntryChoice: fc.Arbitrary<EptEntryChoice> = fc.record({
  kind: fc.oneof(
    { weight: 1, arbitrary: fc.constant('not-present' as const) },
    { weight: 10, arbitrary: fc.constant('table' as const) },
    { weight: 4, arbitrary: fc.constant('leaf' as const) },
  ),
  rwx: fc.oneof({ weight: 7, arbitrary: fc.constant(7) }, { weight: 3, arbitrary: fc.integer({ min: 0, max: 7 }) }),
  xu: fc.boolean(),
  memType: fc.oneof({ weight: 8, arbitrary: fc.constantFrom(0, 1, 4, 5, 6) }, { weight: 1, arbitrary: fc.constantFrom(2, 3, 7) }),
  ipat: fc.boolean(),
  accessed: fc.boolean(),
  dirty: fc.boolean(),
  stray: fc.oneof({ weight: 12, arbitrary: fc.constant(null) }, { weight: 1, arbitrary: fc.integer({ min: 3, max: 63 }) }),
  tableSlot: fc.integer({ min: 0, max: EPT_TABLE_POOL.length - 1 }),
  // Mostly below 2^36 (valid for every MAXPHYADDR); sometimes up to 2^52, hitting reserved bits 51:N.
  frame: fc.oneof(
    { weight: 6, arbitrary: fc.bigInt({ min: 0n, max: (1n << 24n) - 1n }) },
    { weight: 1, arbitrary: fc.bigInt({ min: 0n, max: (1n << 40n) - 1n }) },
  ),
  highLeaf: fc.oneof({ weight: 15, arbitrary: fc.constant(false) }, { weight: 1, arbitrary: fc.constant(true) }),
});

/** EPT tables as data: entry address → value (only entries ever written; everything else reads as 0). */
export interface EptTableSet {
  readonly levels: 4 | 5;
  readonly root: bigint;
  readonly entries: ReadonlyArray<readonly [address: bigint, value: bigint]>;
}

/** A path to build for one guest-physical address: choices from the top level down. */
export interface EptPathSpec {
  readonly gpa: bigint;
  readonly choices: readonly EptEntryChoice[];
}

/**
 * Lay out paths into entries. A path follows entries an earlier path created (shared tables) and stops where an
 * earlier path put something that is not a table reference. Table choices may point anywhere in the pool, so
 * tables can alias each other (as buggy or clever guests do).
 */
export function layoutEptTables(levels: 4 | 5, root: bigint, paths: readonly EptPathSpec[]): EptTableSet {
  const map = new Map<bigint, bigint>();
  for (const p of paths) {
    let table = root;
    for (let level: number = levels; level >= 1; level--) {
      const c = p.choices[levels - level];
      if (c === undefined) break;
      const addr = table + ((p.gpa >> BigInt(12 + 9 * (level - 1))) & 0x1ffn) * 8n;
      const existing = map.get(addr);
      if (existing !== undefined) {
        if ((existing & 7n) === 0n || level === 1 || (existing & 0x80n) !== 0n) break;
        table = existing & 0x000f_ffff_ffff_f000n;
        continue;
      }
      const stray = c.stray === null ? 0n : 1n << BigInt(c.stray);
      const flags = BigInt(c.rwx) | (c.xu ? 1n << 10n : 0n) | (c.accessed ? 1n << 8n : 0n);
      if (c.kind === 'not-present') {
        // Bits 2:0 and 10 clear, arbitrary others: a not-present entry is never misconfigured, whatever else it holds.
        map.set(addr, (stray | (c.frame << 12n) | (c.accessed ? 1n << 8n : 0n)) & ~0x407n);
        break;
      }
      if ((c.kind === 'table' || (level >= 4 && !c.highLeaf)) && level > 1) {
        const next = EPT_TABLE_POOL[c.tableSlot]!;
        map.set(addr, next | flags | stray);
        table = next;
        continue;
      }
      const shift = level === 3 ? 30n : level === 2 ? 21n : 12n;
      const frame = ((c.frame << 12n) >> shift) << shift;
      const leaf = frame | flags | (BigInt(c.memType) << 3n) | (c.ipat ? 1n << 6n : 0n) | (c.dirty ? 1n << 9n : 0n)
        | (level > 1 ? 1n << 7n : 0n) | stray;
      map.set(addr, leaf);
      break;
    }
  }
  return { levels, root, entries: [...map.entries()] };
}

export function arbEptPathSpec(gpa: fc.Arbitrary<bigint>): fc.Arbitrary<EptPathSpec> {
  return fc.record({ gpa, choices: fc.array(arbEptEntryChoice, { minLength: 5, maxLength: 5 }) });
}

/** Guest-physical addresses: mostly small, sometimes anywhere below 2^52 (beyond a 4-level walk's 48 bits). */
export const arbGpa: fc.Arbitrary<bigint> = fc.oneof(
  { weight: 14, arbitrary: fc.bigInt({ min: 0n, max: (1n << 40n) - 1n }) },
  { weight: 5, arbitrary: fc.bigInt({ min: 0n, max: (1n << 48n) - 1n }) },
  { weight: 1, arbitrary: fc.bigInt({ min: 0n, max: (1n << 52n) - 1n }) },
);

export const arbLinearRights = fc.record({ user: fc.boolean(), writable: fc.boolean(), executeDisable: fc.boolean() });

export const arbEptAccessCause: fc.Arbitrary<EptAccessCause> = fc.oneof(
  fc.constant({ kind: 'no-linear' as const }),
  fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }).map((l) => ({ kind: 'paging-structure' as const, linear: guestLinear(l) })),
  fc.record({ l: fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), rights: arbLinearRights })
    .map(({ l, rights }) => ({ kind: 'final' as const, linear: guestLinear(l) as GuestLinear, rights })),
);

export const arbEptAccessType: fc.Arbitrary<EptAccessType> = fc.constantFrom('read', 'write', 'rmw', 'fetch');

export const arbEptAccess: fc.Arbitrary<EptAccess> = fc
  .record({ type: arbEptAccessType, cause: arbEptAccessCause, nmiUnblocking: fc.boolean() })
  // Instruction fetches are always accesses to the final translation of a linear address.
  .map((a) => (a.type === 'fetch' && a.cause.kind !== 'final'
    ? { ...a, cause: { kind: 'final' as const, linear: guestLinear(0n), rights: { user: false, writable: true, executeDisable: false } } }
    : a));

/** A whole EPT scenario: capabilities, configuration, EPTP, tables and a sequence of accesses. */
export interface EptCase {
  readonly config: EptConfig;
  readonly eptp: bigint;
  readonly tables: EptTableSet;
  readonly accesses: ReadonlyArray<{ readonly gpa: bigint; readonly access: EptAccess }>;
}

export const arbEptCase: fc.Arbitrary<EptCase> = arbEptCapabilities.chain((caps) =>
  fc.record({
    config: arbEptConfig(caps),
    eptp: arbValidEptp(caps, EPT_TABLE_POOL[0]!),
    paths: fc.array(arbEptPathSpec(arbGpa), { minLength: 1, maxLength: 4 }),
    picks: fc.array(
      fc.record({
        which: fc.nat(),
        granule: fc.oneof(
          { weight: 5, arbitrary: fc.constant(0x1000n) },
          { weight: 1, arbitrary: fc.constant(0x20_0000n) },
          { weight: 1, arbitrary: fc.constant(0x4000_0000n) },
        ),
        offset: fc.bigInt({ min: 0n, max: 0x3fff_ffffn }),
        fresh: fc.oneof({ weight: 5, arbitrary: fc.constant(null) }, { weight: 1, arbitrary: arbGpa }),
        access: arbEptAccess,
      }),
      { minLength: 1, maxLength: 6 },
    ),
  }).map(({ config, eptp, paths, picks }) => {
    const levels = (Number((eptp >> 3n) & 7n) + 1) as 4 | 5;
    const tables = layoutEptTables(levels, EPT_TABLE_POOL[0]!, paths);
    const accesses = picks.map((p) => {
      // Mostly in the same 4-KiB, 2-MiB or 1-GiB region as a generated path's address, sometimes anywhere.
      const target = paths[p.which % paths.length]!.gpa;
      const gpa = p.fresh ?? ((target & ~(p.granule - 1n)) | (p.offset & (p.granule - 1n)));
      return { gpa, access: p.access };
    });
    return { config, eptp, tables, accesses };
  }),
);
