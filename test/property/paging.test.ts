// Properties of the guest page walker against a deliberately small independent model written here (no code shared
// with src/cpu/paging): outcome (#PF error code or translation) in every mode, accessed/dirty flags after sequences
// of accesses, and the same under EPT (paging-structure EPT violations reported with bit 8 = 0).
// SDM Vol. 3A 4.3–4.8; Vol. 3C 28.2.3.2–28.2.3.3.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { L1_GPA, L2_GPA, l1gpa, type L1Gpa, type L2Gpa } from '../../src/cpu/address.js';
import { PhysicalMemory } from '../../src/cpu/memory.js';
import { translateLinear } from '../../src/cpu/paging/walker.js';
import { directPagingAccess, translateLinearUnderEpt } from '../../src/cpu/paging/under-ept.js';
import type { LinearAccess, PagingControls } from '../../src/cpu/paging/types.js';
import { EptTableBuilder } from '../../src/cpu/ept/builder.js';
import { eptConfig, makeEpt } from '../../src/cpu/ept/eptp.js';
import type { EptCapabilities } from '../../src/cpu/ept/types.js';
import { arbPagingCase, type PagingCase } from '../support/arbitraries/paging.js';

const RUN = { seed: 0x7e57_0101, numRuns: 400 } as const;

// ---------------------------------------------------------------------------------------------------------------
// The model. Memory is reached through a callback so the same model runs with and without EPT.

type Rd = { ok: true; v: bigint } | { ok: false; ept: bigint };
interface ModelMem {
  read(addr: bigint, size: number, finalAccess: false): Rd;
  write(addr: bigint, size: number, v: bigint): Rd;
}
type ModelResult = { ok: true; phys: bigint; bytes: bigint } | { ok: false; pf: number } | { ok: false; ept: bigint; at: bigint };

const b = (v: bigint, n: number): boolean => ((v >> BigInt(n)) & 1n) === 1n;
const anyBit = (v: bigint, lo: number, hi: number): boolean => {
  for (let i = lo; i <= hi; i++) if (b(v, i)) return true;
  return false;
};

function modelMode(c: PagingControls): 'none' | '32bit' | 'pae' | '4level' | '5level' {
  if (!b(c.cr0, 31)) return 'none';
  if (!b(c.cr4, 5)) return '32bit';
  if (!b(c.efer, 10)) return 'pae';
  return b(c.cr4, 12) ? '5level' : '4level';
}

function modelReserved(mode: string, lvl: number, ps: boolean, e: bigint, c: PagingControls): boolean {
  const m = c.maxPhysAddr;
  const nxOff = !b(c.efer, 11);
  if (mode === '32bit') {
    if (!(lvl === 2 && ps)) return false;
    const width = c.pse36 === false ? 32 : Math.min(m, 40);
    return b(e, 21) || anyBit(e, 13 + (width - 32), 20);
  }
  if (nxOff && b(e, 63)) return true;
  if (mode === 'pae') return anyBit(e, m, 62) || (lvl === 2 && ps && anyBit(e, 13, 20));
  if (anyBit(e, m, 51)) return true;
  if (lvl >= 4) return b(e, 7);
  if (lvl === 3 && ps) return c.gbPages === false || anyBit(e, 13, 29);
  if (lvl === 2 && ps) return anyBit(e, 13, 20);
  return false;
}

function modelTranslate(c: PagingControls, mem: ModelMem, linear: bigint, a: LinearAccess, fin?: (phys: bigint, user: boolean, rw: boolean, xd: boolean) => Rd): ModelResult {
  const mode = modelMode(c);
  const write = a.kind === 'write' || a.kind === 'rmw';
  const fetch = a.kind === 'fetch';
  const user = a.mode === 'user';
  if (mode === 'none') {
    if (fin) { const f = fin(linear, true, true, false); if (!f.ok) return { ok: false, ept: f.ept, at: linear }; }
    return { ok: true, phys: linear, bytes: 4096n };
  }
  const nx = mode !== '32bit' && b(c.efer, 11);
  const err = (write ? 2 : 0) | (user ? 4 : 0) | (fetch && (b(c.cr4, 20) || nx) ? 16 : 0);
  // [level, index shift, index bits]
  const levels: [number, number, number][] = mode === '32bit' ? [[2, 22, 10], [1, 12, 10]]
    : mode === 'pae' ? [[2, 21, 9], [1, 12, 9]]
    : mode === '4level' ? [[4, 39, 9], [3, 30, 9], [2, 21, 9], [1, 12, 9]]
    : [[5, 48, 9], [4, 39, 9], [3, 30, 9], [2, 21, 9], [1, 12, 9]];
  const size = mode === '32bit' ? 4 : 8;
  let base: bigint;
  if (mode === '32bit') base = c.cr3 & 0xffff_f000n;
  else if (mode === 'pae') {
    const p = c.pdptes![Number((linear >> 30n) & 3n)]!;
    if (!b(p, 0)) return { ok: false, pf: err };
    base = p & 0x000f_ffff_ffff_f000n;
  } else base = c.cr3 & ((1n << BigInt(c.maxPhysAddr)) - 1n) & ~0xfffn;
  let us = true, rw = true, xd = false;
  const used: [bigint, bigint][] = [];
  let leaf = 0n, bytes = 4096n;
  for (const [lvl, shift, nbits] of levels) {
    const addr = base + BigInt(size) * ((linear >> BigInt(shift)) & ((1n << BigInt(nbits)) - 1n));
    const r = mem.read(addr, size, false);
    if (!r.ok) return { ok: false, ept: r.ept, at: addr };
    const e = r.v;
    used.push([addr, e]);
    if (!b(e, 0)) return { ok: false, pf: err };
    const ps = lvl > 1 && b(e, 7) && (mode !== '32bit' || b(c.cr4, 4));
    if (modelReserved(mode, lvl, ps, e, c)) return { ok: false, pf: err | 1 | 8 };
    us &&= b(e, 2); rw &&= b(e, 1); xd ||= nx && b(e, 63);
    if (lvl === 1 || ps) {
      leaf = e;
      bytes = 1n << BigInt(shift);
      break;
    }
    base = mode === '32bit' ? e & 0xffff_f000n : e & 0x000f_ffff_ffff_f000n;
  }
  // Access rights, as SDM 4.6 states them.
  const wp = b(c.cr0, 16), smep = b(c.cr4, 20), smap = b(c.cr4, 21), ac = b(c.rflags, 18);
  let ok: boolean;
  if (fetch) ok = user ? us && !xd : !(us && smep) && !xd;
  else if (user) ok = us && (!write || rw);
  else ok = !(us && smap && (a.mode === 'implicit-supervisor' || !ac)) && (!write || !wp || rw);
  let pkFault = false;
  if ((mode === '4level' || mode === '5level') && b(c.cr4, 22) && !fetch && us) {
    const key = Number((leaf >> 59n) & 15n);
    const adBit = (c.pkru >>> (2 * key)) & 1, wdBit = (c.pkru >>> (2 * key + 1)) & 1;
    pkFault = adBit === 1 || (wdBit === 1 && write && (user || wp));
  }
  if (!ok || pkFault) return { ok: false, pf: err | 1 | (pkFault ? 32 : 0) };
  let phys: bigint;
  if (mode === '32bit' && bytes === 0x40_0000n) phys = (leaf & 0xffc0_0000n) + (((leaf >> 13n) & 0xffn) << 32n) + (linear & 0x3f_ffffn);
  else if (mode === '32bit') phys = (leaf & 0xffff_f000n) + (linear & 0xfffn);
  else phys = (leaf & 0x000f_ffff_ffff_f000n & ~(bytes - 1n)) + (linear & (bytes - 1n));
  if (fin) { const f = fin(phys, us, rw, xd); if (!f.ok) return { ok: false, ept: f.ept, at: phys }; }
  // A/D: A in each entry used (top-down), D in the leaf for writes; only for accesses that complete.
  const latest = new Map<bigint, bigint>();
  for (let i = 0; i < used.length; i++) {
    const [addr, e] = used[i]!;
    const cur = latest.get(addr) ?? e;
    const nv = cur | 0x20n | (i === used.length - 1 && write ? 0x40n : 0n);
    latest.set(addr, nv);
    if (nv !== cur) {
      const w = mem.write(addr, size, nv);
      if (!w.ok) return { ok: false, ept: w.ept, at: addr };
    }
  }
  return { ok: true, phys, bytes };
}

function mapMem(map: Map<bigint, bigint>): ModelMem {
  return {
    read: (addr) => ({ ok: true, v: map.get(addr) ?? 0n }),
    write: (addr, _size, v) => { map.set(addr, v); return { ok: true, v }; },
  };
}

// ---------------------------------------------------------------------------------------------------------------

function load(c: PagingCase): { mem: PhysicalMemory<L1Gpa>; model: Map<bigint, bigint> } {
  const mem = new PhysicalMemory<L1Gpa>();
  const model = new Map<bigint, bigint>();
  for (const [addr, v] of c.tables.entries) {
    const w = c.tables.entrySize === 4 ? mem.writeU32(l1gpa(addr), Number(v)) : mem.writeU64(l1gpa(addr), v);
    if (!w.ok) throw new Error(w.error.message);
    model.set(addr, v);
  }
  return { mem, model };
}

function readBack(mem: PhysicalMemory<L1Gpa>, size: 4 | 8, addr: bigint): bigint {
  return size === 4 ? BigInt(mem.readU32(l1gpa(addr))) : mem.readU64(l1gpa(addr));
}

describe('guest page walker vs independent model', () => {
  it('gives the same translation or #PF error code in every paging mode', () => {
    fc.assert(
      fc.property(arbPagingCase, (c) => {
        const { mem, model } = load(c);
        const acc = directPagingAccess(mem);
        for (const { linear, access } of c.accesses) {
          const want = modelTranslate(c.controls, mapMem(model), linear, access);
          const got = translateLinear(c.controls, linear, access, L1_GPA, acc);
          if (want.ok) {
            expect(got.ok).toBe(true);
            if (!got.ok) return;
            expect(got.phys as bigint).toBe(want.phys);
            const bytes = { '4K': 0x1000n, '2M': 0x20_0000n, '4M': 0x40_0000n, '1G': 0x4000_0000n }[got.pageSize];
            expect(bytes).toBe(want.bytes);
          } else if ('pf' in want) {
            expect(got).toEqual({ ok: false, fault: { kind: 'page-fault', errorCode: want.pf, linear } });
          }
        }
      }),
      RUN,
    );
  });

  it('sets accessed and dirty flags exactly as the model does, access after access', () => {
    fc.assert(
      fc.property(arbPagingCase, (c) => {
        const { mem, model } = load(c);
        const acc = directPagingAccess(mem);
        for (const { linear, access } of c.accesses) {
          modelTranslate(c.controls, mapMem(model), linear, access);
          translateLinear(c.controls, linear, access, L1_GPA, acc);
          for (const [addr, v] of model) expect(readBack(mem, c.tables.entrySize, addr)).toBe(v);
        }
        const pages = new Set([...model.keys()].map((a) => a >> 12n));
        for (const p of mem.pageNumbers()) expect(pages.has(p)).toBe(true);
      }),
      RUN,
    );
  });
});

// ---------------------------------------------------------------------------------------------------------------
// Under EPT: every guest page used is identity-mapped by a 4-level EPT with random rights per page (or left
// unmapped). Model EPT: page → rights; non-leaf EPT entries are RWX, so the walked AND is the leaf's rights.

const CAPS: EptCapabilities = {
  maxPhysAddr: 46, executeOnly: true, walkLength4: true, walkLength5: false, memTypeUc: false, memTypeWb: true,
  pages2M: true, pages1G: true, accessedDirty: true, advancedExitInfo: false, supervisorShadowStack: false,
};
const EPT_TABLES = 0x100_0000_0000n; // 2^40: above every guest frame the arbitraries generate

describe('guest page walker under EPT', () => {
  it('matches the model composed with a page-granular EPT; walk violations have bit 7 = 1, bit 8 = 0', () => {
    const arb = fc.record({
      c: arbPagingCase,
      rights: fc.array(fc.constantFrom(-1, 1, 3, 5, 7, 7, 7), { minLength: 32, maxLength: 32 }),
      ad: fc.boolean(),
    });
    fc.assert(
      fc.property(arb, ({ c: c0, rights, ad }) => {
        // Guest MAXPHYADDR at most the EPT's 46 bits, so every guest-physical address the guest can form is mappable.
        const c = { ...c0, controls: { ...c0.controls, maxPhysAddr: Math.min(c0.controls.maxPhysAddr, 46) } };
        const { mem, model } = load(c);
        // Rights per guest page: pages are numbered in order of first use, and the i-th gets rights[i % 32].
        const pageRights = new Map<bigint, number>();
        const rightsOf = (gpa: bigint): number => {
          const p = gpa >> 12n;
          if (!pageRights.has(p)) pageRights.set(p, rights[pageRights.size % rights.length]!);
          return pageRights.get(p)!;
        };
        for (const [addr] of c.tables.entries) rightsOf(addr);
        for (const { linear, access } of c.accesses) {
          const t = modelTranslate(c.controls, mapMem(new Map(model)), linear, access);
          if (t.ok) rightsOf(t.phys);
        }
        const builder = new EptTableBuilder<L2Gpa, L1Gpa>({
          memory: mem, inSpace: L2_GPA, outSpace: L1_GPA, tableArea: { base: EPT_TABLES, pages: 256 },
        });
        for (const [page, r] of pageRights) {
          if (r < 0) continue;
          const res = builder.map(L2_GPA.of(page << 12n), L1_GPA.of(page << 12n), {
            read: (r & 1) !== 0, write: (r & 2) !== 0, execute: (r & 4) !== 0,
          });
          if (!res.ok) throw new Error(res.error.message);
        }
        const h = makeEpt({ eptp: builder.eptp({ accessedDirty: ad }), config: eptConfig(CAPS), tables: mem, inSpace: L2_GPA, outSpace: L1_GPA });
        if (!h.ok) throw new Error(h.error.message);

        // Model EPT violation qualification for the composed model (bits 0–5, 7, 8).
        const eptQual = (gpa: bigint, need: 'r' | 'w' | 'x', bits02: number, finalAccess: boolean): Rd => {
          const r = pageRights.get(gpa >> 12n) ?? -1;
          const have = r < 0 ? 0 : r;
          const ok = need === 'r' ? (have & 1) !== 0 : need === 'w' ? (have & 2) !== 0 : (have & 4) !== 0;
          if (ok) return { ok: true, v: 0n };
          return { ok: false, ept: BigInt(bits02) | (BigInt(have) << 3n) | 0x80n | (finalAccess ? 0x100n : 0n) };
        };
        const composed: ModelMem = {
          read: (addr) => {
            const q = eptQual(addr, ad ? 'w' : 'r', ad ? 3 : 1, false);
            return q.ok ? { ok: true, v: model.get(addr) ?? 0n } : q;
          },
          write: (addr, _s, v) => {
            const q = eptQual(addr, 'w', ad ? 3 : 2, false);
            if (q.ok) model.set(addr, v);
            return q.ok ? { ok: true, v } : q;
          },
        };
        for (const { linear, access } of c.accesses) {
          const need = access.kind === 'fetch' ? 'x' : access.kind === 'read' ? 'r' : 'w';
          const bits02 = access.kind === 'fetch' ? 4 : access.kind === 'read' ? 1 : access.kind === 'write' ? 2 : 3;
          const want = modelTranslate(c.controls, composed, linear, access, (phys) => eptQual(phys, need, bits02, true));
          const got = translateLinearUnderEpt(c.controls, linear, access, h.ept, mem);
          if (want.ok) {
            expect(got.ok).toBe(true);
            if (got.ok) expect(got.final.out as bigint).toBe(want.phys);
          } else if ('pf' in want) {
            expect(got).toEqual({ ok: false, fault: { kind: 'page-fault', errorCode: want.pf, linear } });
          } else {
            expect(got.ok).toBe(false);
            if (got.ok || got.fault.kind !== 'violation') throw new Error(`expected an EPT violation, got ${JSON.stringify(got, (_k, v) => (typeof v === 'bigint' ? v.toString(16) : v))}`);
            expect(got.fault.gpa as bigint).toBe(want.at);
            expect(got.fault.linear).toBe(linear);
            expect(got.fault.qualification).toBe(want.ept);
          }
          for (const [addr, v] of model) expect(readBack(mem, c.tables.entrySize, addr)).toBe(v);
        }
      }),
      { seed: 0x7e57_0102, numRuns: 250 },
    );
  });
});
