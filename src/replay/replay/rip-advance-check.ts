// Check class 'rip-advance': after an instruction exit with a recorded length, the GUEST_RIP the handler leaves in the
// VMCS (the last 'single' snapshot before the next exit, i.e. IRIS's VMWRITEs) is RIP (re-executed, or a fault
// injected) or RIP + VM-exit instruction length (skipped). Must not: judge exits whose instruction length the SDM
// leaves undefined, or a RIP the trace does not show. SDM Vol. 3C 27.2.5.
import { Field } from '../../cpu/generated/vmcs-fields.js';
import type { ExitColumns, TraceEvent, TraceEventKind, VmcsKind } from '../format/index.js';
import { LazySnapshotEvent } from '../format/codec.js';
import type { CheckSummary, ReplayCheck, ReplayCheckFactory, ReplayEnv } from './check.js';
import { K_LEN, K_REASON, K_RIP, emptyExitView, minimumLength, reasonName } from './exit-info.js';
import { divergenceLevel, viewOfEvent, viewOfRow } from './exit-info-check.js';
import { traceRule } from './rules.js';

const U64 = (1n << 64n) - 1n;
const U32 = (1n << 32n) - 1n;
/** ExitColumns.kind of a vm-exit row. */
const EXIT_ROW_VM = 0;

interface OpenExit {
  readonly index: number;
  readonly line: number | undefined;
  readonly level: string;
  readonly reason: number;
  readonly rip: bigint;
  readonly length: number;
  guestRip?: bigint;
}

class RipAdvanceCheck implements ReplayCheck {
  readonly id = 'rip-advance' as const;
  readonly columnar = false;
  readonly columnarKinds: readonly TraceEventKind[] = ['vmcs-snapshot'];
  readonly columnarSnapshotKinds: readonly VmcsKind[] = ['single'];
  private readonly view = emptyExitView();
  private open: OpenExit | undefined;
  private instructionExits = 0;
  private decided = 0;
  private skipped = 0;

  constructor(private readonly env: ReplayEnv) {}

  onEvent(e: TraceEvent, index: number): void {
    if (e.kind === 'vmcs-snapshot') {
      if (this.open && e.which === 'single') {
        const rip = e instanceof LazySnapshotEvent ? e.slots.get(Field.GUEST_RIP) : e.fields.get(Field.GUEST_RIP);
        if (rip !== undefined) this.open.guestRip = rip;
      }
      return;
    }
    if (e.kind !== 'vm-exit') return;
    this.close();
    if (e.reason === undefined || e.rip === undefined || e.instructionLength === undefined || (e.reason & 0x8000_0000) !== 0) return;
    if (minimumLength(viewOfEvent(e, this.view)) === 0) return;
    this.instructionExits++;
    this.open = { index, line: e.line, level: e.level, reason: e.reason, rip: e.rip, length: e.instructionLength };
  }

  onExitRow(c: ExitColumns, r: number, index: number): void {
    if (c.kind[r] !== EXIT_ROW_VM) return;
    this.close();
    // Reason, RIP and instruction length known (K_REASON | K_RIP | K_LEN clear in the unknown mask), not a failed entry.
    if ((c.unknown[r]! & (K_REASON | K_RIP | K_LEN)) !== 0 || (c.reason[r]! & 0x8000_0000) !== 0) return;
    if (minimumLength(viewOfRow(c, r, this.view)) === 0) return;
    this.instructionExits++;
    const line = c.line[r]!;
    const rip = c.ripHi[r] === 0 ? BigInt(c.ripLo[r]!) : (BigInt(c.ripHi[r]!) << 32n) | BigInt(c.ripLo[r]!);
    this.open = { index, line: line > 0 ? line : undefined, level: c.level[r] === 1 ? 'L1' : 'L2', reason: c.reason[r]!, rip, length: c.instrLen[r]! };
  }

  private close(): void {
    const x = this.open;
    this.open = undefined;
    if (!x || x.guestRip === undefined) return;
    this.decided++;
    if (x.guestRip === x.rip) return;
    this.skipped++;
    const next = (x.rip + BigInt(x.length)) & U64;
    // Outside 64-bit mode EIP wraps at 4 GiB (IP at 64 KiB is the guest's business and shows as a 32-bit value too).
    const next32 = x.rip <= U32 ? (x.rip + BigInt(x.length)) & U32 : next;
    if (x.guestRip === next || x.guestRip === next32) return;
    if (!this.env.filter.selects('trace.rip-advance')) return;
    const r = traceRule('trace.rip-advance');
    this.env.emit({
      divergence: {
        kind: 'recorded', rule: r.id, sdm: r.sdm, event: x.index, level: divergenceLevel(x.level), field: 'GUEST_RIP',
        expected: `0x${x.rip.toString(16)} (not skipped) or 0x${next.toString(16)} (RIP + ${x.length})`, actual: `0x${x.guestRip.toString(16)}`,
        explanation: `after the ${reasonName(x.reason & 0xffff)} exit at RIP 0x${x.rip.toString(16)} (instruction length ${x.length}) the handler set GUEST_RIP to 0x${x.guestRip.toString(16)}, which neither re-executes nor skips the instruction`,
      },
      ...(x.line !== undefined ? { line: x.line } : {}),
    });
  }

  finish(): void {
    this.close();
  }

  pending(): number {
    return this.open ? this.open.index : Infinity;
  }

  summary(divergences: number): CheckSummary {
    return {
      id: this.id, applies: this.instructionExits > 0, evaluated: this.decided, undecided: this.instructionExits - this.decided, divergences,
      note: this.instructionExits === 0 ? 'no instruction exit records both its RIP and its instruction length'
        : `${this.decided} of ${this.instructionExits} instruction exits show the handler's GUEST_RIP (${this.skipped} skipped the instruction)`,
    };
  }
}

export const ripAdvanceChecks: ReplayCheckFactory = { id: 'rip-advance', create: (env) => new RipAdvanceCheck(env) };
