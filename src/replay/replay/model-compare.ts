// Compares one recorded event with the re-run's event at the same place: against the nested re-run (vmcs02 fields under
// their merge rule, reflections under the reflection rule, EPT02 leaves under ept02.*) or against the reference machine
// (what L1 does and sees, under the oracle O1–O3 ids of src/checker/compare.ts), as Divergence records.
// Must not: run machines, read traces or decide what is a deviation.
import { exitReasonName } from '../../checker/compare.js';
import { hexValue, type Divergence, type Level } from '../../checker/divergence.js';
import { exitFieldDefined, type ExitInfoField } from '../../checker/exit-definedness.js';
import type { ExitInformation } from '../../cpu/l1/observation.js';
import { fieldDef } from '../../cpu/vmcs.js';
import type { FieldProvenance } from '../../nested/merge/types.js';
import { VMX_RESULT_FLAGS } from '../../cpu/vmx/outcome.js';
import type {
  Ept02Entry, Ept02Event, EntryFailureEvent, ExitFields, ExternalEventEvent, L2StepEvent, MemoryWriteEvent, ReflectionEvent,
  RegistersEvent, TraceEvent, VmcsSnapshotEvent, VmEntryEvent, VmxOpEvent, VmxOutcomeEvent,
} from '../format/index.js';
import { registerName } from '../format/index.js';
import { mergeRuleOf, modelSdm } from './model-rules.js';

/** What the recorded event is compared with: the nested re-run of the header's profile, or the reference machine. */
export type Against = 'nested' | 'reference';

export interface EventComparison {
  readonly divergences: Divergence[];
  /** Set when the two events cannot be paired (different kinds, VMX instructions or VMCS kinds): stop comparing. */
  readonly desync?: Divergence;
}

const NONE: EventComparison = { divergences: [] };

/** Snapshots whose provenance is looked up (each lookup re-runs the scenario up to the snapshot). */
const MAX_PROVENANCE_LOOKUPS = 8;

type Value = bigint | number | boolean | string | undefined;

function show(v: Value): string {
  if (v === undefined) return 'none';
  if (typeof v === 'bigint') return hexValue(v);
  if (typeof v === 'number') return Number.isInteger(v) ? hexValue(v >= 0 ? v : v >>> 0) : String(v);
  return String(v);
}

function bytesHex(b: Uint8Array): string {
  let s = '';
  for (const x of b) s += x.toString(16).padStart(2, '0');
  return s === '' ? '(none)' : s;
}

/** One line naming an event, for stream divergences. */
export function describeEvent(e: TraceEvent | undefined): string {
  if (e === undefined) return 'end of trace';
  switch (e.kind) {
    case 'vmx-op': return `vmx_op ${e.op}`;
    case 'vmx-outcome': return `vmx_outcome ${e.op} → ${e.result}`;
    case 'vm-exit': return `vm_exit ${e.reason !== undefined ? exitReasonName(e.reason) : e.reasonText ?? '?'}`;
    case 'l0-exit': return `l0_exit ${e.reason !== undefined ? exitReasonName(e.reason) : e.reasonText ?? '?'}`;
    case 'vmcs-snapshot': return `vmcs_snapshot ${e.which}`;
    case 'reflection': return `reflection ${e.decision} (${e.rule || 'no rule'})`;
    case 'entry-failure': return `entry_failure ${e.checkId || '?'}`;
    case 'vm-entry': return `vm_entry ${e.level}${e.rip !== undefined ? ` at ${hexValue(e.rip)}` : ''}`;
    case 'l2-step': return `l2_step at ${hexValue(e.rip)}`;
    case 'memory-write': return `memory_write at ${hexValue(e.address)}`;
    case 'ept02': return `ept02 (${e.entries.length} entr${e.entries.length === 1 ? 'y' : 'ies'})`;
    case 'external': return `external ${e.external}`;
    case 'registers': return `registers ${e.level}`;
    default: return e.kind;
  }
}

/** Exit-information fields of a trace exit: the ExitInformation key, the VMCS field name and the O2 rule id. */
const EXIT_FIELD_MAP: readonly { key: keyof ExitFields & string; info: ExitInfoField; field: string; rule: string }[] = [
  { key: 'qualification', info: 'qualification', field: 'EXIT_QUALIFICATION', rule: 'oracle.o2.qualification' },
  { key: 'guestLinear', info: 'guestLinearAddress', field: 'GUEST_LINEAR_ADDRESS', rule: 'oracle.o2.guest-linear-address' },
  { key: 'guestPhysical', info: 'guestPhysicalAddress', field: 'GUEST_PHYSICAL_ADDRESS', rule: 'oracle.o2.guest-physical-address' },
  { key: 'intrInfo', info: 'interruptionInfo', field: 'VM_EXIT_INTR_INFO', rule: 'oracle.o2.interruption-info' },
  { key: 'intrError', info: 'interruptionErrorCode', field: 'VM_EXIT_INTR_ERROR_CODE', rule: 'oracle.o2.interruption-error-code' },
  { key: 'idtVectoringInfo', info: 'idtVectoringInfo', field: 'IDT_VECTORING_INFO_FIELD', rule: 'oracle.o2.idt-vectoring-info' },
  { key: 'idtVectoringError', info: 'idtVectoringErrorCode', field: 'IDT_VECTORING_ERROR_CODE', rule: 'oracle.o2.idt-vectoring-error-code' },
  { key: 'instructionLength', info: 'instructionLength', field: 'VM_EXIT_INSTRUCTION_LEN', rule: 'oracle.o2.instruction-length' },
  { key: 'instructionInfo', info: 'instructionInfo', field: 'VMX_INSTRUCTION_INFO', rule: 'oracle.o2.instruction-info' },
];

/** The trace exit as the checker's ExitInformation (absent fields read as 0, as an unwritten VMCS field). */
export function exitInformationOf(x: ExitFields): ExitInformation {
  return {
    exitReason: (x.reason ?? 0) >>> 0, qualification: x.qualification ?? 0n, guestLinearAddress: x.guestLinear ?? 0n,
    guestPhysicalAddress: x.guestPhysical ?? 0n, interruptionInfo: (x.intrInfo ?? 0) >>> 0, interruptionErrorCode: (x.intrError ?? 0) >>> 0,
    idtVectoringInfo: (x.idtVectoringInfo ?? 0) >>> 0, idtVectoringErrorCode: (x.idtVectoringError ?? 0) >>> 0,
    instructionLength: (x.instructionLength ?? 0) >>> 0, instructionInfo: (x.instructionInfo ?? 0) >>> 0,
  };
}

function same(a: Value, b: Value): boolean {
  return a === b;
}

/**
 * Compares recorded events with re-run events. One instance per trace and stream: it remembers which VMCS fields already
 * differ so that a field a wrong L0 gets wrong at every entry is reported once (again only when the values change).
 */
export class ModelEventComparator {
  /** which:encoding → "expected|actual" of the last reported difference. */
  private readonly reportedVmcs = new Map<string, string>();
  private readonly against: Against;
  private readonly profileName: string;

  /** vmcs02 provenance of the re-run at a snapshot event (nested comparison only; bounded: it re-runs the scenario). */
  private readonly provenanceAt: ((event: number) => readonly FieldProvenance[] | undefined) | undefined;
  private provenanceLookups = 0;
  private readonly provenanceCache = new Map<number, readonly FieldProvenance[] | undefined>();

  constructor(against: Against, profileName: string, provenanceAt?: (event: number) => readonly FieldProvenance[] | undefined) {
    this.against = against;
    this.profileName = profileName;
    this.provenanceAt = provenanceAt;
  }

  /** The re-run's provenance of one vmcs02 field at snapshot `event`, for the first few snapshots that differ. */
  private provenance(event: number, encoding: number): FieldProvenance | undefined {
    if (!this.provenanceAt) return undefined;
    if (!this.provenanceCache.has(event)) {
      if (this.provenanceLookups >= MAX_PROVENANCE_LOOKUPS) return undefined;
      this.provenanceLookups++;
      this.provenanceCache.set(event, this.provenanceAt(event));
    }
    return this.provenanceCache.get(event)?.find((p) => p.encoding === encoding);
  }

  private get whose(): string {
    return this.against === 'nested' ? `the scenario re-run on the ${this.profileName} L0` : 'a CPU running vmcs12 (the reference machine)';
  }

  private div(event: number, rule: string, level: Level, field: string | undefined, expected: string, actual: string, explanation: string): Divergence {
    const cls = rule.startsWith('oracle.o1.') ? 'O1' : rule.startsWith('oracle.o2.') ? 'O2' : undefined;
    return {
      kind: 'recorded', ...(cls ? { observationClass: cls } : {}), rule, sdm: modelSdm(rule), event, level,
      ...(field !== undefined ? { field } : {}), expected, actual, explanation,
    };
  }

  /** The two streams cannot be paired at `event`: `expected` is the re-run's event there, `actual` the recorded one. */
  desync(event: number, expected: TraceEvent | undefined, actual: TraceEvent | undefined, why?: string): Divergence {
    const e = describeEvent(expected);
    const a = describeEvent(actual);
    return this.div(event, 'replay.model.stream', 'L0', undefined, e, a,
      why ?? `the recorded trace has ${a} at event ${event} where ${this.whose} has ${e}; later events are not compared`);
  }

  compare(event: number, expected: TraceEvent, actual: TraceEvent): EventComparison {
    if (expected.kind !== actual.kind) return { divergences: [], desync: this.desync(event, expected, actual) };
    switch (expected.kind) {
      case 'vmx-op': return this.vmxOp(event, expected, actual as VmxOpEvent);
      case 'vmx-outcome': return this.vmxOutcome(event, expected, actual as VmxOutcomeEvent);
      case 'vm-exit': return { divergences: this.exit(event, expected, actual as ExitFields, 'vm-exit') };
      case 'l0-exit': return { divergences: this.exit(event, expected, actual as ExitFields, 'l0-exit') };
      case 'vmcs-snapshot': return this.snapshot(event, expected, actual as VmcsSnapshotEvent);
      case 'reflection': return { divergences: this.reflection(event, expected, actual as ReflectionEvent) };
      case 'ept02': return { divergences: this.ept02(event, expected, actual as Ept02Event) };
      case 'entry-failure': return { divergences: this.entryFailure(event, expected, actual as EntryFailureEvent) };
      case 'vm-entry': return { divergences: this.vmEntry(event, expected, actual as VmEntryEvent) };
      case 'memory-write': return { divergences: this.memoryWrite(event, expected, actual as MemoryWriteEvent) };
      case 'l2-step': return { divergences: this.l2Step(event, expected, actual as L2StepEvent) };
      case 'external': return { divergences: this.external(event, expected, actual as ExternalEventEvent) };
      case 'registers': return { divergences: this.registers(event, expected, actual as RegistersEvent) };
      default: {
        // registers / raw / unmapped: not produced by the recorder; equal text or a stream difference.
        const e = JSON.stringify(expected, (_k, v: unknown) => (typeof v === 'bigint' ? hexValue(v) : v));
        const a = JSON.stringify(actual, (_k, v: unknown) => (typeof v === 'bigint' ? hexValue(v) : v));
        return e === a ? NONE : { divergences: [], desync: this.desync(event, expected, actual) };
      }
    }
  }

  private vmxOp(event: number, e: VmxOpEvent, a: VmxOpEvent): EventComparison {
    const ref = this.against === 'reference';
    if (e.op !== a.op) {
      if (!ref) return { divergences: [], desync: this.desync(event, e, a, `L1 executed ${a.op} at event ${event} where in ${this.whose} it executes ${e.op}; later events are not compared`) };
      return { divergences: [], desync: this.div(event, 'oracle.o1.instruction', 'L1', undefined, e.op, a.op, `L1 executed ${a.op} where on the reference machine it executes ${e.op}: an earlier difference changed L1's path; later events are not compared`) };
    }
    const out: Divergence[] = [];
    const rule = ref ? 'oracle.o1.instruction' : 'replay.model.l1-input';
    const fields: [string, Value, Value][] = [
      ['address', e.address, a.address], ['field', e.field, a.field], ['value', e.value, a.value], ['invType', e.invType, a.invType],
      ['descriptorLow', e.descriptorLow, a.descriptorLow], ['descriptorHigh', e.descriptorHigh, a.descriptorHigh],
    ];
    for (const [name, ev, av] of fields) {
      if (same(ev, av)) continue;
      out.push(this.div(event, rule, 'L1', `${e.op} ${name}`, show(ev), show(av), `L1's ${e.op} has ${name} ${show(av)} in the trace but ${show(ev)} in ${this.whose}: an earlier difference changed what L1 does`));
    }
    if (!ref && e.instruction.length > 0 && bytesHex(e.instruction) !== bytesHex(a.instruction)) {
      out.push(this.div(event, rule, 'L1', `${e.op} instruction bytes`, bytesHex(e.instruction), bytesHex(a.instruction), `L1's ${e.op} is encoded differently in the trace than in ${this.whose}`));
    }
    return { divergences: out };
  }

  private vmxOutcome(event: number, e: VmxOutcomeEvent, a: VmxOutcomeEvent): EventComparison {
    if (e.op !== a.op) {
      if (this.against === 'nested') return { divergences: [], desync: this.desync(event, e, a) };
      return { divergences: [], desync: this.div(event, 'oracle.o1.instruction', 'L1', undefined, e.op, a.op, `the recorded outcome is of ${a.op} where the reference machine's is of ${e.op}; later events are not compared`) };
    }
    const out: Divergence[] = [];
    const d = (rule: string, field: string | undefined, ev: Value, av: Value, what: string) =>
      out.push(this.div(event, rule, 'L1', field, show(ev), show(av), `${e.op} ${what} ${show(av)} in the trace; ${this.whose} gives ${show(ev)}`));
    if (e.result !== a.result) {
      d('oracle.o1.vmx-outcome', undefined, e.result, a.result, 'completed with');
      return { divergences: out };
    }
    if (e.result === 'fail-valid' && e.errorNumber !== a.errorNumber) d('oracle.o1.vm-instruction-error', 'VM_INSTRUCTION_ERROR', e.errorNumber, a.errorNumber, 'failed with VM-instruction error');
    if (e.result === 'fault') {
      if (e.faultVector !== a.faultVector) d('oracle.o1.fault-vector', undefined, e.faultVector, a.faultVector, 'raised vector');
      else if (e.faultErrorCode !== a.faultErrorCode) d('oracle.o1.fault-vector', 'error code', e.faultErrorCode, a.faultErrorCode, 'raised its fault with error code');
    }
    if (e.value !== a.value) d('oracle.o1.vmread-value', e.op === 'vmread' ? 'value' : undefined, e.value, a.value, 'returned');
    if ((e.rflags & VMX_RESULT_FLAGS) !== (a.rflags & VMX_RESULT_FLAGS)) d('oracle.o1.rflags', 'RFLAGS', e.rflags & VMX_RESULT_FLAGS, a.rflags & VMX_RESULT_FLAGS, 'left arithmetic flags');
    return { divergences: out };
  }

  private exit(event: number, e: ExitFields, a: ExitFields, kind: 'vm-exit' | 'l0-exit'): Divergence[] {
    const l0 = kind === 'l0-exit';
    const level: Level = l0 ? 'L2' : 'L1';
    const what = l0 ? 'the hardware exit from vmcs02 L0 took' : 'the exit L1 received';
    const reasonRule = l0 ? 'replay.model.l0-exit' : 'oracle.o2.exit-reason';
    if ((e.reason ?? -1) >>> 0 !== (a.reason ?? -1) >>> 0 || e.reasonText !== a.reasonText) {
      const ev = e.reason !== undefined ? `${hexValue(e.reason >>> 0)} (${exitReasonName(e.reason)})` : e.reasonText ?? 'none';
      const av = a.reason !== undefined ? `${hexValue(a.reason >>> 0)} (${exitReasonName(a.reason)})` : a.reasonText ?? 'none';
      // The other fields are defined by the reason: with different reasons their differences say nothing more.
      return [this.div(event, reasonRule, level, 'VM_EXIT_REASON', ev, av, `${what} is ${av} in the trace; ${this.whose} gives ${ev}`)];
    }
    const out: Divergence[] = [];
    const info = exitInformationOf(e);
    const reason = exitReasonName(info.exitReason);
    for (const f of EXIT_FIELD_MAP) {
      if (!exitFieldDefined(info, f.info)) continue;
      const ev = e[f.key] as Value;
      const av = a[f.key] as Value;
      if (same(ev, av)) continue;
      out.push(this.div(event, l0 ? 'replay.model.l0-exit' : f.rule, level, f.field, show(ev), show(av),
        `${f.field} of the ${reason} exit (${l0 ? 'hardware exit L0 took' : 'delivered to L1'}) is ${show(av)} in the trace; ${this.whose} gives ${show(ev)}`));
    }
    if (e.rip !== undefined && a.rip !== undefined && e.rip !== a.rip) {
      out.push(this.div(event, l0 ? 'replay.model.l0-exit' : 'oracle.o2.guest-state', level, 'GUEST_RIP', show(e.rip), show(a.rip),
        `the ${reason} exit happened at L2 RIP ${show(a.rip)} in the trace; ${this.whose} has it at ${show(e.rip)}`));
    }
    return out;
  }

  private snapshot(event: number, e: VmcsSnapshotEvent, a: VmcsSnapshotEvent): EventComparison {
    if (e.which !== a.which) return { divergences: [], desync: this.desync(event, e, a) };
    const out: Divergence[] = [];
    const v02 = e.which === 'vmcs02';
    const level: Level = v02 ? 'L0' : 'L1';
    if (e.address !== a.address) {
      out.push(this.div(event, v02 ? 'replay.model.vmcs02' : 'replay.model.vmcs12', level, 'address', show(e.address), show(a.address), `the ${e.which} snapshot is of the VMCS at ${show(a.address)} in the trace; ${this.whose} has ${show(e.address)}`));
    }
    const keys = new Set<number>(e.fields.keys());
    for (const k of a.fields.keys()) keys.add(k);
    for (const enc of [...keys].sort((x, y) => x - y)) {
      const ev = e.fields.get(enc);
      const av = a.fields.get(enc);
      const key = `${e.which}:${enc}`;
      if (ev === av) {
        this.reportedVmcs.delete(key);
        continue;
      }
      const pair = `${show(ev)}|${show(av)}`;
      if (this.reportedVmcs.get(key) === pair) continue;
      this.reportedVmcs.set(key, pair);
      const name = fieldDef(enc)?.name ?? hexValue(enc);
      if (v02) {
        const prov = this.provenance(event, enc);
        const rule = prov?.rule ?? mergeRuleOf(fieldDef(enc)?.name) ?? 'replay.model.vmcs02';
        const d = this.div(event, rule, 'L0', name, show(ev), show(av),
          `vmcs02 ${name} is ${show(av)} at this L2 entry in the trace; merging vmcs01 and vmcs12 by ${rule} gives ${show(ev)}`);
        out.push(prov ? { ...d, provenance: prov.inputs.map((i) => ({ from: i.from, ...(i.field !== undefined ? { field: i.field } : {}), value: hexValue(i.value) })) } : d);
      } else {
        out.push(this.div(event, 'replay.model.vmcs12', 'L1', name, show(ev), show(av),
          `${e.which} ${name} is ${show(av)} at this L2 entry in the trace; in ${this.whose} it is ${show(ev)} (L0 saved other state into it at an exit, or L1 wrote another value)`));
      }
    }
    return { divergences: out };
  }

  private reflection(event: number, e: ReflectionEvent, a: ReflectionEvent): Divergence[] {
    if (e.decision === a.decision && e.exitReason >>> 0 === a.exitReason >>> 0 && e.rule === a.rule) return [];
    const rule = e.rule !== '' ? e.rule : 'replay.model.reflection';
    const reason = exitReasonName(e.exitReason);
    if (e.decision !== a.decision || e.exitReason >>> 0 !== a.exitReason >>> 0) {
      return [this.div(event, rule, 'L0', 'decision', `${e.decision} ${reason}${e.rule ? ` (${e.rule})` : ''}`, `${a.decision} ${exitReasonName(a.exitReason)}${a.rule ? ` (${a.rule})` : ''}`,
        `L0 ${a.decision === 'reflected' ? 'reflected' : 'handled'} the ${reason} exit of L2 in the trace; by ${rule} ${this.whose} ${e.decision === 'reflected' ? 'reflects it to L1' : 'handles it in L0'}`)];
    }
    return [this.div(event, rule, 'L0', 'rule', e.rule || 'none', a.rule || 'none', `L0 decided about the ${reason} exit by rule ${a.rule || 'none'} in the trace; ${this.whose} decides by ${e.rule || 'none'}`)];
  }

  private ept02(event: number, e: Ept02Event, a: Ept02Event): Divergence[] {
    const out: Divergence[] = [];
    const byGpa = (xs: readonly Ept02Entry[]) => new Map(xs.map((x) => [x.l2Gpa, x]));
    const em = byGpa(e.entries);
    const am = byGpa(a.entries);
    const leaf = (x: Ept02Entry) => `${hexValue(x.hpa)} perms ${hexValue(x.perms)} level ${x.level} type ${x.memoryType}${x.ignorePat ? '+IPAT' : ''}`;
    for (const [gpa, x] of em) {
      const y = am.get(gpa);
      const field = `EPT02 ${hexValue(gpa)}`;
      if (!y) {
        out.push(this.div(event, 'ept02.translation', 'L0', field, leaf(x), 'not mapped', `the trace has no EPT02 leaf for L2 GPA ${hexValue(gpa)} where ${this.whose} maps it to ${leaf(x)}`));
        continue;
      }
      const checks: [string, boolean][] = [
        ['ept02.translation', x.hpa !== y.hpa], ['ept02.permissions', x.perms !== y.perms], ['ept02.page-size', x.level !== y.level],
        ['ept02.memory-type', x.memoryType !== y.memoryType || x.ignorePat !== y.ignorePat],
      ];
      for (const [rule, differs] of checks) {
        if (differs) out.push(this.div(event, rule, 'L0', field, leaf(x), leaf(y), `EPT02 maps L2 GPA ${hexValue(gpa)} to ${leaf(y)} in the trace; composing EPT12 and EPT01 in ${this.whose} gives ${leaf(x)}`));
      }
    }
    for (const [gpa, y] of am) {
      if (em.has(gpa)) continue;
      out.push(this.div(event, 'ept02.stale', 'L0', `EPT02 ${hexValue(gpa)}`, 'not mapped', leaf(y), `the trace has an EPT02 leaf for L2 GPA ${hexValue(gpa)} that ${this.whose} does not map here (stale after INVEPT or an EPT12 change?)`));
    }
    return out;
  }

  private entryFailure(event: number, e: EntryFailureEvent, a: EntryFailureEvent): Divergence[] {
    const out: Divergence[] = [];
    if (e.checkId !== a.checkId) {
      out.push(this.div(event, 'replay.model.entry-failure', 'L2', 'check', e.checkId || 'none', a.checkId || 'none', `the nested VM entry failed check ${a.checkId || '(none named)'} in the trace; ${this.whose} fails ${e.checkId || '(none named)'}`));
    }
    const fields: [string, Value, Value][] = [
      ['exit reason', e.exitReason, a.exitReason], ['qualification', e.qualification, a.qualification], ['VM-instruction error', e.vmInstructionError, a.vmInstructionError],
    ];
    for (const [name, ev, av] of fields) {
      if (!same(ev, av)) out.push(this.div(event, 'replay.model.entry-failure', 'L2', name, show(ev), show(av), `the failed nested VM entry has ${name} ${show(av)} in the trace; ${this.whose} gives ${show(ev)}`));
    }
    return out;
  }

  private vmEntry(event: number, e: VmEntryEvent, a: VmEntryEvent): Divergence[] {
    const fields: [string, Value, Value][] = [
      ['level', e.level, a.level], ['rip', e.rip, a.rip], ['vmcs12', e.vmcs12, a.vmcs12], ['l1Rip', e.l1Rip, a.l1Rip],
      ['entryIntrInfo', e.entryIntrInfo, a.entryIntrInfo], ['eptp', e.eptp, a.eptp], ['guestCr3', e.guestCr3, a.guestCr3], ['intCtl', e.intCtl, a.intCtl],
    ];
    return fields.filter(([, ev, av]) => !same(ev, av)).map(([name, ev, av]) =>
      this.div(event, 'replay.model.vm-entry', 'L0', name, show(ev), show(av), `the hardware entry of vmcs02 has ${name} ${show(av)} in the trace; ${this.whose} enters with ${show(ev)}`));
  }

  private memoryWrite(event: number, e: MemoryWriteEvent, a: MemoryWriteEvent): Divergence[] {
    if (e.address === a.address && bytesHex(e.data) === bytesHex(a.data)) return [];
    return [this.div(event, 'replay.model.l1-input', 'L1', `memory ${hexValue(e.address)}`, `${hexValue(e.address)}: ${bytesHex(e.data)}`, `${hexValue(a.address)}: ${bytesHex(a.data)}`,
      `L1 wrote other memory in the trace than in ${this.whose}: an earlier difference changed what L1 does`)];
  }

  private l2Step(event: number, e: L2StepEvent, a: L2StepEvent): Divergence[] {
    const out: Divergence[] = [];
    const d = (field: string, ev: string, av: string) => out.push(this.div(event, 'replay.model.l2-input', 'L2', field, ev, av, `L2's step has ${field} ${av} in the trace; in ${this.whose} it is ${ev}`));
    if (e.rip !== a.rip) d('rip', show(e.rip), show(a.rip));
    if (bytesHex(e.instruction) !== bytesHex(a.instruction)) d('instruction', bytesHex(e.instruction), bytesHex(a.instruction));
    if (e.mode !== a.mode) d('mode', e.mode, a.mode);
    if (e.csBase !== a.csBase) d('csBase', show(e.csBase), show(a.csBase));
    if (e.emulationFailed !== a.emulationFailed) d('emulationFailed', String(e.emulationFailed), String(a.emulationFailed));
    const regs = new Set<number>([...e.regs.keys(), ...a.regs.keys()]);
    for (const r of [...regs].sort((x, y) => x - y)) {
      if (e.regs.get(r) !== a.regs.get(r)) d(`register ${r}`, show(e.regs.get(r)), show(a.regs.get(r)));
    }
    return out;
  }

  /**
   * L1's (or L2's) registers after an exit (O3 / O4). Against the reference only registers both sides name are
   * compared (the two producers may name different sets); against the nested re-run every register.
   */
  private registers(event: number, e: RegistersEvent, a: RegistersEvent): Divergence[] {
    const l1 = e.level !== 'L2';
    const rule = l1 ? 'oracle.o3.l1-state' : 'oracle.o4.l2-state';
    const ids = new Set<number>(e.regs.keys());
    if (this.against === 'nested') for (const k of a.regs.keys()) ids.add(k);
    else for (const k of [...ids]) if (!a.regs.has(k)) ids.delete(k);
    const out: Divergence[] = [];
    for (const id of [...ids].sort((x, y) => x - y)) {
      const ev = e.regs.get(id);
      const av = a.regs.get(id);
      if (ev === av) continue;
      const name = registerName(id);
      out.push(this.div(event, rule, l1 ? 'L1' : 'L2', name, show(ev), show(av),
        `${l1 ? 'L1' : 'L2'}'s ${name} is ${show(av)} after the exit in the trace; in ${this.whose} it is ${show(ev)}${l1 ? ' (the host state an exit to L1 loads from vmcs12, SDM 27.5)' : ''}`));
    }
    return out;
  }

  private external(event: number, e: ExternalEventEvent, a: ExternalEventEvent): Divergence[] {
    const fields: [string, Value, Value][] = [
      ['kind', e.external, a.external], ['vector', e.vector, a.vector], ['errorCode', e.errorCode, a.errorCode], ['atInstruction', e.atInstruction, a.atInstruction],
      ['reinjected', e.reinjected, a.reinjected], ['target', e.target, a.target],
    ];
    return fields.filter(([, ev, av]) => !same(ev, av)).map(([name, ev, av]) =>
      this.div(event, 'replay.model.l2-input', 'L2', name, show(ev), show(av), `the external event has ${name} ${show(av)} in the trace; in ${this.whose} it is ${show(ev)}`));
  }
}
