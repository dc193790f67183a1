// Public surface of the EPT model: typed EPT handles, the walker, the violation qualification codec, memory types
// and the table builder. Must not: add behaviour; it only re-exports. SDM Vol. 3C 28.2; reference §8.
export * from './types.js';
export * from './entry.js';
export * from './eptp.js';
export * from './qualification.js';
export * from './walker.js';
export * from './memory-type.js';
export * from './builder.js';
