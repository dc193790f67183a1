// The seam between the VMX processor and the VM-entry check engine: the processor asks one question ("does this
// VMCS pass, and if not, which outcome class and check?") so tests and the nested L0 can substitute an engine.
// Must not: implement checks; it only adapts src/cpu/vmentry's report to the processor's verdict shape.
// SDM Vol. 3C 26.2-26.4 (checks in 'first' order), reference §3.0 (outcome classes).
import { runEntryChecks, verdictOf } from '../vmentry/index.js';
import type { EntryEnvironment } from '../vmentry/types.js';
import type { Vmcs } from '../vmcs.js';

export type { EntryEnvironment } from '../vmentry/types.js';

export type EntryVerdict =
  | { readonly kind: 'pass' }
  | { readonly kind: 'vmfail'; readonly error: 7 | 8; readonly checkId: string }
  | { readonly kind: 'entry-failure'; readonly exitReason: 33 | 34; readonly qualification: bigint; readonly checkId: string };

export type EntryChecker = (vmcs: Vmcs, env: EntryEnvironment) => EntryVerdict;

/** The architectural engine, stopping at the first failing check. */
export const defaultEntryChecker: EntryChecker = (vmcs, env) => {
  const v = verdictOf(runEntryChecks(vmcs, env, 'first'));
  if (v.kind === 'pass') return v;
  if (v.kind === 'vmfail') return { kind: 'vmfail', error: v.error, checkId: v.failure.id };
  return { kind: 'entry-failure', exitReason: v.exitReason, qualification: v.qualification, checkId: v.failure.id };
};
