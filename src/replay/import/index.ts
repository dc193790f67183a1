// Public API of the importers (`turtles import <format> <in> -o <out>` and `turtles stats`): one function per
// format, format detection, and `importText` to dispatch. Each returns events, line stats and a ready header.
// Must not: read files (src/replay/io/import-file.ts does) or write traces.
import { importFtrace } from './ftrace.js';
import { importTraceCmd } from './trace-cmd.js';
import { importPerfScript } from './perf-script.js';
import { importIris } from './iris.js';
import { detectFormat, explainFormat, type Detection } from './detect.js';
import { ImportError, IMPORT_FORMATS, type ImportFormat, type ImportOptions, type ImportResult } from './ftrace/result.js';

export { importFtrace, importTraceCmd, importPerfScript, importIris, detectFormat, explainFormat, ImportError, IMPORT_FORMATS };
export type { Detection, ImportFormat, ImportOptions, ImportResult };
export type { ImportStats } from './ftrace/stats.js';
export type { ImportErrorKind } from './ftrace/result.js';

const IMPORTERS: Readonly<Record<ImportFormat, (text: string, options?: ImportOptions) => ImportResult>> = {
  ftrace: importFtrace,
  'trace-cmd': importTraceCmd,
  'perf-script': importPerfScript,
  iris: importIris,
};

export function isImportFormat(s: string): s is ImportFormat {
  return (IMPORT_FORMATS as readonly string[]).includes(s);
}

/** Import `text` as `format`, or detect the format when it is 'auto'. */
export function importText(format: ImportFormat | 'auto', text: string, options: ImportOptions = {}): ImportResult {
  const chosen = format === 'auto' ? detectFormat(text) : format;
  if (chosen === undefined) {
    throw new ImportError('unknown-format', options.sourceName ?? '<input>', undefined, `one of ${IMPORT_FORMATS.join(', ')} (no line matched any of their layouts)`);
  }
  return IMPORTERS[chosen](text, options);
}
