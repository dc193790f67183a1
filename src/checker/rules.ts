// The catalogue of checker rule ids: one row per oracle observation class field (oracle.*), per sequence check and per
// nested-run invariant (merge.* provenance, ept02.*, reflect.*), with its SDM section. Ids are stable: they appear
// unchanged in divergences, JSON reports, --checks filters and the triage UI. Must not: hold comparison logic.
// Reference: DESIGN.md §3; nested-vmx.md §9.1 (O1–O6), §5 (merge), §6 (reflection), §8.6–8.7 (EPT02).

export type RuleClass = 'O1' | 'O2' | 'O3' | 'O4' | 'O5' | 'O6' | 'sequence' | 'merge' | 'ept02' | 'reflect' | 'vpid';

export interface CheckerRule {
  readonly id: string;
  readonly class: RuleClass;
  readonly sdm: string;
  readonly title: string;
}

const rows: readonly CheckerRule[] = [
  // O1: VMX instruction outcomes.
  { id: 'oracle.o1.instruction', class: 'O1', sdm: 'SDM 30.3', title: 'the runs executed different VMX instructions or operands at this step' },
  { id: 'oracle.o1.vmx-outcome', class: 'O1', sdm: 'SDM 30.2', title: 'VMsucceed / VMfailInvalid / VMfailValid / fault' },
  { id: 'oracle.o1.vm-instruction-error', class: 'O1', sdm: 'SDM 30.4', title: 'VM-instruction error number of a VMfailValid' },
  { id: 'oracle.o1.fault-vector', class: 'O1', sdm: 'SDM 30.3', title: 'exception raised by a VMX instruction' },
  { id: 'oracle.o1.vmread-value', class: 'O1', sdm: 'SDM 30.3 (VMREAD, VMPTRST)', title: 'value returned by VMREAD or VMPTRST' },
  { id: 'oracle.o1.failed-check', class: 'O1', sdm: 'SDM 26.2–26.3', title: 'the VM-entry check a VMfailValid(7/8) of VMLAUNCH/VMRESUME names' },
  { id: 'oracle.o1.rflags', class: 'O1', sdm: 'SDM 30.2', title: 'RFLAGS CF/PF/AF/ZF/SF/OF after a VMX instruction' },
  // O2: VM exits delivered to L1 (one rule per exit-information field, plus the guest-state area).
  { id: 'oracle.o2.exit-reason', class: 'O2', sdm: 'SDM 27.2.1, 24.9.1', title: 'exit reason, with the VM-entry-failure bit' },
  { id: 'oracle.o2.qualification', class: 'O2', sdm: 'SDM 27.2.1', title: 'exit qualification' },
  { id: 'oracle.o2.guest-linear-address', class: 'O2', sdm: 'SDM 27.2.1', title: 'guest-linear address (where defined)' },
  { id: 'oracle.o2.guest-physical-address', class: 'O2', sdm: 'SDM 27.2.1', title: 'guest-physical address (EPT exits)' },
  { id: 'oracle.o2.interruption-info', class: 'O2', sdm: 'SDM 27.2.2', title: 'VM-exit interruption information' },
  { id: 'oracle.o2.interruption-error-code', class: 'O2', sdm: 'SDM 27.2.2', title: 'VM-exit interruption error code (when valid)' },
  { id: 'oracle.o2.idt-vectoring-info', class: 'O2', sdm: 'SDM 27.2.4', title: 'IDT-vectoring information' },
  { id: 'oracle.o2.idt-vectoring-error-code', class: 'O2', sdm: 'SDM 27.2.4', title: 'IDT-vectoring error code (when valid)' },
  { id: 'oracle.o2.instruction-length', class: 'O2', sdm: 'SDM 27.2.5', title: 'VM-exit instruction length (where defined)' },
  { id: 'oracle.o2.instruction-info', class: 'O2', sdm: 'SDM 27.2.5', title: 'VM-exit instruction information (where defined)' },
  { id: 'oracle.o2.failed-check', class: 'O2', sdm: 'SDM 26.3, 26.4, 26.8', title: 'the VM-entry check a VM-entry failure (exit 33/34) names' },
  { id: 'oracle.o2.guest-state', class: 'O2', sdm: 'SDM 27.3', title: 'guest-state field as L1 reads it after the exit' },
  // O3–O6.
  { id: 'oracle.o3.l1-state', class: 'O3', sdm: 'SDM 27.5', title: 'L1 register, control-register, segment or MSR state after the step' },
  { id: 'oracle.o4.l2-state', class: 'O4', sdm: 'SDM 25.3, 27.3', title: 'L2 architectural state at the exit to L1' },
  { id: 'oracle.o4.delivered-events', class: 'O4', sdm: 'SDM 6.12, 26.6', title: 'events delivered through L2\'s IDT since the entry' },
  { id: 'oracle.o5.memory', class: 'O5', sdm: 'SDM 28.2.4, 27.4', title: 'L1-physical memory after the step (page hash)' },
  { id: 'oracle.o6.shutdown', class: 'O6', sdm: 'SDM 27.7', title: 'L1 shut down (VMX abort or triple fault)' },
  { id: 'oracle.o6.abort-indicator', class: 'O6', sdm: 'SDM 27.7', title: 'VMX-abort indicator' },
  // Stream alignment.
  { id: 'oracle.sequence.kind', class: 'sequence', sdm: 'DESIGN.md §3', title: 'the runs observed different kinds of event at this point' },
  { id: 'oracle.sequence.step', class: 'sequence', sdm: 'DESIGN.md §3', title: 'the runs observed the same kind of event at different L1 steps' },
  { id: 'oracle.sequence.length', class: 'sequence', sdm: 'DESIGN.md §3', title: 'one run observed more events than the other' },
  { id: 'oracle.nested-error', class: 'sequence', sdm: 'DESIGN.md §3', title: 'the nested machine stopped with an internal error (its L0 broke an assumption)' },
  // Invariants of the nested run.
  { id: 'merge.provenance', class: 'merge', sdm: 'DESIGN.md §3 (merge)', title: 'vmcs02 field without provenance, or provenance whose inputs are not the VMCS values' },
  { id: 'ept02.translation', class: 'ept02', sdm: 'SDM 28.2; reference §8.6', title: 'EPT02 output address ≠ EPT01(EPT12(gpa))' },
  { id: 'ept02.permissions', class: 'ept02', sdm: 'SDM 28.2.2; reference §8.6', title: 'EPT02 permissions not within EPT12 ∩ EPT01' },
  { id: 'ept02.page-size', class: 'ept02', sdm: 'reference §8.6', title: 'EPT02 page larger than the EPT12 or EPT01 page' },
  { id: 'ept02.memory-type', class: 'ept02', sdm: 'SDM 28.2.6; reference §8.6', title: 'EPT02 memory type not what the profile derives' },
  { id: 'ept02.stale', class: 'ept02', sdm: 'SDM 28.3.3.1; reference §8.7', title: 'EPT02 maps an address EPT12 or EPT01 no longer maps (stale after INVEPT / EPT12 write)' },
  { id: 'reflect.missed', class: 'reflect', sdm: 'SDM 25.1–25.2; reference §6.1', title: 'a CPU running vmcs12 would have exited to L1, L0 kept the exit' },
  { id: 'reflect.spurious', class: 'reflect', sdm: 'SDM 25.1–25.2; reference §6.1', title: 'L0 reflected an exit a CPU running vmcs12 would not have taken' },
  { id: 'reflect.exit-info', class: 'reflect', sdm: 'SDM 27.2; reference §7.3', title: 'reflected exit information differs from what a CPU running vmcs12 records' },
  { id: 'reflect.ept12', class: 'reflect', sdm: 'SDM 28.2.3; reference §8.5', title: 'EPT02 fault: L1 gets an EPT exit exactly when the EPT12 walk faults' },
  { id: 'vpid.entry-flush', class: 'vpid', sdm: 'SDM 28.3.3.3; reference §5.6', title: 'nested VM entry without the flush vpid12 semantics need' },
  { id: 'vpid.exit-flush', class: 'vpid', sdm: 'SDM 28.3.3.3; reference §5.6', title: 'exit to L1 without the flush VPID-0 semantics need' },
  { id: 'vpid.invvpid-flush', class: 'vpid', sdm: 'SDM 30.3 (INVVPID); reference §2.3', title: 'L1\'s INVVPID invalidated nothing' },
];

export const CHECKER_RULES: ReadonlyMap<string, CheckerRule> = new Map(rows.map((r) => [r.id, r]));

/** The row of a checker rule id; unknown ids are a turtles bug. */
export function checkerRule(id: string): CheckerRule {
  const r = CHECKER_RULES.get(id);
  if (!r) throw new Error(`turtles bug: unknown checker rule ${id}`);
  return r;
}

/** Rule ids of one class, in catalogue order. */
export function rulesOfClass(c: RuleClass): string[] {
  return rows.filter((r) => r.class === c).map((r) => r.id);
}
