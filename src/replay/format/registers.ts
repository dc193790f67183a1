// Register ids used by trace records (L2Step and RegisterState): 0–15 are the GPRs in the x86 encoding order of
// src/cpu/state.ts `Reg` (RAX, RCX, RDX, RBX, RSP, RBP, RSI, RDI, R8–R15), then RIP, RFLAGS and the control registers.
// Ids are part of the trace format: never renumber, only append.
// Must not: hold register state.
import { Reg, REG_NAMES } from '../../cpu/state.js';

export const RegId = {
  ...Reg,
  RIP: 16, RFLAGS: 17, CR0: 18, CR2: 19, CR3: 20, CR4: 21, CR8: 22, EFER: 23,
  DR0: 24, DR1: 25, DR2: 26, DR3: 27, DR6: 28, DR7: 29,
} as const;
export type RegIdName = keyof typeof RegId;

export const REGISTER_ID_LIMIT = 30;

const NAMES: readonly string[] = [
  ...REG_NAMES, 'rip', 'rflags', 'cr0', 'cr2', 'cr3', 'cr4', 'cr8', 'efer', 'dr0', 'dr1', 'dr2', 'dr3', 'dr6', 'dr7',
];

/** Lower-case name of a register id, or `reg<N>` for an id this version does not know. */
export function registerName(id: number): string {
  return NAMES[id] ?? `reg${id}`;
}

export function isKnownRegisterId(id: number): boolean {
  return Number.isInteger(id) && id >= 0 && id < REGISTER_ID_LIMIT;
}
