// File framing: wrong magic or version, oversized and inconsistent length fields, seeking out of range, and the
// exact layout (header, chunk, index, footer sizes) — each rejected with its stable error kind and location.
import { describe, expect, it } from 'vitest';
import {
  FORMAT_VERSION, MAX_CHUNK_BYTES, MAX_HEADER_BYTES, TraceFormatError, TraceReader, decodeChunkFrame, encodeTrace, memorySource, vmxOp,
  type TraceEvent, type TraceHeader,
} from '../../../../src/replay/format/index.js';
import { CHUNK_HEADER_SIZE, FILE_HEADER_SIZE, FOOTER_SIZE, INDEX_ENTRY_SIZE, INDEX_FIXED_SIZE, crc } from '../../../../src/replay/format/framing.js';

const header: TraceHeader = { producer: 'framing test', l0Profile: 'sdm', kind: 'nested', seed: 42n };
const events: TraceEvent[] = Array.from({ length: 10 }, (_, i) => vmxOp('vmread', { field: 0x681e, line: i + 1 }));
const bytes = encodeTrace(header, events, { chunkEvents: 4 });
const dv = (b: Uint8Array) => new DataView(b.buffer, b.byteOffset, b.byteLength);

function open(b: Uint8Array): TraceReader {
  return TraceReader.open(memorySource(b), 't.trtl');
}

function errorOf(f: () => unknown): TraceFormatError {
  try {
    f();
  } catch (e) {
    if (e instanceof TraceFormatError) return e;
    throw e;
  }
  throw new Error('expected a TraceFormatError');
}

const headerLength = dv(bytes).getUint32(8, true);
const firstChunk = FILE_HEADER_SIZE + headerLength;

describe('file layout', () => {
  it('starts with TRTL and the format version, ends with the footer magic', () => {
    expect(new TextDecoder().decode(bytes.subarray(0, 4))).toBe('TRTL');
    expect(dv(bytes).getUint16(4, true)).toBe(FORMAT_VERSION);
    expect(new TextDecoder().decode(bytes.subarray(bytes.length - 4))).toBe('LTRT');
  });

  it('indexes three chunks that tile the file', () => {
    const r = open(bytes);
    expect(r.chunks.map((c) => [c.firstEvent, c.eventCount])).toEqual([[0, 4], [4, 4], [8, 2]]);
    expect(r.chunks[0]!.offset).toBe(firstChunk);
    const footer = bytes.length - FOOTER_SIZE;
    const indexOffset = Number(dv(bytes).getBigUint64(footer, true));
    expect(indexOffset + INDEX_FIXED_SIZE + 3 * INDEX_ENTRY_SIZE).toBe(footer);
    const last = r.chunks[2]!;
    expect(last.offset + CHUNK_HEADER_SIZE + last.compressedLength).toBe(indexOffset);
    expect(r.header).toEqual(header);
  });
});

describe('independent chunks', () => {
  it('decode in any order from cloned bytes, as a worker would', () => {
    const r = open(bytes);
    const parts = [2, 0, 1].map((i) => decodeChunkFrame(structuredClone(r.readChunk(i)), 't.trtl').events);
    expect([...parts[1]!, ...parts[2]!, ...parts[0]!]).toEqual(events);
  });

  it("verify() checks each chunk's state digest against the running VMCS state", () => {
    const snap = (v: bigint): TraceEvent => ({ kind: 'vmcs-snapshot', which: 'vmcs02', fields: new Map([[0x681e, v]]) });
    const b = encodeTrace(header, [snap(1n), vmxOp('vmxon'), snap(2n)], { chunkEvents: 1 });
    expect(open(b).verify().chunks).toBe(3);
    // Change chunk 1's digest (the second chunk carries no snapshot: its digest covers chunk 0's state), fix the CRC.
    const indexOffset = Number(dv(b).getBigUint64(b.length - FOOTER_SIZE, true));
    const at = indexOffset + 8 + INDEX_ENTRY_SIZE + 24;
    dv(b).setBigUint64(at, dv(b).getBigUint64(at, true) ^ 1n, true);
    const end = indexOffset + INDEX_FIXED_SIZE + 3 * INDEX_ENTRY_SIZE - 4;
    dv(b).setUint32(end, crc(b.subarray(indexOffset, end)), true);
    const e = errorOf(() => open(b).verify());
    expect(e.kind).toBe('corrupt');
    expect(e.message).toContain('VMCS state digest');
    expect(e.at.event).toBe(1);
  });
});

describe('rejected inputs', () => {
  it('wrong magic', () => {
    const b = bytes.slice();
    b[0] = 0x58;
    const e = errorOf(() => open(b));
    expect(e.kind).toBe('bad-magic');
    expect(e.message).toBe('t.trtl@0: bad-magic: magic "TRTL" (not a turtles trace)');
  });

  it('a short file that is not a trace says bad magic, not truncated', () => {
    expect(errorOf(() => open(new TextEncoder().encode('hello'))).kind).toBe('bad-magic');
    expect(errorOf(() => open(new Uint8Array(0))).kind).toBe('truncated');
  });

  it('another format version', () => {
    const b = bytes.slice();
    dv(b).setUint16(4, 2, true);
    const e = errorOf(() => open(b));
    expect(e.kind).toBe('unsupported-version');
    expect(e.at.offset).toBe(4);
    expect(e.message).toContain('format version 1, found 2');
  });

  it('an oversized header length', () => {
    const b = bytes.slice();
    dv(b).setUint32(8, 0xffff_ffff, true);
    const e = errorOf(() => open(b));
    expect(e.kind).toBe('oversized');
    expect(e.message).toContain(`at most ${MAX_HEADER_BYTES}`);
  });

  it('an oversized uncompressed chunk length (checked before the CRC, before any allocation)', () => {
    const b = bytes.slice();
    dv(b).setUint32(firstChunk + 8, MAX_CHUNK_BYTES + 1, true);
    const r = open(b);
    const e = errorOf(() => r.verify());
    expect(e.kind).toBe('oversized');
    expect(e.at.offset).toBe(firstChunk + 8);
  });

  it('a chunk length that disagrees with the index', () => {
    const b = bytes.slice();
    dv(b).setUint32(firstChunk + 4, 0x7fff_ffff, true);
    const e = errorOf(() => open(b).verify());
    expect(e.kind).toBe('corrupt');
    expect(e.at.event).toBe(0);
  });

  it('an index whose CRC does not match', () => {
    const b = bytes.slice();
    const indexOffset = Number(dv(b).getBigUint64(b.length - FOOTER_SIZE, true));
    b[indexOffset + 9] = b[indexOffset + 9]! ^ 1;
    expect(errorOf(() => open(b)).kind).toBe('checksum');
  });

  it('a footer whose event count disagrees with the index (CRC fixed up)', () => {
    const b = bytes.slice();
    const f = b.length - FOOTER_SIZE;
    dv(b).setBigUint64(f + 16, 11n, true);
    dv(b).setUint32(f + 24, crc(b.subarray(f, f + 24)), true);
    const e = errorOf(() => open(b));
    expect(e.kind).toBe('corrupt');
    expect(e.message).toContain('11 events in all');
  });

  it('a footer with an absurd chunk count (CRC fixed up) is rejected before the index is read', () => {
    const b = bytes.slice();
    const f = b.length - FOOTER_SIZE;
    dv(b).setUint32(f + 12, 0xffff_ffff, true);
    dv(b).setUint32(f + 24, crc(b.subarray(f, f + 24)), true);
    expect(errorOf(() => open(b)).kind).toBe('corrupt');
  });

  it('a missing footer reads as truncated', () => {
    const e = errorOf(() => open(bytes.subarray(0, bytes.length - 1)));
    expect(e.kind).toBe('truncated');
  });

  it('seeking past the end', () => {
    const r = open(bytes);
    expect([...r.seek(10)]).toEqual([]);
    const e = errorOf(() => [...r.seek(11)]);
    expect(e.kind).toBe('out-of-range');
    expect(e.message).toBe('t.trtl#11: out-of-range: an event index in [0, 10]');
  });
});
