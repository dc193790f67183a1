// The shared pipeline of the ftrace-family importers (raw ftrace / trace_pipe, trace-cmd report, perf script):
// lines → records (records.ts) → events (mapper.ts), with line accounting and provenance. The importers differ in
// who rendered kvm_exit: the kernel's print format (raw ftrace) or libtraceevent's kvm plugin (trace-cmd, perf).
// Must not: read files; callers pass the text.
import { LineAccount, splitLines } from './stats.js';
import { splitRecords, type TraceRecord } from './records.js';
import { payloadComplete, payloadExtendable } from './payloads.js';
import { FtraceMapper } from './mapper.js';
import type { Producer } from './version.js';
import { ImportError, importHeader, type ImportFormat, type ImportOptions, type ImportResult } from './result.js';

function styleNotes(records: readonly TraceRecord[], format: ImportFormat): string[] {
  const notes: string[] = [];
  const count = (f: (r: TraceRecord) => boolean): number => records.filter(f).length;
  const joined = count((r) => r.span > 1 && !r.twoLine);
  const twoLine = count((r) => r.twoLine);
  const quoted = count((r) => r.damage.includes('quote'));
  const bare = count((r) => r.style === 'bare');
  if (twoLine > 0) notes.push(`${twoLine} records written over two lines (header, then "event: payload") were joined`);
  if (joined > 0) notes.push(`${joined} soft-wrapped records were rejoined (only where the joined payload parses)`);
  if (quoted > 0) notes.push(`${quoted} records came from mail-quoted lines`);
  if (bare > 0) notes.push(`${bare} records had no ftrace header (author-stripped "event: payload")`);
  if (format === 'ftrace' && count((r) => r.padded) > 0) notes.push('some event names are padded to a column, as trace-cmd report prints them');
  return notes;
}

export function importFtraceFamily(text: string, format: Exclude<ImportFormat, 'iris'>, producer: Producer, options: ImportOptions = {}): ImportResult {
  const name = options.sourceName ?? `<${format}>`;
  const lines = splitLines(text);
  const account = new LineAccount();
  const records = splitRecords(lines, { complete: payloadComplete, extendable: payloadExtendable }, account);
  if (records.length === 0) {
    throw new ImportError('no-records', name, undefined, `${format} records ("comm-pid [cpu] flags ts: event: payload" or "event: payload"); found none in ${lines.length} lines`);
  }
  const mapped = new FtraceMapper(records, producer, account, options.kernel).run();
  if (account.lines !== lines.length) {
    throw new Error(`turtles bug: ${name}: accounted for ${account.lines} of ${lines.length} lines`);
  }
  const assumptions = [
    `kvm_exit text rendered by ${producer === 'kernel' ? "the kernel's print format (raw ftrace)" : "libtraceevent's kvm plugin (trace-cmd / perf)"}`,
    ...mapped.assumptions,
    ...styleNotes(records, format),
  ];
  const stats = account.stats();
  return { format, events: mapped.events, stats, kind: mapped.kind, assumptions, header: importHeader(format, mapped.kind, stats, assumptions, options) };
}
