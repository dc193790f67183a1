// The native-zstd baselines the trace benchmarks compare against, measured on the same bytes in the same run:
// a trace's zstd frames back to back, zstd-napi decompressing them in-process, and `zstd -d` as a process with
// its start-up time subtracted (wall clock, or CPU time for comparing with in-process CPU time). Must not: be imported by src/ (it reads the clock and spawns processes).
import { performance } from 'node:perf_hooks';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import binding from 'zstd-napi/binding.js';
import { TraceReader, memorySource } from '../src/replay/format/index.js';
import { CHUNK_HEADER_SIZE } from '../src/replay/format/framing.js';

/** The zstd frames of a trace, back to back (a valid multi-frame .zst stream). */
export function traceFrames(bytes: Uint8Array): Uint8Array {
  const r = TraceReader.open(memorySource(bytes));
  const parts = r.chunks.map((c) => bytes.subarray(c.offset + CHUNK_HEADER_SIZE, c.offset + CHUNK_HEADER_SIZE + c.compressedLength));
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** One zstd frame of nothing: `zstd -d` on it measures process start-up alone. */
export function emptyZstdFrame(): Uint8Array {
  const c = new binding.CCtx();
  const dst = new Uint8Array(binding.compressBound(0));
  return dst.subarray(0, c.compress(dst, new Uint8Array(0), 3));
}

/** A function that decompresses every frame of `zst` with zstd-napi (time it with the caller's timer). */
export function napiDecompressAll(zst: Uint8Array): () => void {
  const dctx = new binding.DCtx();
  const scratch = new Uint8Array(16 << 20);
  return () => {
    let at = 0;
    while (at < zst.length) {
      const size = binding.findFrameCompressedSize(zst.subarray(at));
      dctx.decompress(scratch, zst.subarray(at, at + size));
      at += size;
    }
  };
}

/**
 * CPU seconds (user + system) `zstd -d` needs for `file` net of process start-up (measured on `empty`; best of
 * `runs`), read from bash's `times` (its children's rusage, millisecond resolution): on a shared machine CPU time
 * is what compares with an in-process CPU-time measurement. Undefined without zstd or bash.
 */
export function zstdCliCpuSeconds(file: string, empty: string, runs = 5): number | undefined {
  const run = (f: string): number | undefined => {
    const r = spawnSync('bash', ['-c', 'zstd -d -q -c "$1" > /dev/null || exit 1; times', '_', f], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    if (r.error || r.status !== 0) return undefined;
    // `times`: the shell's user and system time, then its children's ("0m0.052s 0m0.004s").
    const children = r.stdout.trim().split('\n')[1]?.match(/^(\d+)m([\d.]+)s (\d+)m([\d.]+)s$/);
    if (!children) return undefined;
    return Number(children[1]) * 60 + Number(children[2]) + Number(children[3]) * 60 + Number(children[4]);
  };
  if (run(empty) === undefined) return undefined;
  const best = (f: string): number => Math.min(...Array.from({ length: runs }, () => run(f)!));
  return Math.max(best(file) - best(empty), 1e-6);
}

/** Seconds `zstd -d` needs for `file` net of process start-up (timed on `empty`; best of `runs`); undefined without zstd. */
export function zstdCliSeconds(file: string, empty: string, runs = 5): number | undefined {
  const run = (f: string): number | undefined => {
    const t0 = performance.now();
    const r = spawnSync('zstd', ['-d', '-q', '-c', f], { stdio: ['ignore', 'ignore', 'ignore'] });
    const t = (performance.now() - t0) / 1000;
    return r.error || r.status !== 0 ? undefined : t;
  };
  if (run(empty) === undefined) return undefined;
  const best = (f: string): number => Math.min(...Array.from({ length: runs }, () => run(f)!));
  return Math.max(best(file) - best(empty), 1e-6);
}

/**
 * `zstd -d` CPU seconds (net of start-up, best of `runs`) on `zst` repeated `copies` times, enough copies to reach
 * `minBytes` so start-up and the millisecond resolution of `times` are small against zstd's own work. Written to a
 * temporary directory that is removed afterwards. Undefined without zstd or bash.
 */
export function zstdCliCpuSecondsRepeated(zst: Uint8Array, minBytes: number, runs: number): { seconds: number; copies: number } | undefined {
  const copies = Math.max(1, Math.ceil(minBytes / zst.length));
  const repeated = new Uint8Array(zst.length * copies);
  for (let i = 0; i < copies; i++) repeated.set(zst, i * zst.length);
  const dir = mkdtempSync(join(tmpdir(), 'turtles-bench-zstd-'));
  try {
    const file = join(dir, 'frames.zst');
    const empty = join(dir, 'empty.zst');
    writeFileSync(file, repeated);
    writeFileSync(empty, emptyZstdFrame());
    const seconds = zstdCliCpuSeconds(file, empty, runs);
    return seconds === undefined ? undefined : { seconds, copies };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
