// A default L0MergeInputs derived from vmcs01 the way KVM sets up L0 for L2 (guest-owned CR bits = vmcs01's, forced
// CR0.NE and CR4.VMXE, CR0.CD/NW forced off, EB and host state from vmcs01, #PF interception when vmcs01 lacks EPT).
// Must not: allocate memory or pick addresses beyond the defaults the caller overrides. Reference: nested-vmx.md §5.2.
import { Field } from '../../cpu/generated/vmcs-fields.js';
import { Primary, Secondary } from '../../cpu/generated/controls.js';
import { Cr0, Cr4 } from '../../cpu/state.js';
import { u64 } from '../../cpu/u64.js';
import type { Vmcs } from '../../cpu/vmcs.js';
import type { L0MergeInputs } from './types.js';

export function defaultL0MergeInputs(vmcs01: Vmcs, overrides: Partial<L0MergeInputs> = {}): L0MergeInputs {
  const p = vmcs01.lo(Field.CPU_BASED_VM_EXEC_CONTROL);
  const ept = (p & Primary.ACTIVATE_SECONDARY_CONTROLS) !== 0 && (vmcs01.lo(Field.SECONDARY_VM_EXEC_CONTROL) & Secondary.ENABLE_EPT) !== 0;
  return {
    host: vmcs01,
    realEntry: true,
    l2Live: null,
    exceptionBitmap: vmcs01.lo(Field.EXCEPTION_BITMAP),
    needsPfIntercept: !ept,
    cr0GuestOwned: u64(~vmcs01.get(Field.CR0_GUEST_HOST_MASK)),
    cr4GuestOwned: u64(~vmcs01.get(Field.CR4_GUEST_HOST_MASK)),
    cr0AlwaysOn: Cr0.NE,
    cr0AlwaysOff: Cr0.CD | Cr0.NW,
    cr4AlwaysOn: Cr4.VMXE,
    cr4AlwaysOff: 0n,
    shadowCr3: 0n,
    shadowPdptrs: null,
    eptp02: vmcs01.get(Field.EPT_POINTER),
    vpid02: vmcs01.lo(Field.VIRTUAL_PROCESSOR_ID) + 1,
    msrBitmap02: null,
    virtualApicPage: null,
    apicAccessPage: null,
    postedIntrDesc: null,
    unbackedPage: 0n,
    postedIntrNv02: 0xf1,
    l1: { dr7: 0x400n, debugctl: 0n, pat: 0x0007_0406_0007_0406n, efer: 0xd01n, bndcfgs: 0n, perfGlobalCtrl: 0n, cr0: 0x8000_0031n },
    preemptionTimer02: 0,
    enclsBitmap01: 0n,
    emulatesUmip: false,
    requestInterruptWindow: false,
    requestNmiWindow: false,
    reinjection: null,
    ...overrides,
  };
}
