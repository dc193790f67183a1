// External events in recordings: the recorder raises a scenario's `events` schedule in the nested run and records
// each as an `external` input event where it is raised; replay re-runs both machines with the same schedule and finds
// no divergence in a correct recording, names a changed external event under replay.model.l2-input, and names the
// first output of an L0 that drops the vector it acknowledged for L1 at the exact event index, under its O2 rule.
import { describe, expect, it } from 'vitest';
import { ExitReason } from '../../../../src/cpu/generated/exit-reasons.js';
import { Field } from '../../../../src/cpu/generated/vmcs-fields.js';
import { TraceReader, encodeTrace, memorySource, type TraceEvent } from '../../../../src/replay/format/index.js';
import { defaultL0Parts, type L0Parts } from '../../../../src/nested/l0/parts.js';
import { sdmProfile } from '../../../../src/nested/profile.js';
import { loadBuiltinScenario } from '../../../../src/replay/io/scenario-files.js';
import { recordScenario, type Recording } from '../../../../src/replay/record/recorder.js';
import { replayTrace, type TraceReplay } from '../../../../src/replay/replay/index.js';
import { scenarioSchedule } from '../../../../src/replay/scenario/canonical.js';
import { firstEventDifference } from '../../../support/trace-events.js';

const SCENARIO = loadBuiltinScenario('external-events');
const VALID = 0x8000_0000;
/** A valid interruption-information word for `low` (vector and type bits), as an unsigned 32-bit number. */
const valid = (low: number): number => (VALID | low) >>> 0;

type Ev<K extends TraceEvent['kind']> = Extract<TraceEvent, { kind: K }>;

function replay(r: Recording): TraceReplay {
  return replayTrace(TraceReader.open(memorySource(encodeTrace(r.header, r.events)), 'external-events.trtl'));
}


/**
 * A wrong L0 that acknowledges an external interrupt for L1 (acknowledge-on-exit) but does not write the vector to
 * vmcs12's VM-exit interruption information: L1 sees an unacknowledged interrupt and the vector is lost (KVM before
 * "KVM: nVMX: Ack and write vector info to intr_info if L1 asks us to", 2014).
 */
const base = defaultL0Parts(sdmProfile());
const ACK_VECTOR_DROPPED: L0Parts = {
  ...base,
  writeExitInfo: (vmcs12, exit, pending, profile) => {
    const r = base.writeExitInfo(vmcs12, exit, pending, profile);
    if ((exit.reason & 0xffff) === ExitReason.EXTERNAL_INTERRUPT) r.vmcs12.set32(Field.VM_EXIT_INTR_INFO, 0);
    return r;
  },
};

describe('external events in a recording (scenario external-events)', () => {
  const rec = recordScenario(SCENARIO);
  const schedule = scenarioSchedule(SCENARIO);

  it('records each scheduled event once, in schedule order, where it is raised for L2', () => {
    const ext = rec.events.flatMap((e, i) => (e.kind === 'external' ? [{ e, i }] : []));
    expect(ext).toHaveLength(schedule.length);
    ext.forEach(({ e }, n) => {
      const s = schedule[n]!;
      const kind = s.kind === 'timer' ? 'interrupt' : s.kind;
      const vector = s.kind === 'nmi' ? 2 : s.kind === 'timer' ? (s.vector ?? 0x20) : 'vector' in s ? s.vector : 0;
      expect(e).toMatchObject({ external: kind, vector, target: 'L2', reinjected: false });
      // Each event falls due while L2 runs, so it is raised at exactly its step.
      expect(e.atInstruction).toBe(BigInt(s.at));
    });
    // The first interrupt arrives inside the first resumed L2 run and causes the next hardware exit: an external interrupt.
    const first = ext[0]!.i;
    expect(rec.events.slice(0, first).some((e) => e.kind === 'vm-entry')).toBe(true);
    expect(rec.events[first + 1]).toMatchObject({ kind: 'l0-exit', reason: ExitReason.EXTERNAL_INTERRUPT });
  });

  it('L1 sees the exits the SDM gives for the schedule, then L2 takes interrupts through its IDT', () => {
    const exits = rec.events.filter((e): e is Ev<'vm-exit'> => e.kind === 'vm-exit');
    expect(exits.map((e) => e.reason)).toEqual([
      ExitReason.EXTERNAL_INTERRUPT, // 0x30, acknowledged: L1 injects it
      ExitReason.EXTERNAL_INTERRUPT, // 0x31 while L2's handler runs with IF = 0: still exits (SDM Table 25-5)
      ExitReason.INTERRUPT_WINDOW, // L1 held 0x31 until L2 can take it
      ExitReason.EXCEPTION_NMI, // NMI exiting
      ExitReason.EXTERNAL_INTERRUPT, // the timer tick, vector 0x20
      ExitReason.EXTERNAL_INTERRUPT, // 0x31; L1 turns acknowledge-on-exit off
      ExitReason.EXTERNAL_INTERRUPT, // 0x30 unacknowledged; L1 turns external-interrupt exiting off
      ExitReason.EXCEPTION_NMI, // the NMI of step 160 exits before the interrupt of the same step
      ExitReason.HLT,
    ]);
    expect(exits.map((e) => (e.intrInfo ?? 0) >>> 0)).toEqual([
      valid(0x30), valid(0x31), 0, valid(0x202), valid(0x20), valid(0x31), 0, valid(0x202), 0,
    ]);
    // L1 injected each acknowledged vector: the next entry carries it (type 0, valid).
    const entries = rec.events.filter((e): e is Ev<'vm-entry'> => e.kind === 'vm-entry' && e.note === 'l1-entry');
    expect(entries.map((e) => (e.entryIntrInfo ?? 0) >>> 0).filter((x) => x >= VALID)).toEqual([
      valid(0x30), valid(0x31), valid(0x202), valid(0x20), valid(0x31), valid(0x202),
    ]);
    // After external-interrupt exiting is off, the interrupts of steps 160 and 200 cause no exit at all.
    const lastTwo = rec.events.flatMap((e, i) => (e.kind === 'external' && e.atInstruction >= 160n && e.external === 'interrupt' ? [i] : []));
    expect(lastTwo).toHaveLength(2);
    for (const i of lastTwo) {
      const nextExit = rec.events.slice(i).find((e) => e.kind === 'l0-exit') as Ev<'l0-exit'> | undefined;
      expect(nextExit?.reason).not.toBe(ExitReason.EXTERNAL_INTERRUPT);
    }
    expect(rec.summary).toMatchObject({ status: 'completed', exitsToL1: 9, truncated: false });
  });

  it('is deterministic: the same scenario gives the same bytes', () => {
    const again = recordScenario(SCENARIO);
    expect(encodeTrace(again.header, again.events)).toEqual(encodeTrace(rec.header, rec.events));
  });

  it('replays with no divergence: both re-runs get the schedule, every event compared', () => {
    const r = replay(rec);
    expect(r.findings.map((f) => f.divergence)).toEqual([]);
    expect(r.checks.find((c) => c.id === 'model')).toMatchObject({ applies: true, evaluated: rec.events.length, divergences: 0 });
  });

  it('a recorded external event that differs from the re-run is a divergence at its index under replay.model.l2-input', () => {
    const at = rec.events.findIndex((e) => e.kind === 'external' && e.external === 'interrupt');
    const events = rec.events.map((e, i) => (i === at ? { ...(e as Ev<'external'>), vector: 0x77 } : e));
    const r = replay({ ...rec, events });
    expect(r.findings[0]?.divergence).toMatchObject({ event: at, rule: 'replay.model.l2-input', field: 'vector', kind: 'recorded' });
  });

  it('a recording from an L0 that drops the acknowledged vector is reported at the first exit it changes, under O2', () => {
    const bad = recordScenario(SCENARIO, { l0Parts: ACK_VECTOR_DROPPED, variantName: 'ack-vector-dropped' });
    expect(bad.header.producer).toContain('l0-variant ack-vector-dropped');
    const at = firstEventDifference(rec.events, bad.events);
    expect(at, 'the wrong L0 changes the recording').toBeLessThan(Math.min(rec.events.length, bad.events.length));
    // The first output that differs is the first exit to L1: the acknowledged vector is missing.
    expect(rec.events[at]).toMatchObject({ kind: 'vm-exit', reason: ExitReason.EXTERNAL_INTERRUPT, intrInfo: valid(0x30) });
    expect(bad.events[at]).toMatchObject({ kind: 'vm-exit', reason: ExitReason.EXTERNAL_INTERRUPT, intrInfo: 0 });

    const r = replay(bad);
    const first = r.findings[0]!.divergence;
    expect(first).toMatchObject({ event: at, rule: 'oracle.o2.interruption-info', field: 'VM_EXIT_INTR_INFO', kind: 'recorded' });
    expect(first.expected).not.toBe(first.actual);
    expect(first.explanation).not.toMatch(/\n/);
  });
});
