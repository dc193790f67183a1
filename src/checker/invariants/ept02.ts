// EPT02 soundness at an L2 entry or exit: every present EPT02 leaf, read from the tables themselves, translates to
// EPT01(EPT12(gpa)) under the current EPT12 (or one L2 ran on since the last INVEPT) and EPT01, grants nothing outside
// EPT12 ∩ EPT01, is no larger than either page and has the profile's memory type. Must not: set A/D flags or trust
// L0's leaf records. Reference: nested-vmx.md §8.6–8.8; SDM 28.2.2–28.2.6, 28.3.3.
import type { Hpa, L1Gpa, L2Gpa, PhysicalAddress } from '../../cpu/address.js';
import { guestLinear, l1gpa } from '../../cpu/address.js';
import { EptBit, eptEntryIsLeaf, eptEntryPresent, type EptLevel } from '../../cpu/ept/entry.js';
import { walkEpt } from '../../cpu/ept/walker.js';
import type { Ept, EptAccess, EptPageSize, EptPermissions, EptTranslation } from '../../cpu/ept/types.js';
import type { QwordMemory } from '../../cpu/memory.js';
import type { L0Profile } from '../../nested/profile.js';
import { hexValue, type Divergence } from '../divergence.js';
import { checkerRule } from '../rules.js';

export interface Ept02CheckInput {
  /** Event (L1 step) of the L2 entry or exit. */
  readonly event: number;
  readonly profile: L0Profile;
  /** The EPT02 root vmcs02 runs L2 on (tables in host memory). */
  readonly ept02: Ept<L2Gpa, Hpa>;
  /** vmcs12's EPT (tables in L1 memory, read as L1 would), or null when vmcs12 does not enable EPT (L2 GPA = L1 GPA). */
  readonly ept12: Ept<L2Gpa, L1Gpa> | null;
  readonly ept01: Ept<L1Gpa, Hpa>;
  /** Earlier EPT12 states L2 may still see translations of (Ept12History.states); a leaf may agree with any. */
  readonly ept12Since?: readonly Ept<L2Gpa, L1Gpa>[];
  /** At most this many leaves are checked (in table order); default all. */
  readonly maxLeaves?: number;
}

export interface Ept02Leaf02 {
  readonly gpa: bigint;
  readonly level: 1 | 2 | 3;
  readonly entry: bigint;
  readonly permissions: EptPermissions;
}

const SIZE_OF_LEVEL: Record<1 | 2 | 3, EptPageSize> = { 1: '4K', 2: '2M', 3: '1G' };
const RANK: Record<EptPageSize, number> = { '4K': 1, '2M': 2, '1G': 3 };
const FRAME = ((1n << 52n) - 1n) & ~0xfffn;

/** The tables of `ept` read-only: the walker's A/D updates are dropped, so checking never changes L1 or host memory. */
function readOnly<In extends L2Gpa | L1Gpa, Out extends PhysicalAddress>(ept: Ept<In, Out>): Ept<In, Out> {
  const tables: QwordMemory<Out> = { readU64: (a) => ept.tables.readU64(a), writeU64: () => ({ ok: true }) };
  return { ...ept, tables };
}

/** A page reader: the 4 KiB at a page address as bytes, or null (then entries are read one by one). */
export type PageReader = (page: bigint) => Uint8Array | null;

/** The 512 entries of the table page at `table`: one bulk read when the tables are plain memory or a reader is given. */
function tableEntries<Out extends PhysicalAddress>(tables: QwordMemory<Out>, of: (a: bigint) => Out, table: bigint, reader?: PageReader): BigUint64Array {
  const q = new BigUint64Array(512);
  const bulk = reader ? reader(table) : 'read' in tables && typeof tables.read === 'function' ? (tables.read as (a: Out, n: number) => Uint8Array)(of(table), 4096) : null;
  if (bulk && bulk.length === 4096) {
    const v = new DataView(bulk.buffer, bulk.byteOffset, 4096);
    for (let i = 0; i < 512; i++) q[i] = v.getBigUint64(i * 8, true);
  } else {
    for (let i = 0; i < 512; i++) q[i] = tables.readU64(of(table + BigInt(i) * 8n));
  }
  return q;
}

/** Every present leaf of an EPT02 root, in ascending GPA order, with the rights accumulated down its path. */
export function ept02Leaves(ept: Ept<L2Gpa, Hpa>, limit = Number.POSITIVE_INFINITY): Ept02Leaf02[] {
  const out: Ept02Leaf02[] = [];
  const mbec = ept.config.modeBasedExecute;
  const visit = (table: bigint, level: EptLevel, base: bigint, rights: bigint): void => {
    const entries = tableEntries(ept.tables, (a) => ept.outSpace.of(a), table);
    for (let k = 0; k < 512 && out.length < limit; k++) {
      const entry = entries[k]!;
      if (!eptEntryPresent(entry, mbec)) continue;
      const gpa = base | (BigInt(k) << BigInt(12 + 9 * (level - 1)));
      const r = rights & entry;
      if (eptEntryIsLeaf(entry, level)) {
        if (level > 3) continue;
        out.push({
          gpa, level: level as 1 | 2 | 3, entry,
          permissions: { read: (r & EptBit.R) !== 0n, write: (r & EptBit.W) !== 0n, execute: (r & EptBit.X) !== 0n, userExecute: ((mbec ? r & EptBit.XU : r & EptBit.X)) !== 0n },
        });
      } else if (level > 1) {
        visit(entry & FRAME, (level - 1) as EptLevel, gpa, r);
      }
    }
  };
  visit(ept.root as bigint, ept.eptp.walkLength, 0n, EptBit.R | EptBit.W | EptBit.X | EptBit.XU);
  return out;
}

const PROBES: readonly EptAccess[] = [
  { type: 'read', cause: { kind: 'no-linear' } },
  { type: 'fetch', cause: { kind: 'final', linear: guestLinear(0n), rights: { user: false, writable: true, executeDisable: false } } },
  { type: 'fetch', cause: { kind: 'final', linear: guestLinear(0n), rights: { user: true, writable: true, executeDisable: false } } },
  { type: 'write', cause: { kind: 'no-linear' } },
];

/** A translation of `gpa` by `ept` whatever the rights are: the first of read, fetch, write that the walk permits. */
function translate<In extends L2Gpa | L1Gpa, Out extends PhysicalAddress>(ept: Ept<In, Out>, gpa: In): EptTranslation<In, Out> | 'not-mapped' {
  for (const a of PROBES) {
    const r = walkEpt(ept, gpa as never, a);
    if (r.ok) return r as EptTranslation<In, Out>;
    if (r.kind === 'misconfig') return 'not-mapped';
    // Not present anywhere on the path: no other access type can succeed.
    const last = r.path[r.path.length - 1];
    if (last !== undefined && !eptEntryPresent(last.entry, ept.config.modeBasedExecute)) return 'not-mapped';
  }
  return 'not-mapped';
}

function rightsText(p: EptPermissions): string {
  return `${p.read ? 'R' : '-'}${p.write ? 'W' : '-'}${p.execute ? 'X' : '-'}${p.userExecute ? 'U' : '-'}`;
}

/** The first soundness problem of one EPT02 leaf against (EPT12, EPT01), or null when the leaf is sound. */
function leafProblem(
  leaf: Ept02Leaf02, ept12: Ept<L2Gpa, L1Gpa> | null, ept01: Ept<L1Gpa, Hpa>, kvm: boolean, mbec: boolean,
): { rule: string; expected: string; actual: string; explanation: string; prov: { from: 'EPT12' | 'EPT01'; field: string; value: string }[] } | null {
  const size02 = SIZE_OF_LEVEL[leaf.level];
  const hpa02 = leaf.entry & FRAME & ~((1n << BigInt(12 + 9 * (leaf.level - 1))) - 1n);
  const t12 = ept12 ? translate(ept12, leaf.gpa as L2Gpa) : null;
  if (t12 === 'not-mapped') {
    return { rule: 'ept02.stale', expected: 'not mapped (EPT12 has no translation)', actual: hexValue(hpa02),
      explanation: `EPT02 still maps L2 GPA ${hexValue(leaf.gpa)} but EPT12 no longer does: L0 missed an EPT12 write or an INVEPT`, prov: [] };
  }
  const g1 = t12 ? (t12.out as bigint) : leaf.gpa;
  const t01 = translate(ept01, l1gpa(g1));
  const prov = [
    ...(t12 ? [{ from: 'EPT12' as const, field: `leaf ${t12.pageSize} ${rightsText(t12.permissions)}`, value: hexValue(g1) }] : []),
    ...(t01 !== 'not-mapped' ? [{ from: 'EPT01' as const, field: `leaf ${t01.pageSize} ${rightsText(t01.permissions)}`, value: hexValue(t01.out as bigint) }] : []),
  ];
  if (t01 === 'not-mapped') {
    return { rule: 'ept02.stale', expected: 'not mapped (EPT01 has no translation)', actual: hexValue(hpa02),
      explanation: `EPT02 maps L2 GPA ${hexValue(leaf.gpa)} to a host page, but EPT01 does not map its L1 GPA ${hexValue(g1)}`, prov };
  }
  if ((t01.out as bigint) !== hpa02) {
    return { rule: 'ept02.translation', expected: hexValue(t01.out as bigint), actual: hexValue(hpa02),
      explanation: `EPT02 maps L2 GPA ${hexValue(leaf.gpa)} to ${hexValue(hpa02)}; EPT01(EPT12(gpa)) = ${hexValue(t01.out as bigint)}`, prov };
  }
  const p12 = t12 ? t12.permissions : { read: true, write: true, execute: true, userExecute: true };
  const p01 = t01.permissions;
  const p = leaf.permissions;
  const extra = (p.read && !(p12.read && p01.read)) || (p.write && !(p12.write && p01.write))
    || (p.execute && !(p12.execute && p01.execute)) || (mbec && p.userExecute && !(p12.userExecute && p01.userExecute));
  if (extra) {
    const allowed = { read: p12.read && p01.read, write: p12.write && p01.write, execute: p12.execute && p01.execute, userExecute: p12.userExecute && p01.userExecute };
    return { rule: 'ept02.permissions', expected: `⊆ ${rightsText(allowed)}`, actual: rightsText(p),
      explanation: `EPT02 grants ${rightsText(p)} on L2 GPA ${hexValue(leaf.gpa)}; EPT12 ∩ EPT01 allow only ${rightsText(allowed)}`, prov };
  }
  if ((t12 && RANK[size02] > RANK[t12.pageSize]) || RANK[size02] > RANK[t01.pageSize]) {
    return { rule: 'ept02.page-size', expected: `≤ ${t12 ? `${t12.pageSize} (EPT12), ` : ''}${t01.pageSize} (EPT01)`, actual: size02,
      explanation: `EPT02 maps L2 GPA ${hexValue(leaf.gpa)} with a ${size02} page, larger than the page it composes`, prov };
  }
  // Memory type: sdm carries EPT12's (EPT01's without EPT12) so the hardware combines it with L2's PAT as a CPU
  // running EPT12 would; kvm uses L0's policy, WB with IPAT for RAM (N3, not observable in this model).
  const mt = Number((leaf.entry >> 3n) & 7n);
  const ipat = (leaf.entry & EptBit.IPAT) !== 0n;
  const src = t12 ?? t01;
  const wantMt = kvm ? 6 : src.memType;
  const wantIpat = kvm ? true : src.ipat;
  if (mt !== wantMt || ipat !== wantIpat) {
    return { rule: 'ept02.memory-type', expected: `type ${wantMt}${wantIpat ? ' IPAT' : ''}`, actual: `type ${mt}${ipat ? ' IPAT' : ''}`,
      explanation: `EPT02 leaf for L2 GPA ${hexValue(leaf.gpa)} has memory type ${mt}${ipat ? '+IPAT' : ''}; the ${kvm ? 'kvm' : 'sdm'} profile derives ${wantMt}${wantIpat ? '+IPAT' : ''}`, prov };
  }
  return null;
}

/**
 * All EPT02 soundness divergences of one L2 entry or exit (at most one per leaf). A leaf is sound when it agrees with
 * the current EPT12 or with one of `input.ept12Since` — the EPT12 states L2 ran on since L1's last INVEPT covering it
 * (SDM 28.3.3.4: until then a CPU may still use translations derived from them).
 */
export function checkEpt02(input: Ept02CheckInput): { divergences: Divergence[]; leaves: number } {
  const out: Divergence[] = [];
  const ept12 = input.ept12 ? readOnly(input.ept12) : null;
  const older = (input.ept12Since ?? []).map((e) => readOnly(e));
  const ept01 = readOnly(input.ept01);
  const kvm = input.profile.name === 'kvm';
  const mbec = input.ept02.config.modeBasedExecute;
  const leaves = ept02Leaves(input.ept02, input.maxLeaves);
  for (const leaf of leaves) {
    const p = leafProblem(leaf, ept12, ept01, kvm, mbec);
    if (p === null || older.some((e) => leafProblem(leaf, e, ept01, kvm, mbec) === null)) continue;
    out.push({
      kind: 'invariant', rule: p.rule, sdm: checkerRule(p.rule).sdm, event: input.event, level: 'L0', field: `EPT02 ${hexValue(leaf.gpa)}`,
      expected: p.expected, actual: p.actual, explanation: p.explanation, provenance: p.prov,
    });
  }
  return { divergences: out, leaves: leaves.length };
}

const AD_BITS = EptBit.A | EptBit.D;

/**
 * The EPT12 states L2 has run on since L1's last INVEPT, per EPTRTA: a snapshot of the EPT12 table pages (A/D flags
 * ignored) taken at each L2 entry when they changed, dropped by INVEPT single-context (matching EPTRTA) or all-context.
 */
export class Ept12History {
  private readonly byTag = new Map<bigint, { pages: Map<bigint, BigUint64Array> }[]>();

  /**
   * Snapshot `ept12` as L2 is about to run on it (`readPage` reads one L1 page in bulk, when the caller can); true when it
   * differs from the last state recorded for its EPTRTA.
   */
  record(ept12: Ept<L2Gpa, L1Gpa>, readPage?: PageReader): boolean {
    const tag = ept12.eptp.eptrta;
    const pages = new Map<bigint, BigUint64Array>();
    const visit = (table: bigint, level: EptLevel): void => {
      if (pages.has(table) || pages.size >= 512) return;
      const q = tableEntries(ept12.tables, (a) => ept12.outSpace.of(a), table, readPage);
      for (let i = 0; i < 512; i++) q[i] = q[i]! & ~AD_BITS;
      pages.set(table, q);
      if (level === 1) return;
      for (let i = 0; i < 512; i++) {
        const e = q[i]!;
        if (eptEntryPresent(e, ept12.config.modeBasedExecute) && !eptEntryIsLeaf(e, level)) visit(e & FRAME, (level - 1) as EptLevel);
      }
    };
    visit(ept12.root as bigint, ept12.eptp.walkLength);
    const list = this.byTag.get(tag) ?? [];
    const last = list[list.length - 1];
    if (last && samePages(last.pages, pages)) return false;
    list.push({ pages });
    // A run has few entries; keep the list bounded anyway (older states are the least likely to still be cached).
    if (list.length > 32) list.shift();
    this.byTag.set(tag, list);
    return true;
  }

  /** INVEPT: single-context for `eptp`'s EPTRTA, or all contexts. */
  invalidate(eptp: bigint | 'all'): void {
    if (eptp === 'all') this.byTag.clear();
    else this.byTag.delete(eptp & ((1n << 52n) - 1n) & ~0xfffn);
  }

  /** Views of the recorded states of the EPT12 `ept12` names, oldest first (its current state not included). */
  states(ept12: Ept<L2Gpa, L1Gpa>): Ept<L2Gpa, L1Gpa>[] {
    return (this.byTag.get(ept12.eptp.eptrta) ?? []).map((s) => {
      const tables: QwordMemory<L1Gpa> = {
        readU64: (a) => s.pages.get((a as bigint) & ~0xfffn)?.[Number(((a as bigint) & 0xfffn) >> 3n)] ?? 0n,
        writeU64: () => ({ ok: true }),
      };
      return { ...ept12, tables };
    });
  }
}

function samePages(a: Map<bigint, BigUint64Array>, b: Map<bigint, BigUint64Array>): boolean {
  if (a.size !== b.size) return false;
  for (const [k, v] of a) {
    const w = b.get(k);
    if (!w) return false;
    for (let i = 0; i < 512; i++) if (v[i] !== w[i]) return false;
  }
  return true;
}
