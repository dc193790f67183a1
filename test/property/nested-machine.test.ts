// The oracle as a property (DESIGN.md §3, reference §9.2 P-REFLECT / P-EXITSTATE / P-SHADOW / P-TSC on whole runs):
// for generated L1 hypervisor configurations (controls, bitmaps, CR masks, exception bitmap, EPT12, VPID, TSC offset,
// preemption timer, event injection) and L2 programs, the nested machine (sdm profile) emits exactly the reference
// machine's observations, and every EPT02 leaf L0 holds afterwards still composes EPT12 ∘ EPT01.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { assemble } from '../../src/asm/index.js';
import { Pin, Primary } from '../../src/cpu/generated/controls.js';
import { L2Layout } from '../../src/cpu/interp/l2-env.js';
import type { L1Config } from '../../src/cpu/l1/config.js';
import { propertyParams } from '../support/property.js';
import { firstDifference, runConfigPair } from '../unit/nested/machine/harness.js';

function code(src: string): Uint8Array {
  const c = assemble(src, { bitness: 64, ip: L2Layout.CODE });
  if (!c.ok) throw new Error(`asm: ${c.error.message}`);
  return c.bytes;
}

/** L2 programs touching every class of exit L0 handles or reflects; each eventually exits or halts. */
const PROGRAMS: readonly Uint8Array[] = [
  code('l: mov eax, 1\n cpuid\n inc rbx\n jmp l'),
  code('mov al, 3\n out 0x80, al\n in al, 0x61\n mov dx, 0x3f8\n out dx, al\n in ax, dx\n cpuid\n hlt'),
  code('mov ecx, 0xc0000081\n rdmsr\n inc eax\n wrmsr\n mov ecx, 0x10\n rdmsr\n mov ecx, 0xc0000102\n wrmsr\n cpuid\n hlt'),
  code('mov rax, cr0\n xor rax, 0x8\n mov cr0, rax\n mov rbx, cr0\n mov rcx, cr4\n xor rcx, 0x200\n mov cr4, rcx\n mov rdx, cr4\n mov rax, 3\n mov cr8, rax\n mov rsi, cr8\n cpuid\n hlt'),
  code('mov qword [0x90000], 1\n mov rax, [0x300000]\n mov qword [0x301008], 2\n mov rbx, [0x90010]\n cpuid\n hlt'),
  code('rdtsc\n mov rbx, rax\n rdtsc\n sub rax, rbx\n int3\n cpuid\n ud2\n hlt'),
  code('sti\n l: inc rax\n pause\n cmp rax, 200\n jne l\n cpuid\n hlt'),
  code('mov rax, 0x681e\n vmread rbx, rax\n vmcall\n invlpg [0x90000]\n wbinvd\n hlt'),
];

const arbConfig: fc.Arbitrary<L1Config> = fc.record({
  program: fc.nat({ max: PROGRAMS.length - 1 }),
  ept: fc.boolean(),
  accessedDirty: fc.boolean(),
  hlt: fc.boolean(),
  rdtsc: fc.boolean(),
  cr8: fc.boolean(),
  mtf: fc.oneof({ weight: 5, arbitrary: fc.constant(false) }, { weight: 1, arbitrary: fc.constant(true) }),
  pause: fc.boolean(),
  invlpg: fc.boolean(),
  extInt: fc.boolean(),
  nmi: fc.boolean(),
  io: fc.subarray([0x80, 0x61, 0x3f8, 0x3f9]),
  msrRead: fc.subarray([0xc0000081, 0x10, 0xc0000102]),
  msrWrite: fc.subarray([0xc0000081, 0xc0000102]),
  useMsrBitmap: fc.boolean(),
  cr0Mask: fc.constantFrom(0n, 0x8n, 0x2n, 0x20n),
  cr4Mask: fc.constantFrom(0n, 0x200n, 0x80n),
  exceptions: fc.subarray([3, 6, 14]),
  vpid: fc.option(fc.integer({ min: 1, max: 9 })),
  tscOffset: fc.option(fc.bigInt({ min: 0n, max: 0xffffn })),
  timer: fc.option(fc.integer({ min: 0, max: 40 }), { freq: 4 }),
  inject: fc.option(fc.constantFrom({ vector: 0x30, type: 0 }, { vector: 3, type: 6, instructionLength: 1 }, { vector: 13, type: 3, errorCode: 0 }), { freq: 4 }),
}).map((g): L1Config => {
  let primary = 0;
  if (g.hlt) primary |= Primary.HLT_EXITING;
  if (g.rdtsc) primary |= Primary.RDTSC_EXITING;
  if (g.cr8) primary |= Primary.CR8_LOAD_EXITING | Primary.CR8_STORE_EXITING;
  if (g.mtf) primary |= Primary.MONITOR_TRAP_FLAG;
  if (g.pause) primary |= Primary.PAUSE_EXITING;
  if (g.invlpg) primary |= Primary.INVLPG_EXITING;
  let pin = 0;
  if (g.extInt) pin |= Pin.EXTERNAL_INTERRUPT_EXITING;
  if (g.nmi) pin |= Pin.NMI_EXITING;
  return {
    l2: { mode: 'long64', code: PROGRAMS[g.program]!, rflags: 0x200n },
    controls: { primary, pin },
    ...(g.ept ? { ept: { accessedDirty: g.accessedDirty } } : {}),
    ...(g.io.length ? { ioBitmap: g.io } : {}),
    ...(g.useMsrBitmap ? { msrBitmap: { read: g.msrRead, write: g.msrWrite } } : {}),
    cr0Mask: g.cr0Mask, cr0Shadow: 0n, cr4Mask: g.cr4Mask, cr4Shadow: 0n,
    exceptionBitmap: g.exceptions.reduce((m, v) => m | (1 << v), 0),
    ...(g.vpid !== null ? { vpid: g.vpid } : {}),
    ...(g.tscOffset !== null ? { tscOffset: g.tscOffset } : {}),
    ...(g.timer !== null ? { preemptionTimer: g.timer } : {}),
    ...(g.inject !== null ? { injection: g.inject } : {}),
    maxExits: 8,
  };
});

const arbSchedule = fc.array(
  fc.oneof(
    fc.record({ at: fc.nat({ max: 300 }), kind: fc.constant('interrupt' as const), vector: fc.constantFrom(0x20, 0x40, 0x80) }),
    fc.record({ at: fc.nat({ max: 300 }), kind: fc.constant('nmi' as const) }),
  ),
  { maxLength: 3 },
);

describe('nested machine ≡ reference machine on generated L1 configurations', () => {
  it('same observations (sdm profile), EPT02 sound at the end', () => {
    fc.assert(
      fc.property(arbConfig, arbSchedule, (config, schedule) => {
        const p = runConfigPair(config, { schedule, budget: 500 });
        const diff = firstDifference(p.reference.log, p.nested.log);
        expect(diff, diff).toBeUndefined();
        expect(p.nested.result).toEqual(p.reference.result);
        expect(p.nested.machine.auditEpt02()).toEqual([]);
      }),
      propertyParams({ numRuns: 50 }),
    );
  });
});
