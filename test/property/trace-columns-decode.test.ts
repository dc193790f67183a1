// The columnar decoder (src/replay/format/columns.ts, column-parsers.ts) against the object decoder as the simpler
// model, at the byte level: on valid chunks (with exits that repeat the previous exit's message, as nested traces
// do), on exit and reflection messages in odd but valid encodings (any field order, repeated fields, over-long
// varints, records carrying vcpu/line), and on chunks with flipped bits, both give the same rows or both reject.
// One ChunkColumns is reused across all cases, so stale rows from an earlier chunk would show.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { propertyParams } from '../support/property.js';
import { arbEvent, arbExitFields } from '../support/arbitraries/trace.js';
import {
  ChunkColumns, EVENT_KINDS, TraceFormatError, decodeChunkColumns, decodeChunkPayload, kindSlot, type TraceEvent,
} from '../../src/replay/format/index.js';
import { ChunkEncoder } from '../../src/replay/format/codec.js';
import { pb } from '../../src/replay/format/pb.js';

function varint(v: bigint, pad = 0): number[] {
  const out: number[] = [];
  let x = BigInt.asUintN(64, v);
  do {
    out.push(Number(x & 0x7fn));
    x >>= 7n;
  } while (x > 0n);
  // Over-long encoding: continuation bytes carrying zero bits (at most 10 bytes in all).
  for (let i = 0; i < pad && out.length < 10; i++) out.push(0);
  for (let i = 0; i < out.length - 1; i++) out[i]! |= 0x80;
  return out;
}

function frame(records: readonly number[][]): Uint8Array {
  const out: number[] = [];
  for (const r of records) out.push(...varint(BigInt(r.length)), ...r);
  return Uint8Array.from(out);
}

function recordsOf(events: readonly TraceEvent[]): number[][] {
  const enc = new ChunkEncoder('m');
  return events.map((e, i) => [...pb.Event.encode(enc.encode(e, i)).finish()]);
}

/** The body fields of a record as (field, wire, bytes) in wire order; undefined if it is not plain top-level. */
function topFields(r: readonly number[]): { field: number; wire: number; bytes: number[] }[] {
  const out: { field: number; wire: number; bytes: number[] }[] = [];
  let p = 0;
  const readVarint = (): bigint => {
    let v = 0n;
    let shift = 0n;
    for (;;) {
      if (p >= r.length) throw new Error('turtles test bug: a varint past the end of a writer record');
      const b = r[p++]!;
      v |= BigInt(b & 0x7f) << shift;
      shift += 7n;
      if (b < 0x80) return v;
    }
  };
  while (p < r.length) {
    const tag = Number(readVarint());
    const start = p;
    if ((tag & 7) === 0) readVarint();
    else if ((tag & 7) === 2) {
      const n = Number(readVarint());
      p += n;
    }
    else throw new Error('unexpected wire type in a writer record');
    out.push({ field: tag >>> 3, wire: tag & 7, bytes: r.slice(start, p) });
  }
  return out;
}

/**
 * Re-encode an exit or reflection record oddly: body fields shuffled (by `order`), some repeated (an earlier copy
 * with another value that the later one overrides), varints padded; vcpu/line as given. Other records unchanged.
 */
function oddly(r: number[], order: number[], pads: number[], dup: boolean, place: { vcpu?: number; line?: number }): number[] {
  const top = topFields(r);
  const body = top.find((f) => f.field === 20 || f.field === 26 || f.field === 24);
  if (!body) return r;
  const inner = topFields(body.bytes.slice(lengthPrefixSize(body.bytes)));
  // Only varint fields are re-encoded (the reflection's rule text stays as it is).
  const fields = inner.map((f, i) => {
    if (f.wire !== 0) return [...varint(BigInt((f.field << 3) | f.wire)), ...f.bytes];
    let v = 0n;
    let shift = 0n;
    for (const b of f.bytes) {
      v |= BigInt(b & 0x7f) << shift;
      shift += 7n;
    }
    // 32-bit fields: protobufjs reads at most 5 bytes, so padding beyond that is the generated decoder's business
    // (the columnar one declines it); keep the pads in range for both kinds of field.
    const pad = pads[i % pads.length]! % 4;
    return [...varint(BigInt(f.field << 3)), ...varint(v, pad)];
  });
  // Any order is valid protobuf: sort by a key drawn from `order`.
  const key = (i: number): number => (order[i % order.length]! * 31 + i * 7) % 13;
  const ordered = fields.map((f, i) => ({ f, k: key(i) })).sort((a, b) => a.k - b.k).map((x) => x.f);
  const first = dup && inner.length > 0 && inner[0]!.wire === 0 ? [...varint(BigInt(inner[0]!.field << 3)), 1] : [];
  const newBody = [...first, ...ordered.flat()];
  const out: number[] = [];
  if (place.vcpu !== undefined) out.push(0x08, ...varint(BigInt(place.vcpu)));
  if (place.line !== undefined) out.push(0x10, ...varint(BigInt(place.line)));
  out.push(...varint(BigInt((body.field << 3) | 2)), ...varint(BigInt(newBody.length)), ...newBody);
  return out;
}

function lengthPrefixSize(bytes: readonly number[]): number {
  let n = 0;
  while (bytes[n]! >= 0x80) n++;
  return n + 1;
}

type Outcome = { exits: TraceEvent[]; exitEvents: number[]; refl: unknown[]; counts: number[] } | 'rejected';

/** Every kind decoded (records of kinds not asked for are only framed and counted, so their damage is not seen). */
const ALL_KINDS = new Set(EVENT_KINDS);

function viaColumns(payload: Uint8Array, count: number, cols: ChunkColumns): Outcome {
  try {
    decodeChunkColumns(payload, count, 0, 'm', 0, cols, { objects: ALL_KINDS });
  } catch (e) {
    if (e instanceof TraceFormatError) return 'rejected';
    throw e;
  }
  const exits: TraceEvent[] = [];
  const exitEvents: number[] = [];
  for (let r = 0; r < cols.exits.length; r++) {
    exits.push(cols.exits.toEvent(r));
    exitEvents.push(cols.exits.event[r]!);
  }
  const refl: unknown[] = [];
  const rf = cols.reflections;
  for (let r = 0; r < rf.length; r++) {
    refl.push([rf.event[r], rf.decisionName(r), rf.exitReason[r], rf.inferred[r] === 1, rf.hasRip[r] === 1 ? (BigInt(rf.ripHi[r]!) << 32n) | BigInt(rf.ripLo[r]!) : undefined]);
  }
  return { exits, exitEvents, refl, counts: EVENT_KINDS.map((k) => cols.kindCounts[kindSlot(k)]!) };
}

function viaObjects(payload: Uint8Array, count: number): Outcome {
  let events: TraceEvent[];
  try {
    events = decodeChunkPayload(payload, count, 0, 'm', 0).events;
  } catch (e) {
    if (e instanceof TraceFormatError) return 'rejected';
    throw e;
  }
  const exits: TraceEvent[] = [];
  const exitEvents: number[] = [];
  const refl: unknown[] = [];
  events.forEach((e, i) => {
    if (e.kind === 'vm-exit' || e.kind === 'l0-exit') {
      exits.push(e);
      exitEvents.push(i);
    } else if (e.kind === 'reflection') {
      refl.push([i, e.decision, e.exitReason, e.inferred, e.rip]);
    }
  });
  return { exits, exitEvents, refl, counts: EVENT_KINDS.map((k) => events.filter((e) => e.kind === k).length) };
}

/** Events where exits come in pairs with the same fields (an L0 exit, then the exit L1 gets), as in nested traces. */
const arbNestedEvents = fc.array(
  fc.oneof(
    arbEvent.map((e) => [e]),
    fc.record({ f: arbExitFields, reflected: fc.boolean() }).map(({ f, reflected }): TraceEvent[] => [
      { kind: 'l0-exit', ...f },
      { kind: 'reflection', decision: reflected ? 'reflected' : 'handled-by-l0', exitReason: f.reason ?? 0, inferred: false, rule: '' },
      ...(reflected ? [{ kind: 'vm-exit' as const, ...f }] : []),
    ]),
  ),
  { maxLength: 20 },
).map((groups) => groups.flat());

describe('columnar decode = object decode, byte level', () => {
  const cols = new ChunkColumns();

  it('on valid chunks, including exits that repeat the previous exit message', () => {
    fc.assert(
      fc.property(arbNestedEvents, (events) => {
        const p = frame(recordsOf(events));
        expect(viaColumns(p, events.length, cols)).toEqual(viaObjects(p, events.length));
      }),
      propertyParams({ numRuns: 300 }),
    );
  });

  it('on exit and reflection messages in odd but valid encodings', () => {
    fc.assert(
      fc.property(
        arbNestedEvents,
        fc.array(fc.nat(7), { minLength: 1, maxLength: 4 }),
        fc.array(fc.nat(9), { minLength: 1, maxLength: 5 }),
        fc.boolean(),
        fc.option(fc.nat(), { nil: undefined }),
        fc.option(fc.integer({ min: 1, max: 0xffff_ffff }), { nil: undefined }),
        (events, order, pads, dup, vcpu, line) => {
          const p = frame(recordsOf(events).map((r, i) => (i % 2 === 0 ? oddly(r, order, pads, dup, { vcpu, line }) : r)));
          expect(viaColumns(p, events.length, cols)).toEqual(viaObjects(p, events.length));
        },
      ),
      propertyParams({ numRuns: 300 }),
    );
  });

  it('on chunks with flipped bits (both reject, or both give the same rows)', () => {
    fc.assert(
      fc.property(arbNestedEvents, fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 7 })), { minLength: 1, maxLength: 3 }), (events, flips) => {
        const p = frame(recordsOf(events));
        if (p.length === 0) return;
        for (const [at, bit] of flips) p[at % p.length] = p[at % p.length]! ^ (1 << bit);
        expect(viaColumns(p, events.length, cols)).toEqual(viaObjects(p, events.length));
      }),
      propertyParams({ numRuns: 400 }),
    );
  });
});
