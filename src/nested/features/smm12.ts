// SMIs that arrive while L2 runs: L0 handles them itself (no SMM VM exit 5/6 reaches L1, N16) with the default
// treatment, and says whether its SMM keeps a pending MTF VM exit across SMI/RSM as a CPU does (SDM Vol. 3C 34.14.4).
// Must not: model SMM or its handler, or change anything but the interpreter's SMM setting for the run of L2.
import type { PendingSignals } from '../../cpu/machine/signals.js';
import { Deviation, deviates, type L0Profile } from '../profile.js';

/**
 * Configure `signals` for a run of L2 under `profile`. KVM forces the vCPU out of L2 to enter SMM and re-enters L2
 * on RSM without saving a pending MTF VM exit (kvm.mtf-lost-across-smm): L2 then runs one more instruction before
 * the MTF exit. An sdm L0 keeps it, as RSM on a CPU does.
 */
export function configureL2Smm(signals: PendingSignals, profile: L0Profile): void {
  signals.smmLosesPendingMtf = deviates(profile, Deviation.MTF_LOST_ACROSS_SMM);
}
