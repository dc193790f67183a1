// Stage 3 (end) of VM entry: guest non-register state (activity, interruptibility, pending debug exceptions, VMCS link
// pointer) and the PDPTE checks of PAE-paging guests. Failures are exit reason 33 with the catalogue's qualification
// (3 for NMI injection under STI blocking, 4 for the link pointer, 2 for PDPTEs).
// Must not: load any state; memory is read only through the environment. SDM Vol. 3C 26.3.1.5, 26.3.1.6 (26.3.2.4).
import { EntryCtl, Pin, Secondary } from '../generated/controls.js';
import {
  bitOf, ck, ctl, fail, has, hex32, hex64, hi, lo, ne, physOk, slot, type CheckContext,
} from './context.js';

const S_ACT = slot('GUEST_ACTIVITY_STATE'), S_INT = slot('GUEST_INTERRUPTIBILITY_INFO'), S_PDBG = slot('GUEST_PENDING_DBG_EXCEPTIONS');
const S_INFO = slot('VM_ENTRY_INTR_INFO_FIELD');
const S_SSAR = slot('GUEST_SS_AR_BYTES'), S_RFLAGS = slot('GUEST_RFLAGS'), S_DEBUGCTL = slot('GUEST_IA32_DEBUGCTL');
const S_LINK = slot('VMCS_LINK_POINTER'), S_EXECVMCS = slot('EXECUTIVE_VMCS_POINTER');
const S_CR0 = slot('GUEST_CR0'), S_CR3 = slot('GUEST_CR3'), S_CR4 = slot('GUEST_CR4');
const S_PDPTR = [slot('GUEST_PDPTR0'), slot('GUEST_PDPTR1'), slot('GUEST_PDPTR2'), slot('GUEST_PDPTR3')];

const K = {
  actSupported: ck('guest.activity.supported'), actHltDpl: ck('guest.activity.hlt-ss-dpl'), actBlocking: ck('guest.activity.blocking'),
  actHltEvent: ck('guest.activity.hlt-event'), actShutdownEvent: ck('guest.activity.shutdown-event'),
  actSipiEvent: ck('guest.activity.sipi-event'), actSipiSmm: ck('guest.activity.sipi-entry-to-smm'),
  intRsvd: ck('guest.interruptibility.reserved'), intBoth: ck('guest.interruptibility.sti-and-mov-ss'), intStiIf: ck('guest.interruptibility.sti-if'),
  intExt: ck('guest.interruptibility.ext-int-blocking'), intNmiMovSs: ck('guest.interruptibility.nmi-mov-ss'),
  intSmiOut: ck('guest.interruptibility.smi-outside-smm'), intSmiEntry: ck('guest.interruptibility.smi-entry-to-smm'),
  intNmiSti: ck('guest.interruptibility.nmi-sti'), intVnmi: ck('guest.interruptibility.virtual-nmi-blocking'),
  intEnclave: ck('guest.interruptibility.enclave'),
  pdbgRsvd: ck('guest.pending-dbg.reserved'), bsSet: ck('guest.pending-dbg.bs-set'), bsClear: ck('guest.pending-dbg.bs-clear'),
  rtmBits: ck('guest.pending-dbg.rtm-bits'), rtmUnsupported: ck('guest.pending-dbg.rtm-unsupported'), rtmMovSs: ck('guest.pending-dbg.rtm-mov-ss'),
  linkAlign: ck('guest.link.alignment'), linkWidth: ck('guest.link.width'), linkRev: ck('guest.link.revision-id'),
  linkShadow: ck('guest.link.shadow-bit'), linkCurrent: ck('guest.link.current-vmcs'), linkExec: ck('guest.link.executive-vmcs'),
  pdpte: [ck('guest.pdpte.0.reserved'), ck('guest.pdpte.1.reserved'), ck('guest.pdpte.2.reserved'), ck('guest.pdpte.3.reserved')],
} as const;

const ACT_ACTIVE = 0, ACT_HLT = 1, ACT_SHUTDOWN = 2, ACT_SIPI = 3;
const INT_STI = 1, INT_MOVSS = 2, INT_SMI = 4, INT_NMI = 8, INT_ENCLAVE = 0x10;
const TYPE_EXT_INT = 0, TYPE_NMI = 2, TYPE_HW_EXCEPTION = 3, TYPE_OTHER = 7;
const PDBG_RESERVED_LO = 0xfffe_aff0; // bits 31:17, 15, 13, 11:4 (bits 63:32 checked separately)
const PDBG_BS = 0x4000, PDBG_ENABLED_BP = 0x1000, PDBG_RTM = 0x1_0000;
const PDPTE_RESERVED_LO = 0x1e6; // bits 8:5 and 2:1

/** Injected event: -1 unknown, 0 none, else (1 << 16) | type << 8 | vector for valid events. */
function injected(info: number): number {
  if (info < 0) return -1;
  if ((info & 0x8000_0000) === 0) return 0;
  return 0x1_0000 | (info & 0x7ff);
}

/** SDM 26.3.1.5: activity state, interruptibility state, pending debug exceptions, VMCS link pointer. */
export function checkGuestNonRegisterState(c: CheckContext): void {
  const act = ctl(c, S_ACT), int = ctl(c, S_INT), ev = injected(ctl(c, S_INFO));
  const evType = ev > 0 ? (ev >>> 8) & 7 : -1, evVector = ev > 0 ? ev & 0xff : -1;
  const entry = c.entry;
  const toSmm = bitOf(entry, EntryCtl.ENTRY_TO_SMM);

  // ---- activity state ----
  if (act < 0) ne(c, K.actSupported);
  else if ((act > 3 || ((c.cpu.activityMask >>> act) & 1) === 0)
    && fail(c, K.actSupported, `GUEST_ACTIVITY_STATE ${act} is not a supported activity state`)) return;
  if (act >= 0 && act !== ACT_HLT) { /* not applicable */ }
  else if (act < 0 || !has(c, S_SSAR)) ne(c, K.actHltDpl);
  else if (((lo(c, S_SSAR) >>> 5) & 3) !== 0 && fail(c, K.actHltDpl, `activity state HLT with SS.DPL ${(lo(c, S_SSAR) >>> 5) & 3}`)) return;
  if (int >= 0 && (int & (INT_STI | INT_MOVSS)) === 0) { /* no blocking */ }
  else if (int < 0 || act < 0) ne(c, K.actBlocking);
  else if (act !== ACT_ACTIVE && fail(c, K.actBlocking, `GUEST_INTERRUPTIBILITY_INFO ${hex32(int)} blocks by STI/MOV SS while the activity state is ${act}`)) return;
  if (act >= 0 && act !== ACT_HLT || ev === 0) { /* not applicable */ }
  else if (act < 0 || ev < 0) ne(c, K.actHltEvent);
  else if (!(evType === TYPE_EXT_INT || evType === TYPE_NMI || (evType === TYPE_HW_EXCEPTION && (evVector === 1 || evVector === 18))
    || (evType === TYPE_OTHER && evVector === 0))
    && fail(c, K.actHltEvent, `activity state HLT blocks the injected event (type ${evType}, vector ${evVector})`)) return;
  if (act >= 0 && act !== ACT_SHUTDOWN || ev === 0) { /* not applicable */ }
  else if (act < 0 || ev < 0) ne(c, K.actShutdownEvent);
  else if (!(evType === TYPE_NMI || (evType === TYPE_HW_EXCEPTION && evVector === 18))
    && fail(c, K.actShutdownEvent, `activity state shutdown blocks the injected event (type ${evType}, vector ${evVector})`)) return;
  if (act >= 0 && act !== ACT_SIPI || ev === 0) { /* not applicable */ }
  else if (act < 0 || ev < 0) ne(c, K.actSipiEvent);
  else if (fail(c, K.actSipiEvent, `activity state wait-for-SIPI with an injected event (type ${evType}, vector ${evVector})`)) return;
  if (act >= 0 && act !== ACT_SIPI || toSmm === 0) { /* not applicable */ }
  else if (act < 0 || toSmm < 0) ne(c, K.actSipiSmm);
  else if (fail(c, K.actSipiSmm, 'activity state wait-for-SIPI with "entry to SMM" = 1')) return;

  // ---- interruptibility state ----
  if (int < 0) {
    for (const k of [K.intRsvd, K.intBoth, K.intStiIf, K.intExt, K.intNmiMovSs, K.intSmiOut, K.intSmiEntry, K.intNmiSti, K.intVnmi, K.intEnclave]) ne(c, k);
  } else if (checkInterruptibility(c, int, ev, evType, toSmm)) return;

  // ---- pending debug exceptions ----
  if (checkPendingDebug(c, int, act)) return;

  // ---- VMCS link pointer (qualification 4) ----
  checkLinkPointer(c, toSmm);
}

const intText = (int: number): string => `GUEST_INTERRUPTIBILITY_INFO ${hex32(int)}`;

function checkInterruptibility(c: CheckContext, int: number, ev: number, evType: number, toSmm: number): boolean {
  if ((int & 0xffff_ffe0) !== 0 && fail(c, K.intRsvd, `${intText(int)} sets reserved bits 31:5`)) return true;
  if ((int & (INT_STI | INT_MOVSS)) === (INT_STI | INT_MOVSS) && fail(c, K.intBoth, `${intText(int)} blocks by both STI and MOV SS`)) return true;
  if ((int & INT_STI) !== 0) {
    if (!has(c, S_RFLAGS)) ne(c, K.intStiIf);
    else if ((lo(c, S_RFLAGS) & 0x200) === 0 && fail(c, K.intStiIf, `${intText(int)} blocks by STI while GUEST_RFLAGS.IF is 0`)) return true;
  }
  if (ev < 0) ne(c, K.intExt);
  else if (evType === TYPE_EXT_INT && (int & (INT_STI | INT_MOVSS)) !== 0
    && fail(c, K.intExt, `${intText(int)} blocks by STI/MOV SS while an external interrupt is injected`)) return true;
  if (ev < 0) ne(c, K.intNmiMovSs);
  else if (evType === TYPE_NMI && (int & INT_MOVSS) !== 0 && fail(c, K.intNmiMovSs, `${intText(int)} blocks by MOV SS while an NMI is injected`)) return true;
  if ((int & INT_SMI) !== 0) {
    if (c.env.inSmm === undefined) ne(c, K.intSmiOut);
    else if (!c.env.inSmm && fail(c, K.intSmiOut, `${intText(int)} blocks SMIs outside SMM`)) return true;
  }
  if (toSmm < 0) ne(c, K.intSmiEntry);
  else if (toSmm === 1 && (int & INT_SMI) === 0 && fail(c, K.intSmiEntry, `"entry to SMM" is 1 and ${intText(int)} does not block SMIs`)) return true;
  // The SDM lets a processor require this ("may require"); the model requires it, with the qualification (3) the SDM
  // defines for the case.
  if (ev < 0) ne(c, K.intNmiSti);
  else if (evType === TYPE_NMI && (int & INT_STI) !== 0 && fail(c, K.intNmiSti, `${intText(int)} blocks by STI while an NMI is injected`)) return true;
  if (ev === 0 || (ev > 0 && evType !== TYPE_NMI) || (int & INT_NMI) === 0) { /* not applicable */ }
  else {
    const vnmi = bitOf(c.pin, Pin.VIRTUAL_NMIS);
    if (ev < 0 || vnmi < 0) ne(c, K.intVnmi);
    else if (vnmi === 1 && fail(c, K.intVnmi, `"virtual NMIs" is 1, an NMI is injected and ${intText(int)} blocks by NMI`)) return true;
  }
  if ((int & INT_ENCLAVE) !== 0 && ((int & INT_MOVSS) !== 0 || !c.cpu.sgx)
    && fail(c, K.intEnclave, `${intText(int)} sets enclave interruption ${c.cpu.sgx ? 'with blocking by MOV SS' : 'on a processor without SGX'}`)) return true;
  return false;
}

function checkPendingDebug(c: CheckContext, int: number, act: number): boolean {
  if (!has(c, S_PDBG)) {
    for (const k of [K.pdbgRsvd, K.bsSet, K.bsClear, K.rtmBits, K.rtmUnsupported, K.rtmMovSs]) ne(c, k);
    return false;
  }
  const l = lo(c, S_PDBG), h = hi(c, S_PDBG);
  if (((l & PDBG_RESERVED_LO) !== 0 || h !== 0)
    && fail(c, K.pdbgRsvd, `GUEST_PENDING_DBG_EXCEPTIONS ${hex64(l, h)} sets reserved bits 11:4, 13, 15 or 63:17`)) return true;
  // BS must mirror a pending single-step trap when events are blocked or the guest is halted.
  const blocked = int < 0 ? -1 : (int & (INT_STI | INT_MOVSS)) !== 0 ? 1 : 0;
  const halted = act < 0 ? -1 : act === ACT_HLT ? 1 : 0;
  const applies = blocked === 1 || halted === 1 ? 1 : blocked < 0 || halted < 0 ? -1 : 0;
  if (applies !== 0) {
    if (applies < 0 || !has(c, S_RFLAGS) || !has(c, S_DEBUGCTL)) { ne(c, K.bsSet); ne(c, K.bsClear); }
    else {
      const tf = (lo(c, S_RFLAGS) & 0x100) !== 0, btf = (lo(c, S_DEBUGCTL) & 2) !== 0, bs = (l & PDBG_BS) !== 0;
      if (tf && !btf && !bs && fail(c, K.bsSet, `RFLAGS.TF = 1, DEBUGCTL.BTF = 0 with STI/MOV-SS blocking or HLT, but pending-debug BS is 0`)) return true;
      if ((!tf || btf) && bs && fail(c, K.bsClear, `pending-debug BS is 1 but RFLAGS.TF = ${tf ? 1 : 0}, DEBUGCTL.BTF = ${btf ? 1 : 0}`)) return true;
    }
  }
  if ((l & PDBG_RTM) === 0) return false;
  if (((l & 0xefff) !== 0 || (l & PDBG_ENABLED_BP) === 0)
    && fail(c, K.rtmBits, `GUEST_PENDING_DBG_EXCEPTIONS ${hex64(l, h)}: RTM set needs bits 11:0 and 15:13 clear and bit 12 set`)) return true;
  if (!c.cpu.rtm && fail(c, K.rtmUnsupported, 'pending-debug RTM (bit 16) set on a processor without RTM')) return true;
  if (int < 0) ne(c, K.rtmMovSs);
  else if ((int & INT_MOVSS) !== 0 && fail(c, K.rtmMovSs, 'pending-debug RTM (bit 16) set while blocking by MOV SS')) return true;
  return false;
}

const LINK_CHECKS = [K.linkAlign, K.linkWidth, K.linkRev, K.linkShadow, K.linkCurrent, K.linkExec] as const;

function checkLinkPointer(c: CheckContext, toSmm: number): void {
  if (!has(c, S_LINK)) { for (const k of LINK_CHECKS) ne(c, k); return; }
  const l = lo(c, S_LINK), h = hi(c, S_LINK);
  if (l === 0xffff_ffff && h === 0xffff_ffff) return;
  const v = (): string => `VMCS_LINK_POINTER ${hex64(l, h)}`;
  if ((l & 0xfff) !== 0 && fail(c, K.linkAlign, `${v()} is not 4-KByte aligned`)) return;
  if (!physOk(c, h) && fail(c, K.linkWidth, `${v()} sets bits at or above MAXPHYADDR ${c.cpu.maxPhysAddr}`)) return;
  const addr = (BigInt(h) << 32n) | BigInt(l);
  const dword = c.env.readPhys?.(addr, 4);
  if (dword === undefined) { ne(c, K.linkRev); ne(c, K.linkShadow); }
  else {
    const d = Number(dword & 0xffff_ffffn) >>> 0;
    if ((d & 0x7fff_ffff) !== c.cpu.vmcsRevision
      && fail(c, K.linkRev, `${v()}: revision dword ${hex32(d)} does not name VMCS revision ${hex32(c.cpu.vmcsRevision)}`)) return;
    const shadow = bitOf(c.sec, Secondary.VMCS_SHADOWING);
    if (shadow < 0) ne(c, K.linkShadow);
    else if ((d >>> 31) !== shadow && fail(c, K.linkShadow, `${v()}: revision dword bit 31 is ${d >>> 31} but "VMCS shadowing" is ${shadow}`)) return;
  }
  const smm = c.env.inSmm;
  // Outside SMM (or entering SMM) the link pointer must not be the current VMCS; in SMM without "entry to SMM" it
  // must differ from the executive-VMCS pointer.
  const outsideRule = smm === false || toSmm === 1 ? 1 : smm === undefined || toSmm < 0 ? -1 : 0;
  if (outsideRule === 0) { /* the SMM rule applies instead */ }
  else if (outsideRule < 0 || c.env.currentVmptr === undefined) ne(c, K.linkCurrent);
  else if (c.env.currentVmptr === addr && fail(c, K.linkCurrent, `${v()} is the current-VMCS pointer`)) return;
  if (outsideRule === 1) return;
  if (outsideRule < 0 || !has(c, S_EXECVMCS)) ne(c, K.linkExec);
  else if (lo(c, S_EXECVMCS) === l && hi(c, S_EXECVMCS) === h) fail(c, K.linkExec, `${v()} is the executive-VMCS pointer`);
}

/** SDM 26.3.1.6 (classic numbering; loading in 26.3.2.4): PDPTEs of a guest that will use PAE paging. */
export function loadGuestPdptes(c: CheckContext): void {
  const entry = c.entry;
  const guest64 = bitOf(entry, EntryCtl.IA32E_MODE_GUEST);
  const pg = has(c, S_CR0) ? (lo(c, S_CR0) >>> 31) : -1;
  const pae = bitOf(ctl(c, S_CR4), 0x20);
  if (guest64 === 1 || pg === 0 || pae === 0) return;
  if (guest64 < 0 || pg < 0 || pae < 0) { for (const k of K.pdpte) ne(c, k); return; }
  const ept = bitOf(c.sec, Secondary.ENABLE_EPT);
  if (ept < 0 || (ept === 0 && (!has(c, S_CR3) || c.env.readPhys === undefined))) { for (const k of K.pdpte) ne(c, k); return; }
  // Without EPT the PDPTEs come from the 32-byte aligned table at CR3[31:5]. The SDM lets VM entry skip this
  // when PAE paging was already in use with the same CR3; the model always checks, which is also permitted.
  const table = BigInt(lo(c, S_CR3) & 0xffff_ffe0);
  for (let i = 0; i < 4; i++) {
    let pl: number, ph: number;
    if (ept === 1) {
      if (!has(c, S_PDPTR[i]!)) { ne(c, K.pdpte[i]!); continue; }
      pl = lo(c, S_PDPTR[i]!); ph = hi(c, S_PDPTR[i]!);
    } else {
      const e = c.env.readPhys!(table + BigInt(8 * i), 8);
      if (e === undefined) { ne(c, K.pdpte[i]!); continue; }
      pl = Number(e & 0xffff_ffffn) >>> 0; ph = Number(e >> 32n) >>> 0;
    }
    if ((pl & 1) === 0) continue;
    if (((pl & PDPTE_RESERVED_LO) !== 0 || !physOk(c, ph))
      && fail(c, K.pdpte[i]!, `PDPTE ${i} ${hex64(pl, ph)} (${ept === 1 ? `GUEST_PDPTR${i}` : `memory at ${hex32(Number(table) + 8 * i)}`}) is present with reserved bits set`)) return;
  }
}
