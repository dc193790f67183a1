// Benchmark of the differential oracle (DESIGN.md §9 target: ≥ 50,000 L2 exits/s checked reference-vs-nested):
// one L1 program (the built-in L1 running an exit-heavy L2 loop) run through checkProgram on the sdm profile.
// Baseline, measured in the same run: the reference machine alone on the same program.
// Must not: be imported by src/ (it reads the clock).
import { performance } from 'node:perf_hooks';
import { asm64 } from '../src/asm/index.js';
import { findCpuModel } from '../src/cpu/cpu-model.js';
import { Primary } from '../src/cpu/generated/controls.js';
import { builtinL1 } from '../src/cpu/l1/builtin.js';
import type { L1Config } from '../src/cpu/l1/config.js';
import { runReference } from '../src/cpu/machine/index.js';
import { checkProgram } from '../src/checker/index.js';
import { sdmProfile } from '../src/nested/profile.js';

export interface BenchResult { name: string; opsPerSecond: number; baselineOpsPerSecond: number }

const EXITS = 400;

function config(): L1Config {
  // Each iteration: CPUID (always exits), an OUT with unconditional I/O exiting, then loop; HLT ends the run.
  return {
    l2: { mode: 'long64', code: asm64`mov ebx, ${EXITS / 2}; again: xor eax, eax; cpuid; mov al, 1; out 0x80, al; dec ebx; jnz again; hlt` },
    controls: { primary: Primary.HLT_EXITING | Primary.UNCONDITIONAL_IO_EXITING },
    policy: { rules: [{ reason: 12, actions: [{ kind: 'stop' }] }] },
  };
}

export function benchDifferential(): BenchResult[] {
  const cpu = findCpuModel('kvm-l1')!;
  const program = builtinL1(config());
  // Warm up both paths once (JIT), then time.
  checkProgram(program, {}, { cpu, profile: sdmProfile(), mode: 'all' });
  let t = performance.now();
  const ref = runReference(program, { cpu });
  const refSeconds = (performance.now() - t) / 1000;
  t = performance.now();
  const r = checkProgram(program, {}, { cpu, profile: sdmProfile(), mode: 'all' });
  const checkSeconds = (performance.now() - t) / 1000;
  if (r.divergences.length > 0) throw new Error(`turtles bug: the bench program diverges (${r.divergences[0]!.rule})`);
  const exits = ref.result.exits;
  return [{ name: `differential check, reference vs nested (${exits} L2 exits, sdm)`, opsPerSecond: exits / checkSeconds, baselineOpsPerSecond: exits / refSeconds }];
}
