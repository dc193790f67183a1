// Public surface of the test-program assembler: parse + encode + disassembly check. Re-exports only.
// Must not: hold logic. SDM Vol. 2 ch. 2.
export { assemble, assembleOrThrow, asm16, asm32, asm64, type AsmError, type AsmResult, type Bitness, type ListingLine } from './assemble.js';
export { parseProgram, type AsmLine, type AsmOperand } from './parse.js';
