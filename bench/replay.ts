// Benchmarks of replaying recorded traces (DESIGN.md §9): replay with all checks on the largest bundled trace and a
// typical nested trace (columns, and against the event-object path in the same run), the columnar decoder against
// native zstd on the same bytes (`zstd -d` as a process, start-up subtracted; zstd-napi in-process) with its split
// into zstd and parse, bytes per exit, and peak RSS of a process replaying a large trace from a file (streaming).
// Rates are CPU time on both sides (this process; `zstd -d`'s rusage), so a loaded machine does not skew them.
// Must not: be imported by src/ (it reads the clock, spawns processes and writes temporary files).
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ChunkColumns, TraceReader, decodeChunkColumns, encodeTrace, memorySource, type TraceHeader } from '../src/replay/format/index.js';
import { SLACK } from '../src/replay/format/columns.js';
import { decompressFrame } from '../src/replay/format/zstd.js';
import { createTraceFile, openTraceFile } from '../src/replay/io/trace-file.js';
import { replayTrace } from '../src/replay/replay/index.js';
import { typicalNestedTrace } from './trace.js';
import { napiDecompressAll, traceFrames, zstdCliCpuSecondsRepeated } from './zstd-baseline.js';
import { bestCpuSeconds } from './cpu-time.js';

export interface ReplayBenchResult {
  name: string;
  value: number;
  unit: string;
  baseline?: { name: string; value: number; unit: string };
}

const root = join(import.meta.dirname, '../..');

/** CPU milliseconds (user + system) of this process: unlike the wall clock, not inflated by other processes' load. */
/** Columnar decode of every chunk vs zstd alone, on the same file bytes. */
function decodeVsZstd(label: string, bytes: Uint8Array, out: ReplayBenchResult[]): void {
  const reader = TraceReader.open(memorySource(bytes));
  const cols = new ChunkColumns();
  const mb = bytes.length / 1e6;
  const colSeconds = bestCpuSeconds(() => {
    for (let c = 0; c < reader.chunks.length; c++) reader.decodeChunkColumns(c, cols);
  }, 2);
  const zst = traceFrames(bytes);
  const napiSeconds = bestCpuSeconds(napiDecompressAll(zst), 1);
  out.push({ name: `columnar decode vs zstd-napi, ${label} (file MB/s)`, value: mb / colSeconds, unit: 'MB/s', baseline: { name: 'zstd-napi DCtx.decompress', value: mb / napiSeconds, unit: 'MB/s' } });
  // The split: the columnar parse alone, on chunks decompressed beforehand (with the reader's slack), against zstd.
  const chunks = reader.chunks.map((_, i) => reader.readChunk(i));
  const payloads = chunks.map((c) => {
    const b = new Uint8Array(c.uncompressedLength + SLACK);
    const p = decompressFrame(c.frame, c.uncompressedLength);
    if (typeof p === 'string') throw new Error(p);
    b.set(p);
    return b.subarray(0, c.uncompressedLength);
  });
  const parseSeconds = bestCpuSeconds(() => {
    for (let i = 0; i < chunks.length; i++) decodeChunkColumns(payloads[i]!, chunks[i]!.eventCount, chunks[i]!.firstEvent, label, chunks[i]!.offset, cols);
  }, 2);
  out.push({
    name: `columnar parse alone vs zstd-napi alone, ${label} (file MB/s; zstd ${((100 * napiSeconds) / colSeconds).toFixed(0)}% / parse ${((100 * parseSeconds) / colSeconds).toFixed(0)}% of the decode)`,
    value: mb / parseSeconds, unit: 'MB/s', baseline: { name: 'zstd-napi DCtx.decompress', value: mb / napiSeconds, unit: 'MB/s' },
  });
  const cli = zstdCliCpuSecondsRepeated(zst, 64e6, 9);
  if (cli !== undefined) {
    out.push({ name: `columnar decode vs \`zstd -d\`, ${label} (file MB/s)`, value: mb / colSeconds, unit: 'MB/s', baseline: { name: `zstd -d (process CPU time, start-up subtracted, frames x${cli.copies})`, value: (mb * cli.copies) / cli.seconds, unit: 'MB/s' } });
  }
}

/**
 * Replay with every check class on `reader`: the columnar path (what `turtles replay` runs) against the target, and
 * against the event-object path in the same run (the replay before it could run every class on columns). Returns
 * the trace's exits (L2 exits counted once per l0-exit and vm-exit record).
 */
function replayAllChecks(label: string, reader: TraceReader, ms: number, out: ReplayBenchResult[]): number {
  let exits = 0;
  let l2 = 0;
  const cols = bestCpuSeconds(() => {
    const r = replayTrace(reader);
    exits = r.exits;
  }, ms / 1000);
  // L2 exits: an l0-exit and the vm-exit L1 then gets are one exit of L2 (the design target counts L2 exits).
  for (let c = 0; c < reader.chunks.length; c++) l2 += reader.decodeChunkColumns(c, new ChunkColumns()).countOf(reader.header.kind === 'nested' ? 'l0-exit' : 'vm-exit');
  const events = bestCpuSeconds(() => void replayTrace(reader, { decode: 'events' }), ms / 2000, 3);
  const unit = reader.header.kind === 'nested' ? 'L2 exits/s' : 'exits/s';
  out.push({ name: `replay, all checks, ${label}`, value: l2 / cols, unit, baseline: { name: 'target', value: 1e6, unit } });
  out.push({ name: `replay, all checks, ${label}, columns vs event objects`, value: l2 / cols, unit, baseline: { name: 'event-object replay', value: l2 / events, unit } });
  return exits;
}

/** Replay `file` in this process and report peak RSS (the child side of streamingRss). */
function replayForRss(file: string): { peakMb: number; startMb: number; events: number; exits: number } {
  const startMb = process.memoryUsage().rss / 1e6;
  const t = openTraceFile(file);
  try {
    const r = replayTrace(t.reader, { decode: 'events' });
    return { peakMb: process.resourceUsage().maxRSS / 1024, startMb, events: r.events, exits: r.exits };
  } finally {
    t.close();
  }
}

/**
 * Peak RSS of a fresh process replaying (all checks, decoded events) a nested trace of `exits` L2 exits from a file.
 * The file is written here in batches, so neither side ever holds the trace in memory.
 */
function streamingRss(exits: number): { peakMb: number; startMb: number; events: number; bytes: number } | undefined {
  const dir = mkdtempSync(join(tmpdir(), 'turtles-bench-rss-'));
  try {
    const file = join(dir, 'big.trtl');
    const header: TraceHeader = { producer: 'bench/replay.ts', l0Profile: 'kvm', kind: 'nested', seed: 1n };
    const w = createTraceFile(file, header);
    const batch = 10_000;
    for (let done = 0; done < exits; done += batch) for (const e of typicalNestedTrace(Math.min(batch, exits - done))) w.writer.append(e);
    const written = w.finish();
    const child = spawnSync(process.execPath, [fileURLToPath(import.meta.url), '--replay-rss', file], { encoding: 'utf8' });
    if (child.status !== 0) return undefined;
    const r = JSON.parse(child.stdout) as { peakMb: number; startMb: number; events: number };
    return { ...r, bytes: written.bytes };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export function benchReplay(options: { rssExits?: number } = {}): ReplayBenchResult[] {
  const out: ReplayBenchResult[] = [];
  const manifest = (JSON.parse(readFileSync(join(root, 'traces/imported/manifest.json'), 'utf8')) as { traces: { trace: string }[] }).traces;
  const bundled = manifest.map((t) => ({ name: t.trace, bytes: new Uint8Array(readFileSync(join(root, t.trace))) }));
  const largest = bundled.reduce((a, b) => (b.bytes.length > a.bytes.length ? b : a));
  const nested = encodeTrace({ producer: 'bench/replay.ts', l0Profile: 'kvm', kind: 'nested', seed: 1n }, typicalNestedTrace(200_000));
  const largestName = largest.name.replace('traces/imported/', '');
  const reader = TraceReader.open(memorySource(largest.bytes), largest.name);
  const exits = replayAllChecks(largestName, reader, 3000, out);
  const exitOnly = bestCpuSeconds(() => void replayTrace(reader, { checks: ['trace.exit-info'] }), 2);
  out.push({ name: 'replay, exit-info checks only (columnar), same trace', value: exits / exitOnly, unit: 'exits/s', baseline: { name: 'target', value: 1e6, unit: 'exits/s' } });
  replayAllChecks('typical nested trace, 200k L2 exits', TraceReader.open(memorySource(nested)), 4000, out);

  decodeVsZstd(largestName, largest.bytes, out);
  decodeVsZstd('typical nested trace, 200k L2 exits', nested, out);

  for (const b of bundled.filter((x) => x.name.includes('iris-'))) {
    const n = replayTrace(TraceReader.open(memorySource(b.bytes)), { checks: ['trace.exit-info'] }).exits;
    out.push({ name: `bytes per exit, ${b.name.replace('traces/imported/', '')}`, value: b.bytes.length / n, unit: 'bytes/exit', baseline: { name: 'target', value: 32, unit: 'bytes/exit' } });
  }
  const rss = streamingRss(options.rssExits ?? 1_000_000);
  if (rss) {
    out.push({
      name: `peak RSS, replaying a ${(rss.bytes / 1e6).toFixed(1)} MB, ${rss.events}-event nested trace from a file`, value: rss.peakMb, unit: 'MB',
      baseline: { name: 'RSS of the process before opening it', value: rss.startMb, unit: 'MB' },
    });
  }
  return out;
}

if (process.argv[1]?.endsWith('/bench/replay.js') && process.argv[2] === '--replay-rss') {
  process.stdout.write(JSON.stringify(replayForRss(process.argv[3]!)));
} else if (process.argv[1]?.endsWith('/bench/replay.js')) {
  for (const r of benchReplay()) {
    const base = r.baseline ? ` (${r.baseline.name}: ${r.baseline.value.toFixed(1)} ${r.baseline.unit}; ${((100 * r.value) / r.baseline.value).toFixed(0)}%)` : '';
    process.stdout.write(`${r.name}: ${r.value.toFixed(1)} ${r.unit}${base}\n`);
  }
}
