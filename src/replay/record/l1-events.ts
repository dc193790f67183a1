// The one mapping from what L1 observes (O1 VMX instruction outcomes, O2 exits to L1, O3 L1 registers) to trace events,
// shared by the recorder (nested machine) and model-trace replay (reference machine), so both streams of L1-visible
// events are produced the same way. Operands are in the machines' O1 order (src/cpu/machine/observing-machine.ts).
// Must not: run machines or keep state.
import { Field } from '../../cpu/generated/vmcs-fields.js';
import type { ExitInformation, Observation } from '../../cpu/l1/observation.js';
import type { CpuState } from '../../cpu/state.js';
import { RegId } from '../format/registers.js';
import {
  vmxOp, vmxOutcome, type RegistersEvent, type TraceEvent, type VmExitEvent, type VmxOpEvent, type VmxOpName, type VmxOutcomeEvent, type VmxResult,
} from '../format/events.js';

const OPS: ReadonlySet<string> = new Set(['vmxon', 'vmclear', 'vmptrld', 'vmptrst', 'vmread', 'vmwrite', 'vmlaunch', 'vmresume', 'invept', 'invvpid', 'vmxoff']);

const RESULT: Readonly<Record<string, VmxResult>> = {
  vmsucceed: 'succeed', 'vmfail-invalid': 'fail-invalid', 'vmfail-valid': 'fail-valid', fault: 'fault', 'vm-exit': 'vm-exit',
};

function opName(instruction: string): VmxOpName {
  if (!OPS.has(instruction)) throw new Error(`turtles bug: ${instruction} is not a VMX instruction of the trace format`);
  return instruction as VmxOpName;
}

const u32 = (x: bigint | undefined): number => Number(BigInt.asUintN(32, x ?? 0n));
const u64 = (x: bigint | undefined): bigint => BigInt.asUintN(64, x ?? 0n);

/** vmx_op for an L1 VMX instruction with its operands as O1 lists them (region; encoding, value; type, EPTP; type, VPID, linear). */
export function vmxOpEvent(instruction: string, operands: readonly bigint[]): VmxOpEvent {
  const op = opName(instruction);
  const [a, b, c] = operands;
  switch (op) {
    case 'vmxon': case 'vmclear': case 'vmptrld':
      return vmxOp(op, { address: u64(a) });
    case 'vmread':
      return vmxOp(op, { field: u32(a) });
    case 'vmwrite':
      return vmxOp(op, { field: u32(a), value: u64(b) });
    case 'invept':
      return vmxOp(op, { invType: u32(a), descriptorLow: u64(b) });
    case 'invvpid':
      return vmxOp(op, { invType: u32(a), descriptorLow: u64(b) & 0xffffn, descriptorHigh: u64(c) });
    default:
      return vmxOp(op);
  }
}

/** What O1 reports about one VMX instruction (the `vmx-instruction` observation, or the same fields built by hand). */
export interface VmxOutcomeFacts {
  readonly instruction: string;
  /** L1VmxResult / L1LaunchResult kind: vmsucceed, vmfail-invalid, vmfail-valid, fault, vm-exit, shutdown, l2-stopped. */
  readonly outcome: string;
  readonly error?: number;
  readonly vector?: number;
  readonly value?: bigint;
  readonly rflags: bigint;
}

/** vmx_outcome from O1. A launch that ended in a shutdown or an L2 stop has no VMX result: 'unspecified'. */
export function vmxOutcomeEvent(o: VmxOutcomeFacts): VmxOutcomeEvent {
  return vmxOutcome(opName(o.instruction), RESULT[o.outcome] ?? 'unspecified', {
    rflags: o.rflags,
    ...(o.error !== undefined ? { errorNumber: o.error } : {}),
    ...(o.vector !== undefined ? { faultVector: o.vector } : {}),
    ...(o.value !== undefined ? { value: o.value } : {}),
  });
}

/** vm_exit (level L2) from O2: every exit-information field, RIP from the guest state L1 would VMREAD. */
export function vmExitEvent(o: { readonly exit: ExitInformation; readonly guestState: ReadonlyMap<number, bigint> }): VmExitEvent {
  const x = o.exit;
  const rip = o.guestState.get(Field.GUEST_RIP);
  return {
    kind: 'vm-exit', level: 'L2', reason: x.exitReason, qualification: x.qualification, ...(rip !== undefined ? { rip } : {}),
    guestLinear: x.guestLinearAddress, guestPhysical: x.guestPhysicalAddress, intrInfo: x.interruptionInfo, intrError: x.interruptionErrorCode,
    idtVectoringInfo: x.idtVectoringInfo, idtVectoringError: x.idtVectoringErrorCode, instructionLength: x.instructionLength,
    instructionInfo: x.instructionInfo,
  };
}

/** registers (level L1) after an exit to L1: the 16 GPRs, RIP, RFLAGS, CR0, CR3, CR4 and EFER (part of O3). */
export function l1RegistersEvent(s: CpuState): RegistersEvent {
  const regs = new Map<number, bigint>();
  for (let i = 0; i < 16; i++) regs.set(i, s.gpr[i]!);
  regs.set(RegId.RIP, s.rip);
  regs.set(RegId.RFLAGS, s.rflags);
  regs.set(RegId.CR0, s.cr0);
  regs.set(RegId.CR3, s.cr3);
  regs.set(RegId.CR4, s.cr4);
  regs.set(RegId.EFER, s.efer);
  return { kind: 'registers', level: 'L1', regs };
}

/**
 * The trace events of one observation: O1 → vmx_op + vmx_outcome, O2 → vm_exit, others → none (O3's registers come
 * from l1RegistersEvent, which needs the CPU state rather than O3's detail map).
 */
export function observationEvents(o: Observation): TraceEvent[] {
  switch (o.kind) {
    case 'vmx-instruction':
      return [vmxOpEvent(o.instruction, o.operands), vmxOutcomeEvent(o)];
    case 'exit-to-l1':
      return [vmExitEvent(o)];
    default:
      return [];
  }
}
