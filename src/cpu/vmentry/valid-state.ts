// A VMCS that passes every VM-entry check on a given CPU model: a 64-bit host entering a 64-bit guest with EPT,
// VPID, I/O and MSR bitmaps, loaded EFER/PAT/PERF_GLOBAL_CTRL/debug controls. The seed of unit tests, properties and
// the fuzzer (perturb one field, see which check fires). Needs no memory reads (no TPR shadow, no link pointer, no
// MSR lists, no PAE guest). Must not: depend on anything but the CPU model's capabilities. SDM Vol. 3C 26.2-26.4.
import type { CpuModel } from '../cpu-model.js';
import { EntryCtl, ExitCtl, Pin, Primary, Secondary } from '../generated/controls.js';
import { Field } from '../generated/vmcs-fields.js';
import { Vmcs } from '../vmcs.js';

const u32 = (x: bigint): number => Number(x & 0xffff_ffffn) >>> 0;

/** Physical addresses the valid state points at (all 4-KByte aligned, far below any MAXPHYADDR). */
export const VALID_STATE_ADDRESSES = {
  ioBitmapA: 0x10000n, ioBitmapB: 0x11000n, msrBitmap: 0x12000n, eptPml4: 0x13000n, hostCr3: 0x1000n, guestCr3: 0x2000n,
} as const;

export function validVmcs(cpu: CpuModel): Vmcs {
  const v = new Vmcs();
  const pick = (group: Parameters<CpuModel['allowed']>[0], wanted: number): number => {
    const a = cpu.allowed(group);
    return (u32(a.mustBeOne) | (wanted & u32(a.mayBeOne))) >>> 0;
  };
  const pin = pick('pin', Pin.EXTERNAL_INTERRUPT_EXITING | Pin.NMI_EXITING | Pin.VIRTUAL_NMIS);
  const pri = pick('primary', Primary.HLT_EXITING | Primary.USE_IO_BITMAPS | Primary.USE_MSR_BITMAPS | Primary.ACTIVATE_SECONDARY_CONTROLS);
  const sec = (pri & Primary.ACTIVATE_SECONDARY_CONTROLS) !== 0 ? pick('secondary', Secondary.ENABLE_EPT | Secondary.ENABLE_VPID) : 0;
  const exit = pick('exit', ExitCtl.HOST_ADDRESS_SPACE_SIZE | ExitCtl.ACKNOWLEDGE_INTERRUPT_ON_EXIT | ExitCtl.SAVE_IA32_PAT
    | ExitCtl.LOAD_IA32_PAT | ExitCtl.SAVE_IA32_EFER | ExitCtl.LOAD_IA32_EFER | ExitCtl.LOAD_IA32_PERF_GLOBAL_CTRL);
  const entry = pick('entry', EntryCtl.IA32E_MODE_GUEST | EntryCtl.LOAD_DEBUG_CONTROLS | EntryCtl.LOAD_IA32_PAT
    | EntryCtl.LOAD_IA32_EFER | EntryCtl.LOAD_IA32_PERF_GLOBAL_CTRL);

  // ---- controls ----
  v.set32(Field.PIN_BASED_VM_EXEC_CONTROL, pin);
  v.set32(Field.CPU_BASED_VM_EXEC_CONTROL, pri);
  v.set32(Field.SECONDARY_VM_EXEC_CONTROL, sec);
  v.set32(Field.VM_EXIT_CONTROLS, exit);
  v.set32(Field.VM_ENTRY_CONTROLS, entry);
  v.set(Field.IO_BITMAP_A, VALID_STATE_ADDRESSES.ioBitmapA);
  v.set(Field.IO_BITMAP_B, VALID_STATE_ADDRESSES.ioBitmapB);
  v.set(Field.MSR_BITMAP, VALID_STATE_ADDRESSES.msrBitmap);
  // EPTP: write-back paging structures, 4-level walk, no A/D flags.
  v.set(Field.EPT_POINTER, VALID_STATE_ADDRESSES.eptPml4 | (3n << 3n) | 6n);
  v.set32(Field.VIRTUAL_PROCESSOR_ID, 1);
  v.set(Field.VMCS_LINK_POINTER, 0xffff_ffff_ffff_ffffn);
  v.set(Field.CR0_GUEST_HOST_MASK, 0x8000_0021n);
  v.set(Field.CR4_GUEST_HOST_MASK, 0x2000n);

  // ---- host state: 64-bit kernel ----
  v.set(Field.HOST_CR0, 0x8005_0033n); // PG, AM, WP, NE, ET, MP, PE
  v.set(Field.HOST_CR3, VALID_STATE_ADDRESSES.hostCr3);
  v.set(Field.HOST_CR4, 0x26e0n); // VMXE, OSXMMEXCPT, OSFXSR, PGE, MCE, PAE
  v.set32(Field.HOST_CS_SELECTOR, 0x10);
  for (const f of [Field.HOST_SS_SELECTOR, Field.HOST_DS_SELECTOR, Field.HOST_ES_SELECTOR, Field.HOST_FS_SELECTOR, Field.HOST_GS_SELECTOR]) v.set32(f, 0x18);
  v.set32(Field.HOST_TR_SELECTOR, 0x40);
  v.set(Field.HOST_GS_BASE, 0xffff_8880_0000_0000n);
  v.set(Field.HOST_TR_BASE, 0xffff_fe00_0000_3000n);
  v.set(Field.HOST_GDTR_BASE, 0xffff_fe00_0000_1000n);
  v.set(Field.HOST_IDTR_BASE, 0xffff_fe00_0000_0000n);
  v.set(Field.HOST_RSP, 0xffff_c900_0000_8000n);
  v.set(Field.HOST_RIP, 0xffff_ffff_8100_0000n);
  v.set(Field.HOST_IA32_PAT, 0x0007_0406_0007_0406n);
  v.set(Field.HOST_IA32_EFER, 0xd01n); // NXE, LMA, LME, SCE

  // ---- guest state: 64-bit mode, flat segments, paging on ----
  v.set(Field.GUEST_CR0, 0x8005_0033n);
  v.set(Field.GUEST_CR3, VALID_STATE_ADDRESSES.guestCr3);
  v.set(Field.GUEST_CR4, 0x26e0n);
  v.set(Field.GUEST_DR7, 0x400n);
  v.set(Field.GUEST_RFLAGS, 0x2n);
  v.set(Field.GUEST_RIP, 0x40_1000n);
  v.set(Field.GUEST_RSP, 0x7f_f000n);
  v.set32(Field.GUEST_CS_SELECTOR, 0x10);
  v.set32(Field.GUEST_CS_LIMIT, 0xffff_ffff);
  v.set32(Field.GUEST_CS_AR_BYTES, 0xa09b); // G, L, P, S, type 11 (execute/read, accessed)
  for (const [sel, lim, ar] of [
    [Field.GUEST_SS_SELECTOR, Field.GUEST_SS_LIMIT, Field.GUEST_SS_AR_BYTES],
    [Field.GUEST_DS_SELECTOR, Field.GUEST_DS_LIMIT, Field.GUEST_DS_AR_BYTES],
    [Field.GUEST_ES_SELECTOR, Field.GUEST_ES_LIMIT, Field.GUEST_ES_AR_BYTES],
    [Field.GUEST_FS_SELECTOR, Field.GUEST_FS_LIMIT, Field.GUEST_FS_AR_BYTES],
    [Field.GUEST_GS_SELECTOR, Field.GUEST_GS_LIMIT, Field.GUEST_GS_AR_BYTES],
  ] as const) {
    v.set32(sel, 0x18);
    v.set32(lim, 0xffff_ffff);
    v.set32(ar, 0xc093); // G, D/B, P, S, type 3 (read/write, accessed)
  }
  v.set32(Field.GUEST_TR_SELECTOR, 0x40);
  v.set32(Field.GUEST_TR_LIMIT, 0x67);
  v.set32(Field.GUEST_TR_AR_BYTES, 0x8b); // P, type 11 (busy 64-bit TSS)
  v.set32(Field.GUEST_LDTR_AR_BYTES, 0x1_0000); // unusable
  v.set32(Field.GUEST_GDTR_LIMIT, 0x7f);
  v.set32(Field.GUEST_IDTR_LIMIT, 0xfff);
  v.set(Field.GUEST_IA32_PAT, 0x0007_0406_0007_0406n);
  v.set(Field.GUEST_IA32_EFER, 0xd01n);
  return v;
}
