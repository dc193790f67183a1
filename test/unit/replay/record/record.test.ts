// The recorder on every built-in scenario (mixed-1m in a short version): the file decodes to the recorded events with
// the scenario in its header, the stream has the contract's shape (docs/scenarios.md),
// the exits delivered to L1 are exactly what the nested machine's O2 observations say, and each scenario shows the
// behaviour it exists for. A wrong L0 is named in the producer and changes the recording.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { findCpuModel } from '../../../../src/cpu/cpu-model.js';
import { Field } from '../../../../src/cpu/generated/vmcs-fields.js';
import { builtinL1 } from '../../../../src/cpu/l1/builtin.js';
import type { Observation } from '../../../../src/cpu/l1/observation.js';
import { ObservationLog } from '../../../../src/cpu/l1/observe.js';
import { NestedMachine } from '../../../../src/nested/machine/nested-machine.js';
import { decodeTrace, encodeTrace, registerName, type RegistersEvent, type TraceEvent, type VmExitEvent } from '../../../../src/replay/format/index.js';
import { observationEvents } from '../../../../src/replay/record/l1-events.js';
import { builtinScenarios, loadBuiltinScenario } from '../../../../src/replay/io/scenario-files.js';
import { RECORDER_VERSION, recordScenario, recordScenarioTo, scenarioHeader } from '../../../../src/replay/record/recorder.js';
import { parseScenario } from '../../../../src/replay/scenario/parse.js';
import { canonicalScenarioJson, scenarioProfile, scenarioToL1Config } from '../../../../src/replay/scenario/canonical.js';
import type { Scenario } from '../../../../src/replay/scenario/types.js';
import { WRONG_L0S } from '../../../mutants/variants.js';

/** mixed-1m with `iterations` loop iterations instead of 55,188. */
export function shortMixed(iterations: number): Scenario {
  const s = loadBuiltinScenario('mixed-1m');
  return { ...s, l1: { ...s.l1, l2: { ...s.l1.l2, gprs: [['r15', BigInt(iterations)]] } } };
}

function scenarios(): [string, Scenario][] {
  return builtinScenarios().map((n) => [n, n === 'mixed-1m' ? shortMixed(3) : loadBuiltinScenario(n)]);
}

const L2_SIDE = new Set(['vmcs-snapshot', 'vm-entry', 'l2-step', 'l0-exit', 'reflection', 'ept02', 'entry-failure']);

/** Problems with the stream's shape (empty when it follows the contract). */
function shapeProblems(events: readonly TraceEvent[]): string[] {
  const out: string[] = [];
  let open: { op: string; at: number } | undefined;
  let entered = false;
  let launchOutcomes = 0;
  events.forEach((e, i) => {
    const prev = events[i - 1];
    const next = events[i + 1];
    if (e.kind === 'registers' && prev?.kind !== 'vm-exit') out.push(`#${i}: registers not right after a vm_exit`);
    if (e.kind === 'vmx-op') {
      if (open) out.push(`#${i}: vmx_op ${e.op} while ${open.op} (#${open.at}) has no outcome`);
      open = { op: e.op, at: i };
      return;
    }
    if (e.kind === 'vmx-outcome') {
      if (!open || open.op !== e.op) out.push(`#${i}: vmx_outcome ${e.op} without its vmx_op`);
      else if (open.op !== 'vmlaunch' && open.op !== 'vmresume' && open.at !== i - 1) out.push(`#${i}: ${e.op} outcome not right after its op`);
      if ((e.op === 'vmlaunch' || e.op === 'vmresume') && e.result === 'vm-exit') {
        launchOutcomes++;
        if (next?.kind !== 'vm-exit') out.push(`#${i}: a launch ending in an exit to L1 is not followed by vm_exit`);
      }
      open = undefined;
      return;
    }
    if (L2_SIDE.has(e.kind)) {
      if (!open || (open.op !== 'vmlaunch' && open.op !== 'vmresume')) out.push(`#${i}: ${e.kind} outside a VMLAUNCH/VMRESUME`);
    }
    if (e.kind === 'vm-entry') {
      entered = true;
      if (e.level !== 'L2' || e.rip === undefined || e.vmcs12 === undefined || e.eptp === undefined) out.push(`#${i}: vm_entry lacks level/rip/vmcs12/eptp`);
    }
    if (e.kind === 'vmcs-snapshot' && e.which === 'vmcs02' && next?.kind !== 'vm-entry') out.push(`#${i}: vmcs02 snapshot not right before vm_entry`);
    if (e.kind === 'l2-step' && next?.kind !== 'l0-exit') out.push(`#${i}: l2_step not followed by l0_exit`);
    if (e.kind === 'l0-exit') {
      if (!entered) out.push(`#${i}: l0_exit before any vm_entry`);
      if (next?.kind !== 'reflection' || next.exitReason !== e.reason) out.push(`#${i}: l0_exit not followed by its reflection`);
      if ((e.instructionLength ?? 0) > 0 && prev?.kind !== 'l2-step') out.push(`#${i}: instruction exit without l2_step`);
    }
    if (e.kind === 'vm-exit') {
      if (prev?.kind !== 'vmx-outcome' || prev.result !== 'vm-exit') out.push(`#${i}: vm_exit not right after a launch outcome`);
      if (next?.kind !== 'registers' || next.level !== 'L1') out.push(`#${i}: vm_exit not followed by L1's registers`);
      for (const f of ['reason', 'qualification', 'rip', 'guestLinear', 'guestPhysical', 'intrInfo', 'intrError', 'idtVectoringInfo', 'idtVectoringError', 'instructionLength', 'instructionInfo'] as const) {
        if (e[f] === undefined) out.push(`#${i}: vm_exit lacks ${f}`);
      }
    }
  });
  if (open) out.push(`stream ends inside ${open.op}`);
  if (launchOutcomes !== events.filter((e) => e.kind === 'vm-exit').length) out.push('vm_exit count differs from launches ending in an exit');
  return out;
}

/** The nested machine's observations for the same scenario (run independently of the recorder). */
function observe(s: Scenario): Observation[] {
  const log = new ObservationLog();
  const cpu = findCpuModel(s.cpu)!;
  new NestedMachine({
    cpu, profile: scenarioProfile(s), sink: log, ...(s.seed !== undefined ? { platform: { seed: s.seed } } : {}), ...(s.events ? { schedule: s.events } : {}),
  })
    .run(builtinL1(scenarioToL1Config(s)));
  return log.items;
}

function o2(s: Scenario): Extract<Observation, { kind: 'exit-to-l1' }>[] {
  return observe(s).filter((o): o is Extract<Observation, { kind: 'exit-to-l1' }> => o.kind === 'exit-to-l1');
}

const vmExits = (events: readonly TraceEvent[]) => events.filter((e): e is VmExitEvent => e.kind === 'vm-exit');

describe.each(scenarios())('recording %s', (name, s) => {
  const rec = recordScenario(s);

  it('completes and writes a file that decodes to the same header and events', () => {
    expect(rec.summary.status).toBe('completed');
    expect(rec.summary.events).toBe(rec.events.length);
    const bytes = encodeTrace(rec.header, rec.events);
    const back = decodeTrace(bytes);
    expect(back.header.producer).toBe(`turtles ${RECORDER_VERSION} record ${name}`);
    expect(back.header.kind).toBe('nested');
    expect(back.header.l0Profile).toBe(s.l0.profile);
    expect(back.header.cpu?.id).toBe(s.cpu);
    expect(back.header.cpu?.vmxMsrs.get(0x480)).toBe(findCpuModel(s.cpu)!.msr('IA32_VMX_BASIC'));
    expect(back.header.scenario?.format).toBe('turtles.scenario.v1');
    expect(back.header.scenario?.name).toBe(name);
    expect(canonicalScenarioJson(parseScenario(back.header.scenario!.json, 'header'))).toBe(canonicalScenarioJson(s));
    expect(back.events).toEqual(rec.events);
  });

  it('has the contract\'s event order', () => {
    expect(shapeProblems(rec.events)).toEqual([]);
    expect(rec.events[0]?.kind).toBe('memory-write');
    expect(rec.events.filter((e) => e.kind === 'l0-exit').length).toBe(rec.summary.l2Exits);
    expect(rec.events.filter((e) => e.kind === 'reflection' && e.decision === 'reflected').length).toBe(rec.summary.reflected);
  });

  it('delivers to L1 exactly the exits the nested machine observes (O2), every field', () => {
    const observed = o2(s);
    const recorded = vmExits(rec.events);
    expect(recorded.length).toBe(observed.length);
    expect(recorded.length).toBe(rec.summary.exitsToL1);
    recorded.forEach((e, i) => {
      const o = observed[i]!;
      expect({
        reason: e.reason, qualification: e.qualification, rip: e.rip, guestLinear: e.guestLinear, guestPhysical: e.guestPhysical, intrInfo: e.intrInfo,
        intrError: e.intrError, idtVectoringInfo: e.idtVectoringInfo, idtVectoringError: e.idtVectoringError, instructionLength: e.instructionLength,
        instructionInfo: e.instructionInfo,
      }).toEqual({
        reason: o.exit.exitReason, qualification: o.exit.qualification, rip: o.guestState.get(Field.GUEST_RIP), guestLinear: o.exit.guestLinearAddress,
        guestPhysical: o.exit.guestPhysicalAddress, intrInfo: o.exit.interruptionInfo, intrError: o.exit.interruptionErrorCode,
        idtVectoringInfo: o.exit.idtVectoringInfo, idtVectoringError: o.exit.idtVectoringErrorCode, instructionLength: o.exit.instructionLength,
        instructionInfo: o.exit.instructionInfo,
      });
    });
  });

  it('L1\'s registers after each exit to L1 are O3\'s, and the VMX outcomes are O1\'s', () => {
    const observed = observe(s);
    const o3 = observed.filter((o): o is Extract<Observation, { kind: 'l1-state' }> => o.kind === 'l1-state');
    const regs = rec.events.filter((e): e is RegistersEvent => e.kind === 'registers');
    expect(regs.length).toBe(o3.length);
    regs.forEach((e, i) => {
      const d = o3[i]!.detail;
      expect([...e.regs].map(([id, v]) => [registerName(id), v])).toEqual([...e.regs].map(([id]) => [registerName(id), d.get(registerName(id))]));
    });
    // O1 through the shared mapping gives exactly the recorded vmx_op/vmx_outcome pairs.
    const fromO1 = observed.flatMap((o) => (o.kind === 'vmx-instruction' ? observationEvents(o) : []));
    const recorded = rec.events.filter((e) => e.kind === 'vmx-op' || e.kind === 'vmx-outcome');
    expect(recorded).toEqual(fromO1);
    expect(rec.events.filter((e) => e.kind === 'vm-exit')).toEqual(observed.flatMap((o) => (o.kind === 'exit-to-l1' ? observationEvents(o) : [])));
  });

  it('the streaming form produces the same events', () => {
    const streamed: TraceEvent[] = [];
    const summary = recordScenarioTo(s, (e) => streamed.push(e));
    expect(summary).toEqual(rec.summary);
    expect(streamed).toEqual(rec.events);
  });
});

describe('what each scenario exercises', () => {
  const exitReasons = (events: readonly TraceEvent[]) => vmExits(events).map((e) => e.reason! & 0xffff);
  const handled = (events: readonly TraceEvent[]) =>
    events.filter((e) => e.kind === 'reflection' && e.decision === 'handled-by-l0').map((e) => (e as { exitReason: number }).exitReason & 0xffff);

  it('cpuid-msr-io: CPUID, RDMSR, WRMSR and I/O reach L1 through the bitmaps; the others stay with L0', () => {
    const { events } = recordScenario(loadBuiltinScenario('cpuid-msr-io'));
    expect(new Set(exitReasons(events))).toEqual(new Set([10, 31, 32, 30, 12]));
    expect(handled(events)).toEqual(expect.arrayContaining([31, 32, 30]));
    const steps = events.filter((e) => e.kind === 'l2-step').map((e) => Buffer.from((e as { instruction: Uint8Array }).instruction).toString('hex'));
    expect(steps).toEqual(expect.arrayContaining(['0fa2', '0f32', '0f30', 'e470', 'ee', 'f4']));
  });

  it('cr-shadowing: MOV CR0/CR4, CLTS and LMSW exit; the CR3-target value does not reach L1', () => {
    const { events } = recordScenario(loadBuiltinScenario('cr-shadowing'));
    // Access types (bits 5:4): 0 MOV to CR, 2 CLTS, 3 LMSW; CR number in bits 3:0.
    const kinds = vmExits(events).filter((e) => e.reason === 28).map((e) => `${Number((e.qualification! >> 4n) & 3n)}:${Number(e.qualification! & 15n)}`);
    expect(kinds).toEqual(expect.arrayContaining(['0:0', '2:0', '3:0', '0:4', '0:3']));
    expect(kinds.length).toBe(7);
    expect(handled(events).filter((r) => r === 28).length).toBe(2);
  });

  it('exception-bitmap-pfec: write page faults (PFEC match) and #UD/#BP exit, the read fault does not', () => {
    const { events } = recordScenario(loadBuiltinScenario('exception-bitmap-pfec'));
    const exc = vmExits(events).filter((e) => e.reason === 0).map((e) => `${e.intrInfo! & 0xff}:${(e.intrInfo! >>> 8) & 7}`);
    expect(exc).toEqual(['14:3', '14:3', '6:3', '3:6', '14:3']);
    for (const e of vmExits(events).filter((x) => x.reason === 0 && (x.intrInfo! & 0xff) === 14)) {
      expect(e.intrError).toBe(2);
      expect(e.qualification).toBe(0x4000_0000n);
    }
    expect(vmExits(events).find((e) => (e.intrInfo! & 0xff) === 3)?.instructionLength).toBe(1);
  });

  it('ept-faults-invept: EPT violations reach L1, L1 edits EPT12 and runs both INVEPT types, L0 fills EPT02', () => {
    const { events } = recordScenario(loadBuiltinScenario('ept-faults-invept'));
    expect(exitReasons(events).filter((r) => r === 48).length).toBe(3);
    const invepts = events.filter((e) => e.kind === 'vmx-op' && e.op === 'invept').map((e) => (e as { invType: number }).invType);
    expect(invepts).toEqual([1, 1, 2, 1]);
    expect(events.filter((e) => e.kind === 'ept02').length).toBeGreaterThan(5);
    expect(handled(events).every((r) => r === 48)).toBe(true);
  });

  it('vmcs-shadowing: shadowed fields stay below L1, the others exit as VMREAD/VMWRITE', () => {
    const { events } = recordScenario(loadBuiltinScenario('vmcs-shadowing'));
    expect(exitReasons(events)).toEqual([23, 25, 25, 12]);
    expect(handled(events).filter((r) => r === 23 || r === 25).length).toBe(4);
  });

  it('mixed-1m: every exit family per iteration, exits scale with the loop counter', () => {
    // n iterations give 19n + 5 hardware L2 exits and 9n + 1 exits to L1 (the scenario's description and
    // docs/scenarios.md state it); checked at two counters, so both the slope and the setup term are pinned.
    for (const n of [2, 5]) {
      const { summary } = recordScenario(shortMixed(n));
      expect([summary.l2Exits, summary.exitsToL1], `R15 = ${n}`).toEqual([19 * n + 5, 9 * n + 1]);
    }
    const { events } = recordScenario(shortMixed(2));
    expect(new Set(exitReasons(events))).toEqual(new Set([10, 31, 32, 30, 28, 48, 0, 12]));
    // The shipped counter gives the 1 M+ L2 exits: 1,048,577 of them, 496,693 reaching L1.
    const shipped = loadBuiltinScenario('mixed-1m').l1.l2.gprs!.find(([r]) => r === 'r15')![1];
    expect(shipped).toBe(0xd794n);
    expect([shipped * 19n + 5n, shipped * 9n + 1n]).toEqual([1_048_577n, 496_693n]);
  });
});

describe('recording options', () => {
  it('a wrong L0 is named in the producer and changes what is recorded', () => {
    const s = loadBuiltinScenario('cpuid-msr-io');
    const wrong = WRONG_L0S.find((w) => w.id === 'io-bitmap-ignored')!;
    const good = recordScenario(s);
    const bad = recordScenario(s, { l0Parts: wrong.parts, variantName: wrong.id });
    expect(bad.header.producer).toBe(`turtles ${RECORDER_VERSION} record cpuid-msr-io l0-variant io-bitmap-ignored`);
    const decisions = (r: typeof good) => r.events.filter((e) => e.kind === 'reflection').map((e) => (e as { decision: string }).decision).join(',');
    expect(decisions(bad)).not.toBe(decisions(good));
  });

  it('maxEvents truncates the run', () => {
    const r = recordScenario(loadBuiltinScenario('cpuid-msr-io'), { maxEvents: 50 });
    expect(r.events.length).toBe(50);
    expect(r.summary.truncated).toBe(true);
    expect(r.summary.status).toBe('event-limit');
    expect(r.header.producer).toBe(`turtles ${RECORDER_VERSION} record cpuid-msr-io max-events 50`);
  });

  it('a seed given as an option goes into the header and the scenario JSON', () => {
    const s = loadBuiltinScenario('cpuid-msr-io');
    const h = scenarioHeader(s, { seed: 7n });
    expect(h.seed).toBe(7n);
    expect(parseScenario(h.scenario!.json, 'h').seed).toBe(7n);
    expect(scenarioHeader(s).seed).toBeUndefined();
  });

  it('RECORDER_VERSION is the package version', () => {
    expect(RECORDER_VERSION).toBe((JSON.parse(readFileSync('package.json', 'utf8')) as { version: string }).version);
  });
});
