// vmcs02 guest-state merge rules: guest registers from vmcs12 on the real VMLAUNCH/VMRESUME (L2's live state on
// L0's own re-entries), CR0/CR4 with L0's forced bits, CR read shadows = what L2 would read under vmcs12, CR3/PDPTEs by
// L0's paging mode, and the MSR-like fields (DR7, DEBUGCTL, PAT, EFER, BNDCFGS, PERF_GLOBAL_CTRL) that L2 inherits
// from L1 unless vmcs12 loads its own. Must not: read what a rule did not record. Reference: nested-vmx.md §5.2; SDM 26.3.2.
import { Field } from '../../cpu/generated/vmcs-fields.js';
import { EntryCtl, Secondary } from '../../cpu/generated/controls.js';
import { Efer } from '../../cpu/state.js';
import { Deviation } from '../profile.js';
import { u64 } from '../../cpu/u64.js';
import { effectiveSecondary } from './rules-controls.js';
import { guestValue, in01, in12, inGuest, inL0, inMerged, type InputLookup, type MergeEnv, type MergeRuleImpl } from './rule-kit.js';
import type { ProvenanceInput } from './types.js';

const F = Field;
const realEntry = (env: MergeEnv): ProvenanceInput => inL0('realEntry', env.l0.realEntry);

/** The value L2 reads from CRn on a CPU running vmcs12 (KVM nested_read_cr0/cr4). */
export function nestedReadCr(guestCr: bigint, mask: bigint, shadow: bigint): bigint {
  return u64((guestCr & ~mask) | (shadow & mask));
}

const GUEST_STATE: MergeRuleImpl = {
  id: 'merge.guest-state',
  gather: (env, f) => [realEntry(env), inGuest(env, f.encoding)],
  compute: (inp, f) => guestValue(inp, f.name),
};

function guestCrRule(id: string, cr: 0 | 4): MergeRuleImpl {
  const enc = cr === 0 ? F.GUEST_CR0 : F.GUEST_CR4;
  const on = `cr${cr}AlwaysOn` as const;
  const off = `cr${cr}AlwaysOff` as const;
  return {
    id,
    gather: (env) => [realEntry(env), inGuest(env, enc), inL0(on, env.l0[on]), inL0(off, env.l0[off])],
    compute: (inp) => {
      const v = guestValue(inp, `GUEST_CR${cr}`);
      // L2's live CR already carries L0's adjustments; vmcs12's gets them now (vmx_set_cr0/cr4).
      return inp.flag('L0.realEntry') ? u64((v & ~inp.get(`L0.${off}`)) | inp.get(`L0.${on}`)) : v;
    },
  };
}

/** CR0 bits VM entry never loads from the GUEST_CR0 field: ET, reserved 15:6, 17, 28:19, NW, CD (SDM 26.3.2.1). */
const CR0_NOT_LOADED_BY_ENTRY = 0x10n | 0xffc0n | (1n << 17n) | 0x1ff8_0000n | (1n << 29n) | (1n << 30n);

function readShadowRule(id: string, cr: 0 | 4): MergeRuleImpl {
  const [g, m, s] = cr === 0 ? [F.GUEST_CR0, F.CR0_GUEST_HOST_MASK, F.CR0_READ_SHADOW] : [F.GUEST_CR4, F.CR4_GUEST_HOST_MASK, F.CR4_READ_SHADOW];
  const shadowName = `CR${cr}_READ_SHADOW`;
  const l1Cr0 = cr === 0;
  return {
    id,
    gather: (env) => (env.l0.realEntry
      ? [
        realEntry(env), in12(env, g), in12(env, m), in12(env, s),
        ...(l1Cr0 ? [inL0('l1.cr0', env.l0.l1.cr0), inL0('profile.guest-cr0-unloaded-bits-from-vmcs12', env.profile.deviations.has(Deviation.GUEST_CR0_UNLOADED_BITS_FROM_VMCS12))] : []),
      ]
      : [realEntry(env), inGuest(env, s)]),
    compute: (inp) => {
      if (!inp.flag('L0.realEntry')) return inp.get(`L0.l2Live.${shadowName}`);
      let guest = inp.get(`vmcs12.GUEST_CR${cr}`);
      // The bits a CPU does not load are L1's (L0 owns CD/NW, so L2 reads them here); KVM reads them from vmcs12
      // (prepare_vmcs02: CR0_READ_SHADOW = nested_read_cr0(vmcs12)), kvm.guest-cr0-unloaded-bits-from-vmcs12.
      if (l1Cr0 && !inp.flag('L0.profile.guest-cr0-unloaded-bits-from-vmcs12')) guest = (guest & ~CR0_NOT_LOADED_BY_ENTRY) | (inp.get('L0.l1.cr0') & CR0_NOT_LOADED_BY_ENTRY);
      return nestedReadCr(guest, inp.get(`vmcs12.CR${cr}_GUEST_HOST_MASK`), inp.get(`vmcs12.${shadowName}`));
    },
  };
}

const ept01 = (inp: InputLookup): boolean =>
  (effectiveSecondary(inp.n('vmcs01.CPU_BASED_VM_EXEC_CONTROL'), inp.n('vmcs01.SECONDARY_VM_EXEC_CONTROL')) & Secondary.ENABLE_EPT) !== 0;

const GUEST_CR3: MergeRuleImpl = {
  id: 'merge.guest-cr3',
  gather: (env) => [in01(env, F.CPU_BASED_VM_EXEC_CONTROL), in01(env, F.SECONDARY_VM_EXEC_CONTROL), realEntry(env), inGuest(env, F.GUEST_CR3), inL0('shadowCr3', env.l0.shadowCr3)],
  // With EPT in L0, L2's CR3 is used as is; with shadow paging the hardware runs on L0's shadow root.
  compute: (inp) => (ept01(inp) ? guestValue(inp, 'GUEST_CR3') : inp.get('L0.shadowCr3')),
};

const GUEST_PDPTR: MergeRuleImpl = {
  id: 'merge.guest-pdptr',
  gather: (env, f) => {
    const n = (f.encoding - F.GUEST_PDPTR0) >> 1;
    return [
      in01(env, F.CPU_BASED_VM_EXEC_CONTROL), in01(env, F.SECONDARY_VM_EXEC_CONTROL), realEntry(env), in12(env, F.CPU_BASED_VM_EXEC_CONTROL),
      in12(env, F.SECONDARY_VM_EXEC_CONTROL), inGuest(env, f.encoding), inL0(`shadowPdptrs.${n}`, env.l0.shadowPdptrs?.[n] ?? 0n),
    ];
  },
  compute: (inp, f) => {
    // Without EPT in vmcs02 the CPU loads PDPTEs from memory at CR3 and ignores these fields.
    if (!ept01(inp)) return 0n;
    if (!inp.flag('L0.realEntry')) return guestValue(inp, f.name);
    const s12 = effectiveSecondary(inp.n('vmcs12.CPU_BASED_VM_EXEC_CONTROL'), inp.n('vmcs12.SECONDARY_VM_EXEC_CONTROL'));
    // With EPT12 the PDPTEs are vmcs12's (SDM 26.3.2.4); without it L0 loaded them from L2 memory at CR3.
    return s12 & Secondary.ENABLE_EPT ? inp.get(`vmcs12.${f.name}`) : inp.get(`L0.shadowPdptrs.${(f.encoding - F.GUEST_PDPTR0) >> 1}`);
  },
};

/** Field loaded from vmcs12 only when vmcs12's entry control asks for it; otherwise L2 inherits L1's value. */
function loadedOrInherited(id: string, encoding: number, control: number, l1Key: 'dr7' | 'debugctl' | 'pat' | 'bndcfgs' | 'perfGlobalCtrl'): MergeRuleImpl {
  return {
    id,
    gather: (env) => [realEntry(env), in12(env, F.VM_ENTRY_CONTROLS), inGuest(env, encoding), inL0(`l1.${l1Key}`, env.l0.l1[l1Key])],
    compute: (inp, f) => {
      if (!inp.flag('L0.realEntry')) return inp.get(`L0.l2Live.${f.name}`);
      return inp.n('vmcs12.VM_ENTRY_CONTROLS') & control ? inp.get(`vmcs12.${f.name}`) : inp.get(`L0.l1.${l1Key}`);
    },
  };
}

/** IA32_DEBUGCTL LBR (bit 0) and BTF (bit 1): KVM does not emulate them and drops them on writes (N12). */
const DEBUGCTL_LBR_BTF = 0b11n;

const DEBUGCTL_LOADED_OR_INHERITED = loadedOrInherited('merge.guest-debugctl', F.GUEST_IA32_DEBUGCTL, EntryCtl.LOAD_DEBUG_CONTROLS, 'debugctl');

/** DEBUGCTL as DR7 & co., except that under kvm (N12) the value vmcs12 loads loses LBR/BTF (KVM masks it to what it supports). */
const GUEST_DEBUGCTL: MergeRuleImpl = {
  id: 'merge.guest-debugctl',
  gather: (env, f) => [
    ...DEBUGCTL_LOADED_OR_INHERITED.gather(env, f),
    inL0('profile.debugctl-bits-dropped', env.profile.deviations.has(Deviation.DEBUGCTL_BITS_DROPPED)),
  ],
  compute: (inp, f) => {
    const v = DEBUGCTL_LOADED_OR_INHERITED.compute(inp, f);
    const loaded = inp.flag('L0.realEntry') && (inp.n('vmcs12.VM_ENTRY_CONTROLS') & EntryCtl.LOAD_DEBUG_CONTROLS) !== 0;
    return loaded && inp.flag('L0.profile.debugctl-bits-dropped') ? v & ~DEBUGCTL_LBR_BTF : v;
  },
};

const GUEST_EFER: MergeRuleImpl = {
  id: 'merge.guest-efer',
  gather: (env) => [
    realEntry(env), in12(env, F.VM_ENTRY_CONTROLS), in12(env, F.GUEST_CR0), inGuest(env, F.GUEST_IA32_EFER), inL0('l1.efer', env.l0.l1.efer),
    inL0('profile.efer-lme-from-ia32e-mode', env.profile.deviations.has(Deviation.GUEST_EFER_LME_FROM_IA32E_MODE)),
  ],
  compute: (inp) => {
    if (!inp.flag('L0.realEntry')) return inp.get('L0.l2Live.GUEST_IA32_EFER');
    const entry = inp.n('vmcs12.VM_ENTRY_CONTROLS');
    if (entry & EntryCtl.LOAD_IA32_EFER) return inp.get('vmcs12.GUEST_IA32_EFER');
    const ia32e = (entry & EntryCtl.IA32E_MODE_GUEST) !== 0;
    const l1 = inp.get('L0.l1.efer');
    // kvm.guest-efer-lme-from-ia32e-mode (KVM nested_vmx_calc_efer): L1's EFER with LMA = LME = "IA-32e mode guest".
    if (inp.flag('L0.profile.efer-lme-from-ia32e-mode')) return (l1 & ~(Efer.LMA | Efer.LME)) | (ia32e ? Efer.LMA | Efer.LME : 0n);
    // SDM 26.3.2.1: LMA = "IA-32e mode guest"; LME too only when the entry sets CR0.PG, else it keeps L1's value.
    const pg = (inp.get('vmcs12.GUEST_CR0') & (1n << 31n)) !== 0n;
    const lme = pg ? (ia32e ? Efer.LME : 0n) : l1 & Efer.LME;
    return (l1 & ~(Efer.LMA | Efer.LME)) | (ia32e ? Efer.LMA : 0n) | lme;
  },
};

const GUEST_INTR_STATUS: MergeRuleImpl = {
  id: 'merge.guest-intr-status',
  gather: (env) => [realEntry(env), inMerged(env, F.CPU_BASED_VM_EXEC_CONTROL), inMerged(env, F.SECONDARY_VM_EXEC_CONTROL), inGuest(env, F.GUEST_INTR_STATUS)],
  compute: (inp) => {
    const s = effectiveSecondary(inp.n('L0.merged.CPU_BASED_VM_EXEC_CONTROL'), inp.n('L0.merged.SECONDARY_VM_EXEC_CONTROL'));
    return s & Secondary.VIRTUAL_INTERRUPT_DELIVERY ? guestValue(inp, 'GUEST_INTR_STATUS') : 0n;
  },
};

const constant = (id: string, value: bigint): MergeRuleImpl => ({ id, gather: () => [], compute: () => value });

export const GUEST_RULES: readonly MergeRuleImpl[] = [
  GUEST_STATE, guestCrRule('merge.guest-cr0', 0), guestCrRule('merge.guest-cr4', 4), readShadowRule('merge.cr0-read-shadow', 0),
  readShadowRule('merge.cr4-read-shadow', 4), GUEST_CR3, GUEST_PDPTR,
  loadedOrInherited('merge.guest-dr7', F.GUEST_DR7, EntryCtl.LOAD_DEBUG_CONTROLS, 'dr7'),
  GUEST_DEBUGCTL,
  loadedOrInherited('merge.guest-pat', F.GUEST_IA32_PAT, EntryCtl.LOAD_IA32_PAT, 'pat'),
  loadedOrInherited('merge.guest-bndcfgs', F.GUEST_BNDCFGS, EntryCtl.LOAD_IA32_BNDCFGS, 'bndcfgs'),
  loadedOrInherited('merge.guest-perf-global-ctrl', F.GUEST_IA32_PERF_GLOBAL_CTRL, EntryCtl.LOAD_IA32_PERF_GLOBAL_CTRL, 'perfGlobalCtrl'),
  GUEST_EFER, GUEST_INTR_STATUS,
  // HLT / wait-for-SIPI are emulated by L0 scheduling: L2 is never launched in those states (N15).
  constant('merge.guest-activity-state', 0n),
  // PML for L2 is emulated (N17): the hardware index is parked at its "empty" value.
  constant('merge.guest-pml-index', 0xffffn),
  // KVM never exposes hardware VMCS shadowing to L2; L1's shadow VMCS is emulated.
  constant('merge.vmcs-link-pointer', 0xffff_ffff_ffff_ffffn),
];
