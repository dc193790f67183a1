// Stage 3 (part) of VM entry: guest segment registers, LDTR and TR (failure = exit reason 33, qualification 0).
// The SDM lists these by property (selectors, bases, limits, then each access-rights sub-field for CS, SS, DS, ES,
// FS, GS in turn); the checks run in exactly that order, one catalogue row per register and property.
// Must not: touch descriptor tables in memory; VM entry checks only the VMCS fields. SDM Vol. 3C 26.3.1.2.
import { EntryCtl, Secondary } from '../generated/controls.js';
import {
  bitOf, canonical, ck, ctl, fail, granularityOk, has, hex32, hex64, hi, lo, ne, slot, type CheckContext,
} from './context.js';
import type { EntryCheckId } from './types.js';

const SEGS = ['cs', 'ss', 'ds', 'es', 'fs', 'gs'] as const;
type SegName = (typeof SEGS)[number] | 'ldtr' | 'tr';
const CS = 0, SS = 1;
const up = (s: SegName): string => s.toUpperCase();
const field = (s: SegName, what: 'SELECTOR' | 'BASE' | 'LIMIT' | 'AR_BYTES'): number => slot(`GUEST_${up(s)}_${what}` as 'GUEST_CS_SELECTOR');
const S_SEL = SEGS.map((s) => field(s, 'SELECTOR')), S_BASE = SEGS.map((s) => field(s, 'BASE'));
const S_LIM = SEGS.map((s) => field(s, 'LIMIT')), S_AR = SEGS.map((s) => field(s, 'AR_BYTES'));
const S_TR_SEL = field('tr', 'SELECTOR'), S_TR_BASE = field('tr', 'BASE'), S_TR_LIM = field('tr', 'LIMIT'), S_TR_AR = field('tr', 'AR_BYTES');
const S_LDTR_SEL = field('ldtr', 'SELECTOR'), S_LDTR_BASE = field('ldtr', 'BASE'), S_LDTR_LIM = field('ldtr', 'LIMIT'), S_LDTR_AR = field('ldtr', 'AR_BYTES');
const S_RFLAGS = slot('GUEST_RFLAGS'), S_CR0 = slot('GUEST_CR0');

const per = (rule: string, segs: readonly SegName[] = SEGS): number[] => segs.map((s) => ck(`guest.seg.${s}.${rule}` as EntryCheckId));
const DATA = ['ds', 'es', 'fs', 'gs'] as const;
const K = {
  trTi: ck('guest.seg.tr.sel-ti'), ldtrTi: ck('guest.seg.ldtr.sel-ti'), ssRpl: ck('guest.seg.ss.sel-rpl'),
  v86Base: per('v86-base'), trCanon: ck('guest.seg.tr.base-canonical'), fsCanon: ck('guest.seg.fs.base-canonical'),
  gsCanon: ck('guest.seg.gs.base-canonical'), ldtrCanon: ck('guest.seg.ldtr.base-canonical'),
  csBaseHigh: ck('guest.seg.cs.base-high'), baseHigh: per('base-high', ['ss', 'ds', 'es']),
  v86Limit: per('v86-limit'), v86Ar: per('v86-ar'),
  csType: ck('guest.seg.cs.type'), ssType: ck('guest.seg.ss.type'), accessed: per('type-accessed', DATA), readable: per('type-readable', DATA),
  sBit: per('s-bit'), csDpl3: ck('guest.seg.cs.dpl-type3'), csDplNc: ck('guest.seg.cs.dpl-nonconforming'),
  csDplConf: ck('guest.seg.cs.dpl-conforming'), ssDplRpl: ck('guest.seg.ss.dpl-rpl'), ssDplZero: ck('guest.seg.ss.dpl-zero'),
  dplRpl: per('dpl-rpl', DATA), present: per('present'), rsvdLow: per('ar-reserved-low'), csDbLong: ck('guest.seg.cs.db-long'),
  gran: per('granularity'), rsvdHigh: per('ar-reserved-high'),
  trType: ck('guest.seg.tr.type'), trS: ck('guest.seg.tr.s-bit'), trP: ck('guest.seg.tr.present'), trRsvdLow: ck('guest.seg.tr.ar-reserved-low'),
  trGran: ck('guest.seg.tr.granularity'), trUnusable: ck('guest.seg.tr.unusable'), trRsvdHigh: ck('guest.seg.tr.ar-reserved-high'),
  ldtrType: ck('guest.seg.ldtr.type'), ldtrS: ck('guest.seg.ldtr.s-bit'), ldtrP: ck('guest.seg.ldtr.present'),
  ldtrRsvdLow: ck('guest.seg.ldtr.ar-reserved-low'), ldtrGran: ck('guest.seg.ldtr.granularity'), ldtrRsvdHigh: ck('guest.seg.ldtr.ar-reserved-high'),
} as const;

const AR_S = 0x10, AR_P = 0x80, AR_L = 0x2000, AR_DB = 0x4000, AR_UNUSABLE = 0x1_0000;
const AR_RSVD_LOW = 0xf00, AR_RSVD_HIGH = 0xfffe_0000;
const RFLAGS_VM = 0x2_0000;
const dpl = (ar: number): number => (ar >>> 5) & 3;

/**
 * Gates for the access-rights checks that apply outside virtual-8086 mode to CS and to usable SS/DS/ES/FS/GS, one
 * per register, computed once per run: 1 = evaluate, 0 = not applicable, -1 = undecidable. `ar` gets the values.
 */
function computeGates(c: CheckContext, v86: number, gates: Int8Array, ar: Uint32Array): void {
  for (let i = 0; i < 6; i++) {
    const s = S_AR[i]!;
    const known = has(c, s);
    ar[i] = known ? lo(c, s) : 0;
    gates[i] = v86 === 1 ? 0 : v86 < 0 || !known ? -1 : i !== CS && (ar[i]! & AR_UNUSABLE) !== 0 ? 0 : 1;
  }
}

/** Apply a gate: record "not evaluated" for an undecidable one; true when the check is to be evaluated. */
function gated(c: CheckContext, g: number, k: number): boolean {
  if (g < 0) ne(c, k);
  return g === 1;
}

const arText = (c: CheckContext, i: number): string => `GUEST_${up(SEGS[i]!)}_AR_BYTES ${hex32(c.segAr[i]!)}`;

/**
 * SDM 26.3.1.2: checks on guest segment registers. `shortcuts` = false skips the all-clear pre-tests of the
 * access-rights groups (tests compare both ways; the pre-tests must never hide a failure).
 */
export function checkGuestSegmentRegisters(c: CheckContext, shortcuts = true): void {
  const v86 = bitOf(ctl(c, S_RFLAGS), RFLAGS_VM);
  const urg = bitOf(c.sec, Secondary.UNRESTRICTED_GUEST);
  const ldtrUsable = has(c, S_LDTR_AR) ? ((lo(c, S_LDTR_AR) & AR_UNUSABLE) === 0 ? 1 : 0) : -1;
  computeGates(c, v86, c.segGates, c.segAr);
  // Split by property group (each part small enough for V8 to inline its helpers).
  if (checkSelectorsAndBases(c, v86, urg, ldtrUsable)) return;
  if (checkVirtual8086(c, v86)) return;
  if (checkTypeAndS(c, urg, shortcuts)) return;
  if (checkDpl(c, v86, urg, shortcuts)) return;
  if (checkPresentReservedGranularity(c, shortcuts)) return;
  if (checkTr(c)) return;
  checkLdtr(c, ldtrUsable);
}

function checkSelectorsAndBases(c: CheckContext, v86: number, urg: number, ldtrUsable: number): boolean {
  const A = c.segAr;
  // ---- selectors ----
  if (!has(c, S_TR_SEL)) ne(c, K.trTi);
  else if ((lo(c, S_TR_SEL) & 4) !== 0 && fail(c, K.trTi, `GUEST_TR_SELECTOR ${hex32(lo(c, S_TR_SEL))} has TI set`)) return true;
  if (ldtrUsable === 0) { /* not applicable */ }
  else if (ldtrUsable < 0 || !has(c, S_LDTR_SEL)) ne(c, K.ldtrTi);
  else if ((lo(c, S_LDTR_SEL) & 4) !== 0 && fail(c, K.ldtrTi, `LDTR is usable and GUEST_LDTR_SELECTOR ${hex32(lo(c, S_LDTR_SEL))} has TI set`)) return true;
  if (v86 === 1 || urg === 1) { /* not applicable */ }
  else if (v86 < 0 || urg < 0 || !has(c, S_SEL[SS]!) || !has(c, S_SEL[CS]!)) ne(c, K.ssRpl);
  else if ((lo(c, S_SEL[SS]!) & 3) !== (lo(c, S_SEL[CS]!) & 3)
    && fail(c, K.ssRpl, `SS.RPL ${lo(c, S_SEL[SS]!) & 3} differs from CS.RPL ${lo(c, S_SEL[CS]!) & 3}`)) return true;

  // ---- base addresses ----
  for (let i = 0; i < 6; i++) {
    const k = K.v86Base[i]!;
    if (v86 === 0) continue;
    if (v86 < 0 || !has(c, S_SEL[i]!) || !has(c, S_BASE[i]!)) { ne(c, k); continue; }
    const sel = lo(c, S_SEL[i]!), bl = lo(c, S_BASE[i]!), bh = hi(c, S_BASE[i]!);
    if ((bh !== 0 || bl !== sel * 16)
      && fail(c, k, `virtual-8086 guest: GUEST_${up(SEGS[i]!)}_BASE ${hex64(bl, bh)} is not selector ${hex32(sel)} << 4`)) return true;
  }
  if (canonicalBase(c, S_TR_BASE, K.trCanon, 'GUEST_TR_BASE')) return true;
  if (canonicalBase(c, S_BASE[4]!, K.fsCanon, 'GUEST_FS_BASE')) return true;
  if (canonicalBase(c, S_BASE[5]!, K.gsCanon, 'GUEST_GS_BASE')) return true;
  if (ldtrUsable === 0) { /* not applicable */ }
  else if (ldtrUsable < 0) ne(c, K.ldtrCanon);
  else if (canonicalBase(c, S_LDTR_BASE, K.ldtrCanon, 'GUEST_LDTR_BASE (LDTR usable)')) return true;
  if (!has(c, S_BASE[CS]!)) ne(c, K.csBaseHigh);
  else if (hi(c, S_BASE[CS]!) !== 0 && fail(c, K.csBaseHigh, `GUEST_CS_BASE ${hex64(lo(c, S_BASE[CS]!), hi(c, S_BASE[CS]!))} sets bits 63:32`)) return true;
  for (let j = 0; j < 3; j++) {
    const i = j + 1, k = K.baseHigh[j]!; // SS, DS, ES
    if (!has(c, S_AR[i]!) || ((A[i]! & AR_UNUSABLE) === 0 && !has(c, S_BASE[i]!))) { ne(c, k); continue; }
    if ((A[i]! & AR_UNUSABLE) !== 0) continue;
    if (hi(c, S_BASE[i]!) !== 0
      && fail(c, k, `${up(SEGS[i]!)} is usable and GUEST_${up(SEGS[i]!)}_BASE ${hex64(lo(c, S_BASE[i]!), hi(c, S_BASE[i]!))} sets bits 63:32`)) return true;
  }

  return false;
}

function checkVirtual8086(c: CheckContext, v86: number): boolean {
  const A = c.segAr;
  // ---- limits and access rights in virtual-8086 mode ----
  for (let i = 0; i < 6; i++) {
    const k = K.v86Limit[i]!;
    if (v86 === 0) continue;
    if (v86 < 0 || !has(c, S_LIM[i]!)) { ne(c, k); continue; }
    if (lo(c, S_LIM[i]!) !== 0xffff && fail(c, k, `virtual-8086 guest: GUEST_${up(SEGS[i]!)}_LIMIT ${hex32(lo(c, S_LIM[i]!))} is not 0000FFFFH`)) return true;
  }
  for (let i = 0; i < 6; i++) {
    const k = K.v86Ar[i]!;
    if (v86 === 0) continue;
    if (v86 < 0 || !has(c, S_AR[i]!)) { ne(c, k); continue; }
    if (A[i]! !== 0xf3 && fail(c, k, `virtual-8086 guest: ${arText(c, i)} is not 000000F3H`)) return true;
  }

  return false;
}

/**
 * True when every register's type and S bit are decided and correct, so the ordered pass below would record nothing.
 * (A shortcut for the common passing state: it tests exactly the conditions of the ordered pass.)
 */
function typeAndSClean(G: Int8Array, A: Uint32Array, urg: number): boolean {
  for (let i = 0; i < 6; i++) {
    const g = G[i]!;
    if (g === 0) continue;
    if (g < 0) return false;
    const ar = A[i]!, type = ar & 0xf;
    if ((ar & AR_S) === 0) return false;
    if (i === CS) { if (!(type === 9 || type === 11 || type === 13 || type === 15 || (type === 3 && urg === 1))) return false; }
    else if (i === SS) { if (type !== 3 && type !== 7) return false; }
    else if ((type & 1) === 0 || (type & 0xa) === 0x8) return false;
  }
  return true;
}

function checkTypeAndS(c: CheckContext, urg: number, shortcuts: boolean): boolean {
  const G = c.segGates, A = c.segAr;
  if (shortcuts && typeAndSClean(G, A, urg)) return false;
  // ---- access rights outside virtual-8086 mode: type ----
  if (gated(c, G[CS]!, K.csType)) {
    const type = A[CS]! & 0xf;
    if (type === 9 || type === 11 || type === 13 || type === 15) { /* accessed code segment */ }
    else if (type === 3 && urg === 1) { /* accessed read/write data, unrestricted guest only */ }
    else if (type === 3 && urg < 0) ne(c, K.csType);
    else if (fail(c, K.csType, `${arText(c, CS)}: CS type ${type} is not an accessed code segment${type === 3 ? ' (type 3 needs "unrestricted guest")' : ''}`)) return true;
  }
  if (gated(c, G[SS]!, K.ssType)) {
    const type = A[SS]! & 0xf;
    if (type !== 3 && type !== 7 && fail(c, K.ssType, `${arText(c, SS)}: SS type ${type} is not 3 or 7`)) return true;
  }
  for (let j = 0; j < 4; j++) {
    const i = j + 2;
    if (gated(c, G[i]!, K.accessed[j]!) && (A[i]! & 1) === 0
      && fail(c, K.accessed[j]!, `${arText(c, i)}: usable segment not marked accessed`)) return true;
  }
  for (let j = 0; j < 4; j++) {
    const i = j + 2;
    if (gated(c, G[i]!, K.readable[j]!) && (A[i]! & 0xa) === 0x8
      && fail(c, K.readable[j]!, `${arText(c, i)}: usable code segment is not readable`)) return true;
  }
  // ---- S ----
  for (let i = 0; i < 6; i++) {
    if (gated(c, G[i]!, K.sBit[i]!) && (A[i]! & AR_S) === 0
      && fail(c, K.sBit[i]!, `${arText(c, i)}: S (descriptor type) is 0`)) return true;
  }
  return false;
}

/** Like typeAndSClean, for the DPL rules: true when every rule is decided and holds. */
function dplClean(c: CheckContext, v86: number, urg: number, G: Int8Array, A: Uint32Array): boolean {
  if (v86 === 1) return true;
  if (v86 < 0 || G[CS]! < 0 || !has(c, S_AR[SS]!)) return false;
  const cs = A[CS]!, ss = A[SS]!, type = cs & 0xf;
  if (type === 3 ? dpl(cs) !== 0 : type === 9 || type === 11 ? dpl(cs) !== dpl(ss) : (type === 13 || type === 15) && dpl(cs) > dpl(ss)) return false;
  if (urg < 0) return false;
  if (urg === 0 && (!has(c, S_SEL[SS]!) || dpl(ss) !== (lo(c, S_SEL[SS]!) & 3))) return false;
  if (dpl(ss) !== 0 && (type === 3 || !has(c, S_CR0) || (lo(c, S_CR0) & 1) === 0)) return false;
  for (let i = 2; i < 6; i++) {
    const g = G[i]!;
    if (g < 0) return false;
    if (g === 0 || urg === 1 || (A[i]! & 0xf) > 11) continue;
    if (!has(c, S_SEL[i]!) || dpl(A[i]!) < (lo(c, S_SEL[i]!) & 3)) return false;
  }
  return true;
}

function checkDpl(c: CheckContext, v86: number, urg: number, shortcuts: boolean): boolean {
  const G = c.segGates, A = c.segAr;
  if (shortcuts && dplClean(c, v86, urg, G, A)) return false;
  // ---- DPL ----
  if (gated(c, G[CS]!, K.csDpl3)) {
    const ar = A[CS]!;
    if ((ar & 0xf) === 3 && dpl(ar) !== 0 && fail(c, K.csDpl3, `${arText(c, CS)}: type 3 with DPL ${dpl(ar)}`)) return true;
  }
  if (gated(c, G[CS]!, K.csDplNc)) {
    const ar = A[CS]!, type = ar & 0xf;
    if (type === 9 || type === 11) {
      if (!has(c, S_AR[SS]!)) ne(c, K.csDplNc);
      else if (dpl(ar) !== dpl(A[SS]!) && fail(c, K.csDplNc, `non-conforming CS DPL ${dpl(ar)} differs from SS.DPL ${dpl(A[SS]!)}`)) return true;
    }
  }
  if (gated(c, G[CS]!, K.csDplConf)) {
    const ar = A[CS]!, type = ar & 0xf;
    if (type === 13 || type === 15) {
      if (!has(c, S_AR[SS]!)) ne(c, K.csDplConf);
      else if (dpl(ar) > dpl(A[SS]!) && fail(c, K.csDplConf, `conforming CS DPL ${dpl(ar)} exceeds SS.DPL ${dpl(A[SS]!)}`)) return true;
    }
  }
  // SS DPL rules apply whether or not SS is usable.
  const gSs = v86 === 1 ? 0 : v86 < 0 || !has(c, S_AR[SS]!) ? -1 : 1;
  if (gated(c, gSs, K.ssDplRpl)) {
    const ar = A[SS]!;
    if (urg === 1) { /* not applicable */ }
    else if (urg < 0 || !has(c, S_SEL[SS]!)) ne(c, K.ssDplRpl);
    else if (dpl(ar) !== (lo(c, S_SEL[SS]!) & 3) && fail(c, K.ssDplRpl, `SS.DPL ${dpl(ar)} differs from SS.RPL ${lo(c, S_SEL[SS]!) & 3}`)) return true;
  }
  if (gated(c, gSs, K.ssDplZero)) {
    const ar = A[SS]!;
    if (dpl(ar) === 0) { /* satisfied */ }
    else if (!has(c, S_AR[CS]!) || !has(c, S_CR0)) ne(c, K.ssDplZero);
    else if (((A[CS]! & 0xf) === 3 || (lo(c, S_CR0) & 1) === 0)
      && fail(c, K.ssDplZero, `SS.DPL ${dpl(ar)} is not 0 while CS type is 3 or GUEST_CR0.PE is 0`)) return true;
  }
  for (let j = 0; j < 4; j++) {
    const i = j + 2, k = K.dplRpl[j]!;
    if (!gated(c, G[i]!, k)) continue;
    const ar = A[i]!;
    if (urg === 1 || (ar & 0xf) > 11) continue;
    if (urg < 0 || !has(c, S_SEL[i]!)) { ne(c, k); continue; }
    if (dpl(ar) < (lo(c, S_SEL[i]!) & 3)
      && fail(c, k, `${up(SEGS[i]!)}.DPL ${dpl(ar)} is less than its RPL ${lo(c, S_SEL[i]!) & 3}`)) return true;
  }
  return false;
}

/** Like typeAndSClean, for P, the reserved bits and G: true when the ordered pass would record nothing. */
function presentReservedGranularityClean(c: CheckContext, G: Int8Array, A: Uint32Array): boolean {
  for (let i = 0; i < 6; i++) {
    const g = G[i]!;
    if (g === 0) continue;
    if (g < 0 || !has(c, S_LIM[i]!)) return false;
    const ar = A[i]!;
    if ((ar & AR_P) === 0 || (ar & (AR_RSVD_LOW | AR_RSVD_HIGH)) !== 0 || !granularityOk(lo(c, S_LIM[i]!), ar)) return false;
  }
  return true;
}

/** CS D/B must be 0 when CS.L is 1 in an IA-32e mode guest. Returns true when the run must stop. */
function checkCsDbLong(c: CheckContext, G: Int8Array, A: Uint32Array): boolean {
  if (!gated(c, G[CS]!, K.csDbLong)) return false;
  const ar = A[CS]!;
  if ((ar & (AR_L | AR_DB)) !== (AR_L | AR_DB)) return false;
  const guest64 = bitOf(c.entry, EntryCtl.IA32E_MODE_GUEST);
  if (guest64 < 0) { ne(c, K.csDbLong); return false; }
  return guest64 === 1 && fail(c, K.csDbLong, `${arText(c, CS)}: L and D/B both set for an IA-32e mode guest`);
}

function checkPresentReservedGranularity(c: CheckContext, shortcuts: boolean): boolean {
  const G = c.segGates, A = c.segAr;
  if (shortcuts && presentReservedGranularityClean(c, G, A)) return checkCsDbLong(c, G, A);
  // ---- P, reserved bits 11:8, D/B, G, reserved bits 31:17 ----
  for (let i = 0; i < 6; i++) {
    if (gated(c, G[i]!, K.present[i]!) && (A[i]! & AR_P) === 0
      && fail(c, K.present[i]!, `${arText(c, i)}: P (present) is 0`)) return true;
  }
  for (let i = 0; i < 6; i++) {
    if (gated(c, G[i]!, K.rsvdLow[i]!) && (A[i]! & AR_RSVD_LOW) !== 0
      && fail(c, K.rsvdLow[i]!, `${arText(c, i)}: reserved bits 11:8 set`)) return true;
  }
  if (checkCsDbLong(c, G, A)) return true;
  for (let i = 0; i < 6; i++) {
    const k = K.gran[i]!;
    if (!gated(c, G[i]!, k)) continue;
    if (!has(c, S_LIM[i]!)) { ne(c, k); continue; }
    if (!granularityOk(lo(c, S_LIM[i]!), A[i]!)
      && fail(c, k, `${arText(c, i)}: G bit inconsistent with GUEST_${up(SEGS[i]!)}_LIMIT ${hex32(lo(c, S_LIM[i]!))}`)) return true;
  }
  for (let i = 0; i < 6; i++) {
    if (gated(c, G[i]!, K.rsvdHigh[i]!) && (A[i]! & AR_RSVD_HIGH) !== 0
      && fail(c, K.rsvdHigh[i]!, `${arText(c, i)}: reserved bits 31:17 set`)) return true;
  }
  return false;
}

function canonicalBase(c: CheckContext, s: number, k: number, what: string): boolean {
  if (!has(c, s)) { ne(c, k); return false; }
  return !canonical(c, hi(c, s)) && fail(c, k, `${what} ${hex64(lo(c, s), hi(c, s))} is not canonical`);
}

const trText = (ar: number): string => `GUEST_TR_AR_BYTES ${hex32(ar)}`;
const ldtrText = (ar: number): string => `GUEST_LDTR_AR_BYTES ${hex32(ar)}`;

/** TR access rights (checked in every mode). Returns true when the run must stop. */
function checkTr(c: CheckContext): boolean {
  const trKnown = has(c, S_TR_AR), ar = trKnown ? lo(c, S_TR_AR) : 0;
  if (!trKnown) ne(c, K.trType);
  else {
    const type = ar & 0xf;
    if (type !== 11) {
      const guest64 = bitOf(c.entry, EntryCtl.IA32E_MODE_GUEST);
      if (type === 3 && guest64 < 0) ne(c, K.trType);
      else if (!(type === 3 && guest64 === 0)
        && fail(c, K.trType, `${trText(ar)}: TR type ${type} is not a busy TSS${type === 3 ? ' usable in IA-32e mode' : ''}`)) return true;
    }
  }
  if (!trKnown) { ne(c, K.trS); ne(c, K.trP); ne(c, K.trRsvdLow); ne(c, K.trGran); ne(c, K.trUnusable); ne(c, K.trRsvdHigh); return false; }
  if ((ar & AR_S) !== 0 && fail(c, K.trS, `${trText(ar)}: S is 1 for TR`)) return true;
  if ((ar & AR_P) === 0 && fail(c, K.trP, `${trText(ar)}: P is 0 for TR`)) return true;
  if ((ar & AR_RSVD_LOW) !== 0 && fail(c, K.trRsvdLow, `${trText(ar)}: reserved bits 11:8 set`)) return true;
  if (!has(c, S_TR_LIM)) ne(c, K.trGran);
  else if (!granularityOk(lo(c, S_TR_LIM), ar) && fail(c, K.trGran, `${trText(ar)}: G bit inconsistent with GUEST_TR_LIMIT ${hex32(lo(c, S_TR_LIM))}`)) return true;
  if ((ar & AR_UNUSABLE) !== 0 && fail(c, K.trUnusable, `${trText(ar)}: TR is marked unusable`)) return true;
  if ((ar & AR_RSVD_HIGH) !== 0 && fail(c, K.trRsvdHigh, `${trText(ar)}: reserved bits 31:17 set`)) return true;
  return false;
}

/** LDTR access rights (only when LDTR is usable). */
function checkLdtr(c: CheckContext, usable: number): void {
  if (usable === 0) return;
  if (usable < 0) {
    for (const k of [K.ldtrType, K.ldtrS, K.ldtrP, K.ldtrRsvdLow, K.ldtrGran, K.ldtrRsvdHigh]) ne(c, k);
    return;
  }
  const ar = lo(c, S_LDTR_AR);
  if ((ar & 0xf) !== 2 && fail(c, K.ldtrType, `${ldtrText(ar)}: usable LDTR type ${ar & 0xf} is not 2 (LDT)`)) return;
  if ((ar & AR_S) !== 0 && fail(c, K.ldtrS, `${ldtrText(ar)}: S is 1 for LDTR`)) return;
  if ((ar & AR_P) === 0 && fail(c, K.ldtrP, `${ldtrText(ar)}: P is 0 for a usable LDTR`)) return;
  if ((ar & AR_RSVD_LOW) !== 0 && fail(c, K.ldtrRsvdLow, `${ldtrText(ar)}: reserved bits 11:8 set`)) return;
  if (!has(c, S_LDTR_LIM)) ne(c, K.ldtrGran);
  else if (!granularityOk(lo(c, S_LDTR_LIM), ar) && fail(c, K.ldtrGran, `${ldtrText(ar)}: G bit inconsistent with GUEST_LDTR_LIMIT ${hex32(lo(c, S_LDTR_LIM))}`)) return;
  if ((ar & AR_RSVD_HIGH) !== 0) fail(c, K.ldtrRsvdHigh, `${ldtrText(ar)}: reserved bits 31:17 set`);
}
