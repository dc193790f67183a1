// L1's view of the machine it runs on: the VMX interface an L1 hypervisor program is written against
// (DESIGN.md §4). The reference machine executes each operation on the model VMX CPU directly; the nested
// machine executes it as an instruction in VMX non-root operation that exits to L0 (unless VMCS shadowing lets
// it through), exactly as on hardware. Must not: know which of the two implements it.
import type { L1Gpa } from '../address.js';
import type { CpuState } from '../state.js';

/** Outcome of a VMX instruction as L1 observes it (O1): completion kind, RFLAGS result, value for VMREAD/VMPTRST. */
export type L1VmxResult =
  | { readonly kind: 'vmsucceed'; readonly value?: bigint }
  | { readonly kind: 'vmfail-invalid' }
  | { readonly kind: 'vmfail-valid'; readonly error: number }
  | { readonly kind: 'fault'; readonly vector: number; readonly errorCode?: number };

/**
 * Outcome of VMLAUNCH/VMRESUME as L1 observes it: a VMfail on the instruction itself, or L1 resuming at HOST_RIP
 * after a VM exit (an ordinary exit from L2, or a VM-entry failure with bit 31 of the reason set), or a VMX abort
 * (the processor shut down). Exit information is then read by L1 with VMREAD, like on hardware.
 */
export type L1LaunchResult =
  | L1VmxResult
  | { readonly kind: 'vm-exit'; readonly exitReason: number }
  | { readonly kind: 'shutdown'; readonly why: 'vmx-abort' | 'triple-fault'; readonly abortIndicator?: number }
  /**
   * L2 ran and stopped without a VM exit: it used up the machine's per-entry L2 step budget, or it executed an
   * instruction the interpreter does not implement (a listed known gap). Neither is architectural: the run ends
   * here (the machine accepts no further L1 operations), and no VM exit is reported.
   */
  | { readonly kind: 'l2-stopped'; readonly why: 'budget-exhausted' | 'unsupported-instruction'; readonly l2Steps: number; readonly mnemonic?: string };

/** The operations of an L1 hypervisor program. Memory operands are L1 guest-physical; L1 runs with paging off
 * for its own VMX bookkeeping (its page tables are irrelevant to what is being verified). */
export interface L1Machine {
  vmxon(region: L1Gpa): L1VmxResult;
  vmxoff(): L1VmxResult;
  vmclear(region: L1Gpa): L1VmxResult;
  vmptrld(region: L1Gpa): L1VmxResult;
  vmptrst(): L1VmxResult;
  vmread(encoding: bigint): L1VmxResult;
  vmwrite(encoding: bigint, value: bigint): L1VmxResult;
  vmlaunch(): L1LaunchResult;
  vmresume(): L1LaunchResult;
  invept(type: bigint, eptp: bigint): L1VmxResult;
  invvpid(type: bigint, vpid: number, linear: bigint): L1VmxResult;
  readMemory(gpa: L1Gpa, size: 1 | 2 | 4 | 8): bigint;
  writeMemory(gpa: L1Gpa, size: 1 | 2 | 4 | 8, value: bigint): void;
  writeBytes(gpa: L1Gpa, bytes: Uint8Array): void;
  rdmsr(index: number): bigint;
  wrmsr(index: number, value: bigint): void;
  /**
   * Set one of L1's general-purpose registers (index in Reg order, 0 = RAX … 15 = R15). A VM exit loads only RSP,
   * RIP and RFLAGS from the host-state area (SDM 27.5.3), so after an exit L1's other GPRs hold L2's values and
   * at the next VM entry L2 starts with L1's: this is how an L1 hypervisor emulates an instruction for L2.
   */
  setGpr(index: number, value: bigint): void;
  /** A copy of L1's architectural register state (O3). */
  l1State(): CpuState;
}

/** A deterministic L1 hypervisor program. It returns when it is done; everything it does goes through `m`. */
export type L1Program = (m: L1Machine) => void;
