// vmcs02 control-field merge rules (pin/primary/secondary/entry/exit controls, exception bitmap and PFEC, CR masks,
// APIC/posted-interrupt pages, bitmaps, TSC, EPTP, VPID, event injection), one MergeRuleImpl per rule id.
// Must not: read memory or vmcs02 fields it did not record as inputs (see rule-kit.ts).
// Reference: nested-vmx.md §5.2–5.6 (KVM prepare_vmcs02_early/_rare, nested_get_vmcs12_pages); SDM 24.6–24.8.
import { Field } from '../../cpu/generated/vmcs-fields.js';
import { EntryCtl, ExitCtl, Pin, Primary, Secondary } from '../../cpu/generated/controls.js';
import { Cr4, Efer } from '../../cpu/state.js';
import { u64, U64_MASK } from '../../cpu/u64.js';
import { Deviation } from '../profile.js';
import { effectiveTsc, nestedTscMultiplier, nestedTscOffset } from '../tsc.js';
import { in01, in12, inDeviation, inL0, inMerged, type InputLookup, type MergeRuleImpl } from './rule-kit.js';

const F = Field;
const UNBACKED = `L0.deviation.${Deviation.UNBACKED_VMCS12_PAGES}`;

/** Secondary controls "taken only from vmcs12" (KVM prepare_vmcs02_early). */
export const SECONDARY_FROM_VMCS12_ONLY =
  Secondary.VIRTUALIZE_APIC_ACCESSES | Secondary.VIRTUALIZE_X2APIC_MODE | Secondary.ENABLE_INVPCID | Secondary.ENABLE_RDTSCP |
  Secondary.ENABLE_XSAVES_XRSTORS | Secondary.ENABLE_USER_WAIT_AND_PAUSE | Secondary.VIRTUAL_INTERRUPT_DELIVERY |
  Secondary.APIC_REGISTER_VIRTUALIZATION | Secondary.ENABLE_VM_FUNCTIONS | Secondary.DESCRIPTOR_TABLE_EXITING;

/** Secondary controls are in effect only with "activate secondary controls" (SDM 24.6.2). */
export function effectiveSecondary(primary: number, secondary: number): number {
  return primary & Primary.ACTIVATE_SECONDARY_CONTROLS ? secondary >>> 0 : 0;
}

const sec = (inp: InputLookup, who: 'vmcs01' | 'vmcs12'): number =>
  effectiveSecondary(inp.n(`${who}.CPU_BASED_VM_EXEC_CONTROL`), inp.n(`${who}.SECONDARY_VM_EXEC_CONTROL`));

const PIN: MergeRuleImpl = {
  id: 'merge.pin-controls',
  gather: (env) => [in01(env, F.PIN_BASED_VM_EXEC_CONTROL), in12(env, F.PIN_BASED_VM_EXEC_CONTROL), inL0('postedIntrDescBacked', env.l0.postedIntrDesc !== null), inDeviation(env, Deviation.UNBACKED_VMCS12_PAGES)],
  compute: (inp) => {
    const c12 = inp.n('vmcs12.PIN_BASED_VM_EXEC_CONTROL');
    // L1's preemption timer is emulated (§5.5); vmcs01's own timer use is kept.
    let v = inp.n('vmcs01.PIN_BASED_VM_EXEC_CONTROL') | (c12 & ~Pin.ACTIVATE_VMX_PREEMPTION_TIMER);
    // Posted-interrupt processing only when vmcs12 asks for it; kvm drops it when the descriptor has no backing (N2).
    if (!(c12 & Pin.PROCESS_POSTED_INTERRUPTS)) v &= ~Pin.PROCESS_POSTED_INTERRUPTS;
    else if (!inp.flag('L0.postedIntrDescBacked') && inp.flag(UNBACKED)) v &= ~Pin.PROCESS_POSTED_INTERRUPTS;
    return BigInt(v >>> 0);
  },
};

const PRIMARY: MergeRuleImpl = {
  id: 'merge.primary-controls',
  gather: (env) => [
    in01(env, F.CPU_BASED_VM_EXEC_CONTROL), in12(env, F.CPU_BASED_VM_EXEC_CONTROL), in12(env, F.SECONDARY_VM_EXEC_CONTROL),
    inL0('requestInterruptWindow', env.l0.requestInterruptWindow), inL0('requestNmiWindow', env.l0.requestNmiWindow),
    inL0('msrBitmap02Built', env.l0.msrBitmap02 !== null), inL0('virtualApicBacked', env.l0.virtualApicPage !== null),
    inDeviation(env, Deviation.UNBACKED_VMCS12_PAGES),
  ],
  compute: (inp) => {
    const c12 = inp.n('vmcs12.CPU_BASED_VM_EXEC_CONTROL');
    // L0's window requests for L1 are dropped and re-requested only if L0 still wants them while L2 runs.
    let p = (inp.n('vmcs01.CPU_BASED_VM_EXEC_CONTROL') & ~(Primary.INTERRUPT_WINDOW_EXITING | Primary.NMI_WINDOW_EXITING | Primary.USE_TPR_SHADOW)) | c12;
    if (inp.flag('L0.requestInterruptWindow')) p |= Primary.INTERRUPT_WINDOW_EXITING;
    if (inp.flag('L0.requestNmiWindow')) p |= Primary.NMI_WINDOW_EXITING;
    // vmcs12 has no tertiary controls and L0 uses none for L2.
    p &= ~Primary.ACTIVATE_TERTIARY_CONTROLS;
    // Without a TPR shadow every CR8 access must reach L0 (64-bit hosts).
    if (!(p & Primary.USE_TPR_SHADOW)) p |= Primary.CR8_LOAD_EXITING | Primary.CR8_STORE_EXITING;
    // vmcs12's I/O bitmaps are consulted by L0 on every I/O exit (§6.3.2).
    p = (p & ~Primary.USE_IO_BITMAPS) | Primary.UNCONDITIONAL_IO_EXITING;
    if (c12 & Primary.USE_MSR_BITMAPS && inp.flag('L0.msrBitmap02Built')) p |= Primary.USE_MSR_BITMAPS;
    else p &= ~Primary.USE_MSR_BITMAPS;
    // kvm (N2): an unbacked virtual-APIC page drops the TPR shadow when CR8 exits already cover it.
    if (p & Primary.USE_TPR_SHADOW && !inp.flag('L0.virtualApicBacked') && inp.flag(UNBACKED)) {
      const s12 = effectiveSecondary(c12, inp.n('vmcs12.SECONDARY_VM_EXEC_CONTROL'));
      const cr8Both = (p & Primary.CR8_LOAD_EXITING) !== 0 && (p & Primary.CR8_STORE_EXITING) !== 0;
      if (cr8Both && !(s12 & Secondary.VIRTUALIZE_APIC_ACCESSES)) p &= ~Primary.USE_TPR_SHADOW;
    }
    return BigInt(p >>> 0);
  },
};

const SECONDARY: MergeRuleImpl = {
  id: 'merge.secondary-controls',
  gather: (env) => [
    in01(env, F.CPU_BASED_VM_EXEC_CONTROL), in01(env, F.SECONDARY_VM_EXEC_CONTROL), in12(env, F.CPU_BASED_VM_EXEC_CONTROL),
    in12(env, F.SECONDARY_VM_EXEC_CONTROL), in12(env, F.GUEST_CR4), inL0('emulatesUmip', env.l0.emulatesUmip),
  ],
  compute: (inp) => {
    const c01 = sec(inp, 'vmcs01');
    const c12 = sec(inp, 'vmcs12');
    // EPT and VPID are L0's (EPT02 / vpid02 regardless of vmcs12); the APIC-virtualization family only from vmcs12.
    let s = (c01 & ~SECONDARY_FROM_VMCS12_ONLY) | (c12 & ~(Secondary.ENABLE_EPT | Secondary.ENABLE_VPID));
    // PML, VMCS shadowing and EPT-violation #VE for L2 are emulated in software (N17; VMCS_LINK_POINTER is -1; the
    // VE area is L1's, and EPT02 violations are L0's): features/pml12.ts, features/ve12.ts.
    s &= ~(Secondary.ENABLE_PML | Secondary.VMCS_SHADOWING | Secondary.EPT_VIOLATION_VE);
    if (!(c12 & Secondary.UNRESTRICTED_GUEST)) s &= ~Secondary.UNRESTRICTED_GUEST;
    if (inp.flag('L0.emulatesUmip') && (inp.get('vmcs12.GUEST_CR4') & Cr4.UMIP) !== 0n) s |= Secondary.DESCRIPTOR_TABLE_EXITING;
    return BigInt(s >>> 0);
  },
};

const ENTRY: MergeRuleImpl = {
  id: 'merge.entry-controls',
  gather: (env) => [in01(env, F.VM_ENTRY_CONTROLS), in12(env, F.VM_ENTRY_CONTROLS), inMerged(env, F.GUEST_IA32_EFER), { from: 'L0', field: 'host.HOST_IA32_EFER', value: env.l0.host.get(F.HOST_IA32_EFER) }],
  compute: (inp) => {
    // PERF_GLOBAL_CTRL is loaded through L0's PMU emulation, not by vmcs02's entry control.
    let e = (inp.n('vmcs01.VM_ENTRY_CONTROLS') | (inp.n('vmcs12.VM_ENTRY_CONTROLS') & ~EntryCtl.LOAD_IA32_PERF_GLOBAL_CTRL)) & ~(EntryCtl.IA32E_MODE_GUEST | EntryCtl.LOAD_IA32_EFER);
    const efer = inp.get('L0.merged.GUEST_IA32_EFER');
    if (efer & Efer.LMA) e |= EntryCtl.IA32E_MODE_GUEST;
    if (efer !== inp.get('L0.host.HOST_IA32_EFER')) e |= EntryCtl.LOAD_IA32_EFER;
    return BigInt(e >>> 0);
  },
};

const EXIT: MergeRuleImpl = {
  id: 'merge.exit-controls',
  gather: (env) => [
    in01(env, F.VM_EXIT_CONTROLS), inMerged(env, F.GUEST_IA32_EFER), { from: 'L0', field: 'host.HOST_IA32_EFER', value: env.l0.host.get(F.HOST_IA32_EFER) },
    inMerged(env, F.PIN_BASED_VM_EXEC_CONTROL),
  ],
  compute: (inp) => {
    // Exits from vmcs02 always go to L0, so its exit controls are L0's; EFER is switched only when it differs.
    let x = inp.n('vmcs01.VM_EXIT_CONTROLS') & ~ExitCtl.LOAD_IA32_EFER;
    // Posted-interrupt processing requires "acknowledge interrupt on exit" (SDM 26.2.1.1); KVM's vmcs01 always has it.
    // vmcs12 must have it too, so the vector the hardware acknowledges is the one L1's exit reports (§6.4).
    if (inp.n('L0.merged.PIN_BASED_VM_EXEC_CONTROL') & Pin.PROCESS_POSTED_INTERRUPTS) x |= ExitCtl.ACKNOWLEDGE_INTERRUPT_ON_EXIT;
    if (inp.get('L0.merged.GUEST_IA32_EFER') !== inp.get('L0.host.HOST_IA32_EFER')) x |= ExitCtl.LOAD_IA32_EFER;
    return BigInt(x >>> 0);
  },
};

const PF_BIT = 1 << 14;

const EXCEPTION_BITMAP: MergeRuleImpl = {
  id: 'merge.exception-bitmap',
  gather: (env) => [inL0('exceptionBitmap', env.l0.exceptionBitmap >>> 0), in12(env, F.EXCEPTION_BITMAP), inL0('needsPfIntercept', env.l0.needsPfIntercept)],
  compute: (inp) => {
    // L0's own #PF bit is expressed only through needsPfIntercept: an extra EB.PF with vmcs12's PFEC would invert
    // vmcs12's #PF filter instead of widening it.
    let eb = (inp.n('L0.exceptionBitmap') & ~PF_BIT) | inp.n('vmcs12.EXCEPTION_BITMAP');
    if (inp.flag('L0.needsPfIntercept')) eb |= PF_BIT;
    return BigInt(eb >>> 0);
  },
};

function pfecRule(id: string, encoding: number, key: string): MergeRuleImpl {
  return {
    id,
    gather: (env) => [inL0('needsPfIntercept', env.l0.needsPfIntercept), in12(env, encoding)],
    // MASK = MATCH = 0 with EB.PF = 1 makes every #PF exit (SDM 25.2).
    compute: (inp) => (inp.flag('L0.needsPfIntercept') ? 0n : inp.get(`vmcs12.${key}`)),
  };
}

function crMaskRule(id: string, cr: 0 | 4): MergeRuleImpl {
  const owned = `cr${cr}GuestOwned` as const;
  const on = `cr${cr}AlwaysOn` as const;
  const off = `cr${cr}AlwaysOff` as const;
  const mask = cr === 0 ? F.CR0_GUEST_HOST_MASK : F.CR4_GUEST_HOST_MASK;
  return {
    id,
    gather: (env) => [inL0(owned, env.l0[owned]), inL0(on, env.l0[on]), inL0(off, env.l0[off]), in12(env, mask)],
    compute: (inp) => {
      // A bit is guest-owned in vmcs02 only if L0 lets the guest own it, L0 does not force it, and L1 does not trap it.
      const effOwned = inp.get(`L0.${owned}`) & ~(inp.get(`L0.${on}`) | inp.get(`L0.${off}`));
      return u64(~(effOwned & ~inp.get(`vmcs12.CR${cr}_GUEST_HOST_MASK`)));
    },
  };
}

const TPR_THRESHOLD: MergeRuleImpl = {
  id: 'merge.tpr-threshold',
  gather: (env) => [inMerged(env, F.CPU_BASED_VM_EXEC_CONTROL), in12(env, F.TPR_THRESHOLD)],
  compute: (inp) => (inp.n('L0.merged.CPU_BASED_VM_EXEC_CONTROL') & Primary.USE_TPR_SHADOW ? inp.get('vmcs12.TPR_THRESHOLD') : 0n),
};

const VIRTUAL_APIC_PAGE: MergeRuleImpl = {
  id: 'merge.virtual-apic-page',
  gather: (env) => [
    inMerged(env, F.CPU_BASED_VM_EXEC_CONTROL), inL0('virtualApicBacked', env.l0.virtualApicPage !== null),
    inL0('virtualApicPage', env.l0.virtualApicPage ?? 0n), inL0('unbackedPage', env.l0.unbackedPage), inDeviation(env, Deviation.UNBACKED_VMCS12_PAGES),
  ],
  compute: (inp) => {
    if (!(inp.n('L0.merged.CPU_BASED_VM_EXEC_CONTROL') & Primary.USE_TPR_SHADOW)) return 0n;
    if (inp.flag('L0.virtualApicBacked')) return inp.get('L0.virtualApicPage');
    // kvm (N2): an illegal address so the hardware entry fails with VMfailValid(7).
    return inp.flag(UNBACKED) ? U64_MASK : inp.get('L0.unbackedPage');
  },
};

const APIC_ACCESS_PAGE: MergeRuleImpl = {
  id: 'merge.apic-access-page',
  gather: (env) => [
    inMerged(env, F.SECONDARY_VM_EXEC_CONTROL), inMerged(env, F.CPU_BASED_VM_EXEC_CONTROL), inL0('apicAccessBacked', env.l0.apicAccessPage !== null),
    inL0('apicAccessPage', env.l0.apicAccessPage ?? 0n), inL0('unbackedPage', env.l0.unbackedPage), inDeviation(env, Deviation.UNBACKED_VMCS12_PAGES),
  ],
  compute: (inp) => {
    const s = effectiveSecondary(inp.n('L0.merged.CPU_BASED_VM_EXEC_CONTROL'), inp.n('L0.merged.SECONDARY_VM_EXEC_CONTROL'));
    if (!(s & Secondary.VIRTUALIZE_APIC_ACCESSES)) return 0n;
    if (inp.flag('L0.apicAccessBacked')) return inp.get('L0.apicAccessPage');
    // kvm (N2): KVM exits to userspace with an internal error (reported as a MergeIssue); nothing to map.
    return inp.flag(UNBACKED) ? 0n : inp.get('L0.unbackedPage');
  },
};

const POSTED_INTR_DESC: MergeRuleImpl = {
  id: 'merge.posted-intr-desc-addr',
  gather: (env) => [inMerged(env, F.PIN_BASED_VM_EXEC_CONTROL), inL0('postedIntrDescBacked', env.l0.postedIntrDesc !== null), inL0('postedIntrDesc', env.l0.postedIntrDesc ?? 0n), inL0('unbackedPage', env.l0.unbackedPage)],
  compute: (inp) => {
    if (!(inp.n('L0.merged.PIN_BASED_VM_EXEC_CONTROL') & Pin.PROCESS_POSTED_INTERRUPTS)) return 0n;
    return inp.flag('L0.postedIntrDescBacked') ? inp.get('L0.postedIntrDesc') : inp.get('L0.unbackedPage');
  },
};

const POSTED_INTR_NV: MergeRuleImpl = {
  id: 'merge.posted-intr-nv',
  gather: (env) => [inMerged(env, F.PIN_BASED_VM_EXEC_CONTROL), inL0('postedIntrNv02', env.l0.postedIntrNv02)],
  compute: (inp) => (inp.n('L0.merged.PIN_BASED_VM_EXEC_CONTROL') & Pin.PROCESS_POSTED_INTERRUPTS ? inp.get('L0.postedIntrNv02') : 0n),
};

const XSS_EXIT_BITMAP: MergeRuleImpl = {
  id: 'merge.xss-exit-bitmap',
  gather: (env) => [in12(env, F.CPU_BASED_VM_EXEC_CONTROL), in12(env, F.SECONDARY_VM_EXEC_CONTROL), in12(env, F.XSS_EXIT_BITMAP)],
  compute: (inp) => (sec(inp, 'vmcs12') & Secondary.ENABLE_XSAVES_XRSTORS ? inp.get('vmcs12.XSS_EXIT_BITMAP') : 0n),
};

const ENCLS_BITMAP: MergeRuleImpl = {
  id: 'merge.encls-exiting-bitmap',
  gather: (env) => [
    inMerged(env, F.CPU_BASED_VM_EXEC_CONTROL), inMerged(env, F.SECONDARY_VM_EXEC_CONTROL), in01(env, F.CPU_BASED_VM_EXEC_CONTROL), in01(env, F.SECONDARY_VM_EXEC_CONTROL),
    inL0('enclsBitmap01', env.l0.enclsBitmap01), in12(env, F.CPU_BASED_VM_EXEC_CONTROL), in12(env, F.SECONDARY_VM_EXEC_CONTROL), in12(env, F.ENCLS_EXITING_BITMAP),
  ],
  compute: (inp) => {
    const s02 = effectiveSecondary(inp.n('L0.merged.CPU_BASED_VM_EXEC_CONTROL'), inp.n('L0.merged.SECONDARY_VM_EXEC_CONTROL'));
    if (!(s02 & Secondary.ENABLE_ENCLS_EXITING)) return 0n;
    const l0 = sec(inp, 'vmcs01') & Secondary.ENABLE_ENCLS_EXITING ? inp.get('L0.enclsBitmap01') : 0n;
    const l1 = sec(inp, 'vmcs12') & Secondary.ENABLE_ENCLS_EXITING ? inp.get('vmcs12.ENCLS_EXITING_BITMAP') : 0n;
    return l0 | l1;
  },
};

function tscRule(id: string, which: 'offset' | 'multiplier'): MergeRuleImpl {
  const enc = [F.CPU_BASED_VM_EXEC_CONTROL, F.SECONDARY_VM_EXEC_CONTROL, F.TSC_OFFSET, F.TSC_MULTIPLIER];
  const eff = (inp: InputLookup, who: 'vmcs01' | 'vmcs12') =>
    effectiveTsc((inp.n(`${who}.CPU_BASED_VM_EXEC_CONTROL`) & Primary.USE_TSC_OFFSETTING) !== 0, (sec(inp, who) & Secondary.USE_TSC_SCALING) !== 0, inp.get(`${who}.TSC_OFFSET`), inp.get(`${who}.TSC_MULTIPLIER`));
  return {
    id,
    gather: (env) => [...enc.map((e) => in01(env, e)), ...enc.map((e) => in12(env, e))],
    compute: (inp) => {
      const l1 = eff(inp, 'vmcs01');
      const l2 = eff(inp, 'vmcs12');
      return which === 'offset' ? nestedTscOffset(l1.offset, l2.multiplier, l2.offset) : nestedTscMultiplier(l1.multiplier, l2.multiplier);
    },
  };
}

function gatedL0Value(id: string, control: 'primary' | 'secondary', bit: number, l0Key: 'msrBitmap02' | 'eptp02' | 'vpid02'): MergeRuleImpl {
  return {
    id,
    gather: (env) => [inMerged(env, F.CPU_BASED_VM_EXEC_CONTROL), inMerged(env, F.SECONDARY_VM_EXEC_CONTROL), inL0(l0Key, env.l0[l0Key] ?? 0n)],
    compute: (inp) => {
      const p = inp.n('L0.merged.CPU_BASED_VM_EXEC_CONTROL');
      const word = control === 'primary' ? p : effectiveSecondary(p, inp.n('L0.merged.SECONDARY_VM_EXEC_CONTROL'));
      return word & bit ? inp.get(`L0.${l0Key}`) : 0n;
    },
  };
}

/** Fields whose vmcs02 value is vmcs01's (L0's autoload lists, PLE, notify window, secondary exit controls). */
const FROM_VMCS01 = (id: string): MergeRuleImpl => ({
  id,
  gather: (env, f) => [in01(env, f.encoding)],
  compute: (inp, f) => inp.get(`vmcs01.${f.name}`),
});

/** Fields copied from vmcs12 unconditionally. */
const FROM_VMCS12 = (id: string): MergeRuleImpl => ({
  id,
  gather: (env, f) => [in12(env, f.encoding)],
  compute: (inp, f) => inp.get(`vmcs12.${f.name}`),
});

/** A constant L0 chooses (no inputs). */
export const constant = (id: string, value: bigint): MergeRuleImpl => ({ id, gather: () => [], compute: () => value });

const ENTRY_EVENT_INJECTION: MergeRuleImpl = {
  id: 'merge.entry-event-injection',
  gather: (env, f) => {
    const r = env.l0.reinjection;
    const v = f.encoding === F.VM_ENTRY_INTR_INFO_FIELD ? r?.intrInfo : f.encoding === F.VM_ENTRY_EXCEPTION_ERROR_CODE ? r?.errorCode : r?.instructionLength;
    return [inL0('realEntry', env.l0.realEntry), in12(env, f.encoding), inL0(`reinjection.${f.name}`, v ?? 0)];
  },
  // vmcs12's injection is performed by the hardware entry of vmcs02 only on the real VMLAUNCH/VMRESUME (§5.7).
  compute: (inp, f) => (inp.flag('L0.realEntry') ? inp.get(`vmcs12.${f.name}`) : inp.get(`L0.reinjection.${f.name}`)),
};

const PREEMPTION_TIMER_VALUE: MergeRuleImpl = {
  id: 'merge.preemption-timer-value',
  gather: (env) => [inMerged(env, F.PIN_BASED_VM_EXEC_CONTROL), inL0('preemptionTimer02', env.l0.preemptionTimer02 >>> 0)],
  compute: (inp) => (inp.n('L0.merged.PIN_BASED_VM_EXEC_CONTROL') & Pin.ACTIVATE_VMX_PREEMPTION_TIMER ? inp.get('L0.preemptionTimer02') : 0n),
};

const HOST_STATE: MergeRuleImpl = {
  id: 'merge.host-state',
  gather: (env, f) => [{ from: 'L0', field: `host.${f.name}`, value: env.l0.host.get(f.encoding) }],
  compute: (inp, f) => inp.get(`L0.host.${f.name}`),
};

export const CONTROL_RULES: readonly MergeRuleImpl[] = [
  PIN, PRIMARY, SECONDARY, ENTRY, EXIT, EXCEPTION_BITMAP,
  pfecRule('merge.pfec-mask', F.PAGE_FAULT_ERROR_CODE_MASK, 'PAGE_FAULT_ERROR_CODE_MASK'),
  pfecRule('merge.pfec-match', F.PAGE_FAULT_ERROR_CODE_MATCH, 'PAGE_FAULT_ERROR_CODE_MATCH'),
  crMaskRule('merge.cr0-mask', 0), crMaskRule('merge.cr4-mask', 4),
  TPR_THRESHOLD, VIRTUAL_APIC_PAGE, APIC_ACCESS_PAGE, POSTED_INTR_DESC, POSTED_INTR_NV,
  FROM_VMCS12('merge.eoi-exit-bitmap'), XSS_EXIT_BITMAP, ENCLS_BITMAP,
  constant('merge.vm-function-control', 0n), constant('merge.pml-address', 0n), constant('merge.cr3-target-count', 0n), constant('merge.tertiary-controls', 0n),
  tscRule('merge.tsc-offset', 'offset'), tscRule('merge.tsc-multiplier', 'multiplier'),
  gatedL0Value('merge.msr-bitmap', 'primary', Primary.USE_MSR_BITMAPS, 'msrBitmap02'),
  gatedL0Value('merge.ept-pointer', 'secondary', Secondary.ENABLE_EPT, 'eptp02'),
  gatedL0Value('merge.vpid', 'secondary', Secondary.ENABLE_VPID, 'vpid02'),
  FROM_VMCS01('merge.msr-autoload-lists'), FROM_VMCS01('merge.l0-owned-controls'),
  ENTRY_EVENT_INJECTION, PREEMPTION_TIMER_VALUE, HOST_STATE, constant('merge.unused', 0n),
];
