// Public surface of nested EPT: composition (EPT12 ∘ EPT01), the EPT02 manager with its invalidation rules, EPT01 policy
// and host page pool, L1 memory through EPT01, and side-effect-free inspection (triage walk, EPT02 audit).
// Must not: add behaviour; re-exports only. Reference: nested-vmx.md §8.6–8.8.
export * from './types.js';
export * from './compose.js';
export * from './ept02.js';
export * from './ept01.js';
export * from './l1-memory.js';
export * from './inspect.js';
export * from './fill.js';
