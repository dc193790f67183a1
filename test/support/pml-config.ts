// The L1 configuration the PML tests share (reference machine and nested machine): EPT with accessed/dirty flags, HLT
// exiting, and raw VMWRITEs that turn "enable PML" on with a log page and a chosen index (the built-in L1's own log
// at PML_LOG is replaced). Must not: run anything; tests decide which machine runs it.
import { Primary, Secondary } from '../../src/cpu/generated/controls.js';
import { Field } from '../../src/cpu/generated/vmcs-fields.js';
import type { L1Config } from '../../src/cpu/l1/config.js';

/** L1-physical page the tests' PML log lives at. */
export const PML_PAGE = 0x0105_0000n;
export const STOP_AT_HLT = { reason: 12, actions: [{ kind: 'stop' as const }] };

export function pmlConfig(code: Uint8Array, index: bigint, extra: Partial<L1Config> = {}): L1Config {
  return {
    l2: { mode: 'long64', code },
    controls: { primary: Primary.HLT_EXITING },
    ept: { accessedDirty: true },
    vmcsWrites: [
      [Field.SECONDARY_VM_EXEC_CONTROL, BigInt(Secondary.ENABLE_EPT | Secondary.ENABLE_PML)],
      [Field.PML_ADDRESS, PML_PAGE],
      [Field.GUEST_PML_INDEX, index],
    ],
    policy: { rules: [STOP_AT_HLT] },
    ...extra,
  };
}
