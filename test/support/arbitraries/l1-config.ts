// Shared fast-check arbitraries for the built-in L1: whole L1Configs (controls fitted or exact, exception bitmap and
// PFEC, CR masks/shadows, I/O and MSR bitmaps, EPT12 mappings, VPID, TSC, preemption timer, entry injection, raw VMCS
// perturbations, VM-entry/exit MSR lists, an L2 program in one of the five modes (real, protected32 unpaged, paged32, pae32,
// long64), an exit-handling policy) plus external-event schedules.
// Reuses vmcs12.ts (control words allowed by kvm-l1) and l2-programs.ts (64-bit programs). Must not: run a machine.
import fc from 'fast-check';
import { assemble, type Bitness } from '../../../src/asm/index.js';
import { ExitReason } from '../../../src/cpu/generated/exit-reasons.js';
import { Field } from '../../../src/cpu/generated/vmcs-fields.js';
import { L2Layout } from '../../../src/cpu/interp/l2-env.js';
import type { ControlField, EventInjection, L1Action, L1Config, L1Policy, L1PolicyRule, MsrListEntry, MsrLists } from '../../../src/cpu/l1/config.js';
import type { ScheduledEvent } from '../../../src/cpu/machine/run-guest.js';
import { l2ProgramArb } from './l2-programs.js';
import { L1_MODEL, controlsArb, tscMultiplierArb } from './vmcs12.js';

export { L1_MODEL };

/** L2-physical page of the data area that l2ProgramArb's programs address through RBX. */
export const L2_DATA = 0x9_0000n;

/**
 * Controls whose entry checks depend on other controls or on pages the built-in L1 does not set up (virtual NMIs,
 * posted interrupts, NMI-window exiting, x2APIC / APIC-register virtualization, virtual-interrupt delivery, PML):
 * kept in one configuration in four so most runs reach L2 while the boundary stays covered.
 */
const DEPENDENT: Record<'pin' | 'primary' | 'secondary' | 'exit' | 'entry', number> = {
  pin: (1 << 5) | (1 << 7), primary: 1 << 22, secondary: (1 << 4) | (1 << 8) | (1 << 9) | (1 << 17), exit: 0, entry: 0,
};

/** A control word biased towards few bits: the allowed word masked with a sparse random mask. */
function sparseControls(group: 'pin' | 'primary' | 'secondary' | 'exit' | 'entry'): fc.Arbitrary<number> {
  return fc.tuple(controlsArb(L1_MODEL, group), fc.nat({ max: 0xffff_ffff }), fc.nat({ max: 0xffff_ffff }), fc.nat({ max: 3 }))
    .map(([v, a, b, keep]) => (v & a & b & (keep === 0 ? 0xffff_ffff : ~DEPENDENT[group])) >>> 0);
}

const EXIT_REASONS_IN_POLICIES = [
  ExitReason.EXCEPTION_NMI, ExitReason.EXTERNAL_INTERRUPT, ExitReason.INTERRUPT_WINDOW, ExitReason.NMI_WINDOW, ExitReason.CPUID,
  ExitReason.HLT, ExitReason.RDTSC, ExitReason.VMCALL, ExitReason.CR_ACCESS, ExitReason.IO_INSTRUCTION, ExitReason.MSR_READ,
  ExitReason.MSR_WRITE, ExitReason.EPT_VIOLATION, ExitReason.PREEMPTION_TIMER, ExitReason.MONITOR_TRAP_FLAG, ExitReason.RDRAND,
];

const controlFieldArb: fc.Arbitrary<ControlField> = fc.constantFrom('pin', 'primary', 'secondary', 'exit', 'entry', 'exception-bitmap');
const pageArb = fc.oneof(fc.constantFrom(L2_DATA, L2_DATA + 0x1000n, L2Layout.CODE, 0x20_0000n, 0x20_2000n, L2Layout.IDT), fc.nat({ max: 0xff }).map((p) => BigInt(p) << 12n));

/** EPT rights, mostly the combinations without write-only (a misconfiguration, SDM 28.2.3.1). */
const rightsArb = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom({ read: true, write: true, execute: true }, { read: true, write: false, execute: true }, { read: true, write: true, execute: false }, { read: true, write: false, execute: false }, { read: false, write: false, execute: false }) },
  { weight: 1, arbitrary: fc.record({ read: fc.boolean(), write: fc.boolean(), execute: fc.boolean() }) },
);

const injectionArb: fc.Arbitrary<EventInjection> = fc.oneof(
  fc.record({ vector: fc.integer({ min: 32, max: 255 }), type: fc.constant(0) }),
  fc.constant({ vector: 2, type: 2 }),
  fc.constantFrom(
    { vector: 6, type: 3 }, { vector: 13, type: 3, errorCode: 0 }, { vector: 14, type: 3, errorCode: 2 }, { vector: 3, type: 6, instructionLength: 1 },
    { vector: 0x80, type: 4, instructionLength: 2 }, { vector: 0, type: 7 },
  ),
  // Anything at all (entry checks decide).
  fc.record({ vector: fc.nat({ max: 255 }), type: fc.nat({ max: 7 }), errorCode: fc.nat({ max: 0x1_ffff }), instructionLength: fc.nat({ max: 16 }) }),
);

export const l1ActionArb: fc.Arbitrary<L1Action> = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom<L1Action>({ kind: 'skip' }, { kind: 'emulate' }, { kind: 'reinject' }) },
  { weight: 1, arbitrary: fc.constantFrom<L1Action>({ kind: 'stop' }, { kind: 'switch-vmcs' }, { kind: 'ept-fix' }) },
  { weight: 1, arbitrary: injectionArb.map((i): L1Action => ({ kind: 'inject', ...i })) },
  { weight: 1, arbitrary: fc.record({ field: controlFieldArb, set: fc.nat({ max: 0xffff_ffff }), clear: fc.nat({ max: 0xffff_ffff }) }).map((r): L1Action => ({ kind: 'set-control', ...r })) },
  { weight: 1, arbitrary: fc.record({ l2: pageArb, rights: rightsArb }).map((r): L1Action => ({ kind: 'ept-protect', l2: r.l2, ...r.rights })) },
  { weight: 1, arbitrary: pageArb.map((l2): L1Action => ({ kind: 'ept-unmap', l2 })) },
  { weight: 1, arbitrary: fc.record({ l2: pageArb, l1: fc.nat({ max: 0x3fff }).map((p) => BigInt(p) << 12n) }).map((r): L1Action => ({ kind: 'ept-map', ...r })) },
  { weight: 1, arbitrary: fc.constantFrom(1, 2).map((type): L1Action => ({ kind: 'invept', type: type as 1 | 2 })) },
  { weight: 1, arbitrary: fc.constantFrom(0, 1, 2, 3).map((type): L1Action => ({ kind: 'invvpid', type: type as 0 | 1 | 2 | 3, linear: 0x1000n })) },
  { weight: 1, arbitrary: fc.record({ encoding: fc.constantFrom(Field.GUEST_RIP, Field.GUEST_RFLAGS, Field.EXCEPTION_BITMAP, Field.GUEST_INTERRUPTIBILITY_INFO, Field.TPR_THRESHOLD, Field.GUEST_CR0), value: fc.bigInt({ min: 0n, max: 0xffff_ffffn }) }).map((r): L1Action => ({ kind: 'vmwrite', ...r })) },
);

export const l1PolicyRuleArb: fc.Arbitrary<L1PolicyRule> = fc.record({
  reason: fc.oneof(fc.constantFrom(...EXIT_REASONS_IN_POLICIES), fc.constant('any' as const)),
  actions: fc.array(l1ActionArb, { minLength: 1, maxLength: 3 }),
  from: fc.option(fc.integer({ min: 1, max: 8 }), { nil: undefined }),
  count: fc.option(fc.integer({ min: 1, max: 4 }), { nil: undefined }),
}).map((r) => {
  const { from, count, ...rest } = r;
  return { ...rest, ...(from !== undefined ? { from } : {}), ...(count !== undefined ? { count } : {}) };
});

export const l1PolicyArb: fc.Arbitrary<L1Policy> = fc.array(l1PolicyRuleArb, { maxLength: 4 }).map((rules) => ({ rules }));

export const scheduleArb: fc.Arbitrary<readonly ScheduledEvent[]> = fc.array(
  fc.oneof(
    fc.record({ at: fc.nat({ max: 60 }), kind: fc.constant('interrupt' as const), vector: fc.integer({ min: 32, max: 255 }) }),
    fc.record({ at: fc.nat({ max: 60 }), kind: fc.constant('nmi' as const) }),
    fc.record({ at: fc.nat({ max: 60 }), kind: fc.constant('timer' as const) }),
  ),
  { maxLength: 3 },
);

function asm(lines: readonly string[], bitness: Bitness): Uint8Array {
  const ip = bitness === 16 ? 0n : L2Layout.CODE;
  const r = assemble(lines.join('\n'), { bitness, ip });
  if (!r.ok) throw new Error(`arbitrary produced unassemblable code: ${r.error.message}: ${r.error.text}`);
  return r.bytes;
}

/** Instructions that assemble in every mode (16/32-bit programs are built from these). */
const SMALL_MODE_LINES = ['cpuid', 'rdtsc', 'in al, 0x60', 'out 0x80, al', 'nop', 'inc eax', 'rdmsr', 'hlt', 'pause', 'mov eax, cr0', 'mov cr0, eax', 'sti', 'cli', 'int3', 'ud2', 'wbinvd'];

/** An L2 program and its mode; programs end with VMCALL (the policy's stop rule). */
export const l2SpecArb: fc.Arbitrary<{ readonly mode: 'real' | 'protected32' | 'paged32' | 'pae32' | 'long64'; readonly code: Uint8Array; readonly lines: readonly string[] }> = fc.oneof(
  { weight: 4, arbitrary: l2ProgramArb.map((p) => ({ mode: 'long64' as const, lines: [...p.lines, 'vmcall'] })) },
  { weight: 2, arbitrary: fc.tuple(fc.constantFrom('real' as const, 'protected32' as const, 'paged32' as const, 'pae32' as const), fc.array(fc.constantFrom(...SMALL_MODE_LINES), { minLength: 1, maxLength: 8 }))
    .map(([mode, lines]) => ({ mode, lines: [...lines, 'vmcall'] })) },
).map((s) => ({ ...s, code: asm(s.lines, s.mode === 'real' ? 16 : s.mode === 'long64' ? 64 : 32) }));

/** MSRs a list may name: state the interpreter keeps (LSTAR / KERNEL_GS_BASE values canonical). */
const listMsrArb: fc.Arbitrary<MsrListEntry> = fc.oneof(
  fc.tuple(fc.constantFrom(0xc000_0082, 0xc000_0102, 0x175, 0x176), fc.bigInt({ min: 0n, max: 0x7fff_ffff_ffffn })),
  fc.tuple(fc.constant(0xc000_0103), fc.bigInt({ min: 0n, max: 0xffff_ffffn })),
  fc.tuple(fc.constant(0xc000_0081), fc.bigInt({ min: 0n, max: (1n << 64n) - 1n })),
);

/** Entries VM entry rejects (SDM 26.4): FS/GS base, x2APIC, microcode update, reserved bits, a #GP value. */
const badEntryArb: fc.Arbitrary<MsrListEntry> = fc.constantFrom<MsrListEntry>(
  [0xc000_0100, 0n], [0xc000_0101, 0n], [0x808, 0n], [0x79, 0n], [0xc000_0081, 0n, 1], [0xc000_0082, 0x8000_0000_0000_0000n],
);

/** VM-entry MSR-load (one list in four has an invalid entry somewhere), VM-exit MSR-store and MSR-load lists. */
export const msrListsArb: fc.Arbitrary<MsrLists> = fc.record({
  entryLoad: fc.tuple(fc.array(listMsrArb, { maxLength: 3 }), fc.nat({ max: 3 }), badEntryArb, fc.nat({ max: 3 }))
    .map(([ok, bad, entry, at]) => (bad === 0 ? [...ok.slice(0, at), entry, ...ok.slice(at)] : ok)),
  exitStore: fc.array(fc.constantFrom(0xc000_0082, 0xc000_0102, 0xc000_0103, 0x175, 0x10), { maxLength: 3 }),
  exitLoad: fc.array(listMsrArb, { maxLength: 2 }),
});

const maybe = <T>(a: fc.Arbitrary<T>) => fc.option(a, { nil: undefined, freq: 2 });

/** A whole built-in-L1 configuration for the kvm-l1 model; the L2 program (and the stop-at-VMCALL rule) included. */
export const l1ConfigArb: fc.Arbitrary<L1Config> = fc.record({
  l2: l2SpecArb,
  interruptsOn: fc.boolean(),
  pin: sparseControls('pin'), primary: sparseControls('primary'), secondary: sparseControls('secondary'),
  exit: sparseControls('exit'), entry: sparseControls('entry'),
  /** One configuration in ten writes its controls exactly as generated (VMfailValid(7) material). */
  exactSometimes: fc.nat({ max: 9 }),
  exceptionBitmap: fc.oneof(fc.constant(0), fc.constant(1 << 14), fc.nat({ max: 0xffff_ffff })),
  pfecMask: fc.oneof(fc.constant(0), fc.nat({ max: 0x1f })),
  pfecMatch: fc.oneof(fc.constant(0), fc.nat({ max: 0x1f })),
  cr0Mask: fc.constantFrom(0n, 0xffff_ffffn, 0x8n, 0x8000_0001n), cr0Shadow: fc.constantFrom(0n, 0x8n, 0x8000_0031n),
  cr4Mask: fc.constantFrom(0n, 0xffff_ffffn, 0x2000n), cr4Shadow: fc.constantFrom(0n, 0x2020n),
  ioBitmap: maybe(fc.array(fc.constantFrom(0x60, 0x80, 0x3f8, 0x1f0, 0x7fff, 0x8000, 0xffff), { maxLength: 4 })),
  msrBitmap: maybe(fc.record({ read: fc.array(fc.constantFrom(0x10, 0x174, 0x1d9, 0xc000_0080, 0xc000_0100), { maxLength: 3 }), write: fc.array(fc.constantFrom(0x10, 0x174, 0xc000_0080), { maxLength: 3 }) })),
  ept: maybe(fc.record({
    accessedDirty: fc.boolean(),
    mappings: fc.array(fc.record({ l2: pageArb, l1: fc.nat({ max: 0x3fff }).map((p) => 0x0600_0000n + (BigInt(p) << 12n)), rights: rightsArb })
      .map(({ l2, l1, rights }) => ({ l2, l1, ...rights })), { maxLength: 3 }),
  })),
  vpid: maybe(fc.integer({ min: 0, max: 0xffff })),
  tscOffset: maybe(fc.bigInt({ min: 0n, max: (1n << 64n) - 1n })),
  tscMultiplier: maybe(tscMultiplierArb),
  preemptionTimer: maybe(fc.nat({ max: 8 })),
  injection: maybe(injectionArb),
  msrLists: maybe(msrListsArb),
  vmcsWrites: fc.oneof(
    { weight: 5, arbitrary: fc.constant([] as [number, bigint][]) },
    { weight: 1, arbitrary: fc.array(fc.tuple(fc.constantFrom(...Object.values(Field).filter((e) => (e & 1) === 0)), fc.bigInt({ min: 0n, max: (1n << 64n) - 1n })), { maxLength: 2 }) },
  ),
  policy: l1PolicyArb,
}).map((r): L1Config => {
  const exact = r.exactSometimes === 0;
  return {
    l2: { mode: r.l2.mode, code: r.l2.code, gprs: [[3, L2_DATA]], ...(r.interruptsOn ? { rflags: 0x200n } : {}) },
    controls: { pin: r.pin, primary: r.primary, secondary: r.secondary, exit: r.exit, entry: r.entry },
    ...(exact ? { controlsMode: 'exact' as const } : {}),
    exceptionBitmap: r.exceptionBitmap, pfecMask: r.pfecMask, pfecMatch: r.pfecMatch,
    cr0Mask: r.cr0Mask, cr0Shadow: r.cr0Shadow, cr4Mask: r.cr4Mask, cr4Shadow: r.cr4Shadow,
    ...(r.ioBitmap ? { ioBitmap: r.ioBitmap } : {}),
    ...(r.msrBitmap ? { msrBitmap: r.msrBitmap } : {}),
    ...(r.ept ? { ept: r.ept } : {}),
    ...(r.vpid !== undefined ? { vpid: r.vpid } : {}),
    ...(r.tscOffset !== undefined ? { tscOffset: r.tscOffset } : {}),
    ...(r.tscMultiplier !== undefined ? { tscMultiplier: r.tscMultiplier } : {}),
    ...(r.preemptionTimer !== undefined ? { preemptionTimer: r.preemptionTimer } : {}),
    ...(r.injection ? { injection: r.injection } : {}),
    ...(r.msrLists ? { msrLists: r.msrLists } : {}),
    vmcsWrites: r.vmcsWrites,
    policy: { rules: [{ reason: ExitReason.VMCALL, actions: [{ kind: 'stop' }] }, ...r.policy.rules] },
    maxExits: 24,
  };
});
