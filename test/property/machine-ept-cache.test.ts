// Model-based property for the machine's EPT translation cache: CachedEptGuestMemory must behave exactly like the
// uncached EptGuestMemory (the simpler model) — same values, same faults and exits, same memory afterwards including
// guest and EPT accessed/dirty flags — over random accesses interleaved with writes to EPT12 entries, guest paging
// entries and data, and control-register / EFER changes. SDM Vol. 3C 28.2, Vol. 3A 4.8 (A/D flags).
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { L1_GPA, L2_GPA, type L1Gpa, type L2Gpa } from '../../src/cpu/address.js';
import { findCpuModel } from '../../src/cpu/cpu-model.js';
import { eptCapabilities, eptConfig, ept12 } from '../../src/cpu/ept/eptp.js';
import type { Ept } from '../../src/cpu/ept/types.js';
import { EptGuestMemory } from '../../src/cpu/interp/guest-memory.js';
import { buildL2Environment, L2Layout } from '../../src/cpu/interp/l2-env.js';
import type { AccessKind, GuestMemoryAccess } from '../../src/cpu/interp/types.js';
import { buildEpt12 } from '../../src/cpu/l1/ept12.js';
import { CachedEptGuestMemory } from '../../src/cpu/machine/ept-guest-memory.js';
import { PhysicalMemory } from '../../src/cpu/memory.js';
import { CpuState } from '../../src/cpu/state.js';
import { propertyParams } from '../support/property.js';

const CPU = findCpuModel('kvm-l1')!;
const EPT_BASE = 0x10_0000_0n;
const L2_BASE = 0x400_0000n;
/** L2-physical pages the accesses and edits touch: data, code, the guest page tables (PML4, PDPT, PD). */
const PAGES = [0x9_0000n, 0x9_1000n, L2Layout.CODE, 0x20_0000n, 0x20_1000n, 0x20_2000n];

type Op =
  | { readonly kind: 'access'; readonly type: 'read' | 'write' | 'fetch'; readonly linear: bigint; readonly size: 1 | 2 | 4 | 8; readonly value: bigint; readonly user: boolean }
  | { readonly kind: 'ept-entry'; readonly page: number; readonly rights: number; readonly clearAd: boolean }
  | { readonly kind: 'guest-pde'; readonly bits: bigint }
  | { readonly kind: 'data'; readonly offset: number; readonly value: number }
  | { readonly kind: 'ept-root'; readonly rights: number }
  | { readonly kind: 'cr0-wp'; readonly on: boolean }
  | { readonly kind: 'efer-nxe'; readonly on: boolean };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 8, arbitrary: fc.record({
    kind: fc.constant('access' as const), type: fc.constantFrom('read' as const, 'write' as const, 'fetch' as const),
    // Mostly the few pages the edits touch (so a stale translation would be used again), sometimes anywhere.
    linear: fc.oneof(
      { weight: 8, arbitrary: fc.tuple(fc.constantFrom(...PAGES), fc.nat({ max: 0xfff })).map(([p, o]) => p + BigInt(o)) },
      { weight: 1, arbitrary: fc.bigInt({ min: 0n, max: 0x4000_0fffn }) },
    ),
    size: fc.constantFrom(1 as const, 2 as const, 4 as const, 8 as const), value: fc.bigInt({ min: 0n, max: 0xffff_ffffn }), user: fc.nat({ max: 3 }).map((n) => n === 0),
  }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('ept-entry' as const), page: fc.nat({ max: PAGES.length - 1 }), rights: fc.constantFrom(0, 1, 3, 4, 5, 7), clearAd: fc.boolean() }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('guest-pde' as const), bits: fc.constantFrom(0x83n, 0x87n, 0x81n, 0x85n, 0x80n, 0xe3n, 0x8000_0000_0000_0087n) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('ept-root' as const), rights: fc.constantFrom(0, 1, 7) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('efer-nxe' as const), on: fc.boolean() }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('data' as const), offset: fc.nat({ max: 0x1fff }), value: fc.nat({ max: 255 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('cr0-wp' as const), on: fc.boolean() }) },
);

const read90: Op = { kind: 'access', type: 'read', linear: 0x9_0000n, size: 8, value: 0n, user: false };
const write90: Op = { kind: 'access', type: 'write', linear: 0x9_0000n, size: 8, value: 0n, user: false };
/** Sequences that reuse a cached translation after each kind of change it depends on. */
const EXAMPLES: [boolean, Op[]][] = [
  [false, [read90, { kind: 'ept-entry', page: 0, rights: 0, clearAd: false }, read90]],
  [false, [read90, { kind: 'ept-root', rights: 0 }, read90]],
  [false, [{ kind: 'guest-pde', bits: 0x81n }, { kind: 'cr0-wp', on: false }, write90, { kind: 'cr0-wp', on: true }, write90]],
  [true, [read90, write90, { kind: 'ept-entry', page: 0, rights: 7, clearAd: true }, write90, read90]],
];

interface World {
  readonly memory: PhysicalMemory<L1Gpa>;
  readonly eptp: bigint;
  readonly state: CpuState;
}

/** An L2 long-mode environment in L1 memory at L2_BASE + gpa, under a 4-KiB-page EPT12 (optionally with A/D). */
function world(accessedDirty: boolean): World {
  const l2mem = new PhysicalMemory<L2Gpa>();
  const state = new CpuState();
  buildL2Environment(state, { mode: 'long64', memory: l2mem, space: L2_GPA, code: new Uint8Array([0x90, 0x90, 0xf4]) });
  const maps = [];
  for (let p = 0n; p < 0x10_0000n; p += 0x1000n) maps.push({ l2: p, l1: L2_BASE + p, pageSize: '4K' as const, rights: {} });
  for (let p = 0x20_0000n; p < 0x21_0000n; p += 0x1000n) maps.push({ l2: p, l1: L2_BASE + p, pageSize: '4K' as const, rights: {} });
  const built = buildEpt12(EPT_BASE, 16, 4, accessedDirty, maps);
  const memory = new PhysicalMemory<L1Gpa>();
  memory.write(L1_GPA.of(EPT_BASE), built.bytes);
  for (const n of l2mem.pageNumbers()) memory.write(L1_GPA.of(L2_BASE + (n << 12n)), l2mem.read(L2_GPA.of(n << 12n), 4096));
  return { memory, eptp: built.eptp, state };
}

/** The EPT12 leaf address for an L2 page, walking the tables in `mem`. */
function leafAddress(mem: PhysicalMemory<L1Gpa>, gpa: bigint): bigint {
  let table = EPT_BASE;
  for (let level = 4; level > 1; level--) table = mem.readU64(L1_GPA.of(table + ((gpa >> BigInt(12 + 9 * (level - 1))) & 0x1ffn) * 8n)) & 0xf_ffff_ffff_f000n;
  return table + ((gpa >> 12n) & 0x1ffn) * 8n;
}

function apply(op: Op, mem: PhysicalMemory<L1Gpa>, state: CpuState, gm: GuestMemoryAccess): unknown {
  switch (op.kind) {
    case 'access': {
      const kind: AccessKind = { type: op.type, user: op.user, implicit: false };
      if (op.type === 'read') return gm.read(op.linear, op.size, kind);
      if (op.type === 'write') return gm.write(op.linear, op.size, op.value, kind);
      const f = gm.fetch(op.linear, 15, kind);
      return f.ok ? { ok: true, bytes: [...f.bytes], phys: f.phys, fault: f.fault } : f;
    }
    case 'ept-entry': {
      const at = L1_GPA.of(leafAddress(mem, PAGES[op.page]!));
      const e = mem.readU64(at);
      mem.writeU64(at, (e & ~7n & (op.clearAd ? ~0x300n : ~0n)) | BigInt(op.rights));
      return undefined;
    }
    case 'guest-pde': {
      // PD entry 0 of the identity map (2 MiB page at 0): change its present/writable/user/A/D bits.
      const at = L1_GPA.of(L2_BASE + 0x20_2000n);
      mem.writeU64(at, (mem.readU64(at) & ~0x8000_0000_0000_00e7n) | op.bits);
      return undefined;
    }
    case 'ept-root': {
      const at = L1_GPA.of(EPT_BASE);
      mem.writeU64(at, (mem.readU64(at) & ~7n) | BigInt(op.rights));
      return undefined;
    }
    case 'efer-nxe':
      state.efer = op.on ? state.efer | 0x800n : state.efer & ~0x800n;
      return undefined;
    case 'data':
      mem.writeU8(L1_GPA.of(L2_BASE + 0x9_0000n + BigInt(op.offset)), op.value);
      return undefined;
    case 'cr0-wp':
      state.cr0 = op.on ? state.cr0 | 0x1_0000n : state.cr0 & ~0x1_0000n;
      return undefined;
  }
}

describe('CachedEptGuestMemory', () => {
  it('is indistinguishable from EptGuestMemory (values, faults, exits, memory and A/D flags)', () => {
    const caps = eptCapabilities(CPU);
    fc.assert(
      fc.property(fc.boolean(), fc.array(opArb, { minLength: 1, maxLength: 60 }), (ad, ops) => {
        const w = world(ad);
        const memA = w.memory.clone();
        const memB = w.memory.clone();
        const stateA = w.state.clone();
        const stateB = w.state.clone();
        const handle = (mem: PhysicalMemory<L1Gpa>): Ept<L2Gpa, L1Gpa> => {
          const h = ept12({ eptp: w.eptp, config: eptConfig(caps), tables: mem });
          if (!h.ok) throw new Error(h.error.message);
          return h.ept;
        };
        const ea = handle(memA);
        const eb = handle(memB);
        const opts = { maxPhysAddr: CPU.maxPhysAddr };
        const cached = new CachedEptGuestMemory(stateA, memA, () => ea, opts);
        const plain = new EptGuestMemory(stateB, memB, () => eb, opts);
        ops.forEach((op, i) => {
          const a = apply(op, memA, stateA, cached);
          const b = apply(op, memB, stateB, plain);
          expect(a, `op ${i}: ${JSON.stringify(op, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString(16) : v))}`).toEqual(b);
        });
        expect(memA.differingPages(memB)).toEqual([]);
      }),
      propertyParams({ numRuns: 80, examples: EXAMPLES }),
    );
  });
});
