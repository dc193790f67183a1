// The reflection table in code: one row per basic exit reason with its l0Wants and l1Wants rule ids and predicates.
// Hand-written from schemas/nested/reflection.json; test/unit/nested/reflect-table.test.ts fails when the two differ.
// Must not: hold descriptions (they live in the JSON) or logic (predicates.ts). Reference: nested-vmx.md §6.2.
import type { L0PredicateName, L1PredicateName } from './predicates.js';

export interface ReflectionRow {
  readonly reason: number;
  readonly l0: { readonly rule: string; readonly predicate: L0PredicateName };
  readonly l1: { readonly rule: string; readonly predicate: L1PredicateName; readonly controls: readonly string[] };
}

function row(reason: number, l0Rule: string, l0Predicate: L0PredicateName, l1Rule: string, l1Predicate: L1PredicateName, controls: readonly string[] = []): ReflectionRow {
  return { reason, l0: { rule: l0Rule, predicate: l0Predicate }, l1: { rule: l1Rule, predicate: l1Predicate, controls } };
}

export const REFLECTION_ROWS: readonly ReflectionRow[] = [
  row(0, 'l0.exception-nmi', 'l0Exception', 'l1.exception', 'exception'),
  row(1, 'l0.external-interrupt', 'always', 'l1.external-interrupt', 'allControls', ['pin.external-interrupt-exiting']),
  row(2, 'l0.none', 'never', 'l1.triple-fault', 'always'),
  row(3, 'l0.init-signal', 'always', 'l1.init-signal', 'always'),
  row(4, 'l0.sipi-signal', 'always', 'l1.sipi-signal', 'always'),
  row(5, 'l0.smi', 'always', 'l1.io-smi', 'always'),
  row(6, 'l0.smi', 'always', 'l1.other-smi', 'always'),
  row(7, 'l0.none', 'never', 'l1.interrupt-window', 'allControls', ['primary.interrupt-window-exiting']),
  row(8, 'l0.none', 'never', 'l1.nmi-window', 'allControls', ['primary.nmi-window-exiting']),
  row(9, 'l0.none', 'never', 'l1.task-switch', 'always'),
  row(10, 'l0.none', 'never', 'l1.cpuid', 'always'),
  row(11, 'l0.none', 'never', 'l1.getsec', 'always'),
  row(12, 'l0.none', 'never', 'l1.hlt', 'allControls', ['primary.hlt-exiting']),
  row(13, 'l0.none', 'never', 'l1.invd', 'always'),
  row(14, 'l0.none', 'never', 'l1.invlpg', 'allControls', ['primary.invlpg-exiting']),
  row(15, 'l0.none', 'never', 'l1.rdpmc', 'allControls', ['primary.rdpmc-exiting']),
  row(16, 'l0.none', 'never', 'l1.rdtsc', 'allControls', ['primary.rdtsc-exiting']),
  row(17, 'l0.none', 'never', 'l1.rsm', 'always'),
  row(18, 'l0.vmcall', 'l0Vmcall', 'l1.vmcall', 'always'),
  row(19, 'l0.none', 'never', 'l1.vmclear', 'always'),
  row(20, 'l0.none', 'never', 'l1.vmlaunch', 'always'),
  row(21, 'l0.none', 'never', 'l1.vmptrld', 'always'),
  row(22, 'l0.none', 'never', 'l1.vmptrst', 'always'),
  row(23, 'l0.none', 'never', 'l1.vmread', 'vmcsShadowing'),
  row(24, 'l0.none', 'never', 'l1.vmresume', 'always'),
  row(25, 'l0.none', 'never', 'l1.vmwrite', 'vmcsShadowing'),
  row(26, 'l0.none', 'never', 'l1.vmxoff', 'always'),
  row(27, 'l0.none', 'never', 'l1.vmxon', 'always'),
  row(28, 'l0.none', 'never', 'l1.cr-access', 'crAccess'),
  row(29, 'l0.none', 'never', 'l1.mov-dr', 'allControls', ['primary.mov-dr-exiting']),
  row(30, 'l0.none', 'never', 'l1.io', 'ioInstruction'),
  row(31, 'l0.none', 'never', 'l1.rdmsr', 'msrBitmap'),
  row(32, 'l0.none', 'never', 'l1.wrmsr', 'msrBitmap'),
  row(33, 'l0.none', 'never', 'l1.invalid-guest-state', 'always'),
  row(34, 'l0.none', 'never', 'l1.msr-load-fail', 'always'),
  row(35, 'l0.none', 'never', 'l1.reserved', 'always'),
  row(36, 'l0.none', 'never', 'l1.mwait', 'allControls', ['primary.mwait-exiting']),
  row(37, 'l0.none', 'never', 'l1.mtf', 'mtf'),
  row(38, 'l0.none', 'never', 'l1.reserved', 'always'),
  row(39, 'l0.none', 'never', 'l1.monitor', 'allControls', ['primary.monitor-exiting']),
  row(40, 'l0.none', 'never', 'l1.pause', 'anyControl', ['primary.pause-exiting', 'secondary.pause-loop-exiting']),
  row(41, 'l0.mce-during-entry', 'always', 'l1.mce-during-entry', 'always'),
  row(42, 'l0.none', 'never', 'l1.reserved', 'always'),
  row(43, 'l0.none', 'never', 'l1.tpr-below-threshold', 'allControls', ['primary.use-tpr-shadow']),
  row(44, 'l0.none', 'never', 'l1.apic-access', 'always'),
  row(45, 'l0.none', 'never', 'l1.eoi-induced', 'always'),
  row(46, 'l0.none', 'never', 'l1.gdtr-idtr', 'allControls', ['secondary.descriptor-table-exiting']),
  row(47, 'l0.none', 'never', 'l1.ldtr-tr', 'allControls', ['secondary.descriptor-table-exiting']),
  row(48, 'l0.ept-violation', 'always', 'l1.ept-violation', 'never'),
  row(49, 'l0.ept-misconfig', 'always', 'l1.ept-misconfig', 'never'),
  row(50, 'l0.none', 'never', 'l1.invept', 'always'),
  row(51, 'l0.none', 'never', 'l1.rdtscp', 'allControls', ['primary.rdtsc-exiting']),
  row(52, 'l0.preemption-timer', 'always', 'l1.preemption-timer', 'never'),
  row(53, 'l0.none', 'never', 'l1.invvpid', 'always'),
  row(54, 'l0.none', 'never', 'l1.wbinvd', 'allControls', ['secondary.wbinvd-exiting']),
  row(55, 'l0.none', 'never', 'l1.xsetbv', 'always'),
  row(56, 'l0.none', 'never', 'l1.apic-write', 'always'),
  row(57, 'l0.none', 'never', 'l1.rdrand', 'allControls', ['secondary.rdrand-exiting']),
  row(58, 'l0.none', 'never', 'l1.invpcid', 'allControls', ['secondary.enable-invpcid', 'primary.invlpg-exiting']),
  row(59, 'l0.vmfunc', 'always', 'l1.vmfunc', 'never'),
  row(60, 'l0.none', 'never', 'l1.encls', 'encls'),
  row(61, 'l0.none', 'never', 'l1.rdseed', 'allControls', ['secondary.rdseed-exiting']),
  row(62, 'l0.pml-full', 'always', 'l1.pml-full', 'never'),
  row(63, 'l0.none', 'never', 'l1.xsaves', 'xssBitmap'),
  row(64, 'l0.none', 'never', 'l1.xrstors', 'xssBitmap'),
  row(65, 'l0.none', 'never', 'l1.pconfig', 'always'),
  row(66, 'l0.none', 'never', 'l1.spp', 'always'),
  row(67, 'l0.none', 'never', 'l1.umwait', 'allControls', ['secondary.enable-user-wait-and-pause', 'primary.rdtsc-exiting']),
  row(68, 'l0.none', 'never', 'l1.tpause', 'allControls', ['secondary.enable-user-wait-and-pause', 'primary.rdtsc-exiting']),
  row(69, 'l0.none', 'never', 'l1.loadiwkey', 'always'),
  row(70, 'l0.none', 'never', 'l1.enclv', 'always'),
  row(71, 'l0.none', 'never', 'l1.reserved', 'always'),
  row(72, 'l0.none', 'never', 'l1.enqcmd-pasid-fail', 'always'),
  row(73, 'l0.none', 'never', 'l1.enqcmds-pasid-fail', 'always'),
  row(74, 'l0.bus-lock', 'always', 'l1.bus-lock', 'never'),
  row(75, 'l0.notify', 'always', 'l1.notify', 'never'),
  row(76, 'l0.none', 'never', 'l1.seamcall', 'seamcallTdcall'),
  row(77, 'l0.none', 'never', 'l1.tdcall', 'seamcallTdcall'),
  row(78, 'l0.none', 'never', 'l1.rdmsrlist', 'always'),
  row(79, 'l0.none', 'never', 'l1.wrmsrlist', 'always'),
  row(80, 'l0.none', 'never', 'l1.urdmsr', 'always'),
  row(81, 'l0.none', 'never', 'l1.uwrmsr', 'always'),
  row(82, 'l0.none', 'never', 'l1.reserved', 'always'),
  row(83, 'l0.none', 'never', 'l1.reserved', 'always'),
  row(84, 'l0.none', 'never', 'l1.rdmsr-imm', 'msrBitmap'),
  row(85, 'l0.none', 'never', 'l1.wrmsr-imm', 'msrBitmap'),
];

const BY_REASON = new Map<number, ReflectionRow>(REFLECTION_ROWS.map((r) => [r.reason, r]));

/** The row for a basic exit reason; reasons beyond the table take KVM's default (L0: no, L1: yes). */
export function reflectionRow(basicReason: number): ReflectionRow {
  return BY_REASON.get(basicReason) ?? DEFAULT_ROW;
}

export const DEFAULT_ROW: ReflectionRow = row(-1, 'l0.none', 'never', 'l1.reserved', 'always');
