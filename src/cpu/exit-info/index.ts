// Public surface of the exit-information codecs (exit reason, interruption information, qualifications,
// instruction information). Importers, the VM-exit path and the interpreter use only these names.
// Must not: contain logic. SDM Vol. 3C 27.2.
export * from './common.js';
export * from './exit-reason.js';
export * from './interruption-info.js';
export * from './qualifications.js';
export * from './instruction-info.js';
export * from './exit-record.js';
