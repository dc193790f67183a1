// The TypeScript model of a turtles trace (schemas/trace.proto): header and events as discriminated unions with
// bigint for every 64-bit value. This is what the replay driver, the importers and `turtles stats` consume.
// Snapshots here are full (the known VMCS content); the codec turns them into per-chunk deltas on the wire.
// Must not: depend on protobufjs or the file framing; encoding lives in codec.ts and header-codec.ts.

export type Level = 'unspecified' | 'L1' | 'L2';
export type L0Profile = 'unspecified' | 'sdm' | 'kvm' | 'recorded';
export type TraceKind = 'unspecified' | 'single-level' | 'nested';
export type VmxOpName =
  | 'unspecified' | 'vmxon' | 'vmclear' | 'vmptrld' | 'vmptrst' | 'vmread' | 'vmwrite'
  | 'vmlaunch' | 'vmresume' | 'invept' | 'invvpid' | 'vmxoff';
export type ExternalKind = 'unspecified' | 'interrupt' | 'nmi' | 'init' | 'sipi' | 'preemption-timer' | 'exception' | 'smi';
export type VmxResult = 'unspecified' | 'succeed' | 'fail-invalid' | 'fail-valid' | 'fault' | 'vm-exit';
export type VmcsKind = 'unspecified' | 'vmcs01' | 'vmcs12' | 'vmcs02' | 'single';
export type ReflectionDecision = 'unspecified' | 'reflected' | 'handled-by-l0';

// Enum tables in proto numbering order (index = wire value). The codec maps through these.
export const LEVELS: readonly Level[] = ['unspecified', 'L1', 'L2'];
export const L0_PROFILES: readonly L0Profile[] = ['unspecified', 'sdm', 'kvm', 'recorded'];
export const TRACE_KINDS: readonly TraceKind[] = ['unspecified', 'single-level', 'nested'];
export const VMX_OPS: readonly VmxOpName[] = [
  'unspecified', 'vmxon', 'vmclear', 'vmptrld', 'vmptrst', 'vmread', 'vmwrite', 'vmlaunch', 'vmresume', 'invept', 'invvpid', 'vmxoff',
];
export const EXTERNAL_KINDS: readonly ExternalKind[] = ['unspecified', 'interrupt', 'nmi', 'init', 'sipi', 'preemption-timer', 'exception', 'smi'];
export const VMX_RESULTS: readonly VmxResult[] = ['unspecified', 'succeed', 'fail-invalid', 'fail-valid', 'fault', 'vm-exit'];
export const VMCS_KINDS: readonly VmcsKind[] = ['unspecified', 'vmcs01', 'vmcs12', 'vmcs02', 'single'];
export const REFLECTION_DECISIONS: readonly ReflectionDecision[] = ['unspecified', 'reflected', 'handled-by-l0'];

export interface CpuModelInfo {
  readonly id: string;
  /** VMX capability MSRs (index → value), written ascending by index. */
  readonly vmxMsrs: ReadonlyMap<number, bigint>;
}

export interface ImportCounts {
  readonly lines: number;
  readonly mapped: number;
  /** Reason → count, for every line that did not produce a modelled event. */
  readonly skipped: Readonly<Record<string, number>>;
}

export interface Provenance {
  readonly sourceFormat: string;
  readonly sourceName: string;
  readonly description: string;
  readonly assumptions: readonly string[];
  readonly counts?: ImportCounts;
}

/** The scenario a recorded trace came from (`turtles record`): enough to re-run it exactly. */
export interface ScenarioSource {
  readonly format: string;
  readonly name: string;
  /** Canonical scenario JSON (src/replay/scenario/canonical.ts). */
  readonly json: string;
}

export interface TraceHeader {
  readonly producer: string;
  readonly cpu?: CpuModelInfo;
  readonly l0Profile: L0Profile;
  readonly seed?: bigint;
  readonly provenance?: Provenance;
  readonly kind: TraceKind;
  readonly scenario?: ScenarioSource;
}

/** Present on every event: where it came from. */
export interface EventBase {
  /** vCPU id when the source names it. */
  readonly vcpu?: number;
  /** 1-based line of the imported source. */
  readonly line?: number;
}

// ---- inputs ----

export interface VmxOpEvent extends EventBase {
  readonly kind: 'vmx-op';
  readonly op: VmxOpName;
  readonly address: bigint;
  readonly field: number;
  readonly value: bigint;
  readonly invType: number;
  readonly descriptorLow: bigint;
  readonly descriptorHigh: bigint;
  readonly instruction: Uint8Array;
}

export interface MemoryWriteEvent extends EventBase {
  readonly kind: 'memory-write';
  readonly address: bigint;
  readonly data: Uint8Array;
}

/** Register id → value (ids: registers.ts). */
export type RegisterValues = ReadonlyMap<number, bigint>;

export interface L2StepEvent extends EventBase {
  readonly kind: 'l2-step';
  readonly rip: bigint;
  readonly instruction: Uint8Array;
  /** Sparse delta: only the registers the step needs or changes. */
  readonly regs: RegisterValues;
  readonly emulationFailed: boolean;
  readonly mode: string;
  readonly csBase: bigint;
}

export interface ExternalEventEvent extends EventBase {
  readonly kind: 'external';
  readonly external: ExternalKind;
  readonly vector: number;
  readonly errorCode?: number;
  readonly atInstruction: bigint;
  readonly reinjected: boolean;
  readonly target: Level;
}

// ---- observations ----

/** Exit-information fields; `undefined` = the source did not carry the field. Bit order of the wire mask. */
export const EXIT_FIELDS = [
  'reason', 'qualification', 'rip', 'guestLinear', 'guestPhysical', 'intrInfo', 'intrError',
  'idtVectoringInfo', 'idtVectoringError', 'instructionLength', 'instructionInfo',
] as const;
export type ExitField = (typeof EXIT_FIELDS)[number];

export interface ExitFields {
  readonly level: Level;
  /** Full 32-bit exit reason including flag bits 31:16. */
  readonly reason?: number;
  readonly qualification?: bigint;
  readonly rip?: bigint;
  readonly guestLinear?: bigint;
  readonly guestPhysical?: bigint;
  readonly intrInfo?: number;
  readonly intrError?: number;
  readonly idtVectoringInfo?: number;
  readonly idtVectoringError?: number;
  readonly instructionLength?: number;
  readonly instructionInfo?: number;
  /** The producer's reason text when it could not be mapped to a number (never empty when present). */
  readonly reasonText?: string;
}

/** A VM exit delivered to the hypervisor one level up from `level`. */
export interface VmExitEvent extends EventBase, ExitFields {
  readonly kind: 'vm-exit';
}

/** A hardware exit taken by L0 in a nested recording (handled by L0 or reflected afterwards). */
export interface L0ExitEvent extends EventBase, ExitFields {
  readonly kind: 'l0-exit';
}

export interface VmxOutcomeEvent extends EventBase {
  readonly kind: 'vmx-outcome';
  readonly op: VmxOpName;
  readonly result: VmxResult;
  readonly errorNumber: number;
  readonly faultVector: number;
  readonly faultErrorCode?: number;
  readonly rflags: bigint;
  readonly value?: bigint;
}

export interface VmcsSnapshotEvent extends EventBase {
  readonly kind: 'vmcs-snapshot';
  readonly which: VmcsKind;
  /** Every field known at this point (encoding → value), not just the changes. */
  readonly fields: ReadonlyMap<number, bigint>;
  readonly address?: bigint;
}

export interface Ept02Entry {
  readonly l2Gpa: bigint;
  readonly hpa: bigint;
  /** bit 0 R, 1 W, 2 X (supervisor), 3 XU (user). */
  readonly perms: number;
  /** 1 = 4 KiB, 2 = 2 MiB, 3 = 1 GiB. */
  readonly level: number;
  readonly memoryType: number;
  readonly ignorePat: boolean;
}

export interface Ept02Event extends EventBase {
  readonly kind: 'ept02';
  readonly entries: readonly Ept02Entry[];
}

export interface ReflectionEvent extends EventBase {
  readonly kind: 'reflection';
  readonly decision: ReflectionDecision;
  readonly exitReason: number;
  readonly inferred: boolean;
  readonly rip?: bigint;
  readonly rule: string;
}

export interface EntryFailureEvent extends EventBase {
  readonly kind: 'entry-failure';
  readonly level: Level;
  readonly checkId: string;
  readonly exitReason?: number;
  readonly qualification?: bigint;
  readonly detail: string;
  readonly vmInstructionError?: number;
}

export interface VmEntryEvent extends EventBase {
  readonly kind: 'vm-entry';
  readonly level: Level;
  readonly rip?: bigint;
  readonly vmcs12?: bigint;
  readonly l1Rip?: bigint;
  readonly entryIntrInfo?: number;
  readonly eptp?: bigint;
  readonly guestCr3?: bigint;
  readonly intCtl?: number;
  readonly note: string;
}

export interface RegistersEvent extends EventBase {
  readonly kind: 'registers';
  readonly level: Level;
  readonly regs: RegisterValues;
}

export interface RawEvent extends EventBase {
  readonly kind: 'raw';
  readonly sourceKind: string;
  readonly text: string;
  readonly reason: string;
}

export interface UnmappedEvent extends EventBase {
  readonly kind: 'unmapped';
  readonly reason: string;
  readonly text: string;
}

export type InputEvent = VmxOpEvent | MemoryWriteEvent | L2StepEvent | ExternalEventEvent;
export type ObservationEvent =
  | VmExitEvent | L0ExitEvent | VmxOutcomeEvent | VmcsSnapshotEvent | Ept02Event | ReflectionEvent
  | EntryFailureEvent | VmEntryEvent | RegistersEvent;
export type TraceEvent = InputEvent | ObservationEvent | RawEvent | UnmappedEvent;
export type TraceEventKind = TraceEvent['kind'];

export const EVENT_KINDS: readonly TraceEventKind[] = [
  'vmx-op', 'memory-write', 'l2-step', 'external', 'vm-exit', 'l0-exit', 'vmx-outcome', 'vmcs-snapshot',
  'ept02', 'reflection', 'entry-failure', 'vm-entry', 'registers', 'raw', 'unmapped',
];

const EMPTY = new Uint8Array(0);
const NO_REGS: RegisterValues = new Map();

// Constructors filling the defaults the wire format implies, so producers name only what they know.

export function vmxOp(op: VmxOpName, o: Partial<Omit<VmxOpEvent, 'kind' | 'op'>> = {}): VmxOpEvent {
  return {
    kind: 'vmx-op', op, address: 0n, field: 0, value: 0n, invType: 0, descriptorLow: 0n, descriptorHigh: 0n,
    instruction: EMPTY, ...o,
  };
}

export function l2Step(rip: bigint, o: Partial<Omit<L2StepEvent, 'kind' | 'rip'>> = {}): L2StepEvent {
  return { kind: 'l2-step', rip, instruction: EMPTY, regs: NO_REGS, emulationFailed: false, mode: '', csBase: 0n, ...o };
}

export function external(kind: ExternalKind, o: Partial<Omit<ExternalEventEvent, 'kind' | 'external'>> = {}): ExternalEventEvent {
  return { kind: 'external', external: kind, vector: 0, atInstruction: 0n, reinjected: false, target: 'unspecified', ...o };
}

export function vmxOutcome(op: VmxOpName, result: VmxResult, o: Partial<Omit<VmxOutcomeEvent, 'kind' | 'op' | 'result'>> = {}): VmxOutcomeEvent {
  return { kind: 'vmx-outcome', op, result, errorNumber: 0, faultVector: 0, rflags: 0n, ...o };
}

export function reflection(decision: ReflectionDecision, exitReason: number, o: Partial<Omit<ReflectionEvent, 'kind' | 'decision' | 'exitReason'>> = {}): ReflectionEvent {
  return { kind: 'reflection', decision, exitReason, inferred: false, rule: '', ...o };
}

export function entryFailure(level: Level, o: Partial<Omit<EntryFailureEvent, 'kind' | 'level'>> = {}): EntryFailureEvent {
  return { kind: 'entry-failure', level, checkId: '', detail: '', ...o };
}

export function vmEntry(level: Level, o: Partial<Omit<VmEntryEvent, 'kind' | 'level'>> = {}): VmEntryEvent {
  return { kind: 'vm-entry', level, note: '', ...o };
}
