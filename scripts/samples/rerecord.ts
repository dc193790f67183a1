// `npm run rerecord`: regenerate the bundled recorded traces (traces/recorded/manifest.json) exactly as
// `turtles record <scenario> -o <trace> [--l0 <profile>]` writes them, and say which ones changed.
// Must not: record anything itself (src/replay/record does); a model change that alters a trace shows up in the golden test.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { loadScenario } from '../../src/replay/io/scenario-files.js';
import { recordScenarioTo, scenarioHeader } from '../../src/replay/record/recorder.js';
import { MemorySink, TraceWriter } from '../../src/replay/format/index.js';
import type { Scenario } from '../../src/replay/scenario/types.js';

export interface RecordedTrace {
  readonly trace: string;
  /** A built-in scenario name or a scenario file relative to the repository root. */
  readonly scenario: string;
  /** `--l0` of the command line; absent = the scenario's own profile. */
  readonly l0?: 'sdm' | 'kvm';
}

export function loadRecordedTraces(root: string): RecordedTrace[] {
  return (JSON.parse(readFileSync(join(root, 'traces/recorded/manifest.json'), 'utf8')) as { traces: RecordedTrace[] }).traces;
}

/** The command line (from the repository root) that writes `t`. */
export function recordCommand(t: RecordedTrace): string[] {
  return ['record', t.scenario, '-o', t.trace, ...(t.l0 ? ['--l0', t.l0] : [])];
}

/** The scenario `t` records, with `--l0` applied the way `turtles record` applies it. */
function scenarioOf(root: string, t: RecordedTrace): Scenario {
  const s = loadScenario(t.scenario.includes('/') ? resolve(root, t.scenario) : t.scenario);
  return t.l0 !== undefined && t.l0 !== s.l0.profile ? { ...s, l0: { profile: t.l0 } } : s;
}

/** Record `t` in memory: the bytes `turtles record` writes for it (same header, same writer, default options). */
export function rerecordBytes(root: string, t: RecordedTrace): Uint8Array {
  const s = scenarioOf(root, t);
  const sink = new MemorySink();
  const writer = new TraceWriter(sink, scenarioHeader(s), { file: t.trace });
  recordScenarioTo(s, (e) => writer.append(e), {});
  writer.finish();
  return sink.bytes();
}

if (process.argv[1]?.endsWith('/rerecord.js')) {
  const root = join(import.meta.dirname, '../../..');
  let changed = 0;
  for (const t of loadRecordedTraces(root)) {
    const path = join(root, t.trace);
    const before = existsSync(path) ? readFileSync(path) : undefined;
    const after = rerecordBytes(root, t);
    writeFileSync(path, after);
    const state = before === undefined ? 'created' : before.equals(after) ? 'unchanged' : 'CHANGED';
    if (state !== 'unchanged') changed++;
    process.stdout.write(`${state.padEnd(10)} ${t.trace}  (turtles ${recordCommand(t).join(' ')}; ${after.length} bytes)\n`);
  }
  if (changed) process.stdout.write(`${changed} trace(s) written; review, then npm run accept\n`);
}
