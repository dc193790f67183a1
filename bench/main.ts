// `npm run bench`: every benchmark, each reported as a ratio against a baseline measured in the same run
// (never as an absolute pass/fail), next to the DESIGN.md §9 target where one exists.
// `node dist/bench/main.js differential interp` runs only the named groups (see GROUPS below). The recorded group runs
// the shipped 1 M-L2-exit mixed scenario (~14 CPU minutes today); `--iterations N` runs it with loop counter N instead
// (`--iterations quick`: bench/recorded.ts's QUICK_ITERATIONS, about three minutes).
// Must not: be run by the test suite (performance is measured here, never in timed tests).
import { benchEntryChecks } from './entry-checks.js';
import { benchVmx } from './vmx.js';
import { benchTrace } from './trace.js';
import { benchInterp } from './interp.js';
import { benchDifferential } from './differential.js';
import { benchReplay } from './replay.js';
import { benchRecorded, iterationsOption } from './recorded.js';

function line(name: string, value: string, baseline: string, note = ''): void {
  process.stdout.write(`${name.padEnd(46)} ${value.padStart(16)}   ${baseline}${note ? `   ${note}` : ''}\n`);
}

function rate(x: number): string {
  return x >= 1e6 ? `${(x / 1e6).toFixed(2)} M/s` : `${(x / 1e3).toFixed(1)} K/s`;
}

const GROUPS = ['entry-checks', 'vmx', 'interp', 'differential', 'trace', 'replay', 'recorded'] as const;
const args = process.argv.slice(2);
let recordedIterations: number | undefined;
try {
  recordedIterations = iterationsOption(args);
} catch (e) {
  process.stderr.write(`${(e as Error).message}\n`);
  process.exit(2);
}
const requested = args.filter((a, i) => a !== '--iterations' && args[i - 1] !== '--iterations');
const unknown = requested.filter((g) => !(GROUPS as readonly string[]).includes(g));
if (unknown.length > 0) {
  process.stderr.write(`unknown benchmark group(s): ${unknown.join(', ')}; known: ${GROUPS.join(', ')}\n`);
  process.exit(2);
}
function wanted(group: (typeof GROUPS)[number]): boolean {
  return requested.length === 0 || requested.includes(group);
}

process.stdout.write(`turtles benchmarks (node ${process.version}; figures are machine-dependent, ratios less so)\n\n`);

if (wanted('entry-checks')) {
  const e = benchEntryChecks();
  line(e.name, rate(e.opsPerSecond), `= ${(e.opsPerSecond / e.baselineOpsPerSecond).toFixed(2)}x of baseline ${rate(e.baselineOpsPerSecond)}`, 'target >= 1 M full checks/s');
}

for (const r of wanted('vmx') ? benchVmx() : []) {
  line(r.name, rate(r.opsPerSecond), `= ${(r.opsPerSecond / r.baselineOpsPerSecond).toFixed(2)}x of baseline ${rate(r.baselineOpsPerSecond)}`);
}

for (const r of wanted('interp') ? benchInterp() : []) {
  line(r.name, rate(r.opsPerSecond), `= ${(r.opsPerSecond / r.baselineOpsPerSecond).toFixed(2)}x of baseline ${rate(r.baselineOpsPerSecond)}`);
}

for (const r of wanted('differential') ? benchDifferential() : []) {
  line(r.name, rate(r.opsPerSecond), `= ${(r.opsPerSecond / r.baselineOpsPerSecond).toFixed(2)}x of baseline ${rate(r.baselineOpsPerSecond)} (reference machine alone)`, 'target >= 50 K exits/s');
}

for (const r of wanted('trace') ? benchTrace() : []) {
  const base = r.baseline ? `= ${(r.value / r.baseline.value).toFixed(3)}x of ${r.baseline.name} ${r.baseline.value.toFixed(1)} ${r.baseline.unit}` : '';
  line(r.name, `${r.value.toFixed(1)} ${r.unit}`, base);
}

for (const r of wanted('replay') ? benchReplay() : []) {
  const base = r.baseline ? `= ${(r.value / r.baseline.value).toFixed(3)}x of ${r.baseline.name} ${r.baseline.value.toFixed(1)} ${r.baseline.unit}` : '';
  line(r.name, `${r.value.toFixed(1)} ${r.unit}`, base);
}

for (const r of wanted('recorded') ? benchRecorded(recordedIterations !== undefined ? { iterations: recordedIterations } : {}) : []) {
  const base = r.baseline ? `= ${(r.value / r.baseline.value).toFixed(3)}x of ${r.baseline.name} ${r.baseline.value.toFixed(1)} ${r.baseline.unit}` : '';
  line(r.name, `${r.value.toFixed(1)} ${r.unit}`, base);
}
