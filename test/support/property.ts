// Shared fast-check parameters: a fixed seed in CI so every run is reproducible, and failure output that
// prints seed and path so `TURTLES_SEED=… TURTLES_PATH=…` replays one counterexample exactly.
// TURTLES_RUNS scales the budget (npm run test:deep sets it).
import type fc from 'fast-check';

const DEFAULT_SEED = 0x7475_7274; // "turt"

export function propertyParams<T>(overrides: fc.Parameters<T> = {}): fc.Parameters<T> {
  const seed = process.env['TURTLES_SEED'] !== undefined ? Number(process.env['TURTLES_SEED']) : DEFAULT_SEED;
  const path = process.env['TURTLES_PATH'];
  const scale = process.env['TURTLES_RUNS'] !== undefined ? Number(process.env['TURTLES_RUNS']) : 1;
  const numRuns = Math.max(1, Math.round((overrides.numRuns ?? 100) * scale));
  return {
    ...overrides,
    seed,
    numRuns,
    ...(path !== undefined ? { path } : {}),
    // fast-check's failure report already carries "seed" and "path"; keep the reproduction line explicit.
    reporter: (details) => {
      if (details.failed) {
        throw new Error(
          `property failed; replay with TURTLES_SEED=${details.seed} TURTLES_PATH=${details.counterexamplePath ?? ''}\n` +
            `counterexample: ${JSON.stringify(details.counterexample, (_k, v: unknown) => (typeof v === 'bigint' ? `${v}n` : v))}\n` +
            `${details.errorInstance instanceof Error ? details.errorInstance.message : String(details.errorInstance)}`,
        );
      }
    },
  };
}
