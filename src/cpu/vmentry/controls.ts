// Stage 1 of VM entry: checks on the VM-execution, VM-exit and VM-entry control fields (failure = VMfailValid(7)).
// One block per catalogue row, in catalogue order; every failure names exactly one check id.
// Must not: look at host or guest state except where the SDM makes a control check depend on it (guest CR0.PE).
// SDM Vol. 3C 26.2.1.1 (VM-execution), 26.2.1.2 (VM-exit), 26.2.1.3 (VM-entry control fields).
import { EntryCtl, ExitCtl, Pin, Primary, Secondary } from '../generated/controls.js';
import {
  badBits, bitOf, ck, ctl, fail, has, hex32, hex64, hi, lo, ne, physOk, slot, type CheckContext,
} from './context.js';

const S_TER = slot('TERTIARY_VM_EXEC_CONTROL'), S_CR3CNT = slot('CR3_TARGET_COUNT');
const S_IOA = slot('IO_BITMAP_A'), S_IOB = slot('IO_BITMAP_B'), S_MSRBMP = slot('MSR_BITMAP');
const S_VAPIC = slot('VIRTUAL_APIC_PAGE_ADDR'), S_TPR = slot('TPR_THRESHOLD'), S_APICACC = slot('APIC_ACCESS_ADDR');
const S_PINV = slot('POSTED_INTR_NV'), S_PIDESC = slot('POSTED_INTR_DESC_ADDR'), S_VPID = slot('VIRTUAL_PROCESSOR_ID');
const S_EPTP = slot('EPT_POINTER'), S_PML = slot('PML_ADDRESS'), S_SPPTP = slot('SPPTP');
const S_VMFUNC = slot('VM_FUNCTION_CONTROL'), S_EPTPLIST = slot('EPTP_LIST_ADDRESS');
const S_VMREAD = slot('VMREAD_BITMAP'), S_VMWRITE = slot('VMWRITE_BITMAP'), S_VE = slot('VE_INFORMATION_ADDRESS');
const S_PIDTAB = slot('PID_POINTER_TABLE');
const S_EXIT2 = slot('SECONDARY_VM_EXIT_CONTROLS');
const S_XSTCNT = slot('VM_EXIT_MSR_STORE_COUNT'), S_XSTADDR = slot('VM_EXIT_MSR_STORE_ADDR');
const S_XLDCNT = slot('VM_EXIT_MSR_LOAD_COUNT'), S_XLDADDR = slot('VM_EXIT_MSR_LOAD_ADDR');
const S_INFO = slot('VM_ENTRY_INTR_INFO_FIELD');
const S_ERRCODE = slot('VM_ENTRY_EXCEPTION_ERROR_CODE'), S_ILEN = slot('VM_ENTRY_INSTRUCTION_LEN');
const S_ELDCNT = slot('VM_ENTRY_MSR_LOAD_COUNT'), S_ELDADDR = slot('VM_ENTRY_MSR_LOAD_ADDR'), S_GCR0 = slot('GUEST_CR0');

const K = {
  pin: ck('ctrl.pin.allowed-settings'), pri: ck('ctrl.primary.allowed-settings'), sec: ck('ctrl.secondary.allowed-settings'),
  ter: ck('ctrl.tertiary.allowed-settings'), cr3cnt: ck('ctrl.cr3-target-count.limit'),
  ioaAlign: ck('ctrl.io-bitmap-a.alignment'), ioaWidth: ck('ctrl.io-bitmap-a.width'),
  iobAlign: ck('ctrl.io-bitmap-b.alignment'), iobWidth: ck('ctrl.io-bitmap-b.width'),
  msrAlign: ck('ctrl.msr-bitmap.alignment'), msrWidth: ck('ctrl.msr-bitmap.width'),
  vapicAlign: ck('ctrl.virtual-apic.alignment'), vapicWidth: ck('ctrl.virtual-apic.width'),
  tprRsvd: ck('ctrl.tpr-threshold.reserved'), tprVtpr: ck('ctrl.tpr-threshold.vtpr'),
  noTprX2apic: ck('ctrl.no-tpr-shadow.virtualize-x2apic'), noTprApicReg: ck('ctrl.no-tpr-shadow.apic-register-virtualization'),
  noTprVid: ck('ctrl.no-tpr-shadow.virtual-interrupt-delivery'), noTprIpiv: ck('ctrl.no-tpr-shadow.ipi-virtualization'),
  vnmi: ck('ctrl.nmi.virtual-nmis-without-nmi-exiting'), nmiWin: ck('ctrl.nmi.nmi-window-without-virtual-nmis'),
  apicAlign: ck('ctrl.apic-access.alignment'), apicWidth: ck('ctrl.apic-access.width'),
  x2apicAcc: ck('ctrl.virtualize-x2apic.apic-access'), vidExt: ck('ctrl.virtual-interrupt-delivery.external-interrupt-exiting'),
  piVid: ck('ctrl.posted-interrupts.virtual-interrupt-delivery'), piAck: ck('ctrl.posted-interrupts.acknowledge-interrupt-on-exit'),
  piNv: ck('ctrl.posted-interrupts.notification-vector'), piAlign: ck('ctrl.posted-interrupts.descriptor-alignment'),
  piWidth: ck('ctrl.posted-interrupts.descriptor-width'), vpid: ck('ctrl.vpid.nonzero'),
  eptMt: ck('ctrl.eptp.memory-type'), eptWalk: ck('ctrl.eptp.walk-length'), eptAd: ck('ctrl.eptp.accessed-dirty'),
  eptSss: ck('ctrl.eptp.supervisor-shadow-stack'), eptRsvd: ck('ctrl.eptp.reserved'), eptWidth: ck('ctrl.eptp.width'),
  pmlEpt: ck('ctrl.pml.requires-ept'), pmlAlign: ck('ctrl.pml.alignment'), pmlWidth: ck('ctrl.pml.width'),
  urgEpt: ck('ctrl.unrestricted-guest.requires-ept'), mbecEpt: ck('ctrl.mode-based-execute.requires-ept'),
  sppEpt: ck('ctrl.spp.requires-ept'), sppAlign: ck('ctrl.spp.alignment'), sppWidth: ck('ctrl.spp.width'),
  vmfunc: ck('ctrl.vmfunc.allowed-settings'), vmfuncEpt: ck('ctrl.vmfunc.eptp-switching-requires-ept'),
  eptpListAlign: ck('ctrl.vmfunc.eptp-list.alignment'), eptpListWidth: ck('ctrl.vmfunc.eptp-list.width'),
  vmreadAlign: ck('ctrl.vmcs-shadowing.vmread-bitmap.alignment'), vmreadWidth: ck('ctrl.vmcs-shadowing.vmread-bitmap.width'),
  vmwriteAlign: ck('ctrl.vmcs-shadowing.vmwrite-bitmap.alignment'), vmwriteWidth: ck('ctrl.vmcs-shadowing.vmwrite-bitmap.width'),
  veAlign: ck('ctrl.ept-violation-ve.info.alignment'), veWidth: ck('ctrl.ept-violation-ve.info.width'),
  pidAlign: ck('ctrl.ipi-virtualization.pid-table.alignment'), pidWidth: ck('ctrl.ipi-virtualization.pid-table.width'),
  exit: ck('ctrl.exit.allowed-settings'), exit2: ck('ctrl.exit2.allowed-settings'), ptSave: ck('ctrl.exit.save-preemption-timer'),
  xstAlign: ck('ctrl.exit-msr-store.alignment'), xstWidth: ck('ctrl.exit-msr-store.width'), xstLast: ck('ctrl.exit-msr-store.last-byte'),
  xldAlign: ck('ctrl.exit-msr-load.alignment'), xldWidth: ck('ctrl.exit-msr-load.width'), xldLast: ck('ctrl.exit-msr-load.last-byte'),
  entry: ck('ctrl.entry.allowed-settings'), evType: ck('ctrl.entry.event.type-reserved'), evNmiVec: ck('ctrl.entry.event.nmi-vector'),
  evHwVec: ck('ctrl.entry.event.hw-exception-vector'), evOtherVec: ck('ctrl.entry.event.other-event-vector'),
  ecMissing: ck('ctrl.entry.event.error-code-missing'), ecNotHw: ck('ctrl.entry.event.error-code-not-hw-exception'),
  ecReal: ck('ctrl.entry.event.error-code-real-mode'), ecVector: ck('ctrl.entry.event.error-code-vector'),
  evRsvd: ck('ctrl.entry.event.reserved-bits'), ecRsvd: ck('ctrl.entry.event.error-code-reserved'),
  ilen: ck('ctrl.entry.event.instruction-length'), ilenZero: ck('ctrl.entry.event.instruction-length-zero'),
  eldAlign: ck('ctrl.entry-msr-load.alignment'), eldWidth: ck('ctrl.entry-msr-load.width'), eldLast: ck('ctrl.entry-msr-load.last-byte'),
  smm: ck('ctrl.entry.smm-outside-smm'), dualMon: ck('ctrl.entry.dual-monitor-outside-smm'), smmDual: ck('ctrl.entry.smm-and-dual-monitor'),
} as const;

const TER_IPI_VIRTUALIZATION = 0x10; // tertiary bit 4 (low word)
const ENTRY_INFO_RESERVED = 0x7fff_f000;
/** Hardware exceptions that deliver an error code (#DF, #TS, #NP, #SS, #GP, #PF, #AC). */
const ERROR_CODE_VECTORS = (1 << 8) | (1 << 10) | (1 << 11) | (1 << 12) | (1 << 13) | (1 << 14) | (1 << 17);

/**
 * A page-or-smaller aligned physical address gated by a control: `enable` is -1 (unknown), 0 or 1.
 * Returns true when the run must stop.
 */
function addressChecks(
  c: CheckContext, enable: number, s: number, alignMask: number, kAlign: number, kWidth: number, what: string,
): boolean {
  if (enable === 0) return false;
  if (enable < 0 || !has(c, s)) {
    ne(c, kAlign);
    ne(c, kWidth);
    return false;
  }
  const l = lo(c, s), h = hi(c, s);
  if ((l & alignMask) !== 0 && fail(c, kAlign, `${what} ${hex64(l, h)} has bits ${alignMask === 0xfff ? '11:0' : alignMask === 0x3f ? '5:0' : '2:0'} set`)) return true;
  if (!physOk(c, h) && fail(c, kWidth, `${what} ${hex64(l, h)} sets bits at or above MAXPHYADDR ${c.cpu.maxPhysAddr}`)) return true;
  return false;
}

/** MSR-area address and count (SDM 26.2.1.2/26.2.1.3): 16-byte aligned; first and last byte within MAXPHYADDR. */
function msrAreaChecks(
  c: CheckContext, sCount: number, sAddr: number, kAlign: number, kWidth: number, kLast: number, what: string,
): boolean {
  if (!has(c, sCount)) {
    ne(c, kAlign); ne(c, kWidth); ne(c, kLast);
    return false;
  }
  const count = lo(c, sCount);
  if (count === 0) return false;
  if (!has(c, sAddr)) {
    ne(c, kAlign); ne(c, kWidth); ne(c, kLast);
    return false;
  }
  const l = lo(c, sAddr), h = hi(c, sAddr);
  if ((l & 0xf) !== 0 && fail(c, kAlign, `${what} address ${hex64(l, h)} is not 16-byte aligned (count ${count})`)) return true;
  if (!physOk(c, h) && fail(c, kWidth, `${what} address ${hex64(l, h)} sets bits at or above MAXPHYADDR ${c.cpu.maxPhysAddr}`)) return true;
  // Last byte = address + 16·count - 1, computed wider than MAXPHYADDR (exact: < 2^53 while the high word is in range).
  const last = l + count * 16 - 1;
  const lastHi = h + Math.floor(last / 0x1_0000_0000);
  if ((lastHi > 0xffff_ffff || (lastHi & c.cpu.physHiMask) !== 0)
    && fail(c, kLast, `${what} area ${hex64(l, h)} + 16 * ${count} - 1 ends beyond MAXPHYADDR ${c.cpu.maxPhysAddr}`)) return true;
  return false;
}

/** "Use TPR shadow" is 0 while an APIC-virtualization control is 1. Returns true when the run must stop. */
function noTprShadow(c: CheckContext, tpr: number, k: number, state: number, what: string): boolean {
  if (tpr === 1 || state === 0) return false;
  if (tpr < 0 || state < 0) { ne(c, k); return false; }
  return fail(c, k, `"use TPR shadow" is 0 while "${what}" is 1`);
}

/** A control that needs "enable EPT". Returns true when the run must stop. */
function requiresEpt(c: CheckContext, ept: number, k: number, state: number, what: string): boolean {
  if (state === 0 || ept === 1) return false;
  if (state < 0 || ept < 0) { ne(c, k); return false; }
  return fail(c, k, `"${what}" is 1 while "enable EPT" is 0`);
}

/** SDM 26.2.1.1: checks on the VM-execution control fields. */
// (Split into sub-functions by SDM bullet group: each stays small enough for V8 to inline its helpers.)
export function checkVmExecutionControlFields(c: CheckContext): void {
  if (checkExecutionAllowedSettings(c)) return;
  if (checkBitmapsAndTprShadow(c)) return;
  if (checkNmiApicAccessAndPostedInterrupts(c)) return;
  if (checkVpidAndEpt(c)) return;
  checkVmFunctionsShadowingAndVe(c);
}

/** Tertiary controls' low word as the processor uses them: 0 when not activated, -1 when unknown. */
function effectiveTertiaryLo(c: CheckContext, pri: number): number {
  const on = bitOf(pri, Primary.ACTIVATE_TERTIARY_CONTROLS);
  if (on === 0) return 0;
  return on < 0 || !has(c, S_TER) ? -1 : lo(c, S_TER);
}

function checkExecutionAllowedSettings(c: CheckContext): boolean {
  const f = c.cpu;
  const pin = c.pin, pri = c.pri;

  if (pin < 0) ne(c, K.pin);
  else {
    const bad = badBits(pin, f.pinMust, f.pinMay);
    if (bad !== 0 && fail(c, K.pin, `PIN_BASED_VM_EXEC_CONTROL ${hex32(pin)}: bits ${hex32(bad)} violate allowed settings (must-be-1 ${hex32(f.pinMust)}, may-be-1 ${hex32(f.pinMay)})`)) return true;
  }
  if (pri < 0) ne(c, K.pri);
  else {
    const bad = badBits(pri, f.priMust, f.priMay);
    if (bad !== 0 && fail(c, K.pri, `CPU_BASED_VM_EXEC_CONTROL ${hex32(pri)}: bits ${hex32(bad)} violate allowed settings (must-be-1 ${hex32(f.priMust)}, may-be-1 ${hex32(f.priMay)})`)) return true;
  }
  const sec = c.sec;
  if (pri >= 0 && (pri & Primary.ACTIVATE_SECONDARY_CONTROLS) === 0) { /* not checked: treated as all 0 */ }
  else if (sec < 0) ne(c, K.sec);
  else {
    const bad = badBits(sec, f.secMust, f.secMay);
    if (bad !== 0 && fail(c, K.sec, `SECONDARY_VM_EXEC_CONTROL ${hex32(sec)}: bits ${hex32(bad)} are reserved (may-be-1 ${hex32(f.secMay)})`)) return true;
  }
  // Tertiary controls exist only when "activate tertiary controls" is 1 (64-bit field, allowed-1 only).
  const terOn = bitOf(pri, Primary.ACTIVATE_TERTIARY_CONTROLS);
  if (terOn < 0 || (terOn === 1 && !has(c, S_TER))) ne(c, K.ter);
  else if (terOn === 1) {
    const terLo = lo(c, S_TER);
    const th = hi(c, S_TER);
    const badLo = (terLo & ~f.terMayLo) >>> 0, badHi = (th & ~f.terMayHi) >>> 0;
    if ((badLo | badHi) !== 0 && fail(c, K.ter, `TERTIARY_VM_EXEC_CONTROL ${hex64(terLo, th)}: bits ${hex64(badLo, badHi)} are reserved`)) return true;
  }

  const cnt = ctl(c, S_CR3CNT);
  if (cnt < 0) ne(c, K.cr3cnt);
  else if (cnt > f.cr3TargetCount && fail(c, K.cr3cnt, `CR3_TARGET_COUNT ${cnt} exceeds the ${f.cr3TargetCount} CR3-target values IA32_VMX_MISC[24:16] supports`)) return true;
  return false;
}

function checkBitmapsAndTprShadow(c: CheckContext): boolean {
  const pri = c.pri, sec = c.sec, terLo = effectiveTertiaryLo(c, pri);
  const io = bitOf(pri, Primary.USE_IO_BITMAPS);
  if (addressChecks(c, io, S_IOA, 0xfff, K.ioaAlign, K.ioaWidth, 'IO_BITMAP_A')) return true;
  if (addressChecks(c, io, S_IOB, 0xfff, K.iobAlign, K.iobWidth, 'IO_BITMAP_B')) return true;
  if (addressChecks(c, bitOf(pri, Primary.USE_MSR_BITMAPS), S_MSRBMP, 0xfff, K.msrAlign, K.msrWidth, 'MSR_BITMAP')) return true;
  const tpr = bitOf(pri, Primary.USE_TPR_SHADOW);
  if (addressChecks(c, tpr, S_VAPIC, 0xfff, K.vapicAlign, K.vapicWidth, 'VIRTUAL_APIC_PAGE_ADDR')) return true;

  const vid = bitOf(sec, Secondary.VIRTUAL_INTERRUPT_DELIVERY);
  const vapicAcc = bitOf(sec, Secondary.VIRTUALIZE_APIC_ACCESSES);
  // TPR threshold bits 31:4 (TPR shadow, no virtual-interrupt delivery).
  if (tpr === 0 || vid === 1) { /* not applicable */ }
  else if (tpr < 0 || vid < 0 || !has(c, S_TPR)) ne(c, K.tprRsvd);
  else {
    const t = lo(c, S_TPR);
    if ((t & 0xffff_fff0) !== 0 && fail(c, K.tprRsvd, `TPR_THRESHOLD ${hex32(t)} sets bits 31:4 with TPR shadow and no virtual-interrupt delivery`)) return true;
  }
  // TPR threshold[3:0] against VTPR[7:4] (byte 80H of the virtual-APIC page).
  if (tpr === 0 || vid === 1 || vapicAcc === 1) { /* not applicable */ }
  else if (tpr < 0 || vid < 0 || vapicAcc < 0 || !has(c, S_TPR) || !has(c, S_VAPIC) || c.env.readPhys === undefined) ne(c, K.tprVtpr);
  else {
    const vtprWord = c.env.readPhys((BigInt(hi(c, S_VAPIC)) << 32n | BigInt(lo(c, S_VAPIC))) + 0x80n, 4);
    if (vtprWord === undefined) ne(c, K.tprVtpr);
    else {
      const vtpr = Number((vtprWord >> 4n) & 0xfn), thr = lo(c, S_TPR) & 0xf;
      if (thr > vtpr && fail(c, K.tprVtpr, `TPR_THRESHOLD[3:0] ${thr} exceeds VTPR[7:4] ${vtpr} (virtual-APIC page byte 80H = ${hex32(Number(vtprWord & 0xffn))})`)) return true;
    }
  }
  // Without a TPR shadow, none of the APIC-virtualization controls may be 1.
  if (noTprShadow(c, tpr, K.noTprX2apic, bitOf(sec, Secondary.VIRTUALIZE_X2APIC_MODE), 'virtualize x2APIC mode')) return true;
  if (noTprShadow(c, tpr, K.noTprApicReg, bitOf(sec, Secondary.APIC_REGISTER_VIRTUALIZATION), 'APIC-register virtualization')) return true;
  if (noTprShadow(c, tpr, K.noTprVid, vid, 'virtual-interrupt delivery')) return true;
  const ipiv = terLo < 0 ? -1 : (terLo & TER_IPI_VIRTUALIZATION) !== 0 ? 1 : 0;
  if (noTprShadow(c, tpr, K.noTprIpiv, ipiv, 'IPI virtualization')) return true;
  return false;
}

function checkNmiApicAccessAndPostedInterrupts(c: CheckContext): boolean {
  const pin = c.pin, pri = c.pri, sec = c.sec;
  const vid = bitOf(sec, Secondary.VIRTUAL_INTERRUPT_DELIVERY);
  const vapicAcc = bitOf(sec, Secondary.VIRTUALIZE_APIC_ACCESSES);

  const vnmi = bitOf(pin, Pin.VIRTUAL_NMIS);
  if (pin < 0) ne(c, K.vnmi);
  else if (vnmi === 1 && (pin & Pin.NMI_EXITING) === 0 && fail(c, K.vnmi, `PIN_BASED_VM_EXEC_CONTROL ${hex32(pin)}: "virtual NMIs" without "NMI exiting"`)) return true;
  const nmiWin = bitOf(pri, Primary.NMI_WINDOW_EXITING);
  if (vnmi === 1 || nmiWin === 0) { /* satisfied */ }
  else if (vnmi < 0 || nmiWin < 0) ne(c, K.nmiWin);
  else if (fail(c, K.nmiWin, `"NMI-window exiting" is 1 while "virtual NMIs" is 0`)) return true;

  if (addressChecks(c, vapicAcc, S_APICACC, 0xfff, K.apicAlign, K.apicWidth, 'APIC_ACCESS_ADDR')) return true;
  const x2 = bitOf(sec, Secondary.VIRTUALIZE_X2APIC_MODE);
  if (sec < 0) ne(c, K.x2apicAcc);
  else if (x2 === 1 && vapicAcc === 1 && fail(c, K.x2apicAcc, `"virtualize x2APIC mode" and "virtualize APIC accesses" are both 1`)) return true;
  if (vid === 1) {
    const ext = bitOf(pin, Pin.EXTERNAL_INTERRUPT_EXITING);
    if (ext < 0) ne(c, K.vidExt);
    else if (ext === 0 && fail(c, K.vidExt, `"virtual-interrupt delivery" is 1 while "external-interrupt exiting" is 0`)) return true;
  } else if (vid < 0) ne(c, K.vidExt);

  // Posted interrupts.
  const pi = bitOf(pin, Pin.PROCESS_POSTED_INTERRUPTS);
  if (pi !== 0) {
    const exitCtl = c.exit;
    if (pi < 0 || vid < 0) ne(c, K.piVid);
    else if (vid === 0 && fail(c, K.piVid, `"process posted interrupts" is 1 while "virtual-interrupt delivery" is 0`)) return true;
    if (pi < 0 || exitCtl < 0) ne(c, K.piAck);
    else if ((exitCtl & ExitCtl.ACKNOWLEDGE_INTERRUPT_ON_EXIT) === 0 && fail(c, K.piAck, `"process posted interrupts" is 1 while VM-exit control "acknowledge interrupt on exit" is 0 (VM_EXIT_CONTROLS ${hex32(exitCtl)})`)) return true;
    if (pi < 0 || !has(c, S_PINV)) ne(c, K.piNv);
    else if ((lo(c, S_PINV) & 0xff00) !== 0 && fail(c, K.piNv, `POSTED_INTR_NV ${hex32(lo(c, S_PINV))} has bits 15:8 set`)) return true;
    if (addressChecks(c, pi, S_PIDESC, 0x3f, K.piAlign, K.piWidth, 'POSTED_INTR_DESC_ADDR')) return true;
  }

  return false;
}

function checkVpidAndEpt(c: CheckContext): boolean {
  const sec = c.sec;
  const vpidOn = bitOf(sec, Secondary.ENABLE_VPID);
  if (vpidOn === 1) {
    if (!has(c, S_VPID)) ne(c, K.vpid);
    else if (lo(c, S_VPID) === 0 && fail(c, K.vpid, `"enable VPID" is 1 and VIRTUAL_PROCESSOR_ID is 0000H`)) return true;
  } else if (vpidOn < 0) ne(c, K.vpid);

  const ept = bitOf(sec, Secondary.ENABLE_EPT);
  if (ept !== 0) {
    if (ept < 0 || !has(c, S_EPTP)) {
      ne(c, K.eptMt); ne(c, K.eptWalk); ne(c, K.eptAd); ne(c, K.eptSss); ne(c, K.eptRsvd); ne(c, K.eptWidth);
    } else if (checkEptp(c)) return true;
  }

  const pml = bitOf(sec, Secondary.ENABLE_PML);
  if (requiresEpt(c, ept, K.pmlEpt, pml, 'enable PML')) return true;
  if (addressChecks(c, pml, S_PML, 0xfff, K.pmlAlign, K.pmlWidth, 'PML_ADDRESS')) return true;
  if (requiresEpt(c, ept, K.urgEpt, bitOf(sec, Secondary.UNRESTRICTED_GUEST), 'unrestricted guest')) return true;
  if (requiresEpt(c, ept, K.mbecEpt, bitOf(sec, Secondary.MODE_BASED_EXECUTE_CONTROL), 'mode-based execute control for EPT')) return true;
  const spp = bitOf(sec, Secondary.SUB_PAGE_WRITE_PERMISSIONS);
  if (requiresEpt(c, ept, K.sppEpt, spp, 'sub-page write permissions for EPT')) return true;
  if (addressChecks(c, spp, S_SPPTP, 0xfff, K.sppAlign, K.sppWidth, 'SPPTP')) return true;

  return false;
}

function checkVmFunctionsShadowingAndVe(c: CheckContext): void {
  const f = c.cpu, pri = c.pri, sec = c.sec, terLo = effectiveTertiaryLo(c, pri);
  const ept = bitOf(sec, Secondary.ENABLE_EPT);
  // VM functions: no checks at all when "enable VM functions" is 0.
  const vmfuncOn = bitOf(sec, Secondary.ENABLE_VM_FUNCTIONS);
  let eptpSwitching = 0;
  if (vmfuncOn !== 0) {
    if (vmfuncOn < 0 || !has(c, S_VMFUNC)) { ne(c, K.vmfunc); eptpSwitching = -1; }
    else {
      const vl = lo(c, S_VMFUNC), vh = hi(c, S_VMFUNC);
      const badLo = (vl & ~f.vmfuncLo) >>> 0, badHi = (vh & ~f.vmfuncHi) >>> 0;
      if ((badLo | badHi) !== 0 && fail(c, K.vmfunc, `VM_FUNCTION_CONTROL ${hex64(vl, vh)}: bits ${hex64(badLo, badHi)} are not allowed by IA32_VMX_VMFUNC`)) return;
      eptpSwitching = vl & 1;
    }
  }
  if (requiresEpt(c, ept, K.vmfuncEpt, eptpSwitching, 'EPTP switching')) return;
  if (addressChecks(c, eptpSwitching, S_EPTPLIST, 0xfff, K.eptpListAlign, K.eptpListWidth, 'EPTP_LIST_ADDRESS')) return;

  const shadow = bitOf(sec, Secondary.VMCS_SHADOWING);
  if (addressChecks(c, shadow, S_VMREAD, 0xfff, K.vmreadAlign, K.vmreadWidth, 'VMREAD_BITMAP')) return;
  if (addressChecks(c, shadow, S_VMWRITE, 0xfff, K.vmwriteAlign, K.vmwriteWidth, 'VMWRITE_BITMAP')) return;
  if (addressChecks(c, bitOf(sec, Secondary.EPT_VIOLATION_VE), S_VE, 0xfff, K.veAlign, K.veWidth, 'VE_INFORMATION_ADDRESS')) return;
  // [verify] IPI virtualization: the PID-pointer table holds 8-byte entries; SDM (2022+) requires bits 2:0 clear and
  // the address within MAXPHYADDR. No second source was available for further rules.
  const ipiv = terLo < 0 ? -1 : (terLo & TER_IPI_VIRTUALIZATION) !== 0 ? 1 : 0;
  addressChecks(c, ipiv, S_PIDTAB, 0x7, K.pidAlign, K.pidWidth, 'PID_POINTER_TABLE');
}

/** The EPTP rules of SDM 26.2.1.1, each its own check. Returns true when the run must stop. */
function checkEptp(c: CheckContext): boolean {
  const f = c.cpu;
  const l = lo(c, S_EPTP), h = hi(c, S_EPTP);
  const mt = l & 7, walk = (l >>> 3) & 7;
  if (!((mt === 0 && f.eptUc) || (mt === 6 && f.eptWb))
    && fail(c, K.eptMt, `EPT_POINTER ${hex64(l, h)}: memory type ${mt} is not supported (UC needs IA32_VMX_EPT_VPID_CAP[8], WB [14])`)) return true;
  if (!((walk === 3 && f.eptPwl4) || (walk === 4 && f.eptPwl5))
    && fail(c, K.eptWalk, `EPT_POINTER ${hex64(l, h)}: page-walk length ${walk + 1} is not supported (4-level cap bit 6, 5-level cap bit 7)`)) return true;
  if ((l & 0x40) !== 0 && !f.eptAd && fail(c, K.eptAd, `EPT_POINTER ${hex64(l, h)}: bit 6 (accessed/dirty flags) set without IA32_VMX_EPT_VPID_CAP[21]`)) return true;
  // Bit 7 enables supervisor shadow-stack access rights; it is legal only on CET-capable processors (as Bochs does;
  // KVM treats it as reserved, reference §3.1 C-EPTP).
  if ((l & 0x80) !== 0 && !f.cet && fail(c, K.eptSss, `EPT_POINTER ${hex64(l, h)}: bit 7 (supervisor shadow-stack control) set on a processor without CET`)) return true;
  if ((l & 0xf00) !== 0 && fail(c, K.eptRsvd, `EPT_POINTER ${hex64(l, h)}: reserved bits 11:8 set`)) return true;
  if (!physOk(c, h) && fail(c, K.eptWidth, `EPT_POINTER ${hex64(l, h)} sets bits at or above MAXPHYADDR ${f.maxPhysAddr}`)) return true;
  return false;
}

/** SDM 26.2.1.2: checks on the VM-exit control fields. */
export function checkVmExitControlFields(c: CheckContext): void {
  const f = c.cpu;
  const exit = c.exit;
  if (exit < 0) ne(c, K.exit);
  else {
    const bad = badBits(exit, f.exitMust, f.exitMay);
    if (bad !== 0 && fail(c, K.exit, `VM_EXIT_CONTROLS ${hex32(exit)}: bits ${hex32(bad)} violate allowed settings (must-be-1 ${hex32(f.exitMust)}, may-be-1 ${hex32(f.exitMay)})`)) return;
  }
  const exit2On = bitOf(exit, ExitCtl.ACTIVATE_SECONDARY_CONTROLS);
  if (exit2On === 1 && has(c, S_EXIT2)) {
    const l = lo(c, S_EXIT2), h = hi(c, S_EXIT2);
    const badLo = (l & ~f.exit2MayLo) >>> 0, badHi = (h & ~f.exit2MayHi) >>> 0;
    if ((badLo | badHi) !== 0 && fail(c, K.exit2, `SECONDARY_VM_EXIT_CONTROLS ${hex64(l, h)}: bits ${hex64(badLo, badHi)} are reserved`)) return;
  } else if (exit2On !== 0) ne(c, K.exit2);

  const save = bitOf(exit, ExitCtl.SAVE_VMX_PREEMPTION_TIMER_VALUE);
  const timer = bitOf(c.pin, Pin.ACTIVATE_VMX_PREEMPTION_TIMER);
  if (save === 0 || timer === 1) { /* satisfied */ }
  else if (save < 0 || timer < 0) ne(c, K.ptSave);
  else if (fail(c, K.ptSave, `"save VMX-preemption timer value" is 1 while "activate VMX-preemption timer" is 0`)) return;

  if (msrAreaChecks(c, S_XSTCNT, S_XSTADDR, K.xstAlign, K.xstWidth, K.xstLast, 'VM-exit MSR-store')) return;
  msrAreaChecks(c, S_XLDCNT, S_XLDADDR, K.xldAlign, K.xldWidth, K.xldLast, 'VM-exit MSR-load');
}

/** SDM 26.2.1.3: checks on the VM-entry control fields (including event injection). */
export function checkVmEntryControlFields(c: CheckContext): void {
  const f = c.cpu;
  const entry = c.entry;
  if (entry < 0) ne(c, K.entry);
  else {
    const bad = badBits(entry, f.entryMust, f.entryMay);
    if (bad !== 0 && fail(c, K.entry, `VM_ENTRY_CONTROLS ${hex32(entry)}: bits ${hex32(bad)} violate allowed settings (must-be-1 ${hex32(f.entryMust)}, may-be-1 ${hex32(f.entryMay)})`)) return;
  }
  if (checkEventInjection(c)) return;
  if (msrAreaChecks(c, S_ELDCNT, S_ELDADDR, K.eldAlign, K.eldWidth, K.eldLast, 'VM-entry MSR-load')) return;

  const toSmm = bitOf(entry, EntryCtl.ENTRY_TO_SMM), dual = bitOf(entry, EntryCtl.DEACTIVATE_DUAL_MONITOR_TREATMENT);
  const smm = c.env.inSmm;
  if (toSmm === 1 && smm === false) { if (fail(c, K.smm, `"entry to SMM" is 1 outside SMM`)) return; }
  else if (toSmm < 0 || (toSmm === 1 && smm === undefined)) ne(c, K.smm);
  if (dual === 1 && smm === false) { if (fail(c, K.dualMon, `"deactivate dual-monitor treatment" is 1 outside SMM`)) return; }
  else if (dual < 0 || (dual === 1 && smm === undefined)) ne(c, K.dualMon);
  if (entry < 0) ne(c, K.smmDual);
  else if (toSmm === 1 && dual === 1) fail(c, K.smmDual, `"entry to SMM" and "deactivate dual-monitor treatment" are both 1`);
}

const EVENT_CHECKS = [
  K.evType, K.evNmiVec, K.evHwVec, K.evOtherVec, K.ecMissing, K.ecNotHw, K.ecReal, K.ecVector, K.evRsvd, K.ecRsvd, K.ilen, K.ilenZero,
] as const;
const infoText = (info: number): string => `VM_ENTRY_INTR_INFO_FIELD ${hex32(info)}`;

/** VM-entry event-injection fields (SDM 26.2.1.3). Returns true when the run must stop. */
function checkEventInjection(c: CheckContext): boolean {
  const f = c.cpu;
  if (!has(c, S_INFO)) {
    for (const k of EVENT_CHECKS) ne(c, k);
    return false;
  }
  const info = lo(c, S_INFO);
  if ((info & 0x8000_0000) === 0) return false;
  const type = (info >>> 8) & 7, vector = info & 0xff, deliver = (info & 0x800) !== 0;
  const what = infoText; // called only on failure paths
  if ((type === 1 || (type === 7 && !f.mtf)) && fail(c, K.evType, `${what(info)}: interruption type ${type} is reserved${type === 7 ? ' without "monitor trap flag" support' : ''}`)) return true;
  if (type === 2 && vector !== 2 && fail(c, K.evNmiVec, `${what(info)}: NMI with vector ${vector}`)) return true;
  if (type === 3 && vector > 31 && fail(c, K.evHwVec, `${what(info)}: hardware exception with vector ${vector} > 31`)) return true;
  if (type === 7 && vector !== 0 && fail(c, K.evOtherVec, `${what(info)}: other event with vector ${vector} (only 0, pending MTF, exists)`)) return true;
  // Deliver-error-code consistency. Current SDM editions key this on guest CR0.PE alone (older ones said
  // "unrestricted guest is 0 or CR0.PE is 1"; the reference follows the older wording), and IA32_VMX_BASIC[56]
  // lifts the vector-based half for hardware exceptions in protected mode.
  const hwEc = vector < 32 && ((ERROR_CODE_VECTORS >>> vector) & 1) === 1;
  const peKnown = has(c, S_GCR0);
  const pe = peKnown ? (lo(c, S_GCR0) & 1) === 1 : false;
  if (type === 3 && !deliver && !f.relaxedErrorCode && hwEc) {
    if (!peKnown) ne(c, K.ecMissing);
    else if (pe && fail(c, K.ecMissing, `${what(info)}: hardware exception ${vector} in protected mode without deliver-error-code`)) return true;
  }
  if (deliver) {
    if (type !== 3 && fail(c, K.ecNotHw, `${what(info)}: deliver-error-code set for interruption type ${type}`)) return true;
    if (!peKnown) ne(c, K.ecReal);
    else if (!pe && fail(c, K.ecReal, `${what(info)}: deliver-error-code set while GUEST_CR0.PE is 0`)) return true;
    if (type === 3 && !f.relaxedErrorCode && vector < 32 && !hwEc && fail(c, K.ecVector, `${what(info)}: deliver-error-code set for vector ${vector}, which has no error code`)) return true;
  }
  if ((info & ENTRY_INFO_RESERVED) !== 0 && fail(c, K.evRsvd, `${what(info)}: reserved bits 30:12 set`)) return true;
  if (deliver) {
    // Bits 31:16 in current SDM editions (bit 15 became meaningful for SGX); editions before ~2018 said 31:15.
    if (!has(c, S_ERRCODE)) ne(c, K.ecRsvd);
    else if ((lo(c, S_ERRCODE) & 0xffff_0000) !== 0 && fail(c, K.ecRsvd, `VM_ENTRY_EXCEPTION_ERROR_CODE ${hex32(lo(c, S_ERRCODE))} sets bits 31:16`)) return true;
  }
  if (type === 4 || type === 5 || type === 6) {
    if (!has(c, S_ILEN)) { ne(c, K.ilen); ne(c, K.ilenZero); return false; }
    const len = lo(c, S_ILEN);
    if (len > 15 && fail(c, K.ilen, `VM_ENTRY_INSTRUCTION_LEN ${len} > 15 for interruption type ${type}`)) return true;
    if (len === 0 && !f.zeroLengthInjection && fail(c, K.ilenZero, `VM_ENTRY_INSTRUCTION_LEN 0 for interruption type ${type} without IA32_VMX_MISC[30]`)) return true;
  }
  return false;
}
