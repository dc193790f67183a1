// Event records: the compact encodings (RIP deltas, snapshot deltas, the unknown-field mask), the writer's refusal
// of values the format cannot hold, and the decoder's refusal of inconsistent records.
import { describe, expect, it } from 'vitest';
import {
  Fnv1a64, MAX_RECORD_BYTES, TraceFormatError, decodeChunkPayload, decodeTrace, encodeTrace, l2Step, vmcsStateDigest, vmxOp,
  type TraceEvent, type TraceHeader, type VmExitEvent,
} from '../../../../src/replay/format/index.js';
import { ChunkEncoder } from '../../../../src/replay/format/codec.js';
import { pb, type PbEvent } from '../../../../src/replay/format/pb.js';
import { toLongBits } from '../../../../src/replay/format/long.js';

const header: TraceHeader = { producer: 'codec test', l0Profile: 'kvm', kind: 'nested' };

function errorOf(f: () => unknown): TraceFormatError {
  try {
    f();
  } catch (e) {
    if (e instanceof TraceFormatError) return e;
    throw e;
  }
  throw new Error('expected a TraceFormatError');
}

function exit(rip: bigint, extra: Partial<VmExitEvent> = {}): VmExitEvent {
  return { kind: 'vm-exit', level: 'L2', reason: 30, qualification: 0x5658000bn, rip, guestLinear: 0n, guestPhysical: 0n, intrInfo: 0, intrError: 0, idtVectoringInfo: 0, idtVectoringError: 0, instructionLength: 1, instructionInfo: 0, ...extra };
}

describe('exit records', () => {
  it('store RIP as a delta against the previous exit of the same kind', () => {
    const enc = new ChunkEncoder('t');
    const a = enc.encode(exit(0xffff_ffff_8100_0000n), 0).vmExit!;
    const b = enc.encode(exit(0xffff_ffff_8100_0010n), 1).vmExit!;
    const c = enc.encode({ ...exit(0n), kind: 'l0-exit', rip: 0x1000n }, 2).l0Exit!;
    expect(b.ripDelta!.low).toBe(0x10);
    expect(b.ripDelta!.high).toBe(0);
    expect(a.ripDelta!.high).toBe(-1); // the first delta is from 0
    expect(c.ripDelta!.low).toBe(0x1000); // l0-exit has its own running RIP
  });

  it('omit zero fields and mark unknown ones, so known-zero and unknown stay apart', () => {
    const known = pb.Event.encode(new ChunkEncoder('t').encode(exit(0n, { qualification: 0n }), 0)).finish();
    const unknown: VmExitEvent = { kind: 'vm-exit', level: 'L2', reason: 30 };
    const rec = new ChunkEncoder('t').encode(unknown, 0).vmExit!;
    expect(rec.unknown).toBe(0b111_1111_1110);
    expect(known.length).toBeLessThan(12);
    const back = decodeTrace(encodeTrace(header, [unknown, exit(5n)])).events;
    expect(back).toEqual([unknown, exit(5n)]);
    expect(Object.keys(back[0]!)).toEqual(['kind', 'level', 'reason']);
  });

  it('keep a rejected event from moving the chunk state on', () => {
    const enc = new ChunkEncoder('t');
    enc.encode(exit(0x1000n), 0);
    expect(errorOf(() => enc.encode(exit(0x2000n, { intrInfo: -1 }), 1)).kind).toBe('invalid-event');
    expect(enc.encode(exit(0x1010n), 1).vmExit!.ripDelta!.low).toBe(0x10);
  });
});

describe('VMCS snapshots', () => {
  const s = (fields: [number, bigint][]): TraceEvent => ({ kind: 'vmcs-snapshot', which: 'vmcs02', fields: new Map(fields) });

  it('are written as changes and clears against the previous snapshot of the same kind', () => {
    const enc = new ChunkEncoder('t');
    enc.encode(s([[0x681e, 1n], [0x4402, 30n], [0x6400, 7n]]), 0);
    enc.encode({ kind: 'vmcs-snapshot', which: 'vmcs12', fields: new Map([[0x681e, 9n]]) }, 1);
    const rec = enc.encode(s([[0x681e, 2n], [0x4402, 30n]]), 2).vmcsSnapshot!;
    expect(rec.encodings).toEqual([0x681e]);
    expect(rec.cleared).toEqual([0x6400]);
  });

  it('decode to the full known state, in ascending encoding order', () => {
    const events = [s([[0x6400, 7n], [0x681e, 1n]]), s([[0x681e, 2n], [0x4402, 30n]]), s([])];
    const back = decodeTrace(encodeTrace(header, events)).events;
    expect(back).toEqual(events);
    const second = back[1];
    expect(second?.kind === 'vmcs-snapshot' ? [...second.fields.keys()] : []).toEqual([0x4402, 0x681e]);
  });

  it('restart from empty in each chunk, so every chunk decodes alone', () => {
    const events = [s([[0x681e, 1n]]), s([[0x681e, 1n], [0x4402, 2n]]), s([[0x681e, 1n], [0x4402, 2n]])];
    const bytes = encodeTrace(header, events, { chunkEvents: 2 });
    expect(decodeTrace(bytes).events).toEqual(events);
  });

  it('a record that clears a field that was never known is rejected', () => {
    const payload = records([{ vmcsSnapshot: { which: 3, cleared: [0x681e] } }]);
    const e = errorOf(() => decodeChunkPayload(payload, 1, 40, 'p', 100));
    expect(e.kind).toBe('bad-record');
    expect(e.at).toEqual({ event: 40 });
  });

  it('unsorted encodings or a values/encodings count mismatch are rejected', () => {
    expect(errorOf(() => decodeChunkPayload(records([{ vmcsSnapshot: { which: 3, encodings: [2, 1], values: [toLongBits(1n), toLongBits(2n)] } }]), 1, 0, 'p', 0)).kind).toBe('bad-record');
    expect(errorOf(() => decodeChunkPayload(records([{ vmcsSnapshot: { which: 3, encodings: [1, 2], values: [toLongBits(1n)] } }]), 1, 0, 'p', 0)).kind).toBe('bad-record');
  });
});

describe('records the decoder refuses', () => {
  it('an enum value this version does not define', () => {
    const e = errorOf(() => decodeChunkPayload(records([{ vmExit: { level: 9 as never } }]), 1, 0, 'p', 0));
    expect(e.message).toContain('level 9 is not a known value');
  });

  it('a record with no event', () => {
    expect(errorOf(() => decodeChunkPayload(records([{ sourceLine: 3 }]), 1, 0, 'p', 0)).message).toContain('record carries no event');
  });

  it('fields this version does not define', () => {
    const rec = pb.Event.encode({ raw: { text: 'x' } }).finish();
    const withExtra = Uint8Array.from([...rec, 0xf8, 0x3e, 0x01]); // field 999, varint 1
    const payload = Uint8Array.from([withExtra.length, ...withExtra]);
    expect(errorOf(() => decodeChunkPayload(payload, 1, 0, 'p', 0)).message).toContain('fields this format version does not define');
  });

  it('a record length past the limit, before reading it', () => {
    const payload = Uint8Array.from([0xff, 0xff, 0xff, 0x7f]);
    const e = errorOf(() => decodeChunkPayload(payload, 1, 0, 'p', 0));
    expect(e.kind).toBe('oversized');
    expect(e.message).toContain(String(MAX_RECORD_BYTES));
  });

  it('fewer records than the chunk header says, and trailing bytes', () => {
    const one = records([{ raw: { text: 'a' } }]);
    expect(errorOf(() => decodeChunkPayload(one, 2, 0, 'p', 0)).message).toContain('2 records in the chunk, it ends after 1');
    expect(errorOf(() => decodeChunkPayload(Uint8Array.from([...one, 0]), 1, 0, 'p', 0)).message).toContain('1 bytes remain');
  });
});

describe('events the writer refuses', () => {
  const cases: [string, TraceEvent][] = [
    ['negative address', vmxOp('vmclear', { address: -1n })],
    ['address past 2^64', vmxOp('vmclear', { address: 1n << 64n })],
    ['fractional field', vmxOp('vmread', { field: 1.5 })],
    ['16 instruction bytes', l2Step(0n, { instruction: new Uint8Array(16) })],
    ['unknown op', vmxOp('vmfoo' as never)],
    ['empty reason text', { kind: 'vm-exit', level: 'L2', reasonText: '' }],
  ];
  for (const [what, e] of cases) {
    it(what, () => {
      const err = errorOf(() => encodeTrace(header, [vmxOp('vmxon'), e]));
      expect(err.kind).toBe('invalid-event');
      expect(err.at.event).toBe(1);
    });
  }

  it('a record over the size limit', () => {
    const e = errorOf(() => encodeTrace(header, [{ kind: 'memory-write', address: 0n, data: new Uint8Array(MAX_RECORD_BYTES) }]));
    expect(e.kind).toBe('oversized');
  });
});

describe('state digests', () => {
  it('FNV-1a 64 matches the published vectors', () => {
    const h = (s: string) => {
      const f = new Fnv1a64();
      f.bytes(new TextEncoder().encode(s));
      return f.digest();
    };
    expect(h('')).toBe(0xcbf29ce484222325n);
    expect(h('a')).toBe(0xaf63dc4c8601ec8cn);
    expect(h('hello')).toBe(0xa430d84680aabd0bn);
  });

  it('do not depend on insertion order', () => {
    const a = new Map([['vmcs02' as const, new Map([[1, 1n], [2, 2n]])]]);
    const b = new Map([['vmcs02' as const, new Map([[2, 2n], [1, 1n]])]]);
    expect(vmcsStateDigest(a)).toBe(vmcsStateDigest(b));
    expect(vmcsStateDigest(a)).not.toBe(vmcsStateDigest(new Map([['vmcs12' as const, new Map([[1, 1n], [2, 2n]])]])));
  });
});

describe('size', () => {
  it('a typical nested exit costs at most 32 bytes compressed', () => {
    // L2 I/O and EPT exits at a handful of RIPs, each with the vmcs02 fields that change per exit.
    const events: TraceEvent[] = [];
    let x = 12345;
    const rnd = (n: number) => ((x = (x * 1103515245 + 12345) >>> 0) >>> 8) % n;
    const rips = [0xffffffff81001234n, 0xffffffff81001240n, 0xffffffff8100a000n, 0x401000n];
    for (let i = 0; i < 20000; i++) {
      const rip = rips[rnd(rips.length)]! + BigInt(rnd(4) * 2);
      const ept = rnd(3) === 0;
      events.push({ kind: 'vm-exit', level: 'L2', reason: ept ? 48 : 30, qualification: ept ? 0x181n : BigInt(0x5658000b + rnd(4) * 0x10000), rip, guestLinear: 0n, guestPhysical: ept ? BigInt(0xfee00000 + rnd(16) * 0x1000) : 0n, intrInfo: 0, intrError: 0, idtVectoringInfo: 0, idtVectoringError: 0, instructionLength: ept ? 0 : 1, instructionInfo: 0 });
      events.push({ kind: 'vmcs-snapshot', which: 'vmcs02', fields: new Map([[0x4402, ept ? 48n : 30n], [0x681e, rip], [0x6820, 0x46n]]) });
    }
    const bytes = encodeTrace(header, events);
    expect(bytes.length / 20000).toBeLessThanOrEqual(32);
  });
});

function records(msgs: PbEvent[]): Uint8Array {
  const out: number[] = [];
  for (const m of msgs) {
    const r = pb.Event.encode(m).finish();
    out.push(r.length, ...r);
  }
  return Uint8Array.from(out);
}

