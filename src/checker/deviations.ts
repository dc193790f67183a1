// Which checker rules (and fields) each observable KVM deviation changes, so a divergence of a kvm-profile run can be
// attributed to a declared deviation. The map only proposes which deviations to switch off; run.ts confirms by re-running
// the nested machine without them (what persists is unexplained; what vanishes unnamed is a consequence).
// Must not: decide attribution alone. Reference: nested-vmx.md §9.3 (N1–N24), schemas/nested/kvm-deviations.json.
import { KVM_OBSERVABLE_DEVIATIONS, type KvmDeviationId, type L0Profile } from '../nested/profile.js';
import type { Divergence } from './divergence.js';

/** One effect: a rule id (or a prefix ending in '*') and, optionally, the only fields it can concern. */
export interface DeviationEffect {
  readonly rule: string;
  readonly fields?: readonly string[];
  /** A consequence (L1 or L2 took another path after the direct effect), not the deviation's own effect. */
  readonly consequence?: true;
}

const SEGMENT_AR_FIELDS = ['ES', 'CS', 'SS', 'DS', 'FS', 'GS', 'LDTR', 'TR'].map((s) => `GUEST_${s}_AR_BYTES`);
const any = (...rules: string[]): DeviationEffect[] => rules.map((rule) => ({ rule }));
/** A deviation that can change which exit (or instruction outcome) comes next changes the course of L1 and L2 too. */
const PATH: DeviationEffect[] = ['oracle.sequence.*', 'oracle.o3.*', 'oracle.o4.*', 'oracle.o5.*'].map((rule) => ({ rule, consequence: true }));

export const DEVIATION_EFFECTS: Readonly<Record<KvmDeviationId, readonly DeviationEffect[]>> = {
  // N1: triple fault instead of a VMX abort: no abort indicator in the VMCS region, no shutdown-by-abort.
  'kvm.abort-as-triple-fault': [...any('oracle.o6.*', 'oracle.o5.*'), ...PATH],
  // N2: unbacked vmcs12 pages: VMfailValid(7) on entry, dropped TPR shadow, internal error.
  'kvm.unbacked-vmcs12-pages': [...any('oracle.o1.*', 'oracle.o2.*', 'oracle.o6.*', 'merge.*'), ...PATH],
  // N4: only qualification bits 0–5, 7, 8 for EPT12 violations; NMI unblocking reported as NMI blocking.
  'kvm.ept-violation-qual-basic': [
    { rule: 'oracle.o2.qualification', fields: ['EXIT_QUALIFICATION'] },
    { rule: 'oracle.o2.guest-state', fields: ['GUEST_INTERRUPTIBILITY_INFO'] },
    { rule: 'oracle.o1.vmread-value', fields: ['EXIT_QUALIFICATION', 'GUEST_INTERRUPTIBILITY_INFO'] },
  ],
  // N5: qualification bit 8 of faults raised while L0 emulates; PDPTE loads may set EPT12 dirty bits.
  'kvm.emulated-ept-fault-bit8': [
    { rule: 'oracle.o2.qualification', fields: ['EXIT_QUALIFICATION'] },
    { rule: 'oracle.o1.vmread-value', fields: ['EXIT_QUALIFICATION'] },
    ...any('oracle.o5.*'),
  ],
  // N6: the preemption-timer value is not saved when the exit happens while the entry is pending.
  'kvm.preemption-timer-not-saved-on-pending-entry': [
    { rule: 'oracle.o2.guest-state', fields: ['VMX_PREEMPTION_TIMER_VALUE'] },
    { rule: 'oracle.o1.vmread-value', fields: ['VMX_PREEMPTION_TIMER_VALUE'] },
  ],
  // N7: SEAMCALL/TDCALL raise #UD in L2 instead of exiting to L1.
  'kvm.seamcall-tdcall-ud': [...any('oracle.o2.*', 'reflect.*'), ...PATH],
  // N8: late hardware checks: VMfailValid(7) for every hardware VM-fail, MSR-load list already applied (L1's MSRs, O3).
  'kvm.late-hardware-entry-checks': [...any('oracle.o1.*', 'oracle.o2.*', 'oracle.o3.*'), ...PATH],
  // N10: VMWRITE drops reserved AR-byte bits (so an entry check on them can pass where the CPU fails it).
  'kvm.vmwrite-ar-bytes-masked': [
    { rule: 'oracle.o1.vmread-value', fields: SEGMENT_AR_FIELDS },
    { rule: 'oracle.o2.guest-state', fields: SEGMENT_AR_FIELDS },
    ...any('oracle.o1.vmx-outcome', 'oracle.o1.vm-instruction-error', 'oracle.o1.failed-check', 'oracle.o2.exit-reason', 'oracle.o2.failed-check'),
    ...PATH,
  ],
  // N12: DEBUGCTL BTF/LBR bits dropped.
  'kvm.debugctl-bits-dropped': [
    { rule: 'oracle.o2.guest-state', fields: ['GUEST_IA32_DEBUGCTL'] },
    { rule: 'oracle.o1.vmread-value', fields: ['GUEST_IA32_DEBUGCTL'] },
    ...any('oracle.o3.*', 'oracle.o4.*'),
  ],
  // N13: x2APIC MSRs in the exit-store list fail only with x2APIC enabled (VMX abort 1 otherwise on hardware).
  'kvm.msr-store-x2apic-only-when-enabled': [...any('oracle.o6.*', 'oracle.o1.vmx-outcome'), ...PATH],
  // N13: userspace MSR filters; IA32_TSC store snapshot.
  'kvm.msr-access-filter': [...any('oracle.o1.*', 'oracle.o2.*', 'oracle.o6.*'), ...PATH],
  // N14: null host selectors loaded as usable segments.
  'kvm.host-null-selector-usable': [...any('oracle.o3.*')],
  // N14: the whole HOST_CR0 is loaded.
  'kvm.host-cr0-full-load': [...any('oracle.o3.*', 'oracle.o4.*', 'oracle.o5.*')],
  // N16: a pending MTF exit is lost across SMI/RSM.
  'kvm.mtf-lost-across-smm': [...any('oracle.o2.*'), ...PATH],
  // N18: posted interrupts reach L2 at a different instruction boundary.
  'kvm.posted-interrupt-deferred': [...any('oracle.o2.*'), ...PATH],
  // N19: exception error codes truncated to 16 bits for PFEC matching and synthesized exits.
  'kvm.exception-error-code-16bit': [...any('oracle.o2.*', 'reflect.*'), ...PATH],
  // N20: pending #DB vs MTF priority inferred from DR6.
  'kvm.pending-db-mtf-priority': [...any('oracle.o2.*'), ...PATH],
  // N22: real-mode / big-real L2 states rejected with exit 33 without unrestricted guest in L0.
  'kvm.guest-state-needs-unrestricted-guest': [...any('oracle.o1.*', 'oracle.o2.*'), ...PATH],
  // Found by the oracle: L2 EFER.LME = "IA-32e mode guest" even when the entry leaves paging off (SDM 26.3.2.1 keeps LME).
  'kvm.guest-efer-lme-from-ia32e-mode': [
    { rule: 'oracle.o2.guest-state', fields: ['GUEST_IA32_EFER'] },
    { rule: 'oracle.o1.vmread-value', fields: ['GUEST_IA32_EFER'] },
    ...any('oracle.o4.*'),
    ...PATH,
  ],
  // Found by the oracle: L2's CR0.CD/NW/ET come from vmcs12 GUEST_CR0 (read shadow, saved value), not from L1's CR0.
  'kvm.guest-cr0-unloaded-bits-from-vmcs12': [
    { rule: 'oracle.o2.guest-state', fields: ['GUEST_CR0'] },
    { rule: 'oracle.o1.vmread-value', fields: ['GUEST_CR0'] },
    ...any('oracle.o3.*', 'oracle.o4.*'),
    ...PATH,
  ],
  // N24: VMREAD/VMWRITE of fields the advertised features do not have succeed.
  'kvm.field-existence-ignores-features': [...any('oracle.o1.*', 'oracle.o2.*'), ...PATH],
};

function ruleMatches(pattern: string, rule: string): boolean {
  return pattern.endsWith('*') ? rule.startsWith(pattern.slice(0, -1)) : pattern === rule;
}

/** Whether deviation `id` may produce divergence `d` according to the map. */
export function deviationMayCause(id: KvmDeviationId, d: Pick<Divergence, 'rule' | 'field'>): boolean {
  return DEVIATION_EFFECTS[id].some((e) => matches(e, d));
}

function matches(e: DeviationEffect, d: Pick<Divergence, 'rule' | 'field'>): boolean {
  return ruleMatches(e.rule, d.rule) && (e.fields === undefined || (d.field !== undefined && e.fields.includes(d.field)));
}

/**
 * The deviations `profile` applies that may have produced `d`: those whose own effect it is first, then those that can
 * lead to it as a consequence, each group in the JSON's order.
 */
export function deviationCandidates(profile: L0Profile, d: Pick<Divergence, 'rule' | 'field'>): KvmDeviationId[] {
  const on = KVM_OBSERVABLE_DEVIATIONS.filter((id) => profile.deviations.has(id));
  const direct = on.filter((id) => DEVIATION_EFFECTS[id].some((e) => !e.consequence && matches(e, d)));
  const later = on.filter((id) => !direct.includes(id) && DEVIATION_EFFECTS[id].some((e) => e.consequence && matches(e, d)));
  return [...direct, ...later];
}

/** The same divergence in two runs: same rule, place and field (values may differ between runs). */
export function sameDivergence(a: Divergence, b: Divergence): boolean {
  return a.rule === b.rule && a.event === b.event && a.field === b.field && a.kind === b.kind;
}

/** `d` re-labelled as caused by deviation `id`. */
export function asExpectedDeviation(d: Divergence, id: string): Divergence {
  return { ...d, kind: 'expected-deviation', deviation: id, explanation: `${d.explanation} (expected: profile deviation ${id})` };
}
