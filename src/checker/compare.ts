// Step-by-step comparison of two observation streams (reference = expected, nested or recorded = actual), class by class
// (O1–O6): one Divergence per differing field, with a stable oracle.* rule id. Masks only what reference §9.1 calls
// unobservable: exit-information fields undefined for the exit, undefined parts of unusable segments, and L1-state
// parts the caller reports undefined (src/nested/sync UndefinedPart). Must not: run machines or classify deviations.
import { EXIT_REASONS } from '../cpu/generated/exit-reasons.js';
import { Field } from '../cpu/generated/vmcs-fields.js';
import { fieldDef } from '../cpu/vmcs.js';
import { VMX_RESULT_FLAGS } from '../cpu/vmx/outcome.js';
import type { ExitInformation, Observation, ObservationKind } from '../cpu/l1/observation.js';
import { collector, hexValue, type Divergence, type DivergenceCollector, type Level } from './divergence.js';
import { exitFieldDefined, type ExitInfoField } from './exit-definedness.js';
import { checkerRule } from './rules.js';

type Of<K extends ObservationKind> = Extract<Observation, { kind: K }>;

export interface CompareOptions {
  /** L1-state detail keys the SDM leaves undefined after this observation (e.g. "SS.base" for a null host selector). */
  readonly l1StateUndefined?: (o: Of<'l1-state'>) => Iterable<string>;
  /** Kind of the divergences: 'observation' (reference vs nested run, default) or 'recorded' (a trace vs its replay). */
  readonly kind?: 'observation' | 'recorded';
}

const CLASS_OF: Record<ObservationKind, 'O1' | 'O2' | 'O3' | 'O4' | 'O5' | 'O6'> = {
  'vmx-instruction': 'O1', 'exit-to-l1': 'O2', 'l1-state': 'O3', 'l2-state': 'O4', 'l1-memory': 'O5', shutdown: 'O6',
};

/** Exit-information fields in the order L1 would VMREAD them, with their VMCS names and rule ids. */
const EXIT_FIELDS: readonly { key: ExitInfoField; field: string; rule: string }[] = [
  { key: 'qualification', field: 'EXIT_QUALIFICATION', rule: 'oracle.o2.qualification' },
  { key: 'guestLinearAddress', field: 'GUEST_LINEAR_ADDRESS', rule: 'oracle.o2.guest-linear-address' },
  { key: 'guestPhysicalAddress', field: 'GUEST_PHYSICAL_ADDRESS', rule: 'oracle.o2.guest-physical-address' },
  { key: 'interruptionInfo', field: 'VM_EXIT_INTR_INFO', rule: 'oracle.o2.interruption-info' },
  { key: 'interruptionErrorCode', field: 'VM_EXIT_INTR_ERROR_CODE', rule: 'oracle.o2.interruption-error-code' },
  { key: 'idtVectoringInfo', field: 'IDT_VECTORING_INFO_FIELD', rule: 'oracle.o2.idt-vectoring-info' },
  { key: 'idtVectoringErrorCode', field: 'IDT_VECTORING_ERROR_CODE', rule: 'oracle.o2.idt-vectoring-error-code' },
  { key: 'instructionLength', field: 'VM_EXIT_INSTRUCTION_LEN', rule: 'oracle.o2.instruction-length' },
  { key: 'instructionInfo', field: 'VMX_INSTRUCTION_INFO', rule: 'oracle.o2.instruction-info' },
];

const AR_UNUSABLE = 1n << 16n;
/** SS keeps its DPL (= CPL) when unusable; every other access-rights bit of an unusable segment is undefined (SDM 27.3.2). */
const SEGMENT_AR: readonly { ar: number; keep: bigint }[] = [
  { ar: Field.GUEST_ES_AR_BYTES, keep: AR_UNUSABLE }, { ar: Field.GUEST_CS_AR_BYTES, keep: AR_UNUSABLE },
  { ar: Field.GUEST_SS_AR_BYTES, keep: AR_UNUSABLE | 0x60n }, { ar: Field.GUEST_DS_AR_BYTES, keep: AR_UNUSABLE },
  { ar: Field.GUEST_FS_AR_BYTES, keep: AR_UNUSABLE }, { ar: Field.GUEST_GS_AR_BYTES, keep: AR_UNUSABLE },
  { ar: Field.GUEST_LDTR_AR_BYTES, keep: AR_UNUSABLE }, { ar: Field.GUEST_TR_AR_BYTES, keep: AR_UNUSABLE },
];

export function exitReasonName(reason: number): string {
  const basic = reason & 0xffff;
  const name = EXIT_REASONS.find((r) => r.reason === basic)?.name ?? `reason ${basic}`;
  return (reason & 0x8000_0000) !== 0 ? `${name} (VM-entry failure)` : name;
}

/** One line naming an observation, for sequence divergences. */
export function describeObservation(o: Observation): string {
  switch (o.kind) {
    case 'vmx-instruction': return `${o.instruction} → ${o.outcome}${o.error !== undefined ? ` ${o.error}` : ''}`;
    case 'exit-to-l1': return `exit to L1: ${exitReasonName(o.exit.exitReason)}`;
    case 'l1-state': return 'L1 state';
    case 'l2-state': return 'L2 state';
    case 'l1-memory': return 'L1 memory';
    case 'shutdown': return `shutdown (${o.why})`;
  }
}

/**
 * Compares observations as they arrive from the two runs, in order. After the streams fall out of step (different kinds
 * of observation, different L1 step or different VMX instruction at the same position) nothing further can be paired,
 * so the comparator reports that once and stops.
 */
export class ObservationComparator {
  private readonly reference: Observation[] = [];
  private readonly actual: Observation[] = [];
  private index = 0;
  private desynced = false;
  /** The previous l1-memory pair already differed: a digest difference alone is then not news. */
  private memoryDiffers = false;

  constructor(private readonly out: DivergenceCollector, private readonly opts: CompareOptions = {}) {}

  /** True once the streams are out of step (later observations are not compared). */
  get outOfStep(): boolean {
    return this.desynced;
  }

  pushReference(o: Observation): void {
    this.reference.push(o);
    this.drain();
  }

  pushActual(o: Observation): void {
    this.actual.push(o);
    this.drain();
  }

  /** Both runs ended: an observation left over on one side is a sequence divergence. */
  finish(): void {
    this.drain();
    if (this.desynced || this.out.stopped) return;
    const extraRef = this.reference[0];
    const extraAct = this.actual[0];
    if (extraRef === undefined && extraAct === undefined) return;
    const o = (extraRef ?? extraAct)!;
    this.emit('oracle.sequence.length', o, CLASS_OF[o.kind], {
      expected: extraRef ? describeObservation(extraRef) : 'end of run',
      actual: extraAct ? describeObservation(extraAct) : 'end of run',
      explanation: extraRef
        ? `the nested run ended after ${this.index} observations; the reference goes on with ${describeObservation(extraRef)}`
        : `the nested run goes on with ${describeObservation(extraAct!)} after the reference ended (${this.index} observations)`,
    });
    this.desynced = true;
  }

  private drain(): void {
    while (this.reference.length > 0 && this.actual.length > 0 && !this.desynced && !this.out.stopped) {
      const e = this.reference.shift()!;
      const a = this.actual.shift()!;
      this.comparePair(e, a);
      this.index++;
    }
    if (this.desynced || this.out.stopped) {
      this.reference.length = 0;
      this.actual.length = 0;
    }
  }

  private comparePair(e: Observation, a: Observation): void {
    if (e.kind !== a.kind) {
      this.emit('oracle.sequence.kind', e, CLASS_OF[e.kind], {
        expected: describeObservation(e), actual: describeObservation(a),
        explanation: `at observation ${this.index} the reference has ${describeObservation(e)} but the nested run has ${describeObservation(a)}`,
      });
      this.desynced = true;
      return;
    }
    if (e.step !== a.step) {
      this.emit('oracle.sequence.step', e, CLASS_OF[e.kind], {
        expected: String(e.step), actual: String(a.step),
        explanation: `${describeObservation(e)} happens at L1 step ${e.step} in the reference but at step ${a.step} in the nested run`,
      });
      this.desynced = true;
      return;
    }
    switch (e.kind) {
      case 'vmx-instruction': return this.o1(e, a as Of<'vmx-instruction'>);
      case 'exit-to-l1': return this.o2(e, a as Of<'exit-to-l1'>);
      case 'l1-state': return this.o3(e, a as Of<'l1-state'>);
      case 'l2-state': return this.o4(e, a as Of<'l2-state'>);
      case 'l1-memory': return this.o5(e, a as Of<'l1-memory'>);
      case 'shutdown': return this.o6(e, a as Of<'shutdown'>);
    }
  }

  private o1(e: Of<'vmx-instruction'>, a: Of<'vmx-instruction'>): void {
    const ops = (o: Of<'vmx-instruction'>): string => `${o.instruction}(${o.operands.map((x) => hexValue(x)).join(', ')})`;
    if (!sameOperands(e, a) && ops(e) !== ops(a)) {
      this.emit('oracle.o1.instruction', e, 'O1', {
        expected: ops(e), actual: ops(a),
        explanation: `L1 executed ${ops(a)} in the nested run where the reference executed ${ops(e)}: an earlier difference changed L1's path`,
      });
      this.desynced = true;
      return;
    }
    if (e.outcome !== a.outcome) {
      this.emit('oracle.o1.vmx-outcome', e, 'O1', {
        expected: e.outcome, actual: a.outcome,
        explanation: `${e.instruction} completed with ${a.outcome} under L0 but with ${e.outcome} on the CPU`,
      });
      return;
    }
    if (e.error !== a.error) {
      this.emit('oracle.o1.vm-instruction-error', e, 'O1', {
        field: 'VM_INSTRUCTION_ERROR', expected: optHex(e.error), actual: optHex(a.error),
        explanation: `${e.instruction} failed with VM-instruction error ${a.error ?? 'none'} under L0; the CPU reports ${e.error ?? 'none'}`,
      });
    }
    if (e.vector !== a.vector) {
      this.emit('oracle.o1.fault-vector', e, 'O1', {
        expected: optHex(e.vector), actual: optHex(a.vector),
        explanation: `${e.instruction} raised vector ${a.vector ?? 'none'} under L0; the CPU raises ${e.vector ?? 'none'}`,
      });
    }
    if (e.value !== a.value) {
      this.emit('oracle.o1.vmread-value', e, 'O1', {
        field: vmreadField(e), expected: optHex(e.value), actual: optHex(a.value),
        explanation: `${e.instruction}${vmreadField(e) ? ` of ${vmreadField(e)}` : ''} returned ${optHex(a.value)} under L0; the CPU returns ${optHex(e.value)}`,
      });
    }
    if (e.failedCheck !== undefined && a.failedCheck !== undefined && e.failedCheck !== a.failedCheck) {
      this.emit('oracle.o1.failed-check', e, 'O1', {
        field: 'VM_INSTRUCTION_ERROR', expected: e.failedCheck, actual: a.failedCheck,
        explanation: `${e.instruction} failed VM-entry check ${a.failedCheck} under L0; the CPU fails ${e.failedCheck} first`,
      });
    }
    if ((e.rflags & VMX_RESULT_FLAGS) !== (a.rflags & VMX_RESULT_FLAGS)) {
      this.emit('oracle.o1.rflags', e, 'O1', {
        field: 'RFLAGS', expected: hexValue(e.rflags & VMX_RESULT_FLAGS), actual: hexValue(a.rflags & VMX_RESULT_FLAGS),
        explanation: `${e.instruction} left different arithmetic flags (CF/PF/AF/ZF/SF/OF) in the nested run`,
      });
    }
  }

  private o2(e: Of<'exit-to-l1'>, a: Of<'exit-to-l1'>): void {
    if (e.exit.exitReason >>> 0 !== a.exit.exitReason >>> 0) {
      this.emit('oracle.o2.exit-reason', e, 'O2', {
        field: 'VM_EXIT_REASON', expected: hexValue(e.exit.exitReason >>> 0), actual: hexValue(a.exit.exitReason >>> 0),
        explanation: `L1 received ${exitReasonName(a.exit.exitReason)} where a CPU running vmcs12 delivers ${exitReasonName(e.exit.exitReason)}`,
      });
      // The other fields are defined by the reason: with different reasons their differences say nothing more.
      return;
    }
    const reason = exitReasonName(e.exit.exitReason);
    if (e.failedCheck !== undefined && a.failedCheck !== undefined && e.failedCheck !== a.failedCheck) {
      this.emit('oracle.o2.failed-check', e, 'O2', {
        field: 'VM_EXIT_REASON', expected: e.failedCheck, actual: a.failedCheck,
        explanation: `the VM entry failed check ${a.failedCheck} under L0; the CPU fails ${e.failedCheck} first`,
      });
    }
    for (const f of EXIT_FIELDS) {
      if (!exitFieldDefined(e.exit, f.key)) continue;
      const ev = exitValue(e.exit, f.key);
      const av = exitValue(a.exit, f.key);
      if (ev === av) continue;
      this.emit(f.rule, e, 'O2', {
        field: f.field, expected: hexValue(ev), actual: hexValue(av),
        explanation: `${f.field} of the ${reason} exit L1 received is ${hexValue(av)}; a CPU running vmcs12 records ${hexValue(ev)}`,
      });
      if (this.out.stopped) return;
    }
    const masks = new Map<number, bigint>();
    for (const s of SEGMENT_AR) {
      const v = e.guestState.get(s.ar);
      if (v !== undefined && (v & AR_UNUSABLE) !== 0n) masks.set(s.ar, s.keep);
    }
    for (const enc of unionKeys(e.guestState, a.guestState)) {
      const keep = masks.get(enc);
      const ev = e.guestState.get(enc);
      const av = a.guestState.get(enc);
      const em = ev === undefined || keep === undefined ? ev : ev & keep;
      const am = av === undefined || keep === undefined ? av : av & keep;
      if (em === am) continue;
      const name = fieldDef(enc)?.name ?? hexValue(enc);
      this.emit('oracle.o2.guest-state', e, 'O2', {
        field: name, expected: optHex(ev), actual: optHex(av),
        explanation: `after the ${reason} exit L1 reads ${name} = ${optHex(av)}; a CPU running vmcs12 saves ${optHex(ev)}`,
      });
      if (this.out.stopped) return;
    }
  }

  private o3(e: Of<'l1-state'>, a: Of<'l1-state'>): void {
    const undefinedKeys = new Set(this.opts.l1StateUndefined ? [...this.opts.l1StateUndefined(e)] : []);
    const masks = unusableSegmentMasks(e.detail);
    for (const k of unionKeys(e.detail, a.detail)) {
      if (undefinedKeys.has(k)) continue;
      const keep = masks.get(k);
      const ev = e.detail.get(k);
      const av = a.detail.get(k);
      if (keep === 0n) continue;
      if (keep !== undefined && ev !== undefined && av !== undefined && (ev & keep) === (av & keep)) continue;
      if (ev === av) continue;
      this.emit('oracle.o3.l1-state', e, 'O3', {
        field: k, expected: optHex(ev), actual: optHex(av),
        explanation: `L1's ${k} is ${optHex(av)} after step ${e.step} under L0; on the CPU it is ${optHex(ev)}`,
      });
      if (this.out.stopped) return;
    }
  }

  private o4(e: Of<'l2-state'>, a: Of<'l2-state'>): void {
    for (const k of unionKeys(e.detail, a.detail)) {
      const ev = e.detail.get(k);
      const av = a.detail.get(k);
      if (ev === av) continue;
      this.emit('oracle.o4.l2-state', e, 'O4', {
        field: k, expected: optHex(ev), actual: optHex(av),
        explanation: `L2's ${k} is ${optHex(av)} at the exit under L0; under vmcs12 on the CPU it is ${optHex(ev)}`,
      }, 'L2');
      if (this.out.stopped) return;
    }
    const ee = e.deliveredEvents.join(', ');
    const ae = a.deliveredEvents.join(', ');
    if (ee !== ae) {
      this.emit('oracle.o4.delivered-events', e, 'O4', {
        expected: `[${ee}]`, actual: `[${ae}]`,
        explanation: `L2 received events [${ae}] through its IDT under L0; under vmcs12 on the CPU it receives [${ee}]`,
      }, 'L2');
    }
  }

  private o5(e: Of<'l1-memory'>, a: Of<'l1-memory'>): void {
    let reported = false;
    for (const page of unionKeys(e.changedPages, a.changedPages)) {
      const ev = e.changedPages.get(page);
      const av = a.changedPages.get(page);
      if (ev === av) continue;
      reported = true;
      const where = `L1-physical page ${hexValue(page << 12n)}`;
      this.emit('oracle.o5.memory', e, 'O5', {
        field: where, expected: ev === undefined ? 'unchanged' : hexValue(ev), actual: av === undefined ? 'unchanged' : hexValue(av),
        explanation: ev === undefined ? `${where} changed in step ${e.step} under L0 but not on the CPU`
          : av === undefined ? `${where} changed in step ${e.step} on the CPU but not under L0`
            : `${where} holds different bytes after step ${e.step}`,
      });
      if (this.out.stopped) return;
    }
    const differs = e.digest !== a.digest;
    const report = !reported && differs && !this.memoryDiffers;
    this.memoryDiffers = differs;
    if (report) {
      this.emit('oracle.o5.memory', e, 'O5', {
        field: 'digest', expected: hexValue(e.digest), actual: hexValue(a.digest),
        explanation: `L1-physical memory differs after step ${e.step} (an earlier step left a difference)`,
      });
    }
  }

  private o6(e: Of<'shutdown'>, a: Of<'shutdown'>): void {
    if (e.why !== a.why) {
      this.emit('oracle.o6.shutdown', e, 'O6', {
        expected: e.why, actual: a.why,
        explanation: `L1 ended in ${a.why} under L0; on the CPU it ends in ${e.why}`,
      });
      return;
    }
    if (e.abortIndicator !== a.abortIndicator) {
      this.emit('oracle.o6.abort-indicator', e, 'O6', {
        field: 'VMX-abort indicator', expected: optHex(e.abortIndicator), actual: optHex(a.abortIndicator),
        explanation: `VMX abort with indicator ${a.abortIndicator ?? 'none'} under L0; the CPU writes ${e.abortIndicator ?? 'none'}`,
      });
    }
  }

  private emit(
    rule: string, at: Observation, cls: 'O1' | 'O2' | 'O3' | 'O4' | 'O5' | 'O6',
    d: { field?: string; expected: string; actual: string; explanation: string }, level: Level = 'L1',
  ): void {
    this.out.add({
      kind: this.opts.kind ?? 'observation', observationClass: cls, rule, sdm: checkerRule(rule).sdm, event: at.step, level,
      ...(d.field !== undefined && d.field !== '' ? { field: d.field } : {}),
      expected: d.expected, actual: d.actual, explanation: d.explanation,
    });
  }
}

/** Compare two complete streams; `mode` 'first' stops at the first divergence. */
export function compareObservationStreams(
  reference: Iterable<Observation>, actual: Iterable<Observation>, mode: 'all' | 'first' | DivergenceCollector = 'all', opts: CompareOptions = {},
): readonly Divergence[] {
  const out = typeof mode === 'string' ? collector(mode) : mode;
  const cmp = new ObservationComparator(out, opts);
  const ra = [...reference];
  const aa = [...actual];
  for (let i = 0; i < Math.max(ra.length, aa.length) && !out.stopped && !cmp.outOfStep; i++) {
    if (i < ra.length) cmp.pushReference(ra[i]!);
    if (i < aa.length) cmp.pushActual(aa[i]!);
  }
  cmp.finish();
  return out.divergences;
}

/**
 * L1-state keys (observe.ts naming: "SS.base", "SS.limit", "SS.ar") the SDM leaves undefined after a host-state load
 * that made a segment unusable (SDM 27.5.2; src/nested/sync UndefinedPart): limit and access rights except the
 * unusable bit (and SS.DPL), and the base except for FS/GS (whose bases are loaded). Value 0n = ignore entirely.
 */
function unusableSegmentMasks(detail: ReadonlyMap<string, bigint>): Map<string, bigint> {
  const m = new Map<string, bigint>();
  for (const seg of ['ES', 'CS', 'SS', 'DS', 'FS', 'GS', 'LDTR', 'TR']) {
    const ar = detail.get(`${seg}.ar`);
    if (ar === undefined || (ar & AR_UNUSABLE) === 0n) continue;
    m.set(`${seg}.ar`, seg === 'SS' ? AR_UNUSABLE | 0x60n : AR_UNUSABLE);
    m.set(`${seg}.limit`, 0n);
    if (seg !== 'FS' && seg !== 'GS') m.set(`${seg}.base`, 0n);
  }
  return m;
}

function exitValue(x: ExitInformation, k: ExitInfoField): bigint {
  const v = x[k];
  return typeof v === 'bigint' ? v : BigInt(v >>> 0);
}

/** Same instruction and operands (then their O1 descriptions are equal too; only a difference needs the strings). */
function sameOperands(e: Of<'vmx-instruction'>, a: Of<'vmx-instruction'>): boolean {
  if (e.instruction !== a.instruction || e.operands.length !== a.operands.length) return false;
  for (let k = 0; k < e.operands.length; k++) if (e.operands[k] !== a.operands[k]) return false;
  return true;
}

function optHex(v: bigint | number | undefined): string {
  return v === undefined ? 'none' : hexValue(typeof v === 'number' ? v >>> 0 : v);
}

function vmreadField(o: Of<'vmx-instruction'>): string | undefined {
  if (o.instruction !== 'vmread' || o.operands[0] === undefined) return undefined;
  return fieldDef(Number(o.operands[0] & 0xffff_ffffn))?.name;
}

function unionKeys<K>(a: ReadonlyMap<K, unknown>, b: ReadonlyMap<K, unknown>): K[] {
  const out = [...a.keys()];
  for (const k of b.keys()) if (!a.has(k)) out.push(k);
  return out;
}
