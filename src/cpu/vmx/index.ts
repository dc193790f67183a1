// Public surface of the single-level VMX processor: the processor, its outcome values, the physical-memory port,
// memory-operand helpers, the VMCS region layout, VM-exit information input, MSR-list and abort constants.
// Must not: contain logic. SDM Vol. 3C ch. 24 (VMCS), 26 (entry), 27 (exit), 30 (instructions).
export { INVALID_VMCS_POINTER, VmxProcessor, type Operand, type VmxProcessorOptions } from './processor.js';
export {
  GP0, SS0, UD, VMX_RESULT_FLAGS, Vector, flagsFailInvalid, flagsFailValid, flagsPattern, flagsSucceed,
  type EntryFailureExitOutcome, type InjectedEvent, type TlbInvalidation, type VmEntryOutcome, type VmExitOutcome,
  type VmxAbortOutcome, type VmxFault, type VmxInstrOutcome,
} from './outcome.js';
export { readPhys, readPhys32, writePhys, type VmxPhysicalAccess } from './physical.js';
export {
  linearAddressOf, readMemoryOperand, writeMemoryOperand, type AccessKind, type MemoryOperand, type OperandSize, type TranslateFn,
} from './operands.js';
export { REGION_ABORT_OFFSET, REGION_REVISION_OFFSET, VmcsRegionLayout, regionLayout } from './vmcs-region.js';
export { recordEntryFailure, recordExitInformation, type VmExitInfo } from './exit-fields.js';
export { VmxAbort, loadHostState, type HostLoadResult } from './host-state.js';
export { GUEST_SEGMENT_FIELDS, loadGuestState, saveGuestState, secondaryControls, type GuestSaveExtras, type LoadedGuest } from './guest-state.js';
export {
  loadMsrList, msrLoadRejection, readMsr, readMsrEntry, storeMsrList, writeMsr, type MsrAccessRules, type MsrEntry, type MsrListResult,
} from './msr-list.js';
export { defaultEntryChecker, type EntryChecker, type EntryEnvironment, type EntryVerdict } from './entry-port.js';
