// The differential runner: one L1 program with the same L2 inputs on the reference machine (L1 on the model VMX CPU) and
// the nested machine (L1 on L0), observations compared step by step, nested-run invariants checked while it runs, and
// each divergence a declared profile deviation causes attributed to it by a re-run with the deviation switched off.
// Must not: read clocks, files or the environment. Reference: DESIGN.md §3, nested-vmx.md §9.1, §9.3.
import type { L1Gpa } from '../cpu/address.js';
import type { CpuModel } from '../cpu/cpu-model.js';
import type { PlatformConfig } from '../cpu/interp/platform.js';
import type { L1Program } from '../cpu/l1/machine.js';
import type { Observation } from '../cpu/l1/observation.js';
import { ObservationLog } from '../cpu/l1/observe.js';
import { ReferenceMachine, type MachineRunResult } from '../cpu/machine/reference-machine.js';
import type { ScheduledEvent } from '../cpu/machine/run-guest.js';
import { PhysicalMemory } from '../cpu/memory.js';
import type { CpuState } from '../cpu/state.js';
import { defaultL0Parts, type L0Parts } from '../nested/l0/parts.js';
import { NestedMachine, type NestedMachineOptions } from '../nested/machine/nested-machine.js';
import type { KvmDeviationId, L0Profile } from '../nested/profile.js';
import { compareObservationStreams, exitReasonName } from './compare.js';
import { asExpectedDeviation, deviationCandidates, sameDivergence } from './deviations.js';
import { collector, type Divergence } from './divergence.js';
import { ALL_INVARIANTS, NestedMonitor, type InvariantFamily, type InvariantStats } from './nested-monitor.js';
import { checkerRule } from './rules.js';

/** The L2 inputs and starting state both machines get. */
export interface CheckInputs {
  /** External events at L2 steps (interrupts, NMIs, timer). */
  readonly schedule?: readonly ScheduledEvent[];
  /** What L2's non-exiting CPUID / RDMSR / I/O / RDRAND see. */
  readonly platform?: PlatformConfig;
  /** Initial L1-physical memory (not modified: each machine gets a copy). */
  readonly memory?: PhysicalMemory<L1Gpa>;
  /** L1's state at the start (default: the machines' default L1 state). */
  readonly l1State?: CpuState;
  /** L2 steps per VM entry before a run stops (default: the machines' default). */
  readonly l2StepBudget?: number;
}

export interface CheckOptions {
  /** The CPU model L1 sees on both machines (what L0 advertises; the reference is a CPU with exactly those capabilities). */
  readonly cpu: CpuModel;
  /** L0's hardware (default: the nested machine's default host model). */
  readonly host?: CpuModel;
  readonly profile: L0Profile;
  /** 'first': at most one divergence (the earliest unexplained one, else the earliest explained one). */
  readonly mode: 'all' | 'first';
  /** The L0 under test (default defaultL0Parts(profile)); a wrong L0 substitutes members. */
  readonly parts?: L0Parts;
  /** Invariant families to check on the nested run (default all). */
  readonly invariants?: readonly InvariantFamily[];
  /** Divergences a declared deviation explains: reported as kind 'expected-deviation' (default) or left out. */
  readonly expectedDeviations?: 'report' | 'omit';
  /** Further nested-machine settings. */
  readonly nested?: Pick<NestedMachineOptions, 'ept01Policy' | 'shadowVmcs' | 'msrFilter'>;
}

export interface CheckStats {
  readonly reference: MachineRunResult;
  /** The nested run's result, or null when the nested machine stopped with an internal error. */
  readonly nested: MachineRunResult | null;
  readonly observations: { readonly reference: number; readonly nested: number };
  /** The reference run's exits to L1 by exit reason (name, "(VM-entry failure)" marked) and VMX instructions by outcome. */
  readonly referenceExits: Readonly<Record<string, number>>;
  readonly referenceInstructions: Readonly<Record<string, number>>;
  readonly invariants: InvariantStats;
  /** Nested re-runs made to attribute divergences to deviations. */
  readonly counterfactualRuns: number;
  readonly expectedDeviations: number;
  readonly unexplained: number;
}

export interface CheckResult {
  readonly divergences: readonly Divergence[];
  readonly stats: CheckStats;
}

interface NestedRun {
  readonly observations: readonly Observation[];
  readonly invariants: readonly Divergence[];
  readonly stats: InvariantStats;
  readonly result: MachineRunResult | null;
  readonly error: string | undefined;
}

function copyMemory(m: PhysicalMemory<L1Gpa> | undefined): PhysicalMemory<L1Gpa> | undefined {
  if (!m) return undefined;
  const c = new PhysicalMemory<L1Gpa>({ space: 'L1Gpa', maxPages: m.maxPages });
  for (const p of m.pageNumbers()) {
    const a = (p << 12n) as L1Gpa;
    c.write(a, m.read(a, 4096));
  }
  return c;
}

function runReference(program: L1Program, inputs: CheckInputs, opts: CheckOptions): { observations: readonly Observation[]; result: MachineRunResult } {
  const log = new ObservationLog();
  const memory = copyMemory(inputs.memory);
  const machine = new ReferenceMachine({
    cpu: opts.cpu, sink: log, ...(memory ? { memory } : {}), ...(inputs.l1State ? { l1State: inputs.l1State } : {}),
    ...(inputs.schedule ? { schedule: inputs.schedule } : {}), ...(inputs.platform ? { platform: inputs.platform } : {}),
    ...(inputs.l2StepBudget !== undefined ? { l2StepBudget: inputs.l2StepBudget } : {}),
  });
  return { observations: log.items, result: machine.run(program) };
}

function runNestedChecked(program: L1Program, inputs: CheckInputs, opts: CheckOptions, profile: L0Profile): NestedRun {
  const monitor = new NestedMonitor(new Set(opts.invariants ?? ALL_INVARIANTS));
  const log = new ObservationLog();
  const machine = new NestedMachine({
    cpu: opts.cpu, profile, parts: monitor.wrap(opts.parts ?? defaultL0Parts(profile)), sink: monitor.observer(log), records: monitor,
    ...(opts.host ? { host: opts.host } : {}), ...(inputs.memory ? { memory: inputs.memory } : {}),
    ...(inputs.l1State ? { l1State: inputs.l1State } : {}), ...(inputs.schedule ? { schedule: inputs.schedule } : {}),
    ...(inputs.platform ? { platform: inputs.platform } : {}), ...(inputs.l2StepBudget !== undefined ? { l2StepBudget: inputs.l2StepBudget } : {}),
    ...(opts.nested ?? {}),
  });
  monitor.machine = machine;
  let result: MachineRunResult | null = null;
  let error: string | undefined;
  try {
    result = machine.run(program);
  } catch (e) {
    // A wrong L0 can break the nested machine's own assumptions; that is a finding about the L0, not a checker crash.
    error = e instanceof Error ? e.message : String(e);
  }
  monitor.finish();
  return { observations: log.items, invariants: monitor.divergences, stats: monitor.stats, result, error };
}

/** Observation and invariant divergences of one nested run against the reference observations, by event. */
function divergencesOf(reference: readonly Observation[], n: NestedRun): Divergence[] {
  const observed = compareObservationStreams(reference, n.observations, collector('all'));
  const out: Divergence[] = [...n.invariants];
  if (n.error !== undefined) {
    const last = n.observations[n.observations.length - 1];
    out.push({
      kind: 'invariant', rule: 'oracle.nested-error', sdm: checkerRule('oracle.nested-error').sdm, event: last ? last.step : 0, level: 'L0',
      expected: 'the nested run continues', actual: n.error, explanation: `the nested machine stopped with an internal error: ${n.error}`,
    });
  }
  out.push(...observed);
  // Stable by event: within an event, invariants (causes) come before the observations they explain.
  return out.map((d, i) => ({ d, i })).sort((a, b) => a.d.event - b.d.event || a.i - b.i).map((x) => x.d);
}

function without(profile: L0Profile, ids: readonly string[]): L0Profile {
  return { name: profile.name, deviations: new Set([...profile.deviations].filter((d) => !ids.includes(d))) };
}

/**
 * Attribute divergences to the profile's deviations. The deviations the map names for any divergence are switched off
 * together and the nested run repeated (`rerun`): a divergence that disappears was caused by them — including one the
 * map does not name, which is then a consequence (L1 took another path). It is labelled with the single deviation
 * whose removal alone makes it disappear, else with the candidates joined by '+'. One that persists stays unexplained.
 */
export function attribute(
  divergences: readonly Divergence[], profile: L0Profile, rerun: (withoutIds: readonly string[]) => readonly Divergence[],
): { divergences: Divergence[]; runs: number } {
  const named = new Map<Divergence, KvmDeviationId[]>();
  for (const d of divergences) named.set(d, deviationCandidates(profile, d));
  const all = [...new Set([...named.values()].flat())];
  if (all.length === 0) return { divergences: [...divergences], runs: 0 };
  const cache = new Map<string, readonly Divergence[]>();
  const run = (ids: readonly string[]): readonly Divergence[] => {
    const key = [...ids].sort().join(',');
    let r = cache.get(key);
    if (!r) {
      r = rerun(ids);
      cache.set(key, r);
    }
    return r;
  };
  const allOff = run(all);
  const out = divergences.map((d) => {
    if (allOff.some((x) => sameDivergence(x, d))) return d;
    const own = named.get(d) ?? [];
    const order = [...own, ...all.filter((id) => !own.includes(id))];
    const single = all.length === 1 ? all[0] : order.find((id) => !run([id]).some((x) => sameDivergence(x, d)));
    return asExpectedDeviation(d, single ?? all.join('+'));
  });
  return { divergences: out, runs: cache.size };
}

/**
 * Run `program` on the reference and the nested machine with the same inputs and compare: observation divergences
 * (oracle.*), nested-run invariant divergences (merge.*, ept02.*, reflect.*, vpid.*), and — for a profile with
 * deviations — each divergence a declared deviation causes re-labelled 'expected-deviation' with its id.
 */
export function checkProgram(program: L1Program, inputs: CheckInputs, opts: CheckOptions): CheckResult {
  const ref = runReference(program, inputs, opts);
  const nested = runNestedChecked(program, inputs, opts, opts.profile);
  let divergences = divergencesOf(ref.observations, nested);
  let counterfactualRuns = 0;

  if (opts.profile.deviations.size > 0 && divergences.length > 0) {
    const result = attribute(divergences, opts.profile, (ids) => divergencesOf(ref.observations, runNestedChecked(program, inputs, opts, without(opts.profile, ids))));
    divergences = result.divergences;
    counterfactualRuns = result.runs;
  }

  const expected = divergences.filter((d) => d.kind === 'expected-deviation');
  const unexplained = divergences.filter((d) => d.kind !== 'expected-deviation');
  let reported = opts.expectedDeviations === 'omit' ? unexplained : divergences;
  if (opts.mode === 'first') reported = unexplained.length > 0 ? unexplained.slice(0, 1) : reported.slice(0, 1);
  const referenceExits: Record<string, number> = {};
  const referenceInstructions: Record<string, number> = {};
  for (const o of ref.observations) {
    if (o.kind === 'exit-to-l1') {
      const k = exitReasonName(o.exit.exitReason);
      referenceExits[k] = (referenceExits[k] ?? 0) + 1;
    } else if (o.kind === 'vmx-instruction') {
      const k = `${o.instruction}:${o.outcome}${o.error !== undefined ? `(${o.error})` : ''}`;
      referenceInstructions[k] = (referenceInstructions[k] ?? 0) + 1;
    }
  }
  return {
    divergences: reported,
    stats: {
      reference: ref.result, nested: nested.result,
      observations: { reference: ref.observations.length, nested: nested.observations.length },
      referenceExits, referenceInstructions,
      invariants: nested.stats, counterfactualRuns, expectedDeviations: expected.length, unexplained: unexplained.length,
    },
  };
}

/** The divergences no declared deviation explains (what makes a check fail). */
export function unexplainedDivergences(r: CheckResult): readonly Divergence[] {
  return r.divergences.filter((d) => d.kind !== 'expected-deviation');
}
