// The stable rule ids of replaying a recorded trace (trace.*), with the SDM section each implements and the check
// class it belongs to; VM-entry check ids (ctrl.* / host.* / guest.* / msr-load.*) come from the entry-check catalogue.
// Must not: contain checking logic; ids never change meaning once published (reports, JSON, JUnit and the UI use them).
// SDM Vol. 3C (classic numbering, reference §0.2): 24.9 / 27.2 exit information, 25.1.2 unconditional exits, 26.7.
import { ENTRY_CHECKS } from '../../cpu/generated/entry-checks.js';
import { modelRuleIds } from './model-rules.js';

/** The check classes a replay of a recorded trace runs; one JUnit testcase each. */
export type CheckClassId = 'exit-info' | 'vm-entry' | 'rip-advance' | 'reflection' | 'model';
/** 'model': re-running the scenario of a `turtles record` trace (model-replay.ts; rule ids in model-rules.ts). */
export const CHECK_CLASSES: readonly CheckClassId[] = ['exit-info', 'vm-entry', 'rip-advance', 'reflection', 'model'];

export interface TraceRule {
  readonly id: string;
  readonly sdm: string;
  readonly cls: CheckClassId;
  readonly summary: string;
}

export const TRACE_RULES = [
  { id: 'trace.exit-info.reason.reserved', sdm: '24.9.1', cls: 'exit-info', summary: 'the exit reason sets bit 16, 25:17 or 30, which the processor leaves 0' },
  { id: 'trace.exit-info.reason.unknown', sdm: 'Appendix C', cls: 'exit-info', summary: 'the basic exit reason is not one the SDM defines' },
  { id: 'trace.exit-info.reason.entry-failure', sdm: '26.7', cls: 'exit-info', summary: 'bit 31 (VM-entry failure) is set exactly for basic reasons 33, 34 and 41' },
  { id: 'trace.exit-info.intr-info.valid', sdm: '27.2.2', cls: 'exit-info', summary: 'VM-exit interruption information is valid exactly for exception/NMI exits (and external-interrupt exits that acknowledge the interrupt)' },
  { id: 'trace.exit-info.intr-info.reserved', sdm: '24.9.2', cls: 'exit-info', summary: 'valid VM-exit interruption information has bits 30:13 clear' },
  { id: 'trace.exit-info.intr-info.type', sdm: '27.2.2', cls: 'exit-info', summary: 'interruption type and vector agree with each other and with the exit reason' },
  { id: 'trace.exit-info.intr-info.error-code', sdm: '27.2.2', cls: 'exit-info', summary: 'error-code-valid (bit 11) is set exactly for hardware exceptions that push an error code' },
  { id: 'trace.exit-info.error-code', sdm: '6.13 (Vol. 3A)', cls: 'exit-info', summary: 'an error code has the form its exception defines (#DF and #AC push 0; selector error codes have bits 31:16 clear)' },
  { id: 'trace.exit-info.idt-vectoring.reason', sdm: '27.2.4', cls: 'exit-info', summary: 'IDT-vectoring information is valid only for exits that can occur during event delivery' },
  { id: 'trace.exit-info.idt-vectoring.reserved', sdm: '24.9.3', cls: 'exit-info', summary: 'valid IDT-vectoring information has bits 30:13 clear' },
  { id: 'trace.exit-info.idt-vectoring.type', sdm: '27.2.4', cls: 'exit-info', summary: 'the type of the event being delivered is a used one and agrees with its vector' },
  { id: 'trace.exit-info.idt-vectoring.error-code', sdm: '27.2.4', cls: 'exit-info', summary: 'error-code-valid (bit 11) is set only for hardware exceptions that push an error code' },
  { id: 'trace.exit-info.qualification', sdm: '27.2.1', cls: 'exit-info', summary: 'the exit qualification has the format of its exit reason (reserved bits clear, defined encodings)' },
  { id: 'trace.exit-info.instruction-length', sdm: '27.2.5', cls: 'exit-info', summary: 'where defined, the VM-exit instruction length lies between the shortest encoding of the instruction and 15' },
  { id: 'trace.exit-info.instruction-info', sdm: '27.2.5', cls: 'exit-info', summary: 'the VM-exit instruction-information field has its layout\'s reserved bits clear and defined encodings' },
  { id: 'trace.rip-advance', sdm: '27.2.5', cls: 'rip-advance', summary: 'a handler that skips the exiting instruction sets GUEST_RIP to RIP + VM-exit instruction length' },
  { id: 'trace.reflection.must-reflect', sdm: '25.1.2', cls: 'reflection', summary: 'an L2 exit for a reason that exits unconditionally (CPUID, VMX instructions, ...) is reflected to L1, never handled by L0' },
  { id: 'trace.reflection.fields', sdm: '27.2', cls: 'reflection', summary: 'a reflected exit reaches L1 with the exit information the hardware reported' },
  { id: 'trace.entry.outcome', sdm: '26.7', cls: 'vm-entry', summary: 'the recorded outcome of a VM entry (success, or a failure with exit reason 33/34) is what the VM-entry checks give' },
] as const satisfies readonly TraceRule[];

export type TraceRuleId = (typeof TRACE_RULES)[number]['id'];

const BY_ID = new Map<string, TraceRule>(TRACE_RULES.map((r) => [r.id, r]));

export function traceRule(id: TraceRuleId): TraceRule {
  return BY_ID.get(id)!;
}

/** Every rule id of a class, including the VM-entry check ids for 'vm-entry'. */
export function ruleIdsOf(cls: CheckClassId): string[] {
  const ids: string[] = TRACE_RULES.filter((r) => r.cls === cls).map((r) => r.id);
  if (cls === 'vm-entry') ids.push(...ENTRY_CHECKS.map((c) => c.id));
  if (cls === 'model') ids.push(...modelRuleIds());
  return ids;
}

/** `--checks` selection: a rule runs when no prefixes are given or its id starts with one of them. */
export class RuleFilter {
  constructor(private readonly prefixes: readonly string[] = []) {}

  get all(): boolean {
    return this.prefixes.length === 0;
  }

  selects(id: string): boolean {
    return this.prefixes.length === 0 || this.prefixes.some((p) => id.startsWith(p));
  }

  /** Whether any rule of the class is selected. */
  selectsClass(cls: CheckClassId): boolean {
    return this.all || ruleIdsOf(cls).some((id) => this.selects(id));
  }

  /** Prefixes that select no rule at all (a typo in --checks). */
  unmatched(): string[] {
    const ids = CHECK_CLASSES.flatMap((c) => ruleIdsOf(c));
    return this.prefixes.filter((p) => !ids.some((id) => id.startsWith(p)));
  }
}
