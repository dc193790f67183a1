// The PDPTEs L0 puts into vmcs02 for a PAE-paging L2 that vmcs12 runs without EPT (L0.shadowPdptrs of merge.guest-pdptr).
// vmcs02 runs with EPT01, so the CPU takes them from GUEST_PDPTRn; a CPU running vmcs12 would load them from L1 memory
// at GUEST_CR3[31:5] (SDM 26.3.1.6, 26.3.2.4). Must not: validate them (the entry-check part already did) or write vmcs12.
import type { LoadedGuest } from '../../cpu/vmx/guest-state.js';
import { Secondary } from '../../cpu/generated/controls.js';
import { controlWord } from '../reflect/control-bits.js';
import type { Vmcs } from '../../cpu/vmcs.js';

/**
 * The four PDPTEs the emulated entry loaded from L1 memory, or null when vmcs12 has EPT (the merge then takes vmcs12's
 * GUEST_PDPTRn, SDM 26.3.2.4) or L2 does not use PAE paging outside IA-32e mode (the fields are unused).
 */
export function shadowPdptesForEntry(v12: Vmcs, loaded: Pick<LoadedGuest, 'pdptes'>): readonly bigint[] | null {
  if (controlWord(v12, 'secondary') & Secondary.ENABLE_EPT) return null;
  return loaded.pdptes && loaded.pdptes.length === 4 ? [...loaded.pdptes] : null;
}
