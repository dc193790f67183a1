// Rule ids and SDM sections of the replay of model-recorded traces (the 'model' check class): its own replay.model.*
// ids, and the nested-machine ids it reuses (merge rules per vmcs02 field, reflection rules, EPT02 invariants, oracle
// O1–O3 ids). Must not: compare anything; ids never change meaning once published (reports, JSON, JUnit, UI use them).
// SDM Vol. 3C (classic numbering): 24.6 execution controls, 25.1–25.2 exits, 26 VM entry, 27.2–27.3 exit information.
import { ENTRY_CHECKS } from '../../cpu/generated/entry-checks.js';
import { CHECKER_RULES } from '../../checker/rules.js';
import { EXIT_INFO_RULE, FIELD_RULES } from '../../nested/merge/merge.js';
import { PRIORITY_RULES } from '../../nested/reflect/priority.js';
import { REFLECTION_ROWS } from '../../nested/reflect/table.js';

export interface ModelRule {
  readonly id: string;
  /** Section without the "SDM " prefix (the replay report prints it), as the trace.* rules do. */
  readonly sdm: string;
  readonly summary: string;
}

export const MODEL_RULES = [
  { id: 'replay.model.stream', sdm: 'DESIGN.md §5', summary: 'the recorded event stream has another kind of event (or ends) where the re-run of its scenario has this one; later events cannot be paired' },
  { id: 'replay.model.scenario', sdm: 'DESIGN.md §5', summary: 'the scenario the trace header carries cannot be re-run (unknown CPU model, recorder failure)' },
  { id: 'replay.model.l1-input', sdm: '30.3', summary: 'L1 executed a VMX instruction with other operands, or wrote other memory, than in the re-run (an earlier difference changed its path)' },
  { id: 'replay.model.l2-input', sdm: '25.1', summary: 'L2 executed another instruction (or received another external event) than in the re-run' },
  { id: 'replay.model.vmcs12', sdm: '27.3', summary: 'vmcs12 at an L2 entry differs from the re-run (L0 saved other guest state or exit information into it)' },
  { id: 'replay.model.vmcs02', sdm: '26.3', summary: 'a vmcs02 field the merge catalogue has no rule for differs from the re-run' },
  { id: 'replay.model.vm-entry', sdm: '26.1', summary: 'a hardware entry of vmcs02 entered another RIP, vmcs12 or EPTP than in the re-run' },
  { id: 'replay.model.l0-exit', sdm: '27.2', summary: 'the hardware exit from vmcs02 L0 took differs from the re-run (the exit information the hardware recorded)' },
  { id: 'replay.model.reflection', sdm: '25.1–25.2', summary: 'L0 decided about an L2 exit otherwise than in the re-run, and the re-run names no reflection rule' },
  { id: 'replay.model.entry-failure', sdm: '26.2–26.4', summary: 'a nested VM entry failed another VM-entry check (or with another outcome) than in the re-run' },
] as const satisfies readonly ModelRule[];

export type ModelRuleId = (typeof MODEL_RULES)[number]['id'];

const BY_ID = new Map<string, ModelRule>(MODEL_RULES.map((r) => [r.id, r]));

export function modelRule(id: ModelRuleId): ModelRule {
  return BY_ID.get(id)!;
}

// Merge rule sections, as the merge invariant states them (src/checker/invariants/merge.ts): SDM 24.x for the
// controls a rule derives, 26.3.2 for the guest state loaded on entry.
const MERGE_SDM: Readonly<Record<string, string>> = {
  'merge.pin-controls': '24.6.1', 'merge.primary-controls': '24.6.2', 'merge.secondary-controls': '24.6.2',
  'merge.entry-controls': '24.8.1', 'merge.exit-controls': '24.7.1', 'merge.exception-bitmap': '24.6.3, 25.2',
  'merge.pfec-mask': '24.6.3, 25.2', 'merge.pfec-match': '24.6.3, 25.2', 'merge.cr0-mask': '24.6.6, 25.3', 'merge.cr4-mask': '24.6.6, 25.3',
  'merge.cr0-read-shadow': '24.6.6, 25.3', 'merge.cr4-read-shadow': '24.6.6, 25.3', 'merge.guest-cr0': '26.3.2.1', 'merge.guest-cr4': '26.3.2.1',
  'merge.tsc-offset': '25.3', 'merge.tsc-multiplier': '25.3', 'merge.guest-state': '26.3.2', 'merge.host-state': '24.5',
  'merge.ept-pointer': '24.6.11', 'merge.vpid': '24.6.12', 'merge.msr-bitmap': '24.6.9', 'merge.entry-event-injection': '24.8.3, 26.6',
};

/** The merge rule of a vmcs02 field (by name) — the rule id the recomputed run's provenance carries for it. */
export function mergeRuleOf(fieldName: string | undefined): string | undefined {
  if (fieldName === undefined) return undefined;
  const r = FIELD_RULES.get(fieldName);
  return r === undefined || r === EXIT_INFO_RULE ? undefined : r;
}

function stripSdm(s: string): string {
  return s.startsWith('SDM ') ? s.slice(4) : s;
}

/** SDM section (without "SDM ") of any rule id a model finding can carry. */
export function modelSdm(rule: string): string {
  const own = BY_ID.get(rule);
  if (own) return own.sdm;
  if (rule.startsWith('merge.')) return MERGE_SDM[rule] ?? '24.6, 26.3';
  const checker = CHECKER_RULES.get(rule);
  if (checker) return stripSdm(checker.sdm);
  // Reflection rules (l0.* kept by L0, l1.* wanted by L1, priority.* synthesized nested events).
  if (rule.startsWith('l0.') || rule.startsWith('l1.')) return '25.1–25.2';
  if (rule.startsWith('priority.')) return '6.9, 25.2';
  const check = ENTRY_CHECKS.find((c) => c.id === rule);
  if (check) return check.sdm;
  return 'DESIGN.md §5';
}

/** Every rule id a model finding can carry (the 'model' check class, for --checks selection). */
export function modelRuleIds(): string[] {
  const ids = new Set<string>(MODEL_RULES.map((r) => r.id));
  for (const r of FIELD_RULES.values()) if (r !== EXIT_INFO_RULE) ids.add(r);
  for (const row of REFLECTION_ROWS) {
    ids.add(row.l0.rule);
    ids.add(row.l1.rule);
  }
  for (const r of PRIORITY_RULES) ids.add(r);
  const reused = ['oracle.o1.', 'oracle.o2.', 'oracle.o3.', 'oracle.o4.', 'oracle.sequence.length', 'ept02.'];
  for (const id of CHECKER_RULES.keys()) if (reused.some((p) => id.startsWith(p))) ids.add(id);
  return [...ids];
}

/** Whether a rule id belongs to the model class (for JUnit grouping): everything but trace.* and VM-entry check ids. */
export function isModelRule(rule: string): boolean {
  return rule.startsWith('replay.model.') || rule.startsWith('merge.') || rule.startsWith('oracle.') || rule.startsWith('ept02.')
    || rule.startsWith('l0.') || rule.startsWith('l1.') || rule.startsWith('priority.');
}
