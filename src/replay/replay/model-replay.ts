// The 'model' check class for traces `turtles record` made: every event vs the nested re-run of the header's profile,
// what L1 does and sees vs the reference machine; kvm differences a declared deviation causes become 'expected-deviation'
// (src/checker/run.ts `attribute`); a stream desync is reported once and ends the comparison. The re-runs are compared
// in lockstep with the recorded stream (model-lockstep.ts), so memory does not grow with trace length; only findings do.
// Must not: read files or clocks, or mutate the trace.
import { attribute } from '../../checker/run.js';
import type { Divergence } from '../../checker/divergence.js';
import type { L0Profile } from '../../nested/profile.js';
import type { TraceEvent } from '../format/index.js';
import { scenarioProfile } from '../scenario/canonical.js';
import type { Scenario } from '../scenario/types.js';
import type { CheckSummary, ReplayCheck, ReplayCheckFactory, ReplayEnv } from './check.js';
import { ModelEventComparator } from './model-compare.js';
import { counterfactualL1Events, headerScenario, recordedEventLimit, scenarioDeviations, vmcs02ProvenanceAt } from './model-expect.js';
import {
  compareWithNested, compareWithReference, indexedL1Events, isL1Visible, type NestedComparison, type ReferenceDivergences,
} from './model-lockstep.js';

const key = (d: Divergence) => `${d.rule}\u0000${d.field ?? ''}`;

interface Pending {
  readonly nested: readonly Divergence[];
  readonly reference: readonly { readonly d: Divergence; readonly ordinal: number }[];
}

/**
 * Everything the comparison of one trace finds, by event index: the re-runs are compared with the recorded stream in
 * lockstep before replay walks the trace (model-lockstep.ts), so only divergences are kept, never the runs' events.
 */
interface Plan {
  readonly nested: NestedComparison;
  /** Reference divergences by recorded event index, with the ordinal attribution pairs them by. */
  readonly reference: Map<number, ReferenceDivergences>;
  readonly tail: readonly Divergence[];
  readonly peakQueued: number;
}

class ModelCheck implements ReplayCheck {
  readonly id = 'model' as const;
  readonly columnar = false;
  private readonly plan: Plan | undefined;
  private readonly profile: L0Profile | undefined;
  private readonly kvm: boolean;
  /** Set for a recording cut at an event limit: the reference run's remaining exits are not missing from it. */
  private readonly truncated: boolean;
  private readonly limit: number | undefined;
  private compared = 0;
  private l1Compared = 0;
  private desyncAt: number | undefined;
  private readonly buffered: Pending[] = [];

  constructor(private readonly env: ReplayEnv, private readonly scenario: Scenario | undefined) {
    if (!scenario) {
      this.kvm = false;
      this.truncated = false;
      this.limit = undefined;
      return;
    }
    const recorded = env.recorded;
    if (!recorded) throw new Error('turtles bug: model replay needs the recorded events (ReplayEnv.recorded)');
    const limit = recordedEventLimit(env.header);
    this.truncated = limit !== undefined;
    this.limit = limit;
    this.profile = scenarioProfile(scenario);
    this.kvm = scenario.l0.profile === 'kvm';
    const nestedCmp = new ModelEventComparator('nested', scenario.l0.profile, (event) => vmcs02ProvenanceAt(scenario, event));
    const nested = compareWithNested(scenario, limit, recorded()[Symbol.iterator](), nestedCmp);
    // The reference is compared up to where the nested comparison lost step, and needs to run only as far as the
    // re-run goes (a recording cut at an event limit stops early).
    const bound = nested.desync?.event ?? Infinity;
    const ref = compareWithReference(scenario, nested.l1Visible + 1, indexedL1Events(recorded(), bound),
      new ModelEventComparator('reference', scenario.l0.profile), Math.max(nested.recordedEvents - 1, 0));
    this.plan = { nested, reference: new Map(ref.compared.map((r) => [r.index, r])), tail: ref.tail, peakQueued: ref.peakQueued };
  }

  /** Most reference events queued at once while pairing (a structural memory bound; tests). */
  get peakQueued(): number {
    return this.plan?.peakQueued ?? 0;
  }

  onEvent(e: TraceEvent, index: number): void {
    const plan = this.plan;
    if (!plan || this.desyncAt !== undefined) return;
    this.compared++;
    const desync = plan.nested.desync;
    if (desync && desync.event === index) return this.stop(desync);
    const nested = plan.nested.divergences.get(index) ?? [];
    plan.nested.divergences.delete(index);
    const reference: { d: Divergence; ordinal: number }[] = [];
    if (isL1Visible(e)) {
      this.l1Compared++;
      const r = plan.reference.get(index);
      plan.reference.delete(index);
      if (r) for (const d of r.divergences) reference.push({ d, ordinal: r.ordinal });
    }
    if (nested.length === 0 && reference.length === 0) return;
    if (this.kvm) this.buffered.push({ nested, reference });
    else this.emitAll(merge(nested, reference.map((r) => r.d)));
  }

  private stop(d: Divergence): void {
    this.desyncAt = d.event;
    if (this.kvm) this.buffered.push({ nested: [d], reference: [] });
    else this.emitAll([d]);
  }

  private emitAll(ds: readonly Divergence[]): void {
    for (const d of ds) if (this.env.filter.selects(d.rule)) this.env.emit({ divergence: d });
  }

  finish(): void {
    const plan = this.plan;
    if (!plan) return;
    // What is missing at the end is decided only when replay went through the whole trace (not after --first/--event).
    if (this.desyncAt === undefined && this.compared >= plan.nested.recordedEvents) {
      if (plan.nested.endDesync) this.stop(plan.nested.endDesync);
      else {
        const tail = this.truncated ? [] : plan.tail;
        if (tail.length > 0) {
          if (this.kvm) this.buffered.push({ nested: [], reference: tail.map((d) => ({ d, ordinal: Number.MAX_SAFE_INTEGER })) });
          else this.emitAll(tail);
        }
      }
    }
    if (this.kvm) this.settleKvm();
  }

  /** kvm: attribute the reference differences to the profile's deviations, then emit unexplained before explained. */
  private settleKvm(): void {
    const refs = this.buffered.flatMap((p) => p.reference);
    const s = this.scenario!;
    const on = scenarioDeviations(s);
    const referenceLimit = this.plan!.nested.l1Visible + 1;
    const labelled = refs.length === 0 ? [] : attribute(refs.map((r) => ({ ...r.d, event: r.ordinal })), this.profile!, (ids) => {
      // The re-run without `ids` against the reference, in lockstep (the re-run's L1-visible events are kept encoded).
      const counterfactual = counterfactualL1Events(s, on.filter((d) => !ids.includes(d)), this.limit);
      const c = compareWithReference(s, referenceLimit, indexedL1Events(counterfactual), new ModelEventComparator('reference', 'kvm'), counterfactual.events);
      const out: Divergence[] = [];
      for (const r of c.compared) for (const d of r.divergences) out.push({ ...d, event: r.ordinal });
      for (const d of c.tail) out.push({ ...d, event: Number.MAX_SAFE_INTEGER });
      return out;
    }).divergences;
    const all: Divergence[] = [];
    let at = 0;
    for (const p of this.buffered) {
      const ref = p.reference.map((r) => ({ ...labelled[at++]!, event: r.d.event }));
      const nestedKeys = new Set(p.nested.map(key));
      // A difference from the reference is explained only if the kvm L0 itself produces the recorded value.
      all.push(...merge(p.nested, ref.filter((d) => d.kind !== 'expected-deviation' || !nestedKeys.has(key(d)))));
    }
    const byEvent = (a: Divergence, b: Divergence) => a.event - b.event;
    this.emitAll([...all.filter((d) => d.kind !== 'expected-deviation').sort(byEvent), ...all.filter((d) => d.kind === 'expected-deviation').sort(byEvent)]);
  }

  pending(): number {
    return Infinity;
  }

  summary(divergences: number): CheckSummary {
    const s = this.scenario;
    if (!s) return { id: 'model', applies: false, evaluated: 0, undecided: 0, divergences, note: 'no scenario in the trace header (not made by turtles record)' };
    const stopped = this.desyncAt !== undefined ? `; streams out of step at event ${this.desyncAt}, later events not compared` : '';
    return {
      id: 'model', applies: true, evaluated: this.compared, undecided: 0, divergences,
      note: `${this.compared} events compared with a re-run of scenario "${s.name}" on the ${s.l0.profile} L0, ${this.l1Compared} L1-visible ones with the reference machine${stopped}`,
    };
  }
}

/** Reference differences first (they carry the oracle's view); nested ones only when they add a rule/field. */
function merge(nested: readonly Divergence[], reference: readonly Divergence[]): Divergence[] {
  const seen = new Set(reference.map(key));
  return [...reference, ...nested.filter((d) => !seen.has(key(d)))];
}

/** The model check class: applies to traces whose header carries a scenario. */
export const modelChecks: ReplayCheckFactory = {
  id: 'model',
  create: (env) => new ModelCheck(env, headerScenario(env.header, env.file)),
};
