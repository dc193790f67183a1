// The recorder: runs a scenario's built-in L1 on the nested machine and turns what happens into trace events in
// execution order (docs/scenarios.md "What a recording holds"): L1's VMX operations, outcomes and memory writes, every
// hardware L2 entry and exit (snapshots, vm_entry, l2_step, l0_exit, reflection), EPT02 fills, external events raised for
// L2, exits to L1, entry failures.
// Must not: read clocks, files or the environment; events go to a callback (in memory or a streaming TraceWriter).
import type { L1Gpa } from '../../cpu/address.js';
import { findCpuModel, type CpuModel } from '../../cpu/cpu-model.js';
import { VMX_MSR_INDEX, type VmxMsrName } from '../../cpu/cpu-model-data.js';
import { Field } from '../../cpu/generated/vmcs-fields.js';
import { L2Layout } from '../../cpu/interp/l2-env.js';
import { builtinL1 } from '../../cpu/l1/builtin.js';
import type { L1LaunchResult, L1Machine, L1Program, L1VmxResult } from '../../cpu/l1/machine.js';
import { readExitInformation } from '../../cpu/l1/observe.js';
import type { MachineRunResult } from '../../cpu/machine/observing-machine.js';
import type { CpuState } from '../../cpu/state.js';
import { slotFields, type Vmcs } from '../../cpu/vmcs.js';
import { defaultL0Parts, type L0Parts } from '../../nested/l0/parts.js';
import type { NestedRecord, NestedRecordSink } from '../../nested/l0/records.js';
import type { PlatformConfig } from '../../cpu/interp/platform.js';
import type { L0Profile } from '../../nested/profile.js';
import { L0Layout } from '../../nested/l0/hardware.js';
import { NestedMachine } from '../../nested/machine/nested-machine.js';
import { entryFailure, reflection, vmEntry, type Ept02Entry, type TraceEvent, type TraceHeader } from '../format/events.js';
import { l1RegistersEvent, vmExitEvent, vmxOpEvent, vmxOutcomeEvent } from './l1-events.js';
import { canonicalScenarioJson, scenarioProfile, scenarioSchedule, scenarioToL1Config } from '../scenario/canonical.js';
import { scheduledEventEvent } from './external-events.js';
import type { ScheduledEvent } from '../../cpu/machine/run-guest.js';
import { scenarioCodeBytes } from '../scenario/parse.js';
import type { Scenario } from '../scenario/types.js';

/** turtles' version as the producer string names it (a test keeps it equal to package.json). */
export const RECORDER_VERSION = '0.1.0';

export interface RecordOptions {
  /** Record a deliberately different L0 (tests: test/mutants/variants.ts); the producer names `variantName`. */
  readonly l0Parts?: L0Parts;
  readonly variantName?: string;
  /** Stop the run once this many events are recorded (the summary says it was truncated). */
  readonly maxEvents?: number;
  /** Overrides the scenario's seed. */
  readonly seed?: bigint;
  /** Called every `progressEvery` exits to L1 with the count so far (the CLI's progress line). */
  readonly onProgress?: (exitsToL1: number, events: number) => void;
  readonly progressEvery?: number;
  /** Also hand every nested record to this sink (replay attaches vmcs02 provenance to findings without a second run). */
  readonly records?: NestedRecordSink;
}

export interface RecordSummary {
  readonly events: number;
  /** Exits delivered to L1 (vm_exit events). */
  readonly exitsToL1: number;
  /** Hardware L2 exits L0 took, and how many of them it reflected to L1 or handled itself. */
  readonly l2Exits: number;
  readonly reflected: number;
  readonly handledByL0: number;
  /** How the nested run ended ('completed' normally). */
  readonly status: MachineRunResult['status'] | 'event-limit';
  readonly truncated: boolean;
}

export interface Recording {
  readonly header: TraceHeader;
  readonly events: TraceEvent[];
  readonly summary: RecordSummary;
}

function cpuOf(s: Scenario): CpuModel {
  const cpu = findCpuModel(s.cpu);
  if (!cpu) throw new Error(`turtles bug: scenario ${s.name} names CPU model ${s.cpu}, which the parser accepted but does not exist`);
  return cpu;
}

/** The trace header of a recording of `s` (what the streaming writer needs before the first event). */
export function scenarioHeader(s: Scenario, opts: Pick<RecordOptions, 'l0Parts' | 'variantName' | 'seed' | 'maxEvents'> = {}): TraceHeader {
  const cpu = cpuOf(s);
  const msrs = new Map<number, bigint>();
  for (const [name, value] of cpu.msrs) msrs.set(VMX_MSR_INDEX[name as VmxMsrName], value);
  const seed = opts.seed ?? s.seed;
  const variant = opts.l0Parts || opts.variantName ? ` l0-variant ${opts.variantName ?? 'unnamed'}` : '';
  // A recording cut at maxEvents is re-run by replay with the same limit, so the limit is part of the producer.
  const limit = opts.maxEvents !== undefined ? ` max-events ${opts.maxEvents}` : '';
  return {
    producer: `turtles ${RECORDER_VERSION} record ${s.name}${variant}${limit}`,
    cpu: { id: cpu.id, vmxMsrs: msrs },
    l0Profile: s.l0.profile,
    kind: 'nested',
    ...(seed !== undefined ? { seed } : {}),
    scenario: { format: s.format, name: s.name, json: canonicalScenarioJson(seed === s.seed ? s : { ...s, seed: seed! }) },
  };
}

/** What both machines need to run a scenario (replay runs the reference machine with exactly these). */
export interface ScenarioMachineInputs {
  readonly program: L1Program;
  readonly cpu: CpuModel;
  readonly profile: L0Profile;
  readonly platform?: PlatformConfig;
  /** The scenario's external events for L2 (absent when it has none). */
  readonly schedule?: readonly ScheduledEvent[];
}

/** The machine inputs of `s` (the recorder's own: the nested run of a recording uses exactly these). */
export function scenarioMachineInputs(s: Scenario, opts: Pick<RecordOptions, 'seed'> = {}): ScenarioMachineInputs {
  const seed = opts.seed ?? s.seed;
  const schedule = scenarioSchedule(s);
  return {
    program: builtinL1(scenarioToL1Config(s)), cpu: cpuOf(s), profile: scenarioProfile(s), ...(seed !== undefined ? { platform: { seed } } : {}),
    ...(schedule.length > 0 ? { schedule } : {}),
  };
}

/** Thrown through the L1 program to end a run at the event limit; caught by the recorder. */
class EventLimit extends Error {}

const NO_REGS: ReadonlyMap<number, bigint> = new Map();
const FULL_ENCODINGS = slotFields().map((f) => f.encoding);

/** Full snapshots of one VMCS kind, sharing unchanged work: a new map only when some field changed. */
class SnapshotTracker {
  private words: Uint32Array | undefined;
  /** Field values in slot order, as last emitted (a map built from them in slot order equals a copy of the last one). */
  private readonly values: bigint[] = [];

  /** The fields of `v` when they differ from the last call's, else undefined. */
  next(v: Vmcs): Map<number, bigint> | undefined {
    const w = v.words;
    const prev = this.words;
    const values = this.values;
    if (prev) {
      let changed = false;
      for (let i = 0; i < FULL_ENCODINGS.length; i++) {
        if (w[2 * i] !== prev[2 * i] || w[2 * i + 1] !== prev[2 * i + 1]) {
          values[i] = (BigInt(w[2 * i + 1]!) << 32n) | BigInt(w[2 * i]!);
          changed = true;
        }
      }
      if (!changed) return undefined;
      // The tracker's own copy of the words is reused (same length: one slot table), not reallocated per snapshot.
      prev.set(w);
    } else {
      for (let i = 0; i < FULL_ENCODINGS.length; i++) values[i] = (BigInt(w[2 * i + 1]!) << 32n) | BigInt(w[2 * i]!);
      this.words = w.slice();
    }
    const fields = new Map<number, bigint>();
    for (let i = 0; i < FULL_ENCODINGS.length; i++) fields.set(FULL_ENCODINGS[i]!, values[i]!);
    return fields;
  }
}

function permsOf(p: { read: boolean; write: boolean; execute: boolean; userExecute: boolean }): number {
  return (p.read ? 1 : 0) | (p.write ? 2 : 0) | (p.execute ? 4 : 0) | (p.userExecute ? 8 : 0);
}

/**
 * The nested machine with L1's VMX outcomes turned into vmx_outcome events (L1's RFLAGS are only visible from inside):
 * through the O1 hook for every instruction but VMLAUNCH/VMRESUME, whose O1 the machine emits only with an
 * observation sink (the recorder runs without one: O2–O5 would cost time and change nothing recorded).
 */
class RecordingNestedMachine extends NestedMachine {
  onOutcome: ((instruction: string, r: L1LaunchResult, rflags: bigint) => void) | undefined;

  protected override o1(step: number, instruction: string, operands: readonly bigint[], r: L1LaunchResult, failedCheck?: string): void {
    if (instruction !== 'vmlaunch' && instruction !== 'vmresume') this.onOutcome?.(instruction, r, this.rflagsNow());
    super.o1(step, instruction, operands, r, failedCheck);
  }

  override vmlaunch(): L1LaunchResult {
    const r = super.vmlaunch();
    this.onOutcome?.('vmlaunch', r, this.rflagsNow());
    return r;
  }

  override vmresume(): L1LaunchResult {
    const r = super.vmresume();
    this.onOutcome?.('vmresume', r, this.rflagsNow());
    return r;
  }

  /** L1's state while it runs (after an exit to L1 completed), as O3 reads it; undefined when L1 is not running. */
  l1Now(): CpuState | undefined {
    const cpu = this.l0.hw.cpu;
    return cpu.nonRoot && cpu.guest && !this.l0.state.guestMode ? this.l0.l1View() : undefined;
  }

  /** L1's RFLAGS as l1Rflags() reports them, without the copy of L1's whole state it makes while L1 runs. */
  private rflagsNow(): bigint {
    if (this.l0.state.guestMode) return this.runner.l1AtEntry.rflags;
    const cpu = this.l0.hw.cpu;
    if (cpu.nonRoot && cpu.guest) return cpu.guest.rflags;
    return this.l1Rflags();
  }
}

/**
 * L0's parts with the reflection decision wrapped to note L2's RIP and CS base at the hardware exit: the decision is
 * taken right after the exit, while the `l2-exit` record of an exit L0 handles comes after its handler moved RIP on.
 */
function notingParts(parts: L0Parts, note: (rip: bigint, csBase: bigint) => void, vmcs02: () => Vmcs): L0Parts {
  return {
    ...parts,
    reflect: (exit, vmcs12, ctx, p) => {
      const v = vmcs02();
      note(v.get(Field.GUEST_RIP), v.get(Field.GUEST_CS_BASE));
      return parts.reflect(exit, vmcs12, ctx, p);
    },
  };
}

/** Turns one nested run into events. */
class Recorder implements NestedRecordSink {
  machine!: RecordingNestedMachine;
  events = 0;
  exitsToL1 = 0;
  l2Exits = 0;
  reflected = 0;
  handledByL0 = 0;
  private exitPending = false;
  /** L2's RIP and CS base at the last hardware exit (set by the wrapped reflection decision). */
  exitAt: { rip: bigint; csBase: bigint } | undefined;
  private readonly vmcs12 = new SnapshotTracker();
  private readonly vmcs02 = new SnapshotTracker();
  private readonly code: Uint8Array;
  private readonly codeBase: bigint;

  constructor(private readonly s: Scenario, private readonly sink: (e: TraceEvent) => void, private readonly opts: RecordOptions) {
    const code = scenarioCodeBytes(s.l1.l2.code, s.l1.l2.mode);
    this.code = code instanceof Uint8Array ? code : new Uint8Array(0);
    // Linear address of the first code byte (the environment's linear = physical layout; real mode: CS base).
    this.codeBase = L2Layout.CODE;
  }

  emit(e: TraceEvent): void {
    if (this.opts.maxEvents !== undefined && this.events >= this.opts.maxEvents) throw new EventLimit();
    this.sink(e);
    this.events++;
  }

  // ---- nested records ---------------------------------------------------------------------------------------------

  record(r: NestedRecord): void {
    this.opts.records?.record(r);
    switch (r.kind) {
      case 'l2-entry': {
        const l0 = this.machine.l0;
        const cur = l0.state.current;
        if (cur) {
          const f12 = this.vmcs12.next(cur.vmcs);
          if (f12) this.emit({ kind: 'vmcs-snapshot', which: 'vmcs12', fields: f12, address: cur.ptr });
        }
        const f02 = this.vmcs02.next(r.vmcs02);
        if (f02) this.emit({ kind: 'vmcs-snapshot', which: 'vmcs02', fields: f02, address: L0Layout.VMCS02 });
        this.emit(vmEntry('L2', {
          rip: r.vmcs02.get(Field.GUEST_RIP), eptp: r.eptp02, note: r.realEntry ? 'l1-entry' : 'l0-resume',
          ...(cur ? { vmcs12: cur.ptr } : {}), entryIntrInfo: r.vmcs02.lo(Field.VM_ENTRY_INTR_INFO_FIELD),
        }));
        return;
      }
      case 'l2-exit': {
        const hw = r.hardware;
        const at = this.exitAt ?? { rip: this.machine.l0.vmcs02.get(Field.GUEST_RIP), csBase: this.machine.l0.vmcs02.get(Field.GUEST_CS_BASE) };
        this.exitAt = undefined;
        const rip = at.rip;
        this.l2Exits++;
        if (r.decision.reflect) this.reflected++;
        else this.handledByL0++;
        if (hw.instructionLength > 0 && hw.instructionLength <= 15 && (hw.reason & 0x8000_0000) === 0) {
          const offset = at.csBase + rip - this.codeBase;
          const bytes = offset >= 0n && offset + BigInt(hw.instructionLength) <= BigInt(this.code.length)
            ? this.code.slice(Number(offset), Number(offset) + hw.instructionLength) : new Uint8Array(0);
          this.emit({ kind: 'l2-step', rip, instruction: bytes, regs: NO_REGS, emulationFailed: false, mode: this.s.l1.l2.mode, csBase: at.csBase });
        }
        this.emit({
          kind: 'l0-exit', level: 'L2', reason: hw.reason, qualification: hw.qualification, rip, guestLinear: hw.guestLinearAddress,
          guestPhysical: hw.guestPhysicalAddress, intrInfo: hw.intrInfo, intrError: hw.intrErrorCode, idtVectoringInfo: hw.idtVectoringInfo,
          idtVectoringError: hw.idtVectoringErrorCode, instructionLength: hw.instructionLength, instructionInfo: hw.instructionInfo,
        });
        this.emit(reflection(r.decision.reflect ? 'reflected' : 'handled-by-l0', hw.reason, { rip, rule: r.decision.rule }));
        return;
      }
      case 'ept02': {
        const ev = r.event;
        if (ev.kind !== 'fill') return;
        const l = ev.leaf;
        const entry: Ept02Entry = {
          l2Gpa: l.gpa as bigint, hpa: l.hpa as bigint, perms: permsOf(l.permissions), level: l.level, memoryType: l.memType, ignorePat: l.ipat,
        };
        this.emit({ kind: 'ept02', entries: [entry] });
        return;
      }
      case 'exit-to-l1':
        this.exitPending = true;
        return;
      case 'nested-entry-check': {
        const o = r.outcome;
        this.emit(entryFailure('L2', {
          checkId: r.checkId,
          ...(o === 'exit-33' ? { exitReason: 0x8000_0021 } : o === 'exit-34' ? { exitReason: 0x8000_0022 } : { vmInstructionError: o === 'vmfail-7' ? 7 : 8 }),
        }));
        return;
      }
      default:
        return;
    }
  }

  // ---- L1 side ----------------------------------------------------------------------------------------------------

  /** vmx_outcome from the same facts O1 carries (ObservingL1Machine.o1 builds them the same way). */
  outcome(instruction: string, r: L1LaunchResult, rflags: bigint): void {
    this.emit(vmxOutcomeEvent({
      instruction, outcome: r.kind, rflags,
      ...('error' in r ? { error: r.error } : {}), ...('vector' in r ? { vector: r.vector } : {}),
      ...('value' in r && r.value !== undefined ? { value: r.value } : {}),
    }));
    if ((instruction === 'vmlaunch' || instruction === 'vmresume') && this.exitPending) {
      this.exitPending = false;
      this.exitToL1();
    }
  }

  /** The exit L1 now finds in vmcs12, every exit-information field as L1 would VMREAD it (O2). */
  private exitToL1(): void {
    const v12 = this.machine.l0.state.current?.vmcs;
    if (!v12) throw new Error('turtles bug: exit to L1 without a current vmcs12');
    this.exitsToL1++;
    this.emit(vmExitEvent({ exit: readExitInformation((e) => v12.get(e)), guestState: new Map([[Field.GUEST_RIP, v12.get(Field.GUEST_RIP)]]) }));
    // L1 after the exit (host state loaded): its registers, part of O3.
    const l1 = this.machine.l1Now();
    if (l1) this.emit(l1RegistersEvent(l1));
    if (this.opts.onProgress && this.exitsToL1 % (this.opts.progressEvery ?? 10_000) === 0) this.opts.onProgress(this.exitsToL1, this.events);
  }
}

function le(value: bigint, size: number): Uint8Array {
  const out = new Uint8Array(size);
  let v = BigInt.asUintN(size * 8, value);
  for (let i = 0; i < size; i++) {
    out[i] = Number(v & 0xffn);
    v >>= 8n;
  }
  return out;
}

/** L1's operations as the program makes them: each VMX instruction (operands in O1's order) and memory write becomes an event. */
function recordingL1(m: L1Machine, rec: Recorder): L1Machine {
  const op = (name: string, operands: readonly bigint[] = []) => rec.emit(vmxOpEvent(name, operands));
  return {
    vmxon: (region: L1Gpa): L1VmxResult => (op('vmxon', [region as bigint]), m.vmxon(region)),
    vmxoff: (): L1VmxResult => (op('vmxoff'), m.vmxoff()),
    vmclear: (region: L1Gpa): L1VmxResult => (op('vmclear', [region as bigint]), m.vmclear(region)),
    vmptrld: (region: L1Gpa): L1VmxResult => (op('vmptrld', [region as bigint]), m.vmptrld(region)),
    vmptrst: (): L1VmxResult => (op('vmptrst'), m.vmptrst()),
    vmread: (encoding: bigint): L1VmxResult => (op('vmread', [encoding]), m.vmread(encoding)),
    vmwrite: (encoding: bigint, value: bigint): L1VmxResult => (op('vmwrite', [encoding, value]), m.vmwrite(encoding, value)),
    vmlaunch: (): L1LaunchResult => (op('vmlaunch'), m.vmlaunch()),
    vmresume: (): L1LaunchResult => (op('vmresume'), m.vmresume()),
    invept: (type: bigint, eptp: bigint): L1VmxResult => (op('invept', [type, eptp]), m.invept(type, eptp)),
    invvpid: (type: bigint, vpid: number, linear: bigint): L1VmxResult => (op('invvpid', [type, BigInt(vpid), linear]), m.invvpid(type, vpid, linear)),
    readMemory: (gpa: L1Gpa, size: 1 | 2 | 4 | 8): bigint => m.readMemory(gpa, size),
    writeMemory: (gpa: L1Gpa, size: 1 | 2 | 4 | 8, value: bigint): void => {
      rec.emit({ kind: 'memory-write', address: gpa as bigint, data: le(value, size) });
      m.writeMemory(gpa, size, value);
    },
    writeBytes: (gpa: L1Gpa, bytes: Uint8Array): void => {
      rec.emit({ kind: 'memory-write', address: gpa as bigint, data: bytes.slice() });
      m.writeBytes(gpa, bytes);
    },
    rdmsr: (index: number): bigint => m.rdmsr(index),
    wrmsr: (index: number, value: bigint): void => m.wrmsr(index, value),
    setGpr: (index: number, value: bigint): void => m.setGpr(index, value),
    l1State: (): CpuState => m.l1State(),
  };
}

/** Run `s` and hand every event to `sink` in order (streaming: the caller writes them out as they come). */
export function recordScenarioTo(s: Scenario, sink: (e: TraceEvent) => void, opts: RecordOptions = {}): RecordSummary {
  const rec = new Recorder(s, sink, opts);
  const inputs = scenarioMachineInputs(s, opts);
  let machine: RecordingNestedMachine | undefined;
  const parts = notingParts(opts.l0Parts ?? defaultL0Parts(inputs.profile), (rip, csBase) => {
    rec.exitAt = { rip, csBase };
  }, () => machine!.l0.vmcs02);
  machine = new RecordingNestedMachine({
    cpu: inputs.cpu, profile: inputs.profile, records: rec, parts, ...(inputs.platform ? { platform: inputs.platform } : {}),
    ...(inputs.schedule ? { schedule: inputs.schedule } : {}),
  });
  rec.machine = machine;
  // Each external event as it is raised for L2 (before the step it is due at; after the entry when it fell due in L1).
  if (inputs.schedule) machine.events.onRaise = (e, step) => rec.emit(scheduledEventEvent(e, step));
  machine.onOutcome = (instruction, r, rflags) => rec.outcome(instruction, r, rflags);
  const program = inputs.program;
  let status: RecordSummary['status'];
  try {
    status = machine.run((m) => program(recordingL1(m, rec))).status;
  } catch (e) {
    if (!(e instanceof EventLimit)) throw e;
    status = 'event-limit';
  }
  return {
    events: rec.events, exitsToL1: rec.exitsToL1, l2Exits: rec.l2Exits, reflected: rec.reflected, handledByL0: rec.handledByL0, status,
    truncated: status === 'event-limit',
  };
}

/** Run `s` and return its header and events in memory (tests, replay's expected stream, small scenarios). */
export function recordScenario(s: Scenario, opts: RecordOptions = {}): Recording {
  const events: TraceEvent[] = [];
  const summary = recordScenarioTo(s, (e) => events.push(e), opts);
  return { header: scenarioHeader(s, opts), events, summary };
}

