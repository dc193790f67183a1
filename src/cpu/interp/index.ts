// Public surface of the L2 interpreter: decoding, the instruction table and its known gaps, the interpreter,
// guest-memory adapters, the deterministic platform and the L2 environment builder. Re-exports only.
// Must not: hold logic. SDM Vol. 2 (instructions), Vol. 3A ch. 6 (events), Vol. 3C ch. 25 (non-root).
export * from './types.js';
export * from './decoded.js';
export { DecodeCache, decodeOne, mnemonicName, type DecodeResult } from './decode.js';
export { effectiveAddress, linearAddress, addrMask } from './ea.js';
export * from './alu.js';
export * from './platform.js';
export * from './runtime.js';
export { Interpreter, type InterpreterOptions, type RaisedEvent } from './interpreter.js';
export { INSTRUCTION_TABLE, undefinedFlagsOf, type InstrRow, type Group, type UndefinedFlags } from './table.js';
export { KNOWN_GAPS, isKnownGap, claimedMnemonics, exitOnlyMnemonics, type GapEntry } from './coverage.js';
export { DirectGuestMemory, EptGuestMemory, eptFaultExit, type GuestMemoryOptions } from './guest-memory.js';
export {
  buildL2Environment, handlerAddress, isLongMode, L2_MODES, L2Layout, L2Selectors, modeBitness, needsUnrestrictedGuest, type L2Mode, type L2EnvOptions,
} from './l2-env.js';
export { guestTsc, CR4_SUPPORTED, XCR0_SUPPORTED } from './handlers-system.js';
