// The binary layout of a .trtl file around the protobuf records: file header, zstd chunks with their headers, the
// chunk index and the footer, each written and parsed here with its magic, lengths, limits and CRC-32.
// Must not: allocate from a length field before it is checked against these limits and the file size.
import { crc32 } from 'node:zlib';
import { TraceFormatError } from './errors.js';

/*
 * Layout (all integers little-endian):
 *   file header  16 B   "TRTL" | version u16 | flags u16 | header length u32 | header CRC-32 u32, then the Header record
 *   chunk        32 B   "CHNK" | compressed u32 | uncompressed u32 | events u32 | first event u64 | CRC-32 u32 | 0 u32,
 *                       then one zstd frame of varint-length-delimited Event records
 *   index               "TIDX" | chunks u32 | per chunk (offset u64, first event u64, events u32, compressed u32,
 *                       digest u64) | CRC-32 u32
 *   footer       32 B   index offset u64 | index length u32 | chunks u32 | events u64 | CRC-32 u32 | "LTRT"
 */

export const MAGIC = 'TRTL';
export const CHUNK_MAGIC = 'CHNK';
export const INDEX_MAGIC = 'TIDX';
export const FOOTER_MAGIC = 'LTRT';
export const FORMAT_VERSION = 1;

export const FILE_HEADER_SIZE = 16;
export const CHUNK_HEADER_SIZE = 32;
export const INDEX_ENTRY_SIZE = 32;
export const INDEX_FIXED_SIZE = 12; // magic + count + CRC
export const FOOTER_SIZE = 32;

/** Largest header record. */
export const MAX_HEADER_BYTES = 1 << 20;
/** Largest uncompressed chunk. */
export const MAX_CHUNK_BYTES = 16 << 20;
/** Largest single event record (a memory write carries at most about this much data). */
export const MAX_RECORD_BYTES = 4 << 20;
/** Writers close a chunk once it holds this many uncompressed bytes or events (readers accept up to the maxima). */
export const DEFAULT_CHUNK_BYTES = 1 << 20;
export const DEFAULT_CHUNK_EVENTS = 65_536;
/** The smallest event record is 3 bytes (length, oneof tag, empty-message length), so this bounds events per chunk. */
export const MIN_RECORD_BYTES = 3;

export interface ChunkHeader {
  readonly compressedLength: number;
  readonly uncompressedLength: number;
  readonly eventCount: number;
  readonly firstEvent: number;
  readonly crc: number;
}

export interface IndexEntry {
  /** File offset of the chunk header. */
  readonly offset: number;
  readonly firstEvent: number;
  readonly eventCount: number;
  readonly compressedLength: number;
  /** FNV-1a 64 of the running VMCS state after the chunk's last event (digest.ts). */
  readonly digest: bigint;
}

export interface Footer {
  readonly indexOffset: number;
  readonly indexLength: number;
  readonly chunkCount: number;
  readonly eventCount: number;
}

const ascii = (s: string): Uint8Array => new TextEncoder().encode(s);
const MAGIC_BYTES = ascii(MAGIC);
const CHUNK_MAGIC_BYTES = ascii(CHUNK_MAGIC);
const INDEX_MAGIC_BYTES = ascii(INDEX_MAGIC);
const FOOTER_MAGIC_BYTES = ascii(FOOTER_MAGIC);

export function crc(bytes: Uint8Array, seed = 0): number {
  return crc32(bytes, seed) >>> 0;
}

function view(b: Uint8Array): DataView {
  return new DataView(b.buffer, b.byteOffset, b.byteLength);
}

function hasMagic(b: Uint8Array, at: number, magic: Uint8Array): boolean {
  for (let i = 0; i < magic.length; i++) if (b[at + i] !== magic[i]) return false;
  return true;
}

/** A u64 file quantity (offset, event number) as a safe integer, or a 'corrupt' error. */
function safeU64(dv: DataView, at: number, what: string, fail: (what: string) => TraceFormatError): number {
  const v = dv.getBigUint64(at, true);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw fail(`${what} ${v} is beyond any file this reader can hold`);
  return Number(v);
}

// ---- file header ----

export function writeFileHeader(headerRecord: Uint8Array): Uint8Array {
  const out = new Uint8Array(FILE_HEADER_SIZE + headerRecord.length);
  out.set(MAGIC_BYTES, 0);
  const dv = view(out);
  dv.setUint16(4, FORMAT_VERSION, true);
  dv.setUint16(6, 0, true);
  dv.setUint32(8, headerRecord.length, true);
  dv.setUint32(12, crc(headerRecord), true);
  out.set(headerRecord, FILE_HEADER_SIZE);
  return out;
}

export interface FileHeaderFields {
  readonly version: number;
  readonly headerLength: number;
  readonly headerCrc: number;
}

/** Checks what the given bytes hold, in order (magic, version, flags, lengths), so a short file fails on the first. */
export function parseFileHeader(b: Uint8Array, file: string, fileSize: number): FileHeaderFields {
  const short = (at: number) => new TraceFormatError('truncated', file, { offset: b.length }, `a ${FILE_HEADER_SIZE}-byte file header (file has ${fileSize} bytes; stopped before byte ${at})`);
  for (let i = 0; i < Math.min(4, b.length); i++) {
    if (b[i] !== MAGIC_BYTES[i]) throw new TraceFormatError('bad-magic', file, { offset: 0 }, `magic "${MAGIC}" (not a turtles trace)`);
  }
  if (b.length < 6) throw short(4);
  const dv = view(b);
  const version = dv.getUint16(4, true);
  if (version !== FORMAT_VERSION) {
    throw new TraceFormatError('unsupported-version', file, { offset: 4 }, `format version ${FORMAT_VERSION}, found ${version}`);
  }
  if (b.length < FILE_HEADER_SIZE) throw short(6);
  const flags = dv.getUint16(6, true);
  if (flags !== 0) throw new TraceFormatError('unsupported-version', file, { offset: 6 }, `header flags 0 in version ${FORMAT_VERSION}, found 0x${flags.toString(16)}`);
  const headerLength = dv.getUint32(8, true);
  if (headerLength > MAX_HEADER_BYTES) {
    throw new TraceFormatError('oversized', file, { offset: 8 }, `a header record of at most ${MAX_HEADER_BYTES} bytes, length field says ${headerLength}`);
  }
  if (FILE_HEADER_SIZE + headerLength + FOOTER_SIZE > fileSize) {
    throw new TraceFormatError('truncated', file, { offset: 8 }, `a ${headerLength}-byte header record and a footer within the file's ${fileSize} bytes`);
  }
  return { version, headerLength, headerCrc: dv.getUint32(12, true) };
}

// ---- chunks ----

export function writeChunkHeader(h: ChunkHeader): Uint8Array {
  const out = new Uint8Array(CHUNK_HEADER_SIZE);
  out.set(CHUNK_MAGIC_BYTES, 0);
  const dv = view(out);
  dv.setUint32(4, h.compressedLength, true);
  dv.setUint32(8, h.uncompressedLength, true);
  dv.setUint32(12, h.eventCount, true);
  dv.setBigUint64(16, BigInt(h.firstEvent), true);
  dv.setUint32(24, h.crc, true);
  dv.setUint32(28, 0, true);
  return out;
}

/** CRC of a chunk: its header's first 24 bytes (everything but the CRC and padding) and the compressed frame. */
export function chunkCrc(headerPrefix: Uint8Array, frame: Uint8Array): number {
  return crc(frame, crc(headerPrefix.subarray(0, 24)));
}

export function parseChunkHeader(b: Uint8Array, file: string, offset: number): ChunkHeader {
  const fail = (kind: 'corrupt' | 'oversized' | 'bad-magic', at: number, what: string) => new TraceFormatError(kind, file, { offset: offset + at }, what);
  if (!hasMagic(b, 0, CHUNK_MAGIC_BYTES)) throw fail('bad-magic', 0, `chunk magic "${CHUNK_MAGIC}"`);
  const dv = view(b);
  const compressedLength = dv.getUint32(4, true);
  const uncompressedLength = dv.getUint32(8, true);
  const eventCount = dv.getUint32(12, true);
  if (uncompressedLength > MAX_CHUNK_BYTES) throw fail('oversized', 8, `a chunk of at most ${MAX_CHUNK_BYTES} bytes uncompressed, header says ${uncompressedLength}`);
  if (eventCount === 0 || eventCount > Math.floor(uncompressedLength / MIN_RECORD_BYTES)) {
    throw fail('corrupt', 12, `between 1 and ${Math.floor(uncompressedLength / MIN_RECORD_BYTES)} events in a ${uncompressedLength}-byte chunk, header says ${eventCount}`);
  }
  const firstEvent = safeU64(dv, 16, 'first event number', (w) => fail('corrupt', 16, w));
  if (dv.getUint32(28, true) !== 0) throw fail('corrupt', 28, 'zero padding at the end of the chunk header');
  return { compressedLength, uncompressedLength, eventCount, firstEvent, crc: dv.getUint32(24, true) };
}

// ---- index ----

export function writeIndex(entries: readonly IndexEntry[]): Uint8Array {
  const out = new Uint8Array(INDEX_FIXED_SIZE + entries.length * INDEX_ENTRY_SIZE);
  out.set(INDEX_MAGIC_BYTES, 0);
  const dv = view(out);
  dv.setUint32(4, entries.length, true);
  entries.forEach((e, i) => {
    const at = 8 + i * INDEX_ENTRY_SIZE;
    dv.setBigUint64(at, BigInt(e.offset), true);
    dv.setBigUint64(at + 8, BigInt(e.firstEvent), true);
    dv.setUint32(at + 16, e.eventCount, true);
    dv.setUint32(at + 20, e.compressedLength, true);
    dv.setBigUint64(at + 24, e.digest, true);
  });
  dv.setUint32(out.length - 4, crc(out.subarray(0, out.length - 4)), true);
  return out;
}

/**
 * Parse and cross-check the index: chunks must tile the file between the header and the index, and event
 * numbers must run on without gaps up to the footer's total.
 */
export function parseIndex(b: Uint8Array, file: string, offset: number, footer: Footer, firstChunkOffset: number): IndexEntry[] {
  const fail = (kind: 'corrupt' | 'checksum' | 'bad-magic', at: number, what: string) => new TraceFormatError(kind, file, { offset: offset + at }, what);
  if (!hasMagic(b, 0, INDEX_MAGIC_BYTES)) throw fail('bad-magic', 0, `index magic "${INDEX_MAGIC}"`);
  const dv = view(b);
  const stored = dv.getUint32(b.length - 4, true);
  if (crc(b.subarray(0, b.length - 4)) !== stored) throw fail('checksum', b.length - 4, 'index CRC-32 to match its contents');
  const count = dv.getUint32(4, true);
  if (count !== footer.chunkCount) throw fail('corrupt', 4, `${footer.chunkCount} chunks (as the footer says), index says ${count}`);
  const entries: IndexEntry[] = [];
  let nextOffset = firstChunkOffset;
  let nextEvent = 0;
  for (let i = 0; i < count; i++) {
    const at = 8 + i * INDEX_ENTRY_SIZE;
    const e: IndexEntry = {
      offset: safeU64(dv, at, 'chunk offset', (w) => fail('corrupt', at, w)),
      firstEvent: safeU64(dv, at + 8, 'first event', (w) => fail('corrupt', at + 8, w)),
      eventCount: dv.getUint32(at + 16, true),
      compressedLength: dv.getUint32(at + 20, true),
      digest: dv.getBigUint64(at + 24, true),
    };
    if (e.offset !== nextOffset) throw fail('corrupt', at, `chunk ${i} at offset ${nextOffset}, index says ${e.offset}`);
    if (e.firstEvent !== nextEvent) throw fail('corrupt', at + 8, `chunk ${i} to start at event ${nextEvent}, index says ${e.firstEvent}`);
    if (e.eventCount === 0) throw fail('corrupt', at + 16, `chunk ${i} to hold at least one event`);
    nextOffset = e.offset + CHUNK_HEADER_SIZE + e.compressedLength;
    nextEvent = e.firstEvent + e.eventCount;
    if (nextOffset > footer.indexOffset) throw fail('corrupt', at + 20, `chunk ${i} to end before the index at ${footer.indexOffset}`);
    entries.push(e);
  }
  if (nextOffset !== footer.indexOffset) throw fail('corrupt', 0, `the index to follow the last chunk at offset ${nextOffset}, it is at ${footer.indexOffset}`);
  if (nextEvent !== footer.eventCount) throw fail('corrupt', 0, `${footer.eventCount} events in all (footer), chunks hold ${nextEvent}`);
  return entries;
}

// ---- footer ----

export function writeFooter(f: Footer): Uint8Array {
  const out = new Uint8Array(FOOTER_SIZE);
  const dv = view(out);
  dv.setBigUint64(0, BigInt(f.indexOffset), true);
  dv.setUint32(8, f.indexLength, true);
  dv.setUint32(12, f.chunkCount, true);
  dv.setBigUint64(16, BigInt(f.eventCount), true);
  dv.setUint32(24, crc(out.subarray(0, 24)), true);
  out.set(FOOTER_MAGIC_BYTES, 28);
  return out;
}

export function parseFooter(b: Uint8Array, file: string, fileSize: number, indexMinOffset: number): Footer {
  const offset = fileSize - FOOTER_SIZE;
  const fail = (kind: 'corrupt' | 'checksum' | 'truncated' | 'oversized', at: number, what: string) => new TraceFormatError(kind, file, { offset: offset + at }, what);
  if (!hasMagic(b, 28, FOOTER_MAGIC_BYTES)) throw fail('truncated', 28, `footer magic "${FOOTER_MAGIC}" at the end (file truncated or never finished)`);
  const dv = view(b);
  if (crc(b.subarray(0, 24)) !== dv.getUint32(24, true)) throw fail('checksum', 24, 'footer CRC-32 to match');
  const indexOffset = safeU64(dv, 0, 'index offset', (w) => fail('corrupt', 0, w));
  const indexLength = dv.getUint32(8, true);
  const chunkCount = dv.getUint32(12, true);
  const eventCount = safeU64(dv, 16, 'event count', (w) => fail('corrupt', 16, w));
  if (indexLength !== INDEX_FIXED_SIZE + chunkCount * INDEX_ENTRY_SIZE) {
    throw fail('corrupt', 8, `an index of ${INDEX_FIXED_SIZE + chunkCount * INDEX_ENTRY_SIZE} bytes for ${chunkCount} chunks, footer says ${indexLength}`);
  }
  if (indexOffset < indexMinOffset || indexOffset + indexLength !== offset) {
    throw fail('corrupt', 0, `the index to end where the footer starts (${offset}), footer places it at ${indexOffset}+${indexLength}`);
  }
  return { indexOffset, indexLength, chunkCount, eventCount };
}
