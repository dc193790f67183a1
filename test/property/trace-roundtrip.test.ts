// Trace format contracts over generated traces: decode(encode(t)) = t (also across many small chunks, where the
// per-chunk RIP and snapshot deltas restart), the same events give byte-identical files, seek(i) yields the suffix,
// and verify() accepts every file the writer makes.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { propertyParams } from '../support/property.js';
import { arbTrace } from '../support/arbitraries/trace.js';
import { TraceReader, decodeTrace, encodeTrace, memorySource } from '../../src/replay/format/index.js';

const chunking = fc.constantFrom({}, { chunkEvents: 1 }, { chunkEvents: 3 }, { chunkBytes: 64 });

describe('trace format round trip', () => {
  it('decode(encode(t)) = t', () => {
    fc.assert(
      fc.property(arbTrace(), chunking, (t, opts) => {
        const bytes = encodeTrace(t.header, t.events, opts);
        const back = decodeTrace(bytes);
        expect(back.header).toEqual(t.header);
        expect(back.events).toEqual(t.events);
      }),
      propertyParams({ numRuns: 150 }),
    );
  });

  it('the same events give byte-identical files', () => {
    fc.assert(
      fc.property(arbTrace(), chunking, (t, opts) => {
        const a = encodeTrace(t.header, t.events, opts);
        const b = encodeTrace(t.header, structuredClone(t.events), opts);
        expect(Buffer.from(a).equals(Buffer.from(b))).toBe(true);
      }),
      propertyParams({ numRuns: 60 }),
    );
  });

  it('seek(i) yields exactly the events from i on, and verify() accepts the file', () => {
    fc.assert(
      fc.property(arbTrace(30).filter((t) => t.events.length > 0), fc.nat(), (t, k) => {
        const bytes = encodeTrace(t.header, t.events, { chunkEvents: 4 });
        const r = TraceReader.open(memorySource(bytes));
        const i = k % (t.events.length + 1);
        expect([...r.seek(i)]).toEqual(t.events.slice(i));
        expect(r.verify().events).toBe(t.events.length);
      }),
      propertyParams({ numRuns: 60 }),
    );
  });
});
