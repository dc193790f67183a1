// Hand-written decoder for the records that dominate a trace (exits, snapshots, reflections, entries), varints straight
// into numbers and bigints, not Longs; plus a peek at a snapshot's VMCS kind (columns.ts). Any other shape (other events,
// strings, unknown or repeated fields, odd wire types, bad varints) returns undefined for the generated decoder.
// Must not: change decoder state before a record is fully read, or disagree with the generated decoder (a test checks).
import { LEVELS, REFLECTION_DECISIONS, VMCS_KINDS, type TraceEvent, type VmcsKind } from './events.js';
import type { ChunkDecoder } from './codec.js';
import { fromHalves, fromZigZagHalves } from './long.js';

// Varint scratch: the reader is single-threaded and not re-entrant, so module state avoids allocating per value.
let pos = 0;
let lo = 0;
let hi = 0;

/** Read a varint at `pos` into lo/hi (as protobufjs does, keeping 64 bits); false when malformed or past `end`. */
function varint(buf: Uint8Array, end: number): boolean {
  lo = 0;
  hi = 0;
  let b: number;
  for (let i = 0; i < 4; i++) {
    if (pos >= end) return false;
    b = buf[pos++]!;
    lo |= (b & 0x7f) << (7 * i);
    if (b < 0x80) {
      lo >>>= 0;
      return true;
    }
  }
  if (pos >= end) return false;
  b = buf[pos++]!;
  lo = (lo | ((b & 0x0f) << 28)) >>> 0;
  hi = (b & 0x7f) >> 4;
  if (b < 0x80) return true;
  for (let i = 0; i < 5; i++) {
    if (pos >= end) return false;
    b = buf[pos++]!;
    hi = (hi | ((b & 0x7f) << (7 * i + 3))) >>> 0;
    if (b < 0x80) return true;
  }
  return false;
}

/**
 * A varint read where protobufjs reads a uint32 (tags, lengths, 32-bit and enum fields): protobufjs assumes such a
 * varint takes at most 5 bytes (skipping blindly past longer ones), so anything longer is left to it.
 */
function varint32(buf: Uint8Array, end: number): boolean {
  const start = pos;
  return varint(buf, end) && pos - start <= 5;
}

function u64(): bigint {
  return fromHalves(lo, hi);
}

function s64(): bigint {
  return fromZigZagHalves(lo, hi);
}

/** A packed repeated varint field [pos, pos+len) → numbers (u32) or bigints; undefined if malformed. */
function packedU32(buf: Uint8Array, end: number): number[] | undefined {
  if (!varint32(buf, end) || hi !== 0) return undefined;
  const stop = pos + lo;
  if (stop > end) return undefined;
  const out: number[] = [];
  while (pos < stop) {
    if (!varint32(buf, stop)) return undefined;
    out.push(lo);
  }
  return out;
}

function packedU64(buf: Uint8Array, end: number): bigint[] | undefined {
  if (!varint32(buf, end) || hi !== 0) return undefined;
  const stop = pos + lo;
  if (stop > end) return undefined;
  const out: bigint[] = [];
  while (pos < stop) {
    if (!varint(buf, stop)) return undefined;
    out.push(u64());
  }
  return out;
}

/** Length of a nested message at `pos`; -1 if malformed. */
function messageEnd(buf: Uint8Array, end: number): number {
  if (!varint32(buf, end) || hi !== 0 || pos + lo > end) return -1;
  return pos + lo;
}

function exit(buf: Uint8Array, end: number, kind: 'vm-exit' | 'l0-exit', vcpu: number, line: number, dec: ChunkDecoder): TraceEvent | undefined {
  let level = 0;
  let reason = 0;
  let qualification = 0n;
  let ripDelta = 0n;
  let linear = 0n;
  let physical = 0n;
  let intrInfo = 0;
  let intrError = 0;
  let idtInfo = 0;
  let idtError = 0;
  let length = 0;
  let info = 0;
  let unknown = 0;
  while (pos < end) {
    if (!varint32(buf, end) || hi !== 0 || (lo & 7) !== 0) return undefined;
    const field = lo >>> 3;
    // 64-bit fields take a full varint; the others are read as protobufjs reads a uint32.
    if (!(field >= 3 && field <= 6 ? varint(buf, end) : varint32(buf, end))) return undefined;
    switch (field) {
      case 1: level = hi === 0 ? lo : -1; break;
      case 2: reason = lo; break;
      case 3: qualification = u64(); break;
      case 4: ripDelta = s64(); break;
      case 5: linear = u64(); break;
      case 6: physical = u64(); break;
      case 7: intrInfo = lo; break;
      case 8: intrError = lo; break;
      case 9: idtInfo = lo; break;
      case 10: idtError = lo; break;
      case 11: length = lo; break;
      case 12: info = lo; break;
      case 13: unknown = lo; break;
      default: return undefined;
    }
  }
  const levelName = LEVELS[level];
  if (levelName === undefined || unknown >= 1 << 11 || ((unknown & 4) !== 0 && ripDelta !== 0n)) return undefined;
  const out: Record<string, unknown> = { kind, level: levelName };
  if (vcpu >= 0) out['vcpu'] = vcpu;
  if (line > 0) out['line'] = line;
  if ((unknown & 1) === 0) out['reason'] = reason;
  if ((unknown & 2) === 0) out['qualification'] = qualification;
  if ((unknown & 4) === 0) out['rip'] = dec.advanceRip(kind, ripDelta);
  if ((unknown & 8) === 0) out['guestLinear'] = linear;
  if ((unknown & 16) === 0) out['guestPhysical'] = physical;
  if ((unknown & 32) === 0) out['intrInfo'] = intrInfo;
  if ((unknown & 64) === 0) out['intrError'] = intrError;
  if ((unknown & 128) === 0) out['idtVectoringInfo'] = idtInfo;
  if ((unknown & 256) === 0) out['idtVectoringError'] = idtError;
  if ((unknown & 512) === 0) out['instructionLength'] = length;
  if ((unknown & 1024) === 0) out['instructionInfo'] = info;
  return out as unknown as TraceEvent;
}

function snapshot(buf: Uint8Array, end: number, vcpu: number, line: number, dec: ChunkDecoder): TraceEvent | undefined {
  let which = 0;
  let encodings: number[] = [];
  let values: bigint[] = [];
  let cleared: number[] = [];
  let address: bigint | undefined;
  let seen = 0;
  while (pos < end) {
    if (!varint32(buf, end) || hi !== 0) return undefined;
    const field = lo >>> 3;
    const wire = lo & 7;
    if (field < 1 || field > 5 || seen & (1 << field)) return undefined;
    seen |= 1 << field;
    if (field === 1 || field === 5) {
      if (wire !== 0 || !(field === 1 ? varint32(buf, end) : varint(buf, end))) return undefined;
      if (field === 1) which = hi === 0 ? lo : -1;
      else address = u64();
      continue;
    }
    if (wire !== 2) return undefined;
    if (field === 3) {
      const v = packedU64(buf, end);
      if (!v) return undefined;
      values = v;
    } else {
      const v = packedU32(buf, end);
      if (!v) return undefined;
      if (field === 2) encodings = v;
      else cleared = v;
    }
  }
  const whichName = VMCS_KINDS[which];
  if (whichName === undefined) return undefined;
  const out = dec.snapshotEvent(whichName, encodings, values, cleared);
  if (address !== undefined) out['address'] = address;
  if (vcpu >= 0) out['vcpu'] = vcpu;
  if (line > 0) out['line'] = line;
  return out as unknown as TraceEvent;
}

function reflection(buf: Uint8Array, end: number, vcpu: number, line: number): TraceEvent | undefined {
  let decision = 0;
  let exitReason = 0;
  let inferred = false;
  let rip: bigint | undefined;
  while (pos < end) {
    if (!varint32(buf, end) || hi !== 0 || (lo & 7) !== 0) return undefined;
    const field = lo >>> 3;
    if (!(field === 4 ? varint(buf, end) : varint32(buf, end))) return undefined;
    if (field === 1) decision = hi === 0 ? lo : -1;
    else if (field === 2) exitReason = lo;
    else if (field === 3) inferred = lo !== 0; // protobufjs: uint32() !== 0
    else if (field === 4) rip = u64();
    else return undefined; // the rule text (5) or an unknown field
  }
  const d = REFLECTION_DECISIONS[decision];
  if (d === undefined) return undefined;
  const out: Record<string, unknown> = { kind: 'reflection', decision: d, exitReason, inferred, rule: '' };
  if (rip !== undefined) out['rip'] = rip;
  if (vcpu >= 0) out['vcpu'] = vcpu;
  if (line > 0) out['line'] = line;
  return out as unknown as TraceEvent;
}

const ENTRY_U64 = ['', '', 'rip', 'vmcs12', 'l1Rip', '', 'eptp', 'guestCr3'] as const;

function vmEntry(buf: Uint8Array, end: number, vcpu: number, line: number): TraceEvent | undefined {
  const out: Record<string, unknown> = { kind: 'vm-entry', level: 'unspecified', note: '' };
  let level = 0;
  while (pos < end) {
    if (!varint32(buf, end) || hi !== 0 || (lo & 7) !== 0) return undefined;
    const field = lo >>> 3;
    const wide = field >= 2 && field <= 7 && field !== 5;
    if (!(wide ? varint(buf, end) : varint32(buf, end))) return undefined;
    if (field === 1) level = hi === 0 ? lo : -1;
    else if (field === 5) out['entryIntrInfo'] = lo;
    else if (field === 8) out['intCtl'] = lo;
    else if (field >= 2 && field <= 7) out[ENTRY_U64[field]!] = u64();
    else return undefined; // the note text (9) or an unknown field
  }
  const l = LEVELS[level];
  if (l === undefined) return undefined;
  out['level'] = l;
  if (vcpu >= 0) out['vcpu'] = vcpu;
  if (line > 0) out['line'] = line;
  return out as unknown as TraceEvent;
}

/** Decode the record in buf[start, end) if it has one of the plain hot shapes; otherwise undefined. */
export function fastDecode(buf: Uint8Array, start: number, end: number, dec: ChunkDecoder): TraceEvent | undefined {
  pos = start;
  let vcpu = -1;
  let line = 0;
  let body = -1;
  let bodyEnd = -1;
  let kind = 0;
  while (pos < end) {
    if (!varint32(buf, end) || hi !== 0) return undefined;
    const field = lo >>> 3;
    const wire = lo & 7;
    if (field === 1 || field === 2) {
      if (wire !== 0 || !varint32(buf, end)) return undefined;
      if (field === 1) vcpu = lo;
      else line = lo;
      continue;
    }
    if (wire !== 2 || body >= 0 || (field !== 20 && field !== 22 && field !== 24 && field !== 26 && field !== 27)) return undefined;
    kind = field;
    const e = messageEnd(buf, end);
    if (e < 0) return undefined;
    body = pos;
    bodyEnd = e;
    pos = e;
  }
  if (body < 0) return undefined;
  pos = body;
  switch (kind) {
    case 20: return exit(buf, bodyEnd, 'vm-exit', vcpu, line, dec);
    case 26: return exit(buf, bodyEnd, 'l0-exit', vcpu, line, dec);
    case 22: return snapshot(buf, bodyEnd, vcpu, line, dec);
    case 24: return reflection(buf, bodyEnd, vcpu, line);
    default: return vmEntry(buf, bodyEnd, vcpu, line);
  }
}

/**
 * The VMCS kind of the snapshot message in buf[p, end) from a scan of its fields (the last `which` wins, absent = 0),
 * or undefined when the message is not plainly well-formed (the object decoder then decodes it and reports errors).
 */
export function snapshotKind(buf: Uint8Array, p: number, end: number): VmcsKind | undefined {
  let which = 0;
  while (p < end) {
    const tag = buf[p++]!;
    const field = tag >>> 3;
    if (tag >= 0x80 || field < 1 || field > 5) return undefined;
    let v = 0;
    let shift = 0;
    let b: number;
    do {
      if (p >= end || shift > 63) return undefined;
      b = buf[p++]!;
      if (shift < 28) v |= (b & 0x7f) << shift;
      shift += 7;
    } while (b >= 0x80);
    const wire = tag & 7;
    if (wire === 0 && (field === 1 || field === 5)) {
      if (field === 1) {
        if (shift > 7) return undefined;
        which = v;
      }
    } else if (wire === 2 && field >= 2 && field <= 4) {
      if (shift > 28 || v > end - p) return undefined;
      p += v;
    } else {
      return undefined;
    }
  }
  return VMCS_KINDS[which];
}
