// Shared fast-check arbitraries for L2 programs: one exit-causing instruction with the operand facts a test
// needs to check its exit information (port, size, CR/DR number, GPRs, memory operand, …), plain memory
// accesses, and whole programs mixing both. Programs are Intel-syntax text for src/asm (64-bit mode).
// Must not: compute expected exits (tests do, from the reference rules). SDM Vol. 3C 25.1, 27.2.
import fc from 'fast-check';

export const GPR64 = ['rax', 'rcx', 'rdx', 'rbx', 'rsp', 'rbp', 'rsi', 'rdi', 'r8', 'r9', 'r10', 'r11', 'r12', 'r13', 'r14', 'r15'] as const;
export const GPR32 = ['eax', 'ecx', 'edx', 'ebx', 'esp', 'ebp', 'esi', 'edi', 'r8d', 'r9d', 'r10d', 'r11d', 'r12d', 'r13d', 'r14d', 'r15d'] as const;
export const GPR16 = ['ax', 'cx', 'dx', 'bx', 'sp', 'bp', 'si', 'di', 'r8w', 'r9w', 'r10w', 'r11w', 'r12w', 'r13w', 'r14w', 'r15w'] as const;
const SEGS = ['es', 'cs', 'ss', 'ds', 'fs', 'gs'] as const;

/** A memory operand: registers by index (0–15), null for none; `seg` an override (SegIndex) or null. */
export interface MemSpec {
  readonly base: number | null;
  readonly index: number | null;
  readonly scale: 1 | 2 | 4 | 8;
  readonly disp: number;
  readonly seg: number | null;
  /** 8 = 64-bit addressing, 4 = 32-bit (67h prefix). */
  readonly addrSize: 4 | 8;
}

export function memText(m: MemSpec, size: string): string {
  const regs = m.addrSize === 8 ? GPR64 : GPR32;
  const parts: string[] = [];
  if (m.base !== null) parts.push(regs[m.base]!);
  if (m.index !== null) parts.push(`${regs[m.index]!}*${m.scale}`);
  if (m.disp !== 0 || parts.length === 0) parts.push(m.disp < 0 ? `-0x${(-m.disp).toString(16)}` : `0x${m.disp.toString(16)}`);
  const seg = m.seg === null ? '' : `${SEGS[m.seg]!}:`;
  return `${size} ptr ${seg}[${parts.join(' + ').replace('+ -', '- ')}]`;
}

/** Default segment of a memory operand (SS for rSP/rBP bases) or its override. */
export function effectiveSeg(m: MemSpec): number {
  if (m.seg !== null) return m.seg;
  return m.base === 4 || m.base === 5 ? 2 : 3;
}

export const memSpecArb: fc.Arbitrary<MemSpec> = fc.record({
  base: fc.option(fc.integer({ min: 0, max: 15 }), { nil: null }),
  // RSP cannot be an index register.
  index: fc.option(fc.integer({ min: 0, max: 15 }).filter((r) => r !== 4), { nil: null }),
  scale: fc.constantFrom(1 as const, 2 as const, 4 as const, 8 as const),
  disp: fc.oneof(fc.constant(0), fc.integer({ min: -128, max: 127 }), fc.integer({ min: -0x8000_0000, max: 0x7fff_ffff })),
  seg: fc.option(fc.integer({ min: 0, max: 5 }), { nil: null }),
  addrSize: fc.constantFrom(8 as const, 8 as const, 4 as const),
  // Without registers the text cannot say "32-bit addressing": such operands are 64-bit.
}).map((m) => (m.base === null && m.index === null ? { ...m, addrSize: 8 as const } : m));

export type ExitCase =
  | { readonly kind: 'io'; readonly text: string; readonly port: number; readonly size: 1 | 2 | 4; readonly input: boolean; readonly string: boolean; readonly rep: boolean; readonly immediate: boolean; readonly addrSize: 4 | 8; readonly seg: number | null }
  | { readonly kind: 'cr-write'; readonly text: string; readonly cr: 0 | 3 | 4 | 8; readonly gpr: number; readonly value: bigint }
  | { readonly kind: 'cr-read'; readonly text: string; readonly cr: 0 | 3 | 4 | 8; readonly gpr: number }
  | { readonly kind: 'clts'; readonly text: string }
  | { readonly kind: 'lmsw'; readonly text: string; readonly source: number; readonly memory: boolean; readonly gpr: number }
  | { readonly kind: 'mov-dr'; readonly text: string; readonly dr: number; readonly toDr: boolean; readonly gpr: number }
  | { readonly kind: 'msr'; readonly text: string; readonly write: boolean; readonly msr: number }
  | { readonly kind: 'simple'; readonly text: string; readonly mnemonic: string }
  | { readonly kind: 'vmx-mem'; readonly text: string; readonly mnemonic: string; readonly mem: MemSpec }
  | { readonly kind: 'vmx-rw'; readonly text: string; readonly write: boolean; readonly encodingReg: number; readonly rmReg: number | null; readonly mem: MemSpec | null; readonly encoding: number }
  | { readonly kind: 'inv'; readonly text: string; readonly mnemonic: 'invept' | 'invvpid' | 'invpcid'; readonly typeReg: number; readonly mem: MemSpec }
  | { readonly kind: 'dt'; readonly text: string; readonly mnemonic: 'lgdt' | 'lidt' | 'sgdt' | 'sidt'; readonly mem: MemSpec }
  | { readonly kind: 'ldt'; readonly text: string; readonly mnemonic: 'lldt' | 'ltr' | 'sldt' | 'str'; readonly reg: number | null; readonly mem: MemSpec | null }
  | { readonly kind: 'rand'; readonly text: string; readonly seed: boolean; readonly reg: number; readonly size: 2 | 4 | 8 }
  | { readonly kind: 'invlpg'; readonly text: string; readonly mem: MemSpec }
  /** Instructions whose exit depends on EAX/ECX/EDX, CR4 or rarely used controls (register values set by the test). */
  | { readonly kind: 'other'; readonly text: string; readonly mnemonic: string; readonly reg: number };

const gpr = fc.integer({ min: 0, max: 15 });
/** GPRs the harness does not use for addresses (RBX holds the data pointer, RSP the stack). */
const freeGpr = gpr.filter((r) => r !== 3 && r !== 4);

const ioArb: fc.Arbitrary<ExitCase> = fc.oneof(
  fc.record({ size: fc.constantFrom(1 as const, 2 as const, 4 as const), input: fc.boolean(), port: fc.integer({ min: 0, max: 0xffff }), imm: fc.boolean() }).map(({ size, input, port, imm }) => {
    const acc = size === 1 ? 'al' : size === 2 ? 'ax' : 'eax';
    const p = imm ? port & 0xff : port;
    const where = imm ? `0x${p.toString(16)}` : 'dx';
    return { kind: 'io' as const, text: input ? `in ${acc}, ${where}` : `out ${where}, ${acc}`, port: p, size, input, string: false, rep: false, immediate: imm, addrSize: 8 as const, seg: null };
  }),
  fc.record({ size: fc.constantFrom(1 as const, 2 as const, 4 as const), input: fc.boolean(), port: fc.integer({ min: 0, max: 0xffff }), rep: fc.boolean(), addrSize: fc.constantFrom(4 as const, 8 as const), seg: fc.option(fc.constantFrom(0, 3, 4, 5), { nil: null }) })
    .map(({ size, input, port, rep, addrSize, seg }) => {
      const suffix = size === 1 ? 'b' : size === 2 ? 'w' : 'd';
      const sz = size === 1 ? 'byte' : size === 2 ? 'word' : 'dword';
      const rs = addrSize === 8 ? ['rsi', 'rdi'] : ['esi', 'edi'];
      const text = input
        ? `${rep ? 'rep ' : ''}ins${suffix} ${sz} ptr [${rs[1]}], dx`
        : `${rep ? 'rep ' : ''}outs${suffix} dx, ${sz} ptr ${seg === null ? '' : `${SEGS[seg]}:`}[${rs[0]}]`;
      return { kind: 'io' as const, text, port, size, input, string: true, rep, immediate: false, addrSize, seg: input ? null : seg };
    }),
);

const crArb: fc.Arbitrary<ExitCase> = fc.oneof(
  fc.record({ cr: fc.constantFrom(0 as const, 3 as const, 4 as const, 8 as const), gpr: freeGpr, value: fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), small: fc.bigInt({ min: 0n, max: 15n }) })
    .map(({ cr, gpr, value, small }) => ({ kind: 'cr-write' as const, text: `mov cr${cr}, ${GPR64[gpr]}`, cr, gpr, value: cr === 8 ? small : value })),
  fc.record({ cr: fc.constantFrom(0 as const, 3 as const, 4 as const, 8 as const), gpr: freeGpr }).map(({ cr, gpr }) => ({ kind: 'cr-read' as const, text: `mov ${GPR64[gpr]}, cr${cr}`, cr, gpr })),
  fc.constant({ kind: 'clts' as const, text: 'clts' }),
  fc.record({ source: fc.integer({ min: 0, max: 0xffff }), memory: fc.boolean(), gpr: freeGpr }).map(({ source, memory, gpr }) => ({
    kind: 'lmsw' as const, text: memory ? 'lmsw word ptr [rbx]' : `lmsw ${GPR16[gpr]}`, source, memory, gpr,
  })),
  fc.record({ dr: fc.integer({ min: 0, max: 7 }).filter((d) => d !== 4 && d !== 5), toDr: fc.boolean(), gpr: freeGpr }).map(({ dr, toDr, gpr }) => ({
    kind: 'mov-dr' as const, text: toDr ? `mov dr${dr}, ${GPR64[gpr]}` : `mov ${GPR64[gpr]}, dr${dr}`, dr, toDr, gpr,
  })),
);

export const INTERESTING_MSRS = [0x10, 0x174, 0x1d9, 0x277, 0x1fff, 0x2000, 0xc000_0080, 0xc000_0100, 0xc000_1fff, 0xc000_2000, 0x4000_0000, 0xffff_ffff];

const msrArb: fc.Arbitrary<ExitCase> = fc.record({ write: fc.boolean(), msr: fc.oneof(fc.constantFrom(...INTERESTING_MSRS), fc.integer({ min: 0, max: 0x1fff }), fc.integer({ min: 0xc000_0000, max: 0xc000_1fff })) })
  .map(({ write, msr }) => ({ kind: 'msr' as const, text: write ? 'wrmsr' : 'rdmsr', write, msr }));

export const SIMPLE_EXITING = ['cpuid', 'invd', 'vmcall', 'hlt', 'rdpmc', 'rdtsc', 'rdtscp', 'monitor', 'mwait', 'pause', 'wbinvd', 'xsetbv', 'vmlaunch', 'vmresume', 'vmxoff'] as const;

const simpleArb: fc.Arbitrary<ExitCase> = fc.constantFrom(...SIMPLE_EXITING).map((mnemonic) => ({ kind: 'simple' as const, text: mnemonic, mnemonic }));

const vmxMemArb: fc.Arbitrary<ExitCase> = fc.record({ mnemonic: fc.constantFrom('vmclear', 'vmptrld', 'vmptrst', 'vmxon'), mem: memSpecArb })
  .map(({ mnemonic, mem }) => ({ kind: 'vmx-mem' as const, text: `${mnemonic} ${memText(mem, 'qword')}`, mnemonic, mem }));

const vmxRwArb: fc.Arbitrary<ExitCase> = fc.record({
  write: fc.boolean(), encodingReg: freeGpr, rm: fc.option(freeGpr, { nil: null }), mem: memSpecArb,
  encoding: fc.oneof(fc.constantFrom(0x4402, 0x6400, 0x0800, 0x2000), fc.integer({ min: 0, max: 0x7fff }), fc.integer({ min: 0x8000, max: 0xffff })),
}).map(({ write, encodingReg, rm, mem, encoding }) => {
  const rmText = rm !== null ? GPR64[rm]! : memText(mem, 'qword');
  const text = write ? `vmwrite ${GPR64[encodingReg]}, ${rmText}` : `vmread ${rmText}, ${GPR64[encodingReg]}`;
  return { kind: 'vmx-rw' as const, text, write, encodingReg, rmReg: rm, mem: rm === null ? mem : null, encoding };
});

const invArb: fc.Arbitrary<ExitCase> = fc.record({ mnemonic: fc.constantFrom('invept' as const, 'invvpid' as const, 'invpcid' as const), typeReg: freeGpr, mem: memSpecArb })
  .map(({ mnemonic, typeReg, mem }) => ({ kind: 'inv' as const, text: `${mnemonic} ${GPR64[typeReg]}, ${memText(mem, 'oword')}`, mnemonic, typeReg, mem }));

const dtArb: fc.Arbitrary<ExitCase> = fc.oneof(
  fc.record({ mnemonic: fc.constantFrom('lgdt' as const, 'lidt' as const, 'sgdt' as const, 'sidt' as const), mem: memSpecArb })
    .map(({ mnemonic, mem }) => ({ kind: 'dt' as const, text: `${mnemonic} ${memText(mem, 'tbyte')}`, mnemonic, mem })),
  fc.record({ mnemonic: fc.constantFrom('lldt' as const, 'ltr' as const, 'sldt' as const, 'str' as const), reg: fc.option(freeGpr, { nil: null }), mem: memSpecArb })
    .map(({ mnemonic, reg, mem }) => ({
      kind: 'ldt' as const,
      text: `${mnemonic} ${reg !== null ? (mnemonic === 'lldt' || mnemonic === 'ltr' ? GPR16[reg] : GPR32[reg]) : memText(mem, 'word')}`,
      mnemonic, reg, mem: reg === null ? mem : null,
    })),
);

const randArb: fc.Arbitrary<ExitCase> = fc.record({ seed: fc.boolean(), reg: freeGpr, size: fc.constantFrom(2 as const, 4 as const, 8 as const) })
  .map(({ seed, reg, size }) => ({ kind: 'rand' as const, text: `${seed ? 'rdseed' : 'rdrand'} ${(size === 2 ? GPR16 : size === 4 ? GPR32 : GPR64)[reg]}`, seed, reg, size }));

const invlpgArb: fc.Arbitrary<ExitCase> = memSpecArb.map((mem) => ({ kind: 'invlpg' as const, text: `invlpg ${memText(mem, 'byte')}`, mem }));

export const OTHER_EXITING = ['getsec', 'rsm', 'xsaves', 'xrstors', 'encls', 'enclv', 'pconfig', 'umwait', 'tpause', 'loadiwkey', 'seamcall', 'tdcall', 'wbnoinvd', 'vmfunc'] as const;

const otherArb: fc.Arbitrary<ExitCase> = fc.record({ mnemonic: fc.constantFrom(...OTHER_EXITING), reg: freeGpr.filter((r) => r < 8 && r !== 0 && r !== 1 && r !== 2) })
  .map(({ mnemonic, reg }) => {
    let text: string = mnemonic;
    if (mnemonic === 'xsaves' || mnemonic === 'xrstors') text = `${mnemonic} [rbx]`;
    if (mnemonic === 'umwait' || mnemonic === 'tpause') text = `${mnemonic} ${GPR32[reg]}`;
    if (mnemonic === 'loadiwkey') text = 'loadiwkey xmm1, xmm2';
    return { kind: 'other' as const, text, mnemonic, reg };
  });

/** One exit-capable instruction with its operand facts. */
export const exitCaseArb: fc.Arbitrary<ExitCase> = fc.oneof(ioArb, crArb, msrArb, simpleArb, vmxMemArb, vmxRwArb, invArb, dtArb, randArb, invlpgArb, otherArb);

/** A plain data access into the 64 KiB data area at `base` (RBX holds the base). */
export const memoryAccessArb: fc.Arbitrary<string> = fc.record({
  op: fc.constantFrom('mov', 'add', 'xor', 'sub', 'cmp'), load: fc.boolean(), reg: fc.constantFrom('rax', 'ecx', 'dx', 'r9b'), off: fc.integer({ min: 0, max: 0xfff0 }),
}).map(({ op, load, reg, off }) => {
  const sz = reg === 'rax' ? 'qword' : reg === 'ecx' ? 'dword' : reg === 'dx' ? 'word' : 'byte';
  return load ? `${op} ${reg}, ${sz} ptr [rbx + 0x${off.toString(16)}]` : `${op} ${sz} ptr [rbx + 0x${off.toString(16)}], ${reg}`;
});

/** A straight-line 64-bit L2 program mixing ALU work, memory accesses and exit-causing instructions. */
export const l2ProgramArb: fc.Arbitrary<{ readonly lines: readonly string[]; readonly exits: readonly ExitCase[] }> = fc
  .array(fc.oneof({ weight: 3, arbitrary: memoryAccessArb.map((t) => ({ t, e: null as ExitCase | null })) },
    { weight: 2, arbitrary: fc.constantFrom('inc r10', 'add r11, r10', 'shl r12, 3', 'imul r13, r11, 7', 'xor r14d, r14d').map((t) => ({ t, e: null as ExitCase | null })) },
    { weight: 1, arbitrary: fc.oneof(ioArb, msrArb, simpleArb.filter((c) => c.text !== 'hlt' && c.text !== 'mwait' && c.text !== 'xsetbv' && c.text !== 'rdtscp'), randArb).map((e) => ({ t: e.text, e: e as ExitCase | null })) }),
  { minLength: 1, maxLength: 24 })
  .map((items) => ({ lines: items.map((i) => i.t), exits: items.flatMap((i) => (i.e ? [i.e] : [])) }));
