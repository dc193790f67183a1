// Public surface of L0's vmcs12 handling: nested-VMX state, the emulated VMX instructions of L1, and hardware VMCS
// shadowing for L1. Must not: add behaviour; re-exports only. Reference: nested-vmx.md §2.3, §10.1.
export * from './state.js';
export * from './emulate.js';
export * from './shadow.js';
