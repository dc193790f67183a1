// Perturbation cases for SDM 26.3.1.2 (guest segment registers, exit reason 33): our own rewrite of kvm-unit-tests'
// test_guest_segment_sel_fields, test_guest_segment_base_addr_fields and vmx_ldtr_test expectations, extended to
// every access-rights rule for every register.
import { Field } from '../../../../src/cpu/generated/vmcs-fields.js';
import type { Vmcs } from '../../../../src/cpu/vmcs.js';
import { urg, urgOffered, v86 } from './cases-guest.js';
import { put, type EntryCase } from './support.js';

const NON_CANONICAL = 0x0000_8000_0000_0000n;
type Seg = 'CS' | 'SS' | 'DS' | 'ES' | 'FS' | 'GS';
const SEGS: readonly Seg[] = ['CS', 'SS', 'DS', 'ES', 'FS', 'GS'];
const DATA: readonly Seg[] = ['DS', 'ES', 'FS', 'GS'];
const ar = (v: Vmcs, s: Seg | 'TR' | 'LDTR', value: number): void => v.set32(Field[`GUEST_${s}_AR_BYTES`], value >>> 0);
const lim = (v: Vmcs, s: Seg | 'TR' | 'LDTR', value: number): void => v.set32(Field[`GUEST_${s}_LIMIT`], value >>> 0);
const sel = (v: Vmcs, s: Seg | 'TR' | 'LDTR', value: number): void => v.set32(Field[`GUEST_${s}_SELECTOR`], value);
const id = (s: string, rule: string): EntryCase['expect'] => `guest.seg.${s.toLowerCase()}.${rule}` as EntryCase['expect'];
/** Valid access rights of each register in the valid state (flat 64-bit code, flat data). */
const AR: Record<Seg, number> = { CS: 0xa09b, SS: 0xc093, DS: 0xc093, ES: 0xc093, FS: 0xc093, GS: 0xc093 };
/** A usable LDT: present, type 2, byte granularity. */
const ldtr = (v: Vmcs): void => { sel(v, 'LDTR', 0x50); lim(v, 'LDTR', 0xffff); ar(v, 'LDTR', 0x82); put(v, Field.GUEST_LDTR_BASE, 0x3000n); };

export const SEGMENT_CASES: EntryCase[] = [
  // ---- selectors (test_guest_segment_sel_fields) ----
  { name: 'test_guest_segment_sel_fields: TR.TI set', expect: 'guest.seg.tr.sel-ti', set: (v) => sel(v, 'TR', 0x44) },
  { name: 'test_guest_segment_sel_fields: usable LDTR with TI set', expect: 'guest.seg.ldtr.sel-ti', set: (v) => { ldtr(v); sel(v, 'LDTR', 0x54); } },
  { name: 'test_guest_segment_sel_fields: unusable LDTR with TI set', expect: 'pass', set: (v) => sel(v, 'LDTR', 0x54) },
  { name: 'test_guest_segment_sel_fields: SS.RPL differs from CS.RPL', expect: 'guest.seg.ss.sel-rpl', set: (v) => sel(v, 'SS', 0x1b) },
  { name: 'test_guest_segment_sel_fields: SS.RPL differs from CS.RPL with unrestricted guest', expect: 'guest.seg.ss.dpl-zero', needs: urgOffered, set: (v) => { urg(v); sel(v, 'SS', 0x1b); ar(v, 'SS', 0xc0f3); ar(v, 'CS', 0xa093); } },
  // ---- virtual-8086 mode ----
  ...SEGS.map((s): EntryCase => ({ name: `virtual-8086: ${s} base is not selector << 4`, expect: id(s, 'v86-base'), set: (v) => { v86(v); put(v, Field[`GUEST_${s}_BASE`], 0x10010n); } })),
  ...SEGS.map((s): EntryCase => ({ name: `virtual-8086: ${s} limit is not 0xffff`, expect: id(s, 'v86-limit'), set: (v) => { v86(v); lim(v, s, 0xfffff); } })),
  ...SEGS.map((s): EntryCase => ({ name: `virtual-8086: ${s} access rights are not 0xf3`, expect: id(s, 'v86-ar'), set: (v) => { v86(v); ar(v, s, 0xf1); } })),
  // ---- base addresses (test_guest_segment_base_addr_fields) ----
  ...(['TR', 'FS', 'GS'] as const).map((s): EntryCase => ({ name: `test_guest_segment_base_addr_fields: ${s} base not canonical`, expect: id(s, 'base-canonical'), set: (v) => put(v, Field[`GUEST_${s}_BASE`], NON_CANONICAL) })),
  { name: 'test_guest_segment_base_addr_fields: usable LDTR base not canonical', expect: 'guest.seg.ldtr.base-canonical', set: (v) => { ldtr(v); put(v, Field.GUEST_LDTR_BASE, NON_CANONICAL); } },
  { name: 'test_guest_segment_base_addr_fields: unusable LDTR base not canonical', expect: 'pass', set: (v) => put(v, Field.GUEST_LDTR_BASE, NON_CANONICAL) },
  ...(['CS', 'SS', 'DS', 'ES'] as const).map((s): EntryCase => ({ name: `test_guest_segment_base_addr_fields: ${s} base bit 32`, expect: id(s, 'base-high'), set: (v) => put(v, Field[`GUEST_${s}_BASE`], 0x1_0000_0000n) })),
  ...(['SS', 'DS', 'ES'] as const).map((s): EntryCase => ({ name: `test_guest_segment_base_addr_fields: unusable ${s} base bit 32`, expect: 'pass', set: (v) => { put(v, Field[`GUEST_${s}_BASE`], 0x1_0000_0000n); ar(v, s, 0x1_0000); } })),
  // ---- access rights: type ----
  { name: 'CS type 3 without unrestricted guest', expect: 'guest.seg.cs.type', set: (v) => ar(v, 'CS', 0xa093) },
  { name: 'CS type 8 (code, not accessed)', expect: 'guest.seg.cs.type', set: (v) => ar(v, 'CS', 0xa098) },
  { name: 'CS type 3 with unrestricted guest', expect: 'pass', needs: urgOffered, set: (v) => { urg(v); ar(v, 'CS', 0xa093); } },
  { name: 'SS type 1 (read-only data)', expect: 'guest.seg.ss.type', set: (v) => ar(v, 'SS', 0xc091) },
  { name: 'SS type 7 (expand-down read/write)', expect: 'pass', set: (v) => ar(v, 'SS', 0xc097) },
  { name: 'unusable SS with garbage access rights', expect: 'pass', set: (v) => ar(v, 'SS', 0x1_c000) },
  ...DATA.map((s): EntryCase => ({ name: `${s} type 2 (not accessed)`, expect: id(s, 'type-accessed'), set: (v) => ar(v, s, 0xc092) })),
  ...DATA.map((s): EntryCase => ({ name: `${s} type 9 (execute-only code)`, expect: id(s, 'type-readable'), set: (v) => ar(v, s, 0xc099) })),
  ...DATA.map((s): EntryCase => ({ name: `${s} type 11 (readable code)`, expect: 'pass', set: (v) => ar(v, s, 0xc09b) })),
  ...DATA.map((s): EntryCase => ({ name: `unusable ${s} with garbage access rights`, expect: 'pass', set: (v) => ar(v, s, 0x1_0f00) })),
  // ---- S, DPL, P ----
  ...SEGS.map((s): EntryCase => ({ name: `${s} with S = 0`, expect: id(s, 's-bit'), set: (v) => ar(v, s, AR[s] & ~0x10) })),
  { name: 'CS type 3 with DPL 3 (unrestricted guest)', expect: 'guest.seg.cs.dpl-type3', needs: urgOffered, set: (v) => { urg(v); ar(v, 'CS', 0xa0f3); } },
  { name: 'non-conforming CS DPL 3, SS DPL 0', expect: 'guest.seg.cs.dpl-nonconforming', set: (v) => ar(v, 'CS', 0xa0fb) },
  { name: 'conforming CS DPL 3 above SS DPL 0', expect: 'guest.seg.cs.dpl-conforming', set: (v) => ar(v, 'CS', 0xa0ff) },
  { name: 'conforming CS DPL 0 below SS DPL 3', expect: 'pass', set: (v) => { ar(v, 'CS', 0xa09f); sel(v, 'CS', 0x13); sel(v, 'SS', 0x1b); ar(v, 'SS', 0xc0f3); } },
  { name: 'SS DPL 3 with RPL 0 (conforming CS)', expect: 'guest.seg.ss.dpl-rpl', set: (v) => { ar(v, 'CS', 0xa09f); ar(v, 'SS', 0xc0f3); } },
  { name: 'unusable SS keeps the DPL = RPL rule', expect: 'guest.seg.ss.dpl-rpl', set: (v) => { ar(v, 'CS', 0xa09f); ar(v, 'SS', 0x1_00e0); } },
  { name: 'SS DPL 3 with CS type 3 (unrestricted guest)', expect: 'guest.seg.ss.dpl-zero', needs: urgOffered, set: (v) => { urg(v); ar(v, 'CS', 0xa093); sel(v, 'SS', 0x1b); ar(v, 'SS', 0xc0f3); } },
  ...DATA.map((s): EntryCase => ({ name: `${s} RPL 3 above DPL 0`, expect: id(s, 'dpl-rpl'), set: (v) => sel(v, s, 0x1b) })),
  ...DATA.map((s): EntryCase => ({ name: `${s} RPL 3 above DPL 0 with a conforming code segment`, expect: 'pass', set: (v) => { sel(v, s, 0x1b); ar(v, s, 0xc09f); } })),
  ...SEGS.map((s): EntryCase => ({ name: `${s} not present`, expect: id(s, 'present'), set: (v) => ar(v, s, AR[s] & ~0x80) })),
  // ---- reserved bits, D/B, G ----
  ...SEGS.map((s): EntryCase => ({ name: `${s} access-rights bit 8 (reserved) set`, expect: id(s, 'ar-reserved-low'), set: (v) => ar(v, s, AR[s] | 0x100) })),
  { name: 'CS with L and D/B in an IA-32e mode guest', expect: 'guest.seg.cs.db-long', set: (v) => ar(v, 'CS', 0xe09b) },
  ...SEGS.map((s): EntryCase => ({ name: `${s} G = 1 with limit[11:0] not all ones`, expect: id(s, 'granularity'), set: (v) => lim(v, s, 0xffff_f000) })),
  ...SEGS.map((s): EntryCase => ({ name: `${s} G = 0 with limit[31:20] not all zeros`, expect: id(s, 'granularity'), set: (v) => ar(v, s, AR[s] & ~0x8000) })),
  ...SEGS.map((s): EntryCase => ({ name: `${s} access-rights bit 17 (reserved) set`, expect: id(s, 'ar-reserved-high'), set: (v) => ar(v, s, AR[s] | 0x2_0000) })),
  // ---- TR ----
  { name: 'TR type 3 (16-bit busy TSS) in an IA-32e mode guest', expect: 'guest.seg.tr.type', set: (v) => ar(v, 'TR', 0x83) },
  { name: 'TR type 9 (available TSS)', expect: 'guest.seg.tr.type', set: (v) => ar(v, 'TR', 0x89) },
  { name: 'TR with S = 1', expect: 'guest.seg.tr.s-bit', set: (v) => ar(v, 'TR', 0x9b) },
  { name: 'TR not present', expect: 'guest.seg.tr.present', set: (v) => ar(v, 'TR', 0x0b) },
  { name: 'TR access-rights bit 8 set', expect: 'guest.seg.tr.ar-reserved-low', set: (v) => ar(v, 'TR', 0x18b) },
  { name: 'TR G = 0 with limit 0x100000', expect: 'guest.seg.tr.granularity', set: (v) => lim(v, 'TR', 0x10_0000) },
  { name: 'TR unusable', expect: 'guest.seg.tr.unusable', set: (v) => ar(v, 'TR', 0x1_008b) },
  { name: 'TR access-rights bit 17 set', expect: 'guest.seg.tr.ar-reserved-high', set: (v) => ar(v, 'TR', 0x2_008b) },
  // ---- LDTR (vmx_ldtr_test) ----
  { name: 'vmx_ldtr_test: usable LDTR', expect: 'pass', set: (v) => ldtr(v) },
  { name: 'vmx_ldtr_test: usable LDTR of type 3', expect: 'guest.seg.ldtr.type', set: (v) => { ldtr(v); ar(v, 'LDTR', 0x83); } },
  { name: 'vmx_ldtr_test: usable LDTR with S = 1', expect: 'guest.seg.ldtr.s-bit', set: (v) => { ldtr(v); ar(v, 'LDTR', 0x92); } },
  { name: 'vmx_ldtr_test: usable LDTR not present', expect: 'guest.seg.ldtr.present', set: (v) => { ldtr(v); ar(v, 'LDTR', 0x02); } },
  { name: 'vmx_ldtr_test: usable LDTR access-rights bit 8', expect: 'guest.seg.ldtr.ar-reserved-low', set: (v) => { ldtr(v); ar(v, 'LDTR', 0x182); } },
  { name: 'vmx_ldtr_test: usable LDTR G = 0 with limit 0x100000', expect: 'guest.seg.ldtr.granularity', set: (v) => { ldtr(v); lim(v, 'LDTR', 0x10_0000); } },
  { name: 'vmx_ldtr_test: usable LDTR access-rights bit 17', expect: 'guest.seg.ldtr.ar-reserved-high', set: (v) => { ldtr(v); ar(v, 'LDTR', 0x2_0082); } },
];
