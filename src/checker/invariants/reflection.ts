// Reflection invariant at every hardware exit from vmcs02: L1 gets an exit exactly when a single-level CPU running
// vmcs12 would have exited, with the same exit information. "Would have exited" is evaluated here with the single-level
// rules of src/cpu/nonroot (and the EPT walker for EPT12 faults), never with src/nested/reflect.
// Must not: decide what L0 does; it judges a recorded decision. Reference: nested-vmx.md §6.1–6.4, §8.5; SDM 25.1–25.2, 27.2.
import type { L1Gpa, L2Gpa } from '../../cpu/address.js';
import { guestLinear, l2gpa } from '../../cpu/address.js';
import { walkEpt } from '../../cpu/ept/walker.js';
import type { Ept, EptAccess, EptAccessType } from '../../cpu/ept/types.js';
import { ExitReason } from '../../cpu/generated/exit-reasons.js';
import { Field } from '../../cpu/generated/vmcs-fields.js';
import type { DecodedInstr } from '../../cpu/interp/decoded.js';
import type { ExitInformation } from '../../cpu/l1/observation.js';
import type { QwordMemory } from '../../cpu/memory.js';
import { NO_INPUTS, type RuleInputs } from '../../cpu/nonroot/common.js';
import { readNonRootControls, type NonRootEnv } from '../../cpu/nonroot/controls.js';
import { exitFor } from '../../cpu/nonroot/exit-for.js';
import { exceptionExits, mtfEnabled, nmiExits } from '../../cpu/nonroot/rules-events.js';
import type { NonRootExit } from '../../cpu/nonroot/types.js';
import { Primary, Secondary } from '../../cpu/generated/controls.js';
import { eptViolationConvertible } from '../../cpu/ept/ve.js';
import type { CpuState } from '../../cpu/state.js';
import type { Vmcs } from '../../cpu/vmcs.js';
import { hexValue, type Divergence } from '../divergence.js';
import { exitReasonName } from '../compare.js';
import { checkerRule } from '../rules.js';

/** A VM exit from vmcs02 as the hardware recorded it (full reason; fields as read from vmcs02). */
export type HardwareExitInfo = ExitInformation;

export interface ReflectionCheckInput {
  /** Event (L1 step) during which L2 ran. */
  readonly event: number;
  readonly vmcs12: Vmcs;
  readonly exit: HardwareExitInfo;
  /** The exit L1 received as the consequence of this hardware exit (reflected or synthesized by L0), or null. */
  readonly delivered: ExitInformation | null;
  /** L2's state at the exit (before L0 emulated anything). */
  readonly l2: CpuState;
  /** The instruction at L2's RIP for exits caused by an instruction, when known. */
  readonly instruction: DecodedInstr | null;
  /** Reads of L1-physical memory for vmcs12's bitmaps, and the capability facts that shape exit information. */
  readonly env: NonRootEnv;
  readonly inputs?: RuleInputs;
  /** vmcs12's EPT over L1 memory (EPT-violation exits), null when vmcs12 does not enable EPT. */
  readonly ept12?: Ept<L2Gpa, L1Gpa> | null;
}

/** What a CPU running vmcs12 does at this point: exit to L1 (with this information), not exit, or not decidable here. */
export type L1Expectation =
  | { readonly kind: 'exit'; readonly exit: NonRootExit; readonly compare: readonly ('qualification' | 'instructionLength' | 'instructionInfo' | 'interruptionInfo' | 'interruptionErrorCode' | 'guestPhysicalAddress')[] }
  | { readonly kind: 'no-exit'; readonly why: string }
  | { readonly kind: 'unknown'; readonly why: string };

const INSTRUCTION_FIELDS = ['qualification', 'instructionLength', 'instructionInfo'] as const;

function readOnly<In extends L2Gpa, Out extends L1Gpa>(ept: Ept<In, Out>): Ept<In, Out> {
  const tables: QwordMemory<Out> = { readU64: (a) => ept.tables.readU64(a), writeU64: () => ({ ok: true }) };
  return { ...ept, tables };
}

/** The L2 access behind an EPT violation, from its qualification (SDM 27.2.1, Table 27-7). */
function accessOf(q: bigint, linear: bigint): EptAccess {
  const b = (n: bigint): boolean => ((q >> n) & 1n) === 1n;
  const type: EptAccessType = b(2n) ? 'fetch' : b(1n) ? (b(0n) ? 'rmw' : 'write') : 'read';
  const nmiUnblocking = b(12n);
  if (!b(7n)) return { type, cause: { kind: 'no-linear' }, nmiUnblocking };
  const gl = guestLinear(BigInt.asUintN(64, linear));
  if (!b(8n)) return { type: type === 'rmw' ? 'write' : type, cause: { kind: 'paging-structure', linear: gl }, nmiUnblocking };
  // Bits 9–11 (advanced information) describe the linear address; the walker uses them only with cap bit 22.
  return { type, cause: { kind: 'final', linear: gl, rights: { user: b(9n), writable: b(10n), executeDisable: b(11n) } }, nmiUnblocking };
}

/** What a single-level CPU running vmcs12 does for the event behind this hardware exit. */
export function singleLevelExpectation(i: ReflectionCheckInput): L1Expectation {
  const c = readNonRootControls(i.vmcs12);
  const basic = i.exit.exitReason & 0xffff;
  if ((i.exit.exitReason & 0x8000_0000) !== 0) return { kind: 'unknown', why: 'hardware VM-entry failure on vmcs02' };
  switch (basic) {
    case ExitReason.EXCEPTION_NMI: {
      const info = i.exit.interruptionInfo;
      const vector = info & 0xff;
      const type = (info >>> 8) & 7;
      // NMIs are host events first (L0 keeps every NMI exit); L1's virtual NMIs reach it by synthesis.
      if (type === 2) return nmiExits(c) ? { kind: 'unknown', why: 'NMI: host or virtual' } : { kind: 'unknown', why: 'NMI' };
      const ec = (info & 0x800) !== 0 ? i.exit.interruptionErrorCode : 0;
      if (!exceptionExits(c, vector, ec)) return { kind: 'no-exit', why: `vmcs12 does not intercept vector ${vector} (error code ${hexValue(ec)})` };
      return { kind: 'exit', exit: { reason: ExitReason.EXCEPTION_NMI, qualification: i.exit.qualification, interruptionInfo: info, interruptionErrorCode: ec }, compare: ['interruptionInfo', 'interruptionErrorCode'] };
    }
    case ExitReason.TRIPLE_FAULT:
      return { kind: 'exit', exit: { reason: basic, qualification: 0n }, compare: [] };
    case ExitReason.TASK_SWITCH:
      return { kind: 'exit', exit: { reason: basic, qualification: i.exit.qualification }, compare: [] };
    case ExitReason.INTERRUPT_WINDOW:
      return c.primary & Primary.INTERRUPT_WINDOW_EXITING ? { kind: 'exit', exit: { reason: basic, qualification: 0n }, compare: [] } : { kind: 'no-exit', why: 'vmcs12 has no interrupt-window exiting' };
    case ExitReason.NMI_WINDOW:
      return c.primary & Primary.NMI_WINDOW_EXITING ? { kind: 'exit', exit: { reason: basic, qualification: 0n }, compare: [] } : { kind: 'no-exit', why: 'vmcs12 has no NMI-window exiting' };
    case ExitReason.MONITOR_TRAP_FLAG: {
      // An MTF exit is also what injecting "other event" type 7, vector 0 asks for (SDM 26.6.2, pending MTF VM exit).
      const injectedMtf = (i.vmcs12.lo(Field.VM_ENTRY_INTR_INFO_FIELD) & 0x8000_07ff) >>> 0 === 0x8000_0700;
      return mtfEnabled(c) || injectedMtf ? { kind: 'exit', exit: { reason: basic, qualification: 0n }, compare: [] }
        : { kind: 'no-exit', why: 'vmcs12 has no monitor trap flag and injected no pending MTF' };
    }
    case ExitReason.EPT_VIOLATION: {
      if (i.ept12 === undefined) return { kind: 'unknown', why: 'EPT12 not supplied' };
      if (i.ept12 === null) return { kind: 'no-exit', why: 'vmcs12 without EPT: EPT02 faults are L0-internal' };
      const w = walkEpt(readOnly(i.ept12), l2gpa(BigInt.asUintN(64, i.exit.guestPhysicalAddress)), accessOf(i.exit.qualification, i.exit.guestLinearAddress));
      if (w.ok) return { kind: 'no-exit', why: 'EPT12 permits the access: the EPT02 fault is L0-internal' };
      if (w.kind === 'misconfig') return { kind: 'exit', exit: { reason: ExitReason.EPT_MISCONFIG, qualification: 0n, guestPhysicalAddress: w.gpa as bigint }, compare: ['guestPhysicalAddress'] };
      // With "EPT-violation #VE" a convertible violation outside event delivery may be a #VE instead, decided by the VE
      // area's busy word, which the exit cannot show any more (SDM 25.5.6.1).
      if (c.secondary & Secondary.EPT_VIOLATION_VE && eptViolationConvertible(w) && !(i.exit.idtVectoringInfo & 0x8000_0000)) {
        return { kind: 'unknown', why: 'convertible EPT12 violation under EPT-violation #VE: a #VE or the exit, by the VE area' };
      }
      return { kind: 'exit', exit: { reason: ExitReason.EPT_VIOLATION, qualification: w.qualification, guestPhysicalAddress: w.gpa as bigint }, compare: ['qualification', 'guestPhysicalAddress'] };
    }
    case ExitReason.EXTERNAL_INTERRUPT:
    case ExitReason.EPT_MISCONFIG:
    case ExitReason.PREEMPTION_TIMER:
    case ExitReason.INVALID_STATE:
    case ExitReason.MSR_LOAD_FAIL:
    case ExitReason.MCE_DURING_VMENTRY:
      return { kind: 'unknown', why: `${exitReasonName(basic)} belongs to L0 (L1 sees it only by synthesis)` };
    default: {
      if (i.instruction === null) return { kind: 'unknown', why: 'instruction not supplied' };
      const x = exitFor(i.instruction, i.l2, i.vmcs12, i.env, i.inputs ?? NO_INPUTS);
      if (x === null) return { kind: 'no-exit', why: `a CPU running vmcs12 executes ${i.instruction.name} without a VM exit` };
      return { kind: 'exit', exit: x, compare: INSTRUCTION_FIELDS };
    }
  }
}

function infoValue(x: ExitInformation | NonRootExit, k: 'qualification' | 'instructionLength' | 'instructionInfo' | 'interruptionInfo' | 'interruptionErrorCode' | 'guestPhysicalAddress'): bigint | undefined {
  if ('exitReason' in x) {
    const m: Record<typeof k, bigint | number> = {
      qualification: x.qualification, instructionLength: x.instructionLength, instructionInfo: x.instructionInfo,
      interruptionInfo: x.interruptionInfo, interruptionErrorCode: x.interruptionErrorCode, guestPhysicalAddress: x.guestPhysicalAddress,
    };
    const v = m[k];
    return typeof v === 'bigint' ? v : BigInt(v >>> 0);
  }
  const v = x[k];
  return v === undefined ? undefined : typeof v === 'bigint' ? v : BigInt(v >>> 0);
}

/** The reflection divergences of one hardware exit, and whether it could be judged at all. */
export function checkReflection(i: ReflectionCheckInput, expectation?: L1Expectation): { divergences: Divergence[]; judged: boolean } {
  const e = expectation ?? singleLevelExpectation(i);
  if (e.kind === 'unknown') return { divergences: [], judged: false };
  const hw = exitReasonName(i.exit.exitReason);
  const div = (rule: string, field: string, expected: string, actual: string, explanation: string): Divergence => ({
    kind: 'invariant', rule, sdm: checkerRule(rule).sdm, event: i.event, level: 'L0', field, expected, actual, explanation,
  });
  const delivered = i.delivered;
  if (e.kind === 'no-exit') {
    if (delivered === null) return { divergences: [], judged: true };
    return {
      judged: true,
      divergences: [div(basicRule(i), 'VM_EXIT_REASON', 'handled by L0', exitReasonName(delivered.exitReason),
        `L0 delivered ${exitReasonName(delivered.exitReason)} to L1 for a hardware ${hw} exit, but ${e.why}`)],
    };
  }
  if (delivered === null || (delivered.exitReason & 0xffff) !== e.exit.reason) {
    const rule = basicRule(i) === 'reflect.ept12' ? 'reflect.ept12' : 'reflect.missed';
    return {
      judged: true,
      divergences: [div(rule, 'VM_EXIT_REASON', exitReasonName(e.exit.reason), delivered === null ? 'handled by L0' : exitReasonName(delivered.exitReason),
        `a CPU running vmcs12 exits to L1 with ${exitReasonName(e.exit.reason)} here (hardware ${hw} exit from vmcs02), but L1 ${delivered === null ? 'got nothing' : `got ${exitReasonName(delivered.exitReason)}`}`)],
    };
  }
  const out: Divergence[] = [];
  for (const k of e.compare) {
    const want = infoValue(e.exit, k);
    const got = infoValue(delivered, k);
    if (want === undefined || want === got) continue;
    out.push(div('reflect.exit-info', k, hexValue(want), got === undefined ? 'none' : hexValue(got),
      `${exitReasonName(e.exit.reason)} delivered to L1 has ${k} ${got === undefined ? 'none' : hexValue(got)}; a CPU running vmcs12 records ${hexValue(want)}`));
  }
  return { divergences: out, judged: true };
}

function basicRule(i: ReflectionCheckInput): string {
  return (i.exit.exitReason & 0xffff) === ExitReason.EPT_VIOLATION ? 'reflect.ept12' : 'reflect.spurious';
}
