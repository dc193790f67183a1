// Summaries for `turtles stats <trace>`: event counts by kind, exit-reason histograms per exit kind and level,
// reflection decisions, and exit multiplication (all L0 exits per L2 exit) for nested traces. Streaming: it
// consumes any iterable of events once, in constant memory apart from the histogram keys.
// Must not: read files or depend on event order beyond counting.
import { EXIT_REASONS } from '../../cpu/generated/exit-reasons.js';
import { EVENT_KINDS, LEVELS, type ExitFields, type Level, type TraceEvent, type TraceEventKind } from './events.js';

const NAME_BY_REASON = new Map(EXIT_REASONS.map((r) => [r.reason, r.name]));
const FLAG_NAMES: readonly [number, string][] = [
  [0x8000_0000, 'FAILED_VMENTRY'], [0x2000_0000, 'FROM_VMX_ROOT'], [0x1000_0000, 'PENDING_MTF'], [0x0800_0000, 'ENCLAVE_MODE'], [0x0400_0000, 'BUS_LOCK'],
];

/** Histogram key for an exit: "EPT_VIOLATION", "INVALID_STATE|FAILED_VMENTRY", "0x1234", "text:npf" or "unknown". */
export function exitReasonKey(e: Pick<ExitFields, 'reason' | 'reasonText'>): string {
  if (e.reason === undefined) return e.reasonText !== undefined ? `text:${e.reasonText}` : 'unknown';
  const basic = e.reason & 0xffff;
  const parts = [NAME_BY_REASON.get(basic) ?? `0x${basic.toString(16)}`];
  let rest = (e.reason & 0xffff_0000) >>> 0;
  for (const [bit, name] of FLAG_NAMES) {
    if ((rest & bit) >>> 0 !== 0) {
      parts.push(name);
      rest = (rest & ~bit) >>> 0;
    }
  }
  if (rest !== 0) parts.push(`0x${rest.toString(16)}`);
  return parts.join('|');
}

export interface ExitHistogram {
  readonly total: number;
  /** Level → reason key → count. */
  readonly byLevel: Readonly<Record<Level, Readonly<Record<string, number>>>>;
}

export interface TraceStats {
  readonly events: number;
  readonly byKind: Readonly<Record<TraceEventKind, number>>;
  /** Exits delivered one level up (vm-exit events). */
  readonly vmExits: ExitHistogram;
  /** Hardware exits L0 took (l0-exit events, nested traces). */
  readonly l0Exits: ExitHistogram;
  readonly reflections: { readonly reflected: number; readonly handledByL0: number; readonly inferred: number };
  readonly entryFailures: number;
  /** All L0 exits per L2 exit L0 took; undefined when the trace has no L2 l0-exit. */
  readonly exitMultiplication?: number;
}

class HistogramBuilder {
  total = 0;
  private readonly levels = new Map<Level, Map<string, number>>();

  add(e: ExitFields): void {
    this.total++;
    const m = this.levels.get(e.level) ?? new Map<string, number>();
    this.levels.set(e.level, m);
    const k = exitReasonKey(e);
    m.set(k, (m.get(k) ?? 0) + 1);
  }

  count(level: Level): number {
    let n = 0;
    for (const v of this.levels.get(level)?.values() ?? []) n += v;
    return n;
  }

  build(): ExitHistogram {
    const byLevel = {} as Record<Level, Record<string, number>>;
    for (const level of LEVELS) {
      const m = this.levels.get(level) ?? new Map<string, number>();
      // Most frequent first, then by name, so the output does not depend on event order.
      const keys = [...m.keys()].sort((a, b) => m.get(b)! - m.get(a)! || (a < b ? -1 : a > b ? 1 : 0));
      byLevel[level] = Object.fromEntries(keys.map((k) => [k, m.get(k)!]));
    }
    return { total: this.total, byLevel };
  }
}

export function traceStats(events: Iterable<TraceEvent>): TraceStats {
  const byKind = Object.fromEntries(EVENT_KINDS.map((k) => [k, 0])) as Record<TraceEventKind, number>;
  const vm = new HistogramBuilder();
  const l0 = new HistogramBuilder();
  const reflections = { reflected: 0, handledByL0: 0, inferred: 0 };
  let total = 0;
  let entryFailures = 0;
  for (const e of events) {
    total++;
    byKind[e.kind]++;
    if (e.kind === 'vm-exit') vm.add(e);
    else if (e.kind === 'l0-exit') l0.add(e);
    else if (e.kind === 'reflection') {
      if (e.decision === 'reflected') reflections.reflected++;
      else if (e.decision === 'handled-by-l0') reflections.handledByL0++;
      if (e.inferred) reflections.inferred++;
    } else if (e.kind === 'entry-failure') entryFailures++;
  }
  const l2 = l0.count('L2');
  return {
    events: total, byKind, vmExits: vm.build(), l0Exits: l0.build(), reflections, entryFailures,
    ...(l2 > 0 ? { exitMultiplication: l0.total / l2 } : {}),
  };
}
