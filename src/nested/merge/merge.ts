// mergeVmcs02: builds vmcs02 from vmcs01 (L0's policy for L1), vmcs12 (L1's VMCS for L2) and L0's own inputs,
// recording for every written field the rule id of schemas/nested/merge-rules.json and the inputs it used.
// Must not: read memory, decide reflection, or write exit-information fields (the hardware writes those at VM exit).
// Reference: nested-vmx.md §5.1–5.7 (KVM prepare_vmcs02*); SDM 24 (VMCS layout), 26.2–26.3 (what entry checks need).
import { Field } from '../../cpu/generated/vmcs-fields.js';
import { Pin, Secondary } from '../../cpu/generated/controls.js';
import { slotFields, slotOf, Vmcs } from '../../cpu/vmcs.js';
import type { VmcsFieldDef } from '../../cpu/generated/vmcs-fields.js';
import { Deviation, type L0Profile } from '../profile.js';
import { CONTROL_RULES, effectiveSecondary } from './rules-controls.js';
import { GUEST_RULES } from './rules-guest.js';
import { InputLookup, type MergeEnv, type MergeRuleImpl } from './rule-kit.js';
import { ProvenanceWriter } from './provenance.js';
import { dependenciesOf, MergeSources } from './incremental.js';
import type { FieldProvenance, L0MergeInputs, MergeIssue, MergeResult, ProvenanceInput } from './types.js';

/** Rule for read-only (exit-information) fields: the merge does not write them. */
export const EXIT_INFO_RULE = 'merge.exit-info-not-written';

const SEGS = ['ES', 'CS', 'SS', 'DS', 'FS', 'GS', 'LDTR', 'TR'];
const GUEST_STATE_FIELDS = [
  ...SEGS.flatMap((s) => [`GUEST_${s}_SELECTOR`, `GUEST_${s}_BASE`, `GUEST_${s}_LIMIT`, `GUEST_${s}_AR_BYTES`]),
  'GUEST_GDTR_BASE', 'GUEST_GDTR_LIMIT', 'GUEST_IDTR_BASE', 'GUEST_IDTR_LIMIT', 'GUEST_RSP', 'GUEST_RIP', 'GUEST_RFLAGS',
  'GUEST_SYSENTER_CS', 'GUEST_SYSENTER_ESP', 'GUEST_SYSENTER_EIP', 'GUEST_PENDING_DBG_EXCEPTIONS', 'GUEST_INTERRUPTIBILITY_INFO',
];

/** Fields L0 does not use for L2 (features not offered to L1 or emulated in software): written as 0. */
export const UNUSED_FIELDS = [
  'IO_BITMAP_A', 'IO_BITMAP_B', 'CR3_TARGET_VALUE0', 'CR3_TARGET_VALUE1', 'CR3_TARGET_VALUE2', 'CR3_TARGET_VALUE3',
  'EPTP_LIST_ADDRESS', 'VMREAD_BITMAP', 'VMWRITE_BITMAP', 'VE_INFORMATION_ADDRESS', 'EPTP_INDEX', 'HLAT_PREFIX_SIZE',
  'LAST_PID_POINTER_INDEX', 'VIRTUAL_TIMER_VECTOR', 'EXECUTIVE_VMCS_POINTER', 'SPPTP', 'ENCLV_EXITING_BITMAP',
  'LOW_PASID_DIRECTORY_ADDRESS', 'HIGH_PASID_DIRECTORY_ADDRESS', 'SHARED_EPTP', 'PCONFIG_EXITING_BITMAP', 'HLATP',
  'PID_POINTER_TABLE', 'IA32_SPEC_CTRL_MASK', 'IA32_SPEC_CTRL_SHADOW', 'GUEST_DEADLINE_SHADOW', 'INJECTED_EVENT_DATA',
  'SEAM_GUEST_KEYID', 'GUEST_UINV', 'GUEST_IA32_RTIT_CTL', 'GUEST_IA32_LBR_CTL', 'GUEST_IA32_PKRS', 'GUEST_IA32_FRED_CONFIG',
  'GUEST_IA32_FRED_RSP1', 'GUEST_IA32_FRED_RSP2', 'GUEST_IA32_FRED_RSP3', 'GUEST_IA32_FRED_STKLVLS', 'GUEST_IA32_FRED_SSP1',
  'GUEST_IA32_FRED_SSP2', 'GUEST_IA32_FRED_SSP3', 'GUEST_IA32_SPEC_CTRL', 'GUEST_DEADLINE', 'GUEST_SMBASE', 'GUEST_S_CET',
  'GUEST_SSP', 'GUEST_INTR_SSP_TABLE',
];

const EXPLICIT: Record<string, string> = {
  GUEST_CR0: 'merge.guest-cr0', GUEST_CR4: 'merge.guest-cr4', GUEST_CR3: 'merge.guest-cr3',
  GUEST_PDPTR0: 'merge.guest-pdptr', GUEST_PDPTR1: 'merge.guest-pdptr', GUEST_PDPTR2: 'merge.guest-pdptr', GUEST_PDPTR3: 'merge.guest-pdptr',
  CR0_READ_SHADOW: 'merge.cr0-read-shadow', CR4_READ_SHADOW: 'merge.cr4-read-shadow', CR0_GUEST_HOST_MASK: 'merge.cr0-mask', CR4_GUEST_HOST_MASK: 'merge.cr4-mask',
  GUEST_DR7: 'merge.guest-dr7', GUEST_IA32_DEBUGCTL: 'merge.guest-debugctl', GUEST_IA32_PAT: 'merge.guest-pat', GUEST_IA32_EFER: 'merge.guest-efer',
  GUEST_BNDCFGS: 'merge.guest-bndcfgs', GUEST_IA32_PERF_GLOBAL_CTRL: 'merge.guest-perf-global-ctrl', GUEST_ACTIVITY_STATE: 'merge.guest-activity-state',
  GUEST_INTR_STATUS: 'merge.guest-intr-status', GUEST_PML_INDEX: 'merge.guest-pml-index', VMCS_LINK_POINTER: 'merge.vmcs-link-pointer',
  VMX_PREEMPTION_TIMER_VALUE: 'merge.preemption-timer-value', PIN_BASED_VM_EXEC_CONTROL: 'merge.pin-controls', POSTED_INTR_NV: 'merge.posted-intr-nv',
  POSTED_INTR_DESC_ADDR: 'merge.posted-intr-desc-addr', CPU_BASED_VM_EXEC_CONTROL: 'merge.primary-controls', TPR_THRESHOLD: 'merge.tpr-threshold',
  VIRTUAL_APIC_PAGE_ADDR: 'merge.virtual-apic-page', SECONDARY_VM_EXEC_CONTROL: 'merge.secondary-controls', APIC_ACCESS_ADDR: 'merge.apic-access-page',
  EOI_EXIT_BITMAP0: 'merge.eoi-exit-bitmap', EOI_EXIT_BITMAP1: 'merge.eoi-exit-bitmap', EOI_EXIT_BITMAP2: 'merge.eoi-exit-bitmap', EOI_EXIT_BITMAP3: 'merge.eoi-exit-bitmap',
  XSS_EXIT_BITMAP: 'merge.xss-exit-bitmap', ENCLS_EXITING_BITMAP: 'merge.encls-exiting-bitmap', VM_FUNCTION_CONTROL: 'merge.vm-function-control',
  PML_ADDRESS: 'merge.pml-address', EXCEPTION_BITMAP: 'merge.exception-bitmap', PAGE_FAULT_ERROR_CODE_MASK: 'merge.pfec-mask',
  PAGE_FAULT_ERROR_CODE_MATCH: 'merge.pfec-match', TSC_OFFSET: 'merge.tsc-offset', TSC_MULTIPLIER: 'merge.tsc-multiplier', MSR_BITMAP: 'merge.msr-bitmap',
  CR3_TARGET_COUNT: 'merge.cr3-target-count', EPT_POINTER: 'merge.ept-pointer', VIRTUAL_PROCESSOR_ID: 'merge.vpid', VM_ENTRY_CONTROLS: 'merge.entry-controls',
  VM_EXIT_CONTROLS: 'merge.exit-controls', VM_EXIT_MSR_STORE_ADDR: 'merge.msr-autoload-lists', VM_EXIT_MSR_STORE_COUNT: 'merge.msr-autoload-lists',
  VM_EXIT_MSR_LOAD_ADDR: 'merge.msr-autoload-lists', VM_EXIT_MSR_LOAD_COUNT: 'merge.msr-autoload-lists', VM_ENTRY_MSR_LOAD_ADDR: 'merge.msr-autoload-lists',
  VM_ENTRY_MSR_LOAD_COUNT: 'merge.msr-autoload-lists', VM_ENTRY_INTR_INFO_FIELD: 'merge.entry-event-injection',
  VM_ENTRY_EXCEPTION_ERROR_CODE: 'merge.entry-event-injection', VM_ENTRY_INSTRUCTION_LEN: 'merge.entry-event-injection',
  PLE_GAP: 'merge.l0-owned-controls', PLE_WINDOW: 'merge.l0-owned-controls', NOTIFY_WINDOW: 'merge.l0-owned-controls',
  SECONDARY_VM_EXIT_CONTROLS: 'merge.l0-owned-controls', TERTIARY_VM_EXEC_CONTROL: 'merge.tertiary-controls',
};

function ruleIdFor(f: VmcsFieldDef): string {
  if (f.type === 'read-only data') return EXIT_INFO_RULE;
  if (f.type === 'host state') return 'merge.host-state';
  const explicit = EXPLICIT[f.name];
  if (explicit) return explicit;
  if (GUEST_STATE_FIELDS.includes(f.name)) return 'merge.guest-state';
  if (UNUSED_FIELDS.includes(f.name)) return 'merge.unused';
  throw new Error(`turtles bug: VMCS field ${f.name} has no merge rule`);
}

/** Rule id of every full VMCS field, in slot order (a test keeps this equal to merge-rules.json). */
export const FIELD_RULES: ReadonlyMap<string, string> = new Map(slotFields().map((f) => [f.name, ruleIdFor(f)]));

/** Implementations by rule id (every rule of merge-rules.json except the not-written exit-info group). */
export const MERGE_RULES: ReadonlyMap<string, MergeRuleImpl> = new Map([...CONTROL_RULES, ...GUEST_RULES].map((r) => [r.id, r]));

/** Fields merged before the rest because later rules read them (EFER feeds the entry/exit controls). */
const FIRST: readonly number[] = [Field.GUEST_IA32_EFER, Field.PIN_BASED_VM_EXEC_CONTROL, Field.CPU_BASED_VM_EXEC_CONTROL, Field.SECONDARY_VM_EXEC_CONTROL];

interface MergeStep {
  readonly field: VmcsFieldDef;
  readonly id: string;
  readonly rule: MergeRuleImpl;
}

/** Every written field with its rule, in merge order: computed once (the field table and the rules are fixed). */
const MERGE_STEPS: readonly MergeStep[] = (() => {
  const order = [...FIRST.map((e) => slotFields().find((f) => f.encoding === e)!), ...slotFields().filter((f) => !FIRST.includes(f.encoding))];
  const steps: MergeStep[] = [];
  for (const field of order) {
    const id = FIELD_RULES.get(field.name)!;
    if (id === EXIT_INFO_RULE) continue;
    const rule = MERGE_RULES.get(id);
    if (!rule) throw new Error(`turtles bug: merge rule ${id} has no implementation`);
    steps.push({ field, id, rule });
  }
  return steps;
})();

/**
 * The record each step produced last time. A rule's value is a function of its recorded inputs alone (rule-kit), so when
 * a step gathers exactly the inputs it gathered before, the earlier record (value and provenance) is the answer: most
 * fields keep their inputs from one L2 entry to the next; when none of the sources those inputs name changed since the
 * previous merge, the step does not even gather (incremental.ts). A pure cache: it never changes what a merge returns.
 */
class MergeCache {
  readonly lastRecord: (FieldProvenance | undefined)[] = new Array(MERGE_STEPS.length).fill(undefined);
  /** The sources each last record depends on (incremental.ts). */
  readonly lastDeps: (Int32Array | undefined)[] = new Array(MERGE_STEPS.length).fill(undefined);
  /** The VMCS words of each last record's value (bits 31:0, 63:32), so a reuse stores without bigint work. */
  readonly lastLow = new Uint32Array(MERGE_STEPS.length);
  readonly lastHigh = new Uint32Array(MERGE_STEPS.length);
  readonly sources = new MergeSources();
}

/**
 * One cache for L0's own re-entries of L2 and one for the emulated VMLAUNCH/VMRESUME: the two alternate, and their guest
 * state comes from different sources (l2Live, vmcs12), so one shared cache would recompute the guest area every time.
 */
const CACHES = [new MergeCache(), new MergeCache()] as const;
const STEP_SLOT = Int32Array.from(MERGE_STEPS, (s) => slotOf(s.field.encoding));

function sameInputs(a: readonly ProvenanceInput[], b: readonly ProvenanceInput[]): boolean {
  if (a.length !== b.length) return false;
  for (let k = 0; k < a.length; k++) {
    const x = a[k]!;
    const y = b[k]!;
    if (x.value !== y.value || x.from !== y.from || x.field !== y.field) return false;
  }
  return true;
}

/**
 * The merge with every step gathered and computed anew, no earlier record reused and nothing left for later merges to
 * reuse: the from-scratch merge the incremental mergeVmcs02 must equal (tests compare the two).
 */
export function mergeVmcs02FromScratch(vmcs01: Vmcs, vmcs12: Vmcs, l0: L0MergeInputs, profile: L0Profile): MergeResult {
  const vmcs02 = new Vmcs();
  const env: MergeEnv = { vmcs01, vmcs12, l0, profile, merged: vmcs02 };
  const w = new ProvenanceWriter(vmcs02);
  for (const { field, id, rule } of MERGE_STEPS) {
    const inputs = rule.gather(env, field);
    w.write(field.encoding, id, inputs, rule.compute(new InputLookup(inputs), field));
  }
  return { vmcs02, provenance: w.provenance, issues: kvmIssues(vmcs12, vmcs02, l0, profile) };
}

export function mergeVmcs02(vmcs01: Vmcs, vmcs12: Vmcs, l0: L0MergeInputs, profile: L0Profile): MergeResult {
  const cache = CACHES[l0.realEntry ? 1 : 0];
  const vmcs02 = new Vmcs();
  const env: MergeEnv = { vmcs01, vmcs12, l0, profile, merged: vmcs02 };
  const provenance = cache.sources.begin(vmcs01, vmcs12, l0, profile) ? mergeIncremental(cache, env) : mergeGathering(cache, env);
  cache.sources.end(vmcs01, vmcs12, l0, profile, vmcs02);
  return { vmcs02, provenance, issues: kvmIssues(vmcs12, vmcs02, l0, profile) };
}

/** Every step gathers; a step whose inputs equal its last record's reuses that record. */
function mergeGathering(cache: MergeCache, env: MergeEnv): FieldProvenance[] {
  const { lastRecord, lastLow, lastHigh } = cache;
  const vmcs02 = env.merged;
  const w = new ProvenanceWriter(vmcs02);
  for (let k = 0; k < MERGE_STEPS.length; k++) {
    const { field, id, rule } = MERGE_STEPS[k]!;
    const inputs = rule.gather(env, field);
    const last = lastRecord[k];
    if (last !== undefined && sameInputs(last.inputs, inputs)) {
      w.reuse(last, STEP_SLOT[k]!, lastLow[k]!, lastHigh[k]!);
      continue;
    }
    w.write(field.encoding, id, inputs, rule.compute(new InputLookup(inputs), field));
    remember(cache, k, w.provenance[w.provenance.length - 1]!, vmcs02);
  }
  return w.provenance;
}

/**
 * After a complete merge of this cache: the provenance starts as the last records (one per step, in step order, as
 * mergeGathering builds it) and only the steps with a changed dependency gather; the others store their last value.
 * Same vmcs02 words and records as mergeGathering (test/unit/nested/merge-incremental.test.ts).
 */
function mergeIncremental(cache: MergeCache, env: MergeEnv): FieldProvenance[] {
  const { lastRecord, lastDeps, lastLow, lastHigh, sources } = cache;
  const vmcs02 = env.merged;
  const words = vmcs02.words;
  const provenance = lastRecord.slice() as FieldProvenance[];
  for (let k = 0; k < MERGE_STEPS.length; k++) {
    const slot = STEP_SLOT[k]!;
    const last = lastRecord[k];
    if (last === undefined) throw new Error('turtles bug: incremental merge without a record of every step');
    if (sources.unchanged(lastDeps[k]!)) {
      words[2 * slot] = lastLow[k]!;
      words[2 * slot + 1] = lastHigh[k]!;
      sources.kept(slot);
      continue;
    }
    const { field, id, rule } = MERGE_STEPS[k]!;
    const inputs = rule.gather(env, field);
    if (sameInputs(last.inputs, inputs)) {
      words[2 * slot] = lastLow[k]!;
      words[2 * slot + 1] = lastHigh[k]!;
      sources.kept(slot);
      continue;
    }
    // As ProvenanceWriter.write: the value stored with the field's width rule, the record holding what the VMCS holds.
    vmcs02.set(field.encoding, rule.compute(new InputLookup(inputs), field));
    const record: FieldProvenance = { field: field.name, encoding: field.encoding, rule: id, inputs, value: vmcs02.get(field.encoding) };
    provenance[k] = record;
    remember(cache, k, record, vmcs02);
    sources.wrote(slot, vmcs02);
  }
  return provenance;
}

/** Keep a freshly computed record for reuse. Frozen: later merges hand it out again, so nobody may change it in place. */
function remember(cache: MergeCache, k: number, record: FieldProvenance, vmcs02: Vmcs): void {
  for (const x of record.inputs) Object.freeze(x);
  Object.freeze(record.inputs);
  cache.lastRecord[k] = Object.freeze(record);
  cache.lastDeps[k] = dependenciesOf(record.inputs);
  cache.lastLow[k] = vmcs02.words[2 * STEP_SLOT[k]!]!;
  cache.lastHigh[k] = vmcs02.words[2 * STEP_SLOT[k]! + 1]!;
}

/** kvm (N2): unbacked pages that KVM turns into an internal error exit to userspace instead of a vmcs02 value. */
function kvmIssues(vmcs12: Vmcs, vmcs02: Vmcs, l0: L0MergeInputs, profile: L0Profile): MergeIssue[] {
  if (!profile.deviations.has(Deviation.UNBACKED_VMCS12_PAGES)) return [];
  const out: MergeIssue[] = [];
  const s02 = effectiveSecondary(vmcs02.lo(Field.CPU_BASED_VM_EXEC_CONTROL), vmcs02.lo(Field.SECONDARY_VM_EXEC_CONTROL));
  if (s02 & Secondary.VIRTUALIZE_APIC_ACCESSES && l0.apicAccessPage === null) {
    out.push({ kind: 'internal-error', rule: 'merge.apic-access-page', field: 'APIC_ACCESS_ADDR', message: 'vmcs12 APIC-access page has no backing memory: KVM exits to userspace with an internal error' });
  }
  if (vmcs12.lo(Field.PIN_BASED_VM_EXEC_CONTROL) & Pin.PROCESS_POSTED_INTERRUPTS && l0.postedIntrDesc === null) {
    out.push({ kind: 'internal-error', rule: 'merge.posted-intr-desc-addr', field: 'POSTED_INTR_DESC_ADDR', message: 'vmcs12 posted-interrupt descriptor has no backing memory: posted interrupts disabled in vmcs02, KVM reports an internal error when L1 posts' });
  }
  return out;
}
