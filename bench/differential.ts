// Benchmark of the differential oracle (DESIGN.md §9 target: ≥ 50,000 L2 exits/s checked reference-vs-nested):
// one L1 program (the built-in L1 running an exit-heavy L2 loop) run through checkProgram on the sdm profile.
// Baseline, measured in the same run: the reference machine alone on the same program. Rates are per CPU second.
// Must not: be imported by src/ (it reads the clock).
import { asm64 } from '../src/asm/index.js';
import { findCpuModel } from '../src/cpu/cpu-model.js';
import { Primary } from '../src/cpu/generated/controls.js';
import { builtinL1 } from '../src/cpu/l1/builtin.js';
import type { L1Config } from '../src/cpu/l1/config.js';
import { runReference } from '../src/cpu/machine/index.js';
import { checkProgram } from '../src/checker/index.js';
import { sdmProfile } from '../src/nested/profile.js';
import { cpuSeconds } from './cpu-time.js';

export interface BenchResult { name: string; opsPerSecond: number; baselineOpsPerSecond: number }

const EXITS = 400;

function config(): L1Config {
  // Each iteration (counter in ESI: CPUID clobbers EBX/ECX): CPUID (always exits), an OUT with unconditional I/O exiting, then loop; HLT ends the run.
  return {
    l2: { mode: 'long64', code: asm64`mov esi, ${EXITS / 2}; again: xor eax, eax; cpuid; mov al, 1; out 0x80, al; dec esi; jnz again; hlt` },
    controls: { primary: Primary.HLT_EXITING | Primary.UNCONDITIONAL_IO_EXITING },
    policy: { rules: [{ reason: 12, actions: [{ kind: 'stop' }] }] },
    // The built-in L1 stops after 64 exits by default; let the whole loop (and the final HLT) run.
    maxExits: EXITS + 8,
  };
}

const MIN_SECONDS = 2;
const WARM_UP_RUNS = 6;


/**
 * CPU seconds (this process, all threads) per call of `f`, averaged over as many calls as fit in MIN_SECONDS of CPU
 * time (at least one). CPU time rather than wall time: on a shared, loaded machine wall time mostly measures waiting.
 */
function timed(f: () => unknown): number {
  const start = cpuSeconds();
  let runs = 0;
  let elapsed = 0;
  do {
    f();
    runs++;
    elapsed = cpuSeconds() - start;
  } while (elapsed < MIN_SECONDS);
  return elapsed / runs;
}

export function benchDifferential(): BenchResult[] {
  const cpu = findCpuModel('kvm-l1')!;
  const program = builtinL1(config());
  // Warm up both paths (the JIT needs a few runs), then time repeated runs for at least MIN_SECONDS each.
  for (let i = 0; i < WARM_UP_RUNS - 1; i++) checkProgram(program, {}, { cpu, profile: sdmProfile(), mode: 'all' });
  const warm = checkProgram(program, {}, { cpu, profile: sdmProfile(), mode: 'all' });
  for (let i = 0; i < 3 * WARM_UP_RUNS; i++) runReference(program, { cpu });
  if (warm.divergences.length > 0) throw new Error(`turtles bug: the bench program diverges (${warm.divergences[0]!.rule})`);
  const exits = warm.stats.reference.exits;
  const refSeconds = timed(() => runReference(program, { cpu }));
  const checkSeconds = timed(() => checkProgram(program, {}, { cpu, profile: sdmProfile(), mode: 'all' }));
  return [{ name: `differential check, reference vs nested (${exits} L2 exits, sdm)`, opsPerSecond: exits / checkSeconds, baselineOpsPerSecond: exits / refSeconds }];
}
