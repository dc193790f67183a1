// The hot record parsers of the columnar decoder (columns.ts): one exit or reflection message straight into a row of
// its typed-array columns (64-bit values as two u32 halves, never a number or a bigint), no object per record.
// Must not: accept a message the generated decoder would read differently (anything unusual returns FALLBACK and the
// caller decodes the record with the object decoders, which also report errors), or keep state beyond one chunk
// (the RIP chain and the last decoded exit, which the caller resets).
import type { ExitColumns, ReflectionColumns } from './columns.js';

/** Result of a parser when the record needs the generated decoder. */
export const FALLBACK = -1;

/** Readable bytes the parsers may touch past the end of a payload (a 10-byte varint plus its tag, and a peek). */
export const SLACK = 16;

/** Per-exit-kind running RIP as halves [vm-exit lo, hi, l0-exit lo, hi]; restarts with every chunk. */
export const ripPrev = new Uint32Array(4);

// Result of varint64: bits 31:0 and 63:32 (as int32). Module state, not an object, so that the reader allocates
// nothing; single-threaded and not re-entrant.
let vLo = 0;
let vHi = 0;

/**
 * The varint at buf[p] (up to 10 bytes, bits past 63 dropped as protobufjs drops them): sets vLo/vHi and returns the
 * position after it, or -1 for an 11th byte. Reads without bounds checks against the message end: the caller checks
 * the returned position (buf has SLACK bytes of room).
 */
function varint64(buf: Uint8Array, p: number): number {
  let b = buf[p++]!;
  let lo = b & 0x7f;
  let hi = 0;
  if (b >= 0x80) {
    b = buf[p++]!; lo |= (b & 0x7f) << 7;
    if (b >= 0x80) {
      b = buf[p++]!; lo |= (b & 0x7f) << 14;
      if (b >= 0x80) {
        b = buf[p++]!; lo |= (b & 0x7f) << 21;
        if (b >= 0x80) {
          b = buf[p++]!; lo |= (b & 0x0f) << 28; hi = (b & 0x7f) >>> 4;
          let shift = 3;
          while (b >= 0x80) {
            if (shift > 31) return -1;
            b = buf[p++]!; hi |= (b & 0x7f) << shift;
            shift += 7;
          }
        }
      }
    }
  }
  vLo = lo;
  vHi = hi;
  return p;
}

// The last exit parseExit decoded, for repeatExit: its RIP delta (zigzag, halves), unknown mask and whether any of
// the rarely used columns was non-zero.
let lastDeltaLo = 0;
let lastDeltaHi = 0;
let lastUnknown = 0;
let lastRare = false;

/**
 * Decode the exit message in buf[p, end) into the next row of `c` (with its event number, line and vcpu). Returns 0,
 * or FALLBACK for anything but a plain shape (reason text, unknown fields, 32-bit varints longer than the 5 bytes
 * protobufjs reads, bad enum values or masks, a varint running past the message). The writer's layout (fields in
 * number order, each once, one-byte enums) is read straight down with the varints inline; a message that leaves it
 * goes on through the general loop from the first unexpected tag, which gives the same values because protobuf
 * applies fields in order (the last occurrence wins). The rarely used columns (see ExitColumns.rareDirty) and
 * line/vcpu are stored only when non-empty.
 */
export function parseExit(buf: Uint8Array, p: number, end: number, c: ExitColumns, kindIdx: number, event: number, line: number, vcpu: number): number {
  let level = 0, reason = 0, unknown = 0;
  let qLo = 0, qHi = 0, dLo = 0, dHi = 0, laLo = 0, laHi = 0, paLo = 0, paHi = 0;
  let intr = 0, intrErr = 0, idt = 0, idtErr = 0, len = 0, info = 0;
  // The straight path. `t` is the next tag byte, 0 at the end of the message; one-byte enum and 32-bit values are
  // taken inline (anything longer leaves the straight path); 64-bit values through varint64. Varints are read without per-byte bounds checks: buf
  // has SLACK readable bytes past the payload, and a varint that ends past `end` is caught after the fact.
  let t = p < end ? buf[p]! : 0;
  if (t === 0x08 && buf[p + 1]! < 0x80) { level = buf[p + 1]!; p += 2; t = p < end ? buf[p]! : 0; }
  if (t === 0x10 && buf[p + 1]! < 0x80) { reason = buf[p + 1]!; p += 2; t = p < end ? buf[p]! : 0; }
  if (t === 0x18) {
    p = varint64(buf, p + 1);
    if (p < 0 || p > end) return FALLBACK;
    qLo = vLo; qHi = vHi;
    t = p < end ? buf[p]! : 0;
  }
  if (t === 0x20) {
    p = varint64(buf, p + 1);
    if (p < 0 || p > end) return FALLBACK;
    dLo = vLo; dHi = vHi;
    t = p < end ? buf[p]! : 0;
  }
  if (t === 0x28) {
    p = varint64(buf, p + 1);
    if (p < 0 || p > end) return FALLBACK;
    laLo = vLo; laHi = vHi;
    t = p < end ? buf[p]! : 0;
  }
  if (t === 0x30) {
    p = varint64(buf, p + 1);
    if (p < 0 || p > end) return FALLBACK;
    paLo = vLo; paHi = vHi;
    t = p < end ? buf[p]! : 0;
  }
  if (t >= 0x38 && p < end) {
    // The rarer 32-bit fields (interruption and vectoring info, length, instruction info, the unknown mask).
    if (t === 0x38 && buf[p + 1]! < 0x80) { intr = buf[p + 1]!; p += 2; t = p < end ? buf[p]! : 0; }
    if (t === 0x40 && buf[p + 1]! < 0x80) { intrErr = buf[p + 1]!; p += 2; t = p < end ? buf[p]! : 0; }
    if (t === 0x48 && buf[p + 1]! < 0x80) { idt = buf[p + 1]!; p += 2; t = p < end ? buf[p]! : 0; }
    if (t === 0x50 && buf[p + 1]! < 0x80) { idtErr = buf[p + 1]!; p += 2; t = p < end ? buf[p]! : 0; }
    if (t === 0x58 && buf[p + 1]! < 0x80) { len = buf[p + 1]!; p += 2; t = p < end ? buf[p]! : 0; }
    if (t === 0x60 && buf[p + 1]! < 0x80) { info = buf[p + 1]!; p += 2; t = p < end ? buf[p]! : 0; }
    if (t === 0x68 && buf[p + 1]! < 0x80) { unknown = buf[p + 1]!; p += 2; }
  }
  if (p > end) return FALLBACK; // a one-byte value read past a message that ended after its tag
  // The general loop: any order, repeats, long encodings.
  while (p < end) {
    const tag = buf[p++]!;
    const start = p;
    p = varint64(buf, p);
    if (p < 0 || p > end || (tag & 7) !== 0 || tag >= 0x80) return FALLBACK;
    const lo = vLo, hi = vHi;
    // 32-bit and enum fields: protobufjs reads at most 5 bytes; longer encodings go to it.
    const long32 = p - start > 5;
    switch (tag >>> 3) {
      case 1: if (long32) return FALLBACK; level = lo; break;
      case 2: if (long32) return FALLBACK; reason = lo; break;
      case 3: qLo = lo; qHi = hi; break;
      case 4: dLo = lo; dHi = hi; break;
      case 5: laLo = lo; laHi = hi; break;
      case 6: paLo = lo; paHi = hi; break;
      case 7: if (long32) return FALLBACK; intr = lo; break;
      case 8: if (long32) return FALLBACK; intrErr = lo; break;
      case 9: if (long32) return FALLBACK; idt = lo; break;
      case 10: if (long32) return FALLBACK; idtErr = lo; break;
      case 11: if (long32) return FALLBACK; len = lo; break;
      case 12: if (long32) return FALLBACK; info = lo; break;
      case 13: if (long32) return FALLBACK; unknown = lo; break;
      default: return FALLBACK;
    }
  }
  if ((level >>> 0) > 2 || (unknown >>> 0) >= 1 << 11) return FALLBACK;
  if ((unknown & 4) !== 0 && (dLo | dHi) !== 0) return FALLBACK;
  const row = c.length;
  advanceRip(c, row, kindIdx, unknown, dLo, dHi);
  c.kind[row] = kindIdx;
  c.level[row] = level;
  c.reason[row] = (unknown & 1) === 0 ? reason : 0;
  c.qualLo[row] = qLo;
  c.physicalLo[row] = paLo; c.physicalHi[row] = paHi;
  c.instrLen[row] = len;
  const rare = (qHi | laLo | laHi | intr | intrErr | idt | idtErr | info | unknown) !== 0;
  if (rare) {
    c.qualHi[row] = qHi;
    c.linearLo[row] = laLo; c.linearHi[row] = laHi;
    c.intrInfo[row] = intr; c.intrError[row] = intrErr;
    c.idtInfo[row] = idt; c.idtError[row] = idtErr;
    c.info[row] = info;
    c.unknown[row] = unknown;
    c.rareDirty = true;
  }
  place(c, row, event, line, vcpu);
  lastDeltaLo = dLo;
  lastDeltaHi = dHi;
  lastUnknown = unknown;
  lastRare = rare;
  return 0;
}

/**
 * The next exit row when its message has the same bytes as the one parseExit (or repeatExit) decoded into the last
 * row (in a nested trace, L1's exit usually repeats the L0 exit it reflects): the same fields, its own kind, event,
 * line and vcpu, and the same RIP delta applied to its own kind's RIP.
 */
export function repeatExit(c: ExitColumns, kindIdx: number, event: number, line: number, vcpu: number): void {
  const row = c.length;
  const prev = row - 1;
  advanceRip(c, row, kindIdx, lastUnknown, lastDeltaLo, lastDeltaHi);
  c.kind[row] = kindIdx;
  c.level[row] = c.level[prev]!;
  c.reason[row] = c.reason[prev]!;
  c.qualLo[row] = c.qualLo[prev]!;
  c.physicalLo[row] = c.physicalLo[prev]!; c.physicalHi[row] = c.physicalHi[prev]!;
  c.instrLen[row] = c.instrLen[prev]!;
  if (lastRare) {
    c.qualHi[row] = c.qualHi[prev]!;
    c.linearLo[row] = c.linearLo[prev]!; c.linearHi[row] = c.linearHi[prev]!;
    c.intrInfo[row] = c.intrInfo[prev]!; c.intrError[row] = c.intrError[prev]!;
    c.idtInfo[row] = c.idtInfo[prev]!; c.idtError[row] = c.idtError[prev]!;
    c.info[row] = c.info[prev]!;
    c.unknown[row] = c.unknown[prev]!;
  }
  place(c, row, event, line, vcpu);
}

/** RIP of row `row` = previous RIP of this exit kind + zigzag(delta), modulo 2^64; 0 when the RIP is unknown. */
function advanceRip(c: ExitColumns, row: number, kindIdx: number, unknown: number, dLo: number, dHi: number): void {
  if ((unknown & 4) !== 0) {
    c.ripLo[row] = 0;
    c.ripHi[row] = 0;
    return;
  }
  const sign = -(dLo & 1);
  const nLo = (((dLo >>> 1) | (dHi << 31)) ^ sign) >>> 0;
  const nHi = ((dHi >>> 1) ^ sign) >>> 0;
  const k = kindIdx << 1;
  const pLo = ripPrev[k]!, pHi = ripPrev[k + 1]!;
  const sLo = (pLo + nLo) >>> 0;
  const sHi = (pHi + nHi + (sLo < pLo ? 1 : 0)) >>> 0;
  ripPrev[k] = sLo;
  ripPrev[k + 1] = sHi;
  c.ripLo[row] = sLo;
  c.ripHi[row] = sHi;
}

function place(c: ExitColumns, row: number, event: number, line: number, vcpu: number): void {
  c.event[row] = event;
  if (line !== 0 || vcpu !== -1) {
    c.line[row] = line;
    c.vcpu[row] = vcpu;
    c.placeDirty = true;
  }
  c.length = row + 1;
}

/**
 * Decode a reflection message in buf[p, end) into row `row`; FALLBACK like parseExit. The rule text is skipped. The
 * writer's layout (decision, one-byte reason, inferred flag, RIP) is read straight down, the rest by the general loop.
 */
export function parseReflection(buf: Uint8Array, p: number, end: number, c: ReflectionColumns, event: number): number {
  const row = c.length;
  let decision = 0, reason = 0, inferred = 0, hasRip = 0, rLo = 0, rHi = 0;
  let t = p < end ? buf[p]! : 0;
  if (t === 0x08 && buf[p + 1]! < 0x80) { decision = buf[p + 1]!; p += 2; t = p < end ? buf[p]! : 0; }
  if (t === 0x10 && buf[p + 1]! < 0x80) { reason = buf[p + 1]!; p += 2; t = p < end ? buf[p]! : 0; }
  if (t === 0x18 && buf[p + 1]! < 0x80) { inferred = buf[p + 1]! !== 0 ? 1 : 0; p += 2; }
  if (p > end) return FALLBACK;
  while (p < end) {
    const tag = buf[p++]!;
    if (tag >= 0x80) return FALLBACK;
    const field = tag >>> 3;
    const wire = tag & 7;
    const start = p;
    p = varint64(buf, p);
    if (p < 0 || p > end) return FALLBACK;
    if (field === 5 && wire === 2) {
      // The rule text: a length (at most 5 bytes as protobufjs reads it), skipped.
      if (p - start > 5 || vHi !== 0 || vLo < 0 || vLo > end - p) return FALLBACK;
      p += vLo;
      continue;
    }
    if (wire !== 0 || field < 1 || field > 4 || (field !== 4 && p - start > 5)) return FALLBACK;
    if (field === 1) decision = vLo >>> 0;
    else if (field === 2) reason = vLo;
    else if (field === 3) inferred = vLo !== 0 ? 1 : 0;
    else { hasRip = 1; rLo = vLo; rHi = vHi; }
  }
  if (decision > 2) return FALLBACK;
  c.decision[row] = decision;
  c.exitReason[row] = reason;
  c.inferred[row] = inferred;
  c.hasRip[row] = hasRip;
  c.ripLo[row] = rLo;
  c.ripHi[row] = rHi;
  c.event[row] = event;
  c.length = row + 1;
  return 0;
}
