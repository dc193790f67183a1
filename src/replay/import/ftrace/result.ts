// What every importer returns, and the importers' error type. An import never drops input silently: the stats
// account for every line and the assumptions list every inference, and both go into the trace header's provenance.
// Must not: parse anything.
import type { TraceEvent, TraceHeader, TraceKind } from '../../format/index.js';
import type { ImportStats } from './stats.js';

export type ImportFormat = 'ftrace' | 'trace-cmd' | 'perf-script' | 'iris';
export const IMPORT_FORMATS: readonly ImportFormat[] = ['ftrace', 'trace-cmd', 'perf-script', 'iris'];

export interface ImportResult {
  readonly format: ImportFormat;
  readonly events: TraceEvent[];
  readonly stats: ImportStats;
  readonly kind: TraceKind;
  /** Every inference the importer made, one line each. */
  readonly assumptions: readonly string[];
  /** A header for TraceWriter, with provenance (format, source name, assumptions, counts). */
  readonly header: TraceHeader;
}

export interface ImportOptions {
  /** File name for messages and provenance. */
  readonly sourceName?: string;
  /** Free-text description of the source for provenance. */
  readonly description?: string;
  /** Kernel era when the log cannot tell (ftrace family): decides kvm_exit's info2 in the E1/E3 text. */
  readonly kernel?: '<=5.9' | '>=5.10';
}

export type ImportErrorKind = 'unknown-format' | 'no-records' | 'oversized' | 'malformed';

export class ImportError extends Error {
  override readonly name = 'ImportError';
  constructor(readonly kind: ImportErrorKind, readonly file: string, readonly line: number | undefined, readonly expected: string) {
    super(`${file}${line !== undefined ? `:${line}` : ''}: ${kind}: ${expected}`);
  }
}

export const PRODUCER = 'turtles import';

export function importHeader(format: ImportFormat, kind: TraceKind, stats: ImportStats, assumptions: readonly string[], options: ImportOptions): TraceHeader {
  return {
    producer: `${PRODUCER} ${format}`,
    l0Profile: 'recorded',
    kind,
    provenance: {
      sourceFormat: format,
      sourceName: options.sourceName ?? '',
      description: options.description ?? '',
      assumptions: [...assumptions],
      counts: stats,
    },
  };
}
