// Stage 2 of VM entry: checks on the host-state area and on address-space size (failure = VMfailValid(8)).
// One block per catalogue row, in catalogue order; every failure names exactly one check id.
// Must not: read guest state; the executing hypervisor's IA32_EFER.LMA comes from the environment, not the VMCS.
// SDM Vol. 3C 26.2.2 (host control registers, MSRs, SSP), 26.2.3 (host segment/descriptor-table registers), 26.2.4.
import { EntryCtl, ExitCtl } from '../generated/controls.js';
import {
  bitOf, canonical, canonicalWidth, ck, fail, has, hex32, hex64, hi, lo, ne, patValid, physOk, slot, type CheckContext,
} from './context.js';

const S_CR0 = slot('HOST_CR0'), S_CR3 = slot('HOST_CR3'), S_CR4 = slot('HOST_CR4');
const S_SYSESP = slot('HOST_IA32_SYSENTER_ESP'), S_SYSEIP = slot('HOST_IA32_SYSENTER_EIP');
const S_SCET = slot('HOST_S_CET'), S_SSP = slot('HOST_SSP'), S_SSPTAB = slot('HOST_INTR_SSP_TABLE');
const S_PERF = slot('HOST_IA32_PERF_GLOBAL_CTRL'), S_PAT = slot('HOST_IA32_PAT'), S_EFER = slot('HOST_IA32_EFER');
const S_PKRS = slot('HOST_IA32_PKRS'), S_RIP = slot('HOST_RIP');
const SEL_NAMES = ['es', 'cs', 'ss', 'ds', 'fs', 'gs', 'tr'] as const;
const S_SEL = SEL_NAMES.map((s) => slot(`HOST_${s.toUpperCase()}_SELECTOR` as 'HOST_ES_SELECTOR'));
const K_SEL = SEL_NAMES.map((s) => ck(`host.sel.${s}.rpl-ti` as 'host.sel.es.rpl-ti'));
const BASE_NAMES = ['fs', 'gs', 'gdtr', 'idtr', 'tr'] as const;
const S_BASE = BASE_NAMES.map((b) => slot(`HOST_${b.toUpperCase()}_BASE` as 'HOST_FS_BASE'));
const K_BASE = BASE_NAMES.map((b) => ck(`host.${b}-base.canonical` as 'host.fs-base.canonical'));
const S_CS = S_SEL[1]!, S_SS = S_SEL[2]!, S_TR = S_SEL[6]!;

const K = {
  cr0: ck('host.cr0.fixed-bits'), cr4: ck('host.cr4.fixed-bits'), cetWp: ck('host.cr4.cet-requires-wp'), cr3: ck('host.cr3.width'),
  sysEsp: ck('host.sysenter-esp.canonical'), sysEip: ck('host.sysenter-eip.canonical'),
  scetCanon: ck('host.cet.s-cet-canonical'), scetRsvd: ck('host.cet.s-cet-reserved'),
  sspTab: ck('host.cet.ssp-table-canonical'), sspAlign: ck('host.cet.ssp-alignment'),
  perf: ck('host.perf-global-ctrl.reserved'), pat: ck('host.pat.memory-types'),
  eferRsvd: ck('host.efer.reserved'), eferLma: ck('host.efer.lma'), eferLme: ck('host.efer.lme'), pkrs: ck('host.pkrs.reserved'),
  csNull: ck('host.sel.cs.null'), trNull: ck('host.sel.tr.null'), ssNull: ck('host.sel.ss.null'),
  noIntel64: ck('host.addr-size.no-intel64'), outGuest: ck('host.addr-size.outside-ia32e-guest'),
  outHass: ck('host.addr-size.outside-ia32e-hass'), inHass: ck('host.addr-size.inside-ia32e-hass'),
  h0Guest: ck('host.addr-size.hass0-ia32e-guest'), h0Pcide: ck('host.addr-size.hass0-pcide'), h0Rip: ck('host.addr-size.hass0-rip'),
  h0Ssp: ck('host.addr-size.hass0-ssp'), h1Pae: ck('host.addr-size.hass1-pae'), h1Rip: ck('host.addr-size.hass1-rip'),
  h1Ssp: ck('host.addr-size.hass1-ssp'),
} as const;

const CR0_CD_NW = 0x6000_0000;
const CR0_WP = 0x1_0000, CR4_PAE = 0x20, CR4_LA57 = 0x1000, CR4_PCIDE = 0x2_0000, CR4_CET = 0x80_0000;
const EFER_LME = 0x100, EFER_LMA = 0x400;

/**
 * A field checked only when a VM-exit control bit is 1: 0 = not applicable, 1 = evaluate,
 * -1 = undecidable (recorded as not evaluated).
 */
function gate(c: CheckContext, control: number, mask: number, s: number, k: number): number {
  const on = bitOf(control, mask);
  if (on === 0) return 0;
  if (on < 0 || !has(c, s)) { ne(c, k); return -1; }
  return 1;
}

/** SDM 26.2.2: host control registers, MSRs and SSP. */
export function checkHostControlRegistersAndMsrs(c: CheckContext): void {
  if (checkHostControlRegisters(c)) return;
  checkHostMsrs(c);
}

function checkHostControlRegisters(c: CheckContext): boolean {
  const f = c.cpu;
  if (!has(c, S_CR0)) ne(c, K.cr0);
  else {
    // CR0.CD and CR0.NW are never checked: VM exit does not change them (SDM 26.2.2 footnote, 27.5.1).
    const l = lo(c, S_CR0), h = hi(c, S_CR0);
    const badLo = (((l & ~f.cr0Fixed1Lo) | (f.cr0Fixed0Lo & ~l)) & ~CR0_CD_NW) >>> 0;
    const badHi = ((h & ~f.cr0Fixed1Hi) | (f.cr0Fixed0Hi & ~h)) >>> 0;
    if ((badLo | badHi) !== 0 && fail(c, K.cr0, `HOST_CR0 ${hex64(l, h)}: bits ${hex64(badLo, badHi)} violate IA32_VMX_CR0_FIXED0/1`)) return true;
  }
  if (!has(c, S_CR4)) ne(c, K.cr4);
  else {
    const l = lo(c, S_CR4), h = hi(c, S_CR4);
    const badLo = ((l & ~f.cr4Fixed1Lo) | (f.cr4Fixed0Lo & ~l)) >>> 0, badHi = ((h & ~f.cr4Fixed1Hi) | (f.cr4Fixed0Hi & ~h)) >>> 0;
    if ((badLo | badHi) !== 0 && fail(c, K.cr4, `HOST_CR4 ${hex64(l, h)}: bits ${hex64(badLo, badHi)} violate IA32_VMX_CR4_FIXED0/1`)) return true;
  }
  if (!has(c, S_CR4) || ((lo(c, S_CR4) & CR4_CET) !== 0 && !has(c, S_CR0))) ne(c, K.cetWp);
  else if ((lo(c, S_CR4) & CR4_CET) !== 0 && (lo(c, S_CR0) & CR0_WP) === 0
    && fail(c, K.cetWp, `HOST_CR4 ${hex32(lo(c, S_CR4))} sets CET while HOST_CR0 ${hex32(lo(c, S_CR0))} clears WP`)) return true;
  if (!has(c, S_CR3)) ne(c, K.cr3);
  else if (!physOk(c, hi(c, S_CR3)) && fail(c, K.cr3, `HOST_CR3 ${hex64(lo(c, S_CR3), hi(c, S_CR3))} sets bits at or above MAXPHYADDR ${f.maxPhysAddr}`)) return true;
  if (!has(c, S_SYSESP)) ne(c, K.sysEsp);
  else if (!canonical(c, hi(c, S_SYSESP)) && fail(c, K.sysEsp, `HOST_IA32_SYSENTER_ESP ${hex64(lo(c, S_SYSESP), hi(c, S_SYSESP))} is not canonical`)) return true;
  if (!has(c, S_SYSEIP)) ne(c, K.sysEip);
  else if (!canonical(c, hi(c, S_SYSEIP)) && fail(c, K.sysEip, `HOST_IA32_SYSENTER_EIP ${hex64(lo(c, S_SYSEIP), hi(c, S_SYSEIP))} is not canonical`)) return true;
  return false;
}

function checkHostMsrs(c: CheckContext): void {
  const f = c.cpu;
  const exit = c.exit;
  if ((exit < 0 || (exit & ExitCtl.LOAD_CET_STATE) !== 0) && gate(c, exit, ExitCtl.LOAD_CET_STATE, S_SCET, K.scetCanon) === 1
    && !canonical(c, hi(c, S_SCET)) && fail(c, K.scetCanon, `HOST_S_CET ${hex64(lo(c, S_SCET), hi(c, S_SCET))} is not canonical`)) return;
  if ((exit < 0 || (exit & ExitCtl.LOAD_CET_STATE) !== 0) && gate(c, exit, ExitCtl.LOAD_CET_STATE, S_SCET, K.scetRsvd) === 1) {
    const l = lo(c, S_SCET);
    if (((l & 0x3c0) !== 0 || (l & 0xc00) === 0xc00)
      && fail(c, K.scetRsvd, `HOST_S_CET ${hex64(l, hi(c, S_SCET))} sets reserved bits 9:6 or both SUPPRESS and TRACKER`)) return;
  }
  if ((exit < 0 || (exit & ExitCtl.LOAD_CET_STATE) !== 0) && gate(c, exit, ExitCtl.LOAD_CET_STATE, S_SSPTAB, K.sspTab) === 1
    && !canonical(c, hi(c, S_SSPTAB)) && fail(c, K.sspTab, `HOST_INTR_SSP_TABLE ${hex64(lo(c, S_SSPTAB), hi(c, S_SSPTAB))} is not canonical`)) return;
  if ((exit < 0 || (exit & ExitCtl.LOAD_CET_STATE) !== 0) && gate(c, exit, ExitCtl.LOAD_CET_STATE, S_SSP, K.sspAlign) === 1
    && (lo(c, S_SSP) & 3) !== 0 && fail(c, K.sspAlign, `HOST_SSP ${hex64(lo(c, S_SSP), hi(c, S_SSP))} has bits 1:0 set`)) return;
  if ((exit < 0 || (exit & ExitCtl.LOAD_IA32_PERF_GLOBAL_CTRL) !== 0) && gate(c, exit, ExitCtl.LOAD_IA32_PERF_GLOBAL_CTRL, S_PERF, K.perf) === 1) {
    const l = lo(c, S_PERF), h = hi(c, S_PERF);
    const badLo = (l & ~f.perfValidLo) >>> 0, badHi = (h & ~f.perfValidHi) >>> 0;
    if ((badLo | badHi) !== 0 && fail(c, K.perf, `HOST_IA32_PERF_GLOBAL_CTRL ${hex64(l, h)}: reserved bits ${hex64(badLo, badHi)} set`)) return;
  }
  if ((exit < 0 || (exit & ExitCtl.LOAD_IA32_PAT) !== 0) && gate(c, exit, ExitCtl.LOAD_IA32_PAT, S_PAT, K.pat) === 1
    && !patValid(lo(c, S_PAT), hi(c, S_PAT)) && fail(c, K.pat, `HOST_IA32_PAT ${hex64(lo(c, S_PAT), hi(c, S_PAT))} has a byte that is not 0, 1, 4, 5, 6 or 7`)) return;
  const efer = gate(c, exit, ExitCtl.LOAD_IA32_EFER, S_EFER, K.eferRsvd);
  if (efer < 0) { ne(c, K.eferLma); ne(c, K.eferLme); }
  else if (efer === 1) {
    const l = lo(c, S_EFER), h = hi(c, S_EFER), hass = (exit & ExitCtl.HOST_ADDRESS_SPACE_SIZE) !== 0;
    if (((l & ~f.eferValid) !== 0 || h !== 0) && fail(c, K.eferRsvd, `HOST_IA32_EFER ${hex64(l, h)} sets reserved bits`)) return;
    if (((l & EFER_LMA) !== 0) !== hass && fail(c, K.eferLma, `HOST_IA32_EFER ${hex64(l, h)}: LMA ${(l >>> 10) & 1} differs from "host address-space size" ${hass ? 1 : 0}`)) return;
    if (((l & EFER_LME) !== 0) !== hass && fail(c, K.eferLme, `HOST_IA32_EFER ${hex64(l, h)}: LME ${(l >>> 8) & 1} differs from "host address-space size" ${hass ? 1 : 0}`)) return;
  }
  if ((exit < 0 || (exit & ExitCtl.LOAD_PKRS) !== 0) && gate(c, exit, ExitCtl.LOAD_PKRS, S_PKRS, K.pkrs) === 1
    && hi(c, S_PKRS) !== 0) fail(c, K.pkrs, `HOST_IA32_PKRS ${hex64(lo(c, S_PKRS), hi(c, S_PKRS))} sets bits 63:32`);
}

/** SDM 26.2.3: host segment selectors and base addresses. */
export function checkHostSegmentAndDescriptorTableRegisters(c: CheckContext): void {
  for (let i = 0; i < S_SEL.length; i++) {
    const s = S_SEL[i]!;
    if (!has(c, s)) ne(c, K_SEL[i]!);
    else if ((lo(c, s) & 7) !== 0 && fail(c, K_SEL[i]!, `HOST_${SEL_NAMES[i]!.toUpperCase()}_SELECTOR ${hex32(lo(c, s))} has RPL or TI set`)) return;
  }
  if (!has(c, S_CS)) ne(c, K.csNull);
  else if (lo(c, S_CS) === 0 && fail(c, K.csNull, 'HOST_CS_SELECTOR is 0000H')) return;
  if (!has(c, S_TR)) ne(c, K.trNull);
  else if (lo(c, S_TR) === 0 && fail(c, K.trNull, 'HOST_TR_SELECTOR is 0000H')) return;
  const hass = bitOf(c.exit, ExitCtl.HOST_ADDRESS_SPACE_SIZE);
  if (hass === 1) { /* a null SS is fine for a 64-bit host */ }
  else if (hass < 0 || !has(c, S_SS)) ne(c, K.ssNull);
  else if (lo(c, S_SS) === 0 && fail(c, K.ssNull, 'HOST_SS_SELECTOR is 0000H while "host address-space size" is 0')) return;
  for (let i = 0; i < S_BASE.length; i++) {
    const s = S_BASE[i]!;
    if (!has(c, s)) ne(c, K_BASE[i]!);
    else if (!canonical(c, hi(c, s)) && fail(c, K_BASE[i]!, `HOST_${BASE_NAMES[i]!.toUpperCase()}_BASE ${hex64(lo(c, s), hi(c, s))} is not canonical`)) return;
  }
}

/** SDM 26.2.4: checks related to address-space size. */
export function checkHostAddressSpaceSize(c: CheckContext): void {
  const exit = c.exit, entry = c.entry;
  const hass = bitOf(exit, ExitCtl.HOST_ADDRESS_SPACE_SIZE), guest64 = bitOf(entry, EntryCtl.IA32E_MODE_GUEST);
  const lma = c.env.hostIa32e;

  // Without Intel 64, both controls must be 0. (A processor without Intel 64 reports "host address-space size"
  // and "IA-32e mode guest" as allowed-0 only, so the control checks normally fail first.)
  if (!c.cpu.intel64) {
    if (hass < 0 || guest64 < 0) ne(c, K.noIntel64);
    else if ((hass === 1 || guest64 === 1) && fail(c, K.noIntel64, 'the processor does not support Intel 64 but "host address-space size" or "IA-32e mode guest" is 1')) return;
  }
  if (lma === true || guest64 === 0) { /* not applicable */ }
  else if (lma === undefined || guest64 < 0) ne(c, K.outGuest);
  else if (fail(c, K.outGuest, 'VM entry from outside IA-32e mode with "IA-32e mode guest" = 1')) return;
  if (lma === true || hass === 0) { /* not applicable */ }
  else if (lma === undefined || hass < 0) ne(c, K.outHass);
  else if (fail(c, K.outHass, 'VM entry from outside IA-32e mode with "host address-space size" = 1')) return;
  if (lma === false || hass === 1) { /* not applicable */ }
  else if (lma === undefined || hass < 0) ne(c, K.inHass);
  else if (fail(c, K.inHass, 'VM entry from IA-32e mode with "host address-space size" = 0')) return;

  const cet = bitOf(exit, ExitCtl.LOAD_CET_STATE);
  if (hass < 0) {
    for (const k of [K.h0Guest, K.h0Pcide, K.h0Rip, K.h0Ssp, K.h1Pae, K.h1Rip, K.h1Ssp]) ne(c, k);
    return;
  }
  if (hass === 0) {
    if (guest64 < 0) ne(c, K.h0Guest);
    else if (guest64 === 1 && fail(c, K.h0Guest, '"host address-space size" is 0 and "IA-32e mode guest" is 1')) return;
    if (!has(c, S_CR4)) ne(c, K.h0Pcide);
    else if ((lo(c, S_CR4) & CR4_PCIDE) !== 0 && fail(c, K.h0Pcide, `"host address-space size" is 0 and HOST_CR4 ${hex32(lo(c, S_CR4))} sets PCIDE`)) return;
    if (!has(c, S_RIP)) ne(c, K.h0Rip);
    else if (hi(c, S_RIP) !== 0 && fail(c, K.h0Rip, `"host address-space size" is 0 and HOST_RIP ${hex64(lo(c, S_RIP), hi(c, S_RIP))} sets bits 63:32`)) return;
    if ((exit < 0 || (exit & ExitCtl.LOAD_CET_STATE) !== 0) && gate(c, exit, ExitCtl.LOAD_CET_STATE, S_SSP, K.h0Ssp) === 1
      && hi(c, S_SSP) !== 0) fail(c, K.h0Ssp, `"host address-space size" is 0 and HOST_SSP ${hex64(lo(c, S_SSP), hi(c, S_SSP))} sets bits 63:32`);
    return;
  }
  if (!has(c, S_CR4)) ne(c, K.h1Pae);
  else if ((lo(c, S_CR4) & CR4_PAE) === 0 && fail(c, K.h1Pae, `"host address-space size" is 1 and HOST_CR4 ${hex32(lo(c, S_CR4))} clears PAE`)) return;
  // Host RIP canonicality follows the LA57 bit of the CR4 the exit will load (5-level paging white paper, VMX section).
  if (!has(c, S_RIP) || !has(c, S_CR4)) ne(c, K.h1Rip);
  else {
    const width = (lo(c, S_CR4) & CR4_LA57) !== 0 ? 57 : 48;
    if (!canonicalWidth(hi(c, S_RIP), width)
      && fail(c, K.h1Rip, `HOST_RIP ${hex64(lo(c, S_RIP), hi(c, S_RIP))} is not canonical for ${width}-bit linear addresses`)) return;
  }
  if (cet === 0) return;
  if (cet < 0 || !has(c, S_SSP)) ne(c, K.h1Ssp);
  else if (!canonical(c, hi(c, S_SSP))) fail(c, K.h1Ssp, `HOST_SSP ${hex64(lo(c, S_SSP), hi(c, S_SSP))} is not canonical`);
}
