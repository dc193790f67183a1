// `turtles stats <trace> [--json]`: exit-reason histograms per level, exit multiplication of nested traces, reflection
// decisions and entry failures by check id, from one streaming pass (src/replay/replay/summary.ts).
// Exit 0, or 2 on bad input. Must not: compute anything itself; it opens the file and formats the summary.
import type { Command } from 'commander';
import { openTraceFile } from '../../replay/io/trace-file.js';
import { summarizeTrace, type ReasonHistogram, type TraceSummary } from '../../replay/replay/index.js';
import type { TraceHeader } from '../../replay/format/index.js';
import { ExitCode } from '../errors.js';
import { progress, writeJson, writeLine } from '../output.js';
import type { SetExitCode } from './index.js';

function histogramLines(title: string, h: ReasonHistogram): void {
  writeLine(`${title}: ${h.total}`);
  if (h.total === 0) return;
  for (const [level, reasons] of Object.entries(h.byLevel)) {
    const entries = Object.entries(reasons);
    if (!entries.length) continue;
    const n = entries.reduce((a, [, c]) => a + c, 0);
    writeLine(`  level ${level}: ${n}`);
    const w = Math.max(...entries.map(([, c]) => String(c).length));
    for (const [k, c] of entries) writeLine(`    ${String(c).padStart(w)}  ${(100 * c / n).toFixed(1).padStart(5)}%  ${k}`);
  }
}

function printText(s: TraceSummary, header: TraceHeader): void {
  const p = header.provenance;
  writeLine(`stats ${s.file}`);
  writeLine(`  ${header.kind} trace, L0 ${header.l0Profile}; producer ${header.producer}${p ? `; from ${p.sourceFormat} ${p.sourceName}` : ''}`);
  writeLine(`  ${s.events} events: ${Object.entries(s.byKind).filter(([, n]) => n > 0).map(([k, n]) => `${n} ${k}`).join(', ')}`);
  writeLine('');
  histogramLines('exits delivered to the hypervisor above (vm-exit)', s.vmExits);
  histogramLines('hardware exits taken by L0 (l0-exit)', s.l0Exits);
  const r = s.reflections;
  writeLine(`reflection decisions: ${r.reflected} reflected to L1, ${r.handledByL0} handled by L0${r.inferred ? ` (${r.inferred} inferred from event order)` : ''}`);
  const m = s.exitMultiplication;
  if (m) {
    writeLine(`exit multiplication: ${m.l0ExitsPerReflected.toFixed(2)} L0 exits and ${m.l1ExitsPerReflected.toFixed(2)} L1 exits per reflected L2 exit (${m.l0Exits} L0 exits, ${m.l1Exits} of L1, ${m.reflectedL2Exits} reflected)`);
  } else {
    writeLine('exit multiplication: no reflected L2 exit in this trace');
  }
  writeLine(`entry failures: ${s.entryFailures.total}`);
  for (const [k, n] of Object.entries(s.entryFailures.byCheck)) writeLine(`  ${n}  ${k}`);
}

export function registerStats(program: Command, setExit: SetExitCode): void {
  program
    .command('stats')
    .description('exit-reason histograms per level, exit multiplication, reflection decisions and entry failures of a trace')
    .argument('<trace>', 'a turtles trace (.trtl)')
    .option('--json', 'print { schemaVersion, file, events, byKind, vmExits, l0Exits, reflections, exitMultiplication, entryFailures }')
    .action((file: string, opts: { json?: boolean }) => {
      const t = openTraceFile(file);
      let s: TraceSummary;
      try {
        s = summarizeTrace(t.reader, (done, total) => progress(`stats ${file}: ${done}/${total} events`));
      } finally {
        t.close();
      }
      progress(''.padEnd(60) + '\r');
      if (opts.json) {
        const h = t.reader.header;
        writeJson({ ...s, exitMultiplication: s.exitMultiplication ?? null, trace: { kind: h.kind, l0Profile: h.l0Profile, producer: h.producer, source: h.provenance ? { format: h.provenance.sourceFormat, name: h.provenance.sourceName } : null } });
      } else {
        printText(s, t.reader.header);
      }
      setExit(ExitCode.OK);
    });
}
