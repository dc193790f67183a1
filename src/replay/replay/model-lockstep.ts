// Lockstep comparison of a recorded stream with the machines' re-runs: each machine drives (it pushes its events) and
// pulls the recorded events one at a time, so nothing of either run is kept beyond a few queued L1-visible events —
// only the divergences found (DESIGN.md §9: memory constant in trace length). Must not: emit findings, read files or
// clocks, or decide what is a deviation (model-replay.ts does).
import type { Divergence } from '../../checker/divergence.js';
import type { TraceEvent } from '../format/index.js';
import { recordScenarioTo } from '../record/index.js';
import type { Scenario } from '../scenario/types.js';
import { describeEvent, type ModelEventComparator } from './model-compare.js';
import { isL1VisibleEvent, runReference } from './model-expect.js';
import { modelSdm } from './model-rules.js';

export type L1Kind = 'vmx-op' | 'vmx-outcome' | 'vm-exit' | 'registers';
export const L1_KINDS: readonly L1Kind[] = ['vmx-op', 'vmx-outcome', 'vm-exit', 'registers'];
export type L1Event = Extract<TraceEvent, { kind: L1Kind }>;

export function isL1Visible(e: TraceEvent): e is L1Event {
  return isL1VisibleEvent(e);
}

/** An L1-visible event of the stream compared with the reference, and the event index its divergences carry. */
export interface IndexedL1Event {
  readonly index: number;
  readonly e: L1Event;
}

/** Divergences of one compared event; `ordinal` names the event the same way in every run of the scenario. */
export interface ReferenceDivergences {
  readonly index: number;
  readonly ordinal: number;
  readonly divergences: readonly Divergence[];
}

export interface ReferenceComparison {
  /** In event order; only events with divergences. */
  readonly compared: readonly ReferenceDivergences[];
  /** Both streams ended without a desync: a reference event nobody paired (at `lastEvent`); else empty. */
  readonly tail: readonly Divergence[];
  /** Most reference events queued at once waiting for their recorded counterpart (the memory bound; tests). */
  readonly peakQueued: number;
}

/** Ends a machine run whose remaining events the comparison does not need. */
class EndOfComparison extends Error {}

function sequenceLength(event: number, expected: TraceEvent | undefined, actual: TraceEvent | undefined): Divergence {
  const e = describeEvent(expected);
  const a = describeEvent(actual);
  return {
    kind: 'recorded', rule: 'oracle.sequence.length', sdm: modelSdm('oracle.sequence.length'), event, level: 'L1', expected: e, actual: a,
    explanation: actual
      ? `the trace has ${a} after the reference machine's run of the scenario ended`
      : `the trace ends where the reference machine's run of the scenario goes on with ${e}`,
  };
}

/**
 * Pairs the n-th recorded vmx_op (vmx_outcome, vm_exit, L1 registers) with the n-th of the reference run, kind by kind.
 * The reference pushes its events (push); each is queued under its kind and the recorded stream advances as far as the
 * queues allow — the pairing a pull of reference events per recorded event gives, with the reference driving. Reference
 * registers are kept only once the recorded stream has shown it records them.
 */
class ReferenceLockstep {
  private readonly queues: Record<L1Kind, TraceEvent[]> = { 'vmx-op': [], 'vmx-outcome': [], 'vm-exit': [], registers: [] };
  private readonly heads: Record<L1Kind, number> = { 'vmx-op': 0, 'vmx-outcome': 0, 'vm-exit': 0, registers: 0 };
  private queued = 0;
  peakQueued = 0;
  private current: IndexedL1Event | undefined;
  private actualDone = false;
  private referenceDone = false;
  private wantRegisters = false;
  /** First non-register reference event after the recorded stream ended (what a pull at the end would meet). */
  private late: TraceEvent | undefined;
  stopped = false;
  readonly compared: ReferenceDivergences[] = [];

  constructor(private readonly actual: Iterator<IndexedL1Event>, private readonly cmp: ModelEventComparator) {
    this.advance();
  }

  /** The reference produced `y`. False once nothing more of the reference run can change the comparison. */
  push(y: TraceEvent): boolean {
    if (this.stopped) return false;
    if (!isL1Visible(y)) return true;
    if (this.actualDone) {
      if (y.kind !== 'registers' && this.late === undefined) this.late = y;
      return this.late === undefined && !this.unpairedQueued();
    }
    if (y.kind === 'registers' && !this.wantRegisters) return true;
    this.queues[y.kind].push(y);
    this.queued++;
    this.peakQueued = Math.max(this.peakQueued, this.queued);
    this.advance();
    return !this.stopped && !(this.actualDone && this.unpairedQueued());
  }

  /** The reference run ended: recorded events left have no counterpart. */
  end(): void {
    this.referenceDone = true;
    this.advance();
  }

  /** After end(): the reference event nobody paired, as the divergence at `lastEvent` (none after a desync). */
  tail(lastEvent: number): Divergence[] {
    if (this.stopped) return [];
    for (const k of L1_KINDS) {
      if (k !== 'registers' && this.queues[k].length > 0) return [sequenceLength(lastEvent, this.queues[k][0], undefined)];
    }
    return this.late ? [sequenceLength(lastEvent, this.late, undefined)] : [];
  }

  private unpairedQueued(): boolean {
    return L1_KINDS.some((k) => k !== 'registers' && this.queues[k].length > 0);
  }

  private next(): IndexedL1Event | undefined {
    if (this.current || this.actualDone) return this.current;
    const r = this.actual.next();
    if (r.done) {
      this.actualDone = true;
      return undefined;
    }
    this.current = r.value;
    if (r.value.e.kind === 'registers') this.wantRegisters = true;
    return this.current;
  }

  private advance(): void {
    while (!this.stopped) {
      const r = this.next();
      if (!r) return;
      const kind = r.e.kind;
      const q = this.queues[kind];
      if (q.length === 0 && !this.referenceDone) return;
      const ordinal = this.heads[kind] * L1_KINDS.length + L1_KINDS.indexOf(kind);
      this.heads[kind]++;
      this.current = undefined;
      const x = q.shift();
      if (!x) {
        this.stopped = true;
        this.compared.push({ index: r.index, ordinal, divergences: [sequenceLength(r.index, undefined, r.e)] });
        return;
      }
      this.queued--;
      const c = this.cmp.compare(r.index, x, r.e);
      if (c.desync) {
        this.stopped = true;
        this.compared.push({ index: r.index, ordinal, divergences: [c.desync] });
        return;
      }
      if (c.divergences.length > 0) this.compared.push({ index: r.index, ordinal, divergences: c.divergences });
    }
  }
}

/**
 * Runs the reference machine on `s` (ending soon after `limit` L1-visible events) and compares its L1-visible events
 * with `actual`'s as they come. `lastEvent` anchors an unpaired reference event at the end.
 */
export function compareWithReference(
  s: Scenario, limit: number | undefined, actual: Iterator<IndexedL1Event>, cmp: ModelEventComparator, lastEvent: number,
): ReferenceComparison {
  const lock = new ReferenceLockstep(actual, cmp);
  try {
    runReference(s, limit, (y) => {
      if (!lock.push(y)) throw new EndOfComparison();
    });
  } catch (e) {
    if (!(e instanceof EndOfComparison)) throw e;
  }
  lock.end();
  return { compared: lock.compared, tail: lock.tail(lastEvent), peakQueued: lock.peakQueued };
}

/** What comparing the recorded stream with the nested re-run found. */
export interface NestedComparison {
  /** Divergences by recorded event index (events without any are absent). */
  readonly divergences: Map<number, readonly Divergence[]>;
  /** The streams went out of step at an event (different kinds, or the trace goes on after the re-run ended). */
  readonly desync?: Divergence;
  /** The trace ends where the re-run goes on: reported at the end (event = the trace's last). */
  readonly endDesync?: Divergence;
  /** Recorded events, when the comparison reached the trace's end (no mid-stream desync). */
  readonly recordedEvents: number;
  /** L1-visible events of the whole re-run (the reference run needs to go no further). */
  readonly l1Visible: number;
}

/**
 * Re-runs `s` on the nested machine (the recorder, cut at `maxEvents` like the recording) and compares each event it
 * produces with the next recorded one, pulled from `recorded`.
 */
export function compareWithNested(s: Scenario, maxEvents: number | undefined, recorded: Iterator<TraceEvent>, cmp: ModelEventComparator): NestedComparison {
  const divergences = new Map<number, readonly Divergence[]>();
  let index = 0;
  let l1Visible = 0;
  let desync: Divergence | undefined;
  let endDesync: Divergence | undefined;
  recordScenarioTo(s, (x) => {
    if (isL1VisibleEvent(x)) l1Visible++;
    if (desync || endDesync) return;
    const r = recorded.next();
    if (r.done) {
      const last = Math.max(index - 1, 0);
      endDesync = cmp.desync(last, x, undefined, `the trace ends after event ${last} where the re-run of its scenario goes on with ${describeEvent(x)}`);
      return;
    }
    const c = cmp.compare(index, x, r.value);
    if (c.desync) desync = c.desync;
    else if (c.divergences.length > 0) divergences.set(index, c.divergences);
    index++;
  }, maxEvents !== undefined ? { maxEvents } : {});
  if (!desync && !endDesync) {
    const r = recorded.next();
    if (!r.done) {
      desync = cmp.desync(index, undefined, r.value, `the trace goes on with ${describeEvent(r.value)} at event ${index} after the re-run of its scenario ended; later events are not compared`);
    }
  }
  return {
    divergences, l1Visible, recordedEvents: desync ? Infinity : index,
    ...(desync ? { desync } : {}), ...(endDesync ? { endDesync } : {}),
  };
}

/** The L1-visible events of `events` before event `bound`, with their indices. */
export function* indexedL1Events(events: Iterable<TraceEvent>, bound = Infinity): Generator<IndexedL1Event> {
  let index = 0;
  for (const e of events) {
    if (index >= bound) return;
    if (isL1Visible(e)) yield { index, e };
    index++;
  }
}
