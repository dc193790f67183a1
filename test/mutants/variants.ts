// Deliberately wrong L0s for the mutant run (mutants.test.ts): each substitutes exactly one member of L0Parts with a
// variant modelled on a real kind of nested-hypervisor bug (cited per variant), and names the oracle property expected
// to catch it first. Wrong merges keep their provenance consistent with the wrong value, as a buggy rule would.
// Must not: be used outside tests. Reference: nested-vmx.md §5–§8 (what each part must do), §9.2 (the properties).
import { Primary } from '../../src/cpu/generated/controls.js';
import { ExitReason } from '../../src/cpu/generated/exit-reasons.js';
import { Field } from '../../src/cpu/generated/vmcs-fields.js';
import { ENTRY_CHECKS } from '../../src/cpu/generated/entry-checks.js';
import type { QwordMemory } from '../../src/cpu/memory.js';
import type { L1Gpa } from '../../src/cpu/address.js';
import { defaultL0Parts, type L0Parts } from '../../src/nested/l0/parts.js';
import type { MergeResult } from '../../src/nested/merge/types.js';
import { sdmProfile } from '../../src/nested/profile.js';
import type { OraclePropertyId } from '../support/arbitraries/oracle.js';

export interface WrongL0 {
  readonly id: string;
  /** The L0Parts member replaced. */
  readonly member: keyof L0Parts;
  /** What is wrong, and the real bug (or bug class) it is modelled on. */
  readonly bug: string;
  /** Properties to try first (the rest follow in their usual order). */
  readonly hint: readonly OraclePropertyId[];
  readonly parts: L0Parts;
}

const base = defaultL0Parts(sdmProfile());
const PF = 1 << 14;

/** A merge whose rule for `encoding` computes `value` instead (vmcs02 and the field's provenance agree on it). */
function mergeOverriding(encoding: number, value: (r: MergeResult, ...a: Parameters<L0Parts['merge']>) => bigint): L0Parts['merge'] {
  return (vmcs01, vmcs12, l0, profile) => {
    const r = base.merge(vmcs01, vmcs12, l0, profile);
    r.vmcs02.set(encoding, value(r, vmcs01, vmcs12, l0, profile));
    const i = r.provenance.findIndex((p) => p.encoding === encoding);
    if (i >= 0) r.provenance[i] = { ...r.provenance[i]!, value: r.vmcs02.get(encoding) };
    return r;
  };
}

const GUEST_CHECK = new Set(ENTRY_CHECKS.filter((c) => c.stage === 'guest-state').map((c) => c.id));

export const WRONG_L0S: readonly WrongL0[] = [
  {
    id: 'exception-bitmap-not-merged', member: 'merge', hint: ['P-SUPERSET', 'P-REFLECT'],
    bug: 'vmcs02 exception bitmap is L0\'s alone: vmcs12\'s intercepted vectors are lost (KVM builds it in update_exception_bitmap with eb |= vmcs12->exception_bitmap in guest mode; the "L1 intercept not honoured" class, cf. nested SVM CVE-2021-3656)',
    parts: { ...base, merge: mergeOverriding(Field.EXCEPTION_BITMAP, (_r, _a, _b, l0) => BigInt(((l0.exceptionBitmap & ~PF) | (l0.needsPfIntercept ? PF : 0)) >>> 0)) },
  },
  {
    id: 'read-shadow-from-vmcs12-field', member: 'merge', hint: ['P-SHADOW'],
    bug: 'CR0 read shadow of vmcs02 copied from vmcs12 CR0_READ_SHADOW instead of what L2 reads under vmcs12 (guest CR0 outside vmcs12\'s mask): the bug KVM\'s nested_read_cr0() exists to avoid',
    parts: { ...base, merge: mergeOverriding(Field.CR0_READ_SHADOW, (_r, _a, v12, l0) => (l0.realEntry ? v12.get(Field.CR0_READ_SHADOW) : _r.vmcs02.get(Field.CR0_READ_SHADOW))) },
  },
  {
    id: 'cr8-exiting-not-forced', member: 'merge', hint: ['P-SUPERSET'],
    bug: 'without a TPR shadow in vmcs12, vmcs02 lacks CR8-load/store exiting so L2 reaches the real CR8 (CVE-2017-12154, KVM prepare_vmcs02)',
    parts: {
      ...base,
      merge: mergeOverriding(Field.CPU_BASED_VM_EXEC_CONTROL, (r, _a, v12) => {
        const cr8 = Primary.CR8_LOAD_EXITING | Primary.CR8_STORE_EXITING;
        return BigInt(((r.vmcs02.lo(Field.CPU_BASED_VM_EXEC_CONTROL) & ~cr8) | (v12.lo(Field.CPU_BASED_VM_EXEC_CONTROL) & cr8)) >>> 0);
      }),
    },
  },
  {
    id: 'tsc-not-composed', member: 'merge', hint: ['P-TSC'],
    bug: 'vmcs02 TSC offset is L0\'s offset for L1 only: vmcs12\'s offset (and multiplier) not composed in (KVM gained kvm_calc_nested_tsc_offset/_multiplier for this in 2021; before it L2 saw L1\'s scaling wrong)',
    parts: { ...base, merge: mergeOverriding(Field.TSC_OFFSET, (_r, v01) => v01.get(Field.TSC_OFFSET)) },
  },
  {
    id: 'msr-bitmap-from-vmcs01', member: 'merge', hint: ['P-SUPERSET', 'P-REFLECT'],
    bug: 'vmcs02 uses L0\'s MSR bitmap for L1 instead of the merged one: an MSR L1 intercepts but L0 passes through reaches L2 directly (the exit02 ⊇ exit01 ∪ exit12 merge of nested_vmx_prepare_msr_bitmap done as exit01 alone, i.e. intersected with L1\'s)',
    parts: { ...base, merge: mergeOverriding(Field.MSR_BITMAP, (r, v01) => (r.vmcs02.lo(Field.CPU_BASED_VM_EXEC_CONTROL) & Primary.USE_MSR_BITMAPS ? v01.get(Field.MSR_BITMAP) : 0n)) },
  },
  {
    id: 'ept02-rights-union', member: 'composeEpt02', hint: ['P-EPT-COMP', 'P-EPT-INV'],
    bug: 'EPT02 leaf rights are perm12 ∪ perm01 instead of ⊆ perm12 ∩ perm01, so L2 writes pages L1 mapped read-only (the shadow-paging permission-combination bug class)',
    parts: {
      ...base,
      composeEpt02: (input) => {
        const o = base.composeEpt02(input);
        if (o.kind !== 'map') return o;
        const a = o.leaf.perm12;
        const b = o.leaf.perm01;
        return { ...o, leaf: { ...o.leaf, permissions: { read: a.read || b.read, write: a.write || b.write, execute: a.execute || b.execute, userExecute: a.userExecute || b.userExecute } } };
      },
    },
  },
  {
    id: 'ept12-ad-not-set', member: 'composeEpt02', hint: ['P-EPT-AD', 'P-EPT-COMP'],
    bug: 'L0\'s software walk of EPT12 does not set its accessed/dirty flags, so L1 with EPTP A/D sees pages never marked (KVM emulated EPT A/D for L1 only from 2017, "KVM: nVMX: support EPT accessed/dirty bits")',
    parts: {
      ...base,
      composeEpt02: (input) => {
        if (!input.ept12) return base.composeEpt02(input);
        const t = input.ept12.tables;
        const tables: QwordMemory<L1Gpa> = { readU64: (a) => t.readU64(a), writeU64: () => ({ ok: true }) };
        return base.composeEpt02({ ...input, ept12: { ...input.ept12, tables } });
      },
    },
  },
  {
    id: 'invept-ignored', member: 'invept', hint: ['P-EPT-INV'],
    bug: 'L1\'s INVEPT drops no EPT02 state, so L2 keeps using translations L1 removed (KVM handle_invept must free the roots for the EPTRTA; missed invalidation is the classic shadow-EPT bug)',
    parts: { ...base, invept: () => 0 },
  },
  {
    id: 'io-bitmap-ignored', member: 'ioExits', hint: ['P-REFLECT', 'P-SUPERSET'],
    bug: 'I/O exits are reflected by "unconditional I/O exiting" alone, ignoring vmcs12\'s I/O bitmaps (CVE-2020-2732: KVM emulated L2 I/O without nested_vmx_check_io_bitmaps)',
    parts: { ...base, ioExits: (vmcs12) => (vmcs12.lo(Field.CPU_BASED_VM_EXEC_CONTROL) & Primary.UNCONDITIONAL_IO_EXITING) !== 0 },
  },
  {
    id: 'pfec-mask-match-ignored', member: 'exceptionIntercepted', hint: ['P-REFLECT', 'P-SUPERSET'],
    bug: '#PF is reflected by exception-bitmap bit 14 alone, ignoring PFEC_MASK/PFEC_MATCH (what KVM\'s nested_vmx_is_page_fault_vmexit exists for)',
    parts: { ...base, exceptionIntercepted: (vmcs12, vector) => ((vmcs12.lo(Field.EXCEPTION_BITMAP) >>> vector) & 1) === 1 },
  },
  {
    id: 'idt-vectoring-dropped', member: 'writeExitInfo', hint: ['P-EPT-COMP', 'P-PRIO'],
    bug: 'a reflected exit that interrupted event delivery reaches L1 without IDT-vectoring information, so L1 cannot re-inject the event (KVM vmcs12_save_pending_event; "KVM: nVMX: Rework event injection and recovery", 2013)',
    parts: {
      ...base,
      writeExitInfo: (vmcs12, exit, pending, profile) => {
        const r = base.writeExitInfo(vmcs12, exit, pending, profile);
        r.vmcs12.set32(Field.IDT_VECTORING_INFO_FIELD, 0);
        return r;
      },
    },
  },
  {
    id: 'host-cr3-not-loaded', member: 'loadHostState', hint: ['P-EXITSTATE'],
    bug: 'the emulated exit loads L1\'s state from vmcs12 but keeps L2\'s CR3 instead of HOST_CR3 (omissions in KVM load_vmcs12_host_state are a recurring bug class)',
    parts: {
      ...base,
      loadHostState: (vmcs12, cpu, ctx) => {
        const r = base.loadHostState(vmcs12, cpu, ctx);
        if (r.kind === 'ok') r.state.cr3 = cpu.cr3;
        return r;
      },
    },
  },
  {
    id: 'vpid12-change-no-flush', member: 'vpidOnEntry', hint: ['P-VPID'],
    bug: 'L1 switched to a new vpid12 but L0 did not flush vpid02, on which every vpid12 runs (KVM nested_vmx_transition_tlb_flush: "vpid12 changed" must flush)',
    parts: {
      ...base,
      vpidOnEntry: (...a) => {
        const plan = base.vpidOnEntry(...a);
        return plan.rule === 'vpid.vpid02-new-vpid12' ? { ...plan, flush: { kind: 'none' } } : plan;
      },
    },
  },
  {
    id: 'vmcs12-guest-checks-skipped', member: 'entryChecks', hint: ['P-CHECK'],
    bug: 'L0 skips the guest-state checks on vmcs12 and relies on the hardware entry of vmcs02, whose adjusted CR0/CR4 can pass where vmcs12 must fail (CVE-2023-30456: missing CR0/CR4 consistency checks in nested_vmx_check_guest_state)',
    parts: {
      ...base,
      entryChecks: (vmcs, env) => {
        const v = base.entryChecks(vmcs, env);
        return v.kind !== 'pass' && GUEST_CHECK.has(v.checkId) ? { kind: 'pass' } : v;
      },
    },
  },
  {
    id: 'cr0-sync-from-read-shadow', member: 'syncGuestState', hint: ['P-SHADOW'],
    bug: 'at a nested exit vmcs12 GUEST_CR0 is taken from vmcs02\'s read shadow for every bit L2 does not own, so bits L1 traps show L1\'s shadow instead of L2\'s CR0 (the three-way rule of KVM vmcs12_guest_cr0 done two-way)',
    parts: {
      ...base,
      syncGuestState: (vmcs02, vmcs12, l2, ctx) => {
        const r = base.syncGuestState(vmcs02, vmcs12, l2, ctx);
        const owned = ~vmcs02.get(Field.CR0_GUEST_HOST_MASK);
        r.vmcs12.set(Field.GUEST_CR0, (vmcs02.get(Field.GUEST_CR0) & owned) | (vmcs02.get(Field.CR0_READ_SHADOW) & ~owned));
        return r;
      },
    },
  },
  {
    id: 'preemption-timer-not-saved', member: 'syncGuestState', hint: ['P-PRIO'],
    bug: 'the remaining VMX-preemption-timer value is never saved into vmcs12 despite "save VMX-preemption timer value" (KVM emulated the save only from Jan Kiszka\'s 2014 preemption-timer rework)',
    parts: { ...base, syncGuestState: (vmcs02, vmcs12, l2, ctx) => base.syncGuestState(vmcs02, vmcs12, l2, { ...ctx, preemptionDeadline: null }) },
  },
  {
    id: 'reinjection-dropped', member: 'reinjection', hint: ['P-EPT-COMP', 'P-PRIO'],
    bug: 'an event whose delivery L0 interrupted (EPT02 fill during IDT delivery) is not re-injected into L2, so the interrupt or exception is lost (KVM vmx_complete_interrupts / __vmx_complete_interrupts)',
    parts: { ...base, reinjection: () => null },
  },
  {
    id: 'msr-bitmap-direction-swapped', member: 'reflect', hint: ['P-REFLECT', 'P-SUPERSET'],
    bug: 'RDMSR exits are judged against vmcs12\'s write bitmap and WRMSR against its read bitmap (off-by-half indexing into the 4 KiB MSR bitmap in nested_vmx_exit_handled_msr-style code)',
    parts: {
      ...base,
      reflect: (exit, vmcs12, ctx, all) => {
        const basic = exit.reason & 0xffff;
        if (basic !== ExitReason.MSR_READ && basic !== ExitReason.MSR_WRITE) return base.reflect(exit, vmcs12, ctx, all);
        return base.reflect({ ...exit, reason: (exit.reason & ~0xffff) | (basic === ExitReason.MSR_READ ? ExitReason.MSR_WRITE : ExitReason.MSR_READ) }, vmcs12, ctx, all);
      },
    },
  },
];
