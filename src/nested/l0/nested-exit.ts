// The emulated VM exit to L1 (reflected or synthesized) and the emulated VM-entry failure: vmcs12 guest-state sync,
// exit information, the vmcs12 MSR-store and MSR-load lists, L1's state from vmcs12's host-state area, VMX abort (or
// KVM's triple fault), and the re-entry of L1 at HOST_RIP. Uses only the L0Parts for every decision.
// Must not: run L2 or decide reflection. Reference: nested-vmx.md §7.1–7.6, §9.3 N1; SDM 26.8, 27.2–27.7.
import { Pin } from '../../cpu/generated/controls.js';
import { Field } from '../../cpu/generated/vmcs-fields.js';
import type { L1LaunchResult } from '../../cpu/l1/machine.js';
import { Msr, type CpuState } from '../../cpu/state.js';
import { loadMsrList, storeMsrList } from '../../cpu/vmx/msr-list.js';
import { writePhys } from '../../cpu/vmx/physical.js';
import type { Vmcs } from '../../cpu/vmcs.js';
import type { HardwareExit } from '../reflect/types.js';
import type { NestedExitInfo } from '../sync/exit-info.js';
import { Deviation } from '../profile.js';
import type { L0 } from './l0.js';

/** What the machine needs to report an exit to L1 (O2/O3/O6 follow from it). */
export interface ExitToL1 {
  readonly result: L1LaunchResult;
  /** L1 resumed at HOST_RIP (VM exit or VM-entry failure); false after an abort / triple fault. */
  readonly resumed: boolean;
}

const VMX_ABORT_OFFSET = 4n;

/** Exit information from a hardware exit of vmcs02; fields the exit does not define keep vmcs12's values (SDM 27.2.1). */
export function exitInfoFromHardware(hw: HardwareExit, defined: { instructionLength?: number; instructionInfo?: number; guestLinearAddress?: bigint }, vmcs12: Vmcs): NestedExitInfo {
  return {
    reason: hw.reason >>> 0,
    qualification: hw.qualification,
    intrInfo: hw.intrInfo >>> 0,
    intrErrorCode: hw.intrErrorCode >>> 0,
    instructionLength: defined.instructionLength ?? vmcs12.lo(Field.VM_EXIT_INSTRUCTION_LEN),
    instructionInfo: defined.instructionInfo ?? vmcs12.lo(Field.VMX_INSTRUCTION_INFO),
    guestLinearAddress: defined.guestLinearAddress ?? vmcs12.get(Field.GUEST_LINEAR_ADDRESS),
    guestPhysicalAddress: hw.guestPhysicalAddress,
    idtVectoringInfo: hw.idtVectoringInfo >>> 0,
    idtVectoringErrorCode: hw.idtVectoringErrorCode >>> 0,
    synthesized: false,
  };
}

/** The VMX abort (SDM 27.7): indicator into the vmcs12 region, L1 shut down; KVM triple-faults L1 instead (N1). */
function abort(l0: L0, indicator: number): ExitToL1 {
  const cur = l0.state.current;
  if (l0.profile.deviations.has(Deviation.ABORT_AS_TRIPLE_FAULT)) {
    return { result: { kind: 'shutdown', why: 'triple-fault', abortIndicator: indicator }, resumed: false };
  }
  if (cur) writePhys(l0.l1Port, cur.ptr + VMX_ABORT_OFFSET, 4, BigInt(indicator));
  return { result: { kind: 'shutdown', why: 'vmx-abort', abortIndicator: indicator }, resumed: false };
}

/** Host-state load, the VM-exit MSR-load list and the re-entry of L1, shared by exits and entry failures. */
function finish(l0: L0, vmcs12: Vmcs, base: CpuState, interruptibility: number): ExitToL1 {
  const host = l0.parts.loadHostState(vmcs12, base, {
    profile: l0.profile, model: l0.l1Model, readL1Memory: (gpa, size) => l0.l1Port.readBytes(gpa, size),
  });
  if (host.kind === 'vmx-abort') return abort(l0, host.indicator);
  if (host.kind === 'triple-fault') return { result: { kind: 'shutdown', why: 'triple-fault', abortIndicator: host.abortIndicator }, resumed: false };
  const s = host.state;
  // SDM 27.5.5: no pending debug exceptions; SMI blocking and (without virtual NMIs) NMI blocking carry over.
  s.interruptibility = interruptibility;
  s.pendingDebugExceptions = 0n;
  const load = loadMsrList(l0.l1Port, vmcs12.get(Field.VM_EXIT_MSR_LOAD_ADDR), vmcs12.lo(Field.VM_EXIT_MSR_LOAD_COUNT), s, l0.msrRules);
  if (!load.ok) return abort(l0, 4);
  const entered = l0.enterL1(s);
  if (!entered.ok) return { result: { kind: 'shutdown', why: 'triple-fault' }, resumed: false };
  return { result: { kind: 'vm-exit', exitReason: vmcs12.lo(Field.VM_EXIT_REASON) }, resumed: true };
}

export interface NestedExitContext {
  /** L2's state at the exit (registers, MSRs the VMCS does not switch). */
  readonly l2: CpuState;
  /** Emulated preemption-timer deadline (null when vmcs12 does not use the timer). */
  readonly preemptionDeadline: bigint | null;
  /** L1's architectural CR0 at the emulated entry (the CR0 bits VM entry does not load, see syncVmcs02ToVmcs12). */
  readonly l1Cr0AtEntry: bigint;
}

/** §7: the nested VM exit for `exit` (already decided: reflected or synthesized). */
export function nestedVmExit(l0: L0, exit: NestedExitInfo, rule: string, ctx: NestedExitContext): ExitToL1 {
  const cur = l0.state.current;
  if (!cur) throw new Error('turtles bug: nested VM exit without a current vmcs12');
  const synced = l0.parts.syncGuestState(l0.vmcs02, cur.vmcs, ctx.l2, {
    profile: l0.profile, model: l0.l1Model, nestedRunPending: false, preemptionDeadline: ctx.preemptionDeadline,
    l1Tsc: ctx.l2.tsc, preemptionTimerRate: l0.l1Model.preemptionTimerRate, l1Cr0AtEntry: ctx.l1Cr0AtEntry,
  });
  const info = l0.parts.writeExitInfo(synced.vmcs12, exit, null, l0.profile);
  cur.vmcs.copyFrom(info.vmcs12);
  if (info.launched) cur.launched = true;
  l0.record({ kind: 'exit-to-l1', step: l0.step, exit, rule });
  l0.state.guestMode = false;
  const v12 = cur.vmcs;
  // The VPID-0 flush of the exit is done before the MSR store: a store failure (VMX abort) must not skip it. KVM also
  // flushes after its abort (it goes on to load L1's host state, then triple-faults L1); after an SDM abort the CPU
  // is in shutdown and the extra flush is an over-invalidation nothing can observe (linear mappings only).
  const flush = l0.parts.vpidOnExit(v12.lo(Field.CPU_BASED_VM_EXEC_CONTROL), v12.lo(Field.SECONDARY_VM_EXEC_CONTROL), 1, l0.state.vpid02);
  l0.record({ kind: 'vpid-flush', step: l0.step, flush, cause: 'nested VM exit' });
  // N13 (kvm.msr-store-x2apic-only-when-enabled): KVM refuses x2APIC-range MSRs in the store list only while the vCPU
  // (L1's APIC base, shared with L2) has x2APIC enabled; otherwise its RDMSR decides. SDM 27.4 refuses them always.
  const x2apicOn = ((ctx.l2.msr(Msr.IA32_APIC_BASE) >> 10n) & 3n) === 3n;
  const rejectX2apic = x2apicOn || !l0.profile.deviations.has(Deviation.MSR_STORE_X2APIC_ONLY_WHEN_ENABLED);
  const store = storeMsrList(l0.l1Port, v12.get(Field.VM_EXIT_MSR_STORE_ADDR), v12.lo(Field.VM_EXIT_MSR_STORE_COUNT), ctx.l2, l0.msrRules, rejectX2apic);
  if (!store.ok) return abort(l0, 1);
  const virtualNmis = (v12.lo(Field.PIN_BASED_VM_EXEC_CONTROL) & Pin.VIRTUAL_NMIS) !== 0;
  const intr = (ctx.l2.interruptibility & 0x4) | (!virtualNmis ? ctx.l2.interruptibility & 0x8 : 0);
  // The processor state the host-state load starts from is L2's architectural one: CR0/CR4 as a CPU running vmcs12
  // holds them (just synced into vmcs12), not the hardware values with L0's forced bits.
  const base = ctx.l2.clone();
  base.cr0 = v12.get(Field.GUEST_CR0);
  base.cr4 = v12.get(Field.GUEST_CR4);
  return finish(l0, v12, base, intr);
}

/**
 * §7.6 / SDM 26.8: a VM-entry failure found by L0's checks (exit 33) or its MSR-load processing (exit 34): only the
 * exit reason (bit 31 set) and qualification are written; host state is loaded over `base` (L1's state, or the guest
 * state loaded before the failing MSR entry), launch state unchanged.
 */
export function nestedEntryFailure(l0: L0, basic: 33 | 34, qualification: bigint, base: CpuState, l1: CpuState): ExitToL1 {
  const cur = l0.state.current;
  if (!cur) throw new Error('turtles bug: VM-entry failure without a current vmcs12');
  const exit: NestedExitInfo = {
    reason: (0x8000_0000 | basic) >>> 0, qualification, intrInfo: 0, intrErrorCode: 0, instructionLength: 0, instructionInfo: 0,
    guestLinearAddress: 0n, guestPhysicalAddress: 0n, idtVectoringInfo: 0, idtVectoringErrorCode: 0, synthesized: true,
  };
  const info = l0.parts.writeExitInfo(cur.vmcs, exit, null, l0.profile);
  cur.vmcs.copyFrom(info.vmcs12);
  l0.record({ kind: 'exit-to-l1', step: l0.step, exit, rule: basic === 33 ? 'entry.guest-state' : 'entry.msr-load' });
  // NMI and SMI blocking are what they were before the entry (the L1 state), whatever the guest area said.
  return finish(l0, cur.vmcs, base, l1.interruptibility & 0xc);
}

