// The oracle applied directly (DESIGN.md §3): the same built-in L1 hypervisor and L2 program run on the reference
// machine (L1 on a CPU with kvm-l1's capabilities) and on the nested machine (L1 as L0's guest, sdm profile), and
// every O1–O6 observation must be identical. One case per area of L0: VMX instructions, shadowing, the merge, L0-handled
// exits (I/O, MSR, CR emulation, EPT02 fills), reflected and synthesized exits, events, timer, entry failures.
import { describe, expect, it } from 'vitest';
import { assemble } from '../../../../src/asm/index.js';
import { Field } from '../../../../src/cpu/generated/vmcs-fields.js';
import { Pin, Primary, Secondary } from '../../../../src/cpu/generated/controls.js';
import { L2Layout, type L2Mode } from '../../../../src/cpu/interp/l2-env.js';
import type { L1Config } from '../../../../src/cpu/l1/config.js';
import { kvmProfile } from '../../../../src/nested/profile.js';
import { firstDifference, runConfigPair, type PairOptions } from './harness.js';

function code(src: string, mode: L2Mode = 'long64'): Uint8Array {
  const bits = mode === 'long64' ? 64 : mode === 'protected32' ? 32 : 16;
  const c = assemble(src, { bitness: bits, ip: mode === 'real' ? 0n : L2Layout.CODE });
  if (!c.ok) throw new Error(`asm: ${c.error.message} (${c.error.text})`);
  return c.bytes;
}

interface Case {
  readonly name: string;
  readonly config: L1Config;
  readonly opts?: PairOptions;
  /** Minimum exits to L1 the run must reach (guards against a scenario that silently does nothing). */
  readonly minExits?: number;
}

const LOOP = 'l: mov eax, 1\n add rbx, rax\n cpuid\n jmp l';

const CASES: readonly Case[] = [
  { name: 'CPUID exits, no EPT', config: { l2: { mode: 'long64', code: code(LOOP) }, maxExits: 6 }, minExits: 6 },
  { name: 'CPUID exits under EPT12 (EPT02 fills are invisible)', config: { l2: { mode: 'long64', code: code(LOOP) }, ept: {}, maxExits: 6 }, minExits: 6 },
  { name: 'EPT12 with A/D flags', config: { l2: { mode: 'long64', code: code('mov qword [0x90000], 5\n mov rax, [0x90008]\n cpuid\n hlt') }, ept: { accessedDirty: true }, maxExits: 3 }, minExits: 1 },
  {
    name: 'I/O: bitmap port reflected, other ports emulated by L0',
    config: { l2: { mode: 'long64', code: code('mov al, 7\n out 0x80, al\n in al, 0x60\n out 0x61, al\n mov dx, 0x3f8\n in al, dx\n cpuid\n hlt') }, ioBitmap: [0x80, 0x3f8], maxExits: 5 },
    minExits: 3,
  },
  {
    name: 'I/O without bitmaps or exiting: all emulated by L0',
    config: { l2: { mode: 'long64', code: code('mov al, 9\n out 0x70, al\n in al, 0x71\n in ax, 0x40\n cpuid\n hlt') }, maxExits: 2 },
    minExits: 1,
  },
  {
    name: 'MSR bitmap: intercepted MSRs reflected, others emulated by L0',
    config: {
      l2: { mode: 'long64', code: code('mov ecx, 0xc0000081\n rdmsr\n add eax, 3\n wrmsr\n mov ecx, 0xc0000082\n rdmsr\n wrmsr\n cpuid\n hlt') },
      msrBitmap: { read: [0xc0000082], write: [0xc0000081] }, maxExits: 5,
    },
    minExits: 2,
  },
  {
    name: 'CR0/CR4 writes: L1-owned bits reflected, L0-owned bits emulated, shadows',
    config: {
      l2: { mode: 'long64', code: code('mov rax, cr0\n or rax, 0x8\n mov cr0, rax\n mov rbx, cr0\n or rax, 0x40000000\n mov cr0, rax\n mov rsi, cr0\n mov rcx, cr4\n or rcx, 0x200\n mov cr4, rcx\n mov rdx, cr4\n and rcx, -0x81\n mov cr4, rcx\n cpuid\n hlt') },
      cr0Mask: 0x2n, cr0Shadow: 0x2n, cr4Mask: 0x80n, cr4Shadow: 0n, maxExits: 5,
    },
    minExits: 1,
  },
  {
    name: 'CR8 accesses without TPR shadow are L0\'s',
    config: { l2: { mode: 'long64', code: code('mov rax, 5\n mov cr8, rax\n mov rbx, cr8\n cpuid\n hlt') }, maxExits: 3 },
    minExits: 1,
  },
  {
    name: 'EPT12 violations reflected (unmapped data page), L1 maps and INVEPTs',
    config: {
      l2: { mode: 'long64', code: code('mov rax, [0x300000]\n mov qword [0x301000], 7\n cpuid\n hlt') },
      ept: {}, maxExits: 6,
    },
    minExits: 2,
  },
  {
    name: 'EPT12 read-only page: write violation',
    config: {
      l2: { mode: 'long64', code: code('mov rax, [0x90000]\n mov qword [0x90000], 7\n cpuid\n hlt') },
      ept: { mappings: [{ l2: 0x90000n, l1: 0x0409_0000n, read: true, write: false, execute: false }] }, maxExits: 6,
    },
    minExits: 2,
  },
  {
    name: 'exception bitmap: #UD reflected and skipped by L1, #BP delivered to L2 (its handler HLTs, HLT exits)',
    config: {
      l2: { mode: 'long64', code: code('ud2\n cpuid\n int3\n cpuid\n hlt') }, exceptionBitmap: 1 << 6, controls: { primary: Primary.HLT_EXITING }, maxExits: 4,
      policy: { rules: [{ reason: 0, actions: [{ kind: 'skip' }] }] },
    },
    minExits: 4,
  },
  {
    name: '#PF with PFEC mask/match',
    config: {
      l2: { mode: 'long64', code: code('mov rbx, 0x7fff0000000\n mov rax, [rbx]\n cpuid\n hlt') },
      exceptionBitmap: 1 << 14, pfecMask: 0x1, pfecMatch: 0x0, maxExits: 4,
    },
    minExits: 1,
  },
  {
    name: 'event injection at VM entry (external interrupt through L2 IDT)',
    config: { l2: { mode: 'long64', code: code('cpuid\n hlt'), rflags: 0x200n }, injection: { vector: 0x31, type: 0 }, controls: { primary: Primary.HLT_EXITING }, maxExits: 3 },
    minExits: 3,
  },
  {
    name: 'software interrupt injection with instruction length',
    config: { l2: { mode: 'long64', code: code('cpuid\n hlt') }, injection: { vector: 0x40, type: 4, instructionLength: 2 }, controls: { primary: Primary.HLT_EXITING }, maxExits: 3 },
    minExits: 3,
  },
  {
    name: 'external interrupts: vmcs12 exiting with acknowledge, then delivered to L2',
    config: { l2: { mode: 'long64', code: code('sti\n l: inc rax\n jmp l'), rflags: 0x200n }, controls: { pin: Pin.EXTERNAL_INTERRUPT_EXITING, exit: 0x8000 }, maxExits: 4 },
    opts: { schedule: [{ at: 20, kind: 'interrupt', vector: 0x50 }, { at: 60, kind: 'timer' }], budget: 400 },
    minExits: 1,
  },
  {
    name: 'external interrupt delivered straight to L2 (no exiting)',
    config: { l2: { mode: 'long64', code: code('sti\n l: inc rax\n cmp rax, 50\n jne l\n cpuid\n hlt'), rflags: 0x200n }, controls: { primary: Primary.HLT_EXITING }, maxExits: 3 },
    opts: { schedule: [{ at: 10, kind: 'interrupt', vector: 0x60 }] },
    minExits: 1,
  },
  {
    name: 'NMI exiting',
    config: { l2: { mode: 'long64', code: code('l: inc rax\n cmp rax, 40\n jne l\n cpuid\n hlt') }, controls: { pin: Pin.NMI_EXITING }, maxExits: 3 },
    opts: { schedule: [{ at: 15, kind: 'nmi' }] },
    minExits: 1,
  },
  {
    name: 'VMX-preemption timer (emulated by L0) with value saving',
    config: { l2: { mode: 'long64', code: code('l: inc rax\n jmp l') }, preemptionTimer: 3, controls: { exit: 0x40_0000 }, maxExits: 3 },
    opts: { budget: 2000 },
    minExits: 1,
  },
  {
    name: 'preemption timer value 0 expires before any L2 instruction',
    config: { l2: { mode: 'long64', code: code('l: inc rax\n jmp l') }, preemptionTimer: 0, maxExits: 2 },
    opts: { budget: 2000 },
    minExits: 1,
  },
  {
    name: 'TSC offsetting: L2 RDTSC sees host TSC + offset',
    config: { l2: { mode: 'long64', code: code('rdtsc\n mov rbx, rax\n rdtsc\n cpuid\n hlt') }, tscOffset: 0x1000n, maxExits: 2 },
    minExits: 1,
  },
  {
    name: 'VPID',
    config: { l2: { mode: 'long64', code: code(LOOP) }, vpid: 5, ept: {}, maxExits: 3 },
    minExits: 3,
  },
  {
    name: 'protected-mode L2 (unrestricted guest under EPT12)',
    config: { l2: { mode: 'protected32', code: code('mov eax, 1\n cpuid\n out 0x80, al\n hlt', 'protected32') }, maxExits: 3 },
    minExits: 1,
  },
  {
    name: 'real-mode L2',
    config: { l2: { mode: 'real', code: code('mov ax, 1\n cpuid\n hlt', 'real') }, maxExits: 3 },
    minExits: 1,
  },
  {
    name: 'VMCS shadowing for L2: shadowed VMREAD/VMWRITE by L2 emulated by L0, others reflected',
    config: {
      l2: { mode: 'long64', code: code('mov rax, 0x681e\n vmread rbx, rax\n mov rcx, 0x4402\n vmread rdx, rcx\n mov rax, 0x6820\n vmwrite rax, rbx\n cpuid\n hlt') },
      controls: { secondary: Secondary.VMCS_SHADOWING }, shadowFields: [0x681e, 0x6820], maxExits: 4,
    },
    minExits: 1,
  },
  {
    name: 'guest-state entry failure (exit 33) reported with its check',
    config: { l2: { mode: 'long64', code: code(LOOP) }, vmcsWrites: [[Field.GUEST_RFLAGS, 0n]], maxExits: 2 },
    minExits: 1,
  },
  {
    name: 'control-field VMfailValid(7)',
    config: { l2: { mode: 'long64', code: code(LOOP) }, vmcsWrites: [[Field.CR3_TARGET_COUNT, 9n]], maxExits: 2 },
  },
  {
    name: 'host-state VMfailValid(8)',
    config: { l2: { mode: 'long64', code: code(LOOP) }, vmcsWrites: [[Field.HOST_CR4, 0n]], maxExits: 2 },
  },
  {
    name: 'switching VMCS between exits (VMCLEAR + VMPTRLD write-back)',
    config: {
      l2: { mode: 'long64', code: code(LOOP) }, ept: {}, maxExits: 5,
      policy: { rules: [{ reason: 10, actions: [{ kind: 'emulate' }, { kind: 'switch-vmcs' }] }] },
    },
    minExits: 3,
  },
  {
    name: 'MTF exits',
    config: { l2: { mode: 'long64', code: code('nop\n nop\n out 0x80, al\n nop\n cpuid\n hlt') }, controls: { primary: Primary.MONITOR_TRAP_FLAG }, maxExits: 8 },
    minExits: 2,
  },
  {
    name: 'VMFUNC EPTP switching emulated by L0 (index 0), failure reflected as exit 59 (index 1)',
    config: {
      l2: { mode: 'long64', code: code('xor eax, eax\n xor ecx, ecx\n vmfunc\n mov qword [0x90000], 1\n mov ecx, 1\n vmfunc\n cpuid\n hlt') },
      ept: {}, vmfuncControls: 1n, controls: { secondary: Secondary.ENABLE_VM_FUNCTIONS }, maxExits: 3,
    },
    minExits: 1,
  },
  {
    name: 'HLT exiting and interrupt-window exiting',
    config: { l2: { mode: 'long64', code: code('sti\n hlt\n cpuid\n hlt'), rflags: 0x200n }, controls: { primary: Primary.HLT_EXITING | Primary.INTERRUPT_WINDOW_EXITING }, maxExits: 4 },
    minExits: 2,
  },
];

describe('nested machine ≡ reference machine (sdm profile)', () => {
  for (const c of CASES) {
    it(c.name, () => {
      const p = runConfigPair(c.config, c.opts);
      const diff = firstDifference(p.reference.log, p.nested.log);
      expect(diff, diff).toBeUndefined();
      expect(p.nested.result).toEqual(p.reference.result);
      expect(p.nested.result.exits).toBeGreaterThanOrEqual(c.minExits ?? 0);
      // Every EPT02 leaf L0 holds at the end is still EPT12 ∘ EPT01.
      expect(p.nested.machine.auditEpt02().map((x) => `${x.rule}: ${x.expected} / ${x.actual}`)).toEqual([]);
    });
  }

  it('with hardware VMCS shadowing for L1 switched off the observations are the same', () => {
    const p = runConfigPair({ l2: { mode: 'long64', code: code(LOOP) }, ept: {}, maxExits: 4 }, { shadowVmcs: false });
    expect(firstDifference(p.reference.log, p.nested.log)).toBeUndefined();
  });
});

describe('kvm profile: the only differences are KVM\'s known deviations', () => {
  const kvm = kvmProfile();
  const expected: Record<string, string> = {
    // N14 kvm.host-cr0-full-load: L1's CR0 is HOST_CR0 as a whole, not L2's CD carried over.
    'CR0/CR4 writes: L1-owned bits reflected, L0-owned bits emulated, shadows': 'detail.cr0',
    // KVM nested_vmx_calc_efer: LME follows "IA-32e mode guest" even with CR0.PG = 0 (SDM 26.3.2.1 keeps it).
    'protected-mode L2 (unrestricted guest under EPT12)': 'detail.efer',
    'real-mode L2': 'detail.efer',
  };
  for (const c of CASES) {
    it(c.name, () => {
      const p = runConfigPair(c.config, { ...c.opts, profile: kvm });
      const diff = firstDifference(p.reference.log, p.nested.log);
      const want = expected[c.name];
      if (want === undefined) expect(diff, diff).toBeUndefined();
      else expect(diff).toContain(want);
    });
  }
  it('without those deviations the kvm L0 is equivalent again', () => {
    const c = CASES.find((x) => x.name.startsWith('CR0/CR4'))!;
    const p = runConfigPair(c.config, { ...c.opts, profile: kvmProfile({ without: ['kvm.host-cr0-full-load'] }) });
    expect(firstDifference(p.reference.log, p.nested.log)).toBeUndefined();
  });
});
