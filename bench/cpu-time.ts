// CPU-time measurement shared by the benchmarks: process CPU seconds and the least-disturbed per-call cost of a
// function. CPU time rather than wall time, so ratios hold on a loaded machine. Must not: be imported by src/.

/** CPU seconds this process (all threads) has used so far. */
export function cpuSeconds(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
}

/** Least CPU seconds per call of `f` over `rounds` rounds of about `seconds / rounds` CPU seconds each (after one warm-up call). */
export function bestCpuSeconds(f: () => void, seconds: number, rounds = 5): number {
  f();
  let min = Infinity;
  for (let r = 0; r < rounds; r++) {
    let runs = 0;
    const start = cpuSeconds();
    let now = start;
    do {
      f();
      runs++;
      now = cpuSeconds();
    } while (now - start < seconds / rounds);
    min = Math.min(min, (now - start) / runs);
  }
  return min;
}
