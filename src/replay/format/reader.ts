// Trace reader over a random-access ByteSource: checks footer, index and header on open, then decodes chunks on
// demand (streaming iterator, seek by event index, verify). Chunks decode independently (readChunk + decodeChunkFrame
// are separate so workers can do the second); at most one chunk's bytes are held at a time, and the streaming
// iterator decodes each record only when it is asked for (one event live, not a chunk of them).
// Must not: open files, trust an unchecked length, or let a decoding failure escape as anything but a TraceFormatError.
import $protobuf from 'protobufjs/minimal.js';
import { pb } from './pb.js';
import { ChunkDecoder, type VmcsState } from './codec.js';
import { fastDecode } from './fast-decode.js';
import { SLACK, decodeChunkColumns, type ChunkColumns, type ColumnOptions } from './columns.js';
import { vmcsStateDigest } from './digest.js';
import { decodeHeader } from './header-codec.js';
import { compressBound, decompressFrame } from './zstd.js';
import { TraceFormatError } from './errors.js';
import {
  CHUNK_HEADER_SIZE, FILE_HEADER_SIZE, FOOTER_SIZE, FORMAT_VERSION, MAX_CHUNK_BYTES, MAX_RECORD_BYTES, chunkCrc, crc, parseChunkHeader,
  parseFileHeader, parseFooter, parseIndex, type Footer, type IndexEntry,
} from './framing.js';
import type { TraceEvent, TraceHeader } from './events.js';

/** Random access to the bytes of one trace. `read` may return fewer bytes than asked only at the end. */
export interface ByteSource {
  readonly size: number;
  read(offset: number, length: number): Uint8Array;
}

export function memorySource(bytes: Uint8Array): ByteSource {
  return {
    size: bytes.length,
    read: (offset, length) => bytes.subarray(Math.min(offset, bytes.length), Math.min(offset + length, bytes.length)),
  };
}

export interface DecodedChunk {
  readonly events: TraceEvent[];
  readonly uncompressedLength: number;
  /** VMCS state per kind as of the chunk's last snapshot of that kind (only kinds the chunk mentions). */
  readonly vmcs: VmcsState;
}

/**
 * One chunk's uncompressed records decoded one at a time: streaming readers (TraceReader.events) hold only the event
 * in hand, not the whole chunk as objects (DESIGN.md §9). Same framing rules and errors as decoding the chunk at once.
 */
export class ChunkRecordCursor {
  readonly decoder: ChunkDecoder;
  private readonly reader: $protobuf.Reader;
  private pos = 0;
  private next = 0;

  constructor(private readonly payload: Uint8Array, readonly eventCount: number, private readonly firstEvent: number, private readonly file: string, private readonly offset: number) {
    this.decoder = new ChunkDecoder(file);
    this.reader = $protobuf.Reader.create(payload);
    // protobufjs drops unknown fields by default; keep them so the decoder can refuse what this version does not define.
    this.reader.discardUnknown = false;
  }

  /** The next event, or undefined after the last (once the chunk is checked to end there). */
  read(): TraceEvent | undefined {
    const { payload, eventCount, firstEvent, file, offset } = this;
    const pos = this.pos;
    const i = this.next;
    if (i >= eventCount) {
      if (pos !== payload.length) {
        throw new TraceFormatError('corrupt', file, { offset, event: firstEvent + eventCount }, `the chunk to end after ${eventCount} records, ${payload.length - pos} bytes remain`);
      }
      return undefined;
    }
    const event = firstEvent + i;
    const fail = (kind: 'corrupt' | 'oversized' | 'bad-record', what: string) =>
      new TraceFormatError(kind, file, { event, offset }, `${what} (chunk byte ${pos})`);
    if (pos >= payload.length) throw fail('corrupt', `${eventCount} records in the chunk, it ends after ${i}`);
    // Record length: a varint of at most 4 bytes (MAX_RECORD_BYTES < 2^28).
    let len = 0;
    let shift = 0;
    let p = pos;
    for (;;) {
      if (p >= payload.length) throw fail('corrupt', 'a complete record length');
      const b = payload[p++]!;
      len += (b & 0x7f) * 2 ** shift;
      shift += 7;
      if (b < 0x80) break;
      if (shift >= 28) throw fail('oversized', `a record length below ${MAX_RECORD_BYTES}`);
    }
    if (len > MAX_RECORD_BYTES) throw fail('oversized', `a record of at most ${MAX_RECORD_BYTES} bytes, length says ${len}`);
    if (p + len > payload.length) throw fail('corrupt', `a ${len}-byte record within the chunk's ${payload.length} bytes`);
    const decoder = this.decoder;
    decoder.begin(event);
    let e = fastDecode(payload, p, p + len, decoder);
    if (e === undefined) {
      let message;
      try {
        this.reader.pos = p;
        message = pb.Event.decode(this.reader, len);
      } catch (err) {
        throw fail('bad-record', `a decodable event record (${(err as Error).message})`);
      }
      e = decoder.decode(message, event);
    }
    this.pos = p + len;
    this.next = i + 1;
    return e;
  }
}

/**
 * Decode the uncompressed records of one chunk. `firstEvent` numbers the events; `offset` is where the chunk
 * starts in the file, for messages.
 */
export function decodeChunkPayload(payload: Uint8Array, eventCount: number, firstEvent: number, file: string, offset: number): DecodedChunk {
  const cursor = new ChunkRecordCursor(payload, eventCount, firstEvent, file, offset);
  const events: TraceEvent[] = new Array<TraceEvent>(eventCount);
  for (let i = 0; i < eventCount; i++) events[i] = cursor.read()!;
  cursor.read();
  return { events, uncompressedLength: payload.length, vmcs: cursor.decoder.vmcs };
}

/** One chunk's checked bytes: what a worker needs to decode it (structured-clone friendly). */
export interface ChunkBytes {
  readonly offset: number;
  readonly firstEvent: number;
  readonly eventCount: number;
  readonly uncompressedLength: number;
  readonly frame: Uint8Array;
}

/** Decompress and decode one chunk read by TraceReader.readChunk (pure: no I/O, no shared state). */
export function decodeChunkFrame(c: ChunkBytes, file: string): DecodedChunk {
  const payload = decompressFrame(c.frame, c.uncompressedLength);
  if (typeof payload === 'string') {
    throw new TraceFormatError('corrupt', file, { offset: c.offset, event: c.firstEvent }, `a zstd frame of ${c.uncompressedLength} bytes: ${payload}`);
  }
  return decodeChunkPayload(payload, c.eventCount, c.firstEvent, file, c.offset);
}

export interface VerifyReport {
  readonly events: number;
  readonly chunks: number;
  readonly bytes: number;
  readonly uncompressedBytes: number;
}

export class TraceReader {
  readonly header: TraceHeader;
  readonly formatVersion: number;
  readonly eventCount: number;
  readonly chunks: readonly IndexEntry[];
  private readonly footer: Footer;
  /** Decompression buffer of decodeChunkColumns, grown to the largest chunk read. */
  private scratch = new Uint8Array(0);

  private constructor(private readonly source: ByteSource, readonly file: string) {
    const size = source.size;
    if (size < FILE_HEADER_SIZE + FOOTER_SIZE) {
      // Report a wrong magic or version first: a short non-trace file should not look like a damaged trace.
      parseFileHeader(this.bytes(0, Math.min(size, FILE_HEADER_SIZE)), file, size);
      throw new TraceFormatError('truncated', file, { offset: size }, `at least ${FILE_HEADER_SIZE + FOOTER_SIZE} bytes (file header and footer), file has ${size}`);
    }
    const fh = parseFileHeader(this.bytes(0, FILE_HEADER_SIZE), file, size);
    const firstChunk = FILE_HEADER_SIZE + fh.headerLength;
    this.footer = parseFooter(this.bytes(size - FOOTER_SIZE, FOOTER_SIZE), file, size, firstChunk);
    this.chunks = parseIndex(this.bytes(this.footer.indexOffset, this.footer.indexLength), file, this.footer.indexOffset, this.footer, firstChunk);
    this.eventCount = this.footer.eventCount;
    const record = this.bytes(FILE_HEADER_SIZE, fh.headerLength);
    if (crc(record) !== fh.headerCrc) throw new TraceFormatError('checksum', file, { offset: 12 }, 'header record CRC-32 to match');
    const decoded = decodeHeader(record, file, FILE_HEADER_SIZE);
    if (decoded.formatVersion !== FORMAT_VERSION) {
      throw new TraceFormatError('unsupported-version', file, { offset: FILE_HEADER_SIZE }, `header record version ${FORMAT_VERSION}, found ${decoded.formatVersion}`);
    }
    this.header = decoded.header;
    this.formatVersion = fh.version;
  }

  static open(source: ByteSource, file = '<trace>'): TraceReader {
    return new TraceReader(source, file);
  }

  /** Exactly `length` bytes at `offset`, or a 'truncated' error. */
  private bytes(offset: number, length: number): Uint8Array {
    const b = this.source.read(offset, length);
    if (b.length !== length) {
      throw new TraceFormatError('truncated', this.file, { offset: offset + b.length }, `${length} bytes at offset ${offset}, the source ends after ${b.length}`);
    }
    return b;
  }

  /** Index of the chunk holding event `eventIndex`. */
  chunkOf(eventIndex: number): number {
    let lo = 0;
    let hi = this.chunks.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >>> 1;
      if (this.chunks[mid]!.firstEvent <= eventIndex) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }

  /** Read one chunk's bytes and check them against the index and its CRC (the I/O half of decoding a chunk). */
  readChunk(i: number): ChunkBytes {
    const entry = this.chunks[i];
    if (!entry) throw new TraceFormatError('out-of-range', this.file, {}, `a chunk index below ${this.chunks.length}, got ${i}`);
    const headerBytes = this.bytes(entry.offset, CHUNK_HEADER_SIZE);
    const h = parseChunkHeader(headerBytes, this.file, entry.offset);
    const mismatch = (what: string) => new TraceFormatError('corrupt', this.file, { offset: entry.offset, event: entry.firstEvent }, what);
    if (h.compressedLength !== entry.compressedLength) throw mismatch(`compressed length ${entry.compressedLength} (index), chunk header says ${h.compressedLength}`);
    if (h.eventCount !== entry.eventCount) throw mismatch(`${entry.eventCount} events (index), chunk header says ${h.eventCount}`);
    if (h.firstEvent !== entry.firstEvent) throw mismatch(`first event ${entry.firstEvent} (index), chunk header says ${h.firstEvent}`);
    if (h.compressedLength > compressBound(MAX_CHUNK_BYTES)) throw mismatch(`a compressed chunk of at most ${compressBound(MAX_CHUNK_BYTES)} bytes`);
    const frame = this.bytes(entry.offset + CHUNK_HEADER_SIZE, h.compressedLength);
    if (chunkCrc(headerBytes, frame) !== h.crc) {
      throw new TraceFormatError('checksum', this.file, { offset: entry.offset + 24, event: entry.firstEvent }, 'chunk CRC-32 to match its header and compressed bytes');
    }
    return { offset: entry.offset, firstEvent: h.firstEvent, eventCount: h.eventCount, uncompressedLength: h.uncompressedLength, frame };
  }

  /** Read, check and decode one chunk. */
  decodeChunk(i: number): DecodedChunk {
    return decodeChunkFrame(this.readChunk(i), this.file);
  }

  /**
   * Read, check and decode one chunk into columns (exits and reflections as typed arrays, other records counted;
   * columns.ts). Reuse `out` across chunks: neither it nor the decompression buffer is reallocated.
   */
  decodeChunkColumns(i: number, out: ChunkColumns, options: ColumnOptions = {}): ChunkColumns {
    const c = this.readChunk(i);
    // One byte for the decompressor's overrun check, SLACK more for the exit parser (columns.ts).
    if (this.scratch.length < c.uncompressedLength + 1 + SLACK) this.scratch = new Uint8Array(c.uncompressedLength + 1 + SLACK);
    const payload = decompressFrame(c.frame, c.uncompressedLength, this.scratch);
    if (typeof payload === 'string') {
      throw new TraceFormatError('corrupt', this.file, { offset: c.offset, event: c.firstEvent }, `a zstd frame of ${c.uncompressedLength} bytes: ${payload}`);
    }
    return decodeChunkColumns(payload, c.eventCount, c.firstEvent, this.file, c.offset, out, options);
  }

  /** Events from `from` (default 0) to the end, decoding one chunk at a time. */
  *events(from = 0): Generator<TraceEvent, void, undefined> {
    if (!Number.isInteger(from) || from < 0 || from > this.eventCount) {
      throw new TraceFormatError('out-of-range', this.file, { event: from }, `an event index in [0, ${this.eventCount}]`);
    }
    if (from === this.eventCount) return;
    // Records are decoded as they are asked for, so only the event in hand is live (not a chunk of them); the
    // decompression buffer is this iterator's own, reused from chunk to chunk (events copy what they keep of it).
    let scratch = new Uint8Array(0);
    const first = this.chunkOf(from);
    for (let c = first; c < this.chunks.length; c++) {
      const chunk = this.readChunk(c);
      if (scratch.length < chunk.uncompressedLength + 1) scratch = new Uint8Array(chunk.uncompressedLength + 1);
      const payload = decompressFrame(chunk.frame, chunk.uncompressedLength, scratch);
      if (typeof payload === 'string') {
        throw new TraceFormatError('corrupt', this.file, { offset: chunk.offset, event: chunk.firstEvent }, `a zstd frame of ${chunk.uncompressedLength} bytes: ${payload}`);
      }
      const cursor = new ChunkRecordCursor(payload, chunk.eventCount, chunk.firstEvent, this.file, chunk.offset);
      const skip = c === first ? from - chunk.firstEvent : 0;
      for (let k = 0; k < skip; k++) cursor.read();
      for (let e = cursor.read(); e !== undefined; e = cursor.read()) yield e;
    }
  }

  /** Same as events(eventIndex): position the stream at one event. */
  seek(eventIndex: number): Generator<TraceEvent, void, undefined> {
    return this.events(eventIndex);
  }

  /** Decode every chunk and check CRCs, counts and the per-chunk state digests. Throws the first problem. */
  verify(): VerifyReport {
    const running: VmcsState = new Map();
    let uncompressed = 0;
    for (let c = 0; c < this.chunks.length; c++) {
      const chunk = this.decodeChunk(c);
      for (const [kind, fields] of chunk.vmcs) running.set(kind, fields);
      const entry = this.chunks[c]!;
      const digest = vmcsStateDigest(running);
      if (digest !== entry.digest) {
        throw new TraceFormatError('corrupt', this.file, { offset: entry.offset, event: entry.firstEvent + entry.eventCount - 1 },
          `VMCS state digest 0x${entry.digest.toString(16)} after chunk ${c} (index), decoded state gives 0x${digest.toString(16)}`);
      }
      uncompressed += chunk.uncompressedLength;
    }
    return { events: this.eventCount, chunks: this.chunks.length, bytes: this.source.size, uncompressedBytes: uncompressed };
  }
}

/** Decode a whole in-memory trace (tests, small tools). */
export function decodeTrace(bytes: Uint8Array, file = '<trace>'): { header: TraceHeader; events: TraceEvent[] } {
  const r = TraceReader.open(memorySource(bytes), file);
  return { header: r.header, events: [...r.events()] };
}
