// Event ↔ protobuf record conversion, with the per-chunk state of the compact encoding: exit RIPs as deltas against
// the previous exit of the same kind, VMCS snapshots as deltas against the previous snapshot of the same kind.
// Both states restart empty in every chunk, so each chunk decodes on its own. Decoded VMCS states are SnapshotSlots
// (sorted arrays, shared and never mutated), turned into maps only when something reads `fields`.
// Must not: frame, compress or do I/O, or change a value silently (errors: 'invalid-event' / 'bad-record').
import { pb, type PbEvent, type PbExitInfo, type PbLong } from './pb.js';
import { fromLongBits, fromSignedLongBits, toLongBits } from './long.js';
import { TraceFormatError } from './errors.js';
import {
  EXIT_FIELDS, EXTERNAL_KINDS, LEVELS, REFLECTION_DECISIONS, VMCS_KINDS, VMX_OPS, VMX_RESULTS,
  type ExitFields, type RegisterValues, type TraceEvent, type VmcsKind,
} from './events.js';

const U64_MAX = 0xffff_ffff_ffff_ffffn;
/** Snapshot state per VMCS kind: encoding → value. */
export type VmcsState = Map<VmcsKind, Map<number, bigint>>;

/** Where an encode/decode problem is reported. */
export interface CodecPlace {
  readonly file: string;
  readonly event: number;
}

function invalid(at: CodecPlace, what: string): TraceFormatError {
  return new TraceFormatError('invalid-event', at.file, { event: at.event }, what);
}

function badRecord(at: CodecPlace, what: string): TraceFormatError {
  return new TraceFormatError('bad-record', at.file, { event: at.event }, what);
}

// ---------------------------------------------------------------------------------------------------------
// encode
// ---------------------------------------------------------------------------------------------------------

function u64(x: bigint, what: string, at: CodecPlace): PbLong {
  if (typeof x !== 'bigint' || x < 0n || x > U64_MAX) throw invalid(at, `${what} must be a bigint in [0, 2^64), got ${String(x)}`);
  return toLongBits(x);
}

function u32(x: number, what: string, at: CodecPlace): number {
  if (!Number.isInteger(x) || x < 0 || x > 0xffff_ffff) throw invalid(at, `${what} must be an integer in [0, 2^32), got ${String(x)}`);
  return x;
}

function enumIndex<T>(table: readonly T[], v: T, what: string, at: CodecPlace): number {
  const i = table.indexOf(v);
  if (i < 0) throw invalid(at, `${what} ${String(v)} is not one of ${table.join(', ')}`);
  return i;
}

function bytes(b: Uint8Array, what: string, at: CodecPlace): Uint8Array {
  if (!(b instanceof Uint8Array)) throw invalid(at, `${what} must be a Uint8Array`);
  return b;
}

function regsToWire(regs: RegisterValues, at: CodecPlace): { regIds: number[]; regValues: PbLong[] } {
  const ids = sortedKeys(regs);
  return { regIds: ids.map((id) => u32(id, 'register id', at)), regValues: ids.map((id) => u64(regs.get(id)!, `register ${id}`, at)) };
}

function optU64(x: bigint | undefined, what: string, at: CodecPlace): PbLong | undefined {
  return x === undefined ? undefined : u64(x, what, at);
}

function optU32(x: number | undefined, what: string, at: CodecPlace): number | undefined {
  return x === undefined ? undefined : u32(x, what, at);
}

/** A copy without undefined members, so protobufjs sees presence exactly where a value exists (no `delete`:
 * deleting turns objects into slow dictionaries). */
function defined<T extends object>(o: T): T {
  const out = {} as T;
  for (const k in o) if (o[k] !== undefined) out[k] = o[k];
  return out;
}

/** Keys ascending; already-sorted maps (the usual case: decoded snapshots, importers) skip the sort. */
function sortedKeys(m: ReadonlyMap<number, unknown>): number[] {
  const keys = [...m.keys()];
  for (let i = 1; i < keys.length; i++) if (keys[i]! < keys[i - 1]!) return keys.sort((a, b) => a - b);
  return keys;
}

export class ChunkEncoder {
  private readonly ripPrev = { 'vm-exit': 0n, 'l0-exit': 0n };
  /** The running VMCS content per kind, as of the last snapshot encoded in this chunk. */
  readonly vmcs: VmcsState = new Map();

  constructor(private readonly file: string) {}

  private exitInfo(e: ExitFields, key: 'vm-exit' | 'l0-exit', at: CodecPlace): PbExitInfo {
    // Built field by field (no undefined members, no deletes): this is the hot path of recording.
    const out: PbExitInfo = { level: enumIndex(LEVELS, e.level, 'level', at) };
    let unknown = 0;
    if (e.reason !== undefined) out.reason = u32(e.reason, 'reason', at);
    else unknown |= 1;
    if (e.qualification !== undefined) out.qualification = u64(e.qualification, 'qualification', at);
    else unknown |= 2;
    if (e.rip !== undefined) {
      u64(e.rip, 'rip', at);
      out.ripDelta = toLongBits(BigInt.asIntN(64, e.rip - this.ripPrev[key]));
    } else unknown |= 4;
    if (e.guestLinear !== undefined) out.guestLinear = u64(e.guestLinear, 'guestLinear', at);
    else unknown |= 8;
    if (e.guestPhysical !== undefined) out.guestPhysical = u64(e.guestPhysical, 'guestPhysical', at);
    else unknown |= 16;
    if (e.intrInfo !== undefined) out.intrInfo = u32(e.intrInfo, 'intrInfo', at);
    else unknown |= 32;
    if (e.intrError !== undefined) out.intrError = u32(e.intrError, 'intrError', at);
    else unknown |= 64;
    if (e.idtVectoringInfo !== undefined) out.idtVectoringInfo = u32(e.idtVectoringInfo, 'idtVectoringInfo', at);
    else unknown |= 128;
    if (e.idtVectoringError !== undefined) out.idtVectoringError = u32(e.idtVectoringError, 'idtVectoringError', at);
    else unknown |= 256;
    if (e.instructionLength !== undefined) out.instructionLength = u32(e.instructionLength, 'instructionLength', at);
    else unknown |= 512;
    if (e.instructionInfo !== undefined) out.instructionInfo = u32(e.instructionInfo, 'instructionInfo', at);
    else unknown |= 1024;
    if (unknown !== 0) out.unknown = unknown;
    if (e.reasonText !== undefined) {
      if (e.reasonText === '') throw invalid(at, 'reasonText must be absent or non-empty');
      out.reasonText = e.reasonText;
    }
    // Only now, with every field validated, may the chunk state move on: a rejected event leaves no trace.
    if (e.rip !== undefined) this.ripPrev[key] = e.rip;
    return out;
  }

  /** The wire record for one event; `index` is its event number (for messages only). */
  encode(e: TraceEvent, index: number): PbEvent {
    const at = { file: this.file, event: index };
    const out: PbEvent = {};
    if (e.vcpu !== undefined) out.vcpu = u32(e.vcpu, 'vcpu', at);
    if (e.line !== undefined && e.line !== 0) out.sourceLine = u32(e.line, 'line', at);
    switch (e.kind) {
      case 'vmx-op':
        out.vmxOp = {
          op: enumIndex(VMX_OPS, e.op, 'op', at), address: u64(e.address, 'address', at), field: u32(e.field, 'field', at),
          value: u64(e.value, 'value', at), invType: u32(e.invType, 'invType', at),
          descriptorLow: u64(e.descriptorLow, 'descriptorLow', at), descriptorHigh: u64(e.descriptorHigh, 'descriptorHigh', at),
          instruction: bytes(e.instruction, 'instruction', at),
        };
        break;
      case 'memory-write':
        out.memoryWrite = { address: u64(e.address, 'address', at), data: bytes(e.data, 'data', at) };
        break;
      case 'l2-step': {
        if (bytes(e.instruction, 'instruction', at).length > 15) throw invalid(at, 'an L2 instruction has at most 15 bytes');
        out.l2Step = {
          rip: u64(e.rip, 'rip', at), instruction: e.instruction, ...regsToWire(e.regs, at),
          emulationFailed: e.emulationFailed, mode: e.mode, csBase: u64(e.csBase, 'csBase', at),
        };
        break;
      }
      case 'external':
        out.external = defined({
          kind: enumIndex(EXTERNAL_KINDS, e.external, 'external kind', at), vector: u32(e.vector, 'vector', at),
          errorCode: optU32(e.errorCode, 'errorCode', at), atInstruction: u64(e.atInstruction, 'atInstruction', at),
          reinjected: e.reinjected, target: enumIndex(LEVELS, e.target, 'target', at),
        });
        break;
      case 'vm-exit':
        out.vmExit = this.exitInfo(e, 'vm-exit', at);
        break;
      case 'l0-exit':
        out.l0Exit = this.exitInfo(e, 'l0-exit', at);
        break;
      case 'vmx-outcome':
        out.vmxOutcome = defined({
          op: enumIndex(VMX_OPS, e.op, 'op', at), result: enumIndex(VMX_RESULTS, e.result, 'result', at),
          errorNumber: u32(e.errorNumber, 'errorNumber', at), faultVector: u32(e.faultVector, 'faultVector', at),
          faultErrorCode: optU32(e.faultErrorCode, 'faultErrorCode', at), rflags: u64(e.rflags, 'rflags', at),
          value: optU64(e.value, 'value', at),
        });
        break;
      case 'vmcs-snapshot':
        out.vmcsSnapshot = this.snapshot(e.which, e.fields, e.address, at);
        break;
      case 'ept02':
        out.ept02 = {
          entries: e.entries.map((x) => ({
            l2Gpa: u64(x.l2Gpa, 'l2Gpa', at), hpa: u64(x.hpa, 'hpa', at), perms: u32(x.perms, 'perms', at),
            level: u32(x.level, 'level', at), memoryType: u32(x.memoryType, 'memoryType', at), ignorePat: x.ignorePat,
          })),
        };
        break;
      case 'reflection':
        out.reflection = defined({
          decision: enumIndex(REFLECTION_DECISIONS, e.decision, 'decision', at), exitReason: u32(e.exitReason, 'exitReason', at),
          inferred: e.inferred, rip: optU64(e.rip, 'rip', at), rule: e.rule,
        });
        break;
      case 'entry-failure':
        out.entryFailure = defined({
          level: enumIndex(LEVELS, e.level, 'level', at), checkId: e.checkId, exitReason: optU32(e.exitReason, 'exitReason', at),
          qualification: optU64(e.qualification, 'qualification', at), detail: e.detail,
          vmInstructionError: optU32(e.vmInstructionError, 'vmInstructionError', at),
        });
        break;
      case 'vm-entry':
        out.vmEntry = defined({
          level: enumIndex(LEVELS, e.level, 'level', at), rip: optU64(e.rip, 'rip', at), vmcs12: optU64(e.vmcs12, 'vmcs12', at),
          l1Rip: optU64(e.l1Rip, 'l1Rip', at), entryIntrInfo: optU32(e.entryIntrInfo, 'entryIntrInfo', at),
          eptp: optU64(e.eptp, 'eptp', at), guestCr3: optU64(e.guestCr3, 'guestCr3', at), intCtl: optU32(e.intCtl, 'intCtl', at),
          note: e.note,
        });
        break;
      case 'registers':
        out.registers = { level: enumIndex(LEVELS, e.level, 'level', at), ...regsToWire(e.regs, at) };
        break;
      case 'raw':
        out.raw = { sourceKind: e.sourceKind, text: e.text, reason: e.reason };
        break;
      case 'unmapped':
        out.unmapped = { reason: e.reason, text: e.text };
        break;
      default:
        throw invalid(at, `unknown event kind ${String((e as { kind: unknown }).kind)}`);
    }
    return out;
  }

  private snapshot(which: VmcsKind, fields: ReadonlyMap<number, bigint>, address: bigint | undefined, at: CodecPlace): PbEvent['vmcsSnapshot'] {
    const kind = enumIndex(VMCS_KINDS, which, 'which', at);
    const prev = this.vmcs.get(which) ?? new Map<number, bigint>();
    const encs = sortedKeys(fields);
    const encodings: number[] = [];
    const values: PbLong[] = [];
    for (const enc of encs) {
      const v = fields.get(enc)!;
      u32(enc, 'VMCS field encoding', at);
      const bits = u64(v, `VMCS field 0x${enc.toString(16)}`, at);
      if (prev.get(enc) !== v) {
        encodings.push(enc);
        values.push(bits);
      }
    }
    const cleared = [...prev.keys()].filter((k) => !fields.has(k)).sort((a, b) => a - b);
    this.vmcs.set(which, new Map(encs.map((k) => [k, fields.get(k)!])));
    return defined({ which: kind, encodings, values, cleared, address: optU64(address, 'address', at) });
  }
}

// ---------------------------------------------------------------------------------------------------------
// decode
// ---------------------------------------------------------------------------------------------------------

function enumValue<T>(table: readonly T[], v: number | null | undefined, what: string, at: CodecPlace): T {
  const x = table[v ?? 0];
  if (x === undefined) throw badRecord(at, `${what} ${String(v)} is not a known value`);
  return x;
}

function big(l: PbLong | null | undefined): bigint {
  return l == null ? 0n : fromLongBits(l);
}

function copyBytes(b: Uint8Array | null | undefined): Uint8Array {
  return b == null || b.length === 0 ? new Uint8Array(0) : new Uint8Array(b);
}

function regsFromWire(ids: readonly number[] | null | undefined, values: readonly PbLong[] | null | undefined, ascending: boolean, at: CodecPlace): Map<number, bigint> {
  const idList = ids ?? [];
  const valList = values ?? [];
  if (idList.length !== valList.length) throw badRecord(at, `register ids (${idList.length}) and values (${valList.length}) differ in count`);
  const out = new Map<number, bigint>();
  for (let i = 0; i < idList.length; i++) {
    if (ascending && i > 0 && idList[i]! <= idList[i - 1]!) throw badRecord(at, 'register ids must be strictly ascending');
    out.set(idList[i]!, fromLongBits(valList[i]!));
  }
  if (out.size !== idList.length) throw badRecord(at, 'a register id repeats');
  return out;
}

const unknownsOf = (o: unknown): unknown => (o as { $unknowns?: unknown } | null | undefined)?.$unknowns;

/** Unknown fields anywhere in the record (the reader keeps them instead of dropping them). */
function hasUnknownFields(m: PbEvent): boolean {
  if (unknownsOf(m) !== undefined) return true;
  // Exactly one member is set (checked before this runs).
  const inner = m.vmExit ?? m.l0Exit ?? m.vmcsSnapshot ?? m.vmxOp ?? m.memoryWrite ?? m.l2Step ?? m.external ?? m.vmxOutcome ?? m.ept02 ??
    m.reflection ?? m.entryFailure ?? m.vmEntry ?? m.registers ?? m.raw ?? m.unmapped;
  if (unknownsOf(inner) !== undefined) return true;
  return (m.ept02?.entries ?? []).some((e) => unknownsOf(e) !== undefined);
}

function withBase<T extends object>(m: PbEvent, e: T): T {
  const r = e as T & { vcpu?: number; line?: number };
  if (m.vcpu != null) r.vcpu = m.vcpu;
  if (m.sourceLine) r.line = m.sourceLine;
  return r;
}

export class ChunkDecoder {
  private readonly ripPrev = { 'vm-exit': 0n, 'l0-exit': 0n };
  private readonly place: { file: string; event: number };
  /** The running VMCS content per kind, as of the last snapshot decoded in this chunk. */
  private readonly slots = new Map<VmcsKind, SnapshotSlots>();

  /** `lazySnapshotFields`: snapshot events are LazySnapshotEvents (see snapshotEvent). */
  constructor(file: string, private readonly lazySnapshotFields = false) {
    this.place = { file, event: 0 };
  }

  /** The running VMCS content per kind, as maps (shared with the events: never mutate them). */
  get vmcs(): VmcsState {
    const out: VmcsState = new Map();
    for (const [kind, s] of this.slots) out.set(kind, s.toMap());
    return out;
  }

  /** The exit event itself, built in one object (the hot path of decoding: no spreads, no intermediate objects). */
  private exitEvent(m: PbEvent, x: PbExitInfo, kind: 'vm-exit' | 'l0-exit', at: CodecPlace): TraceEvent {
    const unknown = x.unknown ?? 0;
    if (unknown >>> EXIT_FIELDS.length !== 0) throw badRecord(at, `exit unknown-field mask 0x${unknown.toString(16)} has bits past ${EXIT_FIELDS.length}`);
    const out: { -readonly [K in keyof ExitFields]: ExitFields[K] } & { kind: 'vm-exit' | 'l0-exit'; vcpu?: number; line?: number } = {
      kind, level: enumValue(LEVELS, x.level, 'level', at),
    };
    if (m.vcpu != null) out.vcpu = m.vcpu;
    if (m.sourceLine) out.line = m.sourceLine;
    if ((unknown & 1) === 0) out.reason = x.reason ?? 0;
    if ((unknown & 2) === 0) out.qualification = big(x.qualification);
    if ((unknown & 4) === 0) {
      out.rip = this.advanceRip(kind, x.ripDelta == null ? 0n : fromSignedLongBits(x.ripDelta));
    } else if (x.ripDelta != null && (x.ripDelta.low | x.ripDelta.high) !== 0) {
      throw badRecord(at, 'exit carries a RIP delta but marks the RIP unknown');
    }
    if ((unknown & 8) === 0) out.guestLinear = big(x.guestLinear);
    if ((unknown & 16) === 0) out.guestPhysical = big(x.guestPhysical);
    if ((unknown & 32) === 0) out.intrInfo = x.intrInfo ?? 0;
    if ((unknown & 64) === 0) out.intrError = x.intrError ?? 0;
    if ((unknown & 128) === 0) out.idtVectoringInfo = x.idtVectoringInfo ?? 0;
    if ((unknown & 256) === 0) out.idtVectoringError = x.idtVectoringError ?? 0;
    if ((unknown & 512) === 0) out.instructionLength = x.instructionLength ?? 0;
    if ((unknown & 1024) === 0) out.instructionInfo = x.instructionInfo ?? 0;
    if (x.reasonText) out.reasonText = x.reasonText;
    return out as TraceEvent;
  }

  /** The event for one wire record; `index` is its event number (for messages only). */
  decode(m: PbEvent, index: number): TraceEvent {
    // One mutable place per decoder: errors copy it, and decoding allocates nothing for it per record.
    const at = this.place;
    at.event = index;
    const set = (m.vmxOp != null ? 1 : 0) + (m.memoryWrite != null ? 1 : 0) + (m.l2Step != null ? 1 : 0) + (m.external != null ? 1 : 0) +
      (m.vmExit != null ? 1 : 0) + (m.vmxOutcome != null ? 1 : 0) + (m.vmcsSnapshot != null ? 1 : 0) + (m.ept02 != null ? 1 : 0) +
      (m.reflection != null ? 1 : 0) + (m.entryFailure != null ? 1 : 0) + (m.l0Exit != null ? 1 : 0) + (m.vmEntry != null ? 1 : 0) +
      (m.registers != null ? 1 : 0) + (m.raw != null ? 1 : 0) + (m.unmapped != null ? 1 : 0);
    if (set === 0) throw badRecord(at, 'record carries no event');
    if (set > 1) throw badRecord(at, `record carries ${set} events (exactly one expected)`);
    if (hasUnknownFields(m)) throw badRecord(at, 'record has fields this format version does not define');
    if (m.vmExit) return this.exitEvent(m, m.vmExit, 'vm-exit', at);
    if (m.l0Exit) return this.exitEvent(m, m.l0Exit, 'l0-exit', at);
    if (m.vmcsSnapshot) {
      const s = m.vmcsSnapshot;
      const which = enumValue(VMCS_KINDS, s.which, 'VMCS kind', at);
      const ev = this.snapshotEvent(which, s.encodings ?? [], (s.values ?? []).map(fromLongBits), s.cleared ?? []);
      if (s.address != null) ev['address'] = fromLongBits(s.address);
      return withBase(m, ev as unknown as TraceEvent);
    }
    if (m.vmxOp) {
      const o = m.vmxOp;
      return withBase(m, {
        kind: 'vmx-op', op: enumValue(VMX_OPS, o.op, 'op', at), address: big(o.address), field: o.field ?? 0, value: big(o.value),
        invType: o.invType ?? 0, descriptorLow: big(o.descriptorLow), descriptorHigh: big(o.descriptorHigh), instruction: copyBytes(o.instruction),
      });
    }
    if (m.memoryWrite) return withBase(m, { kind: 'memory-write', address: big(m.memoryWrite.address), data: copyBytes(m.memoryWrite.data) });
    if (m.l2Step) {
      const s = m.l2Step;
      const instruction = copyBytes(s.instruction);
      if (instruction.length > 15) throw badRecord(at, `L2 instruction of ${instruction.length} bytes (at most 15)`);
      return withBase(m, {
        kind: 'l2-step', rip: big(s.rip), instruction, regs: regsFromWire(s.regIds, s.regValues, true, at),
        emulationFailed: s.emulationFailed ?? false, mode: s.mode ?? '', csBase: big(s.csBase),
      });
    }
    if (m.external) {
      const x = m.external;
      return withBase(m, {
        kind: 'external', external: enumValue(EXTERNAL_KINDS, x.kind, 'external kind', at), vector: x.vector ?? 0,
        ...(x.errorCode != null ? { errorCode: x.errorCode } : {}), atInstruction: big(x.atInstruction),
        reinjected: x.reinjected ?? false, target: enumValue(LEVELS, x.target, 'target', at),
      });
    }
    if (m.vmxOutcome) {
      const o = m.vmxOutcome;
      return withBase(m, {
        kind: 'vmx-outcome', op: enumValue(VMX_OPS, o.op, 'op', at), result: enumValue(VMX_RESULTS, o.result, 'result', at),
        errorNumber: o.errorNumber ?? 0, faultVector: o.faultVector ?? 0,
        ...(o.faultErrorCode != null ? { faultErrorCode: o.faultErrorCode } : {}), rflags: big(o.rflags),
        ...(o.value != null ? { value: fromLongBits(o.value) } : {}),
      });
    }
    if (m.ept02) {
      return withBase(m, {
        kind: 'ept02',
        entries: (m.ept02.entries ?? []).map((x) => ({
          l2Gpa: big(x.l2Gpa), hpa: big(x.hpa), perms: x.perms ?? 0, level: x.level ?? 0, memoryType: x.memoryType ?? 0, ignorePat: x.ignorePat ?? false,
        })),
      });
    }
    if (m.reflection) {
      const r = m.reflection;
      return withBase(m, {
        kind: 'reflection', decision: enumValue(REFLECTION_DECISIONS, r.decision, 'decision', at), exitReason: r.exitReason ?? 0,
        inferred: r.inferred ?? false, ...(r.rip != null ? { rip: fromLongBits(r.rip) } : {}), rule: r.rule ?? '',
      });
    }
    if (m.entryFailure) {
      const f = m.entryFailure;
      return withBase(m, {
        kind: 'entry-failure', level: enumValue(LEVELS, f.level, 'level', at), checkId: f.checkId ?? '',
        ...(f.exitReason != null ? { exitReason: f.exitReason } : {}),
        ...(f.qualification != null ? { qualification: fromLongBits(f.qualification) } : {}),
        detail: f.detail ?? '', ...(f.vmInstructionError != null ? { vmInstructionError: f.vmInstructionError } : {}),
      });
    }
    if (m.vmEntry) {
      const v = m.vmEntry;
      return withBase(m, {
        kind: 'vm-entry', level: enumValue(LEVELS, v.level, 'level', at),
        ...(v.rip != null ? { rip: fromLongBits(v.rip) } : {}),
        ...(v.vmcs12 != null ? { vmcs12: fromLongBits(v.vmcs12) } : {}),
        ...(v.l1Rip != null ? { l1Rip: fromLongBits(v.l1Rip) } : {}),
        ...(v.entryIntrInfo != null ? { entryIntrInfo: v.entryIntrInfo } : {}),
        ...(v.eptp != null ? { eptp: fromLongBits(v.eptp) } : {}),
        ...(v.guestCr3 != null ? { guestCr3: fromLongBits(v.guestCr3) } : {}),
        ...(v.intCtl != null ? { intCtl: v.intCtl } : {}),
        note: v.note ?? '',
      });
    }
    if (m.registers) {
      return withBase(m, {
        kind: 'registers', level: enumValue(LEVELS, m.registers.level, 'level', at),
        regs: regsFromWire(m.registers.regIds, m.registers.regValues, true, at),
      });
    }
    if (m.raw) return withBase(m, { kind: 'raw', sourceKind: m.raw.sourceKind ?? '', text: m.raw.text ?? '', reason: m.raw.reason ?? '' });
    return withBase(m, { kind: 'unmapped', reason: m.unmapped!.reason ?? '', text: m.unmapped!.text ?? '' });
  }

  /** The running RIP of one exit kind moved by a decoded delta (also used by fast-decode.ts). */
  advanceRip(kind: 'vm-exit' | 'l0-exit', delta: bigint): bigint {
    const rip = BigInt.asUintN(64, this.ripPrev[kind] + delta);
    this.ripPrev[kind] = rip;
    return rip;
  }

  /** Number the record about to be decoded by fast-decode.ts (decode() does this itself). */
  begin(index: number): void {
    this.place.event = index;
  }

  /** Apply one snapshot delta to the running state of its kind; returns the new full state as a map. */
  applySnapshot(which: VmcsKind, encodings: readonly number[], values: readonly bigint[], cleared: readonly number[]): Map<number, bigint> {
    return this.applySlots(which, encodings, values, cleared).toMap();
  }

  /**
   * The event of one snapshot delta (also used by fast-decode.ts): its `fields` a map, or with `lazySnapshotFields`
   * a LazySnapshotEvent whose map is built only if something reads it (the columnar replay reads the slots).
   */
  snapshotEvent(which: VmcsKind, encodings: readonly number[], values: readonly bigint[], cleared: readonly number[]): Record<string, unknown> {
    const slots = this.applySlots(which, encodings, values, cleared);
    if (this.lazySnapshotFields) return new LazySnapshotEvent(which, slots) as unknown as Record<string, unknown>;
    return { kind: 'vmcs-snapshot', which, fields: slots.toMap() };
  }

  /** Apply one snapshot delta to the running state of its kind, in slot form; returns the new full state. */
  applySlots(which: VmcsKind, encodings: readonly number[], values: readonly bigint[], cleared: readonly number[]): SnapshotSlots {
    const at = this.place;
    if (encodings.length !== values.length) throw badRecord(at, `snapshot has ${encodings.length} encodings but ${values.length} values`);
    for (let i = 1; i < encodings.length; i++) {
      if (encodings[i]! <= encodings[i - 1]!) throw badRecord(at, 'snapshot field encodings must be strictly ascending');
    }
    for (let i = 1; i < cleared.length; i++) {
      if (cleared[i]! <= cleared[i - 1]!) throw badRecord(at, 'cleared snapshot fields must be strictly ascending');
    }
    const prev = this.slots.get(which);
    let next: SnapshotSlots | undefined;
    // The usual delta changes values of fields the state already has: share the (immutable) encodings and copy the
    // values. Anything else (new fields, clears) takes the general merge, which also reports the errors.
    if (prev !== undefined && cleared.length === 0) next = changedValues(prev, encodings, values);
    next ??= mergeDelta(prev, encodings, values, cleared, at);
    this.slots.set(which, next);
    return next;
  }
}

/** `prev` with the values of `encodings` replaced, when every one of them is already in it; else undefined. */
function changedValues(prev: SnapshotSlots, encodings: readonly number[], values: readonly bigint[]): SnapshotSlots | undefined {
  const keys = prev.encodings;
  if (encodings.length === 0) return new SnapshotSlots(keys, prev.values);
  const out = prev.values.slice();
  let j = 0;
  for (let e = 0; e < encodings.length; e++) {
    const k = encodings[e]!;
    while (j < keys.length && keys[j]! < k) j++;
    if (j === keys.length || keys[j] !== k) return undefined;
    out[j] = values[e]!;
  }
  return new SnapshotSlots(keys, out);
}

/** Merge three ascending sequences (previous state, changes, clears) into the next state, ascending. */
function mergeDelta(
  prev: SnapshotSlots | undefined, encodings: readonly number[], values: readonly bigint[], cleared: readonly number[], at: CodecPlace,
): SnapshotSlots {
  const keys: number[] = [], vals: bigint[] = [];
  let e = 0, c = 0;
  if (prev) {
    const pk = prev.encodings, pv = prev.values;
    for (let i = 0; i < pk.length; i++) {
      const k = pk[i]!;
      while (e < encodings.length && encodings[e]! < k) {
        keys.push(encodings[e]!);
        vals.push(values[e]!);
        e++;
      }
      if (c < cleared.length && cleared[c] === k) {
        if (e < encodings.length && encodings[e] === k) throw badRecord(at, `snapshot both changes and clears field 0x${k.toString(16)}`);
        c++;
        continue;
      }
      keys.push(k);
      if (e < encodings.length && encodings[e] === k) {
        vals.push(values[e]!);
        e++;
      } else {
        vals.push(pv[i]!);
      }
    }
  }
  for (; e < encodings.length; e++) {
    keys.push(encodings[e]!);
    vals.push(values[e]!);
  }
  if (c !== cleared.length) throw badRecord(at, `snapshot clears field 0x${cleared[c]!.toString(16)} that was not known`);
  return new SnapshotSlots(keys, vals);
}

/**
 * One VMCS snapshot state in slot form: encodings ascending and their values, in two arrays never mutated once built
 * (consecutive states share the encodings array while their field set stays the same). The map form is built on
 * demand, once.
 */
export class SnapshotSlots {
  private map: Map<number, bigint> | undefined;

  constructor(readonly encodings: readonly number[], readonly values: readonly bigint[]) {}

  /** The value of one encoding (binary search), or undefined when the state does not hold it. */
  get(encoding: number): bigint | undefined {
    const keys = this.encodings;
    let lo = 0, hi = keys.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      const k = keys[mid]!;
      if (k === encoding) return this.values[mid];
      if (k < encoding) lo = mid + 1;
      else hi = mid - 1;
    }
    return undefined;
  }

  /** Same fields, same values. */
  equals(other: SnapshotSlots): boolean {
    if (other === this) return true;
    const a = this.encodings, b = other.encodings;
    if (a.length !== b.length) return false;
    if (a !== b) for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
    const x = this.values, y = other.values;
    if (x === y) return true;
    for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return false;
    return true;
  }

  /** The state as a map, ascending (built once; never mutate it: events and the decoder share it). */
  toMap(): Map<number, bigint> {
    let m = this.map;
    if (m === undefined) {
      m = new Map();
      const keys = this.encodings, vals = this.values;
      for (let i = 0; i < keys.length; i++) m.set(keys[i]!, vals[i]!);
      this.map = m;
    }
    return m;
  }
}

/**
 * A decoded 'vmcs-snapshot' event whose `fields` map is built on first read, for the columnar replay (ColumnOptions
 * lazySnapshotFields), whose checks read `slots`. Events of every other decode carry a plain map.
 */
export class LazySnapshotEvent {
  readonly kind = 'vmcs-snapshot' as const;

  constructor(readonly which: VmcsKind, readonly slots: SnapshotSlots) {}

  get fields(): ReadonlyMap<number, bigint> {
    return this.slots.toMap();
  }
}
