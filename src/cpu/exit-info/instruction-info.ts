// Codecs for the VM-exit instruction-information field (0x440e) in each layout: VMREAD/VMWRITE, VMCLEAR/VMPTRLD/
// VMPTRST/VMXON, INVEPT/INVPCID/INVVPID, LGDT/LIDT/SGDT/SIDT, LLDT/LTR/SLDT/STR, INS/OUTS, RDRAND/RDSEED. "Undefined"
// bits are kept in `undefinedBits` (lossless); "cleared to 0" bits are reported as reserved. Must not: compute
// effective addresses (the L0/interpreter does). SDM Vol. 3C 27.2.5 (Tables 27-8..27-14).
import { type Decoded, field32, flag32, mask32, place32 } from './common.js';

/** Address-size code (bits 9:7) to bits; undefined for the unused codes 3–7. */
export function addressSizeBits(code: number): 16 | 32 | 64 | undefined {
  return code === 0 ? 16 : code === 1 ? 32 : code === 2 ? 64 : undefined;
}

/** Bits to address-size code. */
export function addressSizeCode(bits: 16 | 32 | 64): number {
  return bits === 16 ? 0 : bits === 32 ? 1 : 2;
}

/** The memory-operand sub-fields common to most layouts. Segment uses the SDM order ES,CS,SS,DS,FS,GS (= Seg). */
export interface MemoryOperandInfo {
  /** Bits 1:0: index scaling (0 = ×1 … 3 = ×8). */
  readonly scaling: number;
  /** Bits 9:7: address-size code (see addressSizeBits). */
  readonly addressSize: number;
  /** Bits 17:15. */
  readonly segment: number;
  /** Bits 21:18. */
  readonly indexReg: number;
  /** Bit 22. */
  readonly indexInvalid: boolean;
  /** Bits 26:23. */
  readonly baseReg: number;
  /** Bit 27. */
  readonly baseInvalid: boolean;
}

function encodeMem(x: MemoryOperandInfo): number {
  return (
    place32(x.scaling, 0, 2) |
    place32(x.addressSize, 7, 3) |
    place32(x.segment, 15, 3) |
    place32(x.indexReg, 18, 4) |
    (x.indexInvalid ? 1 << 22 : 0) |
    place32(x.baseReg, 23, 4) |
    (x.baseInvalid ? 1 << 27 : 0)
  );
}

function decodeMem(r: number): MemoryOperandInfo {
  return {
    scaling: field32(r, 0, 2),
    addressSize: field32(r, 7, 3),
    segment: field32(r, 15, 3),
    indexReg: field32(r, 18, 4),
    indexInvalid: flag32(r, 22),
    baseReg: field32(r, 23, 4),
    baseInvalid: flag32(r, 27),
  };
}

/** Unused encodings in the memory-operand sub-fields (checked only where the sub-field is defined). */
function memMalformed(m: MemoryOperandInfo, out: string[]): void {
  if (addressSizeBits(m.addressSize) === undefined) out.push('addressSize');
  if (m.segment > 5) out.push('segment');
}

function finish<T>(value: T, raw: number, undefinedMask: number, reservedMask: number, malformed: string[]): Decoded<T & { undefinedBits: number }, number> {
  return {
    value: { ...value, undefinedBits: (raw & undefinedMask) >>> 0 },
    reserved: (raw & reservedMask) >>> 0,
    malformed,
  };
}

// ---------------------------------------------------------------------------------------------------------------
// VMREAD / VMWRITE (SDM Table 27-14).

export interface VmreadVmwriteInfo extends MemoryOperandInfo {
  /** Bits 6:3: the r/m register when `register` is set. */
  readonly reg1: number;
  /** Bit 10: the r/m operand is a register. */
  readonly register: boolean;
  /** Bits 31:28: the register holding the field encoding. */
  readonly reg2: number;
  /** Raw bits at the always-undefined positions 2 and 14:11. */
  readonly undefinedBits: number;
}

const VMRW_UNDEFINED = (1 << 2) | mask32(14, 11);

export function encodeVmreadVmwriteInfo(x: VmreadVmwriteInfo): number {
  return (encodeMem(x) | place32(x.reg1, 3, 4) | (x.register ? 1 << 10 : 0) | place32(x.reg2, 28, 4) | (x.undefinedBits & VMRW_UNDEFINED)) >>> 0;
}

export function decodeVmreadVmwriteInfo(raw: number): Decoded<VmreadVmwriteInfo, number> {
  const r = raw >>> 0;
  const mem = decodeMem(r);
  const register = flag32(r, 10);
  const malformed: string[] = [];
  if (!register) memMalformed(mem, malformed);
  return finish({ ...mem, reg1: field32(r, 3, 4), register, reg2: field32(r, 28, 4) }, r, VMRW_UNDEFINED, 0, malformed);
}

// ---------------------------------------------------------------------------------------------------------------
// VMCLEAR / VMPTRLD / VMPTRST / VMXON / XRSTORS / XSAVES (SDM Table 27-13): memory operand only.

export interface VmxPointerInfo extends MemoryOperandInfo {
  /** Raw bits at the undefined positions 6:2, 14:11 and 31:28. */
  readonly undefinedBits: number;
}

const PTR_UNDEFINED = mask32(6, 2) | mask32(14, 11) | mask32(31, 28);
const BIT10 = 1 << 10;

export function encodeVmxPointerInfo(x: VmxPointerInfo): number {
  return (encodeMem(x) | (x.undefinedBits & PTR_UNDEFINED)) >>> 0;
}

export function decodeVmxPointerInfo(raw: number): Decoded<VmxPointerInfo, number> {
  const r = raw >>> 0;
  const mem = decodeMem(r);
  const malformed: string[] = [];
  memMalformed(mem, malformed);
  return finish(mem, r, PTR_UNDEFINED, BIT10, malformed);
}

// ---------------------------------------------------------------------------------------------------------------
// INVEPT / INVPCID / INVVPID (SDM Table 27-9).

export interface InvalidationInfo extends MemoryOperandInfo {
  /** Bits 31:28: the register holding the invalidation type. */
  readonly reg2: number;
  /** Raw bits at the undefined positions 6:2 and 14:11. */
  readonly undefinedBits: number;
}

const INV_UNDEFINED = mask32(6, 2) | mask32(14, 11);

export function encodeInvalidationInfo(x: InvalidationInfo): number {
  return (encodeMem(x) | place32(x.reg2, 28, 4) | (x.undefinedBits & INV_UNDEFINED)) >>> 0;
}

export function decodeInvalidationInfo(raw: number): Decoded<InvalidationInfo, number> {
  const r = raw >>> 0;
  const mem = decodeMem(r);
  const malformed: string[] = [];
  memMalformed(mem, malformed);
  return finish({ ...mem, reg2: field32(r, 28, 4) }, r, INV_UNDEFINED, BIT10, malformed);
}

// ---------------------------------------------------------------------------------------------------------------
// LGDT / LIDT / SGDT / SIDT (SDM Table 27-10), exit reason 46.

export type GdtrIdtrInstruction = 'sgdt' | 'sidt' | 'lgdt' | 'lidt';
const GDTR_IDTR: readonly GdtrIdtrInstruction[] = ['sgdt', 'sidt', 'lgdt', 'lidt'];

export interface GdtrIdtrInfo extends MemoryOperandInfo {
  /** Bit 11: operand size 32 (1) or 16 (0); undefined for exits from 64-bit mode. */
  readonly operandSize32: boolean;
  /** Bits 29:28. */
  readonly instruction: GdtrIdtrInstruction;
  /** Raw bits at the undefined positions 6:2, 14:12 and 31:30. */
  readonly undefinedBits: number;
}

const GDTR_UNDEFINED = mask32(6, 2) | mask32(14, 12) | mask32(31, 30);

export function encodeGdtrIdtrInfo(x: GdtrIdtrInfo): number {
  return (
    encodeMem(x) |
    (x.operandSize32 ? 1 << 11 : 0) |
    place32(GDTR_IDTR.indexOf(x.instruction), 28, 2) |
    (x.undefinedBits & GDTR_UNDEFINED)
  ) >>> 0;
}

export function decodeGdtrIdtrInfo(raw: number): Decoded<GdtrIdtrInfo, number> {
  const r = raw >>> 0;
  const mem = decodeMem(r);
  const malformed: string[] = [];
  memMalformed(mem, malformed);
  return finish({ ...mem, operandSize32: flag32(r, 11), instruction: GDTR_IDTR[field32(r, 28, 2)]! }, r, GDTR_UNDEFINED, BIT10, malformed);
}

// ---------------------------------------------------------------------------------------------------------------
// LLDT / LTR / SLDT / STR (SDM Table 27-11), exit reason 47.

export type LdtrTrInstruction = 'sldt' | 'str' | 'lldt' | 'ltr';
const LDTR_TR: readonly LdtrTrInstruction[] = ['sldt', 'str', 'lldt', 'ltr'];

export interface LdtrTrInfo extends MemoryOperandInfo {
  /** Bits 6:3: the operand register when `register` is set. */
  readonly reg1: number;
  /** Bit 10. */
  readonly register: boolean;
  /** Bits 29:28. */
  readonly instruction: LdtrTrInstruction;
  /** Raw bits at the undefined positions 2, 14:11 and 31:30. */
  readonly undefinedBits: number;
}

const LDTR_UNDEFINED = (1 << 2) | mask32(14, 11) | mask32(31, 30);

export function encodeLdtrTrInfo(x: LdtrTrInfo): number {
  return (
    encodeMem(x) |
    place32(x.reg1, 3, 4) |
    (x.register ? 1 << 10 : 0) |
    place32(LDTR_TR.indexOf(x.instruction), 28, 2) |
    (x.undefinedBits & LDTR_UNDEFINED)
  ) >>> 0;
}

export function decodeLdtrTrInfo(raw: number): Decoded<LdtrTrInfo, number> {
  const r = raw >>> 0;
  const mem = decodeMem(r);
  const register = flag32(r, 10);
  const malformed: string[] = [];
  if (!register) memMalformed(mem, malformed);
  return finish(
    { ...mem, reg1: field32(r, 3, 4), register, instruction: LDTR_TR[field32(r, 28, 2)]! },
    r,
    LDTR_UNDEFINED,
    0,
    malformed,
  );
}

// ---------------------------------------------------------------------------------------------------------------
// INS / OUTS (SDM Table 27-8), exit reason 30 when IA32_VMX_BASIC[54] = 1.

export interface InsOutsInfo {
  /** Bits 9:7. */
  readonly addressSize: number;
  /** Bits 17:15 (undefined for INS, which always uses ES). */
  readonly segment: number;
  /** Raw bits at the undefined positions 6:0, 14:10 and 31:18. */
  readonly undefinedBits: number;
}

const INSOUTS_UNDEFINED = mask32(6, 0) | mask32(14, 10) | mask32(31, 18);

export function encodeInsOutsInfo(x: InsOutsInfo): number {
  return (place32(x.addressSize, 7, 3) | place32(x.segment, 15, 3) | (x.undefinedBits & INSOUTS_UNDEFINED)) >>> 0;
}

export function decodeInsOutsInfo(raw: number): Decoded<InsOutsInfo, number> {
  const r = raw >>> 0;
  const addressSize = field32(r, 7, 3);
  const segment = field32(r, 15, 3);
  const malformed: string[] = [];
  if (addressSizeBits(addressSize) === undefined) malformed.push('addressSize');
  if (segment > 5) malformed.push('segment');
  return finish({ addressSize, segment }, r, INSOUTS_UNDEFINED, 0, malformed);
}

// ---------------------------------------------------------------------------------------------------------------
// RDRAND / RDSEED (SDM Table 27-12), exit reasons 57 and 61.

export interface RdrandRdseedInfo {
  /** Bits 6:3: destination register. */
  readonly register: number;
  /** Bits 12:11: operand size code (0 = 16, 1 = 32, 2 = 64; 3 unused). */
  readonly operandSize: number;
  /** Raw bits at the undefined positions 2:0, 10:7 and 31:13. */
  readonly undefinedBits: number;
}

const RDRAND_UNDEFINED = mask32(2, 0) | mask32(10, 7) | mask32(31, 13);

export function encodeRdrandRdseedInfo(x: RdrandRdseedInfo): number {
  return (place32(x.register, 3, 4) | place32(x.operandSize, 11, 2) | (x.undefinedBits & RDRAND_UNDEFINED)) >>> 0;
}

export function decodeRdrandRdseedInfo(raw: number): Decoded<RdrandRdseedInfo, number> {
  const r = raw >>> 0;
  const operandSize = field32(r, 11, 2);
  return finish({ register: field32(r, 3, 4), operandSize }, r, RDRAND_UNDEFINED, 0, operandSize === 3 ? ['operandSize'] : []);
}

// ---------------------------------------------------------------------------------------------------------------
// Layout selection by basic exit reason.

export type InstructionInfoLayout =
  | 'vmread-vmwrite'
  | 'vmx-pointer'
  | 'invalidation'
  | 'gdtr-idtr'
  | 'ldtr-tr'
  | 'ins-outs'
  | 'rdrand-rdseed';

const LAYOUT_BY_REASON: ReadonlyMap<number, InstructionInfoLayout> = new Map([
  [23, 'vmread-vmwrite'], [25, 'vmread-vmwrite'],
  [19, 'vmx-pointer'], [21, 'vmx-pointer'], [22, 'vmx-pointer'], [27, 'vmx-pointer'], [63, 'vmx-pointer'], [64, 'vmx-pointer'],
  [50, 'invalidation'], [53, 'invalidation'], [58, 'invalidation'],
  [46, 'gdtr-idtr'], [47, 'ldtr-tr'], [30, 'ins-outs'], [57, 'rdrand-rdseed'], [61, 'rdrand-rdseed'],
]);

/** The instruction-information layout used for a basic exit reason, or undefined when the field is undefined. */
export function instructionInfoLayout(basicReason: number): InstructionInfoLayout | undefined {
  return LAYOUT_BY_REASON.get(basicReason);
}

/** Decode with the layout of `basicReason`; undefined for reasons whose instruction information is undefined. */
export function decodeInstructionInfo(basicReason: number, raw: number): Decoded<unknown, number> | undefined {
  switch (instructionInfoLayout(basicReason)) {
    case 'vmread-vmwrite': return decodeVmreadVmwriteInfo(raw);
    case 'vmx-pointer': return decodeVmxPointerInfo(raw);
    case 'invalidation': return decodeInvalidationInfo(raw);
    case 'gdtr-idtr': return decodeGdtrIdtrInfo(raw);
    case 'ldtr-tr': return decodeLdtrTrInfo(raw);
    case 'ins-outs': return decodeInsOutsInfo(raw);
    case 'rdrand-rdseed': return decodeRdrandRdseedInfo(raw);
    default: return undefined;
  }
}
