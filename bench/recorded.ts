// Benchmarks of recorded (model) traces on the built-in mixed workload, scenarios/mixed-1m.json: recording it
// streaming to a file (the baseline), replay with all checks (re-run on the nested and reference machines and
// compared), each in a fresh process reporting CPU time and peak RSS, then trace bytes per exit and columnar decode
// beside zstd-napi and `zstd -d` on the same file. The loop counter is the shipped one (1,048,577 L2 exits) unless
// `--iterations N` (or `--iterations quick`: QUICK_ITERATIONS) says otherwise.
// Must not: be imported by src/ (it reads the clock, spawns processes and writes temporary files).
import { performance } from 'node:perf_hooks';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ChunkColumns, TraceReader, memorySource } from '../src/replay/format/index.js';
import { createTraceFile, openTraceFile } from '../src/replay/io/trace-file.js';
import { recordScenarioTo, scenarioHeader } from '../src/replay/record/recorder.js';
import { replayTrace } from '../src/replay/replay/index.js';
import { parseScenario } from '../src/replay/scenario/parse.js';
import { napiDecompressAll, traceFrames, zstdCliCpuSecondsRepeated } from './zstd-baseline.js';
import { bestCpuSeconds, cpuSeconds } from './cpu-time.js';

export interface RecordedBenchResult {
  name: string;
  value: number;
  unit: string;
  baseline?: { name: string; value: number; unit: string };
}

const root = join(import.meta.dirname, '../..');

interface MixedScenario { name: string; l1: { l2: { gprs: Record<string, string> } } }

function shippedScenario(): MixedScenario {
  return JSON.parse(readFileSync(join(root, 'scenarios/mixed-1m.json'), 'utf8')) as MixedScenario;
}

/** The shipped loop counter (R15) of the mixed workload: 19 L2 exits and 9 exits to L1 per iteration. */
export function shippedIterations(): number {
  return Number(BigInt(shippedScenario().l1.l2.gprs['r15']!));
}

/**
 * A quick cut for `--iterations quick`: 5,500 iterations = 104,505 L2 exits (49,501 to L1), a tenth of the shipped
 * scenario, about three minutes. The default is the shipped scenario itself, as issue 5 asks: recording runs at
 * ~3,000 and replay at ~2,100 L2 exits per CPU second today (KNOWN_GAPS `record-scenarios`), so it costs ~14 CPU
 * minutes (15 minutes of wall time on the 2-core development machine, 37 when it is loaded). Memory and bytes per exit
 * do not grow with the length (streaming).
 */
export const QUICK_ITERATIONS = 5500;

function peakMb(): number {
  return process.resourceUsage().maxRSS / 1024;
}


/** The mixed workload with the loop counter set to `iterations` (everything else, and the name when full, as shipped). */
function mixedScenarioText(iterations: number): string {
  const j = shippedScenario();
  if (iterations !== shippedIterations()) j.name = `mixed-bench-${iterations}`;
  j.l1.l2.gprs['r15'] = `0x${iterations.toString(16)}`;
  return JSON.stringify(j);
}

/** Progress on a terminal only (the children's stderr is the bench's). */
function progress(what: string): (done: number, total?: number) => void {
  if (!process.stderr.isTTY) return () => {};
  return (done, total) => process.stderr.write(`\r${what}: ${done.toLocaleString('en-US')}${total ? ` of ${total.toLocaleString('en-US')}` : ''}   `);
}

interface RecordReport { cpuSeconds: number; startMb: number; peakMb: number; exitsToL1: number; l2Exits: number; events: number; bytes: number }

/** In a fresh process: record the mixed workload with `iterations` to `file` (CPU-timed), report peak RSS. */
function recordInChild(iterations: number, file: string): RecordReport {
  const startMb = process.memoryUsage().rss / 1e6;
  const scenario = parseScenario(mixedScenarioText(iterations), 'bench/recorded.ts');
  const show = progress('recording, exits to L1');
  const start = cpuSeconds();
  const out = createTraceFile(file, scenarioHeader(scenario));
  const summary = recordScenarioTo(scenario, (e) => out.writer.append(e), { onProgress: (exits) => show(exits), progressEvery: 50_000 });
  const written = out.finish();
  const cpu = cpuSeconds() - start;
  if (process.stderr.isTTY) process.stderr.write('\n');
  return { cpuSeconds: cpu, startMb, peakMb: peakMb(), exitsToL1: summary.exitsToL1, l2Exits: summary.l2Exits, events: written.events, bytes: written.bytes };
}

interface ReplayReport { cpuSeconds: number; startMb: number; peakMb: number; events: number; exits: number; findings: number }

/** In a fresh process: open `file`, replay it with every check (CPU-timed), report peak RSS. */
function replayInChild(file: string): ReplayReport {
  const startMb = process.memoryUsage().rss / 1e6;
  const t = openTraceFile(file);
  try {
    const start = cpuSeconds();
    const r = replayTrace(t.reader, { onProgress: progress('replay (final walk), events') });
    const cpu = cpuSeconds() - start;
    if (process.stderr.isTTY) process.stderr.write('\n');
    return { cpuSeconds: cpu, startMb, peakMb: peakMb(), events: r.events, exits: r.exits, findings: r.findings.length };
  } finally {
    t.close();
  }
}

function child<T>(args: readonly string[]): T {
  const r = spawnSync(process.execPath, [fileURLToPath(import.meta.url), ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 1 << 20 });
  if (r.status !== 0) throw new Error(`turtles bug: the bench child ${args[0]} failed (status ${r.status}, signal ${r.signal})`);
  return JSON.parse(r.stdout) as T;
}

export function benchRecorded(options: { iterations?: number } = {}): RecordedBenchResult[] {
  const out: RecordedBenchResult[] = [];
  const iterations = options.iterations ?? shippedIterations();
  const dir = mkdtempSync(join(tmpdir(), 'turtles-bench-recorded-'));
  try {
    const file = join(dir, 'mixed.trtl');
    const rec = child<RecordReport>(['--record-child', String(iterations), file]);
    const label = `mixed workload, ${rec.l2Exits} L2 exits (${rec.exitsToL1} to L1)`;
    const rep = child<ReplayReport>(['--replay-child', file]);
    if (rep.findings > 0) throw new Error(`turtles bug: replay of the bench recording found ${rep.findings} divergences`);
    out.push({ name: `replay, all checks, ${label}`, value: rec.l2Exits / rep.cpuSeconds, unit: 'L2 exits/s', baseline: { name: 'target', value: 1e6, unit: 'L2 exits/s' } });
    out.push({ name: `replay, all checks, ${label}, vs recording it`, value: rec.l2Exits / rep.cpuSeconds, unit: 'L2 exits/s', baseline: { name: 'recording to a file (nested run + writer)', value: rec.l2Exits / rec.cpuSeconds, unit: 'L2 exits/s' } });
    out.push({ name: `replay, all checks, ${label}, exits to L1`, value: rec.exitsToL1 / rep.cpuSeconds, unit: 'exits to L1/s', baseline: { name: 'recording', value: rec.exitsToL1 / rec.cpuSeconds, unit: 'exits to L1/s' } });
    out.push({ name: `replay, all checks, ${label}, CPU time`, value: rep.cpuSeconds, unit: 's', baseline: { name: 'recording', value: rec.cpuSeconds, unit: 's' } });
    out.push({
      name: `peak RSS, replaying the ${(rec.bytes / 1e6).toFixed(2)} MB trace (${rec.events} events) from a file`, value: rep.peakMb, unit: 'MB',
      baseline: { name: 'RSS of the process before opening it', value: rep.startMb, unit: 'MB' },
    });
    out.push({ name: `peak RSS, recording ${label} to a file`, value: rec.peakMb, unit: 'MB', baseline: { name: 'RSS of the process before recording', value: rec.startMb, unit: 'MB' } });
    out.push({ name: `peak RSS, replaying it, against the target`, value: rep.peakMb, unit: 'MB', baseline: { name: 'target (a 10M-exit trace)', value: 256, unit: 'MB' } });
    out.push({ name: `bytes per L2 exit, ${label}`, value: rec.bytes / rec.l2Exits, unit: 'bytes/exit', baseline: { name: 'target', value: 32, unit: 'bytes/exit' } });
    out.push({ name: `bytes per exit to L1, ${label}`, value: rec.bytes / rec.exitsToL1, unit: 'bytes/exit', baseline: { name: 'target', value: 32, unit: 'bytes/exit' } });

    // Decode: every chunk to columns, against zstd alone on the same frames (in-process and as a process).
    const bytes = readFileSync(file);
    const reader = TraceReader.open(memorySource(bytes));
    const cols = new ChunkColumns();
    const mb = bytes.length / 1e6;
    const decodeSeconds = bestCpuSeconds(() => {
      for (let i = 0; i < reader.chunks.length; i++) reader.decodeChunkColumns(i, cols);
    }, 2);
    const zst = traceFrames(bytes);
    const napiSeconds = bestCpuSeconds(napiDecompressAll(zst), 1);
    out.push({ name: `columnar decode vs zstd-napi, ${label} (file MB/s)`, value: mb / decodeSeconds, unit: 'MB/s', baseline: { name: 'zstd-napi DCtx.decompress', value: mb / napiSeconds, unit: 'MB/s' } });
    const cli = zstdCliCpuSecondsRepeated(zst, 32e6, 5);
    if (cli !== undefined) {
      out.push({ name: `columnar decode vs \`zstd -d\`, ${label} (file MB/s, CPU time)`, value: mb / decodeSeconds, unit: 'MB/s', baseline: { name: `zstd -d (process, start-up subtracted, frames x${cli.copies})`, value: (mb * cli.copies) / cli.seconds, unit: 'MB/s' } });
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return out;
}

/** `--iterations N`, `--iterations quick` (QUICK_ITERATIONS) or `--iterations full` (the shipped counter, the default). */
export function iterationsOption(argv: readonly string[]): number | undefined {
  const at = argv.indexOf('--iterations');
  if (at < 0) return undefined;
  if (argv[at + 1] === 'full') return shippedIterations();
  if (argv[at + 1] === 'quick') return QUICK_ITERATIONS;
  const n = Number(argv[at + 1]);
  if (!Number.isInteger(n) || n < 1) throw new Error(`--iterations wants a positive integer, 'quick' or 'full', got ${argv[at + 1] ?? 'nothing'}`);
  return n;
}

if (process.argv[1]?.endsWith('/bench/recorded.js') && process.argv[2] === '--record-child') {
  process.stdout.write(JSON.stringify(recordInChild(Number(process.argv[3]), process.argv[4]!)));
} else if (process.argv[1]?.endsWith('/bench/recorded.js') && process.argv[2] === '--replay-child') {
  process.stdout.write(JSON.stringify(replayInChild(process.argv[3]!)));
} else if (process.argv[1]?.endsWith('/bench/recorded.js')) {
  const t0 = performance.now();
  const iterations = iterationsOption(process.argv.slice(2));
  for (const r of benchRecorded(iterations !== undefined ? { iterations } : {})) {
    const base = r.baseline ? ` (${r.baseline.name}: ${r.baseline.value.toFixed(1)} ${r.baseline.unit}; ${((100 * r.value) / r.baseline.value).toFixed(0)}%)` : '';
    process.stdout.write(`${r.name}: ${r.value.toFixed(1)} ${r.unit}${base}\n`);
  }
  process.stdout.write(`(${((performance.now() - t0) / 1000).toFixed(0)} s)\n`);
}
