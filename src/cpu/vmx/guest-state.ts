// Guest-state transfer between VMCS and CpuState: loading at VM entry (26.3.2 plus the activity/blocking/injection
// effects of 26.6) and saving at VM exit (27.3); SDM-undefined parts (unusable segments) keep the source value.
// Must not: run VM-entry checks (src/cpu/vmentry does) or touch host state (host-state.ts).
// SDM Vol. 3C 26.3.2.1-26.3.2.4, 26.6, 27.3.1-27.3.4.
import type { CpuModel } from '../cpu-model.js';
import { EntryCtl, ExitCtl, Pin, Primary, Secondary } from '../generated/controls.js';
import { Field } from '../generated/vmcs-fields.js';
import { IntrType } from '../exit-info/interruption-info.js';
import { Ar, Cr0, Cr4, type CpuState, Efer, Msr, Seg } from '../state.js';
import { signExtend } from '../u64.js';
import type { Vmcs } from '../vmcs.js';
import type { InjectedEvent } from './outcome.js';
import { type VmxPhysicalAccess, readPhys } from './physical.js';

/** Per-segment VMCS encodings in Seg order (ES, CS, SS, DS, FS, GS, LDTR, TR). */
export const GUEST_SEGMENT_FIELDS: readonly { sel: number; base: number; limit: number; ar: number }[] = [
  { sel: Field.GUEST_ES_SELECTOR, base: Field.GUEST_ES_BASE, limit: Field.GUEST_ES_LIMIT, ar: Field.GUEST_ES_AR_BYTES },
  { sel: Field.GUEST_CS_SELECTOR, base: Field.GUEST_CS_BASE, limit: Field.GUEST_CS_LIMIT, ar: Field.GUEST_CS_AR_BYTES },
  { sel: Field.GUEST_SS_SELECTOR, base: Field.GUEST_SS_BASE, limit: Field.GUEST_SS_LIMIT, ar: Field.GUEST_SS_AR_BYTES },
  { sel: Field.GUEST_DS_SELECTOR, base: Field.GUEST_DS_BASE, limit: Field.GUEST_DS_LIMIT, ar: Field.GUEST_DS_AR_BYTES },
  { sel: Field.GUEST_FS_SELECTOR, base: Field.GUEST_FS_BASE, limit: Field.GUEST_FS_LIMIT, ar: Field.GUEST_FS_AR_BYTES },
  { sel: Field.GUEST_GS_SELECTOR, base: Field.GUEST_GS_BASE, limit: Field.GUEST_GS_LIMIT, ar: Field.GUEST_GS_AR_BYTES },
  { sel: Field.GUEST_LDTR_SELECTOR, base: Field.GUEST_LDTR_BASE, limit: Field.GUEST_LDTR_LIMIT, ar: Field.GUEST_LDTR_AR_BYTES },
  { sel: Field.GUEST_TR_SELECTOR, base: Field.GUEST_TR_BASE, limit: Field.GUEST_TR_LIMIT, ar: Field.GUEST_TR_AR_BYTES },
];

const PDPTR_FIELDS = [Field.GUEST_PDPTR0, Field.GUEST_PDPTR1, Field.GUEST_PDPTR2, Field.GUEST_PDPTR3] as const;

/** AR bits 31:17 and 11:8 are reserved in the VMCS format; bit 16 is the unusable bit. */
export const AR_DEFINED_MASK = 0x1f0ff;

/** CR0 bits VM entry never modifies: ET (4), reserved 15:6, 17, 28:19, NW (29), CD (30) (SDM 26.3.2.1). */
const CR0_ENTRY_KEEP = Cr0.ET | 0xffc0n | (1n << 17n) | 0x1ff8_0000n | Cr0.NW | Cr0.CD;

/** The secondary processor-based controls in effect (all 0 unless "activate secondary controls" is 1). */
export function secondaryControls(vmcs: Vmcs): number {
  return vmcs.lo(Field.CPU_BASED_VM_EXEC_CONTROL) & Primary.ACTIVATE_SECONDARY_CONTROLS ? vmcs.lo(Field.SECONDARY_VM_EXEC_CONTROL) : 0;
}

/** PAE paging: CR0.PG = 1, CR4.PAE = 1 and not IA-32e mode. */
export function paePaging(cr0: bigint, cr4: bigint, lma: boolean): boolean {
  return (cr0 & Cr0.PG) !== 0n && (cr4 & Cr4.PAE) !== 0n && !lma;
}

/** The four PDPTEs at CR3 (bits 31:5 locate the 32-byte table in PAE paging). */
export function readPdptesFromMemory(mem: VmxPhysicalAccess, cr3: bigint): bigint[] {
  const table = cr3 & 0xffff_ffe0n;
  return [0, 1, 2, 3].map((i) => readPhys(mem, table + BigInt(8 * i), 8));
}

export interface LoadedGuest {
  readonly guest: CpuState;
  readonly pdptes?: readonly bigint[];
  readonly injected?: InjectedEvent;
  readonly pendingMtf: boolean;
  readonly preemptionTimer?: number;
}

/**
 * Build the guest CpuState for a VM entry that passed its checks. Starting from the root state is what makes
 * state the VMCS does not switch (GPRs other than RSP, CR2, DR0-DR6, most MSRs) carry over into the guest.
 */
export function loadGuestState(vmcs: Vmcs, cpu: CpuModel, mem: VmxPhysicalAccess, root: CpuState): LoadedGuest {
  const g = root.clone();
  const entry = vmcs.lo(Field.VM_ENTRY_CONTROLS);
  const ia32eGuest = (entry & EntryCtl.IA32E_MODE_GUEST) !== 0;
  const la = cpu.linearAddressWidth;

  // 26.3.2.1 control registers, debug registers, MSRs.
  g.cr0 = (root.cr0 & CR0_ENTRY_KEEP) | (vmcs.get(Field.GUEST_CR0) & ~CR0_ENTRY_KEEP);
  g.cr3 = vmcs.get(Field.GUEST_CR3);
  g.cr4 = vmcs.get(Field.GUEST_CR4);
  if (entry & EntryCtl.LOAD_DEBUG_CONTROLS) {
    // DR7 bits 12 and 15:14 are always 0 and bit 10 always 1.
    g.dr[7] = (vmcs.get(Field.GUEST_DR7) & ~0xd000n) | 0x400n;
    g.setMsr(Msr.IA32_DEBUGCTL, vmcs.get(Field.GUEST_IA32_DEBUGCTL));
  }
  g.setMsr(Msr.IA32_SYSENTER_CS, vmcs.get(Field.GUEST_SYSENTER_CS));
  g.setMsr(Msr.IA32_SYSENTER_ESP, vmcs.get(Field.GUEST_SYSENTER_ESP));
  g.setMsr(Msr.IA32_SYSENTER_EIP, vmcs.get(Field.GUEST_SYSENTER_EIP));
  if (entry & EntryCtl.LOAD_IA32_EFER) {
    g.efer = vmcs.get(Field.GUEST_IA32_EFER);
  } else {
    // LMA follows "IA-32e mode guest"; LME too, but only when the guest enables paging.
    let efer = (g.efer & ~Efer.LMA) | (ia32eGuest ? Efer.LMA : 0n);
    if (g.cr0 & Cr0.PG) efer = (efer & ~Efer.LME) | (ia32eGuest ? Efer.LME : 0n);
    g.efer = efer;
  }
  if (entry & EntryCtl.LOAD_IA32_PERF_GLOBAL_CTRL) g.setMsr(Msr.IA32_PERF_GLOBAL_CTRL, vmcs.get(Field.GUEST_IA32_PERF_GLOBAL_CTRL));
  if (entry & EntryCtl.LOAD_IA32_PAT) g.setMsr(Msr.IA32_PAT, vmcs.get(Field.GUEST_IA32_PAT));
  if (entry & EntryCtl.LOAD_IA32_BNDCFGS) g.setMsr(Msr.IA32_BNDCFGS, vmcs.get(Field.GUEST_BNDCFGS));
  if (entry & EntryCtl.LOAD_IA32_RTIT_CTL) g.setMsr(Msr.IA32_RTIT_CTL, vmcs.get(Field.GUEST_IA32_RTIT_CTL));
  if (entry & EntryCtl.LOAD_GUEST_IA32_LBR_CTL) g.setMsr(Msr.IA32_LBR_CTL, vmcs.get(Field.GUEST_IA32_LBR_CTL));
  if (entry & EntryCtl.LOAD_PKRS) g.setMsr(Msr.IA32_PKRS, vmcs.get(Field.GUEST_IA32_PKRS));
  if (entry & EntryCtl.LOAD_CET_STATE) {
    // SSP itself is not a CpuState register; the two CET MSRs are.
    g.setMsr(Msr.IA32_S_CET, vmcs.get(Field.GUEST_S_CET));
    g.setMsr(Msr.IA32_INTERRUPT_SSP_TABLE_ADDR, vmcs.get(Field.GUEST_INTR_SSP_TABLE));
  }

  // 26.3.2.2 segment and descriptor-table registers.
  GUEST_SEGMENT_FIELDS.forEach((f, seg) => {
    const ar = vmcs.lo(f.ar) & AR_DEFINED_MASK;
    let base = vmcs.get(f.base);
    if (ar & Ar.UNUSABLE) {
      // Undefined parts keep the VMCS value; the SDM-defined parts: SS/DS/ES base bits 63:32 cleared,
      // LDTR base canonical. FS/GS bases and SS.DPL are always loaded.
      if (seg === Seg.SS || seg === Seg.DS || seg === Seg.ES) base &= 0xffff_ffffn;
      if (seg === Seg.LDTR) base = signExtend(base, la);
    }
    g.segSel[seg] = vmcs.lo(f.sel);
    g.segBase[seg] = base;
    g.segLimit[seg] = vmcs.lo(f.limit);
    g.segAr[seg] = ar;
  });
  g.gdtrBase = vmcs.get(Field.GUEST_GDTR_BASE);
  g.gdtrLimit = vmcs.lo(Field.GUEST_GDTR_LIMIT) & 0xffff;
  g.idtrBase = vmcs.get(Field.GUEST_IDTR_BASE);
  g.idtrLimit = vmcs.lo(Field.GUEST_IDTR_LIMIT) & 0xffff;

  // 26.3.2.3 RIP, RSP, RFLAGS.
  g.rip = vmcs.get(Field.GUEST_RIP);
  g.gpr[4] = vmcs.get(Field.GUEST_RSP);
  g.rflags = vmcs.get(Field.GUEST_RFLAGS);

  // 26.3.2.4 PDPTEs: from the VMCS with EPT, else from the page at CR3 (the entry checks validated them).
  let pdptes: bigint[] | undefined;
  if (paePaging(g.cr0, g.cr4, (g.efer & Efer.LMA) !== 0n)) {
    pdptes = secondaryControls(vmcs) & Secondary.ENABLE_EPT ? PDPTR_FIELDS.map((f) => vmcs.get(f)) : readPdptesFromMemory(mem, g.cr3);
  }

  // 26.6 event injection, activity and interruptibility.
  const info = vmcs.lo(Field.VM_ENTRY_INTR_INFO_FIELD);
  const valid = (info & 0x8000_0000) !== 0;
  const type = (info >>> 8) & 7;
  const vector = info & 0xff;
  const vectoring = valid && type !== IntrType.OTHER_EVENT && type !== IntrType.RESERVED;
  let injected: InjectedEvent | undefined;
  if (vectoring) {
    const soft = type === IntrType.SOFTWARE_INTERRUPT || type === IntrType.PRIVILEGED_SOFTWARE_EXCEPTION || type === IntrType.SOFTWARE_EXCEPTION;
    injected = {
      vector,
      type,
      ...(info & 0x800 ? { errorCode: vmcs.lo(Field.VM_ENTRY_EXCEPTION_ERROR_CODE) } : {}),
      ...(soft ? { instructionLength: vmcs.lo(Field.VM_ENTRY_INSTRUCTION_LEN) } : {}),
    };
  }
  const pendingMtf = valid && type === IntrType.OTHER_EVENT && vector === 0;
  // A vectoring entry ends in the active state with no STI/MOV-SS blocking; SMI blocking is unchanged outside SMM.
  g.activity = vectoring ? 0 : vmcs.lo(Field.GUEST_ACTIVITY_STATE);
  let intr = (vmcs.lo(Field.GUEST_INTERRUPTIBILITY_INFO) & ~0x4) | (root.interruptibility & 0x4);
  if (vectoring) intr &= ~0x3;
  g.interruptibility = intr;
  g.pendingDebugExceptions = vmcs.get(Field.GUEST_PENDING_DBG_EXCEPTIONS);

  const timer = vmcs.lo(Field.PIN_BASED_VM_EXEC_CONTROL) & Pin.ACTIVATE_VMX_PREEMPTION_TIMER ? vmcs.lo(Field.VMX_PREEMPTION_TIMER_VALUE) : undefined;
  return {
    guest: g,
    pendingMtf,
    ...(pdptes ? { pdptes } : {}),
    ...(injected ? { injected } : {}),
    ...(timer !== undefined ? { preemptionTimer: timer } : {}),
  };
}

export interface GuestSaveExtras {
  /** The guest's PDPTE registers at the exit (saved with EPT and PAE paging). */
  readonly pdptes?: readonly bigint[];
  /** Remaining preemption-timer value (saved when "save VMX-preemption-timer value" is 1). */
  readonly preemptionTimer?: number;
  /** The exit is the preemption-timer expiry (reason 52): the saved value is 0. */
  readonly timerExpired: boolean;
}

/** MSRs VM exits save whenever the processor supports loading (entry) or clearing (exit) them (SDM 27.3.1). */
interface SavedMsrSupport {
  readonly bndcfgs: boolean;
  readonly rtit: boolean;
  readonly lbr: boolean;
  readonly pkrs: boolean;
  readonly cet: boolean;
}

const savedMsrSupport = new WeakMap<CpuModel, SavedMsrSupport>();

function savedMsrs(cpu: CpuModel): SavedMsrSupport {
  let s = savedMsrSupport.get(cpu);
  if (!s) {
    const offered = (id: string) => cpu.controlOffered(id);
    s = {
      bndcfgs: offered('entry.load-ia32-bndcfgs') || offered('exit.clear-ia32-bndcfgs'),
      rtit: offered('entry.load-ia32-rtit-ctl') || offered('exit.clear-ia32-rtit-ctl'),
      lbr: offered('entry.load-guest-ia32-lbr-ctl') || offered('exit.clear-ia32-lbr-ctl'),
      pkrs: offered('entry.load-pkrs'),
      cet: offered('entry.load-cet-state'),
    };
    savedMsrSupport.set(cpu, s);
  }
  return s;
}

/** Save guest state into the VMCS (27.3). */
export function saveGuestState(vmcs: Vmcs, cpu: CpuModel, g: CpuState, extras: GuestSaveExtras): void {
  const exit = vmcs.lo(Field.VM_EXIT_CONTROLS);
  const la = cpu.linearAddressWidth;
  const saved = savedMsrs(cpu);

  // 27.3.1 control registers, debug registers, MSRs.
  vmcs.set(Field.GUEST_CR0, g.cr0);
  vmcs.set(Field.GUEST_CR3, g.cr3);
  vmcs.set(Field.GUEST_CR4, g.cr4);
  if (exit & ExitCtl.SAVE_DEBUG_CONTROLS) {
    vmcs.set(Field.GUEST_DR7, g.dr[7]!);
    vmcs.set(Field.GUEST_IA32_DEBUGCTL, g.msr(Msr.IA32_DEBUGCTL));
  }
  vmcs.set(Field.GUEST_SYSENTER_CS, g.msr(Msr.IA32_SYSENTER_CS) & 0xffff_ffffn);
  vmcs.set(Field.GUEST_SYSENTER_ESP, g.msr(Msr.IA32_SYSENTER_ESP));
  vmcs.set(Field.GUEST_SYSENTER_EIP, g.msr(Msr.IA32_SYSENTER_EIP));
  if (exit & ExitCtl.SAVE_IA32_PAT) vmcs.set(Field.GUEST_IA32_PAT, g.msr(Msr.IA32_PAT));
  if (exit & ExitCtl.SAVE_IA32_EFER) vmcs.set(Field.GUEST_IA32_EFER, g.efer);
  if (exit & ExitCtl.SAVE_IA32_PERF_GLOBAL_CTRL) vmcs.set(Field.GUEST_IA32_PERF_GLOBAL_CTRL, g.msr(Msr.IA32_PERF_GLOBAL_CTRL));
  if (saved.bndcfgs) vmcs.set(Field.GUEST_BNDCFGS, g.msr(Msr.IA32_BNDCFGS));
  if (saved.rtit) vmcs.set(Field.GUEST_IA32_RTIT_CTL, g.msr(Msr.IA32_RTIT_CTL));
  if (saved.lbr) vmcs.set(Field.GUEST_IA32_LBR_CTL, g.msr(Msr.IA32_LBR_CTL));
  if (saved.pkrs) vmcs.set(Field.GUEST_IA32_PKRS, g.msr(Msr.IA32_PKRS));
  if (saved.cet) {
    vmcs.set(Field.GUEST_S_CET, g.msr(Msr.IA32_S_CET));
    vmcs.set(Field.GUEST_INTR_SSP_TABLE, g.msr(Msr.IA32_INTERRUPT_SSP_TABLE_ADDR));
  }

  // 27.3.2 segments: AR bits 31:17 and 11:8 saved as 0, bit 16 = unusable; for unusable registers the SDM fixes
  // only SS/DS/ES base bits 63:32 (0) and the LDTR base (canonical).
  GUEST_SEGMENT_FIELDS.forEach((f, seg) => {
    const ar = g.segAr[seg]! & AR_DEFINED_MASK;
    let base = g.segBase[seg]!;
    if (ar & Ar.UNUSABLE) {
      if (seg === Seg.SS || seg === Seg.DS || seg === Seg.ES) base &= 0xffff_ffffn;
      if (seg === Seg.LDTR) base = signExtend(base, la);
    }
    vmcs.set32(f.sel, g.segSel[seg]!);
    vmcs.set(f.base, base);
    vmcs.set32(f.limit, g.segLimit[seg]!);
    vmcs.set32(f.ar, ar);
  });
  vmcs.set(Field.GUEST_GDTR_BASE, g.gdtrBase);
  vmcs.set32(Field.GUEST_GDTR_LIMIT, g.gdtrLimit & 0xffff);
  vmcs.set(Field.GUEST_IDTR_BASE, g.idtrBase);
  vmcs.set32(Field.GUEST_IDTR_LIMIT, g.idtrLimit & 0xffff);

  // 27.3.3 RIP, RSP, RFLAGS.
  vmcs.set(Field.GUEST_RIP, g.rip);
  vmcs.set(Field.GUEST_RSP, g.gpr[4]!);
  vmcs.set(Field.GUEST_RFLAGS, g.rflags);

  // 27.3.4 non-register state.
  vmcs.set32(Field.GUEST_ACTIVITY_STATE, g.activity);
  vmcs.set32(Field.GUEST_INTERRUPTIBILITY_INFO, g.interruptibility);
  vmcs.set(Field.GUEST_PENDING_DBG_EXCEPTIONS, g.pendingDebugExceptions);
  if (exit & ExitCtl.SAVE_VMX_PREEMPTION_TIMER_VALUE) {
    if (extras.timerExpired) vmcs.set32(Field.VMX_PREEMPTION_TIMER_VALUE, 0);
    else if (extras.preemptionTimer !== undefined) vmcs.set32(Field.VMX_PREEMPTION_TIMER_VALUE, extras.preemptionTimer);
  }
  const lma = (g.efer & Efer.LMA) !== 0n;
  if (secondaryControls(vmcs) & Secondary.ENABLE_EPT && paePaging(g.cr0, g.cr4, lma) && extras.pdptes) {
    PDPTR_FIELDS.forEach((f, i) => vmcs.set(f, extras.pdptes![i] ?? 0n));
  }
  // The "IA-32e mode guest" entry control tracks EFER.LMA so a later VM entry resumes in the same mode.
  const entry = vmcs.lo(Field.VM_ENTRY_CONTROLS);
  vmcs.set32(Field.VM_ENTRY_CONTROLS, lma ? entry | EntryCtl.IA32E_MODE_GUEST : entry & ~EntryCtl.IA32E_MODE_GUEST);
}
