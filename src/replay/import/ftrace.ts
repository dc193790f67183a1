// Importer for raw ftrace output (/sys/kernel/tracing/trace, trace_pipe) and author-stripped "event: payload" lines:
// kvm_exit text there is the kernel's own print format, so its E1 form dates the kernel to ≤5.9.
// Grammar and damage: shared/reference/trace-formats.md §1–§5. Must not: read files.
import { importFtraceFamily } from './ftrace/import.js';
import type { ImportOptions, ImportResult } from './ftrace/result.js';

export function importFtrace(text: string, options: ImportOptions = {}): ImportResult {
  return importFtraceFamily(text, 'ftrace', 'kernel', options);
}
