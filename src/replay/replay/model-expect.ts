// What a recorded trace should contain, recomputed from its header's scenario: the scenario and limits a header names,
// the reference machine's L1-visible events (through the recorder's one mapping) as they happen, and the kvm
// attribution re-runs kept as encoded in-memory traces decoded one bounded chunk at a time.
// Must not: compare events, read files or clocks; an unparsable header scenario is a TraceFormatError (exit 2).
import { findCpuModel } from '../../cpu/cpu-model.js';
import type { ObservationSink } from '../../cpu/l1/observation.js';
import { ReferenceMachine } from '../../cpu/machine/reference-machine.js';
import type { FieldProvenance } from '../../nested/merge/types.js';
import { KVM_OBSERVABLE_DEVIATIONS } from '../../nested/profile.js';
import {
  MemorySink, TraceFormatError, TraceReader, TraceWriter, memorySource, type TraceEvent, type TraceHeader,
} from '../format/index.js';
import { l1RegistersEvent, observationEvents, recordScenarioTo, scenarioHeader, scenarioMachineInputs } from '../record/index.js';
import { parseScenario } from '../scenario/parse.js';
import { ScenarioError, SCENARIO_FORMAT, type Scenario } from '../scenario/types.js';

/**
 * The scenario a trace header carries, with the header's L0 profile (the header is what the trace claims to be), or
 * undefined for traces without one. A scenario that does not parse makes the trace unusable: TraceFormatError.
 */
export function headerScenario(header: TraceHeader, file: string): Scenario | undefined {
  const src = header.scenario;
  if (!src) return undefined;
  const bad = (what: string) => new TraceFormatError('corrupt', file, {}, `a scenario the recorder can re-run in the header: ${what}`);
  if (src.format !== SCENARIO_FORMAT) throw bad(`format "${src.format}" is not ${SCENARIO_FORMAT}`);
  let s: Scenario;
  try {
    s = parseScenario(src.json, `header scenario "${src.name}"`);
  } catch (e) {
    if (e instanceof ScenarioError) throw bad(e.message.replace(/\s*\n\s*/g, ' '));
    throw e;
  }
  if (!findCpuModel(s.cpu)) throw bad(`unknown CPU model "${s.cpu}"`);
  const p = header.l0Profile;
  if (p === 'sdm' && s.l0.profile !== 'sdm') return { ...s, l0: { profile: 'sdm' } };
  if (p === 'kvm' && s.l0.profile !== 'kvm') return { ...s, l0: { profile: 'kvm' } };
  return s;
}

/** The event limit a truncated recording was made with (producer "… max-events N"), so the re-run stops at the same place. */
export function recordedEventLimit(header: TraceHeader): number | undefined {
  const m = /\bmax-events (\d+)\b/.exec(header.producer);
  return m ? Number(m[1]) : undefined;
}

/** The kvm deviations a scenario switches on (all observable ones unless it lists them). */
export function scenarioDeviations(s: Scenario): readonly string[] {
  if (s.l0.profile !== 'kvm') return [];
  return s.l0.deviations ?? KVM_OBSERVABLE_DEVIATIONS;
}

/** A copy of `s` with only `deviations` switched on (kvm attribution re-runs). */
export function withDeviations(s: Scenario, deviations: readonly string[]): Scenario {
  return { ...s, l0: { profile: 'kvm', deviations: [...deviations] } };
}

/**
 * Events per chunk of an attribution re-run's in-memory trace: iterating decodes one chunk at a time, so at most this
 * many decoded events are alive per stream (a file's default 65,536-event chunks would keep MBs of them alive).
 */
export const EXPECTED_WINDOW_EVENTS = 8192;

/** Events held as an encoded in-memory trace: iterate as often as needed, one decoded chunk (window) at a time. */
export class EncodedStream {
  constructor(
    private readonly bytes: Uint8Array, readonly events: number, readonly name: string,
    /** Events of what L1 does and sees (vmx_op, vmx_outcome, vm_exit, L1 registers). */
    readonly l1Visible: number,
  ) {}

  get byteLength(): number {
    return this.bytes.length;
  }

  *[Symbol.iterator](): Iterator<TraceEvent> {
    yield* TraceReader.open(memorySource(this.bytes), this.name).events();
  }
}

/** What L1 does and sees: its VMX instructions and their outcomes, exits delivered to it, its registers after them. */
export function isL1VisibleEvent(e: TraceEvent): boolean {
  return e.kind === 'vmx-op' || e.kind === 'vmx-outcome' || e.kind === 'vm-exit' || (e.kind === 'registers' && e.level === 'L1');
}

/** Ends a reference run that has produced all the events the comparison can use. */
class EnoughEvents extends Error {}

function encodeStream(header: TraceHeader, name: string, produce: (append: (e: TraceEvent) => void) => void): EncodedStream {
  const sink = new MemorySink();
  const w = new TraceWriter(sink, header, { chunkEvents: EXPECTED_WINDOW_EVENTS });
  let l1 = 0;
  try {
    produce((e) => {
      w.append(e);
      if (isL1VisibleEvent(e)) l1++;
    });
  } catch (e) {
    if (!(e instanceof EnoughEvents)) throw e;
  }
  const summary = w.finish();
  return new EncodedStream(sink.bytes(), summary.events, name, l1);
}

/**
 * The reference machine (L1 on a CPU with exactly the capabilities L0 advertises) running the scenario's L1 with the
 * recorder's own machine inputs (scenarioMachineInputs), handing its L1-visible events to `sink` as they happen —
 * vmx_op + vmx_outcome per VMX instruction, vm_exit and L1's registers per exit to L1 — through the recorder's one
 * mapping (record/l1-events.ts). With `limit`, the run ends soon after that many L1-visible events. `sink` may throw to
 * end the run early (the caller catches its own error).
 */
export function runReference(s: Scenario, limit: number | undefined, sink: (e: TraceEvent) => void): void {
  const inputs = scenarioMachineInputs(s);
  let machine: ReferenceMachine | undefined;
  let produced = 0;
  const observer: ObservationSink = {
    observe: (o) => {
      // Past `limit` L1-visible events nothing can be paired any more (a recording cut at an event limit).
      if (limit !== undefined && produced > limit) throw new EnoughEvents();
      for (const e of observationEvents(o)) {
        sink(e);
        produced++;
      }
      // After the exit L1's host state is loaded: its registers, as the recorder emits them after each vm_exit.
      if (o.kind === 'exit-to-l1') {
        sink(l1RegistersEvent(machine!.processor.state));
        produced++;
      }
    },
  };
  machine = new ReferenceMachine({
    cpu: inputs.cpu, sink: observer, ...(inputs.platform ? { platform: inputs.platform } : {}), ...(inputs.schedule ? { schedule: inputs.schedule } : {}),
  });
  try {
    machine.run(inputs.program);
  } catch (e) {
    if (!(e instanceof EnoughEvents)) throw e;
  }
}

/**
 * The provenance of vmcs02 at the L2 entry whose snapshot is event `event` of the nested re-run: the re-run is repeated
 * up to that event with the nested machine's records teed off (the rule id and inputs of every vmcs02 field).
 */
export function vmcs02ProvenanceAt(s: Scenario, event: number): readonly FieldProvenance[] | undefined {
  let last: readonly FieldProvenance[] | undefined;
  recordScenarioTo(s, () => undefined, {
    maxEvents: event + 1,
    records: { record: (r) => { if (r.kind === 'l2-entry') last = r.provenance; } },
  });
  return last;
}

/** The nested re-run with only `deviations` on, L1-visible events only (attribution of kvm differences). */
export function counterfactualL1Events(s: Scenario, deviations: readonly string[], maxEvents?: number): EncodedStream {
  const c = withDeviations(s, deviations);
  return encodeStream(scenarioHeader(c), `re-run of ${s.name} with deviations [${deviations.join(', ')}]`, (append) => {
    recordScenarioTo(c, (e) => {
      if (isL1VisibleEvent(e)) append(e);
    }, maxEvents !== undefined ? { maxEvents } : {});
  });
}
