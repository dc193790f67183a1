// `turtles stats <trace> [--json]`: exit-reason histograms per level, exit multiplication of nested traces, reflection
// decisions and entry failures by check id, from one streaming pass (src/replay/replay/summary.ts); for recorded traces
// (L1 exits = vmx-op events) also what each exit delivered to L1 cost.
// Exit 0, or 2 on bad input. Must not: read events itself (the summary does); it opens the file, derives ratios, formats.
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

/**
 * What each exit delivered to L1 cost, for traces whose L1 exits are its VMX instructions (vmx-op events) rather than
 * l0-exit events of level L1 (traces `turtles record` writes). Exits to L1 are reflected L2 exits plus the ones L0
 * raises itself after handling the hardware exit (e.g. an EPT violation L0 finds in EPT12). Undefined otherwise.
 */
export interface PerExitToL1 {
  readonly exitsToL1: number;
  readonly reflected: number;
  readonly raisedByL0: number;
  readonly l2HardwareExits: number;
  readonly l1VmxInstructions: number;
  readonly l2HardwareExitsPerExit: number;
  readonly l1VmxInstructionsPerExit: number;
}

export function perExitToL1(s: TraceSummary): PerExitToL1 | undefined {
  const ops = s.byKind['vmx-op'];
  const count = (h: Readonly<Record<string, number>>) => Object.values(h).reduce((a, c) => a + c, 0);
  const exitsToL1 = count(s.vmExits.byLevel['L2']);
  if (ops === 0 || exitsToL1 === 0 || count(s.l0Exits.byLevel['L1']) > 0) return undefined;
  const l2 = count(s.l0Exits.byLevel['L2']);
  return {
    exitsToL1, reflected: s.reflections.reflected, raisedByL0: exitsToL1 - s.reflections.reflected, l2HardwareExits: l2, l1VmxInstructions: ops,
    l2HardwareExitsPerExit: l2 / exitsToL1, l1VmxInstructionsPerExit: ops / exitsToL1,
  };
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
  const x = perExitToL1(s);
  if (m && x) {
    // L1's exits are not l0-exit events here, so the L1 figure of the summary (0) would mislead: say what they are.
    writeLine(`exit multiplication: ${m.l0ExitsPerReflected.toFixed(2)} hardware L2 exits per reflected L2 exit (${x.l2HardwareExits} L2 exits: ${r.reflected} reflected, ${r.handledByL0} handled by L0)`);
    writeLine(`  per exit delivered to L1: ${x.l2HardwareExitsPerExit.toFixed(2)} hardware L2 exits and ${x.l1VmxInstructionsPerExit.toFixed(2)} VMX instructions of L1 `
      + `(${x.exitsToL1} exits to L1: ${x.reflected} reflected, ${x.raisedByL0} raised by L0 after handling the hardware exit; `
      + `${x.l1VmxInstructions} vmx-op events, each an exit of L1 to L0 unless hardware VMCS shadowing serves a VMREAD/VMWRITE)`);
  } else if (m) {
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
        writeJson({ ...s, exitMultiplication: s.exitMultiplication ?? null, perExitToL1: perExitToL1(s) ?? null, trace: { kind: h.kind, l0Profile: h.l0Profile, producer: h.producer, source: h.provenance ? { format: h.provenance.sourceFormat, name: h.provenance.sourceName } : null } });
      } else {
        printText(s, t.reader.header);
      }
      setExit(ExitCode.OK);
    });
}
