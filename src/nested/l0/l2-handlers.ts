// What L0 does with an L2 exit it keeps (§6.1 steps 2–3): fill EPT02 or synthesize the EPT12 fault, forward the
// interrupts/NMIs that are L1's in this model, re-inject exceptions, and emulate an instruction vmcs12 would not exit on
// by executing it as a CPU running vmcs12 would; then resume L2 (or exit to L1). Must not: decide reflection.
// Reference: nested-vmx.md §5.7, §6.2–6.4, §8.6, §9.3 N4/N5; SDM 27.2.3.
import { L2_GPA } from '../../cpu/address.js';
import { ExitReason } from '../../cpu/generated/exit-reasons.js';
import { Field } from '../../cpu/generated/vmcs-fields.js';
import type { StepResult } from '../../cpu/interp/types.js';
import type { NonRootExit } from '../../cpu/nonroot/types.js';
import { u64 } from '../../cpu/u64.js';
import { fillEpt02, type Ept02FillContext, type Ept02FillResult } from '../ept02/fill.js';
import { pmlFullExitToL1 } from '../features/pml12.js';
import { eptViolationToVe12, VE_INTR_INFO, veExits12 } from '../features/ve12.js';
import { isPostedNotification12, processPosted12 } from '../features/posted12.js';
import { Deviation } from '../profile.js';
import type { HardwareExit, ReflectionDecision } from '../reflect/types.js';
import type { NestedExitInfo } from '../sync/exit-info.js';
import { threeWayCr } from '../sync/vmcs12-sync.js';
import { preemptionDeadlineAfterTscWrite } from '../preemption-timer.js';
import { Msr } from '../../cpu/state.js';
import { exitInfoFromHardware } from './nested-exit.js';
import type { NestedRunner } from './nested-run.js';

export type HandlerVerdict =
  | { readonly kind: 'resume' }
  | { readonly kind: 'exit'; readonly exit: NestedExitInfo; readonly rule: string }
  | { readonly kind: 'stop'; readonly why: string };

const RESUME: HandlerVerdict = { kind: 'resume' };

/**
 * Bookkeeping for an event L0 re-injects, so its delivery looks like the original one: an event L2 took in a step
 * still owes that step to the L2 clock, its instruction's TSC tick if it is a software event, and must not leave an
 * MTF pending if it is an external interrupt or NMI; an event that was itself being injected keeps what it had.
 */
function noteReinjection(r: NestedRunner, intrInfo: number): void {
  if (!r.exitFromStep) return;
  const t = (intrInfo >>> 8) & 7;
  r.stepOwed = true;
  if (t === 4 || t === 5 || t === 6) r.softTickOwed = true;
  r.suppressMtfAfterInjection = t === 0 || t === 2;
}
const VALID = 0x8000_0000;
const NMI_BLOCKING = 0x8;

function note(r: NestedRunner, hw: HardwareExit, decision: ReflectionDecision, handling: 'l0-handled' | 'synthesized', handler: string): void {
  r.l0.record({ kind: 'l2-exit', step: r.l0.step, hardware: hw, decision, handling, handler });
}

/** Exit information for an exit a CPU running vmcs12 takes during L0's emulation (fields it leaves undefined keep vmcs12's). */
function exitInfoFromRecord(rec: NonRootExit, r: NestedRunner): NestedExitInfo {
  const v12 = r.l0.state.vmcs12;
  return {
    reason: rec.reason,
    qualification: rec.qualification,
    intrInfo: (rec.interruptionInfo ?? 0) >>> 0,
    intrErrorCode: (rec.interruptionErrorCode ?? 0) >>> 0,
    instructionLength: rec.instructionLength ?? v12.lo(Field.VM_EXIT_INSTRUCTION_LEN),
    instructionInfo: rec.instructionInfo ?? v12.lo(Field.VMX_INSTRUCTION_INFO),
    guestLinearAddress: rec.guestLinearAddress ?? v12.get(Field.GUEST_LINEAR_ADDRESS),
    guestPhysicalAddress: rec.guestPhysicalAddress ?? v12.get(Field.GUEST_PHYSICAL_ADDRESS),
    idtVectoringInfo: (rec.idtVectoringInfo ?? 0) >>> 0,
    idtVectoringErrorCode: (rec.idtVectoringErrorCode ?? 0) >>> 0,
    synthesized: true,
  };
}

export function handleL0Exit(r: NestedRunner, hw: HardwareExit, rec: NonRootExit, decision: ReflectionDecision): HandlerVerdict {
  const basic = hw.reason & 0xffff;
  switch (basic) {
    case ExitReason.EPT_VIOLATION:
      return eptViolation(r, hw, rec, decision);
    case ExitReason.EPT_MISCONFIG:
      throw new Error(`turtles bug: EPT02 misconfigured at L2 GPA 0x${hw.guestPhysicalAddress.toString(16)}`);
    case ExitReason.EXTERNAL_INTERRUPT:
      return forwardInterrupt(r, hw, rec, decision);
    case ExitReason.EXCEPTION_NMI:
      return exception(r, hw, rec, decision);
    case ExitReason.INIT_SIGNAL:
    case ExitReason.SIPI_SIGNAL:
      return forwardSignal(r, hw, rec, decision);
    default:
      if (rec.instructionLength !== undefined) return emulate(r, hw, rec, decision);
      note(r, hw, decision, 'l0-handled', 'unhandled');
      r.l0.record({ kind: 'l0-internal', step: r.l0.step, what: `L0 has no handler for exit ${basic} it keeps` });
      return { kind: 'stop', why: `(L0: unhandled exit ${basic})` };
  }
}

function fillContext(r: NestedRunner): Ept02FillContext {
  const l0 = r.l0;
  return {
    // Only L0's own walk of EPT12 (the fill) keeps vmcs12's page-modification log (features/pml12.ts).
    manager: l0.ept02, role: r.role, ept12: r.ept12 ? { ...r.ept12, flagGate: r.pml12 } : null, ept01: l0.hw.ept01, hostCaps: l0.hw.hostCaps, profile: l0.profile,
    compose: l0.parts.composeEpt02, tracking: l0.parts.ept12WriteTracking,
  };
}

/** After an L0-handled EPT violation that interrupted an IRET unblocking NMIs, NMIs are blocked again (SDM 27.2.3). */
function reblockNmis(r: NestedRunner, qualification: bigint, idtVectoringInfo: number): void {
  if ((qualification & (1n << 12n)) !== 0n && (idtVectoringInfo & VALID) === 0) r.l2.interruptibility |= NMI_BLOCKING;
}

function eptFault(r: NestedRunner, hw: HardwareExit, rec: NonRootExit | undefined, f: Extract<Ept02FillResult, { kind: 'ept12-fault' }>, emulated: boolean): HandlerVerdict {
  const l0 = r.l0;
  const v12 = l0.state.vmcs12;
  let qualification = f.exit.qualification;
  // kvm (N4): L1 sees bit 12 = 0 and NMI blocking = 1 instead of bit 12 = 1.
  if (l0.profile.deviations.has(Deviation.EPT_VIOLATION_QUAL_BASIC)) reblockNmis(r, hw.qualification, hw.idtVectoringInfo);
  // kvm (N5): a fault of L0's own emulated access is reported as an access to the final translation.
  if (emulated && l0.profile.deviations.has(Deviation.EMULATED_EPT_FAULT_BIT8) && (qualification & (1n << 7n)) !== 0n) qualification |= 1n << 8n;
  const base = rec ? exitInfoFromHardware(hw, rec, v12) : exitInfoFromHardware(hw, {}, v12);
  return {
    kind: 'exit',
    rule: f.exit.reason === 48 ? 'l0.ept-violation' : 'l0.ept-misconfig',
    exit: {
      ...base,
      reason: f.exit.reason, qualification, intrInfo: 0, intrErrorCode: 0,
      guestPhysicalAddress: f.exit.guestPhysicalAddress as bigint,
      guestLinearAddress: f.exit.guestLinearAddress ?? v12.get(Field.GUEST_LINEAR_ADDRESS),
      synthesized: true,
    },
  };
}

/**
 * An EPT12 violation that a CPU running vmcs12 turns into a #VE (features/ve12.ts): the area is written, then L0
 * injects #VE into L2 through vmcs02 (SDM 25.5.6) or gives L1 the exception exit its bitmap asks for. Null: it stays
 * the EPT-violation exit.
 */
function ve12(r: NestedRunner, hw: HardwareExit, f: Extract<Ept02FillResult, { kind: 'ept12-fault' }>): HandlerVerdict | null {
  if (f.outcome.kind !== 'ept12-violation') return null;
  const v12 = r.l0.state.vmcs12;
  const fault = f.outcome.fault;
  const decided = eptViolationToVe12({
    v12, l1: r.l0.l1Port, fault, qualification: fault.qualification, guestLinearAddress: f.exit.guestLinearAddress,
    duringDelivery: (hw.idtVectoringInfo & VALID) !== 0, cr0: r.l2.cr0,
  });
  if (!decided) return null;
  // A faulting IRET keeps NMIs blocked on the #VE path as for any fault (the hardware exit had unblocked them).
  reblockNmis(r, hw.qualification, hw.idtVectoringInfo);
  if (veExits12(v12)) {
    const base = exitInfoFromHardware(hw, {}, v12);
    return {
      kind: 'exit', rule: 'l0.ve-exception',
      exit: { ...base, reason: ExitReason.EXCEPTION_NMI, qualification: 0n, intrInfo: VE_INTR_INFO, intrErrorCode: 0, guestPhysicalAddress: v12.get(Field.GUEST_PHYSICAL_ADDRESS), idtVectoringInfo: 0, idtVectoringErrorCode: 0, synthesized: true },
    };
  }
  r.reinjection = { intrInfo: VE_INTR_INFO, errorCode: 0, instructionLength: 0 };
  noteReinjection(r, VE_INTR_INFO);
  r.saveL2();
  return RESUME;
}

function eptViolation(r: NestedRunner, hw: HardwareExit, rec: NonRootExit, decision: ReflectionDecision): HandlerVerdict {
  const f = fillEpt02(fillContext(r), { gpa: L2_GPA.of(hw.guestPhysicalAddress), qualification: hw.qualification, linear: hw.guestLinearAddress });
  switch (f.kind) {
    case 'filled': {
      note(r, hw, decision, 'l0-handled', 'ept02-fill');
      reblockNmis(r, hw.qualification, hw.idtVectoringInfo);
      r.reinjection = r.l0.parts.reinjection(hw);
      // The access is retried (its step never counted); an event it interrupted is re-injected.
      if (r.reinjection) noteReinjection(r, r.reinjection.intrInfo);
      r.saveL2();
      return RESUME;
    }
    case 'ept12-fault': {
      const ve = ve12(r, hw, f);
      if (ve) {
        note(r, hw, decision, ve.kind === 'resume' ? 'l0-handled' : 'synthesized', 've12');
        return ve;
      }
      note(r, hw, decision, 'synthesized', 'ept12-fault');
      return eptFault(r, hw, rec, f, false);
    }
    case 'pml-full':
      // vmcs12's page-modification log is full: a CPU running vmcs12 exits 62 before the access (SDM 29.3.6).
      note(r, hw, decision, 'synthesized', 'pml12-full');
      return { kind: 'exit', rule: 'l0.pml-full', exit: pmlFullExitToL1(hw, r.l0.state.vmcs12) };
    case 'l0-internal':
      note(r, hw, decision, 'l0-handled', 'ept02-l0-internal');
      r.l0.record({ kind: 'l0-internal', step: r.l0.step, what: `EPT02 fill for L2 GPA 0x${hw.guestPhysicalAddress.toString(16)}: ${f.why}` });
      return { kind: 'stop', why: `(L0-internal: ${f.why} at L2 GPA 0x${hw.guestPhysicalAddress.toString(16)})` };
  }
}

/** vmcs12's external-interrupt exiting: the interrupt is L1's; acknowledged on exit as vmcs12 asks (§6.4). */
function forwardInterrupt(r: NestedRunner, hw: HardwareExit, rec: NonRootExit, decision: ReflectionDecision): HandlerVerdict {
  // vmcs02 acknowledges on exit only while it processes posted interrupts, and then vmcs12 does too (SDM 26.2.1.1).
  const acked = (hw.intrInfo & VALID) !== 0;
  const v = acked ? hw.intrInfo & 0xff : r.interp.aux.highestInterrupt();
  if (v === undefined) {
    note(r, hw, decision, 'l0-handled', 'spurious-interrupt');
    r.saveL2();
    return RESUME;
  }
  if (isPostedNotification12(r.l0.state.vmcs12, v)) {
    // vmcs12's notification vector: no exit on a CPU running vmcs12 but posted-interrupt processing (SDM 29.6).
    if (!acked) r.interp.aux.pendingInterrupts.delete(v);
    processPosted12(r.l0.vmcs02, r.l0.hw.port, r.l0.profile);
    note(r, hw, decision, 'l0-handled', 'posted-interrupt-notification12');
    return RESUME;
  }
  let info = 0;
  if (acked || r.ackOnExit12()) {
    if (!acked) r.interp.aux.pendingInterrupts.delete(v);
    info = (VALID | v) >>> 0;
  }
  note(r, hw, decision, 'synthesized', 'forward-external-interrupt');
  return { kind: 'exit', rule: 'priority.interrupt', exit: { ...exitInfoFromHardware(hw, rec, r.l0.state.vmcs12), intrInfo: info, synthesized: true } };
}

/**
 * An INIT (or a SIPI in wait-for-SIPI) while L2 runs: a CPU running vmcs12 exits to L1 with the same reason and
 * qualification (SDM 25.2), so L0 synthesizes exactly that exit (§6.4, KVM vmx_check_nested_events).
 */
function forwardSignal(r: NestedRunner, hw: HardwareExit, rec: NonRootExit, decision: ReflectionDecision): HandlerVerdict {
  note(r, hw, decision, 'synthesized', 'forward-init-sipi');
  return { kind: 'exit', rule: 'priority.init-sipi', exit: { ...exitInfoFromHardware(hw, rec, r.l0.state.vmcs12), synthesized: true } };
}

function exception(r: NestedRunner, hw: HardwareExit, rec: NonRootExit, decision: ReflectionDecision): HandlerVerdict {
  const type = (hw.intrInfo >>> 8) & 7;
  const vector = hw.intrInfo & 0xff;
  if (type === 2) {
    // An NMI of the platform: with vmcs12 NMI exiting it is L1's (vmcs01 does not intercept NMIs).
    note(r, hw, decision, 'synthesized', 'forward-nmi');
    return { kind: 'exit', rule: 'priority.nmi', exit: { ...exitInfoFromHardware(hw, rec, r.l0.state.vmcs12), synthesized: true } };
  }
  if (vector === 18 || vector === 20) {
    note(r, hw, decision, 'l0-handled', 'host-exception');
    r.l0.record({ kind: 'l0-internal', step: r.l0.step, what: `exception ${vector} from L2 (machine check / #VE are the host's)` });
    return { kind: 'stop', why: `(L0: host exception ${vector})` };
  }
  // An exception L0 intercepted that vmcs12 does not: deliver it to L2 as the CPU would have (§6.3.4).
  if (vector === 14) r.l2.cr2 = hw.qualification;
  if (vector === 1) r.l2.dr[6] = (r.l2.dr[6]! & ~0xe00fn) | (hw.qualification & 0xe00fn);
  const soft = type === 4 || type === 5 || type === 6;
  const vectoring = r.l0.parts.reinjection(hw);
  r.reinjection = vectoring ?? { intrInfo: (hw.intrInfo & ~0x1000) >>> 0, errorCode: hw.intrErrorCode >>> 0, instructionLength: soft ? hw.instructionLength : 0 };
  noteReinjection(r, r.reinjection.intrInfo);
  note(r, hw, decision, 'l0-handled', 'reinject-exception');
  r.saveL2();
  return RESUME;
}

/** Exit reasons whose controls L0 can switch off to force its own decision (see NestedRunner.vmcs12Runtime). */
const FORCEABLE: Readonly<Record<number, 'io' | 'msr' | 'cr'>> = {
  [ExitReason.IO_INSTRUCTION]: 'io', [ExitReason.MSR_READ]: 'msr', [ExitReason.MSR_WRITE]: 'msr', [ExitReason.CR_ACCESS]: 'cr',
};

/**
 * Execute the exiting instruction once as a CPU running vmcs12 would (CR0/CR4 at vmcs12's level, then back). `mtf`:
 * the instruction left an MTF VM exit pending (vmcs12's monitor trap flag, SDM 25.5.2), read before leaving non-root
 * operation clears it; L0 must deliver it at the next boundary (KVM: mtf_pending after emulation, §6.4).
 */
function emulateOnce(r: NestedRunner, handled?: 'io' | 'msr' | 'cr'): { readonly out: StepResult; readonly mtf: boolean } {
  const v02 = r.l0.vmcs02;
  const v12 = r.l0.state.vmcs12;
  const inputs = r.lastInputs!;
  const l2 = r.l2;
  const m0 = v12.get(Field.CR0_GUEST_HOST_MASK);
  const s0 = v12.get(Field.CR0_READ_SHADOW);
  const m4 = v12.get(Field.CR4_GUEST_HOST_MASK);
  const s4 = v12.get(Field.CR4_READ_SHADOW);
  l2.cr0 = threeWayCr(l2.cr0, v02.get(Field.CR0_GUEST_HOST_MASK), v02.get(Field.CR0_READ_SHADOW), v12.get(Field.GUEST_CR0), m0);
  l2.cr4 = threeWayCr(l2.cr4, v02.get(Field.CR4_GUEST_HOST_MASK), v02.get(Field.CR4_READ_SHADOW), v12.get(Field.GUEST_CR4), m4);
  const interp = r.interp;
  interp.enterNonRoot(r.vmcs12Runtime(handled), 1n);
  const out = interp.step(l2);
  const mtf = interp.aux.mtfPending;
  interp.leaveNonRoot();
  const n0 = l2.cr0;
  const n4 = l2.cr4;
  // Back to the hardware's view: L0's forced bits in the real CRs, what L2 sees in vmcs02's read shadows.
  l2.cr0 = u64((n0 & ~inputs.cr0AlwaysOff) | inputs.cr0AlwaysOn);
  l2.cr4 = u64((n4 & ~inputs.cr4AlwaysOff) | inputs.cr4AlwaysOn);
  r.saveL2();
  v02.set(Field.CR0_READ_SHADOW, u64((n0 & ~m0) | (s0 & m0)));
  v02.set(Field.CR4_READ_SHADOW, u64((n4 & ~m4) | (s4 & m4)));
  return { out, mtf };
}

function emulate(r: NestedRunner, hw: HardwareExit, _rec: NonRootExit, decision: ReflectionDecision): HandlerVerdict {
  const basic = hw.reason & 0xffff;
  let name = `emulate-${basic}`;
  let forced: 'io' | 'msr' | 'cr' | undefined;
  for (let attempt = 0; attempt < 5; attempt++) {
    const tscBefore = r.l2.tsc;
    const { out, mtf } = emulateOnce(r, forced);
    if (r.deadline !== null && basic === ExitReason.MSR_WRITE && out.kind !== 'vmexit' && (r.l2.gpr[1]! & 0xffff_ffffn) === BigInt(Msr.IA32_TSC)) {
      // L2 wrote IA32_TSC: vmcs12's timer keeps the value it had left (it counts TSC increments only).
      r.deadline = preemptionDeadlineAfterTscWrite(r.deadline, tscBefore, r.l2.tsc - 1n, r.l0.l1Model.preemptionTimerRate);
    }
    if (basic === ExitReason.MSR_WRITE && out.kind === 'retired' && (r.l2.gpr[1]! & 0xffff_ffffn) === BigInt(Msr.IA32_DEBUGCTL)
      && r.l0.profile.deviations.has(Deviation.DEBUGCTL_BITS_DROPPED)) {
      // kvm (N12): L0's WRMSR emulation drops the LBR/BTF bits (1:0) it does not emulate.
      r.l2.setMsr(Msr.IA32_DEBUGCTL, r.l2.msr(Msr.IA32_DEBUGCTL) & ~0b11n);
      r.saveL2();
    }
    if (out.kind === 'vmexit' && out.exit.reason === basic && FORCEABLE[basic] !== undefined && forced === undefined) {
      // vmcs12 intercepts this very instruction although L0's reflection said it does not: L0 goes by its decision.
      forced = FORCEABLE[basic];
      name = `${name}-forced`;
      continue;
    }
    switch (out.kind) {
      case 'retired':
      case 'halted':
        note(r, hw, decision, 'l0-handled', name);
        r.pendingMtf = mtf;
        r.countStep();
        return RESUME;
      case 'delivered':
        r.delivered.push(out.event);
        note(r, hw, decision, 'l0-handled', name);
        r.pendingMtf = mtf;
        r.countStep();
        return RESUME;
      case 'unsupported':
        note(r, hw, decision, 'l0-handled', name);
        return { kind: 'stop', why: out.mnemonic };
      case 'shutdown':
        throw new Error('turtles bug: emulation under vmcs12 reported shutdown');
      case 'vmexit': {
        const e = out.exit;
        if (e.reason === ExitReason.EPT_VIOLATION) {
          // L0's emulated access hit EPT02: fill and retry, or the EPT12 fault goes to L1.
          const f = fillEpt02(fillContext(r), { gpa: L2_GPA.of(e.guestPhysicalAddress ?? 0n), qualification: e.qualification, linear: e.guestLinearAddress ?? 0n });
          if (f.kind === 'filled') continue;
          if (f.kind === 'pml-full') {
            note(r, hw, decision, 'synthesized', `${name}-pml12-full`);
            // The length of a software event whose emulated delivery hit the full log is the emulated exit's (SDM 27.2.5).
            const asHw: HardwareExit = { ...hw, qualification: e.qualification, idtVectoringInfo: e.idtVectoringInfo ?? 0, idtVectoringErrorCode: e.idtVectoringErrorCode ?? 0, instructionLength: e.instructionLength ?? 0 };
            return { kind: 'exit', rule: 'l0.pml-full', exit: pmlFullExitToL1(asHw, r.l0.state.vmcs12) };
          }
          if (f.kind === 'ept12-fault') {
            const asHw: HardwareExit = { ...hw, reason: e.reason, qualification: e.qualification, guestPhysicalAddress: e.guestPhysicalAddress ?? 0n, guestLinearAddress: e.guestLinearAddress ?? 0n, idtVectoringInfo: e.idtVectoringInfo ?? 0, idtVectoringErrorCode: e.idtVectoringErrorCode ?? 0, intrInfo: 0, intrErrorCode: 0 };
            const ve = ve12(r, asHw, f);
            if (ve) {
              note(r, hw, decision, ve.kind === 'resume' ? 'l0-handled' : 'synthesized', `${name}-ve12`);
              // The emulated instruction faulted: its step is the #VE's delivery (as for a fault in the reference).
              return ve;
            }
            note(r, hw, decision, 'synthesized', `${name}-ept12-fault`);
            return eptFault(r, asHw, e, f, true);
          }
          return { kind: 'stop', why: `(L0-internal: ${f.why})` };
        }
        if (e.reason === ExitReason.EPT_MISCONFIG) throw new Error('turtles bug: EPT02 misconfigured during L0 emulation');
        // Something vmcs12 intercepts (an exception in its bitmap, a trap-like exit): a CPU running vmcs12 exits here.
        note(r, hw, decision, 'synthesized', `${name}-vmcs12-exit`);
        return { kind: 'exit', rule: 'l0.emulation-exit', exit: exitInfoFromRecord(e, r) };
      }
    }
  }
  throw new Error('turtles bug: EPT02 still faults after L0 filled it for its own emulation');
}
