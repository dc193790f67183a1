// Loading host state at VM exit and at VM-entry failures (27.5.1-27.5.5), including the host PDPTE check that
// leads to VMX abort 2 and the IA-32e check that leads to VMX abort 6.
// Must not: process the VM-exit MSR-load list (msr-list.ts, called by the processor afterwards) or save guest state.
// SDM Vol. 3C 27.5 (and 26.8 step 2 for entry failures); reference §7.4 with the SDM rules, not KVM's (N14).
import type { CpuModel } from '../cpu-model.js';
import { ExitCtl } from '../generated/controls.js';
import { Field } from '../generated/vmcs-fields.js';
import { Ar, Cr0, Cr4, type CpuState, Efer, Msr, Seg } from '../state.js';
import { U64_MASK, signExtend } from '../u64.js';
import type { Vmcs } from '../vmcs.js';
import { paePaging, readPdptesFromMemory } from './guest-state.js';
import type { VmxPhysicalAccess } from './physical.js';

/** VMX-abort indicators (SDM 27.7). */
export const VmxAbort = {
  SAVE_GUEST_MSRS: 1,
  HOST_PDPTE: 2,
  VMCS_CORRUPTED: 3,
  LOAD_HOST_MSRS: 4,
  MACHINE_CHECK: 5,
  HOST_NOT_IA32E: 6,
} as const;

/**
 * CR0 bits a host-state load never modifies: ET, NW, CD, bits 63:32, 28:19, 17, 15:6 (plus the VMX-fixed bits,
 * added per model below).
 */
const CR0_HOST_KEEP = Cr0.ET | Cr0.NW | Cr0.CD | 0xffff_ffff_0000_0000n | 0x1ff8_0000n | (1n << 17n) | 0xffc0n;

const FLAT = 0xffff_ffff;
const AR_DATA = 3 | Ar.S | Ar.P | Ar.DB | Ar.G;
const AR_CODE = 11 | Ar.S | Ar.P | Ar.G;
const AR_TSS_BUSY = 11 | Ar.P;

const HOST_DATA_SEGMENTS: readonly [number, number][] = [
  [Seg.ES, Field.HOST_ES_SELECTOR],
  [Seg.SS, Field.HOST_SS_SELECTOR],
  [Seg.DS, Field.HOST_DS_SELECTOR],
  [Seg.FS, Field.HOST_FS_SELECTOR],
  [Seg.GS, Field.HOST_GS_SELECTOR],
];

export type HostLoadResult = { readonly ok: true; readonly host: CpuState } | { readonly ok: false; readonly abort: number };

/**
 * The processor state after the host-state load. `base` is the state the exit starts from (the guest at a VM
 * exit, the root state at an entry failure); everything the host-state area does not define carries over from it.
 * `nmiBlocked` is the NMI blocking that survives the transition.
 */
export function loadHostState(vmcs: Vmcs, cpu: CpuModel, mem: VmxPhysicalAccess, base: CpuState, nmiBlocked: boolean): HostLoadResult {
  const exit = vmcs.lo(Field.VM_EXIT_CONTROLS);
  const hass = (exit & ExitCtl.HOST_ADDRESS_SPACE_SIZE) !== 0;
  // A processor in IA-32e mode cannot return to a host that is not (27.5 preamble): VMX abort 6.
  if ((base.efer & Efer.LMA) !== 0n && !hass) return { ok: false, abort: VmxAbort.HOST_NOT_IA32E };
  const n = cpu.linearAddressWidth;
  const h = base.clone();

  // 27.5.1 control registers, debug registers, MSRs.
  // Bits fixed in VMX operation keep their fixed (root-operation) values: with "unrestricted guest" the guest ran
  // with CR0.PE/PG = 0, but the host after the exit cannot (SDM 27.5.1 with 23.8).
  const cr0Fixed = cpu.cr0Fixed0 | (~cpu.cr0Fixed1 & U64_MASK);
  h.cr0 = (base.cr0 & CR0_HOST_KEEP) | (vmcs.get(Field.HOST_CR0) & ~(CR0_HOST_KEEP | cr0Fixed) & U64_MASK) | cpu.cr0Fixed0;
  // CR3 bits beyond the physical-address width are cleared.
  h.cr3 = vmcs.get(Field.HOST_CR3) & ((1n << BigInt(cpu.maxPhysAddr)) - 1n);
  const cr4Fixed = cpu.cr4Fixed0 | (~cpu.cr4Fixed1 & U64_MASK);
  let cr4 = (vmcs.get(Field.HOST_CR4) & ~cr4Fixed & U64_MASK) | cpu.cr4Fixed0;
  cr4 = hass ? cr4 | Cr4.PAE : cr4 & ~Cr4.PCIDE;
  h.cr4 = cr4;
  h.dr[7] = 0x400n;
  h.setMsr(Msr.IA32_DEBUGCTL, 0n);
  h.setMsr(Msr.IA32_SYSENTER_CS, vmcs.get(Field.HOST_IA32_SYSENTER_CS) & 0xffff_ffffn);
  h.setMsr(Msr.IA32_SYSENTER_ESP, signExtend(vmcs.get(Field.HOST_IA32_SYSENTER_ESP), n));
  h.setMsr(Msr.IA32_SYSENTER_EIP, signExtend(vmcs.get(Field.HOST_IA32_SYSENTER_EIP), n));
  if (exit & ExitCtl.LOAD_IA32_EFER) h.efer = vmcs.get(Field.HOST_IA32_EFER);
  else h.efer = (base.efer & ~(Efer.LMA | Efer.LME)) | (hass ? Efer.LMA | Efer.LME : 0n);
  if (exit & ExitCtl.LOAD_IA32_PERF_GLOBAL_CTRL) h.setMsr(Msr.IA32_PERF_GLOBAL_CTRL, vmcs.get(Field.HOST_IA32_PERF_GLOBAL_CTRL));
  if (exit & ExitCtl.LOAD_IA32_PAT) h.setMsr(Msr.IA32_PAT, vmcs.get(Field.HOST_IA32_PAT));
  if (exit & ExitCtl.CLEAR_IA32_BNDCFGS) h.setMsr(Msr.IA32_BNDCFGS, 0n);
  if (exit & ExitCtl.CLEAR_IA32_RTIT_CTL) h.setMsr(Msr.IA32_RTIT_CTL, 0n);
  if (exit & ExitCtl.CLEAR_IA32_LBR_CTL) h.setMsr(Msr.IA32_LBR_CTL, 0n);
  if (exit & ExitCtl.LOAD_PKRS) h.setMsr(Msr.IA32_PKRS, vmcs.get(Field.HOST_IA32_PKRS));
  if (exit & ExitCtl.LOAD_CET_STATE) {
    h.setMsr(Msr.IA32_S_CET, vmcs.get(Field.HOST_S_CET));
    h.setMsr(Msr.IA32_INTERRUPT_SSP_TABLE_ADDR, vmcs.get(Field.HOST_INTR_SSP_TABLE));
  }

  // 27.5.2 segment and descriptor-table registers.
  h.segSel[Seg.CS] = vmcs.lo(Field.HOST_CS_SELECTOR);
  h.segBase[Seg.CS] = 0n;
  h.segLimit[Seg.CS] = FLAT;
  // CS.L = host address-space size, CS.D/B its inverse: no VM exit ever lands in compatibility mode.
  h.segAr[Seg.CS] = AR_CODE | (hass ? Ar.L : Ar.DB);
  for (const [seg, selField] of HOST_DATA_SEGMENTS) {
    const sel = vmcs.lo(selField);
    h.segSel[seg] = sel;
    const fsgs = seg === Seg.FS || seg === Seg.GS;
    // FS/GS bases are loaded from the host fields; SS/DS/ES bases are 0. (For an unusable FS/GS outside 64-bit
    // mode the SDM leaves the base undefined but canonical; loading the sign-extended field satisfies that.)
    h.segBase[seg] = fsgs ? signExtend(vmcs.get(seg === Seg.FS ? Field.HOST_FS_BASE : Field.HOST_GS_BASE), n) : 0n;
    h.segLimit[seg] = FLAT;
    // A null selector makes the segment unusable; its other attributes are undefined, SS.DPL is 0 either way.
    h.segAr[seg] = sel === 0 ? Ar.UNUSABLE : AR_DATA;
  }
  h.segSel[Seg.TR] = vmcs.lo(Field.HOST_TR_SELECTOR);
  h.segBase[Seg.TR] = signExtend(vmcs.get(Field.HOST_TR_BASE), n);
  h.segLimit[Seg.TR] = 0x67;
  h.segAr[Seg.TR] = AR_TSS_BUSY;
  // LDTR: selector 0, unusable; the base is undefined but canonical (0 here).
  h.segSel[Seg.LDTR] = 0;
  h.segBase[Seg.LDTR] = 0n;
  h.segLimit[Seg.LDTR] = 0;
  h.segAr[Seg.LDTR] = Ar.UNUSABLE;
  h.gdtrBase = signExtend(vmcs.get(Field.HOST_GDTR_BASE), n);
  h.gdtrLimit = 0xffff;
  h.idtrBase = signExtend(vmcs.get(Field.HOST_IDTR_BASE), n);
  h.idtrLimit = 0xffff;

  // 27.5.3 RIP, RSP, RFLAGS.
  h.rip = vmcs.get(Field.HOST_RIP);
  h.gpr[4] = vmcs.get(Field.HOST_RSP);
  h.rflags = 0x2n;

  // 27.5.4 host PDPTEs under PAE paging: a present entry with reserved bits set is VMX abort 2.
  if (paePaging(h.cr0, h.cr4, (h.efer & Efer.LMA) !== 0n)) {
    const reserved = 0x1e6n | (U64_MASK << BigInt(cpu.maxPhysAddr));
    for (const pdpte of readPdptesFromMemory(mem, h.cr3)) {
      if ((pdpte & 1n) !== 0n && (pdpte & reserved & U64_MASK) !== 0n) return { ok: false, abort: VmxAbort.HOST_PDPTE };
    }
  }

  // 27.5.5 non-register state: active, no STI/MOV-SS blocking, no pending debug exceptions; SMI blocking unchanged.
  h.activity = 0;
  h.interruptibility = (base.interruptibility & 0x4) | (nmiBlocked ? 0x8 : 0);
  h.pendingDebugExceptions = 0n;
  return { ok: true, host: h };
}
