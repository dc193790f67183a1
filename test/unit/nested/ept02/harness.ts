// Test harness for nested EPT: one EPT12 (tables in a reference L1 memory and, through EPT01, in host memory), a
// generated EPT01 with mixed page sizes, rights and holes, L0's EPT02 manager, and a "hardware" that walks EPT02 and
// lets L0 fill it on violations — next to the reference walk of EPT12 followed by L1 memory (EPT01).
// Must not: be imported by src/; it asserts nothing itself. Reference: nested-vmx.md §8.6, §9.2 P-EPT-*.
import fc from 'fast-check';
import { HPA, L1_GPA, L2_GPA, type Hpa, type L1Gpa, type L2Gpa } from '../../../../src/cpu/address.js';
import { EptTableBuilder } from '../../../../src/cpu/ept/builder.js';
import { ept01 as ept01Handle, ept12 as ept12Handle, eptConfig } from '../../../../src/cpu/ept/eptp.js';
import { walkEpt } from '../../../../src/cpu/ept/walker.js';
import type { Ept, EptAccess, EptCapabilities, EptConfig, EptPageSize } from '../../../../src/cpu/ept/types.js';
import { PhysicalMemory } from '../../../../src/cpu/memory.js';
import {
  Ept02Manager, HostPagePool, L1MemoryView, auditEpt02, ept12Role, fillEpt02, readOnlyEpt, type Ept02AuditIssue, type Ept02FillContext,
  type Ept02Role,
} from '../../../../src/nested/ept02/index.js';
import type { L0Profile } from '../../../../src/nested/profile.js';
import type { EptCase, EptTableSet } from '../../../support/arbitraries/ept.js';

/** Slot kinds for the 64 GiB of L1 space the generated EPT12s reach (almost always). */
export type SlotKind = '1G' | '2M' | 'hole';

export interface Ept01Spec {
  /** Kind of each 1-GiB slot of L1 [0, 64 GiB); slot 0 (EPT12 tables) is always split and writable. */
  readonly slots: readonly SlotKind[];
  /** Seeds the rights and the 4-KiB splits. */
  readonly seed: number;
}

export const arbEpt01Spec: fc.Arbitrary<Ept01Spec> = fc.record({
  slots: fc.array(
    fc.oneof({ weight: 8, arbitrary: fc.constant<SlotKind>('1G') }, { weight: 1, arbitrary: fc.constant<SlotKind>('2M') }, { weight: 1, arbitrary: fc.constant<SlotKind>('hole') }),
    { minLength: 64, maxLength: 64 },
  ),
  seed: fc.integer({ min: 0, max: 0x7fff_ffff }),
});

function mix(seed: number, n: number): number {
  let x = (seed ^ Math.imul(n + 0x9e37, 0x85eb_ca6b)) >>> 0;
  x = Math.imul(x ^ (x >>> 16), 0x7feb_352d) >>> 0;
  x = Math.imul(x ^ (x >>> 15), 0x846c_a68b) >>> 0;
  return (x ^ (x >>> 16)) >>> 0;
}

function rights(seed: number, n: number): { read: boolean; write: boolean; execute: boolean } {
  const r = mix(seed, n) % 20;
  if (r < 16) return { read: true, write: true, execute: true };
  if (r === 16) return { read: true, write: false, execute: false };
  if (r === 17) return { read: true, write: false, execute: true };
  if (r === 18) return { read: true, write: true, execute: false };
  return { read: false, write: false, execute: false }; // a hole
}

const HOST_EPT01_TABLES = 0x1000_0000n;
const HOST_POOL = 0x2000_0000n;
const HOST_RAM = 1n << 37n;
const HOST_SPLIT = 1n << 36n;
const HOST_FORCED = 0x3000_0000n;

/** The capabilities of the "hardware" for a generated L1 capability set (see the property file for why). */
export function hostCapsFor(caps: EptCapabilities, config: EptConfig): EptCapabilities {
  return {
    ...caps,
    maxPhysAddr: 46, memTypeWb: true, walkLength4: true, pages2M: true, pages1G: true, executeOnly: true, accessedDirty: true,
    advancedExitInfo: caps.advancedExitInfo || config.modeBasedExecute,
  };
}

export interface NestedEptFixture {
  readonly host: PhysicalMemory<Hpa>;
  readonly l1Ref: PhysicalMemory<L1Gpa>;
  readonly l1View: L1MemoryView;
  readonly ept01: Ept<L1Gpa, Hpa>;
  readonly ept12Ref: Ept<L2Gpa, L1Gpa>;
  readonly ept12Nested: Ept<L2Gpa, L1Gpa>;
  readonly manager: Ept02Manager;
  readonly role: Ept02Role;
  readonly hostCaps: EptCapabilities;
  readonly profile: L0Profile;
  readonly fills: number[];
}

export type Outcome =
  | { readonly kind: 'hpa'; readonly hpa: bigint }
  | { readonly kind: 'exit'; readonly reason: 48 | 49; readonly qualification: bigint; readonly gpa: bigint }
  | { readonly kind: 'l0-internal' };

/**
 * L1 pages the reference's walks of the case's accesses read (EPT12 tables), over the case's tables and over each
 * variant (entries written on top of them, e.g. a later change), and the L1 addresses those walks produce.
 */
export function touchedByWalks(c: EptCase, variants: readonly (readonly (readonly [bigint, bigint])[])[] = []): { tables: Set<bigint>; data: bigint[] } {
  const tables = new Set<bigint>(c.tables.entries.map(([a]) => a >> 12n));
  const data: bigint[] = [];
  for (const variant of [[], ...variants]) {
    const mem = new PhysicalMemory<L1Gpa>({ space: 'L1Gpa' });
    for (const [a, v] of [...c.tables.entries, ...variant]) {
      mem.writeU64(L1_GPA.of(a), v);
      tables.add(a >> 12n);
    }
    const h = ept12Handle({ eptp: c.eptp, config: c.config, tables: mem });
    if (!h.ok) continue;
    for (const { gpa, access } of c.accesses) {
      const t = walkEpt(readOnlyEpt(h.ept), L2_GPA.of(gpa), access);
      for (const step of t.path) tables.add((step.address as bigint) >> 12n);
      if (t.ok) data.push(t.out as bigint);
    }
  }
  return { tables, data };
}

/**
 * Build EPT01 from the spec around what the EPT12 walks touch, write the EPT12 tables to both memories, set up EPT02.
 * '1G' slots map the whole GiB; '2M' slots map only the 2-MiB regions holding data the walks reach (as a 2-MiB page or
 * split into 4-KiB pages), so other accesses there are L0-internal; every EPT12 table page is mapped RWX.
 */
export function buildFixture(
  c: EptCase, spec: Ept01Spec, profile: L0Profile, tracking: 'non-leaf' | 'all-levels' = 'non-leaf',
  variants: readonly (readonly (readonly [bigint, bigint])[])[] = [],
): NestedEptFixture | string {
  const host = new PhysicalMemory<Hpa>({ space: 'Hpa', maxPages: 200_000 });
  const hostCaps = hostCapsFor(c.config.caps, c.config);
  const b = new EptTableBuilder<L1Gpa, Hpa>({ memory: host, inSpace: L1_GPA, outSpace: HPA, tableArea: { base: HOST_EPT01_TABLES, pages: 4096 } });
  const map = (l1: bigint, h: bigint, size: EptPageSize, r: { read: boolean; write: boolean; execute: boolean }) => {
    if (!r.read && !r.write && !r.execute) return;
    const m = b.map(L1_GPA.of(l1), HPA.of(h), { pageSize: size, ...r });
    if (!m.ok) throw new Error(m.error.message);
  };
  const touched = touchedByWalks(c, variants);
  const tablePages = touched.tables;
  // L0 can back L1 memory only below 2^48 with a 4-level EPT01: a case with EPT12 tables above that is out of scope.
  if ([...tablePages].some((p) => p >> 36n !== 0n)) return 'EPT12 tables beyond the 4-level EPT01';
  const regions = new Set<bigint>([...touched.data.map((a) => a >> 21n), ...[...tablePages].map((p) => p >> 9n)]);
  const RWX = { read: true, write: true, execute: true };
  spec.slots.forEach((kind, s) => {
    const base = BigInt(s) << 30n;
    const hasTables = [...tablePages].some((p) => p >> 18n === BigInt(s));
    const k: SlotKind = hasTables ? '2M' : kind;
    if (k === 'hole') return;
    if (k === '1G') {
      const r = rights(spec.seed, s);
      map(base, HOST_RAM + base, '1G', r.read || r.write || r.execute ? r : RWX);
      return;
    }
    for (const region of [...regions].filter((r) => r >> 9n === BigInt(s)).sort((x, y) => (x < y ? -1 : 1))) {
      const i = Number(region & 511n);
      const l1 = region << 21n;
      const withTables = [...tablePages].some((p) => p >> 9n === region);
      if (!withTables && mix(spec.seed, s * 1000 + i) % 3 !== 0) {
        map(l1, HOST_RAM + base + (BigInt((i * 7) % 512) << 21n), '2M', rights(spec.seed, s * 512 + i));
        continue;
      }
      for (let j = 0; j < 512; j++) {
        const a = l1 + (BigInt(j) << 12n);
        const page = a >> 12n;
        const wanted = tablePages.has(page) || touched.data.some((d) => d >> 12n === page);
        if (!wanted) continue;
        const hostPage = HOST_SPLIT + (BigInt(s * 512 + i) << 21n) + (BigInt((j * 13) % 512) << 12n);
        // EPT12 table pages must be RW-mapped: L0 reads them and sets A/D there.
        map(a, hostPage, '4K', tablePages.has(page) ? RWX : rights(spec.seed, 100_000 + s * 262_144 + i * 512 + j));
      }
    }
  });
  // Table pages beyond the 64 GiB the slots cover.
  let extra = 0n;
  for (const p of [...tablePages].sort((x, y) => (x < y ? -1 : 1))) {
    if (p >> 18n < 64n || p >> 36n !== 0n) continue;
    map(p << 12n, HOST_FORCED + (extra++ << 12n), '4K', RWX);
  }
  const h01 = ept01Handle({ eptp: b.eptp({ memType: 6 }), config: eptConfig(hostCaps), tables: host });
  if (!h01.ok) return h01.error.message;
  const ept01 = h01.ept;
  const l1Ref = new PhysicalMemory<L1Gpa>({ space: 'L1Gpa' });
  const l1View = new L1MemoryView(host, () => ept01);
  writeTables(c.tables, l1Ref, l1View);
  const r12 = ept12Handle({ eptp: c.eptp, config: c.config, tables: l1Ref });
  const n12 = ept12Handle({ eptp: c.eptp, config: c.config, tables: l1View });
  if (!r12.ok || !n12.ok) return 'EPTP12 invalid';
  const fills: number[] = [];
  const manager = new Ept02Manager({
    host, pages: new HostPagePool(host, { base: HOST_POOL, pages: 16_384 }), hostCaps, rmwSetsRead: c.config.rmwSetsRead,
    onEvent: (e) => {
      if (e.kind === 'fill') fills.push(0);
    },
  });
  const fixture = {
    host, l1Ref, l1View, ept01, ept12Ref: r12.ept, ept12Nested: n12.ept, manager, role: ept12Role(c.eptp, c.config.modeBasedExecute),
    hostCaps, profile, fills,
  };
  trackingOf.set(fixture, tracking);
  return fixture;
}

const trackingOf = new WeakMap<object, 'non-leaf' | 'all-levels'>();

export function writeTables(t: EptTableSet, l1Ref: PhysicalMemory<L1Gpa>, l1View: L1MemoryView): void {
  for (const [addr, value] of t.entries) writeEntry(addr, value, l1Ref, l1View);
}

export function writeEntry(addr: bigint, value: bigint, l1Ref: PhysicalMemory<L1Gpa>, l1View: L1MemoryView): void {
  const r = l1Ref.writeU64(L1_GPA.of(addr), value);
  if (!r.ok) throw new Error(r.error.message);
  const w = l1View.writeU64(L1_GPA.of(addr), value);
  if (!w.ok) throw new Error(w.error.message);
}

function writeLike(a: EptAccess, ad: boolean): boolean {
  return a.type === 'write' || a.type === 'rmw' || (ad && a.cause.kind === 'paging-structure');
}

/** The reference: walk EPT12 (setting A/D in the reference memory), then L0's EPT01 for the L1 address. */
export function referenceOutcome(f: NestedEptFixture, gpa: bigint, access: EptAccess): Outcome {
  const t = walkEpt(f.ept12Ref, L2_GPA.of(gpa), access);
  if (!t.ok) return t.kind === 'violation' ? { kind: 'exit', reason: 48, qualification: t.qualification, gpa } : { kind: 'exit', reason: 49, qualification: 0n, gpa };
  const type = access.type === 'fetch' ? 'fetch' : writeLike(access, f.ept12Ref.eptp.accessedDirty) ? 'write' : 'read';
  const cause = access.type === 'fetch' ? access.cause : { kind: 'no-linear' as const };
  const t01 = walkEpt(readOnlyEpt(f.ept01), t.out, { type, cause });
  return t01.ok ? { kind: 'hpa', hpa: t01.out as bigint } : { kind: 'l0-internal' };
}

/** The nested machine's view: the hardware walks EPT02; on a violation L0 fills (or synthesizes the EPT12 exit). */
export function nestedOutcome(f: NestedEptFixture, gpa: bigint, access: EptAccess): Outcome {
  const ctx: Ept02FillContext = {
    manager: f.manager, role: f.role, ept12: f.ept12Nested, ept01: f.ept01, hostCaps: f.hostCaps, profile: f.profile,
    tracking: trackingOf.get(f) ?? 'non-leaf',
  };
  for (let attempt = 0; attempt < 4; attempt++) {
    const root = f.manager.root(f.role);
    if (!root) throw new Error('out of L0 pages');
    const hw = walkEpt(root.ept, L2_GPA.of(gpa), access);
    if (hw.ok) return { kind: 'hpa', hpa: hw.out as bigint };
    if (hw.kind === 'misconfig') throw new Error(`EPT02 misconfigured (${hw.reason}) at level ${hw.level}: 0x${hw.entry.toString(16)}`);
    const r = fillEpt02(ctx, { gpa: L2_GPA.of(gpa), qualification: hw.qualification, linear: (hw.linear as bigint | undefined) ?? 0n });
    if (r.kind === 'ept12-fault') return { kind: 'exit', reason: r.exit.reason, qualification: r.exit.qualification, gpa: r.exit.guestPhysicalAddress as bigint };
    if (r.kind === 'l0-internal') return { kind: 'l0-internal' };
  }
  throw new Error('EPT02 still faults after L0 filled it three times');
}

/** Every EPT02 leaf checked against EPT12 ∘ EPT01 as they are now. */
export function audit(f: NestedEptFixture): Ept02AuditIssue[] {
  return auditEpt02(f.manager.entries(), () => f.ept12Nested, f.ept01, (leaf) => f.manager.handleFor(leaf.eptp02), f.profile);
}

/** EPT12 entries (address → value) as the reference and as L1 memory through EPT01 hold them now. */
export function ept12Entries(f: NestedEptFixture, t: EptTableSet): { ref: bigint[]; nested: bigint[] } {
  return {
    ref: t.entries.map(([a]) => f.l1Ref.readU64(L1_GPA.of(a))),
    nested: t.entries.map(([a]) => f.l1View.readU64(L1_GPA.of(a))),
  };
}

export function show(o: Outcome): string {
  return o.kind === 'hpa' ? `hpa 0x${o.hpa.toString(16)}` : o.kind === 'exit' ? `exit ${o.reason} qual 0x${o.qualification.toString(16)} gpa 0x${o.gpa.toString(16)}` : 'l0-internal';
}
