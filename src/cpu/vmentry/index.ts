// VM-entry checks: runs the SDM procedures in the SDM's order over a VMCS state and reports, for each failure, the
// one catalogue check it breaks (schemas/vmx/entry-checks.json), plus the checks that could not be decided.
// Must not: change any state, read a clock, or guess a value a dump does not show (such checks are "not evaluated").
// SDM Vol. 3C 26.2 (controls, host state: VMfailValid 7/8), 26.3 (guest state: exit 33), 26.4 (MSR loading: exit 34).
import { ENTRY_CHECKS, type EntryCheckId } from '../generated/entry-checks.js';
import { slotFields, Vmcs, VMCS_SLOT_COUNT, type VmcsReader } from '../vmcs.js';
import { CHECK_COUNT, CheckContext } from './context.js';
import { checkVmEntryControlFields, checkVmExecutionControlFields, checkVmExitControlFields } from './controls.js';
import { checkGuestNonRegisterState, loadGuestPdptes } from './guest-non-register.js';
import { checkGuestSegmentRegisters } from './guest-segments.js';
import {
  checkGuestControlRegistersDebugRegistersAndMsrs, checkGuestDescriptorTableRegisters, checkGuestRipAndRflags,
} from './guest-state.js';
import { checkHostAddressSpaceSize, checkHostControlRegistersAndMsrs, checkHostSegmentAndDescriptorTableRegisters } from './host-state.js';
import { loadGuestMsrs } from './msr-load.js';
import type { EntryCheckMode, EntryCheckReport, EntryEnvironment, VmEntryVerdict } from './types.js';

export type {
  EntryCheckClass, EntryCheckFailure, EntryCheckId, EntryCheckMode, EntryCheckReport, EntryCheckStage, EntryEnvironment,
  VmEntryVerdict,
} from './types.js';
export { CheckContext } from './context.js';
export {
  checkVmExecutionControlFields, checkVmExitControlFields, checkVmEntryControlFields,
  checkHostControlRegistersAndMsrs, checkHostSegmentAndDescriptorTableRegisters, checkHostAddressSpaceSize,
  checkGuestControlRegistersDebugRegistersAndMsrs, checkGuestSegmentRegisters, checkGuestDescriptorTableRegisters,
  checkGuestRipAndRflags, checkGuestNonRegisterState, loadGuestPdptes, loadGuestMsrs,
};
export { validVmcs } from './valid-state.js';

/** The stages in the order the processor performs them (SDM 26.2.1.1 → 26.4). */
export const ENTRY_STAGES: readonly ((c: CheckContext) => void)[] = [
  checkVmExecutionControlFields,
  checkVmExitControlFields,
  checkVmEntryControlFields,
  checkHostControlRegistersAndMsrs,
  checkHostSegmentAndDescriptorTableRegisters,
  checkHostAddressSpaceSize,
  checkGuestControlRegistersDebugRegistersAndMsrs,
  checkGuestSegmentRegisters,
  checkGuestDescriptorTableRegisters,
  checkGuestRipAndRflags,
  checkGuestNonRegisterState,
  loadGuestPdptes,
  loadGuestMsrs,
];

/** ENTRY_STAGES, called directly (monomorphic call sites) because this runs on every emulated VMLAUNCH. */
function runStages(c: CheckContext): void {
  checkVmExecutionControlFields(c); if (c.stopped) return;
  checkVmExitControlFields(c); if (c.stopped) return;
  checkVmEntryControlFields(c); if (c.stopped) return;
  checkHostControlRegistersAndMsrs(c); if (c.stopped) return;
  checkHostSegmentAndDescriptorTableRegisters(c); if (c.stopped) return;
  checkHostAddressSpaceSize(c); if (c.stopped) return;
  checkGuestControlRegistersDebugRegistersAndMsrs(c); if (c.stopped) return;
  checkGuestSegmentRegisters(c); if (c.stopped) return;
  checkGuestDescriptorTableRegisters(c); if (c.stopped) return;
  checkGuestRipAndRflags(c); if (c.stopped) return;
  checkGuestNonRegisterState(c); if (c.stopped) return;
  loadGuestPdptes(c); if (c.stopped) return;
  loadGuestMsrs(c);
}

const shared = new CheckContext();
let sharedBusy = false;

/** Copy what a generic reader (a dump, a PartialVmcs) shows into word pairs plus a presence map. */
function snapshot(reader: VmcsReader): { words: Uint32Array; present: Uint8Array } {
  const words = new Uint32Array(VMCS_SLOT_COUNT * 2), present = new Uint8Array(VMCS_SLOT_COUNT);
  const fields = slotFields();
  for (let s = 0; s < fields.length; s++) {
    const v = reader.read(fields[s]!.encoding);
    if (v === undefined) continue;
    const u = BigInt.asUintN(64, v);
    words[2 * s] = Number(u & 0xffff_ffffn);
    words[2 * s + 1] = Number(u >> 32n);
    present[s] = 1;
  }
  return { words, present };
}

/**
 * Run the VM-entry checks. 'first' stops at the first failure (what VMLAUNCH/VMRESUME does); 'all' evaluates every
 * check and lists every failure in the order the processor meets them (what `turtles check-entry` reports). Within a
 * stage the SDM only fixes the class of the outcome, not the order; the order here is the catalogue's.
 */
export function runEntryChecks(vmcs: VmcsReader, env: EntryEnvironment, mode: EntryCheckMode): EntryCheckReport {
  const c = sharedBusy ? new CheckContext() : shared;
  const owns = c === shared;
  if (owns) sharedBusy = true;
  try {
    if (vmcs instanceof Vmcs) c.reset(vmcs.words, null, env, mode === 'all');
    else {
      const snap = snapshot(vmcs);
      c.reset(snap.words, snap.present, env, mode === 'all');
    }
    runStages(c);
    const ne = c.notEvaluated;
    const notEvaluated: EntryCheckId[] = [];
    let decided: number;
    if (ne === null) decided = c.stopped ? c.stopIndex + 1 : CHECK_COUNT;
    else {
      let before = 0;
      for (const k of ne) {
        notEvaluated.push(ENTRY_CHECKS[k]!.id as EntryCheckId);
        if (!c.stopped || k <= c.stopIndex) before++;
      }
      decided = (c.stopped ? c.stopIndex + 1 : CHECK_COUNT) - before;
    }
    return { failures: c.failures ?? [], notEvaluated, evaluatedCount: decided };
  } finally {
    if (owns) sharedBusy = false;
  }
}

/** What the processor does with the first failure: VMfailValid(7/8), or a VM-entry failure exit 33/34. */
export function verdictOf(report: EntryCheckReport): VmEntryVerdict {
  const failure = report.failures[0];
  if (failure === undefined) return { kind: 'pass' };
  switch (failure.class) {
    case 'vmfail-valid-7': return { kind: 'vmfail', error: 7, failure };
    case 'vmfail-valid-8': return { kind: 'vmfail', error: 8, failure };
    case 'exit-33': return { kind: 'entry-failure', exitReason: 33, qualification: failure.qualification ?? 0n, failure };
    case 'exit-34': {
      if (failure.qualification === null) throw new Error(`turtles bug: MSR-load failure ${failure.id} without an entry index`);
      return { kind: 'entry-failure', exitReason: 34, qualification: failure.qualification, failure };
    }
  }
}
