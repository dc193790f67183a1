// Damaged traces never crash, hang or allocate from an unchecked length: truncation at every byte offset, a changed
// byte at every offset, random multi-byte damage and random record payloads all end in a TraceFormatError that
// names the file and an offset or event index (or, for payload fuzzing, decode cleanly).
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { propertyParams } from '../support/property.js';
import { arbEvent, arbTrace } from '../support/arbitraries/trace.js';
import { TraceFormatError, TraceReader, decodeChunkPayload, encodeTrace, memorySource, type TraceEvent } from '../../src/replay/format/index.js';
import { pb } from '../../src/replay/format/pb.js';
import { ChunkEncoder } from '../../src/replay/format/codec.js';

/** Open and fully decode; returns the error (or undefined when the bytes were accepted). */
function readAll(bytes: Uint8Array): unknown {
  try {
    const r = TraceReader.open(memorySource(bytes), 'damaged.trtl');
    r.verify();
    for (const _ of r.events()) void _;
    return undefined;
  } catch (e) {
    return e;
  }
}

function expectFormatError(e: unknown, context: string): void {
  if (!(e instanceof TraceFormatError)) throw new Error(`${context}: expected a TraceFormatError, got ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}`);
  expect(e.message).toMatch(/^damaged\.trtl(#\d+)?(@\d+)?: [a-z-]+: /);
  expect(e.message).not.toContain('\n');
  expect(e.at.offset !== undefined || e.at.event !== undefined).toBe(true);
}

const small = fc.sample(arbTrace(12).filter((t) => t.events.length >= 6), { seed: 7, numRuns: 1 })[0]!;
const smallBytes = encodeTrace(small.header, small.events, { chunkEvents: 4 });

describe('damaged traces', () => {
  it('the intact sample reads back', () => {
    expect(small.events.length).toBeGreaterThanOrEqual(6);
    expect(readAll(smallBytes)).toBeUndefined();
  });

  it('truncation at every byte offset is a TraceFormatError', () => {
    for (let n = 0; n < smallBytes.length; n++) expectFormatError(readAll(smallBytes.subarray(0, n)), `truncated to ${n} bytes`);
  });

  it('changing any single byte is detected', () => {
    for (let i = 0; i < smallBytes.length; i++) {
      const b = smallBytes.slice();
      b[i] = b[i]! ^ 0x5a;
      expectFormatError(readAll(b), `byte ${i} changed`);
    }
  });

  it('random multi-byte damage is a TraceFormatError', () => {
    fc.assert(
      fc.property(arbTrace(20), fc.array(fc.tuple(fc.nat(), fc.integer({ min: 1, max: 255 })), { minLength: 1, maxLength: 8 }), (t, hits) => {
        const bytes = encodeTrace(t.header, t.events, { chunkEvents: 5 });
        for (const [at, x] of hits) bytes[at % bytes.length] = bytes[at % bytes.length]! ^ x;
        expectFormatError(readAll(bytes), 'damaged');
      }),
      propertyParams({ numRuns: 100 }),
    );
  });

  it('random record payloads decode or fail with a TraceFormatError', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), fc.integer({ min: 1, max: 30 }), (payload, count) => {
        try {
          decodeChunkPayload(payload, count, 0, 'fuzz', 0);
        } catch (e) {
          if (!(e instanceof TraceFormatError)) throw e;
        }
      }),
      propertyParams({ numRuns: 400 }),
    );
  });

  it('bit flips in valid record payloads decode or fail with a TraceFormatError', () => {
    fc.assert(
      fc.property(fc.array(arbEvent, { minLength: 1, maxLength: 10 }), fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 7 })), { minLength: 1, maxLength: 4 }), (events, flips) => {
        const payload = recordsOf(events);
        for (const [at, bit] of flips) payload[at % payload.length] = payload[at % payload.length]! ^ (1 << bit);
        try {
          decodeChunkPayload(payload, events.length, 0, 'fuzz', 0);
        } catch (e) {
          if (!(e instanceof TraceFormatError)) throw e;
        }
      }),
      propertyParams({ numRuns: 300 }),
    );
  });
});

/** Uncompressed chunk payload for events (varint length + record each), as the writer builds it. */
function recordsOf(events: readonly TraceEvent[]): Uint8Array {
  const enc = new ChunkEncoder('fuzz');
  const parts: number[] = [];
  events.forEach((e, i) => {
    const rec = pb.Event.encode(enc.encode(e, i)).finish();
    let n = rec.length;
    while (n >= 0x80) {
      parts.push((n & 0x7f) | 0x80);
      n >>>= 7;
    }
    parts.push(n);
    parts.push(...rec);
  });
  return Uint8Array.from(parts);
}
