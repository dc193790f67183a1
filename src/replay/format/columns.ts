// Columnar decode of one chunk for readers that need mostly exits (replay, `turtles stats`): exit and reflection
// records go into reusable typed-array columns (64-bit values as 32-bit halves), no object per event; other records
// are framed and counted, or decoded as objects for the kinds asked for (the record parsers are in column-parsers.ts).
// Must not: disagree with decodeChunkPayload (property tests compare them); shapes it does not handle go to the
// generated decoder, which reports errors.
import $protobuf from 'protobufjs/minimal.js';
import { pb } from './pb.js';
import { ChunkDecoder } from './codec.js';
import { fastDecode, snapshotKind } from './fast-decode.js';
import { SLACK, parseExit, parseReflection, repeatExit, ripPrev } from './column-parsers.js';
import { TraceFormatError } from './errors.js';
import { MAX_RECORD_BYTES } from './framing.js';
import type { ExitFields, TraceEvent, TraceEventKind, VmcsKind } from './events.js';

/** Kind of each top-level Event field number (10–31); undefined = not an event field. */
const KIND_BY_FIELD: readonly (TraceEventKind | undefined)[] = (() => {
  const k: (TraceEventKind | undefined)[] = new Array(32).fill(undefined);
  k[10] = 'vmx-op'; k[11] = 'memory-write'; k[12] = 'l2-step'; k[13] = 'external';
  k[20] = 'vm-exit'; k[21] = 'vmx-outcome'; k[22] = 'vmcs-snapshot'; k[23] = 'ept02'; k[24] = 'reflection';
  k[25] = 'entry-failure'; k[26] = 'l0-exit'; k[27] = 'vm-entry'; k[28] = 'registers'; k[30] = 'raw'; k[31] = 'unmapped';
  return k;
})();

/** 1 for the Event field numbers that carry an event body. */
const BODY_FIELD = Uint8Array.from({ length: 32 }, (_, f) => (KIND_BY_FIELD[f] !== undefined ? 1 : 0));

/** Index of each kind in ChunkColumns.kindCounts (the field number; stable, independent of EVENT_KINDS order). */
export function kindSlot(kind: TraceEventKind): number {
  return KIND_BY_FIELD.indexOf(kind);
}

const EXIT_VM = 0;
const EXIT_L0 = 1;

/**
 * Exit records of one chunk, row by row. `unknown` is the wire mask (bit per field, EXIT_FIELDS order): a field whose
 * bit is set was not carried by the source and its column holds 0. Capacity grows to the largest chunk seen.
 */
export class ExitColumns {
  length = 0;
  /** Event number relative to the chunk's first event. */
  event = new Uint32Array(0);
  /** 0 vm-exit, 1 l0-exit. */
  kind = new Uint8Array(0);
  /** LEVELS index. */
  level = new Uint8Array(0);
  unknown = new Uint16Array(0);
  reason = new Uint32Array(0);
  qualLo = new Uint32Array(0);
  qualHi = new Uint32Array(0);
  ripLo = new Uint32Array(0);
  ripHi = new Uint32Array(0);
  linearLo = new Uint32Array(0);
  linearHi = new Uint32Array(0);
  physicalLo = new Uint32Array(0);
  physicalHi = new Uint32Array(0);
  intrInfo = new Uint32Array(0);
  intrError = new Uint32Array(0);
  idtInfo = new Uint32Array(0);
  idtError = new Uint32Array(0);
  instrLen = new Uint32Array(0);
  info = new Uint32Array(0);
  /** Source line, 0 = none. */
  line = new Uint32Array(0);
  /** vCPU, -1 = none (a u32 id: kept in doubles). */
  vcpu = new Float64Array(0);
  /** The producer's reason text of the rows that carry one (rare). */
  readonly reasonText = new Map<number, string>();

  ensure(n: number): void {
    if (this.event.length >= n) return;
    const cap = Math.max(n, this.event.length * 2, 64);
    const grow32 = (a: Uint32Array) => {
      const b = new Uint32Array(cap);
      b.set(a.subarray(0, this.length));
      return b;
    };
    this.event = grow32(this.event);
    const k = new Uint8Array(cap); k.set(this.kind.subarray(0, this.length)); this.kind = k;
    const l = new Uint8Array(cap); l.set(this.level.subarray(0, this.length)); this.level = l;
    const u = new Uint16Array(cap); u.set(this.unknown.subarray(0, this.length)); this.unknown = u;
    const v = new Float64Array(cap); v.set(this.vcpu.subarray(0, this.length)); v.fill(-1, this.length); this.vcpu = v;
    this.reason = grow32(this.reason);
    this.qualLo = grow32(this.qualLo); this.qualHi = grow32(this.qualHi);
    this.ripLo = grow32(this.ripLo); this.ripHi = grow32(this.ripHi);
    this.linearLo = grow32(this.linearLo); this.linearHi = grow32(this.linearHi);
    this.physicalLo = grow32(this.physicalLo); this.physicalHi = grow32(this.physicalHi);
    this.intrInfo = grow32(this.intrInfo); this.intrError = grow32(this.intrError);
    this.idtInfo = grow32(this.idtInfo); this.idtError = grow32(this.idtError);
    this.instrLen = grow32(this.instrLen); this.info = grow32(this.info);
    this.line = grow32(this.line);
  }

  /**
   * Set when a row got a non-zero value in one of the rarely used columns (qualification bits 63:32, linear address,
   * interruption and vectoring fields, instruction info, the unknown mask): the parser stores those only when one of
   * them is non-zero, so clear() zeroes them when a previous chunk wrote any. Likewise `placeDirty` for line and vcpu
   * (vcpu's empty value is -1).
   */
  rareDirty = false;
  placeDirty = false;

  clear(): void {
    const n = this.length;
    if (this.rareDirty) {
      for (const a of [this.qualHi, this.linearLo, this.linearHi, this.intrInfo, this.intrError, this.idtInfo, this.idtError, this.info]) a.fill(0, 0, n);
      this.unknown.fill(0, 0, n);
      this.rareDirty = false;
    }
    if (this.placeDirty) {
      this.line.fill(0, 0, n);
      this.vcpu.fill(-1, 0, n);
      this.placeDirty = false;
    }
    this.length = 0;
    this.reasonText.clear();
  }

  /** Row `r` as the event the object decoder returns (for messages, tests and the object-based checks). */
  toEvent(r: number): TraceEvent & ExitFields {
    const u = this.unknown[r]!;
    const out: Record<string, unknown> = { kind: this.kind[r] === EXIT_VM ? 'vm-exit' : 'l0-exit', level: LEVEL_NAMES[this.level[r]!] };
    if (this.vcpu[r]! >= 0) out['vcpu'] = this.vcpu[r];
    if (this.line[r]! > 0) out['line'] = this.line[r];
    if ((u & 1) === 0) out['reason'] = this.reason[r];
    if ((u & 2) === 0) out['qualification'] = big(this.qualLo[r]!, this.qualHi[r]!);
    if ((u & 4) === 0) out['rip'] = big(this.ripLo[r]!, this.ripHi[r]!);
    if ((u & 8) === 0) out['guestLinear'] = big(this.linearLo[r]!, this.linearHi[r]!);
    if ((u & 16) === 0) out['guestPhysical'] = big(this.physicalLo[r]!, this.physicalHi[r]!);
    if ((u & 32) === 0) out['intrInfo'] = this.intrInfo[r];
    if ((u & 64) === 0) out['intrError'] = this.intrError[r];
    if ((u & 128) === 0) out['idtVectoringInfo'] = this.idtInfo[r];
    if ((u & 256) === 0) out['idtVectoringError'] = this.idtError[r];
    if ((u & 512) === 0) out['instructionLength'] = this.instrLen[r];
    if ((u & 1024) === 0) out['instructionInfo'] = this.info[r];
    const text = this.reasonText.get(r);
    if (text !== undefined) out['reasonText'] = text;
    return out as unknown as TraceEvent & ExitFields;
  }
}

const LEVEL_NAMES = ['unspecified', 'L1', 'L2'] as const;
const DECISION_NAMES = ['unspecified', 'reflected', 'handled-by-l0'] as const;

function big(lo: number, hi: number): bigint {
  return hi === 0 ? BigInt(lo >>> 0) : (BigInt(hi >>> 0) << 32n) | BigInt(lo >>> 0);
}

/** Reflection records of one chunk (decision, reason, inferred flag and RIP; the rule text is not kept). */
export class ReflectionColumns {
  length = 0;
  event = new Uint32Array(0);
  /** REFLECTION_DECISIONS index. */
  decision = new Uint8Array(0);
  exitReason = new Uint32Array(0);
  inferred = new Uint8Array(0);
  hasRip = new Uint8Array(0);
  ripLo = new Uint32Array(0);
  ripHi = new Uint32Array(0);

  ensure(n: number): void {
    if (this.event.length >= n) return;
    const cap = Math.max(n, this.event.length * 2, 64);
    const g32 = (a: Uint32Array) => { const b = new Uint32Array(cap); b.set(a.subarray(0, this.length)); return b; };
    const g8 = (a: Uint8Array) => { const b = new Uint8Array(cap); b.set(a.subarray(0, this.length)); return b; };
    this.event = g32(this.event); this.exitReason = g32(this.exitReason); this.ripLo = g32(this.ripLo); this.ripHi = g32(this.ripHi);
    this.decision = g8(this.decision); this.inferred = g8(this.inferred); this.hasRip = g8(this.hasRip);
  }

  decisionName(r: number): (typeof DECISION_NAMES)[number] {
    return DECISION_NAMES[this.decision[r]!]!;
  }
}

export interface ColumnOptions {
  /** Kinds to decode as objects into `ChunkColumns.objects` (exits and reflections always go to the columns). */
  readonly objects?: ReadonlySet<TraceEventKind>;
  /**
   * With 'vmcs-snapshot' in `objects`: decode only snapshots of these VMCS kinds; the others are framed and counted
   * like records of kinds not asked for (their deltas are neither applied nor checked). Undefined = every kind.
   */
  readonly snapshotKinds?: ReadonlySet<VmcsKind>;
  /** Snapshot objects are codec.ts LazySnapshotEvents: `fields` built only when read (the columnar replay reads `slots`). */
  readonly lazySnapshotFields?: boolean;
}

/** One chunk in columns. Reuse the same instance across chunks: its arrays keep their capacity. */
export class ChunkColumns {
  firstEvent = 0;
  eventCount = 0;
  readonly exits = new ExitColumns();
  readonly reflections = new ReflectionColumns();
  /** Events per kind, indexed by the kind's Event field number (kindSlot). */
  readonly kindCounts = new Uint32Array(32);
  /** Events of the kinds asked for in ColumnOptions.objects, with their relative event numbers. */
  readonly objects: { readonly event: number; readonly value: TraceEvent }[] = [];

  reset(firstEvent: number, eventCount: number): void {
    this.firstEvent = firstEvent;
    this.eventCount = eventCount;
    this.exits.clear();
    this.exits.ensure(eventCount);
    this.reflections.length = 0;
    this.reflections.ensure(eventCount);
    this.kindCounts.fill(0);
    this.objects.length = 0;
  }

  countOf(kind: TraceEventKind): number {
    return this.kindCounts[kindSlot(kind)]!;
  }
}

/** Readable bytes the parsers may need past the end of a payload (the reader allocates them; re-exported for benches). */
export { SLACK };
let slackCopy = new Uint8Array(0);

/** What the out-of-line generic path needs; lives across one chunk. */
class Fallback {
  decoder: ChunkDecoder | undefined;
  reader: $protobuf.Reader | undefined;
  /** What the fallback decoder believes the previous RIP of each exit kind is (it sees only fallback records). */
  decPrev: [bigint, bigint] = [0n, 0n];
  /** decPrev as halves [vm-exit lo, hi, l0-exit lo, hi], to compare with ripPrev without building bigints. */
  readonly decPrevHalves = new Uint32Array(4);

  constructor(readonly payload: Uint8Array, readonly file: string, readonly offset: number, readonly lazySnapshotFields = false) {}

  /** One record through the object decoders (fast path, then the generated decoder), keeping the RIP chain. */
  decode(p: number, len: number, event: number): TraceEvent {
    const decoder = (this.decoder ??= new ChunkDecoder(this.file, this.lazySnapshotFields));
    if (!this.reader) {
      this.reader = $protobuf.Reader.create(this.payload);
      this.reader.discardUnknown = false;
    }
    decoder.begin(event);
    const halves = this.decPrevHalves;
    for (let k = 0; k < 2; k++) {
      if (ripPrev[2 * k] === halves[2 * k] && ripPrev[2 * k + 1] === halves[2 * k + 1]) continue;
      const mine = big(ripPrev[2 * k]!, ripPrev[2 * k + 1]!);
      decoder.advanceRip(k === 0 ? 'vm-exit' : 'l0-exit', BigInt.asIntN(64, mine - this.decPrev[k]!));
      this.decPrev[k] = mine;
      halves[2 * k] = ripPrev[2 * k]!;
      halves[2 * k + 1] = ripPrev[2 * k + 1]!;
    }
    let value = fastDecode(this.payload, p, p + len, decoder);
    if (value === undefined) {
      let message;
      try {
        this.reader.pos = p;
        message = pb.Event.decode(this.reader, len);
      } catch (e) {
        throw new TraceFormatError('bad-record', this.file, { event, offset: this.offset }, `a decodable event record (${(e as Error).message}) (chunk byte ${p})`);
      }
      value = decoder.decode(message, event);
    }
    if ((value.kind === 'vm-exit' || value.kind === 'l0-exit') && value.rip !== undefined) {
      const k = value.kind === 'vm-exit' ? 0 : 1;
      ripPrev[2 * k] = Number(value.rip & 0xffff_ffffn);
      ripPrev[2 * k + 1] = Number(value.rip >> 32n);
      this.decPrev[k] = value.rip;
      halves[2 * k] = ripPrev[2 * k]!;
      halves[2 * k + 1] = ripPrev[2 * k + 1]!;
    }
    return value;
  }
}

function pushExitObject(exits: ExitColumns, e: TraceEvent & ExitFields, rel: number): void {
  const r = exits.length++;
  exits.event[r] = rel;
  exits.kind[r] = e.kind === 'vm-exit' ? EXIT_VM : EXIT_L0;
  exits.level[r] = LEVEL_NAMES.indexOf(e.level as (typeof LEVEL_NAMES)[number]);
  let u = 0;
  const q64 = (v: bigint | undefined, bit: number, lo: Uint32Array, hi: Uint32Array) => {
    if (v === undefined) { u |= bit; lo[r] = 0; hi[r] = 0; return; }
    lo[r] = Number(v & 0xffff_ffffn);
    hi[r] = Number(v >> 32n);
  };
  const q32 = (v: number | undefined, bit: number, col: Uint32Array) => {
    if (v === undefined) { u |= bit; col[r] = 0; } else col[r] = v;
  };
  q32(e.reason, 1, exits.reason);
  q64(e.qualification, 2, exits.qualLo, exits.qualHi);
  q64(e.rip, 4, exits.ripLo, exits.ripHi);
  q64(e.guestLinear, 8, exits.linearLo, exits.linearHi);
  q64(e.guestPhysical, 16, exits.physicalLo, exits.physicalHi);
  q32(e.intrInfo, 32, exits.intrInfo);
  q32(e.intrError, 64, exits.intrError);
  q32(e.idtVectoringInfo, 128, exits.idtInfo);
  q32(e.idtVectoringError, 256, exits.idtError);
  q32(e.instructionLength, 512, exits.instrLen);
  q32(e.instructionInfo, 1024, exits.info);
  exits.unknown[r] = u;
  exits.line[r] = e.line ?? 0;
  exits.vcpu[r] = e.vcpu ?? -1;
  // Every column written: conservatively dirty (clear() zeroes them for the next chunk).
  exits.rareDirty = true;
  exits.placeDirty = true;
  if (e.reasonText !== undefined) exits.reasonText.set(r, e.reasonText);
}

function pushReflectionObject(refl: ReflectionColumns, value: TraceEvent, rel: number): void {
  if (value.kind !== 'reflection') return;
  const r = refl.length++;
  refl.event[r] = rel;
  refl.decision[r] = DECISION_NAMES.indexOf(value.decision as (typeof DECISION_NAMES)[number]);
  refl.exitReason[r] = value.exitReason;
  refl.inferred[r] = value.inferred ? 1 : 0;
  refl.hasRip[r] = value.rip !== undefined ? 1 : 0;
  refl.ripLo[r] = value.rip !== undefined ? Number(value.rip & 0xffff_ffffn) : 0;
  refl.ripHi[r] = value.rip !== undefined ? Number(value.rip >> 32n) : 0;
}

function framingError(kind: 'corrupt' | 'oversized', file: string, event: number, offset: number, pos: number, what: string): TraceFormatError {
  return new TraceFormatError(kind, file, { event, offset }, `${what} (chunk byte ${pos})`);
}

/**
 * Decode one chunk's uncompressed records into `out`. Same framing rules and errors as decodeChunkPayload; exit and
 * reflection records are checked as the object decoder checks them; other records are framed and counted, and
 * decoded only for the kinds in `options.objects`.
 */
export function decodeChunkColumns(
  payload: Uint8Array, eventCount: number, firstEvent: number, file: string, offset: number, out: ChunkColumns, options: ColumnOptions = {},
): ChunkColumns {
  out.reset(firstEvent, eventCount);
  ripPrev.fill(0);
  // The exit parser reads up to SLACK bytes past a message before it notices; give it a view with that much room.
  const size = payload.length;
  let buf: Uint8Array;
  if (payload.byteOffset + size + SLACK <= payload.buffer.byteLength) {
    buf = new Uint8Array(payload.buffer, payload.byteOffset, size + SLACK);
  } else {
    if (slackCopy.length < size + SLACK) slackCopy = new Uint8Array(size + SLACK);
    slackCopy.set(payload);
    buf = slackCopy.subarray(0, size + SLACK);
  }
  const pos = decodeRecords(payload, buf, eventCount, firstEvent, file, offset, out, options);
  if (pos !== size) {
    throw new TraceFormatError('corrupt', file, { offset, event: firstEvent + eventCount }, `the chunk to end after ${eventCount} records, ${size - pos} bytes remain`);
  }
  return out;
}

/**
 * Whether buf[a, a+n) and buf[b, b+n) hold the same bytes, four at a time (both ranges lie within the payload, and
 * the view has SLACK bytes past it, so the last overlapping word is in range).
 */
function sameBytes(dv: DataView, a: number, b: number, n: number): boolean {
  if (n < 4) {
    for (let k = 0; k < n; k++) if (dv.getUint8(a + k) !== dv.getUint8(b + k)) return false;
    return true;
  }
  const last = n - 4;
  for (let k = 0; k < last; k += 4) if (dv.getInt32(a + k, true) !== dv.getInt32(b + k, true)) return false;
  return dv.getInt32(a + last, true) === dv.getInt32(b + last, true);
}

/**
 * The record loop of decodeChunkColumns; returns the position after the last record. A function of its own so that
 * the optimizing compiler compiles it whole: as the loop of a larger function it ran as on-stack-replacement code
 * that was thrown away (deoptimized) at the end of every chunk, on the comparison after the loop.
 */
function decodeRecords(
  payload: Uint8Array, buf: Uint8Array, eventCount: number, firstEvent: number, file: string, offset: number, out: ChunkColumns, options: ColumnOptions,
): number {
  const size = payload.length;
  const objects = options.objects;
  const wantObjects = objects !== undefined && objects.size > 0;
  const snapshotKinds = options.snapshotKinds;
  let fallback: Fallback | undefined;
  // The body of the exit message in the last exit row, when parseExit decoded it (-1: none): see repeatExit.
  let lastExitBody = 0;
  let lastExitLength = -1;
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const exits = out.exits;
  const refl = out.reflections;
  const counts = out.kindCounts;
  let pos = 0;
  for (let i = 0; i < eventCount; i++) {
    if (pos >= size) throw framingError('corrupt', file, firstEvent + i, offset, pos, `${eventCount} records in the chunk, it ends after ${i}`);
    // Record length: at most 4 bytes (MAX_RECORD_BYTES < 2^28).
    let p = pos;
    let b = payload[p++]!;
    let len = b & 0x7f;
    if (b >= 0x80) {
      let shift = 7;
      do {
        if (p >= size) throw framingError('corrupt', file, firstEvent + i, offset, pos, 'a complete record length');
        if (shift >= 28) throw framingError('oversized', file, firstEvent + i, offset, pos, `a record length below ${MAX_RECORD_BYTES}`);
        b = payload[p++]!;
        len |= (b & 0x7f) << shift;
        shift += 7;
      } while (b >= 0x80);
    }
    if (len > MAX_RECORD_BYTES) throw framingError('oversized', file, firstEvent + i, offset, pos, `a record of at most ${MAX_RECORD_BYTES} bytes, length says ${len}`);
    const end = p + len;
    if (end > size) throw framingError('corrupt', file, firstEvent + i, offset, pos, `a ${len}-byte record within the chunk's ${size} bytes`);
    // Top level as the writer lays it out: [vcpu (1)] [source line (2)] body (10–31, length-delimited) ending the
    // record. Any other layout (field order, repeated or unknown fields) goes to the generic decoder below.
    let q = p;
    let vcpu = -1;
    let line = 0;
    let plain = true;
    let field = 0;
    let body = 0;
    // The common cases first: no vcpu or line, a two-byte tag (fields 16–31, wire type 2) and a one-byte length,
    // read as one little-endian word (bytes 0–2; `buf` has slack past the payload).
    const w = dv.getInt32(p, true);
    if ((w & 0x80ff87) === 0x000182 && p + 3 + ((w >>> 16) & 0x7f) === end) {
      field = 16 | ((w >>> 3) & 0x0f);
      body = p + 3;
      if (BODY_FIELD[field] === 0) plain = false;
    } else if ((w & 0x8087) === 0x0002 && p + 2 + ((w >>> 8) & 0x7f) === end) {
      // A one-byte tag (fields 10–15, the VMX operations and steps of a recorded trace) and a one-byte length.
      field = (w & 0x7f) >>> 3;
      body = p + 2;
      if (BODY_FIELD[field] === 0) plain = false;
    } else {
      // vcpu and line: unrolled u32 varints (at most 5 bytes, the last holding bits 31:28); `buf` has slack to read into.
      if (buf[q] === 0x08) {
        q++;
        let b = buf[q++]!;
        let v = b & 0x7f;
        if (b >= 0x80) {
          b = buf[q++]!; v |= (b & 0x7f) << 7;
          if (b >= 0x80) {
            b = buf[q++]!; v |= (b & 0x7f) << 14;
            if (b >= 0x80) {
              b = buf[q++]!; v |= (b & 0x7f) << 21;
              if (b >= 0x80) { b = buf[q++]!; v |= b << 28; if (b > 0x0f) plain = false; }
            }
          }
        }
        vcpu = v >>> 0;
      }
      if (buf[q] === 0x10) {
        q++;
        let b = buf[q++]!;
        let v = b & 0x7f;
        if (b >= 0x80) {
          b = buf[q++]!; v |= (b & 0x7f) << 7;
          if (b >= 0x80) {
            b = buf[q++]!; v |= (b & 0x7f) << 14;
            if (b >= 0x80) {
              b = buf[q++]!; v |= (b & 0x7f) << 21;
              if (b >= 0x80) { b = buf[q++]!; v |= b << 28; if (b > 0x0f) plain = false; }
            }
          }
        }
        line = v >>> 0;
      }
      if (q >= end) plain = false;
      if (plain) {
        // Tag: one byte for fields 10–15, two for 16–31; wire type 2.
        let tag = buf[q++]!;
        if (tag >= 0x80) {
          const t2 = buf[q++]!;
          tag = t2 >= 0x80 ? 0 : (tag & 0x7f) | (t2 << 7);
        }
        field = tag >>> 3;
        let l = buf[q++]!;
        if (l >= 0x80) {
          let b2 = buf[q++]!;
          l = (l & 0x7f) | ((b2 & 0x7f) << 7);
          if (b2 >= 0x80) {
            b2 = buf[q++]!;
            l |= (b2 & 0x7f) << 14;
            if (b2 >= 0x80) {
              b2 = buf[q++]!;
              l |= (b2 & 0x7f) << 21;
              if (b2 >= 0x80) l = -1;
            }
          }
        }
        body = q;
        if ((tag & 7) !== 2 || field > 31 || BODY_FIELD[field] === 0 || l < 0 || q + l !== end) plain = false;
      }
    }
    const bodyEnd = end;
    if (plain) {
      if (field === 20 || field === 26) {
        const n = bodyEnd - body;
        if (n === lastExitLength && sameBytes(dv, body, lastExitBody, n)) {
          repeatExit(exits, field === 20 ? EXIT_VM : EXIT_L0, i, line, vcpu);
          counts[field]!++;
          pos = end;
          continue;
        }
        if (parseExit(buf, body, bodyEnd, exits, field === 20 ? EXIT_VM : EXIT_L0, i, line, vcpu) === 0) {
          lastExitBody = body;
          lastExitLength = n;
          counts[field]!++;
          pos = end;
          continue;
        }
      } else if (field === 24) {
        if (parseReflection(buf, body, bodyEnd, refl, i) === 0) {
          counts[24]!++;
          pos = end;
          continue;
        }
      } else if (!wantObjects || !objects.has(KIND_BY_FIELD[field]!)) {
        counts[field]!++;
        pos = end;
        continue;
      } else if (field === 22 && snapshotKinds !== undefined) {
        const which = snapshotKind(buf, body, bodyEnd);
        if (which !== undefined && !snapshotKinds.has(which)) {
          counts[22]!++;
          pos = end;
          continue;
        }
      }
    }
    // Everything else goes through the object decoders (out of line: rare), which also report errors.
    fallback ??= new Fallback(payload, file, offset, options.lazySnapshotFields === true);
    const value = fallback.decode(p, len, firstEvent + i);
    counts[kindSlot(value.kind)]!++;
    if (value.kind === 'vm-exit' || value.kind === 'l0-exit') {
      pushExitObject(exits, value, i);
      lastExitLength = -1;
    }
    else pushReflectionObject(refl, value, i);
    if (wantObjects && objects.has(value.kind)) out.objects.push({ event: i, value });
    pos = end;
  }
  return pos;
}
