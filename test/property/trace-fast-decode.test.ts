// The hand-written decoder of the hot records (src/replay/format/fast-decode.ts) against the generated protobufjs
// decoder, as a deliberately simpler model: on valid chunks, on chunks with flipped bits and on canonical-but-odd
// encodings, both give the same events or both reject the chunk.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import $protobuf from 'protobufjs/minimal.js';
import { propertyParams } from '../support/property.js';
import { arbEvent } from '../support/arbitraries/trace.js';
import { TraceFormatError, decodeChunkPayload, type TraceEvent } from '../../src/replay/format/index.js';
import { ChunkDecoder, ChunkEncoder } from '../../src/replay/format/codec.js';
import { fastDecode } from '../../src/replay/format/fast-decode.js';
import { pb } from '../../src/replay/format/pb.js';

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

/** The model: every record through the generated decoder (same framing rules as decodeChunkPayload). */
function generatedOnly(payload: Uint8Array, count: number): TraceEvent[] {
  const dec = new ChunkDecoder('m');
  const reader = $protobuf.Reader.create(payload);
  reader.discardUnknown = false;
  const out: TraceEvent[] = [];
  let pos = 0;
  for (let i = 0; i < count; i++) {
    if (pos >= payload.length) throw new TraceFormatError('corrupt', 'm', { event: i }, 'short');
    let len = 0;
    let shift = 0;
    for (;;) {
      if (pos >= payload.length) throw new TraceFormatError('corrupt', 'm', { event: i }, 'length');
      const b = payload[pos++]!;
      len += (b & 0x7f) * 2 ** shift;
      shift += 7;
      if (b < 0x80) break;
      if (shift >= 28) throw new TraceFormatError('oversized', 'm', { event: i }, 'length');
    }
    if (pos + len > payload.length) throw new TraceFormatError('corrupt', 'm', { event: i }, 'record');
    let m;
    try {
      reader.pos = pos;
      m = pb.Event.decode(reader, len);
    } catch {
      throw new TraceFormatError('bad-record', 'm', { event: i }, 'decode');
    }
    out.push(dec.decode(m, i));
    pos += len;
  }
  if (pos !== payload.length) throw new TraceFormatError('corrupt', 'm', { event: count }, 'trailing');
  return out;
}

function outcome(f: () => TraceEvent[]): TraceEvent[] | 'rejected' {
  try {
    return f();
  } catch (e) {
    if (e instanceof TraceFormatError) return 'rejected';
    throw e;
  }
}

describe('fast decoder = generated decoder', () => {
  it('on valid chunks', () => {
    fc.assert(
      fc.property(fc.array(arbEvent, { minLength: 1, maxLength: 30 }), (events) => {
        const p = payloadOf(events);
        expect(decodeChunkPayload(p, events.length, 0, 'm', 0).events).toEqual(generatedOnly(p, events.length));
      }),
      propertyParams({ numRuns: 200 }),
    );
  });

  it('on chunks with flipped bits', () => {
    fc.assert(
      fc.property(fc.array(arbEvent, { minLength: 1, maxLength: 12 }), fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 7 })), { minLength: 1, maxLength: 3 }), (events, flips) => {
        const p = payloadOf(events);
        for (const [at, bit] of flips) p[at % p.length] = p[at % p.length]! ^ (1 << bit);
        expect(outcome(() => decodeChunkPayload(p, events.length, 0, 'm', 0).events)).toEqual(outcome(() => generatedOnly(p, events.length)));
      }),
      propertyParams({ numRuns: 400 }),
    );
  });

  it('takes the plain exit, snapshot, reflection and entry records itself', () => {
    const events: TraceEvent[] = [
      { kind: 'vm-exit', level: 'L2', reason: 30, qualification: 0x5658000bn, rip: 0xffffffff81000000n, instructionLength: 1 },
      { kind: 'l0-exit', level: 'L1', reason: 23, rip: 0x1000n, vcpu: 3, line: 9 },
      { kind: 'vmcs-snapshot', which: 'vmcs12', fields: new Map([[0x681e, 1n], [0x4402, 1n << 63n]]), address: 0x1000n },
      { kind: 'reflection', decision: 'reflected', exitReason: 30, inferred: true, rip: 5n, rule: '' },
      { kind: 'vm-entry', level: 'L2', rip: 0x10n, eptp: 0x1005en, entryIntrInfo: 0, note: '' },
    ];
    const p = payloadOf(events);
    const dec = new ChunkDecoder('m');
    let pos = 0;
    const got: TraceEvent[] = [];
    while (pos < p.length) {
      const len = p[pos++]!;
      const e = fastDecode(p, pos, pos + len, dec);
      expect(e).toBeDefined();
      got.push(e!);
      pos += len;
    }
    expect(got).toEqual(generatedOnly(p, events.length));
    // and declines what it does not handle
    const raw = payloadOf([{ kind: 'raw', sourceKind: 'x', text: 'y', reason: 'z' }]);
    expect(fastDecode(raw, 1, raw.length, new ChunkDecoder('m'))).toBeUndefined();
  });
});
