// Model replay runs in bounded memory (DESIGN.md §9): the nested re-run is compared with the recorded stream one event
// at a time (never more than one event ahead of it), the reference run's queue of unpaired events does not grow with
// the trace, and a stream desync stops the reading of the recorded stream. Structural bounds, no timing or RSS.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import type { Divergence } from '../../../src/checker/divergence.js';
import { TraceReader, encodeTrace, memorySource, type TraceEvent } from '../../../src/replay/format/index.js';
import { recordScenario, type Recording } from '../../../src/replay/record/recorder.js';
import { modelChecks, replayTrace } from '../../../src/replay/replay/index.js';
import { ModelEventComparator, type EventComparison } from '../../../src/replay/replay/model-compare.js';
import { compareWithNested } from '../../../src/replay/replay/model-lockstep.js';
import { RuleFilter } from '../../../src/replay/replay/rules.js';
import { parseScenario } from '../../../src/replay/scenario/parse.js';
import type { Scenario } from '../../../src/replay/scenario/types.js';

/** The built-in mixed workload with `iterations` loop iterations (R15), each ~9 exits to L1. */
function mixed(iterations: number): Scenario {
  const d = JSON.parse(readFileSync(new URL('../../../scenarios/mixed-1m.json', import.meta.url), 'utf8')) as {
    name: string; l1: { l2: { gprs: Record<string, string> } };
  };
  d.name = `mixed-${iterations}`;
  d.l1.l2.gprs['r15'] = `0x${iterations.toString(16)}`;
  return parseScenario(JSON.stringify(d), d.name);
}

function reader(r: Recording): TraceReader {
  return TraceReader.open(memorySource(encodeTrace(r.header, r.events)), `${r.header.scenario!.name}.trtl`);
}

/** Replays `r` through the model check class directly; returns its findings and the reference queue's high-water mark. */
function replayModel(r: Recording): { findings: Divergence[]; peakQueued: number } {
  const rd = reader(r);
  const findings: Divergence[] = [];
  const check = modelChecks.create({ file: rd.file, header: rd.header, filter: new RuleFilter([]), recorded: () => rd.events(), emit: (f) => findings.push(f.divergence) });
  let i = 0;
  for (const e of rd.events()) check.onEvent(e, i++);
  check.finish();
  return { findings, peakQueued: (check as unknown as { peakQueued: number }).peakQueued };
}

/** A nested comparator that notes, at each comparison, how many recorded events had been read by then. */
class SpyComparator extends ModelEventComparator {
  readonly readAtCompare: { index: number; read: number }[] = [];
  constructor(private readonly read: () => number) {
    super('nested', 'sdm');
  }

  override compare(event: number, expected: TraceEvent, actual: TraceEvent): EventComparison {
    this.readAtCompare.push({ index: event, read: this.read() });
    return super.compare(event, expected, actual);
  }
}

describe('model replay memory is bounded by structure, not by trace length', () => {
  const short = recordScenario(mixed(4));
  const long = recordScenario(mixed(24));

  it('the recordings differ in length by the loop count (the bound below is tested on both)', () => {
    expect(long.events.length).toBeGreaterThan(4 * short.events.length);
  });

  it('the nested re-run is compared as it runs: each of its events meets the one recorded event just read', () => {
    let read = 0;
    const recorded = (function* () {
      for (const e of long.events) {
        read++;
        yield e;
      }
    })();
    const spy = new SpyComparator(() => read);
    const c = compareWithNested(mixed(24), undefined, recorded, spy);
    expect(c.divergences.size).toBe(0);
    expect(c.recordedEvents).toBe(long.events.length);
    expect(spy.readAtCompare).toHaveLength(long.events.length);
    for (const { index, read: r } of spy.readAtCompare) expect(r).toBe(index + 1);
  });

  it('the reference run waits in a queue of a few events, the same for a 6x longer trace, and both replay clean', () => {
    const a = replayModel(short);
    const b = replayModel(long);
    expect(a.findings).toEqual([]);
    expect(b.findings).toEqual([]);
    expect(a.peakQueued).toBeGreaterThan(0);
    expect(a.peakQueued).toBeLessThanOrEqual(4);
    expect(b.peakQueued).toBe(a.peakQueued);
  });

  it('a desync stops the reading of the recorded stream: nothing after it is decoded or kept', () => {
    const at = Math.floor(short.events.length / 3);
    // An extra event at `at`, then a stream that fails if read much further.
    const events = [...short.events.slice(0, at), { kind: 'memory-write', address: 0x123n, data: new Uint8Array([1]) } as TraceEvent, ...short.events.slice(at)];
    let furthest = 0;
    const recorded = function* (): Generator<TraceEvent> {
      for (let i = 0; i < events.length; i++) {
        furthest = Math.max(furthest, i);
        if (i > at + 1) throw new Error(`read event ${i}, past the desync at ${at}`);
        yield events[i]!;
      }
    };
    const c = compareWithNested(mixed(4), undefined, recorded(), new ModelEventComparator('nested', 'sdm'));
    expect(c.desync).toMatchObject({ rule: 'replay.model.stream', event: at });
    expect(furthest).toBe(at);
    // The whole replay: findings stop at the desync.
    const r = replayTrace(TraceReader.open(memorySource(encodeTrace(short.header, events)), 'desync.trtl'));
    expect(r.findings.map((f) => f.divergence.rule)).toEqual(['replay.model.stream']);
    expect(r.findings[0]!.divergence.event).toBe(at);
  });
});
