// Properties of the EPT walker against a deliberately small independent model (written here, sharing no code with
// src/cpu/ept): outcome and priority (not present > misconfiguration > violation), translation, A/D flags, and the
// violation qualification (bits 0–2 = the access, 3–6 = AND over the walked entries); plus the qualification codec.
// SDM Vol. 3C 28.2.2–28.2.4, 27.2.1 Table 27-7; reference §8.3–8.5.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { L1_GPA, L2_GPA, l2gpa, type L1Gpa } from '../../src/cpu/address.js';
import { PhysicalMemory } from '../../src/cpu/memory.js';
import { makeEpt } from '../../src/cpu/ept/eptp.js';
import { walkEpt } from '../../src/cpu/ept/walker.js';
import {
  decodeEptViolationQualification, encodeEptViolationQualification, EPT_QUALIFICATION_BITS, type EptViolationQualification,
} from '../../src/cpu/ept/qualification.js';
import type { EptAccess, EptConfig } from '../../src/cpu/ept/types.js';
import { arbEptCase, type EptCase } from '../support/arbitraries/ept.js';

// Fixed seed: CI runs are reproducible; a failure prints seed and path for `fc.assert(..., { seed, path })`.
const RUN = { seed: 0x7e57_0001, numRuns: 400 } as const;

// ---------------------------------------------------------------------------------------------------------------
// The model: EPT walk over a Map of entries, following the SDM text directly.

type ModelOutcome =
  | { kind: 'ok'; out: bigint; bytes: bigint; memType: number; ipat: boolean; r: boolean; w: boolean; x: boolean; xu: boolean }
  | { kind: 'violation'; r: boolean; w: boolean; x: boolean; xu: boolean }
  | { kind: 'misconfig' };

function bitOf(v: bigint, n: number): boolean {
  return ((v >> BigInt(n)) & 1n) === 1n;
}

function modelAccessIsWrite(a: EptAccess, ad: boolean): boolean {
  return a.type === 'write' || a.type === 'rmw' || (ad && a.cause.kind === 'paging-structure');
}

function modelWalk(mem: Map<bigint, bigint>, cfg: EptConfig, eptp: bigint, gpa: bigint, a: EptAccess): ModelOutcome {
  const levels = Number((eptp >> 3n) & 7n) + 1;
  const ad = bitOf(eptp, 6);
  const mbec = cfg.modeBasedExecute;
  const n = cfg.caps.maxPhysAddr;
  if (gpa >= 1n << BigInt(12 + 9 * levels)) return { kind: 'violation', r: false, w: false, x: false, xu: false };
  let table = eptp & ((1n << BigInt(n)) - 1n) & ~0xfffn;
  let r = true, w = true, x = true, xu = true;
  const visited: bigint[] = [];
  for (let level = levels; level >= 1; level--) {
    const addr = table + 8n * ((gpa >> BigInt(3 + 9 * level)) & 511n);
    const e = mem.get(addr) ?? 0n;
    visited.push(addr);
    const rwx = Number(e & 7n);
    if (rwx === 0 && !(mbec && bitOf(e, 10))) return { kind: 'violation', r: false, w: false, x: false, xu: false };
    if (rwx === 2 || rwx === 6 || (rwx === 4 && !cfg.caps.executeOnly)) return { kind: 'misconfig' };
    for (let b = n; b <= 51; b++) if (bitOf(e, b)) return { kind: 'misconfig' };
    const ps = bitOf(e, 7);
    const isLeaf = level === 1 || ((level === 2 || level === 3) && ps);
    if (level >= 4) for (let b = 3; b <= 7; b++) if (bitOf(e, b)) return { kind: 'misconfig' };
    if ((level === 2 || level === 3) && !ps) for (let b = 3; b <= 6; b++) if (bitOf(e, b)) return { kind: 'misconfig' };
    if (level === 3 && ps && !cfg.caps.pages1G) return { kind: 'misconfig' };
    if (level === 2 && ps && !cfg.caps.pages2M) return { kind: 'misconfig' };
    const lowFrameBits = level === 3 && ps ? 18 : level === 2 && ps ? 9 : 0;
    for (let b = 12; b < 12 + lowFrameBits; b++) if (bitOf(e, b)) return { kind: 'misconfig' };
    const mt = Number((e >> 3n) & 7n);
    if (isLeaf && (mt === 2 || mt === 3 || mt === 7)) return { kind: 'misconfig' };
    r &&= bitOf(e, 0); w &&= bitOf(e, 1); x &&= bitOf(e, 2); xu &&= bitOf(e, 10);
    if (isLeaf) {
      let ok: boolean;
      if (a.type === 'fetch') ok = mbec && a.cause.kind === 'final' && a.cause.rights.user ? xu : x;
      else if (modelAccessIsWrite(a, ad)) ok = w;
      else ok = r;
      if (!ok) return { kind: 'violation', r, w, x, xu };
      const bytes = 1n << BigInt(12 + lowFrameBits);
      const frame = e & ((1n << 52n) - 1n) & ~(bytes - 1n);
      if (ad) {
        for (const v of visited) mem.set(v, (mem.get(v) ?? 0n) | 0x100n);
        if (modelAccessIsWrite(a, ad)) mem.set(addr, (mem.get(addr) ?? 0n) | 0x200n);
      }
      return { kind: 'ok', out: frame | (gpa & (bytes - 1n)), bytes, memType: mt, ipat: bitOf(e, 6), r, w, x, xu: mbec ? xu : x };
    }
    table = e & ((1n << 52n) - 1n) & ~0xfffn;
  }
  throw new Error('unreachable');
}

function expectedQualification(o: { r: boolean; w: boolean; x: boolean; xu: boolean }, a: EptAccess, cfg: EptConfig, ad: boolean): bigint {
  let q = 0n;
  const set = (b: number, on: boolean): void => { if (on) q |= 1n << BigInt(b); };
  const psWrite = ad && a.cause.kind === 'paging-structure';
  set(0, a.type === 'read' || (a.type === 'rmw' && cfg.rmwSetsRead) || psWrite);
  set(1, a.type === 'write' || a.type === 'rmw' || psWrite);
  set(2, a.type === 'fetch');
  set(3, o.r); set(4, o.w); set(5, o.x);
  set(6, cfg.modeBasedExecute && o.xu);
  set(7, a.cause.kind !== 'no-linear');
  set(8, a.cause.kind === 'final');
  if (cfg.caps.advancedExitInfo && a.cause.kind === 'final') {
    set(9, a.cause.rights.user); set(10, a.cause.rights.writable); set(11, a.cause.rights.executeDisable);
  }
  set(12, a.nmiUnblocking === true);
  return q;
}

// ---------------------------------------------------------------------------------------------------------------

function setUp(c: EptCase): { mem: PhysicalMemory<L1Gpa>; model: Map<bigint, bigint> } {
  const mem = new PhysicalMemory<L1Gpa>({ space: 'L1Gpa' });
  const model = new Map<bigint, bigint>();
  for (const [addr, v] of c.tables.entries) {
    const w = mem.writeU64(L1_GPA.of(addr), v);
    if (!w.ok) throw new Error(w.error.message);
    model.set(addr, v);
  }
  return { mem, model };
}

describe('EPT walker vs independent model', () => {
  it('agrees on outcome, translation, permissions, qualification and A/D flags for every access', () => {
    fc.assert(
      fc.property(arbEptCase, (c) => {
        const { mem, model } = setUp(c);
        const h = makeEpt({ eptp: c.eptp, config: c.config, tables: mem, inSpace: L2_GPA, outSpace: L1_GPA });
        expect(h.ok).toBe(true);
        if (!h.ok) return;
        const ad = bitOf(c.eptp, 6);
        for (const { gpa, access } of c.accesses) {
          const want = modelWalk(model, c.config, c.eptp, gpa, access);
          const got = walkEpt(h.ept, l2gpa(gpa), access);
          if (want.kind === 'ok') {
            expect(got.ok).toBe(true);
            if (!got.ok) return;
            expect(got.out as bigint).toBe(want.out);
            expect(got.pageSize).toBe(want.bytes === 0x1000n ? '4K' : want.bytes === 0x20_0000n ? '2M' : '1G');
            expect(got.memType).toBe(want.memType);
            expect(got.ipat).toBe(want.ipat);
            expect(got.permissions).toEqual({ read: want.r, write: want.w, execute: want.x, userExecute: want.xu });
          } else {
            expect(got.ok).toBe(false);
            if (got.ok) return;
            expect(got.kind).toBe(want.kind);
            expect(got.gpa as bigint).toBe(gpa);
            if (want.kind === 'violation' && got.kind === 'violation') {
              expect(got.qualification).toBe(expectedQualification(want, access, c.config, ad));
            }
          }
          // A/D flags: memory holds exactly the model's entries.
          for (const [addr, v] of model) expect(mem.readU64(L1_GPA.of(addr))).toBe(v);
          const modelPages = new Set([...model.keys()].map((a) => a >> 12n));
          for (const p of mem.pageNumbers()) expect(modelPages.has(p)).toBe(true);
        }
      }),
      RUN,
    );
  });

  it('qualification bits 3–6 are the AND of the rights of the entries actually walked, bits 0–2 the access', () => {
    fc.assert(
      fc.property(arbEptCase, (c) => {
        const { mem } = setUp(c);
        const h = makeEpt({ eptp: c.eptp, config: c.config, tables: mem, inSpace: L2_GPA, outSpace: L1_GPA });
        if (!h.ok) throw new Error(h.error.message);
        const ad = bitOf(c.eptp, 6);
        for (const { gpa, access } of c.accesses) {
          const got = walkEpt(h.ept, l2gpa(gpa), access);
          if (got.ok || got.kind !== 'violation') continue;
          const and = (b: number): boolean => got.path.length > 0 && got.path.every((s) => bitOf(s.entry, b));
          const q = got.qualification;
          expect(bitOf(q, 3)).toBe(and(0));
          expect(bitOf(q, 4)).toBe(and(1));
          expect(bitOf(q, 5)).toBe(and(2));
          expect(bitOf(q, 6)).toBe(c.config.modeBasedExecute && and(10));
          const psWrite = ad && access.cause.kind === 'paging-structure';
          const accessBits = Number(q & 7n);
          const expectBits = access.type === 'fetch' ? 4
            : psWrite ? 3
            : access.type === 'read' ? 1
            : access.type === 'write' ? 2
            : c.config.rmwSetsRead ? 3 : 2;
          expect(accessBits).toBe(expectBits);
        }
      }),
      RUN,
    );
  });
});

describe('EPT-violation qualification codec', () => {
  const arbQualification: fc.Arbitrary<EptViolationQualification> = fc.record(
    Object.fromEntries(EPT_QUALIFICATION_BITS.map((k) => [k, fc.boolean()])) as Record<keyof EptViolationQualification, fc.Arbitrary<boolean>>,
  );

  it('decode(encode(q)) = q', () => {
    fc.assert(
      fc.property(arbQualification, (q) => {
        const d = decodeEptViolationQualification(encodeEptViolationQualification(q));
        expect(d).toEqual({ ok: true, value: q });
      }),
      { seed: 0x7e57_0002, numRuns: 500 },
    );
  });

  it('encode(decode(x)) = x on bits 16:0, and any bit of 63:17 is refused', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: (1n << 17n) - 1n }), fc.integer({ min: 17, max: 63 }), (x, hi) => {
        const d = decodeEptViolationQualification(x);
        expect(d.ok).toBe(true);
        if (d.ok) expect(encodeEptViolationQualification(d.value)).toBe(x);
        const bad = decodeEptViolationQualification(x | (1n << BigInt(hi)));
        expect(bad).toEqual({ ok: false, kind: 'reserved-bits', reservedBits: 1n << BigInt(hi) });
      }),
      { seed: 0x7e57_0003, numRuns: 500 },
    );
  });
});
