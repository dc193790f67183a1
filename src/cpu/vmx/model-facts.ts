// Facts of a CPU model the VMX instructions consult on every execution (which encodings VMREAD/VMWRITE accept and
// which are read-only, INVEPT/INVVPID/shadowing support, the pointer width), computed once per model.
// Must not: hold processor state; it is a cache of CpuModel answers. SDM Vol. 3C App. A.1/A.3/A.6/A.10, App. B.
import type { CpuModel } from '../cpu-model.js';
import { VMCS_FIELDS } from '../generated/vmcs-fields.js';

/** Per-model facts the instructions consult on every execution, computed once. */
export interface ModelFacts {
  /** Encodings VMREAD/VMWRITE accept (error 12 otherwise) → whether the field is read-only (type 1). */
  readonly fields: ReadonlyMap<number, boolean>;
  readonly shadowing: boolean;
  readonly invept: boolean;
  readonly invvpid: boolean;
  /** Physical-address width for VMXON/VMCLEAR/VMPTRLD pointers (32 when IA32_VMX_BASIC[48] = 1). */
  readonly pointerWidth: bigint;
}

const modelFacts = new WeakMap<CpuModel, ModelFacts>();

export function factsOf(cpu: CpuModel): ModelFacts {
  let f = modelFacts.get(cpu);
  if (!f) {
    const fields = new Map<number, boolean>();
    for (const d of VMCS_FIELDS) if (cpu.fieldSupported(d.encoding)) fields.set(d.encoding, d.type === 'read-only data');
    const basic48 = ((cpu.msr('IA32_VMX_BASIC') >> 48n) & 1n) === 1n;
    f = {
      fields,
      shadowing: cpu.controlOffered('secondary.vmcs-shadowing'),
      invept: cpu.controlOffered('secondary.enable-ept') && cpu.eptCap(20),
      invvpid: cpu.controlOffered('secondary.enable-vpid') && cpu.eptCap(32),
      pointerWidth: BigInt(basic48 ? Math.min(32, cpu.maxPhysAddr) : cpu.maxPhysAddr),
    };
    modelFacts.set(cpu, f);
  }
  return f;
}
