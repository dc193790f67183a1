// L0's per-vCPU nested-VMX state (KVM struct nested_vmx): VMX operation, VMXON and current-VMCS pointers, the cached
// vmcs12 (and, for the sdm profile, every VMCS L1 made active, as a CPU caches them), guest mode, the pending nested
// entry, VPID bookkeeping and the emulated preemption timer. Must not: contain instruction semantics (emulate.ts).
// Reference: nested-vmx.md §10.1 (minimal L0 state), §2.3 (VMCS caching); SDM 24.11.1.
import type { Vmcs } from '../../cpu/vmcs.js';
import { U64_MASK } from '../../cpu/u64.js';

/** FFFFFFFF_FFFFFFFFH: no VMXON region / no current VMCS. */
export const INVALID_POINTER = U64_MASK;

/** One VMCS L1 made active: its cached data and launch state. */
export interface Vmcs12Slot {
  readonly ptr: bigint;
  readonly vmcs: Vmcs;
  launched: boolean;
  /** Shadow-VMCS indicator (revision bit 31) as the last VMPTRLD read it. */
  shadow: boolean;
}

export class NestedVmxState {
  vmxon = false;
  vmxonPtr = INVALID_POINTER;
  currentPtr = INVALID_POINTER;
  /** VMCSs whose data L0 holds, by region address (kvm profile: only the current one). */
  readonly active = new Map<bigint, Vmcs12Slot>();
  /** L2 is running (L0 is between an emulated VM entry and the next exit to L1). */
  guestMode = false;
  /** VMLAUNCH/VMRESUME emulated, L2 not yet entered (KVM nested_run_pending). */
  nestedRunPending = false;
  /** The VPID L2 runs with when vmcs12 enables VPID (allocated at VMXON), and the last vpid12 seen at entry. */
  vpid02: number | null = null;
  lastVpid12: number | null = null;
  /** Emulated VMX-preemption timer deadline in units of (L1 TSC >> rate), null when not armed. */
  preemptionDeadline: bigint | null = null;

  /** The current vmcs12 slot, or undefined when the current-VMCS pointer is invalid. */
  get current(): Vmcs12Slot | undefined {
    return this.currentPtr === INVALID_POINTER ? undefined : this.active.get(this.currentPtr);
  }

  /** The current vmcs12's data (throws when there is none: callers check `current` first). */
  get vmcs12(): Vmcs {
    const c = this.current;
    if (!c) throw new Error('turtles bug: vmcs12 used without a current VMCS');
    return c.vmcs;
  }
}
