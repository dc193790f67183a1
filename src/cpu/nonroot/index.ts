// Public surface of the single-level VMX non-root rule set (what a CPU running a VMCS does with an
// instruction or event): re-exports only. Must not: hold logic. SDM Vol. 3C ch. 25, 27.2.
export * from './types.js';
export * from './controls.js';
export * from './common.js';
export * from './instruction-info.js';
export * from './rules-cr-dr.js';
export * from './rules-io-msr.js';
export * from './rules-instructions.js';
export * from './rules-events.js';
export * from './exit-for.js';
