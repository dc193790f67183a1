// syncVmcs02ToVmcs12: on an emulated VM exit to L1, the vmcs12 guest-state area gets what a CPU running vmcs12
// would have saved (SDM 27.3): L2 registers from vmcs02 and L0's view of L2, CR0/CR4 by the three-way rule.
// Must not: mutate its inputs (returns a new vmcs12), write exit information (exit-info.ts) or load L1 state.
// Reference: nested-vmx.md §7.2 (KVM sync_vmcs02_to_vmcs12, _rare); SDM 27.3.1–27.3.4.
import { Field } from '../../cpu/generated/vmcs-fields.js';
import { EntryCtl, ExitCtl, Secondary } from '../../cpu/generated/controls.js';
import { Cr0, Cr4, Msr, type CpuState } from '../../cpu/state.js';
import type { CpuModel } from '../../cpu/cpu-model.js';
import { u64 } from '../../cpu/u64.js';
import { slotOf, type Vmcs } from '../../cpu/vmcs.js';
import { controlWord } from '../reflect/control-bits.js';
import { Deviation, type L0Profile } from '../profile.js';
import { savedPreemptionTimerValue, KVM_PREEMPTION_TIMER_RATE } from '../preemption-timer.js';

export interface SyncContext {
  readonly profile: L0Profile;
  /** The CPU model L1 sees (decides which optional fields a CPU saves, e.g. BNDCFGS with MPX). */
  readonly model: CpuModel;
  /** The exit happens while the nested VM entry is still pending (KVM nested_run_pending). */
  readonly nestedRunPending: boolean;
  /** Emulated preemption-timer deadline (null when not armed) and L1's TSC now (an instruction count). */
  readonly preemptionDeadline: bigint | null;
  readonly l1Tsc: bigint;
  readonly preemptionTimerRate?: number;
  /**
   * L1's architectural CR0 at the emulated VM entry: the CD/NW L2 has while L1 owns those bits in vmcs12 (entry never
   * loads them, SDM 26.3.2.1, and L2 cannot change a bit L1 owns). Omitted: vmcs12's values are kept (three-way rule).
   */
  readonly l1Cr0AtEntry?: bigint;
}

export interface SyncResult {
  readonly vmcs12: Vmcs;
  /** Names of the vmcs12 fields written. */
  readonly written: string[];
}

const SEGS = ['ES', 'CS', 'SS', 'DS', 'FS', 'GS', 'LDTR', 'TR'] as const;
const FROM_VMCS02: readonly string[] = [
  ...SEGS.flatMap((s) => [`GUEST_${s}_SELECTOR`, `GUEST_${s}_BASE`, `GUEST_${s}_LIMIT`, `GUEST_${s}_AR_BYTES`]),
  'GUEST_GDTR_BASE', 'GUEST_GDTR_LIMIT', 'GUEST_IDTR_BASE', 'GUEST_IDTR_LIMIT', 'GUEST_RSP', 'GUEST_RIP', 'GUEST_RFLAGS',
  'GUEST_SYSENTER_CS', 'GUEST_SYSENTER_ESP', 'GUEST_SYSENTER_EIP', 'GUEST_PENDING_DBG_EXCEPTIONS', 'GUEST_INTERRUPTIBILITY_INFO',
];

const FROM_VMCS02_SLOTS = Int32Array.from(FROM_VMCS02, (n) => {
  const slot = slotOf((Field as Record<string, number>)[n]!);
  if (slot < 0) throw new Error(`turtles bug: VMCS field ${n} is not in the field table`);
  return slot;
});

/**
 * CR0 bits VM entry never loads (SDM 26.3.2.1) whose hardware value in vmcs02 is L2's on a CPU too: ET and the reserved
 * bits 15:6, 17, 28:19. NW and CD are not loaded either, but L0 keeps them off in the real CR0 (L1_CR0_OWNED_BY_L0):
 * where L1 does not own them the three-way rule's read-shadow term holds L2's value (the merge starts it from L1's CR0),
 * where L1 owns them L2 still has L1's values from the entry. KVM takes all of them from vmcs12 / the read shadow
 * (vmcs12_guest_cr0), kvm.guest-cr0-unloaded-bits-from-vmcs12.
 */
const CR0_NOT_LOADED_BY_ENTRY = Cr0.ET | 0xffc0n | (1n << 17n) | 0x1ff8_0000n;
const CR0_CD_NW = Cr0.CD | Cr0.NW;

/**
 * The three-way CR rule: bits L2 owned in vmcs02 come from vmcs02's CR; bits L1 traps keep vmcs12's old value (L2 could
 * not change them without an exit to L1); bits only L0 traps come from vmcs02's read shadow, where L0 keeps L2's view.
 */
export function threeWayCr(cr02: bigint, mask02: bigint, shadow02: bigint, cr12: bigint, mask12: bigint): bigint {
  const owned = u64(~mask02);
  return u64((cr02 & owned) | (cr12 & mask12) | (shadow02 & ~(mask12 | owned)));
}

export function syncVmcs02ToVmcs12(vmcs02: Vmcs, vmcs12: Vmcs, l2State: CpuState, ctx: SyncContext): SyncResult {
  const out = vmcs12.clone();
  const written: string[] = [];
  const put = (enc: number, nameOf: string, v: bigint): void => {
    out.set(enc, v);
    written.push(nameOf);
  };
  const fieldEnc = (n: string): number => (Field as Record<string, number>)[n]!;
  // Same as put(field, name, vmcs02.get(field)) for each, without bigints.
  out.copySlotsFrom(vmcs02, FROM_VMCS02_SLOTS);
  written.push(...FROM_VMCS02);

  const cr0ThreeWay = threeWayCr(vmcs02.get(Field.GUEST_CR0), vmcs02.get(Field.CR0_GUEST_HOST_MASK), vmcs02.get(Field.CR0_READ_SHADOW), vmcs12.get(Field.GUEST_CR0), vmcs12.get(Field.CR0_GUEST_HOST_MASK));
  // Bits VM entry never loads from the CR0 field are the processor's, and the exit saves them as they are (SDM 26.3.2.1,
  // 27.3.1): CR0.ET reads 1 even when vmcs12 wrote 0 and L1 owns it, which the three-way rule alone would lose.
  let cr0 = cr0ThreeWay;
  if (!ctx.profile.deviations.has(Deviation.GUEST_CR0_UNLOADED_BITS_FROM_VMCS12)) {
    cr0 = u64((cr0 & ~CR0_NOT_LOADED_BY_ENTRY) | (vmcs02.get(Field.GUEST_CR0) & CR0_NOT_LOADED_BY_ENTRY));
    const l1Owned = vmcs12.get(Field.CR0_GUEST_HOST_MASK) & CR0_CD_NW;
    if (ctx.l1Cr0AtEntry !== undefined) cr0 = u64((cr0 & ~l1Owned) | (ctx.l1Cr0AtEntry & l1Owned));
  }
  const cr4 = threeWayCr(vmcs02.get(Field.GUEST_CR4), vmcs02.get(Field.CR4_GUEST_HOST_MASK), vmcs02.get(Field.CR4_READ_SHADOW), vmcs12.get(Field.GUEST_CR4), vmcs12.get(Field.CR4_GUEST_HOST_MASK));
  put(Field.GUEST_CR0, 'GUEST_CR0', cr0);
  put(Field.GUEST_CR4, 'GUEST_CR4', cr4);

  // With shadow paging vmcs02's CR3 is L0's shadow root; L2's own CR3 is what L0 tracks.
  const ept02 = (controlWord(vmcs02, 'secondary') & Secondary.ENABLE_EPT) !== 0;
  const ept12 = (controlWord(vmcs12, 'secondary') & Secondary.ENABLE_EPT) !== 0;
  put(Field.GUEST_CR3, 'GUEST_CR3', ept02 ? vmcs02.get(Field.GUEST_CR3) : l2State.cr3);

  // IA-32e mode guest reflects L2's EFER.LMA at the exit (SDM 27.2: the entry control is updated on every exit).
  const entry02 = vmcs02.lo(Field.VM_ENTRY_CONTROLS);
  const entry12 = (vmcs12.lo(Field.VM_ENTRY_CONTROLS) & ~EntryCtl.IA32E_MODE_GUEST) | (entry02 & EntryCtl.IA32E_MODE_GUEST);
  put(Field.VM_ENTRY_CONTROLS, 'VM_ENTRY_CONTROLS', BigInt(entry12 >>> 0));
  const lma = (entry02 & EntryCtl.IA32E_MODE_GUEST) !== 0;

  // PDPTEs are saved when EPT is on and L2 uses PAE paging (SDM 27.3.4).
  const pae = (cr0 & Cr0.PG) !== 0n && (cr4 & Cr4.PAE) !== 0n && !lma;
  if (ept02 && ept12 && pae) {
    for (const n of ['GUEST_PDPTR0', 'GUEST_PDPTR1', 'GUEST_PDPTR2', 'GUEST_PDPTR3']) put(fieldEnc(n), n, vmcs02.get(fieldEnc(n)));
  }

  put(Field.GUEST_ACTIVITY_STATE, 'GUEST_ACTIVITY_STATE', BigInt(l2State.activity));

  if (controlWord(vmcs12, 'secondary') & Secondary.VIRTUAL_INTERRUPT_DELIVERY) put(Field.GUEST_INTR_STATUS, 'GUEST_INTR_STATUS', vmcs02.get(Field.GUEST_INTR_STATUS));

  const exit12 = controlWord(vmcs12, 'exit');
  if (exit12 & ExitCtl.SAVE_DEBUG_CONTROLS) {
    put(Field.GUEST_DR7, 'GUEST_DR7', l2State.dr[7]!);
    put(Field.GUEST_IA32_DEBUGCTL, 'GUEST_IA32_DEBUGCTL', l2State.msr(Msr.IA32_DEBUGCTL));
  }
  if (exit12 & ExitCtl.SAVE_IA32_EFER) put(Field.GUEST_IA32_EFER, 'GUEST_IA32_EFER', l2State.efer);
  if (exit12 & ExitCtl.SAVE_IA32_PAT) put(Field.GUEST_IA32_PAT, 'GUEST_IA32_PAT', l2State.msr(Msr.IA32_PAT));
  if (exit12 & ExitCtl.SAVE_IA32_PERF_GLOBAL_CTRL) put(Field.GUEST_IA32_PERF_GLOBAL_CTRL, 'GUEST_IA32_PERF_GLOBAL_CTRL', l2State.msr(Msr.IA32_PERF_GLOBAL_CTRL));
  if (ctx.model.controlOffered('entry.load-ia32-bndcfgs')) put(Field.GUEST_BNDCFGS, 'GUEST_BNDCFGS', l2State.msr(Msr.IA32_BNDCFGS));

  const timer = savedPreemptionTimerValue(vmcs12.lo(Field.PIN_BASED_VM_EXEC_CONTROL), exit12, ctx.preemptionDeadline, ctx.l1Tsc, ctx.nestedRunPending, ctx.profile, ctx.preemptionTimerRate ?? KVM_PREEMPTION_TIMER_RATE);
  if (timer !== null) put(Field.VMX_PREEMPTION_TIMER_VALUE, 'VMX_PREEMPTION_TIMER_VALUE', BigInt(timer));

  return { vmcs12: out, written };
}
