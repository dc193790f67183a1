// The shape of a CPU-model preset as stored in schemas/cpu-models/*.json (and embedded by the generator).
// Pure data: hex strings for 64-bit MSR values, so no architectural value passes through a JS number.
// Must not: contain behaviour; src/cpu/cpu-model.ts interprets it.

/** VMX capability MSRs by their SDM names (IA32_VMX_BASIC, IA32_VMX_TRUE_PINBASED_CTLS, ...), values as "0x…". */
export type VmxMsrName =
  | 'IA32_VMX_BASIC'
  | 'IA32_VMX_PINBASED_CTLS'
  | 'IA32_VMX_PROCBASED_CTLS'
  | 'IA32_VMX_EXIT_CTLS'
  | 'IA32_VMX_ENTRY_CTLS'
  | 'IA32_VMX_MISC'
  | 'IA32_VMX_CR0_FIXED0'
  | 'IA32_VMX_CR0_FIXED1'
  | 'IA32_VMX_CR4_FIXED0'
  | 'IA32_VMX_CR4_FIXED1'
  | 'IA32_VMX_VMCS_ENUM'
  | 'IA32_VMX_PROCBASED_CTLS2'
  | 'IA32_VMX_EPT_VPID_CAP'
  | 'IA32_VMX_TRUE_PINBASED_CTLS'
  | 'IA32_VMX_TRUE_PROCBASED_CTLS'
  | 'IA32_VMX_TRUE_EXIT_CTLS'
  | 'IA32_VMX_TRUE_ENTRY_CTLS'
  | 'IA32_VMX_VMFUNC'
  | 'IA32_VMX_PROCBASED_CTLS3'
  | 'IA32_VMX_EXIT_CTLS2';

export const VMX_MSR_INDEX: Record<VmxMsrName, number> = {
  IA32_VMX_BASIC: 0x480,
  IA32_VMX_PINBASED_CTLS: 0x481,
  IA32_VMX_PROCBASED_CTLS: 0x482,
  IA32_VMX_EXIT_CTLS: 0x483,
  IA32_VMX_ENTRY_CTLS: 0x484,
  IA32_VMX_MISC: 0x485,
  IA32_VMX_CR0_FIXED0: 0x486,
  IA32_VMX_CR0_FIXED1: 0x487,
  IA32_VMX_CR4_FIXED0: 0x488,
  IA32_VMX_CR4_FIXED1: 0x489,
  IA32_VMX_VMCS_ENUM: 0x48a,
  IA32_VMX_PROCBASED_CTLS2: 0x48b,
  IA32_VMX_EPT_VPID_CAP: 0x48c,
  IA32_VMX_TRUE_PINBASED_CTLS: 0x48d,
  IA32_VMX_TRUE_PROCBASED_CTLS: 0x48e,
  IA32_VMX_TRUE_EXIT_CTLS: 0x48f,
  IA32_VMX_TRUE_ENTRY_CTLS: 0x490,
  IA32_VMX_VMFUNC: 0x491,
  IA32_VMX_PROCBASED_CTLS3: 0x492,
  IA32_VMX_EXIT_CTLS2: 0x493,
};

/** CPUID-reported facts that VMX behaviour depends on. */
export interface CpuidFacts {
  /** CPUID.80000008H:EAX[7:0]. */
  maxPhysAddr: number;
  /** CPUID.(EAX=07H,ECX=0):ECX[16]: 5-level paging (57-bit linear addresses). */
  la57: boolean;
  pcid: boolean;
  smep: boolean;
  smap: boolean;
  pku: boolean;
  umip: boolean;
  fsgsbase: boolean;
  xsave: boolean;
  /** CET shadow stacks / IBT (affects CR4.CET and the error-code check relaxation). */
  cet: boolean;
  /** MPX (IA32_BNDCFGS exists). */
  mpx: boolean;
  /** Architectural PMU version (0 = none); IA32_PERF_GLOBAL_CTRL exists from version 2. */
  pmuVersion: number;
  /** General-purpose performance counters (IA32_PERF_GLOBAL_CTRL bits 0..n-1). */
  pmuGpCounters: number;
  /** Fixed-function performance counters (IA32_PERF_GLOBAL_CTRL bits 32..32+n-1). */
  pmuFixedCounters: number;
  /** RTM (affects pending-debug-exceptions bit 16 and DR6 bit 16). */
  rtm: boolean;
  /** IA32_EFER.NXE support. */
  nx: boolean;
}

export interface CpuModelData {
  id: string;
  description: string;
  /** Where the values come from (a dump, a datasheet, a derivation rule). */
  provenance: string;
  cpuid: CpuidFacts;
  vmxMsrs: Partial<Record<VmxMsrName, string>>;
  /** IA32_FEATURE_CONTROL as firmware leaves it (VMXON needs lock bit 0 and bit 2). */
  featureControl: string;
  /** Fields the model does not implement although their feature is offered (e.g. KVM's vmcs12 gaps, reference §9.3 N11). */
  unsupportedFields: string[];
  /**
   * The model lists every implemented field regardless of offered features (KVM's vmcs12, reference §9.3 N24). A CPU
   * with these capabilities still has only the fields of offered features (CpuModel.fieldSupported); the listed set is
   * what a VMCS store such as vmcs12 holds (CpuModel.fieldListed) and what IA32_VMX_VMCS_ENUM counts.
   */
  fieldsIgnoreFeatures: boolean;
}
