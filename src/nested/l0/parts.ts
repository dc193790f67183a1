// L0 made of replaceable parts: every decision the nested L0 makes that a hypervisor can get wrong is one member of
// L0Parts, and the nested machine calls only these. defaultL0Parts(profile) is the correct L0; a test builds a wrong
// L0 by replacing one member (e.g. `{ ...defaultL0Parts(p), invept: () => 0 }` is "INVEPT ignored").
// Must not: hold state (parts are pure functions of their arguments). Reference: nested-vmx.md §5–§8, §10.2.
import { ExitReason } from '../../cpu/generated/exit-reasons.js';
import type { TlbInvalidation } from '../../cpu/vmx/outcome.js';
import { defaultEntryChecker, type EntryChecker } from '../../cpu/vmx/entry-port.js';
import type { Vmcs } from '../../cpu/vmcs.js';
import { composeEpt02, type ComposeInput, type ComposeOutcome } from '../ept02/compose.js';
import type { Ept02Manager } from '../ept02/ept02.js';
import { mergeVmcs02 } from '../merge/merge.js';
import type { L0MergeInputs, MergeResult } from '../merge/types.js';
import type { L0Profile } from '../profile.js';
import { decideReflection } from '../reflect/decide.js';
import { interruption, ioExitsUnderVmcs, vmcs12InterceptsException } from '../reflect/predicates.js';
import type { HardwareExit, ReflectionContext, ReflectionDecision } from '../reflect/types.js';
import { writeExitInfo12 } from '../sync/exit-info.js';
import { l1HostStateFromVmcs12 } from '../sync/host-state.js';
import { syncVmcs02ToVmcs12 } from '../sync/vmcs12-sync.js';
import { invvpidFlush, nestedEntryVpid, nestedExitFlush } from '../vpid.js';

/**
 * The parts of L0. Each member is called at exactly one point of the nested machine (named below), so replacing it
 * changes that one behaviour. All defaults implement reference §5–§8 with the profile's deviations (§9.3).
 */
export interface L0Parts {
  /**
   * vmcs02 from vmcs01, vmcs12 and L0's inputs, with provenance (§5). Called for every hardware entry of vmcs02: the
   * emulated VMLAUNCH/VMRESUME (`l0.realEntry`) and every resume of L2 after an L0-handled exit.
   * Wrong variants: exception bitmap not merged, read shadow taken from the wrong VMCS, intercepts not ORed, …
   */
  merge(vmcs01: Vmcs, vmcs12: Vmcs, l0: L0MergeInputs, profile: L0Profile): MergeResult;
  /**
   * Whether a hardware exit from vmcs02 goes to L1 (§6.1–6.2). Called for every L2 exit. The default is
   * decideReflection, except that I/O exits (30) ask `ioExits` and exception exits (0) L0 does not want ask
   * `exceptionIntercepted`, so those two checks can be replaced on their own.
   */
  reflect(exit: HardwareExit, vmcs12: Vmcs, ctx: ReflectionContext, parts: L0Parts): ReflectionDecision;
  /** vmcs12 makes an I/O access to (port, size) exit: unconditional I/O exiting or its I/O bitmaps (§6.3.2). */
  ioExits(vmcs12: Vmcs, port: number, size: number, readL1Memory: (gpa: bigint, size: number) => Uint8Array | null): boolean;
  /** vmcs12 intercepts exception `vector` with `errorCode`: exception bitmap and, for #PF, PFEC mask/match (§6.3.4). */
  exceptionIntercepted(vmcs12: Vmcs, vector: number, errorCode: number, profile: L0Profile): boolean;
  /** One EPT02 translation from EPT12 ∘ EPT01 (§8.6). Called on every EPT violation from vmcs02. */
  composeEpt02(input: ComposeInput): ComposeOutcome;
  /**
   * Which EPT12 table pages are write-tracked for a leaf: 'non-leaf' (KVM: pages holding upper-level entries; leaf
   * tables stay "unsync" and a leaf change reaches EPT02 only at INVEPT, as the SDM allows) or 'all-levels'.
   */
  readonly ept12WriteTracking: 'non-leaf' | 'all-levels';
  /** Apply L1's INVEPT to EPT02 (§8.7); returns the number of roots dropped. Called after a successful emulated INVEPT. */
  invept(ept02: Ept02Manager, invalidation: Extract<TlbInvalidation, { kind: 'ept-single-context' | 'ept-all-context' }>): number;
  /** VPID L2 runs with and the flush at a nested VM entry (§5.6). Called on the emulated VMLAUNCH/VMRESUME. */
  vpidOnEntry: typeof nestedEntryVpid;
  /** Flush at a nested VM exit to L1 (§5.6). */
  vpidOnExit: typeof nestedExitFlush;
  /** Flush for L1's INVVPID (§2.3). */
  invvpid: typeof invvpidFlush;
  /** VM-entry checks on vmcs12 (the catalogue the reference runs, so failures carry the same ids; §3). */
  readonly entryChecks: EntryChecker;
  /** vmcs12 guest-state area at a nested VM exit (§7.2). */
  syncGuestState: typeof syncVmcs02ToVmcs12;
  /** vmcs12 exit-information fields, IDT-vectoring included (§7.3). */
  writeExitInfo: typeof writeExitInfo12;
  /** L1's state after an exit to L1, from vmcs12's host-state area (§7.4). */
  loadHostState: typeof l1HostStateFromVmcs12;
  /**
   * The event L0 re-injects into L2 when it handles an exit that interrupted event delivery (hardware IDT-vectoring
   * information valid, §5.7), or null. Called for every L0-handled L2 exit.
   */
  reinjection(exit: HardwareExit): { readonly intrInfo: number; readonly errorCode: number; readonly instructionLength: number } | null;
}

/** decideReflection with the I/O and exception rows routed through their own parts. */
export function partsReflect(exit: HardwareExit, vmcs12: Vmcs, ctx: ReflectionContext, parts: L0Parts): ReflectionDecision {
  const basic = exit.reason & 0xffff;
  if (basic === ExitReason.IO_INSTRUCTION) {
    const q = Number(exit.qualification & 0xffff_ffffn) >>> 0;
    const reflect = parts.ioExits(vmcs12, q >>> 16, (q & 7) + 1, ctx.readL1Memory);
    return { reflect, rule: 'l1.io', handledBy: reflect ? 'L1' : 'L0' };
  }
  const d = decideReflection(exit, vmcs12, ctx);
  if (basic !== ExitReason.EXCEPTION_NMI || d.rule !== 'l1.exception') return d;
  const { vector, type } = interruption(exit.intrInfo);
  // NMIs that reach this point are L1's by construction of the row; exceptions follow vmcs12's bitmap / PFEC.
  const reflect = type === 2 || parts.exceptionIntercepted(vmcs12, vector, exit.intrErrorCode, ctx.profile);
  return { reflect, rule: d.rule, handledBy: reflect ? 'L1' : 'L0' };
}

/** An L0-handled exit during event delivery: the event goes back into vmcs02's VM-entry injection fields (§5.7). */
export function defaultReinjection(exit: HardwareExit): { intrInfo: number; errorCode: number; instructionLength: number } | null {
  const info = exit.idtVectoringInfo >>> 0;
  if ((info & 0x8000_0000) === 0) return null;
  const type = (info >>> 8) & 7;
  const soft = type === 4 || type === 5 || type === 6;
  // Bit 12 of IDT-vectoring information is undefined; the injection format has it reserved.
  return { intrInfo: (info & ~0x7000) >>> 0, errorCode: exit.idtVectoringErrorCode >>> 0, instructionLength: soft ? exit.instructionLength : 0 };
}

export function defaultL0Parts(_profile: L0Profile): L0Parts {
  return {
    merge: mergeVmcs02,
    reflect: partsReflect,
    ioExits: (vmcs12, port, size, readL1Memory) => ioExitsUnderVmcs(vmcs12, port, size, { readL1Memory }),
    exceptionIntercepted: vmcs12InterceptsException,
    composeEpt02,
    ept12WriteTracking: 'non-leaf',
    invept: (ept02, inv) => (inv.kind === 'ept-single-context' ? ept02.invalidateEptrta(inv.eptp) : ept02.invalidateAllEpt12()),
    vpidOnEntry: nestedEntryVpid,
    vpidOnExit: nestedExitFlush,
    invvpid: invvpidFlush,
    entryChecks: defaultEntryChecker,
    syncGuestState: syncVmcs02ToVmcs12,
    writeExitInfo: writeExitInfo12,
    loadHostState: l1HostStateFromVmcs12,
    reinjection: defaultReinjection,
  };
}
