// The interpreter's own view of one decoded instruction: plain JS data copied once out of iced-x86's WASM
// objects, so execution and the non-root exit rules never call into WASM on the hot path.
// Must not: execute anything or consult CPU state; operand values are read by the executor.
// SDM Vol. 2 ch. 2 (instruction format: prefixes, ModR/M, SIB, displacement, immediate).

/** GPR index (Reg.RAX … Reg.R15) used as the base of RIP-relative operands. */
export const RIP_BASE = 16;
/** No base / no index register. */
export const NO_REG = -1;

export type OpSize = 1 | 2 | 4 | 8;
export type AddrSize = 2 | 4 | 8;

/** An explicit memory operand (ModR/M or moffs form). */
export interface MemRef {
  /** Effective segment (SegIndex) after any override prefix. */
  readonly seg: number;
  /** Base GPR index, RIP_BASE for RIP-relative, NO_REG for none. */
  readonly base: number;
  /** Index GPR index or NO_REG. */
  readonly index: number;
  readonly scale: 1 | 2 | 4 | 8;
  /** The displacement field as encoded, sign-extended to 64 bits (0 when the encoding has none). */
  readonly disp: bigint;
  /** Bytes accessed (0 when the operand is an address only, e.g. LEA/INVLPG). */
  readonly size: number;
}

export type Operand =
  | { readonly kind: 'reg'; readonly reg: number; readonly size: OpSize; readonly high8: boolean }
  | { readonly kind: 'sreg'; readonly seg: number }
  | { readonly kind: 'cr'; readonly n: number }
  | { readonly kind: 'dr'; readonly n: number }
  | { readonly kind: 'mem' }
  /** Immediate as iced decodes it: already sign-extended to the operand size where the encoding says so; unsigned bits. */
  | { readonly kind: 'imm'; readonly value: bigint; readonly size: OpSize }
  | { readonly kind: 'branch'; readonly target: bigint }
  | { readonly kind: 'far'; readonly selector: number; readonly offset: number }
  /** String source DS:rSI (segment overridable). */
  | { readonly kind: 'str-src' }
  /** String destination ES:rDI. */
  | { readonly kind: 'str-dst' }
  /** Register of a class the interpreter does not model (XMM, K, ST, …): `index` within its class (XMM3 → 3), or -1. */
  | { readonly kind: 'other'; readonly index: number };

export type RepKind = 'none' | 'rep' | 'repe' | 'repne';

export interface DecodedInstr {
  /** iced-x86 `Code` value. */
  readonly code: number;
  /** iced-x86 `Mnemonic` value. */
  readonly mnemonic: number;
  /** Lower-case mnemonic name ("mov", "vmread"), the key of the instruction table. */
  readonly name: string;
  readonly length: number;
  /** The instruction bytes (length bytes). */
  readonly bytes: Uint8Array;
  readonly bitness: 16 | 32 | 64;
  readonly ops: readonly Operand[];
  /** Operand-size attribute in bytes of the operation (1 for byte forms). */
  readonly opSize: OpSize;
  /** Address-size attribute in bytes (default for the mode, toggled by 67h). */
  readonly addrSize: AddrSize;
  /** The explicit memory operand, if any. */
  readonly mem: MemRef | null;
  readonly rep: RepKind;
  readonly lock: boolean;
  /** Segment override prefix as SegIndex, or -1. */
  readonly segOverride: number;
  /** True for the string forms (MOVS…OUTS), false for SSE MOVSD/CMPSD etc. */
  readonly isString: boolean;
  /** Default segment of a string source (DS or the override). */
  readonly strSrcSeg: number;
  /** iced-x86 condition code for Jcc/SETcc/CMOVcc/LOOPcc (0 = none). */
  readonly cc: number;
}

/** Operand `i` or a turtles bug. */
export function op(instr: DecodedInstr, i: number): Operand {
  const o = instr.ops[i];
  if (!o) throw new Error(`turtles bug: ${instr.name} has no operand ${i}`);
  return o;
}
