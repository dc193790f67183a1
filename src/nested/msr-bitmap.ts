// MSR-bitmap layout (SDM 24.6.9) and the vmcs02 bitmap merge: a pure function over 4 KiB byte arrays giving, for
// every MSR and direction, exit02 ⊇ exit01 ∪ exit12 (KVM nested_vmx_prepare_msr_bitmap: all intercepted except a fixed
// pass-through set, where intercept02 = intercept01 ∨ intercept12). Reference: nested-vmx.md §5.4, §6.3.3.
// Must not: read guest memory or VMCS storage; callers hand in the bytes of L0's and L1's pages.
import { Msr } from '../cpu/state.js';
import { Secondary } from '../cpu/generated/controls.js';

export const MSR_BITMAP_BYTES = 4096;
const LOW_BASE = 0x0000_0000;
const HIGH_BASE = 0xc000_0000;
const RANGE = 0x2000;

/**
 * Bit position of (msr, direction) in a 4 KiB MSR bitmap, or null when the MSR is outside both ranges (such an
 * access always exits). Layout: read-low 0–1023, read-high 1024–2047, write-low 2048–3071, write-high 3072–4095.
 */
export function msrBitmapPosition(msr: number, write: boolean): { byte: number; bit: number } | null {
  const m = msr >>> 0;
  let offset: number;
  let index: number;
  if (m - LOW_BASE < RANGE) {
    offset = 0;
    index = m - LOW_BASE;
  } else if (m >= HIGH_BASE && m - HIGH_BASE < RANGE) {
    offset = 1024;
    index = m - HIGH_BASE;
  } else {
    return null;
  }
  return { byte: (write ? 2048 : 0) + offset + (index >> 3), bit: index & 7 };
}

/** Whether an access exits under a bitmap (outside the ranges: always). */
export function msrBitmapExits(bitmap: Uint8Array, msr: number, write: boolean): boolean {
  const pos = msrBitmapPosition(msr, write);
  if (pos === null) return true;
  return ((bitmap[pos.byte]! >> pos.bit) & 1) === 1;
}

export function setMsrBitmapBit(bitmap: Uint8Array, msr: number, write: boolean, exits: boolean): void {
  const pos = msrBitmapPosition(msr, write);
  if (pos === null) return;
  if (exits) bitmap[pos.byte] = bitmap[pos.byte]! | (1 << pos.bit);
  else bitmap[pos.byte] = bitmap[pos.byte]! & ~(1 << pos.bit);
}

export interface MsrPassthrough {
  readonly msr: number;
  readonly read: boolean;
  readonly write: boolean;
}

const X2APIC_FIRST = 0x800;
const X2APIC_LAST = 0x8ff;
const X2APIC_TPR = 0x808;
const X2APIC_EOI = 0x80b;
const X2APIC_SELF_IPI = 0x83f;
const IA32_SPEC_CTRL = 0x48;
const IA32_PRED_CMD = 0x49;
const IA32_FLUSH_CMD = 0x10b;

/**
 * The MSRs whose vmcs02 bits may be clear (§5.4): FS/GS/KERNEL_GS base and SPEC_CTRL both ways, PRED_CMD and
 * FLUSH_CMD writes; with vmcs12 "virtualize x2APIC mode": x2APIC reads with APIC-register virtualization, TPR both
 * ways, and with virtual-interrupt delivery EOI and SELF_IPI writes. Everything else is intercepted.
 */
export function nestedMsrPassthrough(secondary12: number): MsrPassthrough[] {
  const out: MsrPassthrough[] = [
    { msr: Msr.IA32_FS_BASE, read: true, write: true },
    { msr: Msr.IA32_GS_BASE, read: true, write: true },
    { msr: Msr.IA32_KERNEL_GS_BASE, read: true, write: true },
    { msr: IA32_SPEC_CTRL, read: true, write: true },
    { msr: IA32_PRED_CMD, read: false, write: true },
    { msr: IA32_FLUSH_CMD, read: false, write: true },
  ];
  if (secondary12 & Secondary.VIRTUALIZE_X2APIC_MODE) {
    if (secondary12 & Secondary.APIC_REGISTER_VIRTUALIZATION) {
      for (let m = X2APIC_FIRST; m <= X2APIC_LAST; m++) if (m !== X2APIC_TPR) out.push({ msr: m, read: true, write: false });
    }
    out.push({ msr: X2APIC_TPR, read: true, write: true });
    if (secondary12 & Secondary.VIRTUAL_INTERRUPT_DELIVERY) {
      out.push({ msr: X2APIC_EOI, read: false, write: true });
      out.push({ msr: X2APIC_SELF_IPI, read: false, write: true });
    }
  }
  return out;
}

/**
 * The vmcs02 bitmap: all ones, then for each pass-through (msr, direction) bit02 = bit01 | bit12. The result therefore
 * exits whenever either input exits (exit02 ⊇ exit01 ∪ exit12) and lets through only what both L0 and L1 let through.
 */
export function mergeMsrBitmap(bitmap01: Uint8Array, bitmap12: Uint8Array, passthrough: readonly MsrPassthrough[]): Uint8Array {
  if (bitmap01.length !== MSR_BITMAP_BYTES || bitmap12.length !== MSR_BITMAP_BYTES) {
    throw new Error('turtles bug: MSR bitmaps are 4096 bytes');
  }
  const out = new Uint8Array(MSR_BITMAP_BYTES).fill(0xff);
  for (const p of passthrough) {
    if (p.read) setMsrBitmapBit(out, p.msr, false, msrBitmapExits(bitmap01, p.msr, false) || msrBitmapExits(bitmap12, p.msr, false));
    if (p.write) setMsrBitmapBit(out, p.msr, true, msrBitmapExits(bitmap01, p.msr, true) || msrBitmapExits(bitmap12, p.msr, true));
  }
  return out;
}
