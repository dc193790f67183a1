// Importer for `perf script` output ("comm  pid [cpu] ts:  kvm:event: payload"); kvm_exit text there comes from
// libtraceevent's kvm plugin. Wrapped payload lines are rejoined. Grammar: shared/reference/trace-formats.md §1–§5.
// Must not: read files.
import { importFtraceFamily } from './ftrace/import.js';
import type { ImportOptions, ImportResult } from './ftrace/result.js';

export function importPerfScript(text: string, options: ImportOptions = {}): ImportResult {
  return importFtraceFamily(text, 'perf-script', 'plugin', options);
}
