// `turtles record <scenario> -o <out> [--l0 sdm|kvm] [--seed N] [--json]`: runs a built-in or file-defined scenario
// (docs/scenarios.md) on the nested machine and streams its trace to <out> in bounded memory. Exit 0, or 2 on a bad
// scenario or usage. Must not: record anything itself (src/replay/record does) or parse scenarios (src/replay/scenario).
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { createTraceFile } from '../../replay/io/trace-file.js';
import { loadScenario } from '../../replay/io/scenario-files.js';
import { recordScenarioTo, scenarioHeader, type RecordSummary } from '../../replay/record/recorder.js';
import { ScenarioError, type Scenario } from '../../replay/scenario/types.js';
import type { WriteSummary } from '../../replay/format/index.js';
import { ExitCode, InputError, UsageError } from '../errors.js';
import { progress, writeJson, writeLine } from '../output.js';
import type { SetExitCode } from './index.js';

function parseSeed(text: string): bigint {
  if (!/^(0x[0-9a-fA-F]{1,16}|[0-9]{1,20})$/.test(text)) throw new UsageError(`--seed takes a non-negative integer (decimal or 0x hex), not "${text}"`);
  const v = BigInt(text);
  if (v > 0xffff_ffff_ffff_ffffn) throw new UsageError(`--seed must be below 2^64, got ${text}`);
  return v;
}

function load(name: string): Scenario {
  try {
    return loadScenario(name);
  } catch (e) {
    if (e instanceof ScenarioError) throw new InputError(e.source, `${e.path}: ${e.expected}`);
    throw e;
  }
}

export function registerRecord(program: Command, setExit: SetExitCode): void {
  program
    .command('record')
    .description('run a built-in or file-defined scenario on the model (nested machine) and write its trace')
    .argument('<scenario>', 'a built-in scenario name (scenarios/*.json) or a scenario file (docs/scenarios.md)')
    .requiredOption('-o, --out <file>', 'the trace to write (.trtl)')
    .option('--l0 <profile>', 'L0 profile: sdm or kvm (default: the scenario\'s)')
    .option('--seed <n>', 'seed for what L2 draws from the platform (default: the scenario\'s)')
    .option('--json', 'print { schemaVersion, scenario, file, events, exits, bytes }')
    .action((name: string, opts: { out: string; l0?: string; seed?: string; json?: boolean }) => {
      if (opts.l0 !== undefined && opts.l0 !== 'sdm' && opts.l0 !== 'kvm') throw new UsageError(`--l0 takes "sdm" or "kvm", not "${opts.l0}"`);
      const seed = opts.seed !== undefined ? parseSeed(opts.seed) : undefined;
      if (name.endsWith('.json') && resolve(name) === resolve(opts.out)) throw new UsageError(`-o ${opts.out} would overwrite the scenario`);
      let scenario = load(name);
      if (opts.l0 !== undefined && opts.l0 !== scenario.l0.profile) scenario = { ...scenario, l0: { profile: opts.l0 } };
      const recordOpts = seed !== undefined ? { seed } : {};
      const out = createTraceFile(opts.out, scenarioHeader(scenario, recordOpts));
      let summary: RecordSummary;
      let written: WriteSummary;
      try {
        summary = recordScenarioTo(scenario, (e) => out.writer.append(e), {
          ...recordOpts, progressEvery: 10_000,
          onProgress: (exits, events) => progress(`record ${scenario.name}: ${exits} exits to L1, ${events} events`),
        });
        written = out.finish();
      } catch (e) {
        out.abort();
        throw e;
      }
      progress(''.padEnd(70) + '\r');
      if (opts.json) {
        writeJson({
          scenario: scenario.name, file: opts.out, events: written.events, exits: summary.exitsToL1, bytes: written.bytes,
          l2Exits: summary.l2Exits, reflected: summary.reflected, handledByL0: summary.handledByL0, l0: scenario.l0.profile, status: summary.status,
        });
      } else {
        const perExit = summary.l2Exits > 0 ? (written.bytes / summary.l2Exits).toFixed(1) : 'n/a';
        writeLine(`record ${scenario.name} (L0 ${scenario.l0.profile}) -> ${opts.out}: ${written.events} events, ${summary.exitsToL1} exits to L1, `
          + `${summary.l2Exits} L2 exits (${summary.reflected} reflected, ${summary.handledByL0} handled by L0), ${written.bytes} bytes, `
          + `${perExit} bytes/L2 exit${summary.status === 'completed' ? '' : `; run ended: ${summary.status}`}`);
      }
      setExit(ExitCode.OK);
    });
}
