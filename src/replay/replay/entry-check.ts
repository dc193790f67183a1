// Check class 'vm-entry': the VM-entry checks on every VMCS state a trace lets us reconstruct (the last 'single'
// snapshot before each exit: IRIS's VMCS after the handler's VMWRITEs, an imported dump's VMCS), judged against the
// entry's recorded outcome. Must not: guess values (checks needing absent fields stay "not evaluated") or widen the
// CPU model beyond the controls an observed exit proves the processor accepted. SDM Vol. 3C 26.2–26.4, 26.7.
import { CpuModel, DEFAULT_CPU_MODEL, findCpuModel } from '../../cpu/cpu-model.js';
import { CONTROL_GROUPS } from '../../cpu/generated/controls.js';
import { Field } from '../../cpu/generated/vmcs-fields.js';
import { runEntryChecks, type EntryCheckFailure, type EntryCheckReport, type EntryEnvironment } from '../../cpu/vmentry/index.js';
import type { VmcsReader } from '../../cpu/vmcs.js';
import { impliedHostIa32e, widenForProvenControls } from '../import/vmcs-dump/facts.js';
import type { ExitColumns, TraceEvent, TraceEventKind, VmcsKind } from '../format/index.js';
import { LazySnapshotEvent, SnapshotSlots } from '../format/codec.js';
import type { CheckSummary, ExplainedFailure, ReplayCheck, ReplayCheckFactory, ReplayEnv } from './check.js';
import { traceRule } from './rules.js';

const hex = (v: bigint | number) => '0x' + v.toString(16);
/** ExitColumns.kind of a vm-exit row. */
const EXIT_ROW_VM = 0;

/**
 * A VmcsReader over a snapshot's fields, as a map or in slot form (a _HIGH encoding reads bits 63:32 of its full
 * field).
 */
export function snapshotReader(fields: Pick<ReadonlyMap<number, bigint>, 'get'> | SnapshotSlots): VmcsReader {
  return {
    read(encoding: number): bigint | undefined {
      const v = fields.get(encoding);
      if (v !== undefined) return v;
      if (encoding & 1) {
        const full = fields.get(encoding & ~1);
        return full === undefined ? undefined : full >> 32n;
      }
      return undefined;
    },
  };
}

/** The state a snapshot event holds, in slot form (the columnar replay's events carry it; others are converted). */
function slotsOf(e: TraceEvent & { kind: 'vmcs-snapshot' }): SnapshotSlots {
  if (e instanceof LazySnapshotEvent) return e.slots;
  const keys = [...e.fields.keys()].sort((a, b) => a - b);
  return new SnapshotSlots(keys, keys.map((k) => e.fields.get(k)!));
}

/** Fields widenForProvenControls reads: the cache key of a widened model. */
const WIDEN_INPUTS: readonly number[] = [
  ...CONTROL_GROUPS.map((g) => Field[g.field as keyof typeof Field]),
  Field.VM_FUNCTION_CONTROL, Field.HOST_CR0, Field.HOST_CR4, Field.GUEST_CR4, Field.IO_BITMAP_A, Field.IO_BITMAP_B, Field.MSR_BITMAP,
  Field.VIRTUAL_APIC_PAGE_ADDR, Field.APIC_ACCESS_ADDR, Field.EPT_POINTER, Field.PML_ADDRESS, Field.VMREAD_BITMAP, Field.VMWRITE_BITMAP,
  Field.POSTED_INTR_DESC_ADDR,
];

/** The proof text handed to impliedHostIa32e, whose explanation this check does not use. */
const PROVEN = 'the recorded exit shows the processor accepted the controls';

/** Entry-check reports remembered at most (about 1 KB each); the cache starts over when full. */
const MAX_REMEMBERED_REPORTS = 8192;

interface RememberedReport {
  /** States are never mutated once decoded (codec.ts), so holding the slots holds the content. */
  readonly fields: SnapshotSlots;
  readonly cpu: CpuModel;
  /** hostIa32e: 0 false, 1 true, 2 unknown. */
  readonly host: number;
  readonly report: EntryCheckReport;
}

/**
 * A 32-bit hash of a state's fields and the host mode. Values go through Number(), which rounds 64-bit values: fine
 * for a hash (it only picks the bucket; sameFields decides equality exactly) and it allocates no bigint.
 */
function stateHash(fields: SnapshotSlots, host: number): number {
  let h = Math.imul(0x811c9dc5 ^ host, 0x01000193);
  const keys = fields.encodings;
  const values = fields.values;
  for (let i = 0; i < keys.length; i++) {
    const n = Number(values[i]!);
    h = Math.imul(h ^ keys[i]!, 0x01000193);
    h = Math.imul(h ^ (n | 0), 0x01000193);
    h = Math.imul(h ^ ((n / 4294967296) | 0), 0x01000193);
  }
  return h;
}

type Outcome =
  | { readonly kind: 'success'; readonly exit: number; readonly reason: number }
  | { readonly kind: 'failure'; readonly exit: number; readonly reason: number; readonly qualification?: bigint }
  | { readonly kind: 'unknown' };

interface State {
  readonly index: number;
  readonly line: number | undefined;
  readonly fields: SnapshotSlots;
}

class EntryStateCheck implements ReplayCheck {
  readonly id = 'vm-entry' as const;
  readonly columnar = false;
  readonly columnarKinds: readonly TraceEventKind[] = ['vmcs-snapshot'];
  readonly columnarSnapshotKinds: readonly VmcsKind[] = ['single'];
  private state: State | undefined;
  /** The first snapshot after the last exit: the VMCS as that exit left it, i.e. the controls its entry used. */
  private afterExit: SnapshotSlots | undefined;
  private lastExit: { readonly index: number; readonly reason: number | undefined } | undefined;
  private readonly base: CpuModel;
  private readonly baseNote: string;
  private readonly widened = new Map<string, CpuModel>();
  private readonly proofValues: (bigint | undefined)[] = WIDEN_INPUTS.map(() => undefined);
  private lastModel: CpuModel | undefined;
  private lastEntered = false;
  private states = 0;
  private unexplained = 0;
  private decided = 0;
  private notEvaluated = 0;
  private readonly explained: ExplainedFailure[] = [];
  /** Entry-check reports by a hash of the state's content (see entryReport); equal content is compared in full. */
  private readonly reports = new Map<number, RememberedReport[]>();
  private reportCount = 0;

  constructor(private readonly env: ReplayEnv) {
    const named = env.header.cpu ? findCpuModel(env.header.cpu.id) : undefined;
    this.base = env.cpu ?? named ?? findCpuModel(DEFAULT_CPU_MODEL)!;
    this.baseNote = env.cpu ? `CPU ${this.base.id} (--cpu)` : named ? `CPU ${named.id} (trace header)`
      : `CPU ${this.base.id} widened to the controls each recorded exit proves were accepted`;
  }

  onEvent(e: TraceEvent, index: number): void {
    if (e.kind === 'vmcs-snapshot') {
      if (e.which !== 'single') return;
      const fields = slotsOf(e);
      if (!this.state) this.afterExit = fields;
      this.state = { index, line: e.line, fields };
    } else if (e.kind === 'vm-exit') {
      this.exited(index, e.reason, e.qualification);
    }
  }

  onExitRow(c: ExitColumns, r: number, index: number): void {
    if (c.kind[r] !== EXIT_ROW_VM) return;
    const u = c.unknown[r]!;
    const reason = (u & 1) === 0 ? c.reason[r]! : undefined;
    // The qualification matters only to a failure outcome: build the bigint only then.
    const failed = reason !== undefined && (reason & 0x8000_0000) !== 0 && (u & 2) === 0;
    this.exited(index, reason, failed ? (BigInt(c.qualHi[r]!) << 32n) | BigInt(c.qualLo[r]!) : undefined);
  }

  private exited(index: number, reason: number | undefined, qualification: bigint | undefined): void {
    if (this.state) this.evaluate(this.state, outcomeOf(index, reason, qualification));
    this.state = undefined;
    this.afterExit = undefined;
    this.lastExit = { index, reason };
  }

  finish(): void {
    if (!this.state) return;
    const prev = this.lastExit;
    // A state after a failed entry with no exit after it is the state that failed (a dump of an invalid VMCS).
    if (prev?.reason !== undefined && (prev.reason & 0x8000_0000) !== 0) this.evaluate(this.state, { kind: 'failure', exit: prev.index, reason: prev.reason });
    else this.evaluate(this.state, { kind: 'unknown' });
    this.state = undefined;
  }

  pending(): number {
    return this.state ? this.state.index : Infinity;
  }

  /** The model widened to what `proof` shows was accepted; guest CR4 counts only when the guest was entered. */
  private cpuFor(proof: VmcsReader | undefined, why: (() => string) | undefined, guestEntered: boolean): CpuModel {
    if (this.env.cpu || this.env.header.cpu || !proof) return this.base;
    // Consecutive states usually prove the same controls: compare with the last proof before building a cache key.
    const values = this.proofValues;
    let same = this.lastModel !== undefined && this.lastEntered === guestEntered;
    for (let i = 0; i < WIDEN_INPUTS.length; i++) {
      const v = proof.read(WIDEN_INPUTS[i]!);
      if (v !== values[i]) {
        same = false;
        values[i] = v;
      }
    }
    if (same) return this.lastModel!;
    const key = (guestEntered ? 'g' : 'f') + values.map((v) => v?.toString(16) ?? '-').join(',');
    let m = this.widened.get(key);
    if (!m) {
      const w = widenForProvenControls(this.base.data, proof, why?.() ?? '', guestEntered);
      m = w.changes.length ? new CpuModel(w.data) : this.base;
      this.widened.set(key, m);
    }
    this.lastModel = m;
    this.lastEntered = guestEntered;
    return m;
  }

  private evaluate(s: State, outcome: Outcome): void {
    this.states++;
    const vmcs = snapshotReader(s.fields);
    let proof: VmcsReader | undefined;
    // The text naming the proof is built only if a widened model has to be built (cpuFor): most states reuse one.
    let proven: (() => string) | undefined;
    let guestEntered = false;
    if (outcome.kind === 'success' || (outcome.kind === 'failure' && isCheckedFailure(outcome.reason))) {
      proof = vmcs;
      guestEntered = outcome.kind === 'success';
      const o = outcome;
      proven = () => `the exit at event ${o.exit} (reason ${hex(o.reason)}) shows the processor accepted this VMCS's controls`;
    } else if (outcome.kind === 'unknown' && this.lastExit?.reason !== undefined && this.afterExit &&
      ((this.lastExit.reason & 0x8000_0000) === 0 || isCheckedFailure(this.lastExit.reason))) {
      proof = snapshotReader(this.afterExit);
      guestEntered = (this.lastExit.reason & 0x8000_0000) === 0;
      const index = this.lastExit.index;
      proven = () => `the exit at event ${index} shows the processor accepted the controls of the entry before it`;
    }
    const cpu = this.cpuFor(proof, proven, guestEntered);
    const env: EntryEnvironment = { cpu };
    // Only host.value is used here, and it depends on whether the controls are proven, not on the proof's text.
    const host = impliedHostIa32e(vmcs, proven !== undefined ? PROVEN : undefined);
    if (host.value !== undefined) env.hostIa32e = host.value;
    const report = this.entryReport(s.fields, vmcs, env);
    this.decided += report.evaluatedCount;
    this.notEvaluated += report.notEvaluated.length;
    this.report(s, outcome, report, cpu);
  }

  /**
   * runEntryChecks(vmcs, env, 'all'), remembered by the state's content: the checks are a pure function of the fields
   * and the environment (CPU model, host mode), and a trace's states repeat (a guest looping over the same exits).
   */
  private entryReport(fields: SnapshotSlots, vmcs: VmcsReader, env: EntryEnvironment): EntryCheckReport {
    const host = env.hostIa32e === undefined ? 2 : env.hostIa32e ? 1 : 0;
    const hash = stateHash(fields, host);
    let bucket = this.reports.get(hash);
    if (bucket !== undefined) {
      for (const r of bucket) if (r.cpu === env.cpu && r.host === host && r.fields.equals(fields)) return r.report;
    }
    const report = runEntryChecks(vmcs, env, 'all');
    // Bounded: a trace whose states never repeat gains nothing from the cache and must not grow it without end.
    if (this.reportCount >= MAX_REMEMBERED_REPORTS) {
      this.reports.clear();
      this.reportCount = 0;
      bucket = undefined;
    }
    if (bucket === undefined) this.reports.set(hash, (bucket = []));
    bucket.push({ fields, cpu: env.cpu, host, report });
    this.reportCount++;
    return report;
  }

  private report(s: State, outcome: Outcome, report: EntryCheckReport, cpu: CpuModel): void {
    // Most states pass every check and their entry did not fail: nothing to report, nothing to build.
    if (outcome.kind !== 'failure' && report.failures.length === 0) return;
    const { filter, emit } = this.env;
    const line = s.line !== undefined ? { line: s.line } : {};
    const failures = report.failures.filter((f) => filter.selects(f.id));
    if (outcome.kind === 'failure') {
      // The recorded entry failed: failing checks explain it (agreement, not a divergence) unless they disagree on how.
      if (failures.length) {
        this.explained.push({
          state: s.index, exit: outcome.exit, reason: hex(outcome.reason),
          checks: failures.map((f) => ({ id: f.id, sdm: f.sdm, class: f.class, detail: f.detail })),
        });
      }
      if (!filter.selects('trace.entry.outcome') || !isCheckedFailure(outcome.reason)) return;
      const basic = outcome.reason & 0xffff;
      const first = report.failures[0];
      const rule = traceRule('trace.entry.outcome');
      const d = (expected: string, actual: string, explanation: string) => emit({
        divergence: { kind: 'recorded', rule: rule.id, sdm: rule.sdm, event: s.index, level: 'L2', field: 'VM_EXIT_REASON', expected, actual, explanation },
        ...line,
      });
      if (!first) {
        if (report.notEvaluated.length > 0) this.unexplained++;
        else d(`a failing check (the trace records exit ${hex(outcome.reason)} at event ${outcome.exit})`, 'every VM-entry check passes', 'the recorded VM-entry failure is not explained by any check turtles knows, and every check could be decided');
        return;
      }
      const classBasic = first.class === 'exit-33' ? 33 : first.class === 'exit-34' ? 34 : undefined;
      if (classBasic !== basic) {
        d(`the first failing check ends the entry with exit reason ${basic}, as recorded at event ${outcome.exit}`, `${first.id}: ${first.class}`,
          classBasic === undefined ? `the model fails the entry earlier, with VMfailValid (${first.class}), where the processor reported exit reason ${basic}` : `the model's first failure gives exit reason ${classBasic}, the trace records ${basic}`);
      }
      return;
    }
    const expected = outcome.kind === 'success' ? `the check passes: the entry succeeded (exit at event ${outcome.exit})` : 'the check passes (the trace does not show this entry\'s outcome)';
    for (const f of failures) {
      const why = outcome.kind === 'success' ? `the recorded entry succeeded, but ${f.id} fails on ${cpu.id}: a turtles bug, or this processor differs from the model`
        : `an entry with this VMCS would fail (${f.class}); the trace does not record whether one was attempted`;
      emit({
        divergence: { kind: 'recorded', rule: f.id, sdm: f.sdm, event: s.index, level: 'L2', ...fieldOf(f), expected, actual: f.detail, explanation: why },
        ...line,
      });
    }
  }

  summary(divergences: number): CheckSummary {
    const avg = (n: number) => (this.states ? (n / this.states).toFixed(1) : '0');
    return {
      id: this.id, applies: this.states > 0, evaluated: this.states, undecided: this.unexplained, divergences,
      note: this.states === 0 ? 'the trace holds no VMCS state (no "single" snapshots)'
        : `${this.states} VMCS states; ${avg(this.decided)} checks decided per state on average, ${avg(this.notEvaluated)} need fields the trace does not record; ${this.baseNote}` +
          this.explained.map((x) => `; the recorded VM-entry failure at event ${x.exit} (exit ${x.reason}) is explained by ${x.checks.map((c) => c.id).join(', ')}`).join(''),
      ...(this.explained.length ? { explained: this.explained } : {}),
    };
  }
}

/** The field a failure is about: the first of its fields its detail names, else its first field. */
function fieldOf(f: EntryCheckFailure): { field?: string } {
  const named = f.fields.find((x) => f.detail.includes(x.name)) ?? f.fields[0];
  return named ? { field: named.name } : {};
}

function isCheckedFailure(reason: number): boolean {
  const basic = reason & 0xffff;
  return (reason & 0x8000_0000) !== 0 && (basic === 33 || basic === 34);
}

function outcomeOf(index: number, reason: number | undefined, qualification: bigint | undefined): Outcome {
  if (reason === undefined) return { kind: 'unknown' };
  if ((reason & 0x8000_0000) !== 0) return { kind: 'failure', exit: index, reason, ...(qualification !== undefined ? { qualification } : {}) };
  return { kind: 'success', exit: index, reason };
}

export const entryChecks: ReplayCheckFactory = { id: 'vm-entry', create: (env) => new EntryStateCheck(env) };
