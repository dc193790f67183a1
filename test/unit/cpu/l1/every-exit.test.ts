// The reference machine's done-criterion: the built-in L1 sets up EPT and controls and runs one L2 program executing
// every exit-causing instruction under controls that make each exit; every exit L1 sees carries what hardware gives
// (reason, qualification and instruction information decoded back to the operands, guest-linear address, instruction
// length = encoding length, no event information). Expectations from the SDM (25.1, 27.2.1, 27.2.5), not the code.
import { describe, expect, it } from 'vitest';
import { assemble, type ListingLine } from '../../../../src/asm/index.js';
import { Primary, Secondary } from '../../../../src/cpu/generated/controls.js';
import { decodeExitReason } from '../../../../src/cpu/exit-info/exit-reason.js';
import { decodeInstructionInfo } from '../../../../src/cpu/exit-info/instruction-info.js';
import { decodeCrAccess, decodeIo, decodeMovDr } from '../../../../src/cpu/exit-info/qualifications.js';
import type { ExitInformation } from '../../../../src/cpu/l1/observation.js';
import type { L1Config } from '../../../../src/cpu/l1/config.js';
import { L2Layout } from '../../../../src/cpu/interp/l2-env.js';
import { KVM_L1, SKYLAKE_SMX, runConfig, show, type SeenExit } from '../machine/helpers.js';

const DATA = 0x9_0000n;

/** One instruction that must exit, with what its exit must say. `info` is checked against the decoded layout. */
interface Case {
  readonly line: string;
  readonly reason: number;
  readonly qualification?: bigint | ((q: bigint) => void);
  readonly gla?: bigint;
  readonly info?: Record<string, unknown>;
}

// Memory-operand facts for [rbx + disp] in 64-bit mode: scaling 0, 64-bit addresses, DS, no index, base RBX.
const MEM_RBX = { scaling: 0, addressSize: 2, segment: 3, indexInvalid: true, baseReg: 3, baseInvalid: false };
const cr = (x: ReturnType<typeof decodeCrAccess>['value']) => (q: bigint) => {
  const d = decodeCrAccess(q);
  expect(d.reserved).toBe(0n);
  expect(d.value).toEqual(x);
};
const io = (x: ReturnType<typeof decodeIo>['value']) => (q: bigint) => {
  const d = decodeIo(q);
  expect(d.reserved).toBe(0n);
  expect(d.malformed).toEqual([]);
  expect(d.value).toEqual(x);
};
const dr = (x: ReturnType<typeof decodeMovDr>['value']) => (q: bigint) => {
  const d = decodeMovDr(q);
  expect(d.reserved).toBe(0n);
  expect(d.value).toEqual(x);
};

/** The program: setup lines (no exit) and exit cases, in execution order. */
const PROGRAM: readonly (string | Case)[] = [
  `mov rbx, ${DATA}`, 'xor eax, eax', 'xor ecx, ecx',
  { line: 'cpuid', reason: 10, qualification: 0n },
  `mov rbx, ${DATA}`, // CPUID wrote EBX
  { line: 'hlt', reason: 12, qualification: 0n },
  { line: 'invlpg [rbx+0x10]', reason: 14, qualification: DATA + 0x10n },
  { line: 'invpcid rax, [rbx]', reason: 58, qualification: 0n, info: { ...MEM_RBX, reg2: 0 } },
  { line: 'rdpmc', reason: 15, qualification: 0n },
  { line: 'rdtsc', reason: 16, qualification: 0n },
  { line: 'rdtscp', reason: 51, qualification: 0n },
  'mov ecx, 0x174',
  { line: 'rdmsr', reason: 31, qualification: 0n },
  { line: 'wrmsr', reason: 32, qualification: 0n },
  { line: 'clts', reason: 28, qualification: cr({ access: 'clts' }) },
  'mov ax, 1',
  { line: 'lmsw ax', reason: 28, qualification: cr({ access: 'lmsw', memoryOperand: false, sourceData: 1 }) },
  'mov word ptr [rbx], 3',
  { line: 'lmsw word ptr [rbx]', reason: 28, qualification: cr({ access: 'lmsw', memoryOperand: true, sourceData: 3 }) },
  'mov rax, 0x80010031',
  { line: 'mov cr0, rax', reason: 28, qualification: cr({ access: 'mov-to-cr', cr: 0, gpr: 0 }) },
  'mov rsi, 0x46020',
  { line: 'mov cr4, rsi', reason: 28, qualification: cr({ access: 'mov-to-cr', cr: 4, gpr: 6 }) },
  // CR4.SMXE (set just above, allowed by this model's CR4_FIXED1) makes GETSEC exit instead of #UD.
  { line: 'getsec', reason: 11, qualification: 0n },
  'mov rcx, 0x200000',
  { line: 'mov cr3, rcx', reason: 28, qualification: cr({ access: 'mov-to-cr', cr: 3, gpr: 1 }) },
  { line: 'mov rdx, cr3', reason: 28, qualification: cr({ access: 'mov-from-cr', cr: 3, gpr: 2 }) },
  'xor edi, edi',
  { line: 'mov cr8, rdi', reason: 28, qualification: cr({ access: 'mov-to-cr', cr: 8, gpr: 7 }) },
  { line: 'mov r8, cr8', reason: 28, qualification: cr({ access: 'mov-from-cr', cr: 8, gpr: 8 }) },
  'mov rax, 0x400',
  { line: 'mov dr7, rax', reason: 29, qualification: dr({ dr: 7, direction: 'to-dr', gpr: 0 }) },
  { line: 'mov r9, dr6', reason: 29, qualification: dr({ dr: 6, direction: 'from-dr', gpr: 9 }) },
  { line: 'in al, 0x60', reason: 30, qualification: io({ size: 1, direction: 'in', string: false, rep: false, immediate: true, port: 0x60 }) },
  { line: 'out 0x80, al', reason: 30, qualification: io({ size: 1, direction: 'out', string: false, rep: false, immediate: true, port: 0x80 }) },
  'mov dx, 0x3f8',
  { line: 'in eax, dx', reason: 30, qualification: io({ size: 4, direction: 'in', string: false, rep: false, immediate: false, port: 0x3f8 }) },
  { line: 'out dx, ax', reason: 30, qualification: io({ size: 2, direction: 'out', string: false, rep: false, immediate: false, port: 0x3f8 }) },
  'mov dx, 0x1f0', `lea rdi, [rbx+0x100]`, 'mov ecx, 4',
  { line: 'rep insb byte ptr [rdi], dx', reason: 30, gla: DATA + 0x100n, info: { addressSize: 2 },
    qualification: io({ size: 1, direction: 'in', string: true, rep: true, immediate: false, port: 0x1f0 }) },
  `lea rsi, [rbx+0x200]`,
  { line: 'rep outsw dx, word ptr [rsi]', reason: 30, gla: DATA + 0x200n, info: { addressSize: 2, segment: 3 },
    qualification: io({ size: 2, direction: 'out', string: true, rep: true, immediate: false, port: 0x1f0 }) },
  { line: 'insd dword ptr [rdi], dx', reason: 30, gla: DATA + 0x100n, info: { addressSize: 2 },
    qualification: io({ size: 4, direction: 'in', string: true, rep: false, immediate: false, port: 0x1f0 }) },
  { line: 'outsb dx, byte ptr fs:[rsi]', reason: 30, gla: DATA + 0x200n, info: { addressSize: 2, segment: 4 },
    qualification: io({ size: 1, direction: 'out', string: true, rep: false, immediate: false, port: 0x1f0 }) },
  { line: 'vmcall', reason: 18, qualification: 0n },
  { line: 'vmclear qword ptr [rbx]', reason: 19, qualification: 0n, info: MEM_RBX },
  { line: 'vmlaunch', reason: 20, qualification: 0n },
  { line: 'vmptrld qword ptr [rbx+8]', reason: 21, qualification: 8n, info: MEM_RBX },
  { line: 'vmptrst qword ptr [rbx+0x10]', reason: 22, qualification: 0x10n, info: MEM_RBX },
  { line: 'vmread rax, rcx', reason: 23, qualification: 0n, info: { register: true, reg1: 0, reg2: 1 } },
  { line: 'vmread qword ptr [rbx+0x18], rcx', reason: 23, qualification: 0x18n, info: { ...MEM_RBX, register: false, reg2: 1 } },
  { line: 'vmresume', reason: 24, qualification: 0n },
  { line: 'vmwrite rcx, rax', reason: 25, qualification: 0n, info: { register: true, reg1: 0, reg2: 1 } },
  { line: 'vmwrite rdx, qword ptr [rbx+0x28]', reason: 25, qualification: 0x28n, info: { ...MEM_RBX, register: false, reg2: 2 } },
  { line: 'vmxoff', reason: 26, qualification: 0n },
  { line: 'vmxon qword ptr [rbx]', reason: 27, qualification: 0n, info: MEM_RBX },
  { line: 'invept rax, [rbx]', reason: 50, qualification: 0n, info: { ...MEM_RBX, reg2: 0 } },
  { line: 'invvpid rsi, [rbx+0x20]', reason: 53, qualification: 0x20n, info: { ...MEM_RBX, reg2: 6 } },
  { line: 'vmfunc', reason: 59, qualification: 0n },
  { line: 'pause', reason: 40, qualification: 0n },
  'lea rax, [rbx]', 'xor ecx, ecx', 'xor edx, edx',
  { line: 'monitor', reason: 39, qualification: 0n },
  { line: 'mwait', reason: 36, qualification: 0n },
  'xor eax, eax', 'xor ecx, ecx', 'xor edx, edx',
  { line: 'xsetbv', reason: 55, qualification: 0n },
  { line: 'wbinvd', reason: 54, qualification: 0n },
  { line: 'lgdt [rbx+0x30]', reason: 46, qualification: 0x30n, info: { ...MEM_RBX, instruction: 'lgdt' } },
  { line: 'lidt [rbx+0x30]', reason: 46, qualification: 0x30n, info: { ...MEM_RBX, instruction: 'lidt' } },
  { line: 'sgdt [rbx+0x40]', reason: 46, qualification: 0x40n, info: { ...MEM_RBX, instruction: 'sgdt' } },
  { line: 'sidt [rbx+0x40]', reason: 46, qualification: 0x40n, info: { ...MEM_RBX, instruction: 'sidt' } },
  { line: 'lldt ax', reason: 47, qualification: 0n, info: { register: true, reg1: 0, instruction: 'lldt' } },
  { line: 'ltr word ptr [rbx+0x50]', reason: 47, qualification: 0x50n, info: { ...MEM_RBX, register: false, instruction: 'ltr' } },
  { line: 'sldt dx', reason: 47, qualification: 0n, info: { register: true, reg1: 2, instruction: 'sldt' } },
  { line: 'str r10d', reason: 47, qualification: 0n, info: { register: true, reg1: 10, instruction: 'str' } },
  { line: 'rdrand rax', reason: 57, qualification: 0n, info: { register: 0, operandSize: 2 } },
  { line: 'rdseed ecx', reason: 61, qualification: 0n, info: { register: 1, operandSize: 1 } },
  { line: 'rdseed r11w', reason: 61, qualification: 0n, info: { register: 11, operandSize: 0 } },
  'mov eax, 0x100', 'xor edx, edx',
  { line: 'xsaves [rbx+0x80]', reason: 63, qualification: 0x80n, info: MEM_RBX },
  'mov eax, 0x100', 'xor edx, edx',
  { line: 'xrstors [rbx+0x80]', reason: 64, qualification: 0x80n, info: MEM_RBX },
  'xor eax, eax',
  { line: 'encls', reason: 60, qualification: 0n },
  { line: 'invd', reason: 13, qualification: 0n },
];

const CASES = PROGRAM.filter((p): p is Case => typeof p !== 'string');

function assembleProgram(): { bytes: Uint8Array; listing: readonly ListingLine[] } {
  const source = PROGRAM.map((p) => (typeof p === 'string' ? p : p.line)).join('\n');
  const r = assemble(source, { bitness: 64, ip: L2Layout.CODE });
  if (!r.ok) throw new Error(`${r.error.message} at ${r.error.text}`);
  return r;
}

/** kvm-unit-tests style: every exiting control the instructions above need, L2 in 64-bit mode under EPT. */
function config(code: Uint8Array): L1Config {
  return {
    l2: { mode: 'long64', code },
    controls: {
      primary: Primary.HLT_EXITING | Primary.INVLPG_EXITING | Primary.MWAIT_EXITING | Primary.RDPMC_EXITING | Primary.RDTSC_EXITING
        | Primary.CR3_LOAD_EXITING | Primary.CR3_STORE_EXITING | Primary.CR8_LOAD_EXITING | Primary.CR8_STORE_EXITING
        | Primary.MOV_DR_EXITING | Primary.MONITOR_EXITING | Primary.PAUSE_EXITING,
      secondary: Secondary.DESCRIPTOR_TABLE_EXITING | Secondary.ENABLE_RDTSCP | Secondary.WBINVD_EXITING | Secondary.RDRAND_EXITING
        | Secondary.ENABLE_INVPCID | Secondary.ENABLE_VM_FUNCTIONS | Secondary.RDSEED_EXITING | Secondary.ENABLE_XSAVES_XRSTORS
        | Secondary.ENABLE_ENCLS_EXITING,
    },
    ept: {},
    cr0Mask: 0xffff_ffffn,
    cr0Shadow: 0x8n, // TS set in the shadow: CLTS exits (SDM 25.1.3)
    cr4Mask: 0xffff_ffffn,
    ioBitmap: [0x60, 0x80, 0x3f8, 0x1f0],
    msrBitmap: { read: [0x174], write: [0x174] },
    l1Msrs: [[0xda0, 0x100n]],
    xssExitBitmap: 0x100n,
    enclsExitingBitmap: 1n,
    policy: { rules: [{ reason: 12, actions: [{ kind: 'skip' }] }, { reason: 59, actions: [{ kind: 'skip' }] }, { reason: 13, actions: [{ kind: 'stop' }] }] },
    maxExits: 200,
  };
}

function checkExit(c: Case, line: ListingLine, e: SeenExit): void {
  const x: ExitInformation = e.exit;
  const where = `${c.line}: ${show(x)}`;
  const reason = decodeExitReason(x.exitReason);
  expect(reason.reserved, where).toBe(0);
  expect(reason.value.entryFailure, where).toBe(false);
  expect(reason.value.basic, where).toBe(c.reason);
  expect(x.instructionLength, where).toBe(line.bytes.length);
  expect(x.interruptionInfo >>> 31, where).toBe(0);
  expect(x.idtVectoringInfo >>> 31, where).toBe(0);
  if (typeof c.qualification === 'bigint') expect(x.qualification, where).toBe(c.qualification);
  else if (c.qualification) c.qualification(x.qualification);
  if (c.gla !== undefined) expect(x.guestLinearAddress, where).toBe(c.gla);
  if (c.info) {
    const d = decodeInstructionInfo(c.reason, x.instructionInfo);
    expect(d, where).toBeDefined();
    expect(d!.reserved, where).toBe(0);
    expect(d!.value, where).toMatchObject(c.info);
  }
}

describe('every exit-causing instruction exits to L1 with the fields hardware gives (SDM 25.1.2-25.1.3, 27.2)', () => {
  const { bytes, listing } = assembleProgram();
  const byIp = new Map(listing.map((l) => [l.ip, l]));

  it('one exit per exiting instruction, in program order, each decoding back to its operands', () => {
    const run = runConfig(config(bytes), { cpu: SKYLAKE_SMX });
    expect(run.result.status).toBe('completed');
    const seen = run.exits.map((e) => byIp.get(e.rip)?.source ?? `rip 0x${e.rip.toString(16)}`);
    expect(seen).toEqual(CASES.map((c) => c.line));
    run.exits.forEach((e, i) => checkExit(CASES[i]!, byIp.get(e.rip)!, e));
    // Every reason the brief lists appears.
    const reasons = new Set(run.exits.map((e) => e.exit.exitReason & 0xffff));
    for (const r of [10, 11, 12, 13, 14, 15, 16, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32, 36, 39, 40, 46, 47, 50, 51, 53, 54, 55, 57, 58, 59, 60, 61, 63, 64]) {
      expect(reasons.has(r), `reason ${r}`).toBe(true);
    }
  });

  it('on the kvm-l1 model (no SMX in VMX operation, no ENCLS exiting) GETSEC raises #UD and ENCLS is not intercepted', () => {
    // IA32_VMX_CR4_FIXED1[14] = 0 keeps CR4.SMXE clear, so GETSEC is #UD (SDM 25.1.2); with EB[6] that exits as an
    // exception (reason 0, hardware exception, vector 6, no error code).
    const code = assemble('mov eax, 0\ngetsec\ninvd', { bitness: 64, ip: L2Layout.CODE });
    if (!code.ok) throw new Error(code.error.message);
    const run = runConfig({
      l2: { mode: 'long64', code: code.bytes }, ept: {}, exceptionBitmap: 1 << 6,
      policy: { rules: [{ reason: 0, actions: [{ kind: 'stop' }] }] },
    }, { cpu: KVM_L1 });
    expect(run.exits).toHaveLength(1);
    const x = run.exits[0]!.exit;
    expect(x.exitReason).toBe(0);
    expect(x.interruptionInfo).toBe(0x8000_0306);
    expect(run.exits[0]!.rip).toBe(L2Layout.CODE + 5n);
  });
});
