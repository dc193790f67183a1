// Benchmark of the VM-entry checks on a full passing Vmcs (DESIGN.md §9 target: ≥ 1,000,000 full check runs/s).
// Baseline, measured in the same run: a loop that reads every VMCS word the catalogue names, deciding nothing.
// Must not: be imported by src/ (it reads the clock); the engine under src/cpu/vmentry is clock-free.
import { performance } from 'node:perf_hooks';
import { DEFAULT_CPU_MODEL, findCpuModel } from '../src/cpu/cpu-model.js';
import { ENTRY_CHECKS } from '../src/cpu/generated/entry-checks.js';
import { Field, type FieldName } from '../src/cpu/generated/vmcs-fields.js';
import { slotOf } from '../src/cpu/vmcs.js';
import { runEntryChecks, validVmcs, type EntryEnvironment } from '../src/cpu/vmentry/index.js';

export interface BenchResult { name: string; opsPerSecond: number; baselineOpsPerSecond: number }

const BATCH = 20_000;

/**
 * Calls per second of `fn`: the best of `rounds` rounds of about `ms / rounds` milliseconds each (the best round is
 * the one least disturbed by other processes on a shared machine).
 */
function measure(fn: () => number, ms: number, rounds: number): number {
  let best = 0, sink = 0;
  for (let r = 0; r < rounds; r++) {
    let calls = 0;
    const start = performance.now();
    let now = start;
    while (now - start < ms / rounds) {
      for (let i = 0; i < BATCH; i++) sink += fn();
      calls += BATCH;
      now = performance.now();
    }
    best = Math.max(best, calls / ((now - start) / 1000));
  }
  if (sink === -1) process.stdout.write(''); // keeps `sink` observable so the loops are not optimised away
  return best;
}

export function benchEntryChecks(durationMs = 2000): BenchResult {
  const cpu = findCpuModel(DEFAULT_CPU_MODEL);
  if (!cpu) throw new Error(`turtles bug: no preset ${DEFAULT_CPU_MODEL}`);
  const vmcs = validVmcs(cpu);
  const env: EntryEnvironment = { cpu, hostIa32e: true };
  const first = runEntryChecks(vmcs, env, 'first');
  if (first.failures.length !== 0) throw new Error(`turtles bug: the valid state fails ${first.failures[0]!.id}`);
  const slots = [...new Set(ENTRY_CHECKS.flatMap((c) => c.fields.map((f) => slotOf(Field[f as FieldName]))))];
  const words = vmcs.words;
  const baseline = (): number => {
    let x = 0;
    for (let i = 0; i < slots.length; i++) { const s = slots[i]!; x ^= words[2 * s]! ^ words[2 * s + 1]!; }
    return x;
  };
  const run = (): number => runEntryChecks(vmcs, env, 'first').evaluatedCount;
  measure(run, durationMs / 4, 2); // warm-up: let the JIT settle both loops
  measure(baseline, durationMs / 4, 2);
  return {
    name: `vm-entry checks: full passing Vmcs (${cpu.id}), 'first' mode, ${ENTRY_CHECKS.length} checks`,
    opsPerSecond: measure(run, durationMs, 8),
    baselineOpsPerSecond: measure(baseline, durationMs, 8),
  };
}

if (process.argv[1] !== undefined && import.meta.url === new URL(`file://${process.argv[1]}`).href) {
  const r = benchEntryChecks();
  const fmt = (x: number): string => Math.round(x).toLocaleString('en-US');
  process.stdout.write(`${r.name}: ${fmt(r.opsPerSecond)} runs/s (baseline: reading the same fields ${fmt(r.baselineOpsPerSecond)}/s)\n`);
}
