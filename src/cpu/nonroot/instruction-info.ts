// Encoders for the VM-exit instruction-information field and for the "displacement" exit qualification
// of instructions with a memory operand, built from the decoded instruction (never from guesses).
// Undefined bits are written as 0. Must not: decide whether an exit happens. SDM Vol. 3C 27.2.1, 27.2.5
// (tables 27-8 … 27-15), reference §2.5.
import type { CpuState } from '../state.js';
import { NO_REG, RIP_BASE, type DecodedInstr, type Operand } from '../interp/decoded.js';
import {
  addressSizeCode as codeOfBits, encodeGdtrIdtrInfo, encodeInsOutsInfo, encodeInvalidationInfo, encodeLdtrTrInfo,
  encodeRdrandRdseedInfo, encodeVmreadVmwriteInfo, encodeVmxPointerInfo, type GdtrIdtrInstruction, type LdtrTrInstruction,
  type MemoryOperandInfo,
} from '../exit-info/instruction-info.js';

const SCALE_BITS: Record<number, number> = { 1: 0, 2: 1, 4: 2, 8: 3 };

/** Address-size code: 0 = 16-bit, 1 = 32-bit, 2 = 64-bit. */
export function addrSizeCode(addrSize: number): number {
  return codeOfBits(addrSize === 8 ? 64 : addrSize === 4 ? 32 : 16);
}

/**
 * The memory-operand sub-fields of the decoded instruction (scaling, address size, segment, index, base).
 * RIP-relative operands have no base register (base invalid). Undefined sub-fields are 0.
 */
export function memoryOperandFields(instr: DecodedInstr): MemoryOperandInfo {
  const m = instr.mem;
  if (!m) throw new Error(`turtles bug: ${instr.name} has no memory operand`);
  const noIndex = m.index === NO_REG;
  const noBase = m.base === NO_REG || m.base === RIP_BASE;
  return {
    scaling: noIndex ? 0 : SCALE_BITS[m.scale]!,
    addressSize: addrSizeCode(instr.addrSize),
    segment: m.seg & 7,
    indexReg: noIndex ? 0 : m.index & 15,
    indexInvalid: noIndex,
    baseReg: noBase ? 0 : m.base & 15,
    baseInvalid: noBase,
  };
}

const NO_MEM: MemoryOperandInfo = { scaling: 0, addressSize: 0, segment: 0, indexReg: 0, indexInvalid: false, baseReg: 0, baseInvalid: false };

function gpr(o: Operand | undefined): number {
  if (!o || o.kind !== 'reg') throw new Error('turtles bug: expected a general-purpose register operand');
  return o.reg;
}

/**
 * The exit qualification for exits whose qualification is "the displacement" (VMX instructions, descriptor
 * tables, INVEPT/INVVPID/INVPCID, XSAVES/XRSTORS): the displacement field sign-extended to 64 bits, 0 for a
 * register operand or no displacement, and for RIP-relative operands displacement + RIP of the next
 * instruction (SDM 27.2.1). Bits above the address size are undefined there; this model keeps the full sign
 * extension (Bochs truncates to the address size outside 64-bit mode; KVM sign-extends from it on reading).
 */
export function displacementQualification(instr: DecodedInstr, state: CpuState): bigint {
  const m = instr.mem;
  if (!m) return 0n;
  if (m.base === RIP_BASE) return BigInt.asUintN(64, m.disp + state.rip + BigInt(instr.length));
  return m.disp;
}

/** VMCLEAR, VMPTRLD, VMPTRST, VMXON, XSAVES, XRSTORS (SDM table 27-13): memory operand only, bit 10 = 0. */
export function vmxMemInfo(instr: DecodedInstr): number {
  return encodeVmxPointerInfo({ ...memoryOperandFields(instr), undefinedBits: 0 });
}

/** VMREAD (r/m ← field named by reg) and VMWRITE (field named by reg ← r/m) (SDM table 27-14). */
export function vmreadWriteInfo(instr: DecodedInstr, isWrite: boolean): number {
  const rm = isWrite ? instr.ops[1] : instr.ops[0];
  const encodingReg = isWrite ? instr.ops[0] : instr.ops[1];
  const register = rm?.kind === 'reg';
  return encodeVmreadVmwriteInfo({
    ...(register ? NO_MEM : memoryOperandFields(instr)),
    reg1: register ? rm.reg & 15 : 0,
    register,
    reg2: gpr(encodingReg) & 15,
    undefinedBits: 0,
  });
}

/** INVEPT, INVVPID, INVPCID (SDM table 27-9): memory operand, reg2 = the type register. */
export function invInfo(instr: DecodedInstr): number {
  return encodeInvalidationInfo({ ...memoryOperandFields(instr), reg2: gpr(instr.ops[0]) & 15, undefinedBits: 0 });
}

/**
 * LGDT/LIDT/SGDT/SIDT: memory operand, operand size in bit 11 (0 = 16-bit, 1 = 32-bit; undefined and 0 in
 * 64-bit mode), identity 29:28.
 */
export function gdtrIdtrInfo(instr: DecodedInstr): number {
  let size32 = false;
  if (instr.bitness !== 64) {
    const prefix66 = hasPrefix66(instr);
    size32 = instr.bitness === 32 ? !prefix66 : prefix66;
  }
  return encodeGdtrIdtrInfo({ ...memoryOperandFields(instr), operandSize32: size32, instruction: instr.name as GdtrIdtrInstruction, undefinedBits: 0 });
}

/** LLDT/LTR/SLDT/STR: register (reg1 6:3, bit 10 = 1) or memory operand; identity 29:28. */
export function ldtrTrInfo(instr: DecodedInstr): number {
  const o = instr.ops[0];
  const register = o?.kind === 'reg';
  return encodeLdtrTrInfo({
    ...(register ? NO_MEM : memoryOperandFields(instr)),
    reg1: register ? o.reg & 15 : 0,
    register,
    instruction: instr.name as LdtrTrInstruction,
    undefinedBits: 0,
  });
}

/** RDRAND/RDSEED (table 27-12): destination register 6:3, operand size 12:11 (0 = 16, 1 = 32, 2 = 64). */
export function rdrandInfo(instr: DecodedInstr): number {
  const o = instr.ops[0];
  const size = o?.kind === 'reg' ? o.size : 4;
  return encodeRdrandRdseedInfo({ register: gpr(o) & 15, operandSize: size === 8 ? 2 : size === 4 ? 1 : 0, undefinedBits: 0 });
}

/** UMWAIT/TPAUSE (table 27-15; no exit-info codec): the source register in 6:3. */
export function waitInfo(instr: DecodedInstr): number {
  return ((gpr(instr.ops[0]) & 15) << 3) >>> 0;
}

/** LOADIWKEY (no exit-info codec): XMM register operands, reg1 6:3 and reg2 31:28. */
export function loadiwkeyInfo(instr: DecodedInstr): number {
  const a = instr.ops[0];
  const b = instr.ops[1];
  const r1 = a?.kind === 'other' ? a.index : 0;
  const r2 = b?.kind === 'other' ? b.index : 0;
  return (((r1 & 15) << 3) | ((r2 & 15) << 28)) >>> 0;
}

/** INS/OUTS (table 27-8): address size 9:7; segment 17:15 for OUTS only (undefined, 0, for INS). */
export function insOutsInfo(instr: DecodedInstr, isOuts: boolean): number {
  return encodeInsOutsInfo({ addressSize: addrSizeCode(instr.addrSize), segment: isOuts ? instr.strSrcSeg & 7 : 0, undefinedBits: 0 });
}

function hasPrefix66(instr: DecodedInstr): boolean {
  for (const b of instr.bytes) {
    if (b === 0x66) return true;
    if (!(b === 0x67 || b === 0xf0 || b === 0xf2 || b === 0xf3 || b === 0x26 || b === 0x2e || b === 0x36 || b === 0x3e || b === 0x64 || b === 0x65)) return false;
  }
  return false;
}
