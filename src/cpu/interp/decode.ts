// Decoding with iced-x86 into DecodedInstr, plus the decoded-instruction cache keyed by physical address.
// The cache is validated against the fetched bytes on every hit, so self-modifying code and remapped pages
// can never execute a stale decode. Must not: execute instructions or read guest memory itself.
// SDM Vol. 2 ch. 2 (prefixes, operand/address-size attributes).
import { Code, CodeExt, Decoder, DecoderError, Instruction, MemorySize, Mnemonic, OpKind, Register } from 'iced-x86';
import { Seg } from '../state.js';
import { NO_REG, RIP_BASE, type AddrSize, type DecodedInstr, type MemRef, type OpSize, type Operand, type RepKind } from './decoded.js';

export type DecodeResult =
  | { readonly ok: true; readonly instr: DecodedInstr }
  /** `truncated`: the bytes ended before the instruction did; `invalid`: #UD; `too-long`: more than 15 bytes. */
  | { readonly ok: false; readonly reason: 'truncated' | 'invalid' | 'too-long' };

interface GprInfo {
  readonly reg: number;
  readonly size: OpSize;
  readonly high8: boolean;
}

/** iced Register → GPR (index, size, high-byte flag); undefined for non-GPRs. */
const GPR = new Map<number, GprInfo>();
(() => {
  const low8 = [Register.AL, Register.CL, Register.DL, Register.BL];
  low8.forEach((r, i) => GPR.set(r, { reg: i, size: 1, high8: false }));
  const high8 = [Register.AH, Register.CH, Register.DH, Register.BH];
  high8.forEach((r, i) => GPR.set(r, { reg: i, size: 1, high8: true }));
  for (let i = 4; i < 16; i++) GPR.set(Register.SPL + (i - 4), { reg: i, size: 1, high8: false });
  for (let i = 0; i < 16; i++) {
    GPR.set(Register.AX + i, { reg: i, size: 2, high8: false });
    GPR.set(Register.EAX + i, { reg: i, size: 4, high8: false });
    GPR.set(Register.RAX + i, { reg: i, size: 8, high8: false });
  }
})();

const SEGS: Record<number, number> = {
  [Register.ES]: Seg.ES, [Register.CS]: Seg.CS, [Register.SS]: Seg.SS,
  [Register.DS]: Seg.DS, [Register.FS]: Seg.FS, [Register.GS]: Seg.GS,
};

/** GPR info of an iced register, or undefined. */
export function gprOf(r: number): GprInfo | undefined {
  return GPR.get(r);
}

/** SegIndex of an iced segment register, or -1. */
export function segOf(r: number): number {
  return SEGS[r] ?? -1;
}

const MNEMONIC_NAME = new Map<number, string>();
for (const [k, v] of Object.entries(Mnemonic)) {
  if (typeof v === 'number' && !MNEMONIC_NAME.has(v)) MNEMONIC_NAME.set(v, k.toLowerCase());
}

/** Lower-case mnemonic name of an iced Mnemonic value. */
export function mnemonicName(m: number): string {
  return MNEMONIC_NAME.get(m) ?? `mnemonic#${m}`;
}

const CODE_OPSIZE = new Map<number, number>();
/** OpCodeInfo.operandSize of a Code, cached (WASM round trip otherwise). */
function codeOperandSize(code: number): number {
  let v = CODE_OPSIZE.get(code);
  if (v === undefined) {
    const info = CodeExt.opCode(code);
    v = info.operandSize;
    info.free();
    CODE_OPSIZE.set(code, v);
  }
  return v;
}

const STRING_MNEMONICS = new Set<number>([
  Mnemonic.Movsb, Mnemonic.Movsw, Mnemonic.Movsd, Mnemonic.Movsq,
  Mnemonic.Stosb, Mnemonic.Stosw, Mnemonic.Stosd, Mnemonic.Stosq,
  Mnemonic.Lodsb, Mnemonic.Lodsw, Mnemonic.Lodsd, Mnemonic.Lodsq,
  Mnemonic.Cmpsb, Mnemonic.Cmpsw, Mnemonic.Cmpsd, Mnemonic.Cmpsq,
  Mnemonic.Scasb, Mnemonic.Scasw, Mnemonic.Scasd, Mnemonic.Scasq,
  Mnemonic.Insb, Mnemonic.Insw, Mnemonic.Insd, Mnemonic.Outsb, Mnemonic.Outsw, Mnemonic.Outsd,
]);

function toOpSize(bytes: number): OpSize {
  return bytes >= 8 ? 8 : bytes >= 4 ? 4 : bytes >= 2 ? 2 : 1;
}

/** Legacy prefixes preceding the opcode (REX/VEX not included). */
function scanPrefixes(bytes: Uint8Array): { opsize: boolean; addrsize: boolean; lock: boolean; f2: boolean; f3: boolean; last: number } {
  let opsize = false;
  let addrsize = false;
  let lock = false;
  let f2 = false;
  let f3 = false;
  let last = 0;
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i]!;
    if (b === 0x66) opsize = true;
    else if (b === 0x67) addrsize = true;
    else if (b === 0xf0) lock = true;
    else if (b === 0xf2) { f2 = true; last = b; }
    else if (b === 0xf3) { f3 = true; last = b; }
    else if (b === 0x26 || b === 0x2e || b === 0x36 || b === 0x3e || b === 0x64 || b === 0x65) { /* segment: iced reports it */ }
    else break;
  }
  return { opsize, addrsize, lock, f2, f3, last };
}

function signExtendBytes(bytes: Uint8Array, offset: number, size: number): bigint {
  let v = 0n;
  for (let i = size - 1; i >= 0; i--) v = (v << 8n) | BigInt(bytes[offset + i]!);
  return BigInt.asUintN(64, BigInt.asIntN(size * 8, v));
}

/**
 * Decode one instruction at the start of `bytes` (at most 15 meaningful bytes) for a code segment of the
 * given bitness. `ip` is the instruction's offset in CS (used for branch targets).
 */
export function decodeOne(bytes: Uint8Array, bitness: 16 | 32 | 64, ip: bigint): DecodeResult {
  const decoder = new Decoder(bitness, bytes, 0);
  const ins = new Instruction();
  try {
    decoder.ip = ip;
    decoder.decodeOut(ins);
    if (ins.code === Code.INVALID) {
      const err = decoder.lastError;
      if (err === DecoderError.NoMoreBytes) return { ok: false, reason: bytes.length >= 15 ? 'too-long' : 'truncated' };
      return { ok: false, reason: 'invalid' };
    }
    const co = decoder.getConstantOffsets(ins);
    const dispOffset = co.displacementOffset;
    const dispSize = co.displacementSize;
    co.free();
    return { ok: true, instr: convert(ins, bytes.slice(0, ins.length), bitness, dispOffset, dispSize) };
  } finally {
    ins.free();
    decoder.free();
  }
}

function convert(ins: Instruction, bytes: Uint8Array, bitness: 16 | 32 | 64, dispOffset: number, dispSize: number): DecodedInstr {
  const px = scanPrefixes(bytes);
  const defaultAddr: AddrSize = bitness === 64 ? 8 : bitness === 32 ? 4 : 2;
  const addrSize: AddrSize = !px.addrsize ? defaultAddr : bitness === 64 ? 4 : bitness === 32 ? 2 : 4;
  const mnemonic = ins.mnemonic;
  const isString = STRING_MNEMONICS.has(mnemonic) && ins.isStringInstruction;
  const segPrefix = segOf(ins.segmentPrefix);
  const ops: Operand[] = [];
  let mem: MemRef | null = null;
  let firstRegSize = 0;
  const opCount = ins.opCount;
  for (let i = 0; i < opCount; i++) {
    const kind = ins.opKind(i);
    switch (kind) {
      case OpKind.Register: {
        const r = ins.opRegister(i);
        const g = GPR.get(r);
        if (g) {
          ops.push({ kind: 'reg', reg: g.reg, size: g.size, high8: g.high8 });
          if (firstRegSize === 0) firstRegSize = g.size;
        } else if (SEGS[r] !== undefined) ops.push({ kind: 'sreg', seg: SEGS[r]! });
        else if (r >= Register.CR0 && r <= Register.CR15) ops.push({ kind: 'cr', n: r - Register.CR0 });
        else if (r >= Register.DR0 && r <= Register.DR15) ops.push({ kind: 'dr', n: r - Register.DR0 });
        else ops.push({ kind: 'other', index: r >= Register.XMM0 && r <= Register.XMM31 ? r - Register.XMM0 : -1 });
        break;
      }
      case OpKind.NearBranch16:
      case OpKind.NearBranch32:
      case OpKind.NearBranch64:
        ops.push({ kind: 'branch', target: ins.nearBranchTarget });
        break;
      case OpKind.FarBranch16:
        ops.push({ kind: 'far', selector: ins.farBranchSelector, offset: ins.farBranch16 });
        break;
      case OpKind.FarBranch32:
        ops.push({ kind: 'far', selector: ins.farBranchSelector, offset: ins.farBranch32 });
        break;
      case OpKind.Immediate8:
      case OpKind.Immediate8_2nd:
        ops.push({ kind: 'imm', value: BigInt.asUintN(8, ins.immediate(i)), size: 1 });
        break;
      case OpKind.Immediate16:
      case OpKind.Immediate8to16:
        ops.push({ kind: 'imm', value: BigInt.asUintN(16, ins.immediate(i)), size: 2 });
        break;
      case OpKind.Immediate32:
      case OpKind.Immediate8to32:
        ops.push({ kind: 'imm', value: BigInt.asUintN(32, ins.immediate(i)), size: 4 });
        break;
      case OpKind.Immediate64:
      case OpKind.Immediate8to64:
      case OpKind.Immediate32to64:
        ops.push({ kind: 'imm', value: BigInt.asUintN(64, ins.immediate(i)), size: 8 });
        break;
      case OpKind.MemorySegSI:
      case OpKind.MemorySegESI:
      case OpKind.MemorySegRSI:
        ops.push({ kind: 'str-src' });
        break;
      case OpKind.MemorySegDI:
      case OpKind.MemorySegEDI:
      case OpKind.MemorySegRDI:
      case OpKind.MemoryESDI:
      case OpKind.MemoryESEDI:
      case OpKind.MemoryESRDI:
        ops.push({ kind: 'str-dst' });
        break;
      case OpKind.Memory: {
        const baseReg = ins.memoryBase;
        const base = baseReg === Register.RIP || baseReg === Register.EIP ? RIP_BASE : (GPR.get(baseReg)?.reg ?? NO_REG);
        const index = GPR.get(ins.memoryIndex)?.reg ?? NO_REG;
        const disp = dispSize > 0 ? signExtendBytes(bytes, dispOffset, dispSize) : 0n;
        mem = {
          seg: segOf(ins.memorySegment),
          base,
          index,
          scale: (index === NO_REG ? 1 : ins.memoryIndexScale) as 1 | 2 | 4 | 8,
          disp,
          size: memorySizeBytes(ins),
        };
        ops.push({ kind: 'mem' });
        break;
      }
      default:
        ops.push({ kind: 'other', index: -1 });
    }
  }
  let opSize: OpSize;
  const cos = codeOperandSize(ins.code);
  const lastOp = ops[ops.length - 1];
  if (isString) opSize = toOpSize(memorySizeBytes(ins) || 1);
  else if (mnemonic === Mnemonic.Out && lastOp?.kind === 'reg') opSize = lastOp.size; // OUT DX/imm8, AL|AX|EAX
  else if (cos > 0) opSize = toOpSize(cos / 8);
  else if (firstRegSize > 0) opSize = toOpSize(firstRegSize);
  else if (mem && mem.size > 0 && mem.size <= 8) opSize = toOpSize(mem.size);
  else opSize = isString ? 1 : bitness === 16 ? (px.opsize ? 4 : 2) : px.opsize ? 2 : 4;
  let rep: RepKind = 'none';
  if (isString) {
    const cmpLike = mnemonic === Mnemonic.Cmpsb || mnemonic === Mnemonic.Cmpsw || mnemonic === Mnemonic.Cmpsd || mnemonic === Mnemonic.Cmpsq
      || mnemonic === Mnemonic.Scasb || mnemonic === Mnemonic.Scasw || mnemonic === Mnemonic.Scasd || mnemonic === Mnemonic.Scasq;
    if (px.last === 0xf3) rep = cmpLike ? 'repe' : 'rep';
    else if (px.last === 0xf2) rep = cmpLike ? 'repne' : 'rep';
  }
  return {
    code: ins.code,
    mnemonic,
    name: mnemonicName(mnemonic),
    length: ins.length,
    bytes,
    bitness,
    ops,
    opSize,
    addrSize: loopAddrSize(ins.code) ?? addrSize,
    mem,
    rep,
    lock: px.lock,
    segOverride: segPrefix,
    isString,
    strSrcSeg: segPrefix >= 0 ? segPrefix : Seg.DS,
    cc: ins.conditionCode,
  };
}

/** LOOP/JCXZ encode their counter width (CX/ECX/RCX) in the Code; built once from the Code names. */
const COUNTER_WIDTH = new Map<number, AddrSize>();
for (const [name, v] of Object.entries(Code)) {
  if (typeof v !== 'number') continue;
  const m = /^Loop(?:e|ne)?_rel8_\d+_(CX|ECX|RCX)$/.exec(name) ?? /^J(cx|ecx|rcx)z_rel8_\d+$/.exec(name);
  if (!m) continue;
  const reg = m[1]!.toUpperCase();
  COUNTER_WIDTH.set(v, reg === 'CX' ? 2 : reg === 'ECX' ? 4 : 8);
}

function loopAddrSize(code: number): AddrSize | undefined {
  return COUNTER_WIDTH.get(code);
}

/** Size in bytes of the memory operand (0 when unknown / address-only). */
function memorySizeBytes(ins: Instruction): number {
  // MemorySize enum names carry the width; only the widths the interpreter reads are needed.
  const ms = ins.memorySize;
  return MEMSIZE_BYTES.get(ms) ?? 0;
}

const MEMSIZE_BYTES = new Map<number, number>([
  [MemorySize.UInt8, 1], [MemorySize.Int8, 1],
  [MemorySize.UInt16, 2], [MemorySize.Int16, 2], [MemorySize.WordOffset, 2], [MemorySize.SegPtr16, 4],
  [MemorySize.UInt32, 4], [MemorySize.Int32, 4], [MemorySize.DwordOffset, 4], [MemorySize.SegPtr32, 6],
  [MemorySize.UInt64, 8], [MemorySize.Int64, 8], [MemorySize.QwordOffset, 8], [MemorySize.SegPtr64, 10],
  [MemorySize.Fword6, 6], [MemorySize.Fword10, 10], [MemorySize.UInt128, 16],
]);

/**
 * Decoded instructions by physical address of their first byte. A hit is used only when the cached bytes
 * equal the bytes fetched now and the bitness and IP match, so writes to code never leave a stale entry live.
 */
export class DecodeCache {
  // Keyed by phys·4 + bitness/32: a number while that is exact (phys < 2^51, every address in practice), else a
  // bigint; a Map never confuses 5 with 5n. The CS offset of the decode is kept with the entry.
  private readonly entries = new Map<number | bigint, { readonly instr: DecodedInstr; readonly ip: bigint }>();
  hits = 0;
  misses = 0;

  constructor(private readonly capacity = 65536) {}

  /** Decode `bytes` (fetched at physical `phys`, CS offset `ip`), using the cache when it is valid. */
  decode(phys: bigint, bytes: Uint8Array, bitness: 16 | 32 | 64, ip: bigint): DecodeResult {
    const key = phys < NUMBER_KEY_LIMIT ? Number(phys) * 4 + (bitness >> 5) : (phys << 2n) | BigInt(bitness >> 5);
    const e = this.entries.get(key);
    // Branch targets are absolute in DecodedInstr, so a hit must also be at the same CS offset.
    if (e) {
      const hit = e.instr;
      if (hit.bitness === bitness && hit.length <= bytes.length && sameBytes(hit.bytes, bytes) && e.ip === ip) {
        this.hits++;
        return { ok: true, instr: hit };
      }
    }
    this.misses++;
    const r = decodeOne(bytes, bitness, ip);
    if (r.ok) {
      if (this.entries.size >= this.capacity) this.entries.clear();
      this.entries.set(key, { instr: r.instr, ip });
    }
    return r;
  }

  clear(): void {
    this.entries.clear();
  }
}

/** Physical addresses below this give exact number cache keys (phys·4 + 3 < 2^53). */
const NUMBER_KEY_LIMIT = 1n << 51n;

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
