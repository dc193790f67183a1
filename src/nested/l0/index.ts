// Public surface of L0: its replaceable parts, the L0 itself on the model hardware, the nested VM entry/exit runner,
// the nested records, and L0's host layout. Must not: add behaviour; re-exports only. Reference: nested-vmx.md §5–§8.
export * from './parts.js';
export * from './records.js';
export { L0, type L0MsrFilter, type L0Options } from './l0.js';
export { NestedRunner, type LaunchReport, type NestedRunnerOptions } from './nested-run.js';
export { exitInfoFromHardware, nestedEntryFailure, nestedVmExit, type ExitToL1, type NestedExitContext } from './nested-exit.js';
export { handleL0Exit, type HandlerVerdict } from './l2-handlers.js';
export { L0Layout, HostPort, VMX_MSR_FIRST, VMX_MSR_LAST, copyUnswitched, writeGuest, type Hardware } from './hardware.js';
export { L1Port, L1MemoryInverse } from './l1-port.js';
