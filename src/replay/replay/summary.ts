// `turtles stats` in one streaming pass over the columnar decoder: events by kind, exit-reason histograms per exit
// kind and level (names from the exit-reason table), reflection decisions, exit multiplication in nested traces and
// entry failures by check id. Memory is constant in trace length (one chunk of columns, the histogram keys).
// Must not: read files (the caller hands it a TraceReader) or depend on hash order (keys are sorted).
import { ChunkColumns, EVENT_KINDS, exitReasonKey, kindSlot, type TraceReader } from '../format/index.js';
import type { TraceEventKind } from '../format/index.js';

const LEVELS = ['unspecified', 'L1', 'L2'] as const;
type LevelName = (typeof LEVELS)[number];

export interface ReasonHistogram {
  readonly total: number;
  /** Level → reason key ("EPT_VIOLATION", "INVALID_STATE|FAILED_VMENTRY", "text:npf", ...) → count; most frequent first. */
  readonly byLevel: Readonly<Record<LevelName, Readonly<Record<string, number>>>>;
}

export interface ExitMultiplication {
  /** L2 exits L0 reflected to L1 (reflection events with decision "reflected"). */
  readonly reflectedL2Exits: number;
  /** Every hardware exit L0 took (l0-exit events, any level). */
  readonly l0Exits: number;
  /** Hardware exits of L1 (l0-exit events at level L1: L1's VMREAD/VMWRITE/VMRESUME and the like). */
  readonly l1Exits: number;
  readonly l0ExitsPerReflected: number;
  readonly l1ExitsPerReflected: number;
}

export interface TraceSummary {
  readonly file: string;
  readonly events: number;
  readonly byKind: Readonly<Record<TraceEventKind, number>>;
  /** Exits delivered one level up (vm-exit events). */
  readonly vmExits: ReasonHistogram;
  /** Hardware exits L0 took (l0-exit events; nested traces). */
  readonly l0Exits: ReasonHistogram;
  readonly reflections: { readonly reflected: number; readonly handledByL0: number; readonly inferred: number };
  /** Absent when the trace has no reflected L2 exit. */
  readonly exitMultiplication?: ExitMultiplication;
  readonly entryFailures: { readonly total: number; readonly byCheck: Readonly<Record<string, number>> };
}

class Histogram {
  total = 0;
  readonly counts = LEVELS.map(() => new Map<string, number>());

  add(level: number, key: string): void {
    this.total++;
    const m = this.counts[level] ?? this.counts[0]!;
    m.set(key, (m.get(key) ?? 0) + 1);
  }

  build(): ReasonHistogram {
    const byLevel = {} as Record<LevelName, Record<string, number>>;
    LEVELS.forEach((name, i) => {
      const m = this.counts[i]!;
      const keys = [...m.keys()].sort((a, b) => m.get(b)! - m.get(a)! || (a < b ? -1 : a > b ? 1 : 0));
      byLevel[name] = Object.fromEntries(keys.map((k) => [k, m.get(k)!]));
    });
    return { total: this.total, byLevel };
  }
}

/** Summarize a trace; `onProgress` is called after each chunk. */
export function summarizeTrace(reader: TraceReader, onProgress?: (done: number, total: number) => void): TraceSummary {
  const cols = new ChunkColumns();
  const vm = new Histogram();
  const l0 = new Histogram();
  const byKind = Object.fromEntries(EVENT_KINDS.map((k) => [k, 0])) as Record<TraceEventKind, number>;
  const reflections = { reflected: 0, handledByL0: 0, inferred: 0 };
  const failures = new Map<string, number>();
  let failuresTotal = 0;
  let l1Exits = 0;
  // Reason keys are cached per full reason value: building the name for every exit would dominate.
  const keyCache = new Map<number, string>();
  const keyOf = (reason: number) => {
    let k = keyCache.get(reason);
    if (k === undefined) keyCache.set(reason, (k = exitReasonKey({ reason })));
    return k;
  };
  const objects = new Set<TraceEventKind>(['entry-failure']);
  for (let c = 0; c < reader.chunks.length; c++) {
    reader.decodeChunkColumns(c, cols, { objects });
    for (const k of EVENT_KINDS) byKind[k] += cols.kindCounts[kindSlot(k)]!;
    const x = cols.exits;
    for (let r = 0; r < x.length; r++) {
      const key = (x.unknown[r]! & 1) === 0 ? keyOf(x.reason[r]!) : exitReasonKey(x.reasonText.has(r) ? { reasonText: x.reasonText.get(r)! } : {});
      if (x.kind[r] === 0) vm.add(x.level[r]!, key);
      else {
        l0.add(x.level[r]!, key);
        if (x.level[r] === 1) l1Exits++;
      }
    }
    const rf = cols.reflections;
    for (let r = 0; r < rf.length; r++) {
      if (rf.decision[r] === 1) reflections.reflected++;
      else if (rf.decision[r] === 2) reflections.handledByL0++;
      if (rf.inferred[r]) reflections.inferred++;
    }
    for (const o of cols.objects) {
      if (o.value.kind !== 'entry-failure') continue;
      failuresTotal++;
      const f = o.value;
      const key = f.checkId !== '' ? f.checkId : `unknown check${f.exitReason !== undefined ? ` (exit 0x${f.exitReason.toString(16)})` : f.vmInstructionError !== undefined ? ` (VM-instruction error ${f.vmInstructionError})` : ''}`;
      failures.set(key, (failures.get(key) ?? 0) + 1);
    }
    onProgress?.(cols.firstEvent + cols.eventCount, reader.eventCount);
  }
  const byCheck = Object.fromEntries([...failures.keys()].sort((a, b) => failures.get(b)! - failures.get(a)! || (a < b ? -1 : 1)).map((k) => [k, failures.get(k)!]));
  const n = reflections.reflected;
  return {
    file: reader.file, events: reader.eventCount, byKind, vmExits: vm.build(), l0Exits: l0.build(), reflections,
    ...(n > 0 ? { exitMultiplication: { reflectedL2Exits: n, l0Exits: l0.total, l1Exits, l0ExitsPerReflected: l0.total / n, l1ExitsPerReflected: l1Exits / n } } : {}),
    entryFailures: { total: failuresTotal, byCheck },
  };
}
