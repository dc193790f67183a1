// Benchmarks of the trace format (DESIGN.md §9): bytes per exit on a typical nested trace and on the real IRIS logs,
// encode rate, and decode rate against native zstd on the same file — `zstd -d` when the machine has it (timed as
// a process on the file's concatenated zstd frames), always also zstd-napi decompressing the same frames in-process.
// Must not: be imported by src/ (it reads the clock, spawns processes and writes a temporary file).
import { performance } from 'node:perf_hooks';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TraceReader, encodeTrace, memorySource, type TraceEvent, type TraceHeader } from '../src/replay/format/index.js';
import { emptyZstdFrame, napiDecompressAll, traceFrames, zstdCliSeconds } from './zstd-baseline.js';
import { importIris } from '../src/replay/import/index.js';

export interface TraceBenchResult {
  name: string;
  value: number;
  unit: string;
  baseline?: { name: string; value: number; unit: string };
}

const header: TraceHeader = { producer: 'bench/trace.ts', l0Profile: 'kvm', kind: 'nested', seed: 1n };

/**
 * A nested trace shaped like KVM's under an L2 doing I/O and touching MMIO: each L2 exit reaches L0 (l0-exit), is
 * reflected, is delivered to L1 (vm-exit) and is followed by the vmcs12 fields L1 reads and writes; one in eight
 * exits is handled by L0 instead. Deterministic (fixed LCG seed).
 */
export function typicalNestedTrace(exits: number): TraceEvent[] {
  let x = 0x7475_7274;
  const rnd = (n: number): number => ((x = (Math.imul(x, 1103515245) + 12345) >>> 0) >>> 8) % n;
  const rips = [0xffffffff81001234n, 0xffffffff81001240n, 0xffffffff8100a000n, 0xffffffff81203c10n, 0x401000n, 0x401020n];
  const events: TraceEvent[] = [];
  let tsc = 0x1234_5678n;
  for (let i = 0; i < exits; i++) {
    const rip = rips[rnd(rips.length)]! + BigInt(rnd(8));
    const ept = rnd(4) === 0;
    const reason = ept ? 48 : 30;
    const qual = ept ? BigInt(0x181 + rnd(2) * 2) : BigInt(0x5658000b + rnd(4) * 0x10000);
    const gpa = ept ? BigInt(0xfee00000 + rnd(16) * 0x1000) : 0n;
    const len = ept ? 0 : 1 + rnd(2);
    const info = { reason, qualification: qual, rip, guestLinear: 0n, guestPhysical: gpa, intrInfo: 0, intrError: 0, idtVectoringInfo: 0, idtVectoringError: 0, instructionLength: len, instructionInfo: 0 };
    events.push({ kind: 'l0-exit', level: 'L2', ...info });
    if (rnd(8) === 0) {
      events.push({ kind: 'reflection', decision: 'handled-by-l0', exitReason: reason, inferred: false, rule: '' });
      continue;
    }
    events.push({ kind: 'reflection', decision: 'reflected', exitReason: reason, inferred: false, rule: '' });
    events.push({ kind: 'vm-exit', level: 'L2', ...info });
    tsc += BigInt(1000 + rnd(500));
    events.push({
      kind: 'vmcs-snapshot', which: 'vmcs12',
      fields: new Map([[0x2010, tsc], [0x4402, BigInt(reason)], [0x440c, BigInt(len)], [0x6400, qual], [0x681e, rip], [0x6820, 0x46n]]),
    });
  }
  return events;
}

function time(f: () => void, minMs: number): number {
  f(); // warm-up
  let runs = 0;
  const start = performance.now();
  let now = start;
  do {
    f();
    runs++;
    now = performance.now();
  } while (now - start < minMs);
  return (now - start) / runs / 1000;
}

function decodeAll(bytes: Uint8Array): number {
  let n = 0;
  for (const _ of TraceReader.open(memorySource(bytes)).events()) n++;
  return n;
}

export function benchTrace(options: { exits?: number; irisDir?: string } = {}): TraceBenchResult[] {
  const exits = options.exits ?? 200_000;
  const out: TraceBenchResult[] = [];
  const events = typicalNestedTrace(exits);
  const l2Exits = events.filter((e) => e.kind === 'l0-exit').length;

  let bytes: Uint8Array = new Uint8Array(0);
  const encodeSeconds = time(() => {
    bytes = encodeTrace(header, events);
  }, 1000);
  out.push({ name: 'trace size, typical nested trace (l0-exit + reflection + vm-exit + vmcs12 delta)', value: bytes.length / l2Exits, unit: 'bytes/L2 exit', baseline: { name: 'target', value: 32, unit: 'bytes/exit' } });
  out.push({ name: 'trace encode, typical nested trace', value: events.length / encodeSeconds, unit: 'events/s' });

  const decodeSeconds = time(() => void decodeAll(bytes), 1500);
  const mb = bytes.length / 1e6;
  out.push({ name: 'trace decode, typical nested trace (all events as objects)', value: events.length / decodeSeconds, unit: 'events/s' });

  const zst = traceFrames(bytes);
  const napiSeconds = time(napiDecompressAll(zst), 1000);
  const dir = mkdtempSync(join(tmpdir(), 'turtles-bench-'));
  try {
    const file = join(dir, 'frames.zst');
    const empty = join(dir, 'empty.zst');
    writeFileSync(file, zst);
    writeFileSync(empty, emptyZstdFrame());
    const cli = zstdCliSeconds(file, empty);
    const decodeRate = mb / decodeSeconds;
    if (cli !== undefined) {
      out.push({ name: 'trace decode vs `zstd -d` on the same frames (file MB/s)', value: decodeRate, unit: 'MB/s', baseline: { name: 'zstd -d (process, start-up subtracted)', value: mb / cli, unit: 'MB/s' } });
    } else {
      out.push({ name: 'trace decode (file MB/s); no `zstd` command on this machine', value: decodeRate, unit: 'MB/s' });
    }
    out.push({ name: 'trace decode vs zstd-napi raw decompression of the same frames (file MB/s)', value: decodeRate, unit: 'MB/s', baseline: { name: 'zstd-napi DCtx.decompress', value: mb / napiSeconds, unit: 'MB/s' } });
    // The same comparison in uncompressed record bytes, which is what both sides actually produce.
    const raw = TraceReader.open(memorySource(bytes)).verify().uncompressedBytes / 1e6;
    out.push({ name: 'trace decode vs zstd-napi, in uncompressed record MB/s', value: raw / decodeSeconds, unit: 'MB/s', baseline: { name: 'zstd-napi output', value: raw / napiSeconds, unit: 'MB/s' } });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }

  if (options.irisDir) {
    for (const f of ['boot_seed0', 'guest_workload_recording_seeds']) {
      const r = importIris(readFileSync(join(options.irisDir, f), 'utf8'), { sourceName: f });
      const n = r.events.filter((e) => e.kind === 'vm-exit').length;
      const b = encodeTrace(r.header, r.events);
      out.push({ name: `trace size, IRIS ${f} (vm-exit + GPRs + 2 VMCS snapshots per exit)`, value: b.length / n, unit: 'bytes/exit', baseline: { name: 'target', value: 32, unit: 'bytes/exit' } });
    }
  }
  return out;
}

/** A zstd frame of zero bytes, to time `zstd -d` start-up alone. */

if (process.argv[1]?.endsWith('/bench/trace.js')) {
  const irisDir = join(import.meta.dirname, '../../test/fixtures/logs/iris');
  for (const r of benchTrace({ irisDir })) {
    const base = r.baseline ? ` (${r.baseline.name}: ${r.baseline.value.toFixed(1)} ${r.baseline.unit}; ${((100 * r.value) / r.baseline.value).toFixed(0)}%)` : '';
    process.stdout.write(`${r.name}: ${r.value.toFixed(1)} ${r.unit}${base}\n`);
  }
}
