// The columnar decoder (src/replay/format/columns.ts) against the object decoder as the simpler model: on any chunk
// of any events both give the same exits, reflections and per-kind counts; records only the generated decoder
// understands (reason text, odd encodings) fall back to it; malformed exits are reported like the object path does.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { propertyParams } from '../../../support/property.js';
import { arbEvent } from '../../../support/arbitraries/trace.js';
import {
  ChunkColumns, EVENT_KINDS, TraceFormatError, decodeChunkColumns, decodeChunkPayload, kindSlot, type TraceEvent,
} from '../../../../src/replay/format/index.js';
import { ChunkEncoder } from '../../../../src/replay/format/codec.js';
import { pb } from '../../../../src/replay/format/pb.js';

function payloadOf(events: readonly TraceEvent[]): Uint8Array {
  const enc = new ChunkEncoder('m');
  const out: number[] = [];
  events.forEach((e, i) => {
    const r = pb.Event.encode(enc.encode(e, i)).finish();
    let n = r.length;
    while (n >= 0x80) {
      out.push((n & 0x7f) | 0x80);
      n >>>= 7;
    }
    out.push(n, ...r);
  });
  return Uint8Array.from(out);
}

function compare(events: TraceEvent[], firstEvent: number, cols: ChunkColumns): void {
  const payload = payloadOf(events);
  const objects = decodeChunkPayload(payload, events.length, firstEvent, 'm', 0).events;
  decodeChunkColumns(payload, events.length, firstEvent, 'm', 0, cols, { objects: new Set(['entry-failure']) });
  const exits = objects.map((e, i) => [e, i] as const).filter(([e]) => e.kind === 'vm-exit' || e.kind === 'l0-exit');
  expect(cols.exits.length).toBe(exits.length);
  exits.forEach(([e, i], r) => {
    expect(cols.exits.event[r]).toBe(i);
    expect(cols.exits.toEvent(r)).toEqual(e);
  });
  const refl = objects.map((e, i) => [e, i] as const).filter(([e]) => e.kind === 'reflection');
  expect(cols.reflections.length).toBe(refl.length);
  refl.forEach(([e, i], r) => {
    if (e.kind !== 'reflection') return;
    expect(cols.reflections.event[r]).toBe(i);
    expect(cols.reflections.decisionName(r)).toBe(e.decision);
    expect(cols.reflections.exitReason[r]).toBe(e.exitReason);
    expect(cols.reflections.inferred[r] === 1).toBe(e.inferred);
    expect(cols.reflections.hasRip[r] === 1 ? (BigInt(cols.reflections.ripHi[r]!) << 32n) | BigInt(cols.reflections.ripLo[r]!) : undefined).toBe(e.rip);
  });
  for (const k of EVENT_KINDS) expect(cols.kindCounts[kindSlot(k)]).toBe(objects.filter((e) => e.kind === k).length);
  expect(cols.objects.map((o) => o.value)).toEqual(objects.filter((e) => e.kind === 'entry-failure'));
}

describe('columnar chunk decode', () => {
  it('gives the object decoder\'s exits, reflections and counts on any events (one reused ChunkColumns)', () => {
    const cols = new ChunkColumns();
    fc.assert(
      fc.property(fc.array(arbEvent, { maxLength: 60 }), fc.integer({ min: 0, max: 1e6 }), (events, first) => compare(events, first, cols)),
      propertyParams({ numRuns: 200 }),
    );
  });

  it('decodes only the snapshot kinds asked for, each as the object decoder does (each kind is its own delta chain)', () => {
    const cols = new ChunkColumns();
    const kinds = ['unspecified', 'vmcs01', 'vmcs12', 'vmcs02', 'single'] as const;
    fc.assert(
      fc.property(fc.array(arbEvent, { maxLength: 60 }), fc.subarray([...kinds]), (events, wanted) => {
        const payload = payloadOf(events);
        const objects = decodeChunkPayload(payload, events.length, 0, 'm', 0).events;
        const snapshotKinds = new Set(wanted);
        decodeChunkColumns(payload, events.length, 0, 'm', 0, cols, { objects: new Set(['vmcs-snapshot']), snapshotKinds });
        const expected = objects.map((e, i) => ({ event: i, value: e })).filter((o) => o.value.kind === 'vmcs-snapshot' && snapshotKinds.has(o.value.which));
        expect(cols.objects).toEqual(expected);
        for (const k of EVENT_KINDS) expect(cols.kindCounts[kindSlot(k)]).toBe(objects.filter((e) => e.kind === k).length);
      }),
      propertyParams({ numRuns: 200 }),
    );
  });

  it('keeps the RIP chain across records only the generated decoder reads (reason text)', () => {
    const events: TraceEvent[] = [
      { kind: 'vm-exit', level: 'L2', reason: 30, rip: 0xffff_ffff_8100_0000n },
      { kind: 'vm-exit', level: 'L2', reasonText: 'npf', rip: 0x401000n },
      { kind: 'vm-exit', level: 'L2', reason: 12, rip: 0xffff_ffff_8100_0010n },
      { kind: 'l0-exit', level: 'L1', reason: 24, rip: 0x10n },
      { kind: 'vm-exit', level: 'L2', reason: 12, rip: 0x401005n },
    ];
    const cols = new ChunkColumns();
    compare(events, 0, cols);
    expect(cols.exits.reasonText.get(1)).toBe('npf');
  });

  it('rejects a malformed exit record the way the object decoder does', () => {
    // An exit whose level is 7: a bad-record error naming the event.
    const body = Uint8Array.from([0x08, 0x07, 0x10, 0x1e]);
    const record = Uint8Array.from([0xa2, 0x01, body.length, ...body]);
    const payload = Uint8Array.from([record.length, ...record]);
    expect(() => decodeChunkPayload(payload, 1, 5, 'm', 100)).toThrow(TraceFormatError);
    expect(() => decodeChunkColumns(payload, 1, 5, 'm', 100, new ChunkColumns())).toThrow(/m#5: bad-record: level 7 is not a known value/);
    // A chunk that ends before its records do.
    const one = payloadOf([{ kind: 'vm-exit', level: 'L2', reason: 10 }]);
    expect(() => decodeChunkColumns(one, 2, 0, 'm', 100, new ChunkColumns())).toThrow(/m#1@100: corrupt: 2 records in the chunk, it ends after 1/);
    expect(() => decodeChunkColumns(Uint8Array.from([...one, 0]), 1, 0, 'm', 100, new ChunkColumns())).toThrow(/corrupt: the chunk to end after 1 records, 1 bytes remain/);
  });
});
