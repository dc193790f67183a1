// Streaming trace writer: events in, .trtl bytes out through a ByteSink, one bounded chunk at a time.
// Deterministic: the same header and events give byte-identical output (fixed zstd parameters, canonical record
// order of map-valued fields, no clock). Memory is bounded by one chunk.
// Must not: open files (src/replay/io does) or reorder events.
import { pb } from './pb.js';
import { ChunkEncoder, type VmcsState } from './codec.js';
import { vmcsStateDigest } from './digest.js';
import { encodeHeader } from './header-codec.js';
import { compressFrame } from './zstd.js';
import { TraceFormatError } from './errors.js';
import {
  DEFAULT_CHUNK_BYTES, DEFAULT_CHUNK_EVENTS, FORMAT_VERSION, INDEX_FIXED_SIZE, INDEX_ENTRY_SIZE,
  MAX_CHUNK_BYTES, MAX_HEADER_BYTES, MAX_RECORD_BYTES, chunkCrc, writeChunkHeader, writeFileHeader, writeFooter, writeIndex,
  type IndexEntry,
} from './framing.js';
import type { TraceEvent, TraceHeader } from './events.js';

export interface ByteSink {
  write(bytes: Uint8Array): void;
}

export interface WriterOptions {
  /** Name used in error messages. */
  readonly file?: string;
  /** Close a chunk once it holds this many uncompressed bytes (default 1 MiB). */
  readonly chunkBytes?: number;
  /** Close a chunk once it holds this many events (default 65,536). */
  readonly chunkEvents?: number;
}

export interface WriteSummary {
  readonly events: number;
  readonly chunks: number;
  readonly bytes: number;
  readonly uncompressedBytes: number;
}

function varintLength(n: number): number {
  let len = 1;
  while (n >= 0x80) {
    n = Math.floor(n / 128);
    len++;
  }
  return len;
}

function putVarint(out: Uint8Array, at: number, n: number): number {
  while (n >= 0x80) {
    out[at++] = (n & 0x7f) | 0x80;
    n = Math.floor(n / 128);
  }
  out[at++] = n;
  return at;
}

export class TraceWriter {
  private readonly file: string;
  private readonly chunkBytes: number;
  private readonly chunkEvents: number;
  private offset = 0;
  private eventCount = 0;
  private uncompressed = 0;
  private encoder: ChunkEncoder;
  private records: Uint8Array[] = [];
  private pendingBytes = 0;
  private chunkFirst = 0;
  private readonly index: IndexEntry[] = [];
  /** Every VMCS kind's last snapshot across chunks: what the per-chunk digest covers. */
  private readonly running: VmcsState = new Map();
  private finished = false;

  constructor(private readonly sink: ByteSink, header: TraceHeader, options: WriterOptions = {}) {
    this.file = options.file ?? '<trace>';
    this.chunkBytes = options.chunkBytes ?? DEFAULT_CHUNK_BYTES;
    this.chunkEvents = options.chunkEvents ?? DEFAULT_CHUNK_EVENTS;
    // A chunk may overshoot chunkBytes by one record plus its length prefix; it must still fit the reader's limit.
    if (!(this.chunkBytes >= 1 && this.chunkBytes <= MAX_CHUNK_BYTES - MAX_RECORD_BYTES - 8)) {
      throw new RangeError(`turtles bug: chunkBytes ${this.chunkBytes} outside [1, ${MAX_CHUNK_BYTES - MAX_RECORD_BYTES - 8}]`);
    }
    if (!(Number.isInteger(this.chunkEvents) && this.chunkEvents >= 1)) throw new RangeError(`turtles bug: chunkEvents ${this.chunkEvents} < 1`);
    this.encoder = new ChunkEncoder(this.file);
    const record = encodeHeader(header, FORMAT_VERSION, this.file);
    if (record.length > MAX_HEADER_BYTES) {
      throw new TraceFormatError('oversized', this.file, { offset: 0 }, `a header record of at most ${MAX_HEADER_BYTES} bytes, got ${record.length}`);
    }
    this.emit(writeFileHeader(record));
  }

  private emit(bytes: Uint8Array): void {
    this.sink.write(bytes);
    this.offset += bytes.length;
  }

  append(event: TraceEvent): void {
    if (this.finished) throw new Error('turtles bug: append after finish');
    if (this.records.length > 0 && (this.pendingBytes >= this.chunkBytes || this.records.length >= this.chunkEvents)) this.flush();
    const record = pb.Event.encode(this.encoder.encode(event, this.eventCount)).finish();
    if (record.length > MAX_RECORD_BYTES) {
      throw new TraceFormatError('oversized', this.file, { event: this.eventCount }, `an event record of at most ${MAX_RECORD_BYTES} bytes, got ${record.length}`);
    }
    this.records.push(record);
    this.pendingBytes += varintLength(record.length) + record.length;
    this.eventCount++;
  }

  private flush(): void {
    if (this.records.length === 0) return;
    const payload = new Uint8Array(this.pendingBytes);
    let at = 0;
    for (const r of this.records) {
      at = putVarint(payload, at, r.length);
      payload.set(r, at);
      at += r.length;
    }
    const frame = compressFrame(payload);
    const header = {
      compressedLength: frame.length, uncompressedLength: payload.length, eventCount: this.records.length, firstEvent: this.chunkFirst, crc: 0,
    };
    const prefix = writeChunkHeader(header);
    const chunkHeader = writeChunkHeader({ ...header, crc: chunkCrc(prefix, frame) });
    for (const [kind, fields] of this.encoder.vmcs) this.running.set(kind, fields);
    this.index.push({
      offset: this.offset, firstEvent: this.chunkFirst, eventCount: this.records.length, compressedLength: frame.length,
      digest: vmcsStateDigest(this.running),
    });
    this.emit(chunkHeader);
    this.emit(frame);
    this.uncompressed += payload.length;
    this.chunkFirst += this.records.length;
    this.records = [];
    this.pendingBytes = 0;
    this.encoder = new ChunkEncoder(this.file);
  }

  /** Write the last chunk, the index and the footer. The writer cannot be used afterwards. */
  finish(): WriteSummary {
    if (this.finished) throw new Error('turtles bug: finish called twice');
    this.flush();
    this.finished = true;
    const indexOffset = this.offset;
    const index = writeIndex(this.index);
    this.emit(index);
    this.emit(writeFooter({ indexOffset, indexLength: INDEX_FIXED_SIZE + this.index.length * INDEX_ENTRY_SIZE, chunkCount: this.index.length, eventCount: this.eventCount }));
    return { events: this.eventCount, chunks: this.index.length, bytes: this.offset, uncompressedBytes: this.uncompressed };
  }
}

/** Collects written bytes in memory. */
export class MemorySink implements ByteSink {
  private readonly parts: Uint8Array[] = [];
  private length = 0;

  write(bytes: Uint8Array): void {
    this.parts.push(bytes);
    this.length += bytes.length;
  }

  bytes(): Uint8Array {
    const out = new Uint8Array(this.length);
    let at = 0;
    for (const p of this.parts) {
      out.set(p, at);
      at += p.length;
    }
    return out;
  }
}

/** Encode a whole trace in memory (tests, small tools). */
export function encodeTrace(header: TraceHeader, events: Iterable<TraceEvent>, options: WriterOptions = {}): Uint8Array {
  const sink = new MemorySink();
  const w = new TraceWriter(sink, header, options);
  for (const e of events) w.append(e);
  w.finish();
  return sink.bytes();
}
