// Assembler for test programs over iced-x86's Encoder: each parsed line is matched against the iced Codes of
// its mnemonic by operand kind (OpCodeOperandKind) and the shortest encodable form wins; branches start short
// and grow to near until the layout is stable; the result is decoded back and compared with the intended
// instructions (a disassembly check), so a test never runs bytes that mean something else.
// Must not: execute anything. SDM Vol. 2 ch. 2 (encodings are iced-x86's; this only selects among them).
import {
  Code, CodeExt, CodeSize, Decoder, EncodingKind, Encoder, Formatter, FormatterSyntax, Instruction, MemoryOperand, MemorySize, Mnemonic,
  OpCodeOperandKind as K, OpKind, RepPrefixKind, Register,
} from 'iced-x86';
import { parseProgram, type AsmLine, type AsmOperand, type AsmSyntaxError } from './parse.js';

export type Bitness = 16 | 32 | 64;

export interface AsmError {
  readonly kind: 'asm-syntax' | 'asm-unknown-mnemonic' | 'asm-no-encoding' | 'asm-unknown-label' | 'asm-layout' | 'asm-verify';
  readonly line: number;
  readonly text: string;
  readonly message: string;
}

export interface ListingLine {
  readonly ip: bigint;
  readonly bytes: Uint8Array;
  /** iced-x86 Intel-syntax disassembly of the encoded bytes. */
  readonly text: string;
  readonly source: string;
}

export type AsmResult =
  | { readonly ok: true; readonly bytes: Uint8Array; readonly listing: readonly ListingLine[]; readonly labels: ReadonlyMap<string, bigint> }
  | { readonly ok: false; readonly error: AsmError };

interface CodeInfo {
  readonly code: number;
  readonly kinds: readonly number[];
  readonly memSize: number;
  readonly modes: readonly [boolean, boolean, boolean];
}

const ALIASES: Record<string, string> = {
  jz: 'je', jnz: 'jne', jc: 'jb', jnae: 'jb', jnc: 'jae', jnb: 'jae', jna: 'jbe', jnbe: 'ja', jpe: 'jp', jpo: 'jnp',
  jnge: 'jl', jnl: 'jge', jng: 'jle', jnle: 'jg', loopz: 'loope', loopnz: 'loopne', sal: 'shl', retn: 'ret',
  xlat: 'xlatb', icebp: 'int1', int01: 'int1', setz: 'sete', setnz: 'setne', setc: 'setb', setnc: 'setae',
  cmovz: 'cmove', cmovnz: 'cmovne', cmovc: 'cmovb', cmovnc: 'cmovae', wait: 'fwait',
};

const MEMSIZE_BYTES: Record<string, number> = {
  UInt8: 1, Int8: 1, UInt16: 2, Int16: 2, WordOffset: 2, UInt32: 4, Int32: 4, DwordOffset: 4, UInt64: 8, Int64: 8,
  QwordOffset: 8, SegPtr16: 4, SegPtr32: 6, SegPtr64: 10, Fword6: 6, Fword10: 10, UInt128: 16,
};

let codesByMnemonic: Map<string, CodeInfo[]> | undefined;

function codeTable(): Map<string, CodeInfo[]> {
  if (codesByMnemonic) return codesByMnemonic;
  const m = new Map<string, CodeInfo[]>();
  const mnemonicName = new Map<number, string>();
  for (const [k, v] of Object.entries(Mnemonic)) if (typeof v === 'number' && !mnemonicName.has(v)) mnemonicName.set(v, k.toLowerCase());
  for (const [name, v] of Object.entries(Code)) {
    if (typeof v !== 'number' || name === 'INVALID' || name.startsWith('DeclareByte') || name.startsWith('DeclareWord')
      || name.startsWith('DeclareDword') || name.startsWith('DeclareQword') || name === 'Zero_bytes') continue;
    const oc = CodeExt.opCode(v);
    try {
      if (oc.encoding !== EncodingKind.Legacy || oc.decoderOption !== 0 || !oc.isInstruction) continue;
      const kinds: number[] = [];
      for (let i = 0; i < oc.opCount; i++) kinds.push(oc.opKind(i));
      // Availability as an Intel decoder sees it (AMD-only forms such as 66h-prefixed 64-bit branches excluded).
      const info: CodeInfo = { code: v, kinds, memSize: memorySizeOf(oc.memorySize), modes: [oc.mode16 && oc.intelDecoder16, oc.mode32 && oc.intelDecoder32, oc.mode64 && oc.intelDecoder64] };
      if (kinds.includes(K.imm64)) IMM64_CODES.add(v);
      const mn = mnemonicName.get(oc.mnemonic)!;
      const list = m.get(mn) ?? [];
      list.push(info);
      m.set(mn, list);
    } finally {
      oc.free();
    }
  }
  codesByMnemonic = m;
  return m;
}

function memorySizeOf(ms: number): number {
  const name = (MemorySize as unknown as Record<number, string>)[ms];
  return name ? (MEMSIZE_BYTES[name] ?? 0) : 0;
}

const fits = (v: bigint, lo: bigint, hi: bigint) => v >= lo && v <= hi;

/** Immediate compatibility; `opBits` is the operation size for the sign-extended forms. */
function immFits(kind: number, v: bigint): boolean {
  switch (kind) {
    case K.imm8: return fits(v, -128n, 255n);
    case K.imm8_const_1: return v === 1n;
    case K.imm8sex16: return fits(v, -128n, 127n) || fits(v, 0xff80n, 0xffffn);
    case K.imm8sex32: return fits(v, -128n, 127n) || fits(v, 0xffff_ff80n, 0xffff_ffffn);
    case K.imm8sex64: return fits(v, -128n, 127n) || fits(v, 0xffff_ffff_ffff_ff80n, 0xffff_ffff_ffff_ffffn);
    case K.imm16: return fits(v, -0x8000n, 0xffffn);
    case K.imm32: return fits(v, -0x8000_0000n, 0xffff_ffffn);
    case K.imm32sex64: return fits(v, -0x8000_0000n, 0x7fff_ffffn) || fits(v, 0xffff_ffff_8000_0000n, 0xffff_ffff_ffff_ffffn);
    case K.imm64: return fits(v, -(1n << 63n), (1n << 64n) - 1n);
    default: return false;
  }
}

const GPR_KINDS: Record<number, number[]> = {
  1: [K.r8_reg, K.r8_opcode, K.r8_or_mem],
  2: [K.r16_reg, K.r16_rm, K.r16_opcode, K.r16_or_mem, K.r16_reg_mem],
  4: [K.r32_reg, K.r32_rm, K.r32_opcode, K.r32_vvvv, K.r32_or_mem, K.r32_reg_mem, K.r32_or_mem_mpx],
  8: [K.r64_reg, K.r64_rm, K.r64_opcode, K.r64_vvvv, K.r64_or_mem, K.r64_reg_mem, K.r64_or_mem_mpx],
};
const FIXED: Record<number, number> = {
  [K.al]: Register.AL, [K.cl]: Register.CL, [K.ax]: Register.AX, [K.dx]: Register.DX, [K.eax]: Register.EAX, [K.rax]: Register.RAX,
  [K.es]: Register.ES, [K.cs]: Register.CS, [K.ss]: Register.SS, [K.ds]: Register.DS, [K.fs]: Register.FS, [K.gs]: Register.GS,
};
const MEM_KINDS = new Set<number>([K.mem, K.r8_or_mem, K.r16_or_mem, K.r32_or_mem, K.r64_or_mem, K.r32_or_mem_mpx, K.r64_or_mem_mpx, K.xmm_or_mem]);
const SHORT_BRANCH = new Set<number>([K.br16_1, K.br32_1, K.br64_1]);
const NEAR_BRANCH = new Set<number>([K.br16_2, K.br32_4, K.br64_4]);

function operandMatches(kind: number, o: AsmOperand, memSize: number): boolean {
  if (FIXED[kind] !== undefined) return o.kind === 'reg' && o.reg === FIXED[kind];
  switch (o.kind) {
    case 'reg':
      if (o.cls === 'gpr') return (GPR_KINDS[o.size] ?? []).includes(kind);
      if (o.cls === 'seg') return kind === K.seg_reg;
      if (o.cls === 'cr') return kind === K.cr_reg;
      if (o.cls === 'dr') return kind === K.dr_reg;
      if (o.cls === 'xmm') return kind === K.xmm_reg || kind === K.xmm_rm || kind === K.xmm_or_mem;
      return false;
    case 'mem':
      if (!MEM_KINDS.has(kind)) return false;
      return o.size === 0 || memSize === 0 || o.size === memSize;
    case 'imm':
      return immFits(kind, o.value) || SHORT_BRANCH.has(kind) || NEAR_BRANCH.has(kind);
    case 'label':
      return SHORT_BRANCH.has(kind) || NEAR_BRANCH.has(kind);
    case 'far':
      return kind === K.farbr2_2 || kind === K.farbr4_2;
  }
}

/** `nextIp`: the address of the next instruction, which a RIP-relative displacement is relative to. */
function memOperand(o: Extract<AsmOperand, { kind: 'mem' }>, nextIp: bigint): MemoryOperand {
  const rip = o.base === Register.RIP || o.base === Register.EIP;
  const displSize = o.disp === 0n && o.base !== Register.None && !rip ? 0 : 1;
  // iced-x86 takes the absolute target of a RIP-relative operand; the source gives the displacement.
  const disp = rip ? BigInt.asUintN(o.base === Register.EIP ? 32 : 64, nextIp + o.disp) : BigInt.asIntN(64, o.disp);
  return new MemoryOperand(o.base, o.index, o.index === Register.None ? 1 : o.scale, disp, displSize, false, o.seg);
}

const IMM64_CODES = new Set<number>();

/** Build the iced Instruction for `code` with `ops`; branch/label targets are already resolved to addresses. */
function build(code: number, ops: readonly AsmOperand[], targets: readonly (bigint | undefined)[], nextIp = 0n): Instruction {
  const kinds = ops.map((o) => o.kind).join(',');
  const r = (i: number) => (ops[i] as { reg: number }).reg;
  const m = (i: number) => memOperand(ops[i] as Extract<AsmOperand, { kind: 'mem' }>, nextIp);
  const imm = (i: number) => (ops[i] as { value: bigint }).value;
  // Every immediate of at most 32 bits is passed as its low 32 bits (iced re-extends per the operand kind).
  const n32 = (v: bigint) => Number(BigInt.asIntN(32, v));
  if (targets.some((t) => t !== undefined)) return Instruction.createBranch(code, targets.find((t) => t !== undefined)!);
  switch (kinds) {
    case '': return Instruction.create(code);
    case 'reg': return Instruction.createReg(code, r(0));
    case 'mem': return Instruction.createMem(code, m(0));
    case 'imm': return Instruction.createI32(code, n32(imm(0)));
    case 'far': {
      const f = ops[0] as Extract<AsmOperand, { kind: 'far' }>;
      return Instruction.createFarBranch(code, f.selector, Number(f.offset));
    }
    case 'reg,reg': return Instruction.createRegReg(code, r(0), r(1));
    case 'reg,mem': return Instruction.createRegMem(code, r(0), m(1));
    case 'mem,reg': return Instruction.createMemReg(code, m(0), r(1));
    case 'reg,imm': {
      const v = imm(1);
      return IMM64_CODES.has(code) ? Instruction.createRegU64(code, r(0), BigInt.asUintN(64, v)) : Instruction.createRegI32(code, r(0), n32(v));
    }
    case 'mem,imm': return Instruction.createMemI32(code, m(0), n32(imm(1)));
    case 'imm,reg': return Instruction.createI32Reg(code, n32(imm(0)), r(1));
    case 'reg,reg,imm': return Instruction.createRegRegI32(code, r(0), r(1), n32(imm(2)));
    case 'reg,mem,imm': return Instruction.createRegMemI32(code, r(0), m(1), n32(imm(2)));
    case 'reg,reg,reg': return Instruction.createRegRegReg(code, r(0), r(1), r(2));
    default: throw new Error(`turtles bug: no Instruction.create form for operands ${kinds}`);
  }
}

const STRING_CREATE: Record<string, (asz: number, seg: number, rep: number) => Instruction> = {
  movsb: (a, s, p) => Instruction.createMovsb(a, s, p), movsw: (a, s, p) => Instruction.createMovsw(a, s, p),
  movsd: (a, s, p) => Instruction.createMovsd(a, s, p), movsq: (a, s, p) => Instruction.createMovsq(a, s, p),
  cmpsb: (a, s, p) => Instruction.createCmpsb(a, s, p), cmpsw: (a, s, p) => Instruction.createCmpsw(a, s, p),
  cmpsd: (a, s, p) => Instruction.createCmpsd(a, s, p), cmpsq: (a, s, p) => Instruction.createCmpsq(a, s, p),
  lodsb: (a, s, p) => Instruction.createLodsb(a, s, p), lodsw: (a, s, p) => Instruction.createLodsw(a, s, p),
  lodsd: (a, s, p) => Instruction.createLodsd(a, s, p), lodsq: (a, s, p) => Instruction.createLodsq(a, s, p),
  outsb: (a, s, p) => Instruction.createOutsb(a, s, p), outsw: (a, s, p) => Instruction.createOutsw(a, s, p),
  outsd: (a, s, p) => Instruction.createOutsd(a, s, p),
  stosb: (a, _s, p) => Instruction.createStosb(a, p), stosw: (a, _s, p) => Instruction.createStosw(a, p),
  stosd: (a, _s, p) => Instruction.createStosd(a, p), stosq: (a, _s, p) => Instruction.createStosq(a, p),
  scasb: (a, _s, p) => Instruction.createScasb(a, p), scasw: (a, _s, p) => Instruction.createScasw(a, p),
  scasd: (a, _s, p) => Instruction.createScasd(a, p), scasq: (a, _s, p) => Instruction.createScasq(a, p),
  insb: (a, _s, p) => Instruction.createInsb(a, p), insw: (a, _s, p) => Instruction.createInsw(a, p),
  insd: (a, _s, p) => Instruction.createInsd(a, p),
};

/** String instruction: address size and segment from explicit operands (`byte ptr fs:[esi]`) or defaults. */
function buildString(line: AsmLine, mnemonic: string, bitness: Bitness): Instruction | string {
  const mem = line.operands.find((o): o is Extract<AsmOperand, { kind: 'mem' }> => o.kind === 'mem');
  let addrSize: number = bitness;
  let seg = Register.None as number;
  if (mem) {
    const b = mem.base;
    addrSize = b >= Register.RAX && b <= Register.R15 ? 64 : b >= Register.EAX && b <= Register.R15D ? 32 : 16;
    seg = mem.seg;
  }
  const p = line.prefixes;
  // F3 is REP for MOVS/STOS/LODS/INS/OUTS and REPE for CMPS/SCAS; F2 is REPNE.
  const rep = p.includes('repne') || p.includes('repnz') ? RepPrefixKind.Repne
    : p.includes('rep') || p.includes('repe') || p.includes('repz') ? RepPrefixKind.Repe : RepPrefixKind.None;
  const f = STRING_CREATE[mnemonic];
  if (!f) return `no string form for ${mnemonic}`;
  return f(addrSize, seg, rep);
}

function isStringLine(mnemonic: string, line: AsmLine): boolean {
  if (!STRING_CREATE[mnemonic]) return false;
  if ((mnemonic === 'movsd' || mnemonic === 'cmpsd') && line.operands.some((o) => o.kind === 'reg' && o.cls === 'xmm')) return false;
  return true;
}

interface Planned {
  readonly line: AsmLine;
  /** Position in the program (the value of `$` in its operands). */
  readonly index: number;
  /** Candidate codes in preference order (non-branch: by encoded length; branch: short then near). */
  readonly candidates: number[];
  choice: number;
  readonly branchOperand: number;
  readonly fixed?: Instruction;
}

function fail(kind: AsmError['kind'], line: AsmLine | { line: number; text: string }, message: string): AsmResult {
  return { ok: false, error: { kind, line: line.line, text: line.text, message } };
}

/** Encode one instruction at `ip` and take its bytes (so no encoding is left in the encoder's buffer). */
function encodeBytes(enc: Encoder, ins: Instruction, ip: bigint): Uint8Array | undefined {
  try {
    enc.encode(ins, ip);
    return enc.takeBuffer();
  } catch {
    enc.takeBuffer();
    return undefined;
  }
}

function encodedLength(enc: Encoder, ins: Instruction, ip: bigint): number | undefined {
  return encodeBytes(enc, ins, ip)?.length;
}

/** Assemble `source` for a code segment of `bitness`, placed at `ip` (default 0). */
export function assemble(source: string, options: { readonly bitness: Bitness; readonly ip?: bigint }): AsmResult {
  const parsed = parseProgram(source);
  if (!parsed.ok) return { ok: false, error: parsed.error as AsmSyntaxError };
  const bitness = options.bitness;
  const base = options.ip ?? 0n;
  const modeIdx = bitness === 16 ? 0 : bitness === 32 ? 1 : 2;
  const table = codeTable();
  const enc = new Encoder(bitness);
  try {
    const plans: Planned[] = [];
    const labelAt = new Map<string, number>();
    for (const line of parsed.lines) {
      if (line.label !== undefined) {
        if (labelAt.has(line.label)) return fail('asm-syntax', line, `duplicate label ${line.label}`);
        labelAt.set(line.label, plans.length);
      }
      if (line.mnemonic === '') continue;
      const mnemonic = ALIASES[line.mnemonic] ?? line.mnemonic;
      if (isStringLine(mnemonic, line)) {
        const ins = buildString(line, mnemonic, bitness);
        if (typeof ins === 'string') return fail('asm-no-encoding', line, ins);
        plans.push({ line, index: plans.length, candidates: [ins.code], choice: 0, branchOperand: -1, fixed: ins });
        continue;
      }
      const codes = table.get(mnemonic);
      if (!codes) return fail('asm-unknown-mnemonic', line, `unknown mnemonic ${line.mnemonic}`);
      const ops = line.operands;
      const branchOperand = ops.findIndex((o) => o.kind === 'label' || (o.kind === 'imm' && codes.some((c) => c.kinds.some((k) => SHORT_BRANCH.has(k) || NEAR_BRANCH.has(k)))));
      const compatible = codes.filter((c) => c.modes[modeIdx] && c.kinds.length === ops.length && c.kinds.every((k, i) => operandMatches(k, ops[i]!, c.memSize)));
      if (compatible.length === 0) return fail('asm-no-encoding', line, `no ${bitness}-bit encoding of "${line.text}"`);
      let candidates: number[];
      if (branchOperand >= 0 && compatible.some((c) => c.kinds.some((k) => SHORT_BRANCH.has(k) || NEAR_BRANCH.has(k)))) {
        // Short forms first, then near; within each, the shortest encoding (no operand-size prefix).
        const bySize = (list: CodeInfo[]) => list
          .map((c): [number, number] => {
            const targets: bigint[] = [];
            targets[branchOperand] = base;
            const ins = build(c.code, ops, targets);
            const n = encodedLength(enc, ins, base) ?? 99;
            ins.free();
            return [n, c.code];
          })
          .sort((a, b) => a[0] - b[0] || a[1] - b[1])
          .map((x) => x[1]);
        const short = bySize(compatible.filter((c) => c.kinds.some((k) => SHORT_BRANCH.has(k))));
        const near = bySize(compatible.filter((c) => c.kinds.some((k) => NEAR_BRANCH.has(k))));
        candidates = [...short, ...near];
      } else {
        // Memory operands without a size keyword must not be ambiguous between sizes.
        const memIdx = ops.findIndex((o) => o.kind === 'mem' && o.size === 0);
        if (memIdx >= 0 && new Set(compatible.map((c) => c.memSize)).size > 1 && !ops.some((o) => o.kind === 'reg' && o.cls === 'gpr')) {
          return fail('asm-no-encoding', line, `operand size of "${line.text}" is ambiguous: add byte/word/dword/qword ptr`);
        }
        const sized: [number, number][] = [];
        for (const c of compatible) {
          let ins: Instruction;
          try {
            ins = build(c.code, ops, []);
          } catch {
            continue;
          }
          if (line.prefixes.includes('lock')) ins.hasLockPrefix = true;
          const n = encodedLength(enc, ins, base);
          ins.free();
          if (n !== undefined) sized.push([n, c.code]);
        }
        if (sized.length === 0) return fail('asm-no-encoding', line, `iced-x86 cannot encode "${line.text}" in ${bitness}-bit code`);
        sized.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
        candidates = sized.map((s) => s[1]);
      }
      plans.push({ line, index: plans.length, candidates, choice: 0, branchOperand: branchOperand >= 0 ? branchOperand : -1 });
    }
    for (const p of plans) {
      const o = p.branchOperand >= 0 ? p.line.operands[p.branchOperand] : undefined;
      if (o?.kind === 'label' && o.name !== '$' && !labelAt.has(o.name)) return fail('asm-unknown-label', p.line, `unknown label ${o.name}`);
    }
    // Layout: encode every instruction at its address with targets taken from the previous layout; grow a short
    // branch that does not reach; stop when the addresses no longer change (branch forms only grow).
    let ips: bigint[] = [];
    {
      let ip = base;
      for (const p of plans) {
        ips.push(ip);
        const ins = instructionFor(p, labelAt, () => ip, ip, enc);
        ip += BigInt(encodedLength(enc, ins, ip) ?? 15);
        ins.free();
      }
    }
    let chunks: Uint8Array[] = [];
    for (let round = 0; ; round++) {
      if (round > 40) return fail('asm-layout', parsed.lines[0] ?? { line: 0, text: '' }, 'branch layout did not converge');
      const prev = ips;
      const prevEnd = base + BigInt(chunks.reduce((n, c) => n + c.length, 0));
      const addrOf = (k: number) => (k < prev.length ? prev[k]! : prevEnd);
      const next: bigint[] = [];
      chunks = [];
      let ip = base;
      let grew = false;
      for (const p of plans) {
        next.push(ip);
        const ins = instructionFor(p, labelAt, addrOf, ip, enc);
        const out = encodeBytes(enc, ins, ip);
        ins.free();
        if (out === undefined) {
          if (p.choice + 1 < p.candidates.length) {
            p.choice++;
            grew = true;
            ip += 15n;
            chunks.push(new Uint8Array(15));
            continue;
          }
          return fail('asm-no-encoding', p.line, `cannot encode "${p.line.text}" at 0x${ip.toString(16)}`);
        }
        chunks.push(out);
        ip += BigInt(out.length);
      }
      const stable = !grew && round > 0 && next.length === prev.length && next.every((v, i) => v === prev[i]);
      ips = next;
      if (stable) break;
    }
    const total = chunks.reduce((n, c) => n + c.length, 0);
    const bytes = new Uint8Array(total);
    let off = 0;
    for (const c of chunks) { bytes.set(c, off); off += c.length; }
    const labels = new Map<string, bigint>();
    const endIp = base + BigInt(total);
    for (const [name, idx] of labelAt) labels.set(name, idx < ips.length ? ips[idx]! : endIp);
    return verify(bytes, plans, ips, labelAt, base, bitness, labels, enc);
  } finally {
    enc.free();
  }
}

function hasRipOperand(p: Planned): boolean {
  return p.line.operands.some((o) => o.kind === 'mem' && (o.base === Register.RIP || o.base === Register.EIP));
}

/**
 * The instruction for plan `p` placed at `ip`. A RIP-relative operand needs the instruction's own length, which
 * does not depend on the displacement value (always disp32): encode once to learn it, then build the real one.
 */
function instructionFor(p: Planned, labelAt: Map<string, number>, addrOf: (i: number) => bigint, ip = 0n, enc?: Encoder): Instruction {
  if (!hasRipOperand(p) || !enc) return instructionAt(p, labelAt, addrOf, 0n);
  const probe = instructionAt(p, labelAt, addrOf, ip);
  const n = encodedLength(enc, probe, ip) ?? 0;
  probe.free();
  return instructionAt(p, labelAt, addrOf, ip + BigInt(n));
}

function instructionAt(p: Planned, labelAt: Map<string, number>, addrOf: (i: number) => bigint, nextIp: bigint): Instruction {
  if (p.fixed) return p.fixed.clone();
  const code = p.candidates[p.choice]!;
  const targets: (bigint | undefined)[] = [];
  if (p.branchOperand >= 0) {
    const o = p.line.operands[p.branchOperand]!;
    const t = o.kind === 'label' ? addrOf(o.name === '$' ? p.index : labelAt.get(o.name)!) : (o as { value: bigint }).value;
    targets[p.branchOperand] = BigInt.asUintN(64, t);
  }
  const ins = build(code, p.line.operands, targets, nextIp);
  if (p.line.prefixes.includes('lock')) ins.hasLockPrefix = true;
  return ins;
}

/** Decode the bytes back and compare each instruction's disassembly with the intended one. */
const IMM_WIDTH: Record<number, number> = {
  [OpKind.Immediate8]: 8, [OpKind.Immediate8_2nd]: 8, [OpKind.Immediate16]: 16, [OpKind.Immediate32]: 32, [OpKind.Immediate64]: 64,
  [OpKind.Immediate8to16]: 16, [OpKind.Immediate8to32]: 32, [OpKind.Immediate8to64]: 64, [OpKind.Immediate32to64]: 64,
};

function verify(bytes: Uint8Array, plans: Planned[], ips: bigint[], labelAt: Map<string, number>, base: bigint, bitness: Bitness, labels: Map<string, bigint>, enc: Encoder): AsmResult {
  const fmt = new Formatter(FormatterSyntax.Intel);
  const dec = new Decoder(bitness, bytes, 0);
  dec.ip = base;
  const listing: ListingLine[] = [];
  const decoded = new Instruction();
  try {
    const endIp = base + BigInt(bytes.length);
    for (let i = 0; i < plans.length; i++) {
      const p = plans[i]!;
      dec.decodeOut(decoded);
      const intended = instructionFor(p, labelAt, (k) => (k < ips.length ? ips[k]! : endIp), ips[i]!, enc);
      intended.ip = ips[i]!;
      intended.codeSize = bitness === 16 ? CodeSize.Code16 : bitness === 32 ? CodeSize.Code32 : CodeSize.Code64;
      const want = fmt.format(intended);
      intended.free();
      const got = fmt.format(decoded);
      if (decoded.ip !== ips[i] || want !== got) {
        return fail('asm-verify', p.line, `encoded bytes disassemble to "${got}", intended "${want}"`);
      }
      // The source's immediates must survive as written (modulo the immediate's width), independent of how the
      // intended Instruction was built.
      for (let k = 0; k < p.line.operands.length && !p.fixed; k++) {
        const o = p.line.operands[k]!;
        if (o.kind !== 'imm' || k === p.branchOperand) continue;
        const w = IMM_WIDTH[decoded.opKind(k)];
        if (w === undefined) continue;
        if (BigInt.asUintN(w, decoded.immediate(k)) !== BigInt.asUintN(w, o.value)) {
          return fail('asm-verify', p.line, `immediate ${o.value} encoded as 0x${BigInt.asUintN(w, decoded.immediate(k)).toString(16)}`);
        }
      }
      const start = Number(ips[i]! - base);
      listing.push({ ip: ips[i]!, bytes: bytes.slice(start, start + decoded.length), text: got, source: p.line.text });
    }
    return { ok: true, bytes, listing, labels };
  } finally {
    decoded.free();
    dec.free();
    fmt.free();
  }
}

function template(bitness: Bitness, strings: TemplateStringsArray, values: readonly (number | bigint | string)[]): Uint8Array {
  let src = strings[0]!;
  values.forEach((v, i) => {
    src += typeof v === 'string' ? v : `0x${BigInt.asUintN(64, BigInt(v)).toString(16)}`;
    src += strings[i + 1]!;
  });
  const r = assemble(src, { bitness });
  if (!r.ok) throw new Error(`asm${bitness} line ${r.error.line} (${r.error.text}): ${r.error.message}`);
  return r.bytes;
}

/** Assemble 64-bit code at address 0 (tagged template; values interpolate as hex). Throws on a bad program. */
export function asm64(strings: TemplateStringsArray, ...values: (number | bigint | string)[]): Uint8Array {
  return template(64, strings, values);
}

export function asm32(strings: TemplateStringsArray, ...values: (number | bigint | string)[]): Uint8Array {
  return template(32, strings, values);
}

export function asm16(strings: TemplateStringsArray, ...values: (number | bigint | string)[]): Uint8Array {
  return template(16, strings, values);
}

/** Assemble or throw (for tests with literal programs); `ip` places the code. */
export function assembleOrThrow(source: string, bitness: Bitness, ip = 0n): Uint8Array {
  const r = assemble(source, { bitness, ip });
  if (!r.ok) throw new Error(`asm${bitness} line ${r.error.line} (${r.error.text}): ${r.error.message}`);
  return r.bytes;
}
