// L0 behaviour profiles: 'sdm' (L0 behaves exactly as a single-level CPU would for L1) and 'kvm' (KVM's known,
// observable deviations of reference §9.3, each switchable by its stable id from schemas/nested/kvm-deviations.json).
// Must not: apply any behaviour itself; code that deviates asks `profile.deviations.has(id)`.
// Reference: shared/reference/nested-vmx.md §9.1 (equivalence), §9.3 (N1–N24).

/** Every deviation id of kvm-deviations.json whose `observable` is true (a test keeps this list equal to the JSON). */
export const KVM_OBSERVABLE_DEVIATIONS = [
  'kvm.abort-as-triple-fault',
  'kvm.unbacked-vmcs12-pages',
  'kvm.ept-violation-qual-basic',
  'kvm.emulated-ept-fault-bit8',
  'kvm.preemption-timer-not-saved-on-pending-entry',
  'kvm.seamcall-tdcall-ud',
  'kvm.late-hardware-entry-checks',
  'kvm.vmwrite-ar-bytes-masked',
  'kvm.debugctl-bits-dropped',
  'kvm.msr-store-x2apic-only-when-enabled',
  'kvm.msr-access-filter',
  'kvm.host-null-selector-usable',
  'kvm.host-cr0-full-load',
  'kvm.mtf-lost-across-smm',
  'kvm.posted-interrupt-deferred',
  'kvm.exception-error-code-16bit',
  'kvm.pending-db-mtf-priority',
  'kvm.guest-state-needs-unrestricted-guest',
  'kvm.guest-efer-lme-from-ia32e-mode',
  'kvm.field-existence-ignores-features',
  'kvm.guest-cr0-unloaded-bits-from-vmcs12',
] as const;

export type KvmDeviationId = (typeof KVM_OBSERVABLE_DEVIATIONS)[number];

/** Named constants so call sites cannot misspell an id (each value is checked against the JSON by a test). */
export const Deviation = {
  ABORT_AS_TRIPLE_FAULT: 'kvm.abort-as-triple-fault',
  UNBACKED_VMCS12_PAGES: 'kvm.unbacked-vmcs12-pages',
  EPT_VIOLATION_QUAL_BASIC: 'kvm.ept-violation-qual-basic',
  EMULATED_EPT_FAULT_BIT8: 'kvm.emulated-ept-fault-bit8',
  PREEMPTION_TIMER_NOT_SAVED_ON_PENDING_ENTRY: 'kvm.preemption-timer-not-saved-on-pending-entry',
  SEAMCALL_TDCALL_UD: 'kvm.seamcall-tdcall-ud',
  LATE_HARDWARE_ENTRY_CHECKS: 'kvm.late-hardware-entry-checks',
  VMWRITE_AR_BYTES_MASKED: 'kvm.vmwrite-ar-bytes-masked',
  DEBUGCTL_BITS_DROPPED: 'kvm.debugctl-bits-dropped',
  MSR_STORE_X2APIC_ONLY_WHEN_ENABLED: 'kvm.msr-store-x2apic-only-when-enabled',
  MSR_ACCESS_FILTER: 'kvm.msr-access-filter',
  HOST_NULL_SELECTOR_USABLE: 'kvm.host-null-selector-usable',
  HOST_CR0_FULL_LOAD: 'kvm.host-cr0-full-load',
  MTF_LOST_ACROSS_SMM: 'kvm.mtf-lost-across-smm',
  POSTED_INTERRUPT_DEFERRED: 'kvm.posted-interrupt-deferred',
  EXCEPTION_ERROR_CODE_16BIT: 'kvm.exception-error-code-16bit',
  PENDING_DB_MTF_PRIORITY: 'kvm.pending-db-mtf-priority',
  GUEST_STATE_NEEDS_UNRESTRICTED_GUEST: 'kvm.guest-state-needs-unrestricted-guest',
  GUEST_EFER_LME_FROM_IA32E_MODE: 'kvm.guest-efer-lme-from-ia32e-mode',
  FIELD_EXISTENCE_IGNORES_FEATURES: 'kvm.field-existence-ignores-features',
  GUEST_CR0_UNLOADED_BITS_FROM_VMCS12: 'kvm.guest-cr0-unloaded-bits-from-vmcs12',
} as const satisfies Record<string, KvmDeviationId>;

export interface L0Profile {
  readonly name: 'sdm' | 'kvm';
  readonly deviations: ReadonlySet<string>;
}

/** L0 that is indistinguishable from hardware: no deviation applies. */
export function sdmProfile(): L0Profile {
  return { name: 'sdm', deviations: new Set<string>() };
}

export interface KvmProfileOptions {
  /** Deviations to switch off (e.g. to isolate one behaviour in a test or a replay). */
  readonly without?: readonly KvmDeviationId[];
  /** When given, only these deviations are on (`without` still applies). */
  readonly only?: readonly KvmDeviationId[];
}

/** KVM as L0: every observable deviation on unless switched off. Unknown ids are a turtles bug. */
export function kvmProfile(options: KvmProfileOptions = {}): L0Profile {
  const known = new Set<string>(KVM_OBSERVABLE_DEVIATIONS);
  for (const id of [...(options.without ?? []), ...(options.only ?? [])]) {
    if (!known.has(id)) throw new Error(`turtles bug: unknown KVM deviation id ${id}`);
  }
  const base: readonly string[] = options.only ?? KVM_OBSERVABLE_DEVIATIONS;
  const off = new Set<string>(options.without ?? []);
  return { name: 'kvm', deviations: new Set(base.filter((id) => !off.has(id))) };
}

/** True when `profile` applies deviation `id` (the one way call sites ask). */
export function deviates(profile: L0Profile, id: KvmDeviationId): boolean {
  return profile.deviations.has(id);
}
