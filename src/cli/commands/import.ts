// `turtles import [--format <fmt>] <in> -o <out> [--json]`: converts an ftrace / trace-cmd / perf script log, an IRIS
// per-exit VMCS log, or a KVM dump_vmcs / Xen vmcs_dump_vcpu dump to a trace, detecting the format when none is named,
// and says how many lines it mapped and, by reason, what it could not. Exit 0, or 2 on bad input.
// Must not: parse or map anything itself (src/replay/import and src/replay/replay/dump-trace.ts do).
import { basename, resolve } from 'node:path';
import type { Command } from 'commander';
import { explainFormat, importText, IMPORT_FORMATS, type ImportFormat } from '../../replay/import/index.js';
import { detectVmcsDumpFormat } from '../../replay/import/vmcs-dump/index.js';
import { createTraceFile, readTextFile } from '../../replay/io/trace-file.js';
import { importVmcsDump, type DumpFormat } from '../../replay/replay/index.js';
import type { ImportCounts, TraceEvent, TraceHeader, WriteSummary } from '../../replay/format/index.js';
import { ExitCode, InputError, UsageError } from '../errors.js';
import { writeJson, writeLine } from '../output.js';
import type { SetExitCode } from './index.js';

export const IMPORT_CLI_FORMATS = [...IMPORT_FORMATS, 'dump-vmcs', 'xen-dump'] as const;
type CliFormat = ImportFormat | DumpFormat;

interface Imported {
  readonly format: CliFormat;
  readonly why: string;
  readonly header: TraceHeader;
  readonly events: readonly TraceEvent[];
  readonly counts: ImportCounts;
  readonly assumptions: readonly string[];
}

function isCliFormat(s: string): s is CliFormat {
  return (IMPORT_CLI_FORMATS as readonly string[]).includes(s);
}

function importDump(text: string, file: string, format: DumpFormat | 'auto', why: string): Imported {
  const r = importVmcsDump(text, format, basename(file));
  if (!r.ok) throw new InputError(`${file}:${r.error.line}`, r.error.expected);
  const v = r.value;
  return { format: v.format, why, header: v.header, events: v.events, counts: v.counts, assumptions: v.assumptions };
}

function importLog(text: string, file: string, format: ImportFormat, why: string, kernel: '<=5.9' | '>=5.10' | undefined): Imported {
  const r = importText(format, text, { sourceName: basename(file), ...(kernel ? { kernel } : {}) });
  return { format: r.format, why, header: r.header, events: r.events, counts: r.stats, assumptions: r.assumptions };
}

/** Import `file` as `format` ('auto' detects it). */
export function importAny(file: string, text: string, format: CliFormat | 'auto', kernel?: '<=5.9' | '>=5.10'): Imported {
  if (format === 'dump-vmcs' || format === 'xen-dump') return importDump(text, file, format, 'named with --format');
  if (format !== 'auto') return importLog(text, file, format, 'named with --format', kernel);
  const dump = detectVmcsDumpFormat(text);
  if (dump === 'kvm-dump-vmcs' || dump === 'xen-vmcs-dump') {
    return importDump(text, file, 'auto', `a "*** Guest State ***" VMCS dump in ${dump === 'kvm-dump-vmcs' ? "KVM's" : "Xen's"} layout`);
  }
  const d = explainFormat(text);
  if (!d) {
    throw new InputError(`${file}:1`, `one of ${IMPORT_CLI_FORMATS.join(', ')}: no line matches their layouts (name one with --format)`);
  }
  return importLog(text, file, d.format, d.why, kernel);
}

function printText(inFile: string, outFile: string, x: Imported, written: WriteSummary): void {
  const skipped = Object.entries(x.counts.skipped);
  const notMapped = skipped.reduce((n, [, c]) => n + c, 0);
  const exits = x.events.filter((e) => e.kind === 'vm-exit' || e.kind === 'l0-exit').length;
  writeLine(`import ${inFile} -> ${outFile}`);
  writeLine(`  format:  ${x.format} (${x.why})`);
  writeLine(`  lines:   ${x.counts.lines} read, ${x.counts.mapped} mapped, ${notMapped} not mapped`);
  if (skipped.length) {
    writeLine('  not mapped, by reason:');
    const w = Math.max(...skipped.map(([, c]) => String(c).length));
    for (const [reason, count] of skipped) writeLine(`    ${String(count).padStart(w)}  ${reason}`);
  }
  writeLine(`  trace:   ${written.events} events (${exits} exits), ${x.header.kind}, ${written.bytes} bytes in ${written.chunks} chunk${written.chunks === 1 ? '' : 's'}`);
  writeLine('  assumptions:');
  for (const a of x.assumptions) writeLine(`    - ${a}`);
}

export function registerImport(program: Command, setExit: SetExitCode): void {
  program
    .command('import')
    .description('convert a log (ftrace, trace-cmd, perf script, IRIS) or a VMCS dump (KVM dump_vmcs, Xen) to a trace')
    .argument('<in>', 'the log or dump')
    .requiredOption('-o, --out <file>', 'the trace to write (.trtl)')
    .option('--format <format>', `the input format: ${IMPORT_CLI_FORMATS.join(', ')} (default: detected)`)
    .option('--kernel <era>', 'for ftrace-family logs whose kvm_exit text does not date itself: "<=5.9" or ">=5.10"')
    .option('--json', 'print { schemaVersion, events, mapped, skipped: { <reason>: <count> }, ... }')
    .action((inFile: string, opts: { out: string; format?: string; kernel?: string; json?: boolean }) => {
      if (opts.format !== undefined && !isCliFormat(opts.format)) {
        throw new UsageError(`unknown format "${opts.format}" for --format; formats: ${IMPORT_CLI_FORMATS.join(', ')}`);
      }
      if (opts.kernel !== undefined && opts.kernel !== '<=5.9' && opts.kernel !== '>=5.10') {
        throw new UsageError(`--kernel takes "<=5.9" or ">=5.10", not "${opts.kernel}"`);
      }
      if (resolve(inFile) === resolve(opts.out)) throw new UsageError(`-o ${opts.out} would overwrite the input`);
      const text = readTextFile(inFile);
      const x = importAny(inFile, text, opts.format ?? 'auto', opts.kernel as '<=5.9' | '>=5.10' | undefined);
      const out = createTraceFile(opts.out, x.header);
      let written: WriteSummary;
      try {
        for (const e of x.events) out.writer.append(e);
        written = out.finish();
      } catch (e) {
        out.abort();
        throw e;
      }
      if (opts.json) {
        writeJson({
          events: written.events, mapped: x.counts.mapped, skipped: x.counts.skipped,
          lines: x.counts.lines, format: x.format, detection: x.why, kind: x.header.kind, input: inFile, output: opts.out,
          bytes: written.bytes, exits: x.events.filter((e) => e.kind === 'vm-exit' || e.kind === 'l0-exit').length, assumptions: x.assumptions,
        });
      } else {
        printText(inFile, opts.out, x, written);
      }
      setExit(ExitCode.OK);
    });
}
