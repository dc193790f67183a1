// `turtles import` in one call: read a text file, run the chosen (or detected) importer and write the trace file.
// Lives in the I/O layer because it opens files; the importing itself is src/replay/import.
// Must not: print; the CLI reports the returned stats and assumptions.
import { basename } from 'node:path';
import { importText, type ImportFormat, type ImportOptions, type ImportResult } from '../import/index.js';
import type { WriteSummary } from '../format/index.js';
import { createTraceFile, readTextFile } from './trace-file.js';

/** Import a text file (format 'auto' detects it). */
export function importFile(path: string, format: ImportFormat | 'auto', options: Omit<ImportOptions, 'sourceName'> = {}): ImportResult {
  return importText(format, readTextFile(path), { ...options, sourceName: basename(path) });
}

export interface ImportToTraceResult {
  readonly result: ImportResult;
  readonly written: WriteSummary;
}

/** Import `inPath` and write the trace to `outPath` (atomically: a failure leaves no output file). */
export function importToTraceFile(inPath: string, format: ImportFormat | 'auto', outPath: string, options: Omit<ImportOptions, 'sourceName'> = {}): ImportToTraceResult {
  const result = importFile(inPath, format, options);
  const out = createTraceFile(outPath, result.header);
  try {
    for (const e of result.events) out.writer.append(e);
    return { result, written: out.finish() };
  } catch (e) {
    out.abort();
    throw e;
  }
}
