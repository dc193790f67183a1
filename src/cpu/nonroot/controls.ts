// A snapshot of every VMCS field the non-root rules consult, read once (at VM entry) through VmcsReader,
// with the SDM's "treated as 0 when not activated" rules for secondary and tertiary controls applied.
// Must not: decide exits; the rules in this directory take a NonRootControls. SDM Vol. 3C 24.6, 25.
import { Primary } from '../generated/controls.js';
import { Field } from '../generated/vmcs-fields.js';
import type { VmcsReader } from '../vmcs.js';

export interface NonRootControls {
  readonly pin: number;
  readonly primary: number;
  /** 0 unless primary "activate secondary controls" is 1 (SDM 24.6.2). */
  readonly secondary: number;
  /** 0 unless primary "activate tertiary controls" is 1. */
  readonly tertiary: bigint;
  readonly exitControls: number;
  readonly exceptionBitmap: number;
  readonly pfecMask: number;
  readonly pfecMatch: number;
  readonly cr0Mask: bigint;
  readonly cr0Shadow: bigint;
  readonly cr4Mask: bigint;
  readonly cr4Shadow: bigint;
  readonly cr3TargetCount: number;
  readonly cr3Targets: readonly bigint[];
  readonly ioBitmapA: bigint;
  readonly ioBitmapB: bigint;
  readonly msrBitmap: bigint;
  readonly tscOffset: bigint;
  readonly tscMultiplier: bigint;
  readonly virtualApicPage: bigint;
  readonly tprThreshold: number;
  readonly vmreadBitmap: bigint;
  readonly vmwriteBitmap: bigint;
  readonly vmcsLinkPointer: bigint;
  readonly vmFunctionControls: bigint;
  readonly eptpListAddress: bigint;
  readonly eptPointer: bigint;
  readonly enclsBitmap: bigint;
  readonly enclvBitmap: bigint;
  readonly pconfigBitmap: bigint;
  readonly xssExitBitmap: bigint;
  readonly pleGap: number;
  readonly pleWindow: number;
}

function f(vmcs: VmcsReader, enc: number): bigint {
  return vmcs.read(enc) ?? 0n;
}

function f32(vmcs: VmcsReader, enc: number): number {
  return Number((vmcs.read(enc) ?? 0n) & 0xffff_ffffn) >>> 0;
}

/** Read the controls the non-root rules use. Fields the reader does not know read as 0. */
export function readNonRootControls(vmcs: VmcsReader): NonRootControls {
  const primary = f32(vmcs, Field.CPU_BASED_VM_EXEC_CONTROL);
  const secondary = primary & Primary.ACTIVATE_SECONDARY_CONTROLS ? f32(vmcs, Field.SECONDARY_VM_EXEC_CONTROL) : 0;
  const tertiary = primary & Primary.ACTIVATE_TERTIARY_CONTROLS ? f(vmcs, Field.TERTIARY_VM_EXEC_CONTROL) : 0n;
  const cr3TargetCount = f32(vmcs, Field.CR3_TARGET_COUNT);
  const targets = [Field.CR3_TARGET_VALUE0, Field.CR3_TARGET_VALUE1, Field.CR3_TARGET_VALUE2, Field.CR3_TARGET_VALUE3];
  return {
    pin: f32(vmcs, Field.PIN_BASED_VM_EXEC_CONTROL),
    primary,
    secondary,
    tertiary,
    exitControls: f32(vmcs, Field.VM_EXIT_CONTROLS),
    exceptionBitmap: f32(vmcs, Field.EXCEPTION_BITMAP),
    pfecMask: f32(vmcs, Field.PAGE_FAULT_ERROR_CODE_MASK),
    pfecMatch: f32(vmcs, Field.PAGE_FAULT_ERROR_CODE_MATCH),
    cr0Mask: f(vmcs, Field.CR0_GUEST_HOST_MASK),
    cr0Shadow: f(vmcs, Field.CR0_READ_SHADOW),
    cr4Mask: f(vmcs, Field.CR4_GUEST_HOST_MASK),
    cr4Shadow: f(vmcs, Field.CR4_READ_SHADOW),
    cr3TargetCount,
    cr3Targets: targets.slice(0, Math.min(cr3TargetCount, 4)).map((e) => f(vmcs, e)),
    ioBitmapA: f(vmcs, Field.IO_BITMAP_A),
    ioBitmapB: f(vmcs, Field.IO_BITMAP_B),
    msrBitmap: f(vmcs, Field.MSR_BITMAP),
    tscOffset: f(vmcs, Field.TSC_OFFSET),
    tscMultiplier: f(vmcs, Field.TSC_MULTIPLIER),
    virtualApicPage: f(vmcs, Field.VIRTUAL_APIC_PAGE_ADDR),
    tprThreshold: f32(vmcs, Field.TPR_THRESHOLD),
    vmreadBitmap: f(vmcs, Field.VMREAD_BITMAP),
    vmwriteBitmap: f(vmcs, Field.VMWRITE_BITMAP),
    vmcsLinkPointer: f(vmcs, Field.VMCS_LINK_POINTER),
    vmFunctionControls: f(vmcs, Field.VM_FUNCTION_CONTROL),
    eptpListAddress: f(vmcs, Field.EPTP_LIST_ADDRESS),
    eptPointer: f(vmcs, Field.EPT_POINTER),
    enclsBitmap: f(vmcs, Field.ENCLS_EXITING_BITMAP),
    enclvBitmap: f(vmcs, Field.ENCLV_EXITING_BITMAP),
    pconfigBitmap: f(vmcs, Field.PCONFIG_EXITING_BITMAP),
    xssExitBitmap: f(vmcs, Field.XSS_EXIT_BITMAP),
    pleGap: f32(vmcs, Field.PLE_GAP),
    pleWindow: f32(vmcs, Field.PLE_WINDOW),
  };
}

/**
 * What the rules need from the machine besides the VMCS: reads of the bitmaps and the virtual-APIC page
 * (addresses are VMCS field values, i.e. host-physical on a real CPU, L1-physical for vmcs12), and the
 * capability facts that shape exit information.
 */
export interface NonRootEnv {
  /** One byte of physical memory at a VMCS-named address; undefined if unreadable (the rules then exit). */
  readPhysByte(addr: bigint): number | undefined;
  /** IA32_VMX_BASIC[54]: INS/OUTS exits report instruction information. */
  readonly insOutsInfo: boolean;
  /** EPTP validity for VMFUNC EPTP switching (SDM 24.6.11); defaults to basicEptpValid. */
  readonly eptpValid?: (eptp: bigint) => boolean;
}
