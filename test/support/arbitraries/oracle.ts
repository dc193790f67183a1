// Shared arbitraries and property specs for the end-to-end oracle (test/property/oracle-*.test.ts, test/mutants): cases =
// built-in L1 configuration, L2 program, SDM-following exit policy (EPT12 edits then INVEPT, unless they only add rights),
// event schedule, and edits L1 makes before its first VMLAUNCH (one entry-checked field flipped by a bit, so runs sit on
// both sides of the check boundary, or host-state choices); plus the §9.2 properties over them. Must not: be engine code.
import fc from 'fast-check';
import { assemble } from '../../../src/asm/index.js';
import { ExitCtl, Pin, Primary, Secondary } from '../../../src/cpu/generated/controls.js';
import { ENTRY_CHECKS } from '../../../src/cpu/generated/entry-checks.js';
import { ExitReason } from '../../../src/cpu/generated/exit-reasons.js';
import { Field } from '../../../src/cpu/generated/vmcs-fields.js';
import { L2Layout } from '../../../src/cpu/interp/l2-env.js';
import { builtinL1 } from '../../../src/cpu/l1/builtin.js';
import { L1Layout, type L1Action, type L1Config, type L1Policy, type L1PolicyRule } from '../../../src/cpu/l1/config.js';
import type { L1LaunchResult, L1Machine, L1Program } from '../../../src/cpu/l1/machine.js';
import type { ScheduledEvent } from '../../../src/cpu/machine/run-guest.js';
import { fieldByName, fieldDef } from '../../../src/cpu/vmcs.js';
import { checkProgram, type CheckResult } from '../../../src/checker/run.js';
import type { L0Parts } from '../../../src/nested/l0/parts.js';
import type { L0Profile } from '../../../src/nested/profile.js';
import { L1_MODEL, l1ConfigArb, l1PolicyArb, L2_DATA, scheduleArb } from './l1-config.js';
import { exitCaseArb, memoryAccessArb } from './l2-programs.js';
import { tscMultiplierArb } from './vmcs12.js';

/** One VMWRITE L1 performs right before its first VMLAUNCH: `value`, or (with `flipBit`) the current value with one bit flipped. */
export type PreLaunchEdit =
  | { readonly kind: 'flip'; readonly field: number; readonly bit: number; readonly check: string }
  | { readonly kind: 'write'; readonly field: number; readonly value: bigint };

/** A differential case: what checkProgram runs on both machines. */
export interface OracleCase {
  readonly config: L1Config;
  readonly schedule: readonly ScheduledEvent[];
  readonly edits: readonly PreLaunchEdit[];
}

/** An L1Machine that performs `edits` (VMREAD + VMWRITE, as L1 would) just before the first VMLAUNCH it forwards. */
class PreLaunch implements L1Machine {
  private done = false;
  constructor(private readonly m: L1Machine, private readonly edits: readonly PreLaunchEdit[]) {}
  vmxon = (r: Parameters<L1Machine['vmxon']>[0]) => this.m.vmxon(r);
  vmxoff = () => this.m.vmxoff();
  vmclear = (r: Parameters<L1Machine['vmclear']>[0]) => this.m.vmclear(r);
  vmptrld = (r: Parameters<L1Machine['vmptrld']>[0]) => this.m.vmptrld(r);
  vmptrst = () => this.m.vmptrst();
  vmread = (e: bigint) => this.m.vmread(e);
  vmwrite = (e: bigint, v: bigint) => this.m.vmwrite(e, v);
  vmresume = (): L1LaunchResult => this.m.vmresume();
  invept = (t: bigint, e: bigint) => this.m.invept(t, e);
  invvpid = (t: bigint, v: number, l: bigint) => this.m.invvpid(t, v, l);
  readMemory: L1Machine['readMemory'] = (g, s) => this.m.readMemory(g, s);
  writeMemory: L1Machine['writeMemory'] = (g, s, v) => this.m.writeMemory(g, s, v);
  writeBytes: L1Machine['writeBytes'] = (g, b) => this.m.writeBytes(g, b);
  rdmsr = (i: number) => this.m.rdmsr(i);
  wrmsr = (i: number, v: bigint) => this.m.wrmsr(i, v);
  setGpr = (i: number, v: bigint) => this.m.setGpr(i, v);
  l1State = () => this.m.l1State();
  vmlaunch = (): L1LaunchResult => {
    if (!this.done) {
      this.done = true;
      for (const e of this.edits) {
        if (e.kind === 'write') {
          this.m.vmwrite(BigInt(e.field), e.value);
          continue;
        }
        const r = this.m.vmread(BigInt(e.field));
        if (r.kind === 'vmsucceed' && r.value !== undefined) this.m.vmwrite(BigInt(e.field), r.value ^ (1n << BigInt(e.bit)));
      }
    }
    return this.m.vmlaunch();
  };
}

/** The L1 program of a case: the built-in L1 for its configuration, with its pre-launch edits. */
export function oracleProgram(c: OracleCase): L1Program {
  const inner = builtinL1(c.config);
  return c.edits.length === 0 ? inner : (m) => inner(new PreLaunch(m, c.edits));
}

/** Short description of a case for failure messages and statistics. */
export function describeCase(c: OracleCase): string {
  const edits = c.edits.map((e) => (e.kind === 'flip' ? `${fieldDef(e.field)?.name}^bit${e.bit} (${e.check})` : `${fieldDef(e.field)?.name}=0x${e.value.toString(16)}`));
  return `${c.config.l2.mode} L2, ${c.config.policy?.rules.length ?? 0} policy rules, ${c.schedule.length} events${edits.length ? `, edits: ${edits.join(', ')}` : ''}`;
}

// ---------------------------------------------------------------------------------------------------------------
// Policies that follow the SDM.

const EPT_EDITS: ReadonlySet<L1Action['kind']> = new Set(['ept-map', 'ept-unmap', 'ept-protect']);

/**
 * An EPT12 edit that can remove or change a translation must be followed by INVEPT before L2 runs again (SDM 28.3.3.4:
 * otherwise L2 may use the old translation, which a CPU without cached translations would not). Adds INVEPT
 * (all-context, or single-context when `single`) after the last edit of each rule that lacks one.
 */
export function withInvept(policy: L1Policy, single = false): L1Policy {
  const rules = policy.rules.map((r): L1PolicyRule => {
    const last = r.actions.reduce((k, a, i) => (EPT_EDITS.has(a.kind) ? i : k), -1);
    if (last < 0 || r.actions.slice(last + 1).some((a) => a.kind === 'invept')) return r;
    const actions = [...r.actions.slice(0, last + 1), { kind: 'invept' as const, type: single ? 1 as const : 2 as const }, ...r.actions.slice(last + 1)];
    return { ...r, actions };
  });
  return { rules };
}

/** Keep L2 running: VMCALL stops (the programs end with it), everything else is emulated or skipped. */
const KEEP_GOING: readonly L1PolicyRule[] = [{ reason: ExitReason.VMCALL, actions: [{ kind: 'stop' }] }];

function policyOf(extra: L1Policy, single = false): L1Policy {
  return { rules: [...KEEP_GOING, ...withInvept(extra, single).rules] };
}

// ---------------------------------------------------------------------------------------------------------------
// Perturbations on both sides of the VM-entry-check boundary.

/** Fields named by VM-entry checks (the catalogue), with the checks naming each. */
const CHECKED_FIELDS: readonly { field: number; width: number; check: string }[] = (() => {
  const out: { field: number; width: number; check: string }[] = [];
  const seen = new Set<string>();
  for (const c of ENTRY_CHECKS) {
    for (const name of c.fields) {
      const d = fieldByName(name);
      if (!d || d.access !== 'full' || d.type === 'read-only data' || seen.has(name)) continue;
      seen.add(name);
      out.push({ field: d.encoding, width: d.width === '16' ? 16 : d.width === '32' ? 32 : 64, check: c.id });
    }
  }
  return out;
})();

/** One bit of one entry-checked field flipped relative to what the built-in L1 wrote. */
export const perturbationArb: fc.Arbitrary<PreLaunchEdit> = fc
  .record({ i: fc.nat({ max: CHECKED_FIELDS.length - 1 }), low: fc.nat({ max: 15 }), any: fc.nat({ max: 63 }), wide: fc.boolean() })
  .map(({ i, low, any, wide }) => {
    const f = CHECKED_FIELDS[i]!;
    const bit = (wide ? any : low) % f.width;
    return { kind: 'flip' as const, field: f.field, bit, check: f.check };
  });

// ---------------------------------------------------------------------------------------------------------------
// Case arbitraries, one per property family.

const base = (config: L1Config, schedule: readonly ScheduledEvent[] = [], edits: readonly PreLaunchEdit[] = []): OracleCase => ({ config, schedule, edits });

function asm64(lines: readonly string[]): Uint8Array {
  const r = assemble(lines.join('\n'), { bitness: 64, ip: L2Layout.CODE });
  if (!r.ok) throw new Error(`oracle arbitrary produced unassemblable code: ${r.error.message}: ${r.error.text}`);
  return r.bytes;
}

/** Exit-capable instructions that assemble and whose operands the harness sets up (RBX = data page). */
const REFLECT_LINES = exitCaseArb
  .filter((e) => e.kind === 'io' || e.kind === 'msr' || e.kind === 'simple' || e.kind === 'cr-read' || e.kind === 'cr-write' || e.kind === 'clts' || e.kind === 'lmsw' || e.kind === 'mov-dr' || e.kind === 'rand')
  .filter((e) => !(e.kind === 'io' && e.string) && !(e.kind === 'simple' && (e.mnemonic === 'hlt' || e.mnemonic === 'mwait')))
  .map((e) => e.text);

/** R12 points above L2's identity-mapped gigabyte: accesses through it raise #PF (not present, read or write). */
const PF_BASE = 0x8000_0000n;
const PF_LINES = fc.constantFrom('mov rax, [r12]', 'mov [r12], rax', 'mov rax, [r12 + 0x1000]', 'add [r12 + 8], eax');

/** 64-bit L2 programs mixing exit-causing instructions, #PF-raising and plain memory accesses and ALU work; end with VMCALL. */
export const mixedL2Arb: fc.Arbitrary<readonly string[]> = fc.array(
  fc.oneof({ weight: 3, arbitrary: REFLECT_LINES }, { weight: 2, arbitrary: memoryAccessArb }, { weight: 1, arbitrary: PF_LINES },
    { weight: 1, arbitrary: fc.constantFrom('inc r10', 'add r11, r10', 'xor r14d, r14d') }),
  { minLength: 1, maxLength: 10 },
).map((l) => [...l, 'vmcall']);

/**
 * The built-in L1's emulation of CPUID (and RDMSR, IN, …) writes L2's RAX/RBX/RCX/RDX, so data accesses go through RSI,
 * which no emulated instruction touches (string I/O, which would, is not generated here).
 */
const viaRsi = (lines: readonly string[]): string[] => lines.map((l) => l.replaceAll('[rbx', '[rsi'));

function withL2(config: L1Config, lines: readonly string[]): L1Config {
  return { ...config, l2: { ...config.l2, mode: 'long64', code: asm64(viaRsi(lines)), gprs: [[3, L2_DATA], [6, L2_DATA], [12, PF_BASE]] } };
}

/**
 * l1ConfigArb without what makes most runs stop before L2 does the interesting part: no preemption timer, entry
 * injection or window / MTF / TPR-shadow controls, no secondary, exit or entry controls beyond what the configuration
 * itself needs. Used where the property is about something other than those (EPT, CR shadows, TSC, VPID, host state).
 */
const quietConfigArb: fc.Arbitrary<L1Config> = l1ConfigArb.map((c) => {
  const { preemptionTimer: _t, injection: _i, ...rest } = c;
  const noisy = Primary.MONITOR_TRAP_FLAG | Primary.NMI_WINDOW_EXITING | Primary.INTERRUPT_WINDOW_EXITING | Primary.USE_TPR_SHADOW | Primary.ACTIVATE_TERTIARY_CONTROLS;
  return {
    ...rest, controlsMode: 'adjust', vmcsWrites: [],
    controls: { pin: (c.controls?.pin ?? 0) & (Pin.EXTERNAL_INTERRUPT_EXITING | Pin.NMI_EXITING), primary: (c.controls?.primary ?? 0) & ~noisy, secondary: 0, exit: 0, entry: 0 },
  };
});

/** Ports and MSRs the bitmap-driven lines use, so vmcs12's I/O and MSR bitmaps decide their exits. */
const BITMAP_PORTS = [0x60, 0x80, 0x3f8, 0x8000] as const;
const BITMAP_MSRS = [0x10, 0x174, 0x1d9, 0xc000_0100, 0xc000_0102] as const;
const BITMAP_LINES = fc.oneof(
  fc.constantFrom('in al, 0x60', 'out 0x80, al', 'in eax, 0x80'),
  fc.record({ port: fc.constantFrom(0x3f8, 0x8000), out: fc.boolean() }).map(({ port, out }) => `mov edx, 0x${port.toString(16)}\n${out ? 'out dx, al' : 'in al, dx'}`),
  fc.record({ msr: fc.constantFrom(...BITMAP_MSRS), write: fc.boolean() }).map(({ msr, write }) => `mov ecx, 0x${msr.toString(16)}\nxor eax, eax\nxor edx, edx\n${write ? 'wrmsr' : 'rdmsr'}`),
);

/**
 * P-SUPERSET / P-REFLECT: random vmcs12 controls, masks and exception bitmap; I/O and MSR bitmaps that name some of the
 * ports and MSRs L2 uses (reads and writes intercepted differently); L2 mixes exit-causing instructions and accesses.
 */
export const reflectCaseArb: fc.Arbitrary<OracleCase> = fc.record({
  c: l1ConfigArb, lines: mixedL2Arb, bitmapLines: fc.array(BITMAP_LINES, { maxLength: 4 }), extra: l1PolicyArb,
  ports: fc.subarray([...BITMAP_PORTS]), reads: fc.subarray([...BITMAP_MSRS]), writes: fc.subarray([...BITMAP_MSRS]), uncond: fc.boolean(),
}).map(({ c, lines, bitmapLines, extra, ports, reads, writes, uncond }) => {
  const primary = ((c.controls?.primary ?? 0) & ~Primary.UNCONDITIONAL_IO_EXITING) | (uncond ? Primary.UNCONDITIONAL_IO_EXITING : 0);
  return base({
    ...withL2(c, [...bitmapLines, ...lines]), controls: { ...c.controls, primary }, ioBitmap: ports, msrBitmap: { read: reads, write: writes },
    policy: policyOf(extra), vmcsWrites: [], controlsMode: 'adjust', maxExits: 10,
  });
});

const CR_BITS = fc.constantFrom(0n, 0x8n, 0x20n, 0x1_0000n, 0x8000_0000n, 0x4_0000n, 0xffff_ffffn, 0x6000_0000n);
/** P-SHADOW: CR0/CR4 masks and shadows; L2 reads and writes CR0/CR4 (and CLTS / LMSW). */
export const shadowCaseArb: fc.Arbitrary<OracleCase> = fc.record({
  c: quietConfigArb, cr0Mask: CR_BITS, cr0Shadow: CR_BITS, cr4Mask: fc.constantFrom(0n, 0x20n, 0x2000n, 0x80n, 0x3f_ffffn), cr4Shadow: fc.constantFrom(0n, 0x20n, 0x2000n, 0x80n),
  ops: fc.array(fc.constantFrom('mov rax, cr0', 'mov rcx, cr4', 'mov cr0, rax', 'mov cr4, rcx', 'clts', 'lmsw ax', 'or rax, 8', 'and rax, -9', 'xor rcx, 0x80', 'smsw rdx'), { minLength: 1, maxLength: 8 }),
}).map(({ c, cr0Mask, cr0Shadow, cr4Mask, cr4Shadow, ops }) => base({
  ...withL2(c, ['mov rax, cr0', 'mov rcx, cr4', ...ops, 'mov rdx, cr0', 'mov rsi, cr4', 'vmcall']),
  cr0Mask, cr0Shadow, cr4Mask, cr4Shadow, policy: policyOf({ rules: [] }), vmcsWrites: [], controlsMode: 'adjust', maxExits: 12,
}));

/** P-TSC: vmcs12 TSC offsetting and scaling with random values; L2 reads the TSC (RDTSC / RDTSCP) without exiting. */
export const tscCaseArb: fc.Arbitrary<OracleCase> = fc.record({
  c: quietConfigArb, offset: fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), mul: tscMultiplierArb, exiting: fc.nat({ max: 4 }),
  body: fc.array(fc.constantFrom('rdtsc', 'mov r8, rax', 'mov r9, rdx', 'inc r10', 'rdtscp'), { minLength: 1, maxLength: 6 }),
}).map(({ c, offset, mul, exiting, body }) => {
  const primary = ((c.controls?.primary ?? 0) | Primary.USE_TSC_OFFSETTING | Primary.ACTIVATE_SECONDARY_CONTROLS) & ~(exiting === 0 ? 0 : Primary.RDTSC_EXITING);
  return base({
    ...withL2(c, ['rdtsc', ...body, 'vmcall']), tscOffset: offset, tscMultiplier: mul,
    controls: { ...c.controls, primary, secondary: (c.controls?.secondary ?? 0) | Secondary.USE_TSC_SCALING | Secondary.ENABLE_RDTSCP },
    policy: policyOf({ rules: [] }), vmcsWrites: [], controlsMode: 'adjust', maxExits: 12,
  });
});

const DATA_PAGES = [L2_DATA, L2_DATA + 0x1000n, L2_DATA + 0x2000n, L2_DATA + 0x3000n];
const rights = fc.record({ read: fc.boolean(), write: fc.boolean(), execute: fc.boolean() }).map((r) => (r.write && !r.read ? { ...r, read: true } : r));
/** Data accesses spread over the first pages of the data area (RBX = RSI = L2_DATA). */
const spreadAccess = fc.record({ page: fc.nat({ max: 3 }), off: fc.nat({ max: 0xff8 }), write: fc.boolean(), rmw: fc.boolean() })
  .map(({ page, off, write, rmw }) => {
    const at = `[rbx + 0x${(page * 0x1000 + (off & ~7)).toString(16)}]`;
    return rmw ? `lock add qword ptr ${at}, rax` : write ? `mov qword ptr ${at}, rax` : `mov rax, qword ptr ${at}`;
  });

/**
 * P-EPT-COMP / P-EPT-AD / P-EPT-INV: EPT12 with A/D on or off, some data pages remapped or restricted, L2 accessing
 * them; on EPT violations L1 fixes, remaps or restricts pages, then INVEPT (single- or all-context), or — with
 * `grantOnly` — only grants more rights (which needs no INVEPT). `restrict` makes every generated mapping lack R or W.
 */
function eptCases(o: { readonly grantOnly: fc.Arbitrary<boolean>; readonly restrict: boolean }): fc.Arbitrary<OracleCase> {
  // Data accesses need R (and W): a restricted mapping lacks one of those, so L2's accesses fault.
  const mapRights = o.restrict ? rights.filter((r) => !(r.read && r.write)) : rights;
  return fc.record({
    c: quietConfigArb, ad: fc.boolean(), single: fc.boolean(),
    maps: fc.array(fc.record({ page: fc.nat({ max: 3 }), target: fc.nat({ max: 7 }), r: mapRights }), { minLength: o.restrict ? 1 : 0, maxLength: 4 }),
    accesses: fc.array(spreadAccess, { minLength: 1, maxLength: 10 }),
    onViolation: fc.array(fc.oneof(
      fc.constant<L1Action>({ kind: 'ept-fix' }),
      fc.record({ page: fc.nat({ max: 3 }), r: rights }).map(({ page, r }): L1Action => ({ kind: 'ept-protect', l2: DATA_PAGES[page]!, ...r })),
      fc.record({ page: fc.nat({ max: 3 }), target: fc.nat({ max: 7 }) }).map(({ page, target }): L1Action => ({ kind: 'ept-map', l2: DATA_PAGES[page]!, l1: 0x0600_0000n + BigInt(target) * 0x1000n })),
      fc.nat({ max: 3 }).map((page): L1Action => ({ kind: 'ept-unmap', l2: DATA_PAGES[page]! })),
    ), { minLength: 1, maxLength: 3 }),
    grantOnly: o.grantOnly,
    // An event delivered while L2's stack page is read-only in EPT12: the exit happens during delivery (IDT vectoring).
    duringDelivery: fc.option(fc.record({ at: fc.nat({ max: 6 }), nmi: fc.boolean() }), { nil: undefined, freq: 2 }),
  }).map(({ c, ad, single, maps, accesses, onViolation, grantOnly, duringDelivery }) => {
    // Grant-only handling maps the faulting page with all rights and resumes without INVEPT (permission increase).
    const fix: L1Action[] = grantOnly ? [{ kind: 'ept-fix' }] : [...onViolation, { kind: 'ept-fix' }, { kind: 'invept', type: single ? 1 : 2 }];
    const rules: L1PolicyRule[] = [...KEEP_GOING, { reason: ExitReason.EPT_VIOLATION, actions: [...fix, { kind: 'reinject' }] }, { reason: 'any', actions: [{ kind: 'emulate' }] }];
    const stack = L2Layout.STACK_TOP - 0x1000n;
    const mappings = [
      // Grant-only keeps each page at its default L1 page (where 'ept-fix' maps it), so fixing only adds rights.
      ...maps.map((m) => ({ l2: DATA_PAGES[m.page]!, l1: grantOnly ? L1Layout.L2_BASE + DATA_PAGES[m.page]! : 0x0600_0000n + BigInt(m.target) * 0x1000n, ...m.r })),
      ...(duringDelivery ? [{ l2: stack, l1: L1Layout.L2_BASE + stack, read: true, write: false, execute: false }] : []),
    ];
    const withCode = withL2(c, [...accesses, 'vmcall']);
    return base({
      ...withCode, ...(duringDelivery ? { l2: { ...withCode.l2, rflags: 0x200n } } : {}),
      controls: { ...c.controls, pin: (c.controls?.pin ?? 0) & ~(Pin.EXTERNAL_INTERRUPT_EXITING | Pin.NMI_EXITING) },
      ept: { accessedDirty: ad, mappings },
      policy: { rules: grantOnly ? rules : withInvept({ rules }, single).rules }, vmcsWrites: [], controlsMode: 'adjust', maxExits: 16,
    }, duringDelivery ? [duringDelivery.nmi ? { at: duringDelivery.at, kind: 'nmi' } : { at: duringDelivery.at, kind: 'interrupt', vector: 0x40 }] : []);
  });
}

export const eptCaseArb: fc.Arbitrary<OracleCase> = eptCases({ grantOnly: fc.boolean(), restrict: false });
/** P-EPT-INV: mappings that lack rights, so L2 faults and L1 edits EPT12 and invalidates (grant-only half the time). */
export const eptInvCaseArb: fc.Arbitrary<OracleCase> = eptCases({ grantOnly: fc.boolean(), restrict: true });

/** P-VPID: VPID on or off (and changed between entries by switching VMCS), INVVPID of every type, INVLPG in L2. */
export const vpidCaseArb: fc.Arbitrary<OracleCase> = fc.record({
  c: quietConfigArb, vpid: fc.option(fc.integer({ min: 0, max: 0xffff }), { nil: undefined }),
  body: fc.array(fc.oneof(fc.constantFrom('invlpg [rbx]', 'cpuid', 'mov rax, [rbx]', 'mov [rbx + 8], rax', 'rdtsc', 'mov rdi, cr3\nmov cr3, rdi'), memoryAccessArb), { minLength: 1, maxLength: 6 }),
  onExit: fc.array(fc.oneof(
    fc.constantFrom(0, 1, 2, 3).map((type): L1Action => ({ kind: 'invvpid', type: type as 0 | 1 | 2 | 3, linear: 0x9_0000n })),
    fc.record({ v: fc.integer({ min: 0, max: 0xffff }) }).map(({ v }): L1Action => ({ kind: 'vmwrite', encoding: Field.VIRTUAL_PROCESSOR_ID, value: BigInt(v) })),
    fc.constant<L1Action>({ kind: 'switch-vmcs' }),
  ), { maxLength: 3 }),
}).map(({ c, vpid, body, onExit }) => base({
  ...withL2(c, [...body, 'vmcall']), ...(vpid !== undefined ? { vpid } : {}),
  policy: { rules: [...KEEP_GOING, { reason: 'any', actions: [...onExit, { kind: 'emulate' }] }] }, vmcsWrites: [], controlsMode: 'adjust', maxExits: 12,
}));

/** Host-state choices L1 makes before launching: null or other selectors, bases, CR0 bits, PAT, SYSENTER, exit controls. */
const hostEditArb: fc.Arbitrary<PreLaunchEdit> = fc.oneof(
  fc.record({ f: fc.constantFrom(Field.HOST_SS_SELECTOR, Field.HOST_DS_SELECTOR, Field.HOST_ES_SELECTOR, Field.HOST_FS_SELECTOR, Field.HOST_GS_SELECTOR), v: fc.constantFrom(0n, 0x10n, 0x18n) })
    .map(({ f, v }) => ({ kind: 'write' as const, field: f, value: v })),
  fc.record({ f: fc.constantFrom(Field.HOST_FS_BASE, Field.HOST_GS_BASE, Field.HOST_TR_BASE, Field.HOST_GDTR_BASE, Field.HOST_IDTR_BASE, Field.HOST_IA32_SYSENTER_ESP, Field.HOST_IA32_SYSENTER_EIP), v: fc.bigInt({ min: 0n, max: (1n << 47n) - 1n }) })
    .map(({ f, v }) => ({ kind: 'write' as const, field: f, value: v })),
  fc.record({ f: fc.constantFrom(Field.HOST_IA32_SYSENTER_CS), v: fc.bigInt({ min: 0n, max: 0xffff_ffffn }) }).map(({ f, v }) => ({ kind: 'write' as const, field: f, value: v })),
  // CR0.ET / NW / CD and other bits the host-state load does not modify (SDM 27.5.1).
  fc.constantFrom(4, 16, 29, 30, 18, 1, 3).map((bit) => ({ kind: 'flip' as const, field: Field.HOST_CR0, bit, check: 'host.cr0' })),
  fc.constantFrom(7, 9, 10, 16).map((bit) => ({ kind: 'flip' as const, field: Field.HOST_CR4, bit, check: 'host.cr4' })),
  fc.constantFrom(ExitCtl.LOAD_IA32_PAT, ExitCtl.LOAD_IA32_EFER, ExitCtl.SAVE_IA32_PAT, ExitCtl.SAVE_IA32_EFER, ExitCtl.SAVE_DEBUG_CONTROLS, ExitCtl.CLEAR_IA32_BNDCFGS)
    .map((bit) => ({ kind: 'flip' as const, field: Field.VM_EXIT_CONTROLS, bit: 31 - Math.clz32(bit), check: 'exit-controls' })),
  fc.bigInt({ min: 0n, max: 0x0707_0707_0707_0707n }).map((v) => ({ kind: 'write' as const, field: Field.HOST_IA32_PAT, value: v & 0x0707_0707_0707_0707n })),
);

/** P-EXITSTATE: varied host-state areas and exit controls; L2 runs a short mixed program (several exits to L1). */
export const exitStateCaseArb: fc.Arbitrary<OracleCase> = fc.record({ c: quietConfigArb, lines: mixedL2Arb, edits: fc.array(hostEditArb, { minLength: 1, maxLength: 4 }) })
  .map(({ c, lines, edits }) => base({ ...withL2(c, lines), policy: policyOf({ rules: [] }), vmcsWrites: [], controlsMode: 'adjust', maxExits: 8 }, [], edits));

/**
 * P-PRIO: several nested events at once — an injected event, NMIs and interrupts scheduled at the same L2 step,
 * preemption timer 0 or small, MTF, window exiting, NMI and external-interrupt exiting.
 */
export const prioCaseArb: fc.Arbitrary<OracleCase> = fc.record({
  c: l1ConfigArb, at: fc.nat({ max: 4 }), events: fc.array(fc.constantFrom('nmi', 'interrupt', 'timer'), { minLength: 1, maxLength: 3 }), vector: fc.integer({ min: 0x20, max: 0xff }),
  pin: fc.constantFrom(0, Pin.NMI_EXITING, Pin.EXTERNAL_INTERRUPT_EXITING, Pin.NMI_EXITING | Pin.EXTERNAL_INTERRUPT_EXITING | Pin.VIRTUAL_NMIS),
  primary: fc.constantFrom(0, Primary.MONITOR_TRAP_FLAG, Primary.INTERRUPT_WINDOW_EXITING, Primary.MONITOR_TRAP_FLAG | Primary.INTERRUPT_WINDOW_EXITING),
  timer: fc.option(fc.nat({ max: 3 }), { nil: undefined }), saveTimer: fc.boolean(), ack: fc.boolean(), sti: fc.boolean(),
  injection: fc.option(fc.constantFrom({ vector: 6, type: 3 }, { vector: 0x30, type: 0 }, { vector: 2, type: 2 }, { vector: 3, type: 6, instructionLength: 1 }), { nil: undefined }),
  lines: fc.array(fc.constantFrom('nop', 'inc r10', 'cpuid', 'mov rax, [rbx]', 'sti', 'cli', 'pause'), { minLength: 2, maxLength: 8 }),
}).map((r) => {
  const schedule: ScheduledEvent[] = r.events.map((k) => (k === 'nmi' ? { at: r.at, kind: 'nmi' as const } : k === 'timer' ? { at: r.at, kind: 'timer' as const } : { at: r.at, kind: 'interrupt' as const, vector: r.vector }));
  const c = r.c;
  const withCode = withL2(c, [...(r.sti ? ['sti'] : []), ...r.lines, 'vmcall']);
  return base({
    ...withCode,
    l2: { ...withCode.l2, rflags: 0x200n },
    controls: {
      ...c.controls, pin: (c.controls?.pin ?? 0) | r.pin, primary: (c.controls?.primary ?? 0) | r.primary,
      exit: (c.controls?.exit ?? 0) | (r.ack ? ExitCtl.ACKNOWLEDGE_INTERRUPT_ON_EXIT : 0) | (r.timer !== undefined && r.saveTimer ? ExitCtl.SAVE_VMX_PREEMPTION_TIMER_VALUE : 0),
    },
    ...(r.timer !== undefined ? { preemptionTimer: r.timer } : {}),
    ...(r.injection !== undefined ? { injection: r.injection } : {}),
    policy: policyOf({ rules: [] }), vmcsWrites: [], controlsMode: 'adjust', maxExits: 12,
  }, schedule);
});

/** P-CHECK: a valid configuration with exactly one VM-entry-checked field perturbed by one bit before VMLAUNCH. */
export const checkCaseArb: fc.Arbitrary<OracleCase> = fc.record({ c: l1ConfigArb, p: perturbationArb })
  .map(({ c, p }) => base({ ...c, vmcsWrites: [], controlsMode: 'adjust', policy: policyOf({ rules: [] }), maxExits: 4 }, [], [p]));

/** Any case: the general differential fuzzing mix (configurations exactly as l1-config.ts generates them, schedules). */
export const anyCaseArb: fc.Arbitrary<OracleCase> = fc.record({ c: l1ConfigArb, s: scheduleArb }).map(({ c, s }) => base({ ...c, policy: withInvept(c.policy ?? { rules: [] }) }, s));

// ---------------------------------------------------------------------------------------------------------------
// The oracle properties (reference §9.2), shared by test/property/oracle-*.test.ts and the mutant run (test/mutants).

/** L2 steps per entry: the generated programs are short; a run that loops stops here on both machines alike. */
export const ORACLE_L2_BUDGET = 1000;

/** checkProgram for one case on L0 `profile` (optionally a wrong L0 made of `parts`). */
export function checkCase(c: OracleCase, profile: L0Profile, parts?: L0Parts): CheckResult {
  return checkProgram(oracleProgram(c), { schedule: c.schedule, l2StepBudget: ORACLE_L2_BUDGET }, { cpu: L1_MODEL, profile, mode: 'all', ...(parts ? { parts } : {}) });
}

/** The unexplained divergences of a result as lines a developer can act on (at most `max`). */
export function divergenceText(r: CheckResult, max = 6): string {
  const un = r.divergences.filter((d) => d.kind !== 'expected-deviation');
  return un.slice(0, max).map((d) => `  [${d.rule}] event ${d.event}${d.field ? ` ${d.field}` : ''}: expected ${d.expected}, actual ${d.actual} — ${d.explanation}`).join('\n')
    + (un.length > max ? `\n  … ${un.length - max} more` : '');
}

export type OraclePropertyId =
  | 'P-SUPERSET' | 'P-REFLECT' | 'P-SHADOW' | 'P-TSC' | 'P-EPT-COMP' | 'P-EPT-AD' | 'P-EPT-INV' | 'P-VPID' | 'P-EXITSTATE' | 'P-PRIO' | 'P-CHECK';

export interface OracleProperty {
  readonly id: OraclePropertyId | 'general-mix';
  readonly title: string;
  readonly arb: fc.Arbitrary<OracleCase>;
  /** Runs with TURTLES_RUNS unset (propertyParams scales it). */
  readonly numRuns: number;
  /** Where the focused unit-level variant of the property lives (not repeated here). */
  readonly unit: string | null;
  /** What the generated cases must reach at least `min` times in one run of the property (else the generator rotted). */
  readonly coverage: readonly { readonly name: string; readonly min: number; readonly test: (c: OracleCase, r: CheckResult) => boolean }[];
}

const exits = (r: CheckResult): number => r.stats.reference.exits;
const exitsOf = (r: CheckResult, name: string): number => r.stats.referenceExits[name] ?? 0;
const instr = (r: CheckResult, prefix: string): number => Object.entries(r.stats.referenceInstructions).filter(([k]) => k.startsWith(prefix)).reduce((a, [, n]) => a + n, 0);

/** Every property: the sdm L0 shows no divergence at all (observations O1–O6 and the nested-run invariants). */
export const ORACLE_PROPERTIES: readonly OracleProperty[] = [
  {
    id: 'P-SUPERSET', title: 'exits(vmcs12, e) ⇒ exits(vmcs02, e): every exit L1 asks for reaches L0 (merge invariant + O2)', arb: reflectCaseArb, numRuns: 60,
    unit: 'test/property/nested-merge.test.ts (P-SUPERSET on the merge alone)',
    coverage: [{ name: 'L2 exits to L1 at least twice', min: 8, test: (_c, r) => exits(r) >= 2 }, { name: 'merge checked', min: 20, test: (_c, r) => r.stats.invariants.mergeChecks > 0 }],
  },
  {
    id: 'P-REFLECT', title: 'an exit reaches L1 exactly when a CPU running vmcs12 would exit, with identical exit information', arb: reflectCaseArb.map((c) => ({ ...c, config: { ...c.config, maxExits: 14 } })), numRuns: 60,
    unit: 'test/property/nested-reflect.test.ts (reflection decision alone)',
    coverage: [{ name: 'hardware exits judged by the single-level rules', min: 15, test: (_c, r) => r.stats.invariants.reflectionsJudged > 0 }],
  },
  {
    id: 'P-SHADOW', title: 'L2 reads CR0/CR4 as under vmcs12; vmcs12 guest CR0/CR4 after exits follow the three-way rule', arb: shadowCaseArb, numRuns: 40,
    unit: 'test/property/nested-merge.test.ts (P-SHADOW on merge and sync)',
    coverage: [{ name: 'masked CR bits with L2 reaching its CR reads', min: 5, test: (c, r) => (c.config.cr0Mask ?? 0n) !== 0n && exits(r) >= 1 }],
  },
  {
    id: 'P-TSC', title: 'L2 reads the TSC of vmcs12 offset/multiplier composed with L0\'s', arb: tscCaseArb, numRuns: 40,
    unit: 'test/property/nested-merge.test.ts (P-TSC arithmetic)',
    coverage: [{ name: 'L2 ran to its VMCALL', min: 8, test: (_c, r) => exitsOf(r, 'VMCALL') > 0 }],
  },
  {
    id: 'P-EPT-COMP', title: 'EPT12 ∘ EPT01 through EPT02: same translations, violations (qualification) and misconfigurations', arb: eptCaseArb, numRuns: 50,
    unit: 'test/property/nested-ept-comp.test.ts (composition on generated tables)',
    coverage: [{ name: 'EPT violations delivered to L1', min: 4, test: (_c, r) => exitsOf(r, 'EPT_VIOLATION') > 0 }, { name: 'EPT02 leaves checked', min: 15, test: (_c, r) => r.stats.invariants.ept02Leaves > 0 }],
  },
  {
    id: 'P-EPT-AD', title: 'EPT12 accessed/dirty flags after L2 accesses equal the reference\'s (O5)', arb: eptCaseArb.map((c) => ({ ...c, config: { ...c.config, ept: { ...c.config.ept, accessedDirty: true } } })), numRuns: 30,
    unit: 'test/property/nested-ept-comp.test.ts (P-EPT-AD)',
    coverage: [{ name: 'L2 ran with EPT12 A/D', min: 8, test: (_c, r) => exits(r) >= 1 && r.stats.invariants.ept02Leaves > 0 }],
  },
  {
    id: 'P-EPT-INV', title: 'after EPT12 edits and INVEPT no L2 access uses the old translation; rights grants need no INVEPT', arb: eptInvCaseArb, numRuns: 50,
    unit: 'test/property/nested-ept-inv.test.ts (invalidation on the EPT02 manager)',
    coverage: [
      { name: 'INVEPT executed after an EPT12 edit', min: 6, test: (_c, r) => instr(r, 'invept:vmsucceed') > 0 },
      { name: 'rights granted without INVEPT', min: 2, test: (c, r) => exitsOf(r, 'EPT_VIOLATION') > 0 && !c.config.policy!.rules.some((x) => x.actions.some((a) => a.kind === 'invept')) },
    ],
  },
  {
    id: 'P-VPID', title: 'VPID: vpid12 changes, INVVPID of every type, entries/exits without VPID flush as a CPU does', arb: vpidCaseArb, numRuns: 40, unit: null,
    coverage: [{ name: 'INVVPID executed', min: 4, test: (_c, r) => instr(r, 'invvpid:') > 0 }, { name: 'VPID flushes checked', min: 15, test: (_c, r) => r.stats.invariants.vpidChecks > 0 }],
  },
  {
    id: 'P-EXITSTATE', title: 'after every exit to L1, L1\'s state is vmcs12\'s host state loaded as SDM 27.5 says (O3)', arb: exitStateCaseArb, numRuns: 40, unit: null,
    coverage: [{ name: 'exits with edited host state', min: 10, test: (_c, r) => exits(r) >= 1 }],
  },
  {
    id: 'P-PRIO', title: 'with several nested events pending, L1 sees the first exit §6.5 / SDM 6.9 order gives', arb: prioCaseArb, numRuns: 50, unit: 'test/unit/nested/priority.test.ts',
    coverage: [{ name: 'runs with an event exit (NMI, interrupt, window, MTF, timer)', min: 8, test: (_c, r) => ['EXCEPTION_NMI', 'EXTERNAL_INTERRUPT', 'INTERRUPT_WINDOW', 'MONITOR_TRAP_FLAG', 'PREEMPTION_TIMER'].some((n) => exitsOf(r, n) > 0) }],
  },
  {
    id: 'P-CHECK', title: 'one VM-entry-checked field perturbed: the first failing check (class, error, qualification, id) matches', arb: checkCaseArb, numRuns: 60,
    unit: 'test/property/vmentry.test.ts (the check engine alone)',
    coverage: [
      { name: 'entry fails (VMfailValid or VM-entry failure)', min: 6, test: (_c, r) => instr(r, 'vmlaunch:vmfail-valid') > 0 || Object.keys(r.stats.referenceExits).some((k) => k.includes('VM-entry failure')) },
      { name: 'entry passes', min: 6, test: (_c, r) => exits(r) > 0 && !Object.keys(r.stats.referenceExits).some((k) => k.includes('VM-entry failure')) },
    ],
  },
];

export function oracleProperty(id: OraclePropertyId): OracleProperty {
  return ORACLE_PROPERTIES.find((p) => p.id === id)!;
}

/** Not one of §9.2's properties: the general differential mix (all L2 modes, exact controls, raw VMCS writes, schedules). */
export const GENERAL_MIX: OracleProperty = {
  id: 'general-mix', title: 'the general differential mix: reference and nested agree on everything L1 and L2 observe', arb: anyCaseArb, numRuns: 60, unit: null,
  coverage: [{ name: 'runs reaching L2', min: 15, test: (_c, r) => r.stats.reference.exits > 0 }],
};

export interface OraclePropertyRun {
  /** Coverage counts by name, and the shortfalls (names whose count stayed below min scaled to the runs made). */
  readonly coverage: ReadonlyMap<string, number>;
  readonly shortfalls: readonly string[];
  readonly runs: number;
}

/**
 * Run one oracle property: every generated case through checkProgram on `profile` (optionally a wrong L0), failing on
 * the first unexplained divergence with the case and the divergences in the message. `params` are fast-check
 * parameters (propertyParams in tests; the mutant run passes its own). Throws fast-check's failure.
 */
export function runOracleProperty(p: OracleProperty, profile: L0Profile, params: fc.Parameters<[OracleCase]>, parts?: L0Parts): OraclePropertyRun {
  const coverage = new Map<string, number>(p.coverage.map((c) => [c.name, 0]));
  let runs = 0;
  fc.assert(fc.property(p.arb, (c) => {
    const r = checkCase(c, profile, parts);
    runs++;
    for (const cv of p.coverage) if (cv.test(c, r)) coverage.set(cv.name, coverage.get(cv.name)! + 1);
    const un = r.divergences.filter((d) => d.kind !== 'expected-deviation');
    if (un.length > 0) throw new Error(`${p.id} (${profile.name}): ${describeCase(c)}\n${divergenceText(r)}`);
  }), params);
  const scale = runs / p.numRuns;
  const shortfalls = p.coverage.filter((c) => coverage.get(c.name)! < Math.floor(c.min * scale)).map((c) => `${c.name}: ${coverage.get(c.name)} < ${Math.floor(c.min * scale)}`);
  return { coverage, shortfalls, runs };
}
