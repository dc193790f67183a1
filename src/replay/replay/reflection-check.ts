// Check class 'reflection' (nested traces): each L2 exit L0 took (l0-exit, level L2) with its recorded decision against
// the reasons L0 must always reflect; a reflected exit must reach L1 with the hardware's exit information.
// Must not: call a decision wrong when it depends on vmcs12 state the trace does not carry (I/O bitmaps, exception
// bitmap, ...) or on L0's own needs: those are unknown. Reference nested-vmx.md §6.1–6.2; SDM 25.1.2.
import { reflectionRow } from '../../nested/reflect/table.js';
import type { ExitColumns, ReflectionColumns, TraceEvent, TraceEventKind } from '../format/index.js';
import type { CheckSummary, ReplayCheck, ReplayCheckFactory, ReplayEnv } from './check.js';
import { reasonName } from './exit-info.js';
import { traceRule } from './rules.js';

/** What the reflection table says about an L2 exit with this basic reason. */
type Class = 'must-reflect' | 'l0-handles' | 'vmcall' | 'depends';

export function reflectionClass(basic: number): Class {
  const row = reflectionRow(basic);
  if (row.l0.predicate === 'always') return 'l0-handles';
  if (row.l0.predicate === 'l0Vmcall') return 'vmcall';
  if (row.l0.predicate === 'never' && row.l1.predicate === 'always' && row.l1.rule !== 'l1.reserved') return 'must-reflect';
  return 'depends';
}

interface L2Exit {
  readonly index: number;
  readonly line?: number;
  readonly reason: number;
  readonly rip?: bigint;
  readonly qualification?: bigint;
}

const ALL_ONES = (1n << 64n) - 1n;
/** ExitColumns.kind of an l0-exit row; ExitColumns.level of L2 (LEVELS index). */
const EXIT_ROW_L0 = 1;
const LEVEL_L2 = 2;

function big(lo: number, hi: number): bigint {
  return hi === 0 ? BigInt(lo) : (BigInt(hi) << 32n) | BigInt(lo);
}

class ReflectionCheck implements ReplayCheck {
  readonly id = 'reflection' as const;
  readonly columnar = false;
  readonly columnarKinds: readonly TraceEventKind[] = ['vm-entry'];
  private readonly open: L2Exit[] = [];
  /** A reflected exit waiting for the vm-exit L1 receives. */
  private awaiting: L2Exit | undefined;
  private l2Exits = 0;
  private decided = 0;
  /** Decisions the table leaves to vmcs12 or L0 state the trace does not carry. */
  private depends = 0;
  /** L2 exits with no recorded decision. */
  private noDecision = 0;
  private synthesized = 0;
  /** Whether vm-entry events show L1's vmcs12 pointers: all ones = enlightened VMCS (Hyper-V), where L0 may keep VMCALL. */
  private evmcs: boolean | undefined;
  private readonly nested: boolean;

  constructor(private readonly env: ReplayEnv) {
    this.nested = env.header.kind === 'nested';
  }

  onExitRow(c: ExitColumns, r: number, index: number): void {
    if (!this.nested) return;
    const u = c.unknown[r]!;
    if (c.kind[r] === EXIT_ROW_L0) {
      if (c.level[r] !== LEVEL_L2 || (u & 1) !== 0) return;
      this.l2Exits++;
      const line = c.line[r]!;
      this.open.push({
        index, reason: c.reason[r]!, ...(line > 0 ? { line } : {}), ...((u & 4) === 0 ? { rip: big(c.ripLo[r]!, c.ripHi[r]!) } : {}),
        ...((u & 2) === 0 ? { qualification: big(c.qualLo[r]!, c.qualHi[r]!) } : {}),
      });
      return;
    }
    if (this.awaiting && c.level[r] === LEVEL_L2) {
      const x = this.awaiting;
      const reason = (u & 1) === 0 ? c.reason[r]! : undefined;
      // The qualification is compared only for an exit delivered with exactly the hardware's reason.
      this.delivered(x, reason, reason === x.reason && (u & 2) === 0 ? big(c.qualLo[r]!, c.qualHi[r]!) : undefined);
    }
    this.awaiting = undefined;
  }

  onReflectionRow(c: ReflectionColumns, r: number): void {
    if (!this.nested) return;
    this.decide(c.decisionName(r), c.exitReason[r]!, c.hasRip[r] === 1 ? big(c.ripLo[r]!, c.ripHi[r]!) : undefined);
  }

  onEvent(e: TraceEvent, index: number): void {
    if (!this.nested) return;
    switch (e.kind) {
      case 'l0-exit':
        if (e.level !== 'L2' || e.reason === undefined) return;
        this.l2Exits++;
        this.open.push({
          index, reason: e.reason, ...(e.line !== undefined ? { line: e.line } : {}), ...(e.rip !== undefined ? { rip: e.rip } : {}),
          ...(e.qualification !== undefined ? { qualification: e.qualification } : {}),
        });
        return;
      case 'vm-entry':
        if (e.vmcs12 !== undefined) this.evmcs = (this.evmcs ?? false) || e.vmcs12 === ALL_ONES;
        return;
      case 'reflection':
        return this.decide(e.decision, e.exitReason, e.rip);
      case 'vm-exit':
        if (this.awaiting && e.level === 'L2') this.delivered(this.awaiting, e.reason, e.qualification);
        this.awaiting = undefined;
        return;
      default:
        return;
    }
  }

  private decide(decision: string, exitReason: number, rip: bigint | undefined): void {
    // The most recent L2 exit with this reason (and RIP, when both know it) is the one decided about.
    let k = this.open.length - 1;
    while (k >= 0) {
      const x = this.open[k]!;
      if ((x.reason & 0xffff) === (exitReason & 0xffff) && (rip === undefined || x.rip === undefined || rip === x.rip)) break;
      k--;
    }
    if (k < 0) return; // a synthesized exit (e.g. kvm_nested_intr_vmexit) with no L2 exit behind it
    const x = this.open[k]!;
    // Exits before it that got no decision never will: the trace does not say what L0 did.
    this.noDecision += k;
    this.open.splice(0, k + 1);
    const basic = x.reason & 0xffff;
    let cls = reflectionClass(basic);
    if (cls === 'vmcall') cls = this.evmcs === false ? 'must-reflect' : 'depends';
    if (decision === 'handled-by-l0') {
      if (cls === 'must-reflect') {
        this.decided++;
        this.emit('trace.reflection.must-reflect', x, 'reflected to L1', 'handled by L0',
          `L2's ${reasonName(basic)} exits unconditionally on a processor running vmcs12, so L0 must reflect it to L1; the trace shows no exit delivered to L1 before L2 ran again`);
      } else if (cls === 'l0-handles') this.decided++;
      else this.depends++;
      return;
    }
    if (decision !== 'reflected') {
      this.noDecision++;
      return;
    }
    if (cls === 'depends') this.depends++;
    else this.decided++;
    if (cls === 'l0-handles') this.synthesized++;
    else this.awaiting = x;
  }

  private delivered(x: L2Exit, reason: number | undefined, qualification: bigint | undefined): void {
    // Only an exit delivered with the same reason is the reflection itself (L0 may synthesize another exit instead).
    if (reason === undefined || (reason & 0xffff) !== (x.reason & 0xffff)) return;
    if (reason !== x.reason) {
      this.emit('trace.reflection.fields', x, `exit reason 0x${x.reason.toString(16)}`, `0x${reason.toString(16)}`,
        'the exit reason delivered to L1 differs from the one the hardware reported (flag bits included)', 'VM_EXIT_REASON');
    } else if (qualification !== undefined && x.qualification !== undefined && qualification !== x.qualification) {
      this.emit('trace.reflection.fields', x, `qualification 0x${x.qualification.toString(16)}`, `0x${qualification.toString(16)}`,
        `the ${reasonName(x.reason & 0xffff)} exit reached L1 with a qualification other than the hardware's`, 'EXIT_QUALIFICATION');
    }
  }

  private emit(rule: 'trace.reflection.must-reflect' | 'trace.reflection.fields', x: L2Exit, expected: string, actual: string, explanation: string, field?: string): void {
    if (!this.env.filter.selects(rule)) return;
    const r = traceRule(rule);
    this.env.emit({
      divergence: { kind: 'recorded', rule, sdm: r.sdm, event: x.index, level: 'L0', ...(field ? { field } : {}), expected, actual, explanation },
      ...(x.line !== undefined ? { line: x.line } : {}),
    });
  }

  finish(): void {
    this.noDecision += this.open.length;
    this.open.length = 0;
    this.awaiting = undefined;
  }

  pending(): number {
    const first = this.open[0]?.index ?? Infinity;
    return Math.min(first, this.awaiting?.index ?? Infinity);
  }

  summary(divergences: number): CheckSummary {
    if (!this.nested) return { id: this.id, applies: false, evaluated: 0, undecided: 0, divergences, note: 'not a nested trace: no L0 decisions to check' };
    return {
      id: this.id, applies: this.l2Exits > 0, evaluated: this.decided, undecided: this.depends + this.noDecision, divergences,
      note: this.l2Exits === 0 ? 'the trace records no L2 exit taken by L0'
        : `${this.l2Exits} L2 exits: ${this.decided} decisions checked (${this.synthesized} of them exits L0 always handles, then synthesizes one to L1); ` +
          `${this.depends} decisions depend on vmcs12 or L0 state the trace does not record (unknown); ${this.noDecision} exits have no recorded decision`,
    };
  }
}

export const reflectionChecks: ReplayCheckFactory = { id: 'reflection', create: (env) => new ReflectionCheck(env) };
