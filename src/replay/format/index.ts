// Public API of the trace format: the event model, the streaming writer and the reader.
// Everything outside src/replay/format imports from here, never from the generated protobuf code.
// Must not: add behaviour of its own.
export * from './events.js';
export { RegId, registerName, isKnownRegisterId, REGISTER_ID_LIMIT, type RegIdName } from './registers.js';
export { TraceFormatError, isTraceFormatError, type TraceFormatErrorKind } from './errors.js';
export { TraceWriter, MemorySink, encodeTrace, type ByteSink, type WriterOptions, type WriteSummary } from './writer.js';
export {
  TraceReader, decodeTrace, decodeChunkPayload, decodeChunkFrame, memorySource, type ByteSource, type ChunkBytes, type DecodedChunk, type VerifyReport,
} from './reader.js';
export { FORMAT_VERSION, MAX_CHUNK_BYTES, MAX_RECORD_BYTES, MAX_HEADER_BYTES, type IndexEntry } from './framing.js';
export { vmcsStateDigest, Fnv1a64 } from './digest.js';
export { ZSTD_LEVEL } from './zstd.js';
export { ChunkColumns, ExitColumns, ReflectionColumns, decodeChunkColumns, kindSlot, type ColumnOptions } from './columns.js';
export { traceStats, exitReasonKey, type TraceStats, type ExitHistogram } from './trace-stats.js';
