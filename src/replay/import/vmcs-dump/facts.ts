// What a dump proves about the processor and the host that produced it, beyond the VMCS fields: a VM exit (or
// an exit-33/34 VM-entry failure) means the control and host-state checks passed (SDM 26.2), so the processor
// allowed those controls and the host was in the IA-32e mode that "host address-space size" says.
// Must not: invent capabilities the dump does not prove, or apply when the caller named a CPU model.
import type { CpuModelData, VmxMsrName } from '../../../cpu/cpu-model-data.js';
import { CONTROL_GROUPS } from '../../../cpu/generated/controls.js';
import { Field } from '../../../cpu/generated/vmcs-fields.js';
import type { VmcsReader } from '../../../cpu/vmcs.js';
import type { DumpDerived } from './types.js';
import { parseHex } from '../../../cpu/u64.js';

/** The reason the dump proves that the controls and host state passed VM entry's checks, or undefined. */
export function controlsProven(derived: DumpDerived): string | undefined {
  const e = derived.exit;
  if (!e) return undefined;
  const r = `0x${e.reason.toString(16).padStart(8, '0')}`;
  if (!e.failedEntry) return `the dump shows VM exit reason ${r} after the entry, so VM entry succeeded`;
  if (e.basic === 33 || e.basic === 34) return `the dump shows VM-entry failure ${r} (reason ${e.basic}), which VM entry reports only after the control and host-state checks passed`;
  return undefined;
}

const hex = (v: bigint) => '0x' + v.toString(16).padStart(16, '0');
const parse = (s: string | undefined) => (s === undefined ? undefined : parseHex(s));
const bitLength = (v: bigint) => v.toString(2).length;

// Physical addresses the control checks compare with MAXPHYADDR, by the control that enables each.
const ADDRESS_FIELDS: readonly [number, number, number][] = [
  // [field, control field, control bit]
  [Field.IO_BITMAP_A, Field.CPU_BASED_VM_EXEC_CONTROL, 25],
  [Field.IO_BITMAP_B, Field.CPU_BASED_VM_EXEC_CONTROL, 25],
  [Field.MSR_BITMAP, Field.CPU_BASED_VM_EXEC_CONTROL, 28],
  [Field.VIRTUAL_APIC_PAGE_ADDR, Field.CPU_BASED_VM_EXEC_CONTROL, 21],
  [Field.APIC_ACCESS_ADDR, Field.SECONDARY_VM_EXEC_CONTROL, 0],
  [Field.EPT_POINTER, Field.SECONDARY_VM_EXEC_CONTROL, 1],
  [Field.PML_ADDRESS, Field.SECONDARY_VM_EXEC_CONTROL, 17],
  [Field.VMREAD_BITMAP, Field.SECONDARY_VM_EXEC_CONTROL, 14],
  [Field.VMWRITE_BITMAP, Field.SECONDARY_VM_EXEC_CONTROL, 14],
  [Field.POSTED_INTR_DESC_ADDR, Field.PIN_BASED_VM_EXEC_CONTROL, 7],
];

export interface WidenedModel {
  readonly data: CpuModelData;
  /** What was widened, one line each, for the report. */
  readonly changes: string[];
}

/**
 * The preset widened to admit the control settings, host CR0/CR4 bits and physical addresses this VMCS used,
 * because the dump proves the processor accepted them. Returns the preset unchanged (no changes) when nothing
 * needed widening.
 */
export function widenForProvenControls(base: CpuModelData, vmcs: VmcsReader, why: string, guestEntered: boolean): WidenedModel {
  const msrs: Partial<Record<VmxMsrName, string>> = { ...base.vmxMsrs };
  const changes: string[] = [];
  const get = (n: VmxMsrName) => parse(msrs[n]) ?? 0n;
  const put = (n: VmxMsrName, v: bigint) => {
    if (get(n) !== v || msrs[n] === undefined) {
      changes.push(`${n} ${msrs[n] ?? 'absent'} -> ${hex(v)}`);
      msrs[n] = hex(v);
    }
  };
  const trueCtls = (get('IA32_VMX_BASIC') >> 55n) & 1n;
  const primary = vmcs.read(Field.CPU_BASED_VM_EXEC_CONTROL);
  const exit = vmcs.read(Field.VM_EXIT_CONTROLS);
  for (const g of CONTROL_GROUPS) {
    const v = vmcs.read(Field[g.field as keyof typeof Field]);
    if (v === undefined) continue;
    // A control group the VMCS does not activate is not checked by VM entry: it proves nothing.
    if (g.group === 'secondary' && (primary === undefined || ((primary >> 31n) & 1n) === 0n)) continue;
    if (g.group === 'tertiary' && (primary === undefined || ((primary >> 17n) & 1n) === 0n)) continue;
    if (g.group === 'exit2' && (exit === undefined || ((exit >> 31n) & 1n) === 0n)) continue;
    const cap = g.capabilityMsr as VmxMsrName;
    if (g.width === 64) {
      put(cap, get(cap) | v);
      continue;
    }
    const plain = get(cap);
    put(cap, (((plain >> 32n) | v) << 32n) | (plain & 0xffff_ffffn));
    if (g.trueCapabilityMsr && trueCtls) {
      const tn = g.trueCapabilityMsr as VmxMsrName;
      const t = get(tn);
      const low = t & 0xffff_ffffn & v;
      put(tn, ((((t >> 32n) | v) << 32n) | low));
      put(cap, (get(cap) & ~0xffff_ffffn) | low | g.defaultOne);
    }
  }
  const secondary = vmcs.read(Field.SECONDARY_VM_EXEC_CONTROL);
  const vmfunc = vmcs.read(Field.VM_FUNCTION_CONTROL);
  if (primary !== undefined && (primary >> 31n) & 1n && secondary !== undefined && (secondary >> 13n) & 1n && vmfunc !== undefined) put('IA32_VMX_VMFUNC', get('IA32_VMX_VMFUNC') | vmfunc);
  const crs: [number, VmxMsrName, VmxMsrName][] = [
    [Field.HOST_CR0, 'IA32_VMX_CR0_FIXED0', 'IA32_VMX_CR0_FIXED1'],
    [Field.HOST_CR4, 'IA32_VMX_CR4_FIXED0', 'IA32_VMX_CR4_FIXED1'],
  ];
  // Guest CR4 is checked against the same fixed bits; guest CR0 is not used because unrestricted guest exempts PE/PG.
  if (guestEntered) crs.push([Field.GUEST_CR4, 'IA32_VMX_CR4_FIXED0', 'IA32_VMX_CR4_FIXED1']);
  for (const [f, f0, f1] of crs) {
    const v = vmcs.read(f);
    if (v === undefined) continue;
    put(f1, get(f1) | (v & 0xffff_ffffn));
    put(f0, get(f0) & v);
  }
  let maxPhys = base.cpuid.maxPhysAddr;
  for (const [f, ctl, bit] of ADDRESS_FIELDS) {
    const c = vmcs.read(ctl);
    const a = vmcs.read(f);
    if (c === undefined || a === undefined || ((c >> BigInt(bit)) & 1n) === 0n) continue;
    if (ctl === Field.SECONDARY_VM_EXEC_CONTROL && (primary === undefined || ((primary >> 31n) & 1n) === 0n)) continue;
    const need = Math.min(52, bitLength(a & ~0xfffn));
    if (need > maxPhys) maxPhys = need;
  }
  if (maxPhys !== base.cpuid.maxPhysAddr) changes.push(`MAXPHYADDR ${base.cpuid.maxPhysAddr} -> ${maxPhys}`);
  if (changes.length === 0) return { data: base, changes };
  return {
    data: {
      ...base,
      id: `${base.id}+proven`,
      description: `${base.description}, widened to what this dump proves the processor accepted`,
      provenance: `${base.provenance}; widened because ${why}`,
      cpuid: { ...base.cpuid, maxPhysAddr: maxPhys },
      vmxMsrs: msrs,
    },
    changes,
  };
}

/** IA32_EFER.LMA of the host that ran the entry, when the dump shows it; undefined when it does not. */
export function impliedHostIa32e(vmcs: VmcsReader, proven: string | undefined): { value: boolean | undefined; why: string } {
  const exit = vmcs.read(Field.VM_EXIT_CONTROLS);
  if (exit === undefined) return { value: undefined, why: 'the VM-exit controls are not in the dump' };
  const hass = ((exit >> 9n) & 1n) === 1n;
  const efer = vmcs.read(Field.HOST_IA32_EFER);
  if (((exit >> 21n) & 1n) === 1n && efer !== undefined) {
    const lma = ((efer >> 10n) & 1n) === 1n;
    if (lma === hass) return { value: hass, why: `"host address-space size" is ${hass ? 1 : 0} and HOST_IA32_EFER.LMA (loaded on exit) agrees` };
    return { value: undefined, why: `"host address-space size" is ${hass ? 1 : 0} but HOST_IA32_EFER.LMA is ${lma ? 1 : 0}` };
  }
  if (proven) return { value: hass, why: `"host address-space size" is ${hass ? 1 : 0} and ${proven}, which requires it to match the host's mode` };
  return { value: undefined, why: 'the dump does not show the host mode' };
}
