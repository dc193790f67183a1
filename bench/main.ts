// `npm run bench`: every benchmark, each reported as a ratio against a baseline measured in the same run
// (never as an absolute pass/fail), next to the DESIGN.md §9 target where one exists.
// Must not: be run by the test suite (performance is measured here, never in timed tests).
import { benchEntryChecks } from './entry-checks.js';
import { benchVmx } from './vmx.js';
import { benchTrace } from './trace.js';
import { benchInterp } from './interp.js';
import { benchDifferential } from './differential.js';
import { benchReplay } from './replay.js';

function line(name: string, value: string, baseline: string, note = ''): void {
  process.stdout.write(`${name.padEnd(46)} ${value.padStart(16)}   ${baseline}${note ? `   ${note}` : ''}\n`);
}

function rate(x: number): string {
  return x >= 1e6 ? `${(x / 1e6).toFixed(2)} M/s` : `${(x / 1e3).toFixed(1)} K/s`;
}

process.stdout.write(`turtles benchmarks (node ${process.version}; figures are machine-dependent, ratios less so)\n\n`);

const e = benchEntryChecks();
line(e.name, rate(e.opsPerSecond), `= ${(e.opsPerSecond / e.baselineOpsPerSecond).toFixed(2)}x of baseline ${rate(e.baselineOpsPerSecond)}`, 'target >= 1 M full checks/s');

for (const r of benchVmx()) {
  line(r.name, rate(r.opsPerSecond), `= ${(r.opsPerSecond / r.baselineOpsPerSecond).toFixed(2)}x of baseline ${rate(r.baselineOpsPerSecond)}`);
}

for (const r of benchInterp()) {
  line(r.name, rate(r.opsPerSecond), `= ${(r.opsPerSecond / r.baselineOpsPerSecond).toFixed(2)}x of baseline ${rate(r.baselineOpsPerSecond)}`);
}

for (const r of benchDifferential()) {
  line(r.name, rate(r.opsPerSecond), `= ${(r.opsPerSecond / r.baselineOpsPerSecond).toFixed(2)}x of baseline ${rate(r.baselineOpsPerSecond)} (reference machine alone)`, 'target >= 50 K exits/s');
}

for (const r of benchTrace()) {
  const base = r.baseline ? `= ${(r.value / r.baseline.value).toFixed(3)}x of ${r.baseline.name} ${r.baseline.value.toFixed(1)} ${r.baseline.unit}` : '';
  line(r.name, `${r.value.toFixed(1)} ${r.unit}`, base);
}

for (const r of benchReplay()) {
  const base = r.baseline ? `= ${(r.value / r.baseline.value).toFixed(3)}x of ${r.baseline.name} ${r.baseline.value.toFixed(1)} ${r.baseline.unit}` : '';
  line(r.name, `${r.value.toFixed(1)} ${r.unit}`, base);
}
