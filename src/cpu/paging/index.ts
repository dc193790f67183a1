// Public surface of guest paging: modes and types, the walker, rights checks, PAE PDPTE loading, the EPT-backed
// access callbacks and the page-table builder. Must not: add behaviour; it only re-exports. SDM Vol. 3A ch. 4.
export * from './types.js';
export * from './permissions.js';
export * from './walker.js';
export * from './pdpte.js';
export * from './under-ept.js';
export * from './builder.js';
