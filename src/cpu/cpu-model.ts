// A CPU model: capability MSRs and CPUID facts, with the allowed-settings rules of SDM Appendix A.
// Every VMX decision that depends on "what this processor supports" asks this object.
// Must not: read files or know about nesting; presets come embedded from schemas/cpu-models/.
import { CPU_MODEL_DATA } from './generated/cpu-models.js';
import { CONTROL_GROUPS, type ControlGroupName } from './generated/controls.js';
import { VMCS_FIELDS, type VmcsFieldDef } from './generated/vmcs-fields.js';
import type { CpuModelData, CpuidFacts, VmxMsrName } from './cpu-model-data.js';
import { bit, bits, parseHex } from './u64.js';

export interface AllowedSettings {
  /** Bits that must be 1 (allowed-0 settings, low dword of the MSR). */
  readonly mustBeOne: bigint;
  /** Bits that may be 1 (allowed-1 settings, high dword). */
  readonly mayBeOne: bigint;
}

export class CpuModel {
  readonly id: string;
  readonly description: string;
  readonly cpuid: CpuidFacts;
  readonly msrs: ReadonlyMap<VmxMsrName, bigint>;
  readonly featureControl: bigint;
  private readonly controls = new Map<ControlGroupName, AllowedSettings>();
  private readonly supportedFields = new Set<number>();
  /** Fields the model lists, including those whose feature it does not offer (= supportedFields unless fieldsIgnoreFeatures). */
  private readonly listedFields = new Set<number>();

  constructor(readonly data: CpuModelData) {
    this.id = data.id;
    this.description = data.description;
    this.cpuid = data.cpuid;
    const msrs = new Map<VmxMsrName, bigint>();
    for (const [name, text] of Object.entries(data.vmxMsrs)) {
      const v = parseHex(text as string);
      if (v === undefined) throw new Error(`turtles bug: CPU model ${data.id}: ${name} is not hex`);
      msrs.set(name as VmxMsrName, v);
    }
    this.msrs = msrs;
    this.featureControl = parseHex(data.featureControl) ?? 0n;
    for (const g of CONTROL_GROUPS) this.controls.set(g.group, this.computeAllowed(g.group));
    const unsupported = new Set(data.unsupportedFields);
    for (const f of VMCS_FIELDS) {
      const base = f.name.replace(/_HIGH$/, '');
      if (unsupported.has(base)) continue;
      if (data.fieldsIgnoreFeatures) this.listedFields.add(f.encoding);
      // A processor has a field only if it supports the related feature (SDM App. B), whatever fieldsIgnoreFeatures says.
      if (!this.featureOffered(f)) continue;
      this.supportedFields.add(f.encoding);
      this.listedFields.add(f.encoding);
    }
  }

  msr(name: VmxMsrName): bigint {
    return this.msrs.get(name) ?? 0n;
  }

  get maxPhysAddr(): number {
    return this.cpuid.maxPhysAddr;
  }

  /** Linear-address width used for canonicality: 57 with LA57 support (checks that care about CR4.LA57 pass it explicitly). */
  get linearAddressWidth(): number {
    return this.cpuid.la57 ? 57 : 48;
  }

  get vmcsRevision(): number {
    return Number(bits(this.msr('IA32_VMX_BASIC'), 30, 0));
  }

  get vmcsRegionSize(): number {
    return Number(bits(this.msr('IA32_VMX_BASIC'), 44, 32));
  }

  /** IA32_VMX_BASIC[55]: the TRUE_* control MSRs exist and govern the default1 controls. */
  get hasTrueControls(): boolean {
    return bit(this.msr('IA32_VMX_BASIC'), 55);
  }

  /** IA32_VMX_BASIC[56]: VM entry may deliver hardware exceptions with or without an error code regardless of vector. */
  get relaxedErrorCodeCheck(): boolean {
    return bit(this.msr('IA32_VMX_BASIC'), 56);
  }

  /** IA32_VMX_MISC[29]: VMWRITE may write read-only (exit-information) fields. */
  get vmwriteAnyField(): boolean {
    return bit(this.msr('IA32_VMX_MISC'), 29);
  }

  /** IA32_VMX_MISC[30]: zero-length instruction injection of software events is allowed. */
  get zeroLengthInjection(): boolean {
    return bit(this.msr('IA32_VMX_MISC'), 30);
  }

  /** IA32_VMX_MISC[24:16]. */
  get cr3TargetCount(): number {
    return Number(bits(this.msr('IA32_VMX_MISC'), 24, 16));
  }

  /** Maximum entries in one MSR-load/store list: 512 · (MISC[27:25] + 1). */
  get maxMsrListEntries(): number {
    return 512 * (Number(bits(this.msr('IA32_VMX_MISC'), 27, 25)) + 1);
  }

  /** IA32_VMX_MISC[4:0]: the preemption timer counts down once per 2^rate TSC ticks. */
  get preemptionTimerRate(): number {
    return Number(bits(this.msr('IA32_VMX_MISC'), 4, 0));
  }

  /** IA32_VMX_MISC[8:6]: activity states HLT (1), shutdown (2), wait-for-SIPI (3) supported. */
  activityStateSupported(state: number): boolean {
    if (state === 0) return true;
    if (state < 1 || state > 3) return false;
    return bit(this.msr('IA32_VMX_MISC'), 5 + state);
  }

  get eptVpidCap(): bigint {
    return this.msr('IA32_VMX_EPT_VPID_CAP');
  }

  eptCap(bitIndex: number): boolean {
    return bit(this.eptVpidCap, bitIndex);
  }

  get cr0Fixed0(): bigint {
    return this.msr('IA32_VMX_CR0_FIXED0');
  }
  get cr0Fixed1(): bigint {
    return this.msr('IA32_VMX_CR0_FIXED1');
  }
  get cr4Fixed0(): bigint {
    return this.msr('IA32_VMX_CR4_FIXED0');
  }
  get cr4Fixed1(): bigint {
    return this.msr('IA32_VMX_CR4_FIXED1');
  }

  /** Allowed settings of one control group, honouring IA32_VMX_BASIC[55] (SDM A.3–A.5). */
  allowed(group: ControlGroupName): AllowedSettings {
    const a = this.controls.get(group);
    if (!a) throw new Error(`turtles bug: unknown control group ${group}`);
    return a;
  }

  /** v is a valid setting of `group` (KVM `fixed_bits_valid`: ((v & mayBeOne) | mustBeOne) == v). */
  controlsValid(group: ControlGroupName, v: bigint): boolean {
    const a = this.allowed(group);
    return ((v & a.mayBeOne) | a.mustBeOne) === v;
  }

  /** Whether a control (by id, e.g. "secondary.enable-ept") may be set to 1. */
  controlOffered(id: string): boolean {
    // A model never changes after construction, so each answer is remembered (hot: asked on every nested exit).
    let v = this.offered.get(id);
    if (v === undefined) {
      v = this.computeControlOffered(id);
      this.offered.set(id, v);
    }
    return v;
  }

  private readonly offered = new Map<string, boolean>();

  private computeControlOffered(id: string): boolean {
    const [groupName] = id.split('.');
    const g = CONTROL_GROUPS.find((x) => x.group === groupName);
    const b = g?.bits.find((x) => x.id === id);
    if (!g || !b) return false;
    if (!this.groupUsable(g.group)) return false;
    return bit(this.allowed(g.group).mayBeOne, b.bit);
  }

  /** VMREAD/VMWRITE may access the field (otherwise VMfailValid(12)). */
  fieldSupported(encoding: number): boolean {
    return this.supportedFields.has(encoding);
  }

  /**
   * The field is in the model's field list even if the feature that gives it meaning is not offered: a VMCS store
   * that keeps every listed field (KVM's vmcs12, reference §9.3 N24) holds it. Equals fieldSupported unless the data
   * sets fieldsIgnoreFeatures.
   */
  fieldListed(encoding: number): boolean {
    return this.listedFields.has(encoding);
  }

  /** Highest index of a listed field (for IA32_VMX_VMCS_ENUM consistency; KVM sizes it over vmcs12, N24). */
  get highestFieldIndex(): number {
    let max = 0;
    for (const f of VMCS_FIELDS) if (this.listedFields.has(f.encoding)) max = Math.max(max, f.index);
    return max;
  }

  private groupUsable(group: ControlGroupName): boolean {
    if (group === 'secondary') return bit(this.allowed('primary').mayBeOne, 31);
    if (group === 'tertiary') return bit(this.allowed('primary').mayBeOne, 17);
    if (group === 'exit2') return bit(this.allowed('exit').mayBeOne, 31);
    return true;
  }

  private featureOffered(f: VmcsFieldDef): boolean {
    if (f.feature.length === 0) return true;
    return f.feature.some((id) => this.controlOffered(id));
  }

  private computeAllowed(group: ControlGroupName): AllowedSettings {
    const g = CONTROL_GROUPS.find((x) => x.group === group)!;
    const useTrue = g.trueCapabilityMsr !== null && this.hasTrueControls;
    const msrName = (useTrue ? g.trueCapabilityMsr : g.capabilityMsr) as VmxMsrName;
    const v = this.msr(msrName);
    if (g.width === 64) {
      // Tertiary and secondary-exit capability MSRs report allowed-1 settings only (all 64 bits); allowed-0 is 0.
      return { mustBeOne: 0n, mayBeOne: v };
    }
    return { mustBeOne: v & 0xffff_ffffn, mayBeOne: v >> 32n };
  }
}

const cache = new Map<string, CpuModel>();

export function cpuModelIds(): string[] {
  return CPU_MODEL_DATA.map((d) => d.id);
}

/** A preset by id, or undefined when there is none. */
export function findCpuModel(id: string): CpuModel | undefined {
  const hit = cache.get(id);
  if (hit) return hit;
  const data = CPU_MODEL_DATA.find((d) => d.id === id);
  if (!data) return undefined;
  const model = new CpuModel(data);
  cache.set(id, model);
  return model;
}

export const DEFAULT_CPU_MODEL = 'intel-core-i7-6700k';
