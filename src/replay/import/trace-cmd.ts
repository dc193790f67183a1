// Importer for `trace-cmd report` output, including the kvm-plugin style and logs an author wrapped onto two lines
// per event: kvm_exit text there comes from libtraceevent's kvm plugin, whose info2 meaning follows the kernel version.
// Grammar and damage: shared/reference/trace-formats.md §1–§5. Must not: read files.
import { importFtraceFamily } from './ftrace/import.js';
import type { ImportOptions, ImportResult } from './ftrace/result.js';

export function importTraceCmd(text: string, options: ImportOptions = {}): ImportResult {
  return importFtraceFamily(text, 'trace-cmd', 'plugin', options);
}
