// Stage 3 (part) of VM entry: guest control registers, debug registers and MSRs; GDTR/IDTR; RIP, RFLAGS and SSP
// (failure = VM-entry failure, exit reason 33, qualification 0). One block per catalogue row, in catalogue order.
// Must not: check segment registers (guest-segments.ts) or non-register state (guest-non-register.ts).
// SDM Vol. 3C 26.3.1.1, 26.3.1.3, 26.3.1.4.
import { EntryCtl, Secondary } from '../generated/controls.js';
import {
  bitOf, canonical, canonicalWidth, ck, ctl, fail, has, hex32, hex64, hi, lo, ne, patValid, physOk, slot,
  type CheckContext,
} from './context.js';

const S_INFO = slot('VM_ENTRY_INTR_INFO_FIELD');
const S_CR0 = slot('GUEST_CR0'), S_CR3 = slot('GUEST_CR3'), S_CR4 = slot('GUEST_CR4');
const S_DEBUGCTL = slot('GUEST_IA32_DEBUGCTL'), S_DR7 = slot('GUEST_DR7');
const S_SYSESP = slot('GUEST_SYSENTER_ESP'), S_SYSEIP = slot('GUEST_SYSENTER_EIP');
const S_SCET = slot('GUEST_S_CET'), S_SSPTAB = slot('GUEST_INTR_SSP_TABLE'), S_SSP = slot('GUEST_SSP');
const S_PERF = slot('GUEST_IA32_PERF_GLOBAL_CTRL'), S_PAT = slot('GUEST_IA32_PAT'), S_EFER = slot('GUEST_IA32_EFER');
const S_BNDCFGS = slot('GUEST_BNDCFGS'), S_RTIT = slot('GUEST_IA32_RTIT_CTL'), S_LBR = slot('GUEST_IA32_LBR_CTL');
const S_PKRS = slot('GUEST_IA32_PKRS');
const S_GDTRB = slot('GUEST_GDTR_BASE'), S_IDTRB = slot('GUEST_IDTR_BASE'), S_GDTRL = slot('GUEST_GDTR_LIMIT'), S_IDTRL = slot('GUEST_IDTR_LIMIT');
const S_RIP = slot('GUEST_RIP'), S_RFLAGS = slot('GUEST_RFLAGS'), S_CSAR = slot('GUEST_CS_AR_BYTES');

const K = {
  cr0: ck('guest.cr0.fixed-bits'), pgPe: ck('guest.cr0.pg-without-pe'), cr4: ck('guest.cr4.fixed-bits'), cetWp: ck('guest.cr4.cet-requires-wp'),
  debugctl: ck('guest.debugctl.reserved'), ia32ePg: ck('guest.ia32e.paging'), ia32ePae: ck('guest.ia32e.pae'),
  pcide: ck('guest.cr4.pcide-outside-ia32e'), cr3: ck('guest.cr3.width'), dr7: ck('guest.dr7.high-bits'),
  sysEsp: ck('guest.sysenter-esp.canonical'), sysEip: ck('guest.sysenter-eip.canonical'),
  scetCanon: ck('guest.cet.s-cet-canonical'), scetRsvd: ck('guest.cet.s-cet-reserved'), sspTab: ck('guest.cet.ssp-table-canonical'),
  perf: ck('guest.perf-global-ctrl.reserved'), pat: ck('guest.pat.memory-types'),
  eferRsvd: ck('guest.efer.reserved'), eferLma: ck('guest.efer.lma'), eferLme: ck('guest.efer.lme'),
  bndRsvd: ck('guest.bndcfgs.reserved'), bndCanon: ck('guest.bndcfgs.canonical'),
  rtit: ck('guest.rtit-ctl.reserved'), lbr: ck('guest.lbr-ctl.reserved'), pkrs: ck('guest.pkrs.reserved'),
  gdtrBase: ck('guest.gdtr.base-canonical'), idtrBase: ck('guest.idtr.base-canonical'),
  gdtrLimit: ck('guest.gdtr.limit'), idtrLimit: ck('guest.idtr.limit'),
  ripHigh: ck('guest.rip.high-bits'), ripCanon: ck('guest.rip.canonical'),
  rflRsvd: ck('guest.rflags.reserved'), rflVm: ck('guest.rflags.vm'), rflIf: ck('guest.rflags.if'),
  sspAlign: ck('guest.ssp.alignment'), sspHigh: ck('guest.ssp.high-bits'), sspCanon: ck('guest.ssp.canonical'),
} as const;

const CR0_PE = 1, CR0_WP = 0x1_0000, CR0_PG = 0x8000_0000, CR0_CD_NW = 0x6000_0000;
const CR4_PAE = 0x20, CR4_LA57 = 0x1000, CR4_PCIDE = 0x2_0000, CR4_CET = 0x80_0000;
const EFER_LME = 0x100, EFER_LMA = 0x400;
const AR_L = 0x2000;
const RFLAGS_RESERVED_LO = 0xffc0_8028; // bits 31:22, 15, 5, 3 (bits 63:32 are checked separately)
const RFLAGS_VM = 0x2_0000, RFLAGS_IF = 0x200;
// IA32_RTIT_CTL bits the architecture defines (SDM Vol. 3C 33.2.8.2): 17:0, 22:19, 27:24, 31, 47:32, 54.
// CPUID leaf 14H can make some of them reserved; the model treats the full architectural set as supported.
const RTIT_VALID_LO = 0x8f7b_ffff, RTIT_VALID_HI = 0x0040_ffff;
// IA32_LBR_CTL (architectural LBRs): LBREn, OS, USR, CALL_STACK (3:0) and the branch-type filters (22:16).
const LBR_VALID_LO = 0x007f_000f;

/** Field gated by a VM-entry control bit: 0 not applicable, 1 evaluate, -1 undecidable (recorded). */
function gate(c: CheckContext, entry: number, mask: number, s: number, k: number): number {
  const on = bitOf(entry, mask);
  if (on === 0) return 0;
  if (on < 0 || !has(c, s)) { ne(c, k); return -1; }
  return 1;
}

/** SDM 26.3.1.1: guest control registers, debug registers and MSRs. */
export function checkGuestControlRegistersDebugRegistersAndMsrs(c: CheckContext): void {
  if (checkGuestControlRegisters(c)) return;
  if (checkGuestModeDebugAndSysenter(c)) return;
  checkGuestMsrs(c);
}

function checkGuestControlRegisters(c: CheckContext): boolean {
  const f = c.cpu;
  const cr0Known = has(c, S_CR0), cr4Known = has(c, S_CR4);
  const cr0 = cr0Known ? lo(c, S_CR0) : 0, cr4 = cr4Known ? lo(c, S_CR4) : 0;
  if (!cr0Known) ne(c, K.cr0);
  else {
    // CD and NW are never checked (VM entry leaves them unchanged); PE and PG are not checked with "unrestricted guest".
    const h = hi(c, S_CR0);
    const badLo = (((cr0 & ~f.cr0Fixed1Lo) | (f.cr0Fixed0Lo & ~cr0)) & ~CR0_CD_NW) >>> 0;
    const badHi = ((h & ~f.cr0Fixed1Hi) | (f.cr0Fixed0Hi & ~h)) >>> 0;
    if ((badLo | badHi) !== 0) {
      const urgBits = (badLo & (CR0_PE | CR0_PG)) >>> 0;
      const sec = urgBits === 0 ? 0 : c.sec;
      if (urgBits !== 0 && sec < 0 && (badLo & ~urgBits) === 0 && badHi === 0) ne(c, K.cr0);
      else {
        const eff = sec > 0 && (sec & Secondary.UNRESTRICTED_GUEST) !== 0 ? (badLo & ~(CR0_PE | CR0_PG)) >>> 0 : badLo;
        if ((eff | badHi) !== 0 && fail(c, K.cr0, `GUEST_CR0 ${hex64(cr0, h)}: bits ${hex64(eff, badHi)} violate IA32_VMX_CR0_FIXED0/1`)) return true;
      }
    }
  }
  if (!cr0Known) ne(c, K.pgPe);
  else if ((cr0 & CR0_PG) !== 0 && (cr0 & CR0_PE) === 0 && fail(c, K.pgPe, `GUEST_CR0 ${hex32(cr0)} sets PG without PE`)) return true;
  if (!cr4Known) ne(c, K.cr4);
  else {
    const h = hi(c, S_CR4);
    const badLo = ((cr4 & ~f.cr4Fixed1Lo) | (f.cr4Fixed0Lo & ~cr4)) >>> 0, badHi = ((h & ~f.cr4Fixed1Hi) | (f.cr4Fixed0Hi & ~h)) >>> 0;
    if ((badLo | badHi) !== 0 && fail(c, K.cr4, `GUEST_CR4 ${hex64(cr4, h)}: bits ${hex64(badLo, badHi)} violate IA32_VMX_CR4_FIXED0/1`)) return true;
  }
  if (!cr4Known || ((cr4 & CR4_CET) !== 0 && !cr0Known)) ne(c, K.cetWp);
  else if ((cr4 & CR4_CET) !== 0 && (cr0 & CR0_WP) === 0 && fail(c, K.cetWp, `GUEST_CR4 ${hex32(cr4)} sets CET while GUEST_CR0 ${hex32(cr0)} clears WP`)) return true;
  return false;
}

function checkGuestModeDebugAndSysenter(c: CheckContext): boolean {
  const f = c.cpu;
  const cr0Known = has(c, S_CR0), cr4Known = has(c, S_CR4);
  const cr0 = cr0Known ? lo(c, S_CR0) : 0, cr4 = cr4Known ? lo(c, S_CR4) : 0;
  const entry = c.entry;
  if ((entry < 0 || (entry & EntryCtl.LOAD_DEBUG_CONTROLS) !== 0) && gate(c, entry, EntryCtl.LOAD_DEBUG_CONTROLS, S_DEBUGCTL, K.debugctl) === 1) {
    const l = lo(c, S_DEBUGCTL), h = hi(c, S_DEBUGCTL);
    if (((l & ~f.debugctlValid) !== 0 || h !== 0) && fail(c, K.debugctl, `GUEST_IA32_DEBUGCTL ${hex64(l, h)} sets reserved bits`)) return true;
  }
  const guest64 = bitOf(entry, EntryCtl.IA32E_MODE_GUEST);
  if (guest64 === 0) { /* not applicable */ }
  else if (guest64 < 0 || !cr0Known) ne(c, K.ia32ePg);
  else if ((cr0 & CR0_PG) === 0 && fail(c, K.ia32ePg, `"IA-32e mode guest" is 1 and GUEST_CR0 ${hex32(cr0)} clears PG`)) return true;
  if (guest64 === 0) { /* not applicable */ }
  else if (guest64 < 0 || !cr4Known) ne(c, K.ia32ePae);
  else if ((cr4 & CR4_PAE) === 0 && fail(c, K.ia32ePae, `"IA-32e mode guest" is 1 and GUEST_CR4 ${hex32(cr4)} clears PAE`)) return true;
  if (guest64 === 1) { /* not applicable */ }
  else if (guest64 < 0 || !cr4Known) ne(c, K.pcide);
  else if ((cr4 & CR4_PCIDE) !== 0 && fail(c, K.pcide, `"IA-32e mode guest" is 0 and GUEST_CR4 ${hex32(cr4)} sets PCIDE`)) return true;
  if (!has(c, S_CR3)) ne(c, K.cr3);
  else if (!physOk(c, hi(c, S_CR3)) && fail(c, K.cr3, `GUEST_CR3 ${hex64(lo(c, S_CR3), hi(c, S_CR3))} sets bits at or above MAXPHYADDR ${f.maxPhysAddr}`)) return true;
  if ((entry < 0 || (entry & EntryCtl.LOAD_DEBUG_CONTROLS) !== 0) && gate(c, entry, EntryCtl.LOAD_DEBUG_CONTROLS, S_DR7, K.dr7) === 1
    && hi(c, S_DR7) !== 0 && fail(c, K.dr7, `GUEST_DR7 ${hex64(lo(c, S_DR7), hi(c, S_DR7))} sets bits 63:32`)) return true;
  if (!has(c, S_SYSESP)) ne(c, K.sysEsp);
  else if (!canonical(c, hi(c, S_SYSESP)) && fail(c, K.sysEsp, `GUEST_SYSENTER_ESP ${hex64(lo(c, S_SYSESP), hi(c, S_SYSESP))} is not canonical`)) return true;
  if (!has(c, S_SYSEIP)) ne(c, K.sysEip);
  else if (!canonical(c, hi(c, S_SYSEIP)) && fail(c, K.sysEip, `GUEST_SYSENTER_EIP ${hex64(lo(c, S_SYSEIP), hi(c, S_SYSEIP))} is not canonical`)) return true;
  return false;
}

function checkGuestMsrs(c: CheckContext): void {
  const f = c.cpu;
  const cr0Known = has(c, S_CR0);
  const cr0 = cr0Known ? lo(c, S_CR0) : 0;
  const entry = c.entry;
  const guest64 = bitOf(entry, EntryCtl.IA32E_MODE_GUEST);
  if ((entry < 0 || (entry & EntryCtl.LOAD_CET_STATE) !== 0) && gate(c, entry, EntryCtl.LOAD_CET_STATE, S_SCET, K.scetCanon) === 1
    && !canonical(c, hi(c, S_SCET)) && fail(c, K.scetCanon, `GUEST_S_CET ${hex64(lo(c, S_SCET), hi(c, S_SCET))} is not canonical`)) return;
  if ((entry < 0 || (entry & EntryCtl.LOAD_CET_STATE) !== 0) && gate(c, entry, EntryCtl.LOAD_CET_STATE, S_SCET, K.scetRsvd) === 1) {
    const l = lo(c, S_SCET);
    if (((l & 0x3c0) !== 0 || (l & 0xc00) === 0xc00)
      && fail(c, K.scetRsvd, `GUEST_S_CET ${hex64(l, hi(c, S_SCET))} sets reserved bits 9:6 or both SUPPRESS and TRACKER`)) return;
  }
  if ((entry < 0 || (entry & EntryCtl.LOAD_CET_STATE) !== 0) && gate(c, entry, EntryCtl.LOAD_CET_STATE, S_SSPTAB, K.sspTab) === 1
    && !canonical(c, hi(c, S_SSPTAB)) && fail(c, K.sspTab, `GUEST_INTR_SSP_TABLE ${hex64(lo(c, S_SSPTAB), hi(c, S_SSPTAB))} is not canonical`)) return;
  if ((entry < 0 || (entry & EntryCtl.LOAD_IA32_PERF_GLOBAL_CTRL) !== 0) && gate(c, entry, EntryCtl.LOAD_IA32_PERF_GLOBAL_CTRL, S_PERF, K.perf) === 1) {
    const l = lo(c, S_PERF), h = hi(c, S_PERF);
    const badLo = (l & ~f.perfValidLo) >>> 0, badHi = (h & ~f.perfValidHi) >>> 0;
    if ((badLo | badHi) !== 0 && fail(c, K.perf, `GUEST_IA32_PERF_GLOBAL_CTRL ${hex64(l, h)}: reserved bits ${hex64(badLo, badHi)} set`)) return;
  }
  if ((entry < 0 || (entry & EntryCtl.LOAD_IA32_PAT) !== 0) && gate(c, entry, EntryCtl.LOAD_IA32_PAT, S_PAT, K.pat) === 1
    && !patValid(lo(c, S_PAT), hi(c, S_PAT)) && fail(c, K.pat, `GUEST_IA32_PAT ${hex64(lo(c, S_PAT), hi(c, S_PAT))} has a byte that is not 0, 1, 4, 5, 6 or 7`)) return;
  const efer = gate(c, entry, EntryCtl.LOAD_IA32_EFER, S_EFER, K.eferRsvd);
  if (efer < 0) { ne(c, K.eferLma); ne(c, K.eferLme); }
  else if (efer === 1) {
    const l = lo(c, S_EFER), h = hi(c, S_EFER), lma = (l & EFER_LMA) !== 0, lme = (l & EFER_LME) !== 0;
    if (((l & ~f.eferValid) !== 0 || h !== 0) && fail(c, K.eferRsvd, `GUEST_IA32_EFER ${hex64(l, h)} sets reserved bits`)) return;
    if (lma !== (guest64 === 1) && fail(c, K.eferLma, `GUEST_IA32_EFER ${hex64(l, h)}: LMA ${lma ? 1 : 0} differs from "IA-32e mode guest" ${guest64}`)) return;
    if (!cr0Known) ne(c, K.eferLme);
    else if ((cr0 & CR0_PG) !== 0 && lme !== lma && fail(c, K.eferLme, `GUEST_IA32_EFER ${hex64(l, h)}: LME differs from LMA while GUEST_CR0.PG is 1`)) return;
  }
  const bnd = gate(c, entry, EntryCtl.LOAD_IA32_BNDCFGS, S_BNDCFGS, K.bndRsvd);
  if (bnd < 0) ne(c, K.bndCanon);
  else if (bnd === 1) {
    const l = lo(c, S_BNDCFGS), h = hi(c, S_BNDCFGS);
    if ((l & 0xffc) !== 0 && fail(c, K.bndRsvd, `GUEST_BNDCFGS ${hex64(l, h)} sets reserved bits 11:2`)) return;
    if (!canonical(c, h) && fail(c, K.bndCanon, `GUEST_BNDCFGS ${hex64(l, h)}: bound-directory base (bits 63:12) is not canonical`)) return;
  }
  if ((entry < 0 || (entry & EntryCtl.LOAD_IA32_RTIT_CTL) !== 0) && gate(c, entry, EntryCtl.LOAD_IA32_RTIT_CTL, S_RTIT, K.rtit) === 1) {
    const l = lo(c, S_RTIT), h = hi(c, S_RTIT);
    if (((l & ~RTIT_VALID_LO) !== 0 || (h & ~RTIT_VALID_HI) !== 0) && fail(c, K.rtit, `GUEST_IA32_RTIT_CTL ${hex64(l, h)} sets reserved bits`)) return;
  }
  if ((entry < 0 || (entry & EntryCtl.LOAD_GUEST_IA32_LBR_CTL) !== 0) && gate(c, entry, EntryCtl.LOAD_GUEST_IA32_LBR_CTL, S_LBR, K.lbr) === 1) {
    const l = lo(c, S_LBR), h = hi(c, S_LBR);
    if (((l & ~LBR_VALID_LO) !== 0 || h !== 0) && fail(c, K.lbr, `GUEST_IA32_LBR_CTL ${hex64(l, h)} sets reserved bits`)) return;
  }
  if ((entry < 0 || (entry & EntryCtl.LOAD_PKRS) !== 0) && gate(c, entry, EntryCtl.LOAD_PKRS, S_PKRS, K.pkrs) === 1
    && hi(c, S_PKRS) !== 0) fail(c, K.pkrs, `GUEST_IA32_PKRS ${hex64(lo(c, S_PKRS), hi(c, S_PKRS))} sets bits 63:32`);
}

/** SDM 26.3.1.3: GDTR and IDTR. */
export function checkGuestDescriptorTableRegisters(c: CheckContext): void {
  if (!has(c, S_GDTRB)) ne(c, K.gdtrBase);
  else if (!canonical(c, hi(c, S_GDTRB)) && fail(c, K.gdtrBase, `GUEST_GDTR_BASE ${hex64(lo(c, S_GDTRB), hi(c, S_GDTRB))} is not canonical`)) return;
  if (!has(c, S_IDTRB)) ne(c, K.idtrBase);
  else if (!canonical(c, hi(c, S_IDTRB)) && fail(c, K.idtrBase, `GUEST_IDTR_BASE ${hex64(lo(c, S_IDTRB), hi(c, S_IDTRB))} is not canonical`)) return;
  if (!has(c, S_GDTRL)) ne(c, K.gdtrLimit);
  else if ((lo(c, S_GDTRL) & 0xffff_0000) !== 0 && fail(c, K.gdtrLimit, `GUEST_GDTR_LIMIT ${hex32(lo(c, S_GDTRL))} sets bits 31:16`)) return;
  if (!has(c, S_IDTRL)) ne(c, K.idtrLimit);
  else if ((lo(c, S_IDTRL) & 0xffff_0000) !== 0) fail(c, K.idtrLimit, `GUEST_IDTR_LIMIT ${hex32(lo(c, S_IDTRL))} sets bits 31:16`);
}

/** SDM 26.3.1.4: RIP, RFLAGS and SSP. */
export function checkGuestRipAndRflags(c: CheckContext): void {
  const entry = c.entry;
  const guest64 = bitOf(entry, EntryCtl.IA32E_MODE_GUEST);
  const csL = bitOf(ctl(c, S_CSAR), AR_L);
  // 64-bit mode after entry: -1 unknown, 0 no, 1 yes ("IA-32e mode guest" = 1 and CS.L = 1).
  const mode64 = guest64 === 0 || csL === 0 ? 0 : guest64 < 0 || csL < 0 ? -1 : 1;
  if (mode64 === 1) { /* RIP may use 64 bits */ }
  else if (mode64 < 0 || !has(c, S_RIP)) ne(c, K.ripHigh);
  else if (hi(c, S_RIP) !== 0 && fail(c, K.ripHigh, `GUEST_RIP ${hex64(lo(c, S_RIP), hi(c, S_RIP))} sets bits 63:32 outside 64-bit mode`)) return;
  if (mode64 === 0) { /* not applicable */ }
  else if (mode64 < 0 || !has(c, S_RIP) || !has(c, S_CR4)) ne(c, K.ripCanon);
  else {
    // The linear-address width for this check follows the guest CR4.LA57 the entry loads (5-level paging white paper).
    const width = (lo(c, S_CR4) & CR4_LA57) !== 0 ? 57 : 48;
    if (!canonicalWidth(hi(c, S_RIP), width)
      && fail(c, K.ripCanon, `GUEST_RIP ${hex64(lo(c, S_RIP), hi(c, S_RIP))} is not canonical for ${width}-bit linear addresses`)) return;
  }
  const rflKnown = has(c, S_RFLAGS);
  const rfl = rflKnown ? lo(c, S_RFLAGS) : 0;
  if (!rflKnown) ne(c, K.rflRsvd);
  else if (((rfl & RFLAGS_RESERVED_LO) !== 0 || hi(c, S_RFLAGS) !== 0 || (rfl & 2) === 0)
    && fail(c, K.rflRsvd, `GUEST_RFLAGS ${hex64(rfl, hi(c, S_RFLAGS))} sets reserved bits 63:22, 15, 5 or 3, or clears bit 1`)) return;
  if (rflKnown && (rfl & RFLAGS_VM) === 0) { /* not virtual-8086 */ }
  else if (!rflKnown || guest64 < 0 || (guest64 === 0 && !has(c, S_CR0))) ne(c, K.rflVm);
  else if ((guest64 === 1 || (lo(c, S_CR0) & CR0_PE) === 0)
    && fail(c, K.rflVm, `GUEST_RFLAGS ${hex32(rfl)} sets VM while ${guest64 === 1 ? '"IA-32e mode guest" is 1' : 'GUEST_CR0.PE is 0'}`)) return;
  const info = ctl(c, S_INFO);
  const extInt = info < 0 ? -1 : info >= 0x8000_0000 && (info & 0x700) === 0 ? 1 : 0; // valid, type 0
  if (extInt === 0 || (rflKnown && (rfl & RFLAGS_IF) !== 0)) { /* satisfied */ }
  else if (extInt < 0 || !rflKnown) ne(c, K.rflIf);
  else if (fail(c, K.rflIf, `an external interrupt is injected (VM_ENTRY_INTR_INFO_FIELD ${hex32(info)}) while GUEST_RFLAGS.IF is 0`)) return;

  const cet = gate(c, entry, EntryCtl.LOAD_CET_STATE, S_SSP, K.sspAlign);
  if (cet < 0) { ne(c, K.sspHigh); ne(c, K.sspCanon); return; }
  if (cet === 0) return;
  const sl = lo(c, S_SSP), sh = hi(c, S_SSP);
  if ((sl & 3) !== 0 && fail(c, K.sspAlign, `GUEST_SSP ${hex64(sl, sh)} has bits 1:0 set`)) return;
  if (mode64 === 1) { /* 64-bit SSP allowed */ }
  else if (mode64 < 0) ne(c, K.sspHigh);
  else if (sh !== 0 && fail(c, K.sspHigh, `GUEST_SSP ${hex64(sl, sh)} sets bits 63:32 outside 64-bit mode`)) return;
  if (mode64 === 0) return;
  if (mode64 < 0) ne(c, K.sspCanon);
  else if (!canonical(c, sh)) fail(c, K.sspCanon, `GUEST_SSP ${hex64(sl, sh)} is not canonical`);
}
