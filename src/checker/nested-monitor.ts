// Runs the nested-run invariants while the nested machine runs, from its records and observations and its state at each
// record (vmcs12, L2, EPT12/01/02), wrapping L0's merge and reflect parts to see their exact inputs: merge at every L2
// entry, EPT02 soundness at entries and exits, reflection at every L2 exit, VPID flushes at entries, exits and INVVPID.
// Must not: change what L0 does. Reference: DESIGN.md §3 (invariants); nested-vmx.md §5–§8.
import { HPA } from '../cpu/address.js';
import { bit } from '../cpu/u64.js';
import { Field } from '../cpu/generated/vmcs-fields.js';
import { ExitReason } from '../cpu/generated/exit-reasons.js';
import { Primary } from '../cpu/generated/controls.js';
import { DecodeCache } from '../cpu/interp/decode.js';
import type { DecodedInstr } from '../cpu/interp/decoded.js';
import type { ExitInformation, Observation, ObservationSink } from '../cpu/l1/observation.js';
import type { RuleInputs } from '../cpu/nonroot/common.js';
import { Ar, Seg, type CpuState } from '../cpu/state.js';
import type { Vmcs } from '../cpu/vmcs.js';
import type { L0Parts } from '../nested/l0/parts.js';
import type { NestedRecord, NestedRecordSink } from '../nested/l0/records.js';
import type { NestedMachine } from '../nested/machine/nested-machine.js';
import type { L0MergeInputs, MergeResult } from '../nested/merge/types.js';
import type { L0Profile } from '../nested/profile.js';
import type { HardwareExit } from '../nested/reflect/types.js';
import type { NestedExitInfo } from '../nested/sync/exit-info.js';
import type { TlbFlush } from '../nested/vpid.js';
import type { Divergence } from './divergence.js';
import { checkEpt02, Ept12History } from './invariants/ept02.js';
import { checkMerge } from './invariants/merge.js';
import { checkReflection, singleLevelExpectation, type L1Expectation, type ReflectionCheckInput } from './invariants/reflection.js';
import { VpidMonitor } from './invariants/vpid.js';

export type InvariantFamily = 'merge' | 'ept02' | 'reflection' | 'vpid';
export const ALL_INVARIANTS: readonly InvariantFamily[] = ['merge', 'ept02', 'reflection', 'vpid'];

export interface InvariantStats {
  l2Entries: number;
  l2Exits: number;
  mergeChecks: number;
  ept02Checks: number;
  ept02Leaves: number;
  reflectionsJudged: number;
  reflectionsNotJudged: number;
  vpidChecks: number;
  /** Invariant divergences not reported again because the same rule and field already diverged earlier in the run. */
  repeatsSuppressed: number;
}

interface MergeCall {
  readonly vmcs01: Vmcs;
  readonly vmcs12: Vmcs;
  readonly l0: L0MergeInputs;
  readonly profile: L0Profile;
  readonly result: MergeResult;
}

interface PendingReflection {
  readonly input: ReflectionCheckInput;
  readonly expectation: L1Expectation;
}

export function toExitInformation(x: HardwareExit | NestedExitInfo): ExitInformation {
  return {
    exitReason: x.reason >>> 0, qualification: x.qualification, guestLinearAddress: x.guestLinearAddress, guestPhysicalAddress: x.guestPhysicalAddress,
    interruptionInfo: x.intrInfo >>> 0, interruptionErrorCode: x.intrErrorCode >>> 0, idtVectoringInfo: x.idtVectoringInfo >>> 0,
    idtVectoringErrorCode: x.idtVectoringErrorCode >>> 0, instructionLength: x.instructionLength >>> 0, instructionInfo: x.instructionInfo >>> 0,
  };
}

/** Exits a CPU records because an instruction executed (their instruction length is the instruction's). */
const NOT_INSTRUCTION: ReadonlySet<number> = new Set([
  ExitReason.EXCEPTION_NMI, ExitReason.EXTERNAL_INTERRUPT, ExitReason.TRIPLE_FAULT, ExitReason.INIT_SIGNAL, ExitReason.SIPI_SIGNAL,
  ExitReason.INTERRUPT_WINDOW, ExitReason.NMI_WINDOW, ExitReason.TASK_SWITCH, ExitReason.INVALID_STATE, ExitReason.MSR_LOAD_FAIL,
  ExitReason.MONITOR_TRAP_FLAG, ExitReason.MCE_DURING_VMENTRY, ExitReason.TPR_BELOW_THRESHOLD, ExitReason.APIC_ACCESS,
  ExitReason.EOI_INDUCED, ExitReason.EPT_VIOLATION, ExitReason.EPT_MISCONFIG, ExitReason.PREEMPTION_TIMER, ExitReason.APIC_WRITE, ExitReason.PML_FULL,
]);

export class NestedMonitor implements NestedRecordSink {
  readonly divergences: Divergence[] = [];
  readonly stats: InvariantStats = {
    l2Entries: 0, l2Exits: 0, mergeChecks: 0, ept02Checks: 0, ept02Leaves: 0, reflectionsJudged: 0, reflectionsNotJudged: 0, vpidChecks: 0, repeatsSuppressed: 0,
  };
  machine: NestedMachine | undefined;
  private lastMerge: MergeCall | undefined;
  private pendingReflection: PendingReflection | undefined;
  private readonly history = new Ept12History();
  private readonly vpid = new VpidMonitor();
  private flushes: TlbFlush[] = [];
  private exitToL1: { step: number; vmcs12: Vmcs } | undefined;
  private readonly seen = new Set<string>();
  /** EPT02 (or the EPT12 it must agree with) changed since the last EPT02 check, and which root that check saw. */
  private eptDirty = true;
  private eptChecked: bigint | undefined;
  /** Decoded L2 instructions at exits, keyed by linear address (L2 loops exit at the same few instructions). */
  private readonly decodes = new DecodeCache(4096);

  constructor(private readonly families: ReadonlySet<InvariantFamily>) {}

  /**
   * `parts` with two members wrapped: merge, so the monitor sees each merge's inputs and result, and reflect, which L0
   * calls right after each hardware exit from vmcs02 — before it handles the exit — so the single-level expectation is
   * judged on L2's state at the exit.
   */
  wrap(parts: L0Parts): L0Parts {
    return {
      ...parts,
      merge: (vmcs01, vmcs12, l0, profile) => {
        const result = parts.merge(vmcs01, vmcs12, l0, profile);
        this.lastMerge = { vmcs01, vmcs12, l0, profile, result };
        return result;
      },
      reflect: (exit, vmcs12, ctx, all) => {
        this.resolveReflection(null);
        const m = this.machine;
        if (m && this.families.has('reflection')) this.startReflection(m, m.l0.step, exit, vmcs12);
        return parts.reflect(exit, vmcs12, ctx, all);
      },
    };
  }

  /** An observation sink that forwards to `next` and watches L1's INVEPT / INVVPID and the ends of launches. */
  observer(next: ObservationSink): ObservationSink {
    return { observe: (o) => {
      this.onObservation(o);
      next.observe(o);
    } };
  }

  record(r: NestedRecord): void {
    const m = this.machine;
    if (!m) return;
    switch (r.kind) {
      case 'l2-entry': {
        this.resolveReflection(null);
        this.stats.l2Entries++;
        const merge = this.lastMerge;
        if (this.families.has('merge') && merge) {
          this.stats.mergeChecks++;
          this.add(checkMerge({ event: r.step, ...merge, vmcs02: merge.result.vmcs02, provenance: merge.result.provenance, msrBitmaps: this.msrBitmaps(m, merge) }));
        }
        if (r.realEntry && this.families.has('vpid')) {
          const v12 = m.vmcs12();
          if (v12) {
            this.stats.vpidChecks++;
            this.add(this.vpid.entry(r.step, v12, r.vmcs02, this.flushes));
          }
        }
        this.flushes = [];
        const ept12 = m.runner.ept12;
        if (ept12 && this.history.record(ept12, (page) => m.l0.l1Port.readBytes(page, 4096))) this.eptDirty = true;
        this.checkEpt(m, r.step, r.eptp02);
        return;
      }
      case 'l2-exit':
        // Recorded after L0 handled the exit; the reflection judgement was started when L0 asked its reflect part.
        this.stats.l2Exits++;
        this.checkEpt(m, r.step, m.vmcs02().get(Field.EPT_POINTER));
        return;
      case 'exit-to-l1': {
        this.resolveReflection(toExitInformation(r.exit));
        const v12 = m.vmcs12();
        // A VM-entry failure never ran L2: there is nothing VPID 0 could have cached for it to flush.
        this.exitToL1 = v12 && (r.exit.reason & 0x8000_0000) === 0 ? { step: r.step, vmcs12: v12.clone() } : undefined;
        this.flushes = [];
        return;
      }
      case 'vpid-flush':
        this.flushes.push(r.flush);
        return;
      case 'ept02':
        this.eptDirty = true;
        return;
      default:
        return;
    }
  }

  /** The run ended: judge what is still open. */
  finish(): void {
    this.resolveReflection(null);
  }

  private onObservation(o: Observation): void {
    if (o.kind !== 'vmx-instruction') return;
    const m = this.machine;
    if (o.instruction === 'vmlaunch' || o.instruction === 'vmresume') {
      this.resolveReflection(null);
      if (this.exitToL1 && m && this.families.has('vpid')) {
        this.stats.vpidChecks++;
        this.add(this.vpid.exit(this.exitToL1.step, this.exitToL1.vmcs12, m.vmcs01(), this.flushes));
      }
      this.exitToL1 = undefined;
    } else if (o.instruction === 'invept' && o.outcome === 'vmsucceed') {
      this.history.invalidate(o.operands[0] === 1n ? (o.operands[1] ?? 0n) : 'all');
      this.eptDirty = true;
    } else if (o.instruction === 'invvpid' && o.outcome === 'vmsucceed' && this.families.has('vpid')) {
      this.stats.vpidChecks++;
      this.add(this.vpid.invvpid(o.step, this.flushes));
    }
    this.flushes = [];
  }

  private msrBitmaps(m: NestedMachine, merge: MergeCall): { bitmap01: Uint8Array | null; bitmap12: Uint8Array | null; bitmap02: Uint8Array | null } | undefined {
    const v02 = merge.result.vmcs02;
    if (!(v02.lo(Field.CPU_BASED_VM_EXEC_CONTROL) & Primary.USE_MSR_BITMAPS)) return undefined;
    const host = m.l0.hw.memory;
    return {
      bitmap01: host.read(HPA.of(merge.vmcs01.get(Field.MSR_BITMAP)), 4096),
      bitmap12: merge.vmcs12.lo(Field.CPU_BASED_VM_EXEC_CONTROL) & Primary.USE_MSR_BITMAPS ? m.l0.l1Port.readBytes(merge.vmcs12.get(Field.MSR_BITMAP), 4096) : null,
      bitmap02: host.read(HPA.of(v02.get(Field.MSR_BITMAP)), 4096),
    };
  }

  private checkEpt(m: NestedMachine, step: number, eptp02: bigint): void {
    if (!this.families.has('ept02')) return;
    // Nothing EPT02 soundness depends on changed since the last check of this root: the verdict would be the same.
    if (!this.eptDirty && this.eptChecked === eptp02) return;
    const ept02 = m.l0.ept02.handleFor(eptp02);
    if (!ept02) return;
    this.eptDirty = false;
    this.eptChecked = eptp02;
    const ept12 = m.runner.ept12;
    const r = checkEpt02({ event: step, profile: m.l0.profile, ept02, ept12, ept01: m.l0.hw.ept01, ...(ept12 ? { ept12Since: this.history.states(ept12) } : {}) });
    this.stats.ept02Checks++;
    this.stats.ept02Leaves += r.leaves;
    this.add(r.divergences);
  }

  private startReflection(m: NestedMachine, step: number, hw: HardwareExit, vmcs12: Vmcs): void {
    const exit = toExitInformation(hw);
    const l2 = m.runner.l2;
    const basic = exit.exitReason & 0xffff;
    const instruction = NOT_INSTRUCTION.has(basic) ? null : this.decodeAt(m, l2, exit.instructionLength);
    const inputs: RuleInputs = {
      ...(basic === ExitReason.CR_ACCESS ? { memSource: (exit.qualification >> 16n) & 0xffffn } : {}),
      ...(basic === ExitReason.MWAIT_INSTRUCTION ? { monitorArmed: (exit.qualification & 1n) !== 0n } : {}),
    };
    const input: ReflectionCheckInput = {
      event: step, vmcs12, exit, delivered: null, l2, instruction, inputs, ept12: m.runner.ept12,
      env: { readPhysByte: (a) => m.l0.l1Port.readByte(a), insOutsInfo: bit(m.cpu.msr('IA32_VMX_BASIC'), 54) },
    };
    // Judged now, against the state at the exit; compared with what L1 got once L0 has acted.
    this.pendingReflection = { input, expectation: singleLevelExpectation(input) };
  }

  private resolveReflection(delivered: ExitInformation | null): void {
    const p = this.pendingReflection;
    if (!p) return;
    this.pendingReflection = undefined;
    // An exit L0 synthesized for another reason (an MTF after emulation, a timer) is not this exit's consequence.
    const hwBasic = p.input.exit.exitReason & 0xffff;
    const related = delivered !== null && ((delivered.exitReason & 0xffff) === hwBasic || p.expectation.kind === 'exit'
      || (hwBasic === ExitReason.EPT_VIOLATION && ((delivered.exitReason & 0xffff) === ExitReason.EPT_MISCONFIG)));
    const r = checkReflection({ ...p.input, delivered: related ? delivered : null }, p.expectation);
    if (r.judged) this.stats.reflectionsJudged++;
    else this.stats.reflectionsNotJudged++;
    this.add(r.divergences);
  }

  /** The instruction at L2's RIP (fetched through L2 paging and EPT02, exactly its recorded length). */
  private decodeAt(m: NestedMachine, l2: CpuState, length: number): DecodedInstr | null {
    if (length <= 0 || length > 15) return null;
    const cs = l2.segAr[Seg.CS]!;
    const bitness = l2.longMode64 ? 64 : (cs & Ar.DB) !== 0 ? 32 : 16;
    const linear = bitness === 64 ? l2.rip : (l2.segBase[Seg.CS]! + (l2.rip & 0xffff_ffffn)) & 0xffff_ffffn;
    const f = m.runner.memory.fetch(linear, length, { type: 'fetch', user: l2.cpl === 3, implicit: false });
    if (!f.ok || f.bytes.length < length) return null;
    // The cache checks bytes, bitness and RIP on every hit, so it answers exactly what decodeOne would.
    const d = this.decodes.decode(linear, f.bytes, bitness, l2.rip);
    return d.ok ? d.instr : null;
  }

  private add(ds: readonly Divergence[]): void {
    for (const d of ds) {
      const key = `${d.rule}|${d.field ?? ''}`;
      if (this.seen.has(key)) {
        this.stats.repeatsSuppressed++;
        continue;
      }
      this.seen.add(key);
      this.divergences.push(d);
    }
  }
}
