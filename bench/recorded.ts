// Benchmarks of recorded (model) traces: the mixed workload (scenarios/mixed-1m.json with a smaller loop counter,
// see ITERATIONS) recorded in memory, then replay with all checks (re-run on the nested and reference machines and
// compared) in a fresh process that also reports peak RSS, trace bytes per exit, and columnar decode beside native zstd.
// Baselines from the same run: recording the same scenario, zstd-napi and `zstd -d` on the same frames, start-up RSS.
// Must not: be imported by src/ (it reads the clock, spawns processes and writes temporary files).
import { performance } from 'node:perf_hooks';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ChunkColumns, MemorySink, TraceReader, TraceWriter, memorySource } from '../src/replay/format/index.js';
import { openTraceFile } from '../src/replay/io/trace-file.js';
import { recordScenarioTo, scenarioHeader } from '../src/replay/record/recorder.js';
import { replayTrace } from '../src/replay/replay/index.js';
import { parseScenario } from '../src/replay/scenario/parse.js';
import { emptyZstdFrame, napiDecompressAll, traceFrames, zstdCliCpuSeconds } from './zstd-baseline.js';

export interface RecordedBenchResult {
  name: string;
  value: number;
  unit: string;
  baseline?: { name: string; value: number; unit: string };
}

const root = join(import.meta.dirname, '../..');

/**
 * L2 loop iterations: the mixed workload delivers about 9 exits to L1 per iteration. 2230 gives about 20 K exits to L1
 * (`node dist/bench/recorded.js 2230`), but recording and replaying the model run at about a thousand exits to L1 per
 * CPU second today, so the default is about 5 K, which keeps this group near half a minute.
 */
const ITERATIONS = 560;

function cpuSeconds(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
}

/** Least CPU seconds per call of `f` over `rounds` rounds of about `seconds / rounds` CPU seconds each. */
function bestCpu(f: () => void, seconds: number, rounds = 5): number {
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

/** The mixed workload with the loop counter set to `iterations` (everything else as shipped). */
function mixedScenarioText(iterations: number): string {
  const j = JSON.parse(readFileSync(join(root, 'scenarios/mixed-1m.json'), 'utf8')) as { name: string; l1: { l2: { gprs: Record<string, string> } } };
  j.name = `mixed-bench-${iterations}`;
  j.l1.l2.gprs['r15'] = `0x${iterations.toString(16)}`;
  return JSON.stringify(j);
}

interface ChildReport { cpuSeconds: number; startMb: number; peakMb: number; events: number; exits: number; findings: number }

/** In a fresh process: open `file`, replay it with every check (CPU-timed), report peak RSS. */
function replayInChild(file: string): ChildReport {
  const startMb = process.memoryUsage().rss / 1e6;
  const t = openTraceFile(file);
  try {
    const start = cpuSeconds();
    const r = replayTrace(t.reader);
    const cpu = cpuSeconds() - start;
    return { cpuSeconds: cpu, startMb, peakMb: process.resourceUsage().maxRSS / 1024, events: r.events, exits: r.exits, findings: r.findings.length };
  } finally {
    t.close();
  }
}

export function benchRecorded(options: { iterations?: number } = {}): RecordedBenchResult[] {
  const out: RecordedBenchResult[] = [];
  const scenario = parseScenario(mixedScenarioText(options.iterations ?? ITERATIONS), 'bench/recorded.ts');
  // Record once (the JIT warm-up is a small part of a 20 K-exit run): this is also the baseline the replay is set against.
  const sink = new MemorySink();
  const writer = new TraceWriter(sink, scenarioHeader(scenario));
  const start = cpuSeconds();
  const summary = recordScenarioTo(scenario, (e) => writer.append(e), {});
  writer.finish();
  const recordSeconds = cpuSeconds() - start;
  const bytes = sink.bytes();
  const label = `mixed workload, ${summary.exitsToL1} exits to L1, ${summary.l2Exits} L2 exits`;

  const dir = mkdtempSync(join(tmpdir(), 'turtles-bench-recorded-'));
  try {
    const file = join(dir, 'mixed.trtl');
    writeFileSync(file, bytes);
    const child = spawnSync(process.execPath, [fileURLToPath(import.meta.url), '--replay-child', file], { encoding: 'utf8' });
    if (child.status !== 0) throw new Error(`turtles bug: the replay child failed: ${child.stderr.trim()}`);
    const c = JSON.parse(child.stdout) as ChildReport;
    if (c.findings > 0) throw new Error(`turtles bug: replay of the bench recording found ${c.findings} divergences`);
    out.push({ name: `replay, all checks, ${label}`, value: summary.l2Exits / c.cpuSeconds, unit: 'L2 exits/s', baseline: { name: 'target', value: 1e6, unit: 'L2 exits/s' } });
    out.push({ name: `replay, all checks, ${label}, vs recording it`, value: summary.l2Exits / c.cpuSeconds, unit: 'L2 exits/s', baseline: { name: 'recording (nested run + writer)', value: summary.l2Exits / recordSeconds, unit: 'L2 exits/s' } });
    out.push({ name: `replay, all checks, ${label}, exits to L1`, value: summary.exitsToL1 / c.cpuSeconds, unit: 'exits to L1/s', baseline: { name: 'recording', value: summary.exitsToL1 / recordSeconds, unit: 'exits to L1/s' } });
    out.push({
      name: `peak RSS, replaying the ${(bytes.length / 1e3).toFixed(0)} KB recorded trace from a file`, value: c.peakMb, unit: 'MB',
      baseline: { name: 'RSS of the process before opening it', value: c.startMb, unit: 'MB' },
    });

    out.push({ name: `bytes per L2 exit, ${label}`, value: bytes.length / summary.l2Exits, unit: 'bytes/exit', baseline: { name: 'target', value: 32, unit: 'bytes/exit' } });
    out.push({ name: `bytes per exit to L1, ${label}`, value: bytes.length / summary.exitsToL1, unit: 'bytes/exit', baseline: { name: 'target', value: 32, unit: 'bytes/exit' } });

    // Decode: every chunk to columns, against zstd alone on the same frames (in-process and as a process).
    const reader = TraceReader.open(memorySource(bytes));
    const cols = new ChunkColumns();
    const mb = bytes.length / 1e6;
    const decodeSeconds = bestCpu(() => {
      for (let i = 0; i < reader.chunks.length; i++) reader.decodeChunkColumns(i, cols);
    }, 2);
    const zst = traceFrames(bytes);
    const napiSeconds = bestCpu(napiDecompressAll(zst), 1);
    out.push({ name: `columnar decode vs zstd-napi, ${label} (file MB/s)`, value: mb / decodeSeconds, unit: 'MB/s', baseline: { name: 'zstd-napi DCtx.decompress', value: mb / napiSeconds, unit: 'MB/s' } });
    const frames = join(dir, 'frames.zst');
    const empty = join(dir, 'empty.zst');
    // The frames repeated to at least 32 MB, so process start-up is small against zstd's own work.
    const copies = Math.max(1, Math.ceil(32e6 / zst.length));
    const repeated = new Uint8Array(zst.length * copies);
    for (let i = 0; i < copies; i++) repeated.set(zst, i * zst.length);
    writeFileSync(frames, repeated);
    writeFileSync(empty, emptyZstdFrame());
    const cli = zstdCliCpuSeconds(frames, empty, 5);
    if (cli !== undefined) {
      out.push({ name: `columnar decode vs \`zstd -d\`, ${label} (file MB/s, CPU time)`, value: mb / decodeSeconds, unit: 'MB/s', baseline: { name: `zstd -d (process, start-up subtracted, frames x${copies})`, value: (mb * copies) / cli, unit: 'MB/s' } });
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return out;
}

if (process.argv[1]?.endsWith('/bench/recorded.js') && process.argv[2] === '--replay-child') {
  process.stdout.write(JSON.stringify(replayInChild(process.argv[3]!)));
} else if (process.argv[1]?.endsWith('/bench/recorded.js')) {
  const t0 = performance.now();
  for (const r of benchRecorded(process.argv[2] ? { iterations: Number(process.argv[2]) } : {})) {
    const base = r.baseline ? ` (${r.baseline.name}: ${r.baseline.value.toFixed(1)} ${r.baseline.unit}; ${((100 * r.value) / r.baseline.value).toFixed(0)}%)` : '';
    process.stdout.write(`${r.name}: ${r.value.toFixed(1)} ${r.unit}${base}\n`);
  }
  process.stdout.write(`(${((performance.now() - t0) / 1000).toFixed(0)} s)\n`);
}
