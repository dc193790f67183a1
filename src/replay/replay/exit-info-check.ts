// Check class 'exit-info': every recorded exit (vm-exit and l0-exit events) through the well-formedness rules of
// exit-info.ts, from decoded events or straight from the columnar decoder's exit rows.
// Must not: allocate per exit on the well-formed path (one scratch view is reused).
// SDM Vol. 3C 24.9, 27.2.
import type { Level as DivergenceLevel } from '../../checker/divergence.js';
import type { ExitColumns, ExitFields, TraceEvent, TraceEventKind } from '../format/index.js';
import type { CheckSummary, ReplayCheck, ReplayCheckFactory, ReplayEnv } from './check.js';
import { checkExitInfo, emptyExitView, type ExitInfoSink, type ExitView } from './exit-info.js';
import { traceRule, type TraceRuleId } from './rules.js';

/** Fill `v` from an exit event's fields. */
export function viewOfEvent(e: ExitFields, v: ExitView): ExitView {
  let known = 0;
  const q = e.qualification;
  if (e.reason !== undefined) { known |= 1; v.reason = e.reason; }
  if (q !== undefined) { known |= 2; v.qualLo = Number(q & 0xffff_ffffn); v.qualHi = Number(q >> 32n); }
  if (e.rip !== undefined) known |= 4;
  if (e.guestLinear !== undefined) known |= 8;
  if (e.guestPhysical !== undefined) known |= 16;
  if (e.intrInfo !== undefined) { known |= 32; v.intrInfo = e.intrInfo; }
  if (e.intrError !== undefined) { known |= 64; v.intrError = e.intrError; }
  if (e.idtVectoringInfo !== undefined) { known |= 128; v.idtInfo = e.idtVectoringInfo; }
  if (e.idtVectoringError !== undefined) { known |= 256; v.idtError = e.idtVectoringError; }
  if (e.instructionLength !== undefined) { known |= 512; v.instrLen = e.instructionLength; }
  if (e.instructionInfo !== undefined) { known |= 1024; v.instrInfo = e.instructionInfo; }
  v.known = known;
  return v;
}

/** Fill `v` from exit row `r` of the columns. */
export function viewOfRow(c: ExitColumns, r: number, v: ExitView): ExitView {
  v.known = ~c.unknown[r]! & 0x7ff;
  v.reason = c.reason[r]!;
  v.qualLo = c.qualLo[r]!;
  v.qualHi = c.qualHi[r]!;
  v.intrInfo = c.intrInfo[r]!;
  v.intrError = c.intrError[r]!;
  v.idtInfo = c.idtInfo[r]!;
  v.idtError = c.idtError[r]!;
  v.instrLen = c.instrLen[r]!;
  v.instrInfo = c.info[r]!;
  return v;
}

export function divergenceLevel(level: string): DivergenceLevel {
  return level === 'L1' ? 'L1' : 'L2';
}

class ExitInfoCheck implements ReplayCheck {
  readonly id = 'exit-info' as const;
  readonly columnar = true;
  readonly columnarKinds: readonly TraceEventKind[] = [];
  private readonly view = emptyExitView();
  private exits = 0;
  private decided = 0;
  private rules = 0;
  private index = 0;
  private level: DivergenceLevel = 'L2';
  private line: number | undefined;
  private readonly sink: ExitInfoSink;

  constructor(private readonly env: ReplayEnv) {
    this.sink = (rule: TraceRuleId, field, expected, actual, explanation) => {
      if (!env.filter.selects(rule)) return;
      const r = traceRule(rule);
      this.env.emit({
        divergence: { kind: 'recorded', rule, sdm: r.sdm, event: this.index, level: this.level, field, expected, actual, explanation },
        ...(this.line !== undefined ? { line: this.line } : {}),
      });
    };
  }

  private run(v: ExitView, index: number, level: string, line: number | undefined): void {
    this.exits++;
    this.index = index;
    this.level = divergenceLevel(level);
    this.line = line;
    const n = checkExitInfo(v, this.sink);
    this.rules += n;
    if (n > 0) this.decided++;
  }

  onEvent(e: TraceEvent, index: number): void {
    if (e.kind !== 'vm-exit' && e.kind !== 'l0-exit') return;
    this.run(viewOfEvent(e, this.view), index, e.level, e.line);
  }

  onExitRow(c: ExitColumns, r: number, index: number): void {
    const line = c.line[r]!;
    this.run(viewOfRow(c, r, this.view), index, c.level[r] === 1 ? 'L1' : 'L2', line > 0 ? line : undefined);
  }

  finish(): void {}

  pending(): number {
    return Infinity;
  }

  summary(divergences: number): CheckSummary {
    return {
      id: this.id, applies: this.exits > 0, evaluated: this.decided, undecided: this.exits - this.decided, divergences,
      note: this.exits === 0 ? 'the trace records no exits' : `${this.decided} of ${this.exits} exits checked (${this.rules} rule evaluations); ${this.exits - this.decided} carry no exit reason`,
    };
  }
}

export const exitInfoChecks: ReplayCheckFactory = { id: 'exit-info', create: (env) => new ExitInfoCheck(env) };
