// Turns parsed ftrace-family records into trace events, every record becoming an event, a raw record with a
// reason, or an unmapped note, and every inference an assumption in the provenance.
// Must not: read files or drop a record without counting it.
import {
  entryFailure, external, l2Step, reflection, vmEntry, RegId,
  type ExitFields, type Level, type TraceEvent, type TraceKind,
} from '../../format/index.js';
import { FAILED_VMENTRY, parseExitReason } from './exit-reason.js';
import {
  parseCpuid, parseCr, parseEmulateInsn, parseInjException, parseInjVirq, parseKvmEntry, parseKvmExit, parseNestedVmenter,
  parseNestedVmexit, parseNestedVmexitInject, parseRipOnly, payloadComplete, KNOWN_EVENTS, type ExitPayload,
} from './payloads.js';
import type { TraceRecord } from './records.js';
import type { LineAccount } from './stats.js';
import { collectEraEvidence, decideEra, type KernelEra, type Producer } from './version.js';

/*
 * Conventions (DESIGN.md §5):
 *  - single-level logs: the traced hypervisor plays L1 and its guest L2, so kvm_exit → vm-exit at level L2;
 *  - nested logs (any kvm_nested_* event): kvm_exit → l0-exit, merged with the kvm_nested_vmexit that follows it for
 *    the same task (the same hardware exit) at level L2; kvm_nested_vmexit_inject → vm-exit delivered to L1; the
 *    reflection decision is inferred from event order and marked `inferred`.
 */

// Events kept as raw records, with why the model has no place for them.
const RAW_REASONS: Readonly<Record<string, string>> = {
  kvm_page_fault: "KVM's own fault handling; its address and error code are not exit-information fields",
  kvm_pio: 'device emulation (port I/O) is outside the model',
  kvm_mmio: 'device emulation (MMIO) is outside the model',
  kvm_msr: 'MSR accesses have no place in the trace model',
  kvm_userspace_exit: 'exits to the userspace VMM are outside the model',
  kvm_smm_transition: 'SMM is outside the model',
  tracing_mark_write: 'userspace annotation',
  bprint: 'trace_printk text (VMCS dumps belong to the dump importers)',
  bputs: 'trace_puts text',
  perf_top: 'perf top aggregate line (a share of samples, not one event in time order)',
};

const NESTED_EVENTS = new Set(['kvm_nested_vmexit', 'kvm_nested_vmexit_inject', 'kvm_nested_vmenter', 'kvm_nested_intr_vmexit', 'kvm_nested_vmenter_failed']);

interface PendingExit {
  readonly index: number;
  readonly reasonText: string;
  readonly rip?: bigint;
}

export interface MapResult {
  readonly events: TraceEvent[];
  readonly kind: TraceKind;
  readonly assumptions: string[];
}

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

export class FtraceMapper {
  private readonly events: TraceEvent[] = [];
  /** Notes about the event under construction, emitted after it. */
  private readonly deferred: TraceEvent[] = [];
  private readonly assumptions: string[] = [];
  private readonly nested: boolean;
  private readonly era: KernelEra | undefined;
  private readonly eraAssumption: string;
  /** Last l0-exit per task whose level is not settled yet. */
  private readonly openExit = new Map<string, PendingExit>();
  /** Per task: an L2 exit L0 is deciding about (after kvm_nested_vmexit). */
  private readonly pendingReflection = new Map<string, { reason: number; rip?: bigint }>();
  /** Per task: which guest runs next, as far as the log shows. */
  private readonly mode = new Map<string, 'L1' | 'L2'>();
  private readonly unknownReasons = new Map<string, number>();
  private usedEra = false;
  private ambiguousInfo2 = 0;
  private placeholderErrorCodes = 0;
  private inferredLevels = 0;

  constructor(private readonly records: readonly TraceRecord[], producer: Producer, private readonly account: LineAccount, hint?: KernelEra) {
    this.nested = records.some((r) => NESTED_EVENTS.has(r.event) && !(r.event === 'kvm_nested_vmenter' && parseNestedVmenter(r.payload)?.svm));
    const decision = decideEra(collectEraEvidence(records, producer), hint);
    this.era = decision.era;
    this.eraAssumption = decision.assumption;
  }

  private note(s: string): void {
    if (!this.assumptions.includes(s)) this.assumptions.push(s);
  }

  private key(r: TraceRecord, vcpu?: number): string {
    if (r.pid !== undefined) return `pid ${r.pid}`;
    if (vcpu !== undefined) return `vcpu ${vcpu}`;
    return '*';
  }

  /** Level for events that happen in "the guest" (entries, injections, registers). */
  private guestLevel(key: string): Level {
    if (!this.nested) return 'L2';
    return this.mode.get(key) ?? 'unspecified';
  }

  private emit(e: TraceEvent): number {
    this.events.push(e);
    const index = this.events.length - 1;
    for (const n of this.deferred.splice(0)) this.events.push(n);
    return index;
  }

  private base(r: TraceRecord, vcpu?: number): { line: number; vcpu?: number } {
    return { line: r.line, ...(vcpu !== undefined ? { vcpu } : {}) };
  }

  private raw(r: TraceRecord, reason: string): void {
    this.emit({ kind: 'raw', ...this.base(r), sourceKind: r.event, text: r.rawPayload.trim(), reason });
    this.account.skip(`raw:${r.event}`);
  }

  private unmapped(r: TraceRecord, reasonKey: string, detail: string): void {
    this.emit({ kind: 'unmapped', ...this.base(r), reason: detail, text: r.rawPayload.trim() });
    this.account.skip(`unmapped:${reasonKey}`);
  }

  /** A note about the event being built; emitted right after it (it has no line of its own). */
  private noteEvent(r: TraceRecord, detail: string): void {
    this.deferred.push({ kind: 'unmapped', ...this.base(r), reason: detail, text: r.rawPayload.trim() });
  }

  private u32(r: TraceRecord, v: bigint | undefined, what: string): number | undefined {
    if (v === undefined) return undefined;
    if (v > 0xffff_ffffn) {
      this.noteEvent(r, `${what} 0x${v.toString(16)} does not fit the 32-bit exit-information field`);
      return undefined;
    }
    return Number(v);
  }

  private reasonFields(text: string): Pick<ExitFields, 'reason' | 'reasonText'> {
    const p = parseExitReason(text);
    if (p.reason !== undefined) return { reason: p.reason };
    this.unknownReasons.set(p.text, (this.unknownReasons.get(p.text) ?? 0) + 1);
    return { reasonText: p.text };
  }

  /** Exit fields from a parsed payload whose info2 is IDT-vectoring info (E2, E4, nested forms). */
  private namedExitFields(r: TraceRecord, p: ExitPayload, level: Level): Mutable<ExitFields> {
    const f: Mutable<ExitFields> = { level, ...this.reasonFields(p.reasonText) };
    if (p.rip !== undefined) f.rip = p.rip;
    if (p.info1 !== undefined) f.qualification = p.info1;
    const idt = this.u32(r, p.info2, 'info2 (IDT-vectoring information)');
    if (idt !== undefined) f.idtVectoringInfo = idt;
    const intr = this.u32(r, p.intrInfo, 'VM-exit interruption information');
    if (intr !== undefined) f.intrInfo = intr;
    const err = this.u32(r, p.errorCode, 'VM-exit interruption error code');
    if (err !== undefined) f.intrError = err;
    return f;
  }

  private kvmExitFields(r: TraceRecord, p: ExitPayload, level: Level): Mutable<ExitFields> {
    if (p.form !== 'E1/E3') return this.namedExitFields(r, p, level);
    const f: Mutable<ExitFields> = { level, ...this.reasonFields(p.reasonText), rip: p.rip!, qualification: p.info1! };
    this.usedEra = true;
    if (this.era === '<=5.9') {
      const v = this.u32(r, p.info2, 'info2 (VM-exit interruption information)');
      if (v !== undefined) f.intrInfo = v;
    } else if (this.era === '>=5.10') {
      const v = this.u32(r, p.info2, 'info2 (IDT-vectoring information)');
      if (v !== undefined) f.idtVectoringInfo = v;
    } else {
      this.ambiguousInfo2++;
      this.noteEvent(r, `kvm_exit info2 0x${p.info2!.toString(16)} not mapped: its meaning depends on the kernel version, which the log does not show`);
    }
    return f;
  }

  /** Settle the level of the task's open l0-exit (no kvm_nested_vmexit followed it: L1 was running). */
  private closeOpenExit(key: string, level: Level): void {
    const open = this.openExit.get(key);
    if (!open) return;
    this.openExit.delete(key);
    const e = this.events[open.index]!;
    if (e.kind === 'l0-exit' && e.level === 'unspecified' && level !== 'unspecified') {
      this.events[open.index] = { ...e, level };
      this.inferredLevels++;
    }
  }

  /** A new exit or entry on this task ends L0's pending decision: no inject came, so L0 handled it. */
  private decideHandledByL0(r: TraceRecord, key: string): void {
    const p = this.pendingReflection.get(key);
    if (!p) return;
    this.pendingReflection.delete(key);
    this.emit(reflection('handled-by-l0', p.reason, {
      ...this.base(r), inferred: true, ...(p.rip !== undefined ? { rip: p.rip } : {}),
      rule: `no kvm_nested_vmexit_inject before line ${r.line} (${r.event})`,
    }));
    this.mode.set(key, 'L2');
  }

  private exitFollowUp(r: TraceRecord, f: ExitFields): void {
    if (f.reason !== undefined && (f.reason & FAILED_VMENTRY) !== 0) {
      this.emit(entryFailure(f.level, {
        ...this.base(r), exitReason: f.reason, ...(f.qualification !== undefined ? { qualification: f.qualification } : {}),
        detail: `VM entry failed: ${r.event} reports exit reason 0x${f.reason.toString(16)}`,
      }));
    }
  }

  private mapRecord(r: TraceRecord): void {
    if (r.event === '') return this.unmapped(r, 'record without event name', 'a trace header line without an event name');
    if (r.truncated) return this.unmapped(r, 'truncated record', `${r.event} record with no payload (cut off)`);
    switch (r.event) {
      case 'kvm_exit': {
        const p = parseKvmExit(r.payload);
        if (!p) return this.unmapped(r, 'malformed kvm_exit', 'kvm_exit payload matches none of E1–E4');
        const key = this.key(r, p.vcpu);
        this.decideHandledByL0(r, key);
        this.closeOpenExit(key, 'L1');
        const f = this.kvmExitFields(r, p, this.nested ? 'unspecified' : 'L2');
        const index = this.emit({ kind: this.nested ? 'l0-exit' : 'vm-exit', ...this.base(r, p.vcpu), ...f });
        if (this.nested) this.openExit.set(key, { index, reasonText: p.reasonText, ...(p.rip !== undefined ? { rip: p.rip } : {}) });
        this.account.mapped();
        return this.exitFollowUp(r, f);
      }
      case 'kvm_nested_vmexit': {
        const p = parseNestedVmexit(r.payload);
        if (!p) return this.unmapped(r, 'malformed kvm_nested_vmexit', 'kvm_nested_vmexit payload matches no known form');
        const key = this.key(r, p.vcpu);
        this.decideHandledByL0(r, key);
        const f = this.namedExitFields(r, p, 'L2');
        const open = this.openExit.get(key);
        this.openExit.delete(key);
        const prev = open ? this.events[open.index] : undefined;
        if (open && prev?.kind === 'l0-exit' && open.reasonText === p.reasonText && (p.rip === undefined || open.rip === p.rip)) {
          // Same hardware exit as the kvm_exit just before: one event, now known to be L2's, with both lines' fields.
          const { kind: _kind, vcpu: _vcpu, line: _line, ...prevFields } = prev;
          const merged: Mutable<ExitFields> = { ...prevFields, ...f };
          for (const k of ['intrInfo', 'idtVectoringInfo', 'qualification'] as const) {
            if (prev[k] !== undefined && f[k] !== undefined && prev[k] !== f[k]) {
              this.noteEvent(r, `kvm_nested_vmexit ${k} ${String(f[k])} differs from the kvm_exit of line ${prev.line} (${String(prev[k])}); kept ${String(f[k])}`);
            }
          }
          const vcpu = p.vcpu ?? prev.vcpu;
          this.events[open.index] = { kind: 'l0-exit', ...(vcpu !== undefined ? { vcpu } : {}), ...(prev.line !== undefined ? { line: prev.line } : {}), ...merged };
          this.note('a kvm_nested_vmexit right after a kvm_exit of the same task with the same reason and rip is the same hardware exit: merged into one l0-exit at level L2');
        } else {
          this.emit({ kind: 'l0-exit', ...this.base(r, p.vcpu), ...f });
        }
        if (f.reason !== undefined) this.pendingReflection.set(key, { reason: f.reason, ...(f.rip !== undefined ? { rip: f.rip } : {}) });
        this.mode.set(key, 'L2');
        this.account.mapped();
        return this.exitFollowUp(r, f);
      }
      case 'kvm_nested_vmexit_inject': {
        const p = parseNestedVmexitInject(r.payload);
        if (!p) return this.unmapped(r, 'malformed kvm_nested_vmexit_inject', 'kvm_nested_vmexit_inject payload matches no known form');
        const key = this.key(r);
        const pending = this.pendingReflection.get(key);
        const f = this.namedExitFields(r, p, 'L2');
        if (pending) {
          this.pendingReflection.delete(key);
          this.emit(reflection('reflected', pending.reason, {
            ...this.base(r), inferred: true, ...(pending.rip !== undefined ? { rip: pending.rip } : {}), rule: 'kvm_nested_vmexit_inject followed the L2 exit',
          }));
        }
        this.emit({ kind: 'vm-exit', ...this.base(r), ...f });
        this.mode.set(key, 'L1');
        this.account.mapped();
        return;
      }
      case 'kvm_nested_intr_vmexit': {
        const rip = parseRipOnly(r.payload);
        if (rip === undefined) return this.unmapped(r, 'malformed kvm_nested_intr_vmexit', 'expected "rip: 0x…"');
        this.emit(reflection('reflected', 1, { ...this.base(r), rip, rule: 'kvm_nested_intr_vmexit: L0 exits to L1 for an interrupt pending for L1' }));
        this.account.mapped();
        return;
      }
      case 'kvm_nested_vmenter': {
        const p = parseNestedVmenter(r.payload);
        if (!p) return this.unmapped(r, 'malformed kvm_nested_vmenter', 'kvm_nested_vmenter payload does not match the VMX or SVM form');
        if (p.svm) return this.unmapped(r, 'SVM form', 'kvm_nested_vmenter for SVM (vmcb): turtles models VMX only');
        const key = this.key(r);
        this.emit(vmEntry('L2', {
          ...this.base(r), rip: p.nestedRip, l1Rip: p.rip, vmcs12: p.vmcs, entryIntrInfo: Number(p.eventInj & 0xffff_ffffn),
          intCtl: Number(p.intCtl & 0xffff_ffffn), ...(p.eptp !== undefined ? { eptp: p.eptp } : {}), ...(p.guestCr3 !== undefined ? { guestCr3: p.guestCr3 } : {}),
        }));
        this.mode.set(key, 'L2');
        this.account.mapped();
        return;
      }
      case 'kvm_nested_vmenter_failed':
        this.emit(entryFailure('L2', { ...this.base(r), detail: r.payload }));
        this.account.mapped();
        return;
      case 'kvm_entry': {
        const p = parseKvmEntry(r.payload);
        if (!p) return this.unmapped(r, 'malformed kvm_entry', 'expected "vcpu N[, rip 0x…]"');
        const key = this.key(r, p.vcpu);
        this.decideHandledByL0(r, key);
        this.closeOpenExit(key, 'L1');
        this.emit(vmEntry(this.guestLevel(key), { ...this.base(r, p.vcpu), ...(p.rip !== undefined ? { rip: p.rip } : {}), note: p.tail }));
        this.account.mapped();
        return;
      }
      case 'kvm_cr': {
        const p = parseCr(r.payload);
        if (!p) return this.unmapped(r, 'malformed kvm_cr', 'expected "cr_read|cr_write N = 0x…"');
        const id = ({ 0: RegId.CR0, 2: RegId.CR2, 3: RegId.CR3, 4: RegId.CR4, 8: RegId.CR8 } as Record<number, number>)[p.cr];
        if (id === undefined) return this.raw(r, `CR${p.cr} has no register id`);
        this.emit({ kind: 'registers', ...this.base(r), level: this.guestLevel(this.key(r)), regs: new Map([[id, p.value]]) });
        this.account.mapped();
        return;
      }
      case 'kvm_cpuid': {
        const p = parseCpuid(r.payload);
        if (!p) return this.unmapped(r, 'malformed kvm_cpuid', 'expected "func … idx … rax … rbx … rcx … rdx …, cpuid entry …"');
        this.emit({
          kind: 'registers', ...this.base(r), level: this.guestLevel(this.key(r)),
          regs: new Map([[RegId.RAX, p.rax], [RegId.RCX, p.rcx], [RegId.RDX, p.rdx], [RegId.RBX, p.rbx]]),
        });
        this.note('kvm_cpuid maps to the guest registers RAX/RBX/RCX/RDX that the emulated CPUID returns');
        this.account.mapped();
        return;
      }
      case 'kvm_inj_virq': {
        const p = parseInjVirq(r.payload);
        if (!p) return this.unmapped(r, 'malformed kvm_inj_virq', 'expected "IRQ 0x…[ [reinjected]]"');
        this.emit(external('interrupt', { ...this.base(r), vector: p.vector, reinjected: p.reinjected, target: this.guestLevel(this.key(r)) }));
        this.account.mapped();
        return;
      }
      case 'kvm_inj_exception': {
        const p = parseInjException(r.payload);
        if (!p) return this.unmapped(r, 'malformed kvm_inj_exception', 'expected "#XX[ (0x…)][ [reinjected]]"');
        if (p.oldForm) this.placeholderErrorCodes++;
        this.emit(external('exception', {
          ...this.base(r), vector: p.vector, ...(p.errorCode !== undefined ? { errorCode: p.errorCode } : {}), reinjected: p.reinjected,
          target: this.guestLevel(this.key(r)),
        }));
        this.account.mapped();
        return;
      }
      case 'kvm_emulate_insn': {
        const p = parseEmulateInsn(r.payload);
        if (!p) return this.unmapped(r, 'malformed kvm_emulate_insn', 'expected "csbase:rip:bytes (mode)[ failed]"');
        if (p.bytes.length > 15) return this.unmapped(r, 'malformed kvm_emulate_insn', `${p.bytes.length} instruction bytes (at most 15)`);
        if (this.guestLevel(this.key(r)) !== 'L2') return this.raw(r, 'emulated instruction of L1 or of an unknown level: only L2 steps are modelled');
        this.emit(l2Step(p.rip, { ...this.base(r), instruction: p.bytes, csBase: p.csBase, mode: p.mode, emulationFailed: p.failed }));
        this.account.mapped();
        return;
      }
      default:
        // Events with a known grammar that the model has no place for: check the grammar, then keep them raw.
        if (RAW_REASONS[r.event] !== undefined && KNOWN_EVENTS.has(r.event) && !payloadComplete(r.event, r.payload)) {
          return this.unmapped(r, `malformed ${r.event}`, `${r.event} payload does not match its format`);
        }
        return this.raw(r, RAW_REASONS[r.event] ?? 'event not modelled');
    }
  }

  run(): MapResult {
    for (const r of this.records) {
      this.mapRecord(r);
      // Notes of a record that patched an earlier event instead of emitting one.
      for (const n of this.deferred.splice(0)) this.events.push(n);
    }
    if (this.nested) {
      this.note('nested log (kvm_nested_* events): kvm_exit lines are L0-internal exits (l0-exit); kvm_nested_vmexit_inject lines are exits delivered to L1 (vm-exit, level L2)');
      this.note('reflection decisions are inferred from event order: inject after an L2 exit = reflected; the next entry or exit of the same task without one = handled by L0');
      if (this.inferredLevels > 0) {
        this.note(`${this.inferredLevels} kvm_exit lines set to level L1: no kvm_nested_vmexit followed them before the task's next entry or exit (KVM traces one for every exit in guest mode)`);
      }
    } else {
      this.note('single-level log: the traced hypervisor plays L1 and its guest L2, so its exits are vm-exit events at level L2');
    }
    if (this.usedEra) this.note(this.eraAssumption);
    if (this.usedEra && this.era !== undefined) {
      this.note(`kvm_exit "info A B" text: info2 read as ${this.era === '<=5.9' ? 'VM-exit interruption information (kernel ≤5.9)' : 'IDT-vectoring information (kernel ≥5.10)'}`);
    }
    if (this.ambiguousInfo2 > 0) this.note(`${this.ambiguousInfo2} kvm_exit info2 values left unmapped (kernel version unknown; pass the kernel era to map them)`);
    if (this.placeholderErrorCodes > 0) this.note(`${this.placeholderErrorCodes} kvm_inj_exception "(0x0)" placeholders on vectors without an error code were not taken as error codes`);
    for (const [text, n] of [...this.unknownReasons].sort()) this.note(`unknown exit reason "${text}" kept as text (${n} exits)`);
    return { events: this.events, kind: this.nested ? 'nested' : 'single-level', assumptions: this.assumptions };
  }
}
