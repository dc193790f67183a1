// The trace I/O layer: opens files and hands the engine byte sources, sinks and texts (DESIGN.md §7). Reads are
// positional and chunk-sized, so memory stays bounded whatever the trace length; writes go to "<out>.partial"
// and are renamed into place only when the trace is complete, so a failed run never leaves a half trace.
// Must not: interpret trace contents (src/replay/format does) or be imported by engine code.
import { closeSync, fstatSync, openSync, readSync, renameSync, rmSync, statSync, writeSync, readFileSync } from 'node:fs';
import { TraceReader, TraceWriter, type ByteSink, type ByteSource, type TraceHeader, type WriteSummary, type WriterOptions } from '../format/index.js';

/** File-system failures, as one line naming the file and what was expected. */
export class TraceIoError extends Error {
  override readonly name = 'TraceIoError';
  readonly kind = 'io';
  constructor(readonly file: string, readonly expected: string, readonly code?: string) {
    super(`${file}: io: ${expected}${code ? ` (${code})` : ''}`);
  }
}

function wrap<T>(file: string, what: string, f: () => T): T {
  try {
    return f();
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    if (err.code === undefined) throw e;
    throw new TraceIoError(file, what, err.code);
  }
}

export interface ClosableSource extends ByteSource {
  close(): void;
}

/** Positional reads from a file; nothing is read until asked. */
export function fileSource(path: string): ClosableSource {
  const fd = wrap(path, 'a readable file', () => openSync(path, 'r'));
  const size = wrap(path, 'a file size', () => fstatSync(fd).size);
  let open = true;
  return {
    size,
    read(offset: number, length: number): Uint8Array {
      const n = Math.max(0, Math.min(length, size - offset));
      const buf = new Uint8Array(n);
      let done = 0;
      while (done < n) {
        const got = wrap(path, `${n} bytes at offset ${offset}`, () => readSync(fd, buf, done, n - done, offset + done));
        if (got === 0) break;
        done += got;
      }
      return done === n ? buf : buf.subarray(0, done);
    },
    close(): void {
      if (open) closeSync(fd);
      open = false;
    },
  };
}

export interface OpenTrace {
  readonly reader: TraceReader;
  close(): void;
}

/** Open a trace file for reading (validates footer, index and header now; chunks are read on demand). */
export function openTraceFile(path: string): OpenTrace {
  const source = fileSource(path);
  try {
    return { reader: TraceReader.open(source, path), close: () => source.close() };
  } catch (e) {
    source.close();
    throw e;
  }
}

class FileSink implements ByteSink {
  constructor(private readonly fd: number, private readonly path: string) {}

  write(bytes: Uint8Array): void {
    let done = 0;
    while (done < bytes.length) done += wrap(this.path, `to write ${bytes.length} bytes`, () => writeSync(this.fd, bytes, done, bytes.length - done));
  }
}

export interface TraceFileWriter {
  readonly writer: TraceWriter;
  /** Finish the trace and move it into place. */
  finish(): WriteSummary;
  /** Give up: remove the partial file. */
  abort(): void;
}

export function createTraceFile(path: string, header: TraceHeader, options: WriterOptions = {}): TraceFileWriter {
  const partial = `${path}.partial`;
  const fd = wrap(partial, 'a writable file', () => openSync(partial, 'w'));
  let closed = false;
  const close = (): void => {
    if (!closed) closeSync(fd);
    closed = true;
  };
  let writer: TraceWriter;
  try {
    writer = new TraceWriter(new FileSink(fd, partial), header, { file: path, ...options });
  } catch (e) {
    close();
    rmSync(partial, { force: true });
    throw e;
  }
  return {
    writer,
    finish(): WriteSummary {
      const summary = writer.finish();
      close();
      wrap(path, 'to move the finished trace into place', () => renameSync(partial, path));
      return summary;
    },
    abort(): void {
      close();
      rmSync(partial, { force: true });
    },
  };
}

/** Largest text file an importer is handed whole (imports hold their events in memory). */
export const MAX_TEXT_BYTES = 256 << 20;

/** Read a text input (UTF-8), refusing files too large to import in memory. */
export function readTextFile(path: string, maxBytes = MAX_TEXT_BYTES): string {
  const size = wrap(path, 'a readable file', () => statSync(path).size);
  if (size > maxBytes) throw new TraceIoError(path, `a text file of at most ${maxBytes} bytes to import, it has ${size}`);
  return wrap(path, 'a readable file', () => readFileSync(path, 'utf8'));
}
