// l1HostStateFromVmcs12: L1's processor state after an emulated VM exit, loaded from vmcs12's host-state area by the
// SDM rules (null selectors unusable, CR0 bits the exit does not modify, CR4.PAE/PCIDE by host address-space size,
// DR7/DEBUGCTL reset, LDTR unusable), with the kvm profile's N14 deviations and N1 (abort → triple fault) behind switches.
// Must not: process MSR-load lists (the VMX layer does) or mutate inputs. Reference: nested-vmx.md §7.4, §7.5; SDM 27.5.1–27.5.3, 27.7.
// Why not reuse src/cpu/vmx/host-state.ts: that is the model hardware's load (the reference machine's); this is L0's
// software emulation of it. Keeping them independent is deliberate: the differential checker compares the two, so a
// mistake in either one shows up as a divergence instead of being shared by both runs.
import { Field } from '../../cpu/generated/vmcs-fields.js';
import { ExitCtl } from '../../cpu/generated/controls.js';
import { Ar, Cr0, Cr4, Efer, Msr, Seg, type CpuState } from '../../cpu/state.js';
import type { CpuModel } from '../../cpu/cpu-model.js';
import { signExtend, u64, U64_MASK } from '../../cpu/u64.js';
import type { Vmcs } from '../../cpu/vmcs.js';
import { Deviation, type L0Profile } from '../profile.js';

export interface HostLoadContext {
  readonly profile: L0Profile;
  /** The CPU model L1 sees (VMX-fixed CR bits, MAXPHYADDR). */
  readonly model: CpuModel;
  /** Reads L1-physical memory for the PDPTEs of a PAE host CR3; when absent the PDPTE check is skipped. */
  readonly readL1Memory?: (gpa: bigint, size: number) => Uint8Array | null;
}

/** Parts of the loaded state the SDM leaves undefined (a comparison must ignore them). */
export type UndefinedPart = `${'SS' | 'DS' | 'ES' | 'FS' | 'GS' | 'LDTR'}.${'base' | 'limit' | 'attributes'}`;

export type HostLoadResult =
  | { readonly kind: 'ok'; readonly state: CpuState; readonly undefinedParts: readonly UndefinedPart[] }
  /** VMX abort (SDM 27.7): indicator 2 = host PDPTE load failed, 6 = IA-32e mode before the exit with host address-space size 0. */
  | { readonly kind: 'vmx-abort'; readonly indicator: number }
  /** kvm (N1): KVM requests a triple fault for L1 instead of a VMX abort. */
  | { readonly kind: 'triple-fault'; readonly abortIndicator: number };

/** CR0 bits a VM exit never modifies (SDM 27.5.1): ET, NW, CD, 63:32, 28:19, 17, 15:6. */
const CR0_NOT_LOADED = Cr0.ET | Cr0.NW | Cr0.CD | (U64_MASK ^ 0xffff_ffffn) | 0x1ff8_0000n | (1n << 17n) | 0xffc0n;

const AR_CODE64 = 0xb | Ar.S | Ar.P | Ar.L | Ar.G;
const AR_CODE32 = 0xb | Ar.S | Ar.P | Ar.DB | Ar.G;
const AR_DATA = 0x3 | Ar.S | Ar.P | Ar.DB | Ar.G;
const AR_TSS_BUSY = 0xb | Ar.P;

function abort(indicator: number, profile: L0Profile): HostLoadResult {
  if (profile.deviations.has(Deviation.ABORT_AS_TRIPLE_FAULT)) return { kind: 'triple-fault', abortIndicator: indicator };
  return { kind: 'vmx-abort', indicator };
}

/**
 * CR0 as the host-state load leaves it: bits the SDM excludes keep their value; bits fixed in VMX operation take their
 * fixed value (the guest may have run with PE/PG = 0 under "unrestricted guest", the host cannot; SDM 27.5.1 with 23.8);
 * the rest come from HOST_CR0.
 */
export function loadHostCr0(current: bigint, hostCr0: bigint, model: CpuModel): bigint {
  const fixed = model.cr0Fixed0 | u64(~model.cr0Fixed1);
  const loaded = u64(~(CR0_NOT_LOADED | fixed));
  return u64((current & CR0_NOT_LOADED & ~fixed) | (hostCr0 & loaded) | model.cr0Fixed0);
}

/**
 * L1's state after the exit. `cpu` is the logical processor at the exit (L2's registers and unswitched MSRs: what a real
 * CPU carries across a VM exit); the result is a new CpuState.
 */
export function l1HostStateFromVmcs12(vmcs12: Vmcs, cpu: CpuState, ctx: HostLoadContext): HostLoadResult {
  const exitCtl = vmcs12.lo(Field.VM_EXIT_CONTROLS);
  const hass = (exitCtl & ExitCtl.HOST_ADDRESS_SPACE_SIZE) !== 0;
  // SDM 27.7: leaving IA-32e mode for a host with address-space size 0 is a VMX abort (indicator 6).
  if (cpu.ia32e && !hass) return abort(6, ctx.profile);

  const s = cpu.clone();
  const undefinedParts: UndefinedPart[] = [];

  // CR0: kvm hands the whole HOST_CR0 to its setter (N14); hardware loads only the modifiable bits.
  const hostCr0 = vmcs12.get(Field.HOST_CR0);
  s.cr0 = ctx.profile.deviations.has(Deviation.HOST_CR0_FULL_LOAD) ? hostCr0 : loadHostCr0(cpu.cr0, hostCr0, ctx.model);
  // CR4: VMX-fixed bits at their fixed values; PAE set with a 64-bit host, PCIDE cleared with a 32-bit one.
  const cr4Fixed = ctx.model.cr4Fixed0 | u64(~ctx.model.cr4Fixed1);
  let cr4 = u64((vmcs12.get(Field.HOST_CR4) & ~cr4Fixed) | ctx.model.cr4Fixed0);
  cr4 = hass ? cr4 | Cr4.PAE : cr4 & ~Cr4.PCIDE;
  s.cr4 = cr4;
  s.cr3 = vmcs12.get(Field.HOST_CR3);

  // DR7 and IA32_DEBUGCTL are reset by every VM exit.
  s.dr[7] = 0x400n;
  s.setMsr(Msr.IA32_DEBUGCTL, 0n);

  s.setMsr(Msr.IA32_SYSENTER_CS, vmcs12.get(Field.HOST_IA32_SYSENTER_CS) & 0xffff_ffffn);
  const width = cr4 & Cr4.LA57 ? 57 : 48;
  s.setMsr(Msr.IA32_SYSENTER_ESP, signExtend(vmcs12.get(Field.HOST_IA32_SYSENTER_ESP), width));
  s.setMsr(Msr.IA32_SYSENTER_EIP, signExtend(vmcs12.get(Field.HOST_IA32_SYSENTER_EIP), width));

  // EFER: loaded, or LMA = LME = host address-space size (SDM 27.5.1).
  if (exitCtl & ExitCtl.LOAD_IA32_EFER) s.efer = vmcs12.get(Field.HOST_IA32_EFER);
  else s.efer = hass ? cpu.efer | Efer.LMA | Efer.LME : cpu.efer & ~(Efer.LMA | Efer.LME);
  if (exitCtl & ExitCtl.LOAD_IA32_PAT) s.setMsr(Msr.IA32_PAT, vmcs12.get(Field.HOST_IA32_PAT));
  if (exitCtl & ExitCtl.LOAD_IA32_PERF_GLOBAL_CTRL) s.setMsr(Msr.IA32_PERF_GLOBAL_CTRL, vmcs12.get(Field.HOST_IA32_PERF_GLOBAL_CTRL));
  if (exitCtl & ExitCtl.CLEAR_IA32_BNDCFGS) s.setMsr(Msr.IA32_BNDCFGS, 0n);
  if (exitCtl & ExitCtl.CLEAR_IA32_RTIT_CTL) s.setMsr(Msr.IA32_RTIT_CTL, 0n);
  if (exitCtl & ExitCtl.CLEAR_IA32_LBR_CTL) s.setMsr(Msr.IA32_LBR_CTL, 0n);

  // Segments (SDM 27.5.2).
  s.segSel[Seg.CS] = Number(vmcs12.get(Field.HOST_CS_SELECTOR));
  s.segBase[Seg.CS] = 0n;
  s.segLimit[Seg.CS] = 0xffff_ffff;
  s.segAr[Seg.CS] = hass ? AR_CODE64 : AR_CODE32;
  const nullUsable = ctx.profile.deviations.has(Deviation.HOST_NULL_SELECTOR_USABLE);
  const data: [number, 'SS' | 'DS' | 'ES' | 'FS' | 'GS', number, bigint | null][] = [
    [Seg.SS, 'SS', Field.HOST_SS_SELECTOR, null], [Seg.DS, 'DS', Field.HOST_DS_SELECTOR, null], [Seg.ES, 'ES', Field.HOST_ES_SELECTOR, null],
    [Seg.FS, 'FS', Field.HOST_FS_SELECTOR, vmcs12.get(Field.HOST_FS_BASE)], [Seg.GS, 'GS', Field.HOST_GS_SELECTOR, vmcs12.get(Field.HOST_GS_BASE)],
  ];
  for (const [seg, name, selField, base] of data) {
    const sel = Number(vmcs12.get(selField));
    s.segSel[seg] = sel;
    // FS/GS bases are loaded whether or not the segment is usable (they are also the FS/GS base MSRs).
    s.segBase[seg] = base === null ? 0n : signExtend(base, width);
    if (sel === 0 && !nullUsable) {
      // Unusable: SS keeps DPL 0 (the CPL), everything else about it is undefined.
      s.segLimit[seg] = 0;
      s.segAr[seg] = Ar.UNUSABLE;
      undefinedParts.push(`${name}.limit`, `${name}.attributes`);
      if (base === null) undefinedParts.push(`${name}.base`);
    } else {
      s.segLimit[seg] = 0xffff_ffff;
      s.segAr[seg] = AR_DATA;
    }
  }
  s.segSel[Seg.TR] = Number(vmcs12.get(Field.HOST_TR_SELECTOR));
  s.segBase[Seg.TR] = signExtend(vmcs12.get(Field.HOST_TR_BASE), width);
  s.segLimit[Seg.TR] = 0x67;
  s.segAr[Seg.TR] = AR_TSS_BUSY;
  s.segSel[Seg.LDTR] = 0;
  s.segBase[Seg.LDTR] = 0n;
  s.segLimit[Seg.LDTR] = 0;
  s.segAr[Seg.LDTR] = Ar.UNUSABLE;
  undefinedParts.push('LDTR.base', 'LDTR.limit', 'LDTR.attributes');

  s.gdtrBase = signExtend(vmcs12.get(Field.HOST_GDTR_BASE), width);
  s.gdtrLimit = 0xffff;
  s.idtrBase = signExtend(vmcs12.get(Field.HOST_IDTR_BASE), width);
  s.idtrLimit = 0xffff;

  s.gpr[4] = vmcs12.get(Field.HOST_RSP);
  s.rip = vmcs12.get(Field.HOST_RIP);
  s.rflags = 0x2n;
  // No blocking by STI or MOV SS after a VM exit; L1 is active.
  s.interruptibility = cpu.interruptibility & ~3;
  s.activity = 0;

  // PAE paging without IA-32e mode loads the PDPTEs from HOST_CR3; a bad PDPTE is VMX abort 2.
  const pae = (s.cr0 & Cr0.PG) !== 0n && (cr4 & Cr4.PAE) !== 0n && (s.efer & Efer.LMA) === 0n;
  if (pae && ctx.readL1Memory && !pdptesValid(s.cr3, ctx.model.maxPhysAddr, ctx.readL1Memory)) return abort(2, ctx.profile);

  return { kind: 'ok', state: s, undefinedParts };
}

/** The four PDPTEs at CR3[31:5]: present entries must have no reserved bits (2:1, 8:5, 63:MAXPHYADDR) set. */
function pdptesValid(cr3: bigint, maxPhysAddr: number, read: (gpa: bigint, size: number) => Uint8Array | null): boolean {
  const bytes = read(cr3 & 0xffff_ffe0n, 32);
  if (bytes === null || bytes.length < 32) return false;
  const view = new DataView(bytes.buffer, bytes.byteOffset, 32);
  const rsvd = 0x1e6n | (U64_MASK << BigInt(maxPhysAddr));
  for (let i = 0; i < 4; i++) {
    const e = view.getBigUint64(i * 8, true);
    if ((e & 1n) !== 0n && (e & u64(rsvd)) !== 0n) return false;
  }
  return true;
}
