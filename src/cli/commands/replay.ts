// `turtles replay <trace>... [--json] [--junit <file>] [--checks <ids>] [--first] [--event N] [--cpu <preset>]`: replays
// each trace through the checks its recorded data allows (src/replay/replay) and prints every divergence with its
// rule, SDM section, event and the command that reproduces it. Exit 0 none (or only expected kvm deviations), 1 divergences, 2 bad input.
// Must not: check anything itself; it opens files, chooses options and formats reports (text, JSON, JUnit).
import { writeFileSync } from 'node:fs';
import type { Command } from 'commander';
import { cpuModelIds, findCpuModel } from '../../cpu/cpu-model.js';
import { openTraceFile } from '../../replay/io/trace-file.js';
import { TraceIoError } from '../../replay/io/trace-file.js';
import { RuleFilter, classOfRule, replayTrace, type Finding, type TraceReplay } from '../../replay/replay/index.js';
import type { TraceEvent, TraceReader } from '../../replay/format/index.js';
import { ExitCode, InputError, UsageError } from '../errors.js';
import { junitXml } from '../junit.js';
import { progress, toJson, writeJson, writeLine } from '../output.js';
import type { SetExitCode } from './index.js';

interface Opts {
  json?: boolean;
  junit?: string;
  checks?: string;
  first?: boolean;
  event?: string;
  cpu?: string;
}

function reproduce(file: string, event: number): string {
  return `turtles replay ${/\s/.test(file) ? JSON.stringify(file) : file} --event ${event}`;
}

/** One line describing an event, for --event. */
function describeEvent(e: TraceEvent): string {
  const json = toJson(e).replace(/\s*\n\s*/g, ' ');
  return json.length > 400 ? json.slice(0, 400) + ' …' : json;
}

function printTrace(r: TraceReplay, reader: TraceReader, focus: { index: number; event: TraceEvent } | undefined): void {
  const h = reader.header;
  const p = h.provenance;
  writeLine(`replay ${r.file}: ${r.events} events, ${r.exits} exits${r.replayed < r.events ? ` (${r.replayed} replayed)` : ''}; ${h.kind}${p ? `, imported from ${p.sourceFormat} ${p.sourceName}` : `, ${h.producer}`}`);
  if (focus) writeLine(`  event ${focus.index}: ${describeEvent(focus.event)}`);
  for (const c of r.checks) {
    const expected = r.findings.filter((f) => f.divergence.kind === 'expected-deviation' && classOfRule(f.divergence.rule) === c.id).length;
    const failing = c.divergences - expected;
    const status = failing > 0 ? `${failing} divergence${failing === 1 ? '' : 's'}` : expected > 0 ? `${expected} expected` : c.applies ? 'ok' : 'not applicable';
    writeLine(`  ${c.id.padEnd(12)} ${status.padEnd(16)} ${c.note}`);
  }
  for (const f of r.findings) printFinding(r.file, f);
}

function printFinding(file: string, f: Finding): void {
  const d = f.divergence;
  writeLine('');
  // A difference a declared kvm-profile deviation explains is reported but does not fail the replay.
  const label = d.kind === 'expected-deviation' ? `EXPECTED DEVIATION ${d.deviation ?? ''}:` : 'DIVERGENCE';
  writeLine(`  ${label} ${d.rule} (SDM ${d.sdm}) at event ${d.event}${f.line !== undefined ? `, source line ${f.line}` : ''}, ${d.level}`);
  if (d.field) writeLine(`    field:     ${d.field}`);
  writeLine(`    expected:  ${d.expected}`);
  writeLine(`    actual:    ${d.actual}`);
  writeLine(`    ${d.explanation}`);
  writeLine(`    reproduce: ${reproduce(file, d.event)}`);
}

function parseEventOption(s: string | undefined): number | undefined {
  if (s === undefined) return undefined;
  if (!/^\d+$/.test(s) || !Number.isSafeInteger(Number(s))) throw new UsageError(`--event takes an event index (a non-negative integer), not "${s}"`);
  return Number(s);
}

export function registerReplay(program: Command, setExit: SetExitCode): void {
  program
    .command('replay')
    .description('replay traces and check them: recorded traces (turtles record) against a re-run of their scenario on the nested and reference machines; imported traces for exit information, VM-entry checks on recorded VMCS states, RIP advancement, reflection decisions')
    .argument('<trace...>', 'turtles traces (.trtl)')
    .option('--json', 'print { schemaVersion, traces: [{ file, events, exits, divergences, checks }] }')
    .option('--junit <file>', 'also write a JUnit XML report (one testcase per trace and check class)')
    .option('--checks <ids>', 'comma-separated rule-id prefixes to run, e.g. trace.exit-info,guest. (default: all)')
    .option('--first', 'stop at the first divergence')
    .option('--event <N>', 'report only what happens at event N (what each divergence prints as its reproduction)')
    .option('--cpu <preset>', `CPU model for the VM-entry checks (${cpuModelIds().join(', ')}); default: the trace's, else ${'intel-core-i7-6700k'} widened to what recorded exits prove`)
    .action((files: string[], opts: Opts) => {
      const checks = (opts.checks ?? '').split(',').map((s) => s.trim()).filter((s) => s !== '');
      if (opts.checks !== undefined && checks.length === 0) throw new UsageError('--checks needs at least one rule-id prefix');
      const unmatched = new RuleFilter(checks).unmatched();
      if (unmatched.length) {
        throw new UsageError(`--checks ${unmatched.join(',')} selects no rule; rule ids start with trace.exit-info., trace.rip-advance, trace.reflection., trace.entry.outcome, ctrl., host., guest. or msr-load. (imported traces), replay.model., merge., l0., l1., priority., ept02. or oracle. (recorded traces)`);
      }
      const event = parseEventOption(opts.event);
      let cpu;
      if (opts.cpu !== undefined) {
        cpu = findCpuModel(opts.cpu);
        if (!cpu) throw new UsageError(`unknown CPU preset "${opts.cpu}" for --cpu; presets: ${cpuModelIds().join(', ')}`);
      }
      const results: { replay: TraceReplay; reader: TraceReader; focus?: { index: number; event: TraceEvent } }[] = [];
      for (const file of files) {
        const t = openTraceFile(file);
        try {
          if (event !== undefined && event >= t.reader.eventCount) {
            throw new InputError(`${file}#${event}`, `an event index below ${t.reader.eventCount} (the trace has ${t.reader.eventCount} events)`);
          }
          const replay = replayTrace(t.reader, {
            checks, ...(opts.first ? { first: true } : {}), ...(event !== undefined ? { event } : {}), ...(cpu ? { cpu } : {}),
            onProgress: (done, total) => progress(`replay ${file}: ${done}/${total} events`),
          });
          progress(''.padEnd(70) + '\r');
          let focus;
          if (event !== undefined) {
            const it = t.reader.seek(event).next();
            if (!it.done) focus = { index: event, event: it.value };
          }
          results.push({ replay, reader: t.reader, ...(focus ? { focus } : {}) });
          if (replay.stopped) break;
        } finally {
          t.close();
        }
      }
      const total = results.reduce((n, r) => n + r.replay.findings.filter((f) => f.divergence.kind !== 'expected-deviation').length, 0);
      const expectedDeviations = results.reduce((n, r) => n + r.replay.findings.length, 0) - total;
      if (opts.junit) {
        const xml = junitXml(results.map((r) => ({ replay: r.replay, reproduce: (e: number) => reproduce(r.replay.file, e) })));
        try {
          writeFileSync(opts.junit, xml);
        } catch (e) {
          throw new TraceIoError(opts.junit, 'a writable file for the JUnit report', (e as NodeJS.ErrnoException).code);
        }
      }
      if (opts.json) {
        writeJson({
          traces: results.map(({ replay: r, focus }) => ({
            file: r.file, events: r.events, exits: r.exits, replayed: r.replayed,
            divergences: r.findings.map((f) => ({ ...f.divergence, ...(f.line !== undefined ? { line: f.line } : {}), reproduce: reproduce(r.file, f.divergence.event) })),
            checks: r.checks, ...(focus ? { event: { index: focus.index, value: focus.event } } : {}),
          })),
          divergences: total,
          ...(expectedDeviations > 0 ? { expectedDeviations } : {}),
        });
      } else {
        results.forEach((r, i) => {
          if (i > 0) writeLine('');
          printTrace(r.replay, r.reader, r.focus);
        });
        writeLine('');
        const stopped = results.some((r) => r.replay.stopped) ? ' (stopped at the first, --first)' : '';
        const expectedNote = expectedDeviations > 0 ? `, ${expectedDeviations} expected deviation${expectedDeviations === 1 ? '' : 's'} of the L0 profile` : '';
        writeLine(`${total} divergence${total === 1 ? '' : 's'}${expectedNote} in ${results.length} trace${results.length === 1 ? '' : 's'}${stopped}`);
      }
      setExit(total > 0 ? ExitCode.DIVERGENCE : ExitCode.OK);
    });
}
