// Processor state the interpreter keeps beside CpuState (XCR0, MONITOR arming, pending external events,
// pending debug trap / MTF, VMX-preemption timer, PAUSE-loop timing) and the VMX non-root context it runs
// under. Must not: hold VMCS policy (nonroot/) or memory. SDM Vol. 3C 25.5.1 (timer), 25.5.2 (MTF),
// Vol. 3A 6.9 (pending events).
import { readNonRootControls, type NonRootControls, type NonRootEnv } from '../nonroot/controls.js';
import type { VeArea } from '../ept/ve.js';
import type { VmcsReader } from '../vmcs.js';
import type { VirtualApic } from '../apic/virtual-apic.js';

export class AuxState {
  /** XCR0 (XSETBV/XGETBV); bit 0 (x87) is always 1. */
  xcr0 = 1n;
  /** Address-range monitoring armed by MONITOR (reported by MWAIT exits). */
  monitorArmed = false;
  /** Pending external interrupt vectors (the interrupt controller's IRR); highest vector wins. */
  readonly pendingInterrupts = new Set<number>();
  /** An NMI is pending. */
  pendingNmi = false;
  /** DR6 bits of a pending debug trap (single-step), 0 if none. */
  pendingDebugTrap = 0;
  /** An MTF VM exit is pending at the next instruction boundary. */
  mtfPending = false;
  /** Remaining VMX-preemption timer value (meaningful when the pin control is set). */
  preemptionTimer = 0n;
  /** TSC of the previous PAUSE at CPL 0 and the start of the current PAUSE loop (-1 = none). */
  plePrevPause = -1n;
  pleLoopStart = 0n;
  /** Count of instructions retired (not idle ticks). */
  retired = 0;

  clone(): AuxState {
    const a = new AuxState();
    a.xcr0 = this.xcr0;
    a.monitorArmed = this.monitorArmed;
    for (const v of this.pendingInterrupts) a.pendingInterrupts.add(v);
    a.pendingNmi = this.pendingNmi;
    a.pendingDebugTrap = this.pendingDebugTrap;
    a.mtfPending = this.mtfPending;
    a.preemptionTimer = this.preemptionTimer;
    a.plePrevPause = this.plePrevPause;
    a.pleLoopStart = this.pleLoopStart;
    a.retired = this.retired;
    return a;
  }

  highestInterrupt(): number | undefined {
    let best: number | undefined;
    for (const v of this.pendingInterrupts) if (best === undefined || v > best) best = v;
    return best;
  }
}

/** Shadow-VMCS access for VMREAD/VMWRITE that VMCS shadowing lets through (link-pointer VMCS). */
export interface ShadowVmcsAccess {
  /** Field value, or undefined for an unsupported field (VMfailValid(12)). */
  read(encoding: number): bigint | undefined;
  /** 'ok', or the VM-instruction error number (12 unsupported, 13 read-only). */
  write(encoding: number, value: bigint): 'ok' | number;
}

/** Everything the interpreter needs to run L2 in VMX non-root operation. */
export interface NonRootRuntime {
  readonly controls: NonRootControls;
  readonly env: NonRootEnv;
  /** IA32_VMX_MISC[4:0]. */
  readonly preemptionTimerRate: number;
  /** Write a byte of physical memory named by the VMCS (the VTPR on the virtual-APIC page). */
  writePhysByte?(addr: bigint, value: number): boolean;
  /** The shadow VMCS (link pointer), or null when the link pointer is FFFFFFFF_FFFFFFFFh. */
  readonly shadowVmcs?: ShadowVmcsAccess | null;
  /** The virtualization-exception information area (with "EPT-violation #VE"); absent → violations always exit. */
  readonly veArea?: VeArea;
  /** Apply a successful VMFUNC EPTP switch (EPTP index := ecx, EPT pointer := eptp); absent → VMFUNC unsupported. */
  switchEptp?(index: number, eptp: bigint): void;
  /** APIC virtualization for this entry (src/cpu/apic); absent/null: only the CR8 TPR shadow is modelled. */
  readonly apic?: VirtualApic | null;
}

/** Build a NonRootRuntime from the VMCS in force (controls are read once, as at VM entry). */
export function makeNonRootRuntime(vmcs: VmcsReader, env: NonRootEnv, options: Omit<NonRootRuntime, 'controls' | 'env'>): NonRootRuntime {
  return { controls: readNonRootControls(vmcs), env, ...options };
}
