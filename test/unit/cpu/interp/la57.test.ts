// 57-bit linear addresses in the interpreter (CR4.LA57, 5-level paging) for L2 on the reference machine: canonical
// checks at bit 56 instead of bit 47 (#GP(0), #SS(0) for the stack), RIP and jump targets above 2^48, and VM-exit
// guest-linear fields (EPT violation, INVLPG qualification) carrying the full 57-bit address.
// Expectations from SDM Vol. 3A 3.3.7.1, 4.5, 6.14.1 and Vol. 3C 27.2.1.
import { describe, expect, it } from 'vitest';
import { asm64 } from '../../../../src/asm/index.js';
import { CpuModel } from '../../../../src/cpu/cpu-model.js';
import { Primary, Secondary } from '../../../../src/cpu/generated/controls.js';
import type { L1Config } from '../../../../src/cpu/l1/config.js';
import { L2Layout, type L2Mode } from '../../../../src/cpu/interp/l2-env.js';
import { SKYLAKE, runConfig } from '../machine/helpers.js';

/** Skylake with CR4.LA57 allowed in VMX operation (IA32_VMX_CR4_FIXED1[12] = 1); no preset allows it. */
const SKYLAKE_LA57 = new CpuModel({
  ...SKYLAKE.data,
  id: 'test-skylake-la57',
  vmxMsrs: { ...SKYLAKE.data.vmxMsrs, IA32_VMX_CR4_FIXED1: '0x00000000003737ff' },
});

const DATA = L2Layout.DATA;
/** Bit 48: canonical only with 5-level paging. The program aliases the top-level entry 1 to entry 0, so
 * HIGH + x maps like x (PML5[1] = PML5[0]). */
const HIGH = 1n << 48n;
const ALIAS = asm64`mov rax, ${L2Layout.PAGE_TABLES}; mov rcx, [rax]; mov [rax+8], rcx`;
/** Non-canonical even with 5-level paging. */
const BIT56 = 1n << 56n;
const STOP = { kind: 'stop' as const };

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

function run(mode: L2Mode, code: Uint8Array, extra: Partial<L1Config> = {}) {
  return runConfig({
    l2: { mode, code: concat(ALIAS, code) },
    controls: { primary: Primary.HLT_EXITING },
    exceptionBitmap: (1 << 12) | (1 << 13),
    policy: { rules: [{ reason: 'any', actions: [STOP] }] },
    ...extra,
  }, { cpu: SKYLAKE_LA57 });
}

describe('LA57 in the interpreter', () => {
  it('an address with bit 48 set is canonical with LA57 (reaches memory) and #GP(0) without', () => {
    const code = asm64`mov rbx, ${HIGH + DATA}; mov rax, [rbx]; hlt`;
    const la57 = run('long64-la57', code);
    expect(la57.exits.map((e) => e.exit.exitReason)).toEqual([12]);
    const four = run('long64', code);
    expect(four.exits.map((e) => e.exit.exitReason)).toEqual([0]);
    expect(four.exits[0]!.exit.interruptionInfo).toBe(0x8000_0b0d);
    expect(four.exits[0]!.exit.interruptionErrorCode).toBe(0);
    expect(four.exits[0]!.rip).toBe(L2Layout.CODE + BigInt(ALIAS.length) + 10n);
  });

  it('bit 56 set is non-canonical with LA57: #GP(0) for data, #SS(0) for the stack', () => {
    const data = run('long64-la57', asm64`mov rbx, ${BIT56}; mov rax, [rbx]; hlt`);
    expect(data.exits.map((e) => e.exit.exitReason)).toEqual([0]);
    expect(data.exits[0]!.exit.interruptionInfo).toBe(0x8000_0b0d);
    const stack = run('long64-la57', asm64`mov rsp, ${BIT56 + 0x100n}; push rax; hlt`);
    expect(stack.exits.map((e) => e.exit.exitReason)).toEqual([0]);
    expect(stack.exits[0]!.exit.interruptionInfo).toBe(0x8000_0b0c);
    expect(stack.exits[0]!.exit.interruptionErrorCode).toBe(0);
  });

  it('RIP above 2^48: a jump into the alias runs there with LA57; a jump to bit 56 faults at the jump', () => {
    // ALIAS (3 instructions) + mov rax, imm64 (10) + jmp rax (2) + hlt: the target is the hlt's alias.
    const hltAt = L2Layout.CODE + BigInt(ALIAS.length) + 12n;
    const ok = run('long64-la57', asm64`mov rax, ${HIGH + hltAt}; jmp rax; hlt`);
    expect(ok.exits.map((e) => e.exit.exitReason)).toEqual([12]);
    expect(ok.exits[0]!.rip).toBe(HIGH + hltAt);
    const bad = run('long64-la57', asm64`mov rax, ${BIT56 + hltAt}; jmp rax; hlt`);
    expect(bad.exits.map((e) => e.exit.exitReason)).toEqual([0]);
    expect(bad.exits[0]!.exit.interruptionInfo).toBe(0x8000_0b0d);
    expect(bad.exits[0]!.rip).toBe(hltAt - 2n);
  });

  it('an EPT violation at a 57-bit linear address reports the full guest-linear address', () => {
    const r = run('long64-la57', asm64`mov rbx, ${HIGH + DATA}; mov rax, [rbx]; mov qword ptr [rbx+8], rax; hlt`, {
      ept: { mappings: [{ l2: DATA, l1: 0x500_0000n, read: true, write: false, execute: false }] },
    });
    expect(r.exits.map((e) => e.exit.exitReason)).toEqual([48]);
    expect(r.exits[0]!.exit.guestLinearAddress).toBe(HIGH + DATA + 8n);
    expect(r.exits[0]!.exit.guestPhysicalAddress).toBe(DATA + 8n);
  });

  it('INVLPG exiting: the qualification is the 57-bit linear operand; instruction length 3', () => {
    const r = run('long64-la57', asm64`mov rbx, ${HIGH + DATA}; invlpg [rbx]; hlt`, {
      controls: { primary: Primary.HLT_EXITING | Primary.INVLPG_EXITING },
    });
    expect(r.exits.map((e) => e.exit.exitReason)).toEqual([14]);
    expect(r.exits[0]!.exit.qualification).toBe(HIGH + DATA);
    expect(r.exits[0]!.exit.instructionLength).toBe(3);
  });

  it('INVPCID type 0 checks its descriptor linear address against the 57-bit rule', () => {
    const invpcid = (mode: L2Mode, linear: bigint) => run(mode, asm64`mov rbx, ${DATA}; mov qword ptr [rbx], 0; mov rax, ${linear}; mov [rbx+8], rax; xor ecx, ecx; invpcid rcx, [rbx]; hlt`, {
      controls: { primary: Primary.HLT_EXITING, secondary: Secondary.ENABLE_INVPCID },
    });
    expect(invpcid('long64-la57', HIGH + DATA).exits.map((e) => e.exit.exitReason)).toEqual([12]);
    const bad = invpcid('long64-la57', BIT56);
    expect(bad.exits.map((e) => e.exit.exitReason)).toEqual([0]);
    expect(bad.exits[0]!.exit.interruptionInfo).toBe(0x8000_0b0d);
    expect(invpcid('long64', HIGH + DATA).exits.map((e) => e.exit.exitReason)).toEqual([0]);
  });
});
