// Predicates of the reflection table: l0Wants (KVM nested_vmx_l0_wants_exit) and l1Wants (= would a CPU running
// vmcs12 have exited; KVM nested_vmx_l1_wants_exit with its helpers for CR access, I/O, MSR, VMREAD/VMWRITE, ENCLS).
// Must not: write state; L1 memory is only read through ctx.readL1Memory, and unreadable bitmap bytes mean "exit".
// Reference: nested-vmx.md §6.2, §6.3.1–6.3.4; SDM 25.1.3, 25.2, 24.6.3 (PFEC), 24.6.4 (I/O), 24.6.9 (MSR), 24.6.15.
import { Field } from '../../cpu/generated/vmcs-fields.js';
import { ExitReason } from '../../cpu/generated/exit-reasons.js';
import { Primary, Secondary } from '../../cpu/generated/controls.js';
import { Cr0, Reg } from '../../cpu/state.js';
import type { Vmcs } from '../../cpu/vmcs.js';
import { controlSet, controlWord } from './control-bits.js';
import { msrBitmapPosition } from '../msr-bitmap.js';
import { Deviation, type L0Profile } from '../profile.js';
import type { HardwareExit, ReflectionContext } from './types.js';

export type L0PredicateName = 'never' | 'always' | 'l0Exception' | 'l0Vmcall';
export type L1PredicateName =
  | 'never' | 'always' | 'allControls' | 'anyControl' | 'exception' | 'crAccess' | 'ioInstruction' | 'msrBitmap'
  | 'vmcsShadowing' | 'mtf' | 'encls' | 'xssBitmap' | 'seamcallTdcall';

const INTR_TYPE_NMI = 2;
const VEC_DB = 1;
const VEC_BP = 3;
const VEC_PF = 14;
const VEC_AC = 17;
const VEC_MC = 18;
const VEC_VE = 20;

/** Vector and type of an interruption-information word (SDM 24.9.2). */
export function interruption(info: number): { vector: number; type: number; valid: boolean; errorCodeValid: boolean } {
  return { vector: info & 0xff, type: (info >>> 8) & 7, valid: (info >>> 31) === 1, errorCodeValid: ((info >>> 11) & 1) === 1 };
}

/**
 * Whether an exception exits under (bitmap, PFEC mask, PFEC match) — SDM 25.2: vector ≠ 14 exits iff its bitmap bit is
 * 1; #PF exits iff EB[14] XOR ((ec & MASK) ≠ MATCH). The kvm profile compares only error-code bits 15:0 (N19).
 */
export function exceptionExits(bitmap: number, pfecMask: number, pfecMatch: number, vector: number, errorCode: number, profile: L0Profile): boolean {
  const eb = ((bitmap >>> vector) & 1) === 1;
  if (vector !== VEC_PF) return eb;
  const ec = profile.deviations.has(Deviation.EXCEPTION_ERROR_CODE_16BIT) ? errorCode & 0xffff : errorCode >>> 0;
  const mismatch = ((ec & pfecMask) >>> 0) !== pfecMatch >>> 0;
  return eb !== mismatch;
}

/** vmcs12 intercepts an exception (vector, error code) — shared by reflection and the §6.5 priority function. */
export function vmcs12InterceptsException(vmcs12: Vmcs, vector: number, errorCode: number, profile: L0Profile): boolean {
  return exceptionExits(vmcs12.lo(Field.EXCEPTION_BITMAP), vmcs12.lo(Field.PAGE_FAULT_ERROR_CODE_MASK), vmcs12.lo(Field.PAGE_FAULT_ERROR_CODE_MATCH), vector, errorCode, profile);
}

export function l0Exception(exit: HardwareExit, ctx: ReflectionContext): boolean {
  const { vector, type } = interruption(exit.intrInfo);
  if (type === INTR_TYPE_NMI) return true;
  const p = ctx.l0;
  if (vector === VEC_PF) return p.needsPfIntercept || p.asyncPfPending;
  if (vector === VEC_DB) return p.hostSingleStepOrHwBreakpoints;
  if (vector === VEC_BP) return p.hostSwBreakpoints;
  if (vector === VEC_AC) return p.guestCannotReceiveAc;
  // Machine checks are host events; #VE is never delivered for EPT02.
  return vector === VEC_MC || vector === VEC_VE;
}

function l1Exception(exit: HardwareExit, vmcs12: Vmcs, ctx: ReflectionContext): boolean {
  const { vector, type } = interruption(exit.intrInfo);
  if (type === INTR_TYPE_NMI) return true;
  return vmcs12InterceptsException(vmcs12, vector, exit.intrErrorCode, ctx.profile);
}

/** §6.3.1 / SDM 25.1.3: MOV to/from CR, CLTS, LMSW under vmcs12's masks, shadows and CR3/CR8 controls. */
function l1CrAccess(exit: HardwareExit, vmcs12: Vmcs, ctx: ReflectionContext): boolean {
  const q = Number(exit.qualification & 0xffff_ffffn) >>> 0;
  const cr = q & 0xf;
  const type = (q >>> 4) & 3;
  const primary = controlWord(vmcs12, 'primary');
  if (type === 0) {
    const val = ctx.l2Gpr((q >>> 8) & 0xf);
    if (cr === 0) return (vmcs12.get(Field.CR0_GUEST_HOST_MASK) & (val ^ vmcs12.get(Field.CR0_READ_SHADOW))) !== 0n;
    if (cr === 4) return (vmcs12.get(Field.CR4_GUEST_HOST_MASK) & (val ^ vmcs12.get(Field.CR4_READ_SHADOW))) !== 0n;
    if (cr === 3) return cr3LoadExits(vmcs12, val);
    if (cr === 8) return (primary & Primary.CR8_LOAD_EXITING) !== 0;
    return true;
  }
  if (type === 1) {
    if (cr === 3) return (primary & Primary.CR3_STORE_EXITING) !== 0;
    if (cr === 8) return (primary & Primary.CR8_STORE_EXITING) !== 0;
    return true;
  }
  const mask = vmcs12.get(Field.CR0_GUEST_HOST_MASK);
  const shadow = vmcs12.get(Field.CR0_READ_SHADOW);
  if (type === 2) return (mask & Cr0.TS) !== 0n && (shadow & Cr0.TS) !== 0n;
  // LMSW: loads CR0[3:0] but can never clear PE.
  const src = BigInt((q >>> 16) & 0xf);
  if ((mask & 0xen & (src ^ shadow)) !== 0n) return true;
  return (mask & Cr0.PE) !== 0n && (shadow & Cr0.PE) === 0n && (src & Cr0.PE) !== 0n;
}

/** CR3-load exiting, except for a value in the CR3-target list (SDM 25.1.3; KVM's vmcs12 always has count 0). */
function cr3LoadExits(vmcs12: Vmcs, val: bigint): boolean {
  if (!(controlWord(vmcs12, 'primary') & Primary.CR3_LOAD_EXITING)) return false;
  const count = Math.min(vmcs12.lo(Field.CR3_TARGET_COUNT), 4);
  const targets = [Field.CR3_TARGET_VALUE0, Field.CR3_TARGET_VALUE1, Field.CR3_TARGET_VALUE2, Field.CR3_TARGET_VALUE3];
  for (let i = 0; i < count; i++) if (vmcs12.get(targets[i]!) === val) return false;
  return true;
}

/** One bit of a bitmap in L1 memory; unreadable counts as set ("exit"). */
function bitmapBit(ctx: ReflectionContext, base: bigint, bitIndex: number): boolean {
  const bytes = ctx.readL1Memory(base + BigInt(bitIndex >>> 3), 1);
  if (bytes === null || bytes.length < 1) return true;
  return ((bytes[0]! >>> (bitIndex & 7)) & 1) === 1;
}

/** §6.3.2 / SDM 25.1.3: I/O under vmcs12's unconditional I/O exiting or I/O bitmaps, byte by byte. */
export function ioExitsUnderVmcs(vmcs: Vmcs, port: number, size: number, ctx: Pick<ReflectionContext, 'readL1Memory'>): boolean {
  const primary = controlWord(vmcs, 'primary');
  if (!(primary & Primary.USE_IO_BITMAPS)) return (primary & Primary.UNCONDITIONAL_IO_EXITING) !== 0;
  for (let p = port; p < port + size; p++) {
    if (p >= 0x10000) return true;
    const base = p < 0x8000 ? vmcs.get(Field.IO_BITMAP_A) : vmcs.get(Field.IO_BITMAP_B);
    if (bitmapBit(ctx as ReflectionContext, base, p & 0x7fff)) return true;
  }
  return false;
}

function l1Io(exit: HardwareExit, vmcs12: Vmcs, ctx: ReflectionContext): boolean {
  const q = Number(exit.qualification & 0xffff_ffffn) >>> 0;
  return ioExitsUnderVmcs(vmcs12, q >>> 16, (q & 7) + 1, ctx);
}

/** §6.3.3 / SDM 25.1.3: RDMSR/WRMSR (and the immediate forms) under vmcs12's MSR bitmap. */
function l1Msr(exit: HardwareExit, vmcs12: Vmcs, ctx: ReflectionContext): boolean {
  if (!(controlWord(vmcs12, 'primary') & Primary.USE_MSR_BITMAPS)) return true;
  const basic = exit.reason & 0xffff;
  const immediate = basic === ExitReason.MSR_READ_IMM || basic === ExitReason.MSR_WRITE_IMM;
  const msr = immediate ? Number(exit.qualification & 0xffff_ffffn) >>> 0 : Number(ctx.l2Gpr(Reg.RCX) & 0xffff_ffffn) >>> 0;
  const write = basic === ExitReason.MSR_WRITE || basic === ExitReason.MSR_WRITE_IMM;
  const pos = msrBitmapPosition(msr, write);
  if (pos === null) return true;
  return bitmapBit(ctx, vmcs12.get(Field.MSR_BITMAP), pos.byte * 8 + pos.bit);
}

/** SDM 25.1.3: VMREAD/VMWRITE in non-root exit unless shadowing is on and the bitmap bit for the field is 0. */
function l1VmcsShadowing(exit: HardwareExit, vmcs12: Vmcs, ctx: ReflectionContext): boolean {
  if (!(controlWord(vmcs12, 'secondary') & Secondary.VMCS_SHADOWING)) return true;
  // VMREAD/VMWRITE instruction information bits 31:28 name the register holding the field encoding (SDM 27.2.5).
  const encoding = ctx.l2Gpr((exit.instructionInfo >>> 28) & 0xf);
  if (encoding >> 15n !== 0n) return true;
  const bitmap = (exit.reason & 0xffff) === ExitReason.VMREAD ? vmcs12.get(Field.VMREAD_BITMAP) : vmcs12.get(Field.VMWRITE_BITMAP);
  return bitmapBit(ctx, bitmap, Number(encoding & 0x7fffn));
}

/** MTF exit of vmcs12, or the pending-MTF injection (entry interruption info = valid | type 7 | vector 0). */
function l1Mtf(_exit: HardwareExit, vmcs12: Vmcs): boolean {
  if (controlWord(vmcs12, 'primary') & Primary.MONITOR_TRAP_FLAG) return true;
  return (vmcs12.lo(Field.VM_ENTRY_INTR_INFO_FIELD) & 0x8000_07ff) >>> 0 === 0x8000_0700;
}

function l1Encls(_exit: HardwareExit, vmcs12: Vmcs, ctx: ReflectionContext): boolean {
  if (!ctx.l0.sgxExposedToL1 || !(controlWord(vmcs12, 'secondary') & Secondary.ENABLE_ENCLS_EXITING)) return false;
  const leaf = ctx.l2Gpr(Reg.RAX) & 0xffff_ffffn;
  const bit = leaf > 63n ? 63n : leaf;
  return ((vmcs12.get(Field.ENCLS_EXITING_BITMAP) >> bit) & 1n) === 1n;
}

const IA32_XSS = 0xda0;

function l1Xss(_exit: HardwareExit, vmcs12: Vmcs, ctx: ReflectionContext): boolean {
  if (!(controlWord(vmcs12, 'secondary') & Secondary.ENABLE_XSAVES_XRSTORS)) return false;
  return (ctx.l2Msr(IA32_XSS) & vmcs12.get(Field.XSS_EXIT_BITMAP)) !== 0n;
}

/** Unconditional on hardware; the kvm profile makes L0 inject #UD instead (N7). */
function l1SeamcallTdcall(_exit: HardwareExit, _vmcs12: Vmcs, ctx: ReflectionContext): boolean {
  return !ctx.profile.deviations.has(Deviation.SEAMCALL_TDCALL_UD);
}

export function evalL0(name: L0PredicateName, exit: HardwareExit, ctx: ReflectionContext): boolean {
  switch (name) {
    case 'never':
      return false;
    case 'always':
      return true;
    case 'l0Exception':
      return l0Exception(exit, ctx);
    case 'l0Vmcall':
      return ctx.l0.hypervTlbFlushHypercall;
  }
}

export function evalL1(name: L1PredicateName, controls: readonly string[], exit: HardwareExit, vmcs12: Vmcs, ctx: ReflectionContext): boolean {
  switch (name) {
    case 'never':
      return false;
    case 'always':
      return true;
    case 'allControls':
      return controls.every((c) => controlSet(vmcs12, c));
    case 'anyControl':
      return controls.some((c) => controlSet(vmcs12, c));
    case 'exception':
      return l1Exception(exit, vmcs12, ctx);
    case 'crAccess':
      return l1CrAccess(exit, vmcs12, ctx);
    case 'ioInstruction':
      return l1Io(exit, vmcs12, ctx);
    case 'msrBitmap':
      return l1Msr(exit, vmcs12, ctx);
    case 'vmcsShadowing':
      return l1VmcsShadowing(exit, vmcs12, ctx);
    case 'mtf':
      return l1Mtf(exit, vmcs12);
    case 'encls':
      return l1Encls(exit, vmcs12, ctx);
    case 'xssBitmap':
      return l1Xss(exit, vmcs12, ctx);
    case 'seamcallTdcall':
      return l1SeamcallTdcall(exit, vmcs12, ctx);
  }
}
