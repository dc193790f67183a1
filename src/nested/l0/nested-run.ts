// L1's VMLAUNCH/VMRESUME on the nested machine: L0's checks in SDM order (then the entry-check catalogue on vmcs12 and
// its MSR-load list), the vmcs02 merge, hardware entries of vmcs02 with L2 in the interpreter, and per L2 exit the
// reflection decision (L0-handled exits resume L2; the others become the nested VM exit, nested-exit.ts).
// Must not: emit observations or decide what a part decides. Reference: nested-vmx.md §2.3, §3, §5, §6, §8.6.
import { HPA, type Hpa, type L1Gpa, type L2Gpa } from '../../cpu/address.js';
import { eptCapabilities, eptConfig, ept12 as ept12Handle } from '../../cpu/ept/eptp.js';
import type { Ept } from '../../cpu/ept/types.js';
import { ExitCtl, Pin, Primary, Secondary } from '../../cpu/generated/controls.js';
import { ExitReason } from '../../cpu/generated/exit-reasons.js';
import { Field } from '../../cpu/generated/vmcs-fields.js';
import type { Interpreter } from '../../cpu/interp/interpreter.js';
import type { EptGuestMemory } from '../../cpu/interp/guest-memory.js';
import { CachedEptGuestMemory } from '../../cpu/machine/ept-guest-memory.js';
import { makeNonRootRuntime, type NonRootRuntime } from '../../cpu/interp/runtime.js';
import type { EventRecord } from '../../cpu/interp/types.js';
import type { L1LaunchResult } from '../../cpu/l1/machine.js';
import { l2StateDetail, eventText } from '../../cpu/l1/observe.js';
import { ExternalEvents, GuestMemoryPort, runGuestUntilExit, type GuestEntry, type GuestRunResult } from '../../cpu/machine/run-guest.js';
import { assignCpuState } from '../../cpu/machine/l1-memory.js';
import { readNonRootControls, type NonRootEnv } from '../../cpu/nonroot/controls.js';
import { makeVirtualApic } from '../../cpu/apic/virtual-apic.js';
import type { NonRootExit } from '../../cpu/nonroot/types.js';
import { CpuState, Msr } from '../../cpu/state.js';
import { bit } from '../../cpu/u64.js';
import type { Vmcs } from '../../cpu/vmcs.js';
import { loadGuestState, secondaryControls } from '../../cpu/vmx/guest-state.js';
import { loadMsrList, msrLoadRejection, readMsrEntry, writeMsr } from '../../cpu/vmx/msr-list.js';
import type { EntryVerdict } from '../../cpu/vmx/entry-port.js';
import { ENTRY_CHECKS } from '../../cpu/generated/entry-checks.js';
import { readPhys } from '../../cpu/vmx/physical.js';
import { mergeMsrBitmap, nestedMsrPassthrough } from '../msr-bitmap.js';
import { defaultL0MergeInputs } from '../merge/l0-inputs.js';
import type { L0MergeInputs } from '../merge/types.js';
import { preemptionDeadline, preemptionTicksLeft, vmcs12UsesPreemptionTimer } from '../preemption-timer.js';
import type { VpidPlan } from '../vpid.js';
import { controlWord } from '../reflect/control-bits.js';
import { quietL0Policy, type HardwareExit, type ReflectionContext } from '../reflect/types.js';
import { ept12Role } from '../ept02/ept02.js';
import type { Ept02Role } from '../ept02/types.js';
import { emulationApic } from '../features/apic12.js';
import { shadowPdptesForEntry } from '../features/pdpte.js';
import { pml12Enabled, pml12Gate } from '../features/pml12.js';
import { configureL2Smm } from '../features/smm12.js';
import type { PageModificationLog } from '../../cpu/ept/pml.js';
import { expectSucceed, L0Layout, copyUnswitched, writeGuest } from './hardware.js';
import type { L0 } from './l0.js';
import { exitInfoFromHardware, nestedEntryFailure, nestedVmExit, type ExitToL1 } from './nested-exit.js';
import { handleL0Exit, type HandlerVerdict } from './l2-handlers.js';
import { Deviation } from '../profile.js';

/** Catalogue checks KVM leaves to the hardware entry of vmcs02 (reference §3.3 HW rows): VMfail or exit 33 ones. */
const LEFT_TO_HARDWARE = new Set(ENTRY_CHECKS.filter((c) => c.kvm === 'HW' && c.class !== 'exit-34').map((c) => c.id));

/** What the emulated VMLAUNCH/VMRESUME produced, for the machine's observations. */
export interface LaunchReport {
  readonly result: L1LaunchResult;
  /** L1 resumed at HOST_RIP after a VM exit or a VM-entry failure (O2 and O3 follow). */
  readonly exitToL1: boolean;
  /** O4: L2's state at the exit that ended its run, with the events delivered through its IDT since the entry. */
  readonly l2?: { readonly detail: Map<string, bigint>; readonly delivered: readonly string[] };
  /** The catalogue id of the failing VM-entry check (VMfailValid 7/8 or exit 33/34). */
  readonly failedCheck?: string;
  /** The run ended without an exit (budget, interpreter gap, something L0 cannot do). */
  readonly stopped?: 'budget-exhausted' | 'unsupported-instruction';
}

export interface NestedRunnerOptions {
  readonly interp: Interpreter;
  readonly events: ExternalEvents;
  readonly port: GuestMemoryPort;
  /** L2 steps per emulated VMLAUNCH/VMRESUME before the run stops (the reference's per-entry budget). */
  readonly budget: number;
}

type RunOutcome = GuestRunResult | { readonly kind: 'timer' };

/** The activity state a CPU running vmcs12 enters with (SDM 26.6: a vectoring injection makes it active). */
function activityAfterEntry(v12: Vmcs): number {
  const info = v12.lo(Field.VM_ENTRY_INTR_INFO_FIELD);
  const type = (info >>> 8) & 7;
  const vectoring = (info & 0x8000_0000) !== 0 && type !== 7 && type !== 1;
  return vectoring ? 0 : v12.lo(Field.GUEST_ACTIVITY_STATE);
}

export class NestedRunner {
  /** L2's state object (the interpreter's memory adapter is bound to it). */
  readonly l2 = new CpuState();
  readonly interp: Interpreter;
  readonly events: ExternalEvents;
  readonly port: GuestMemoryPort;
  readonly memory: EptGuestMemory<L2Gpa, Hpa>;
  /** Events delivered through L2's IDT since the emulated entry (O4). */
  readonly delivered: EventRecord[] = [];
  pdptes: readonly bigint[] | undefined;
  /** vmcs12's page-modification log, kept by L0's walks of EPT12 (features/pml12.ts). */
  readonly pml12: PageModificationLog;
  /** The PDPTEs the emulated entry loaded from L1 memory for a PAE L2 without EPT12 (features/pdpte.ts). */
  shadowPdptes: readonly bigint[] | null = null;
  /** L1's state at the emulated entry (what L2 inherits, and what the merge calls "L1's"). */
  l1AtEntry = new CpuState();
  budgetLeft = 0;
  readonly budget: number;
  deadline: bigint | null = null;
  /** An event L0 re-injects at the next entry of vmcs02, and whether it is a software event (see runGuest). */
  reinjection: L0MergeInputs['reinjection'] = null;
  pendingMtf = false;
  currentEpt02: Ept<L2Gpa, Hpa> | undefined;
  role: Ept02Role = { kind: 'shadow-on-ept' };
  ept12: Ept<L2Gpa, L1Gpa> | null = null;
  lastInputs: L0MergeInputs | undefined;
  /** The last exit happened in an L2 step (not while delivering an event the VM entry injected). */
  exitFromStep = false;
  /**
   * An event L2 took in a step (delivered at an instruction boundary, raised by an instruction) was interrupted by an
   * L0-handled exit and is re-injected: the step its delivery would have completed is still to be counted (the L2 clock
   * counts neither exiting steps nor VM-entry injections, see ScheduledEvent).
   */
  stepOwed = false;
  /** The same for a software interrupt/exception: the TSC tick of its instruction's retirement is still to come. */
  softTickOwed = false;
  /**
   * The event L0 re-injects was an external interrupt or NMI L2 took at an instruction boundary: its delivery must not
   * leave an MTF pending, as a VM entry's own injection would (SDM 25.5.2).
   */
  suppressMtfAfterInjection = false;
  private msrBitmap02: bigint | null = null;
  private vpidPlan: VpidPlan | null = null;
  private readonly hostEnv: NonRootEnv;

  constructor(readonly l0: L0, o: NestedRunnerOptions) {
    this.interp = o.interp;
    this.events = o.events;
    this.port = o.port;
    this.budgetLeft = o.budget;
    this.budget = o.budget;
    const hw = l0.hw;
    // Exact translation cache (dropped on any write to a page its walks read, an EPT02 root or paging-control change).
    this.memory = new CachedEptGuestMemory(this.l2, hw.memory, () => {
      if (!this.currentEpt02) throw new Error('turtles bug: L2 memory used without an EPT02 root');
      return this.currentEpt02;
    }, { maxPhysAddr: l0.l1Model.maxPhysAddr, pdptes: () => this.pdptes, apicPage: () => this.interp.nonRoot?.apic });
    this.pml12 = pml12Gate(() => l0.state.vmcs12, l0.l1Port);
    this.hostEnv = { readPhysByte: (a) => Number(readPhys(hw.port, a, 1)), insOutsInfo: bit(hw.host.msr('IA32_VMX_BASIC'), 54) };
  }

  // ---- the emulated VMLAUNCH / VMRESUME ------------------------------------------------------------------------------

  launch(launch: boolean): LaunchReport {
    const l0 = this.l0;
    const cpu = l0.hw.cpu;
    const reason = launch ? ExitReason.VMLAUNCH : ExitReason.VMRESUME;
    const hw = launch ? cpu.vmlaunch() : cpu.vmresume();
    if (hw.kind !== 'vm-exit') return { result: l0.l1Vmx(reason, hw, 'hardware', () => ({ outcome: { kind: 'vmfail-invalid' }, effects: [] })), exitToL1: false };
    const l1 = l0.exitFromL1(reason);
    l0.record({ kind: 'l1-exit', step: l0.step, reason, handler: launch ? 'vmlaunch' : 'vmresume' });
    const fault = l0.emu.commonChecks(l1);
    if (fault) return { result: l0.complete(l1, fault), exitToL1: false };
    const cur = l0.state.current;
    // A shadow VMCS cannot be entered (SDM 26.1): VMfailInvalid although the pointer is valid.
    if (!cur || cur.shadow) return { result: l0.complete(l1, { kind: 'vmfail-invalid' }), exitToL1: false };
    if (l1.interruptibility & 0x2) return { result: l0.complete(l1, l0.emu.failValid(26)), exitToL1: false };
    if (launch && cur.launched) return { result: l0.complete(l1, l0.emu.failValid(4)), exitToL1: false };
    if (!launch && !cur.launched) return { result: l0.complete(l1, l0.emu.failValid(5)), exitToL1: false };
    const v12 = cur.vmcs;
    const model = l0.l1Model;
    const verdict = l0.parts.entryChecks(v12, {
      cpu: model, hostIa32e: l1.ia32e, readPhys: (a, s) => readPhys(l0.l1Port, a, s), wrmsrFaults: l0.msrRules.wrmsrFaults,
      x2apicEnabled: ((l1.msr(Msr.IA32_APIC_BASE) >> 10n) & 3n) === 3n, inSmm: false, currentVmptr: cur.ptr,
    });
    if (verdict.kind !== 'pass' && LEFT_TO_HARDWARE.has(verdict.checkId) && l0.profile.deviations.has(Deviation.LATE_HARDWARE_ENTRY_CHECKS)) {
      return this.lateHardwareCheck(v12, l1, verdict);
    }
    if (verdict.kind === 'vmfail') {
      l0.record({ kind: 'nested-entry-check', step: l0.step, checkId: verdict.checkId, outcome: verdict.error === 7 ? 'vmfail-7' : 'vmfail-8' });
      return { result: l0.complete(l1, l0.emu.failValid(verdict.error)), exitToL1: false, failedCheck: verdict.checkId };
    }
    if (verdict.kind === 'entry-failure') {
      l0.record({ kind: 'nested-entry-check', step: l0.step, checkId: verdict.checkId, outcome: verdict.exitReason === 33 ? 'exit-33' : 'exit-34' });
    }
    if (verdict.kind === 'entry-failure' && verdict.exitReason === 33) {
      return this.report(nestedEntryFailure(l0, 33, verdict.qualification, l1, l1), verdict.checkId);
    }
    // The guest state a CPU would load, and the MSR-load list into it: a failing entry is exit 34 from that state.
    const loaded = loadGuestState(v12, model, l0.l1Port, l1);
    const failAt = verdict.kind === 'entry-failure' ? Number(verdict.qualification) : undefined;
    const msr = loadMsrList(l0.l1Port, v12.get(Field.VM_ENTRY_MSR_LOAD_ADDR), v12.lo(Field.VM_ENTRY_MSR_LOAD_COUNT), loaded.guest, l0.msrRules, failAt);
    if (!msr.ok) {
      const check = verdict.kind === 'entry-failure' ? verdict.checkId : undefined;
      return this.report(nestedEntryFailure(l0, 34, BigInt(msr.index), loaded.guest, l1), check);
    }
    // Success: L0's side of the entry.
    if (launch) cur.launched = true;
    l0.state.guestMode = true;
    l0.state.nestedRunPending = true;
    this.l1AtEntry = l1.clone();
    this.shadowPdptes = shadowPdptesForEntry(v12, loaded);
    this.delivered.length = 0;
    this.budgetLeft = this.budget;
    this.reinjection = null;
    this.pendingMtf = false;
    this.softTickOwed = false;
    this.stepOwed = false;
    this.suppressMtfAfterInjection = false;
    const plan = l0.parts.vpidOnEntry(v12.lo(Field.CPU_BASED_VM_EXEC_CONTROL), v12.lo(Field.SECONDARY_VM_EXEC_CONTROL), v12.lo(Field.VIRTUAL_PROCESSOR_ID), 1, l0.state.vpid02, l0.state.lastVpid12);
    l0.state.lastVpid12 = plan.lastVpid12;
    l0.record({ kind: 'vpid-flush', step: l0.step, flush: plan.flush, cause: plan.rule });
    this.vpidPlan = plan;
    this.deadline = vmcs12UsesPreemptionTimer(v12.lo(Field.PIN_BASED_VM_EXEC_CONTROL))
      ? preemptionDeadline(v12.lo(Field.VMX_PREEMPTION_TIMER_VALUE), l1.tsc, model.preemptionTimerRate)
      : null;
    this.msrBitmap02 = this.buildMsrBitmap02(v12);
    return this.runL2(plan.vpid);
  }

  /**
   * N8 (kvm.late-hardware-entry-checks, reference §3.5): KVM loads vmcs12's guest state and its VM-entry MSR-load list
   * before the hardware entry of vmcs02 finds `verdict`'s check. An MSR-list failure is therefore reported first (exit
   * 34); exit 33 leaves the listed MSRs loaded; a VMfail is error 7 and the unwind to L1 re-applies only the exit-list
   * MSRs the entry list also names. Only the first failing check is known: a later check KVM does in software is not.
   */
  private lateHardwareCheck(v12: Vmcs, l1: CpuState, verdict: Exclude<EntryVerdict, { kind: 'pass' }>): LaunchReport {
    const l0 = this.l0;
    const entryList = { base: v12.get(Field.VM_ENTRY_MSR_LOAD_ADDR), count: v12.lo(Field.VM_ENTRY_MSR_LOAD_COUNT) };
    l0.record({ kind: 'l0-internal', step: l0.step, what: `check ${verdict.checkId} left to the hardware entry of vmcs02 (after the MSR-load list)` });
    const loaded = loadGuestState(v12, l0.l1Model, l0.l1Port, l1);
    const msr = loadMsrList(l0.l1Port, entryList.base, entryList.count, loaded.guest, l0.msrRules);
    if (!msr.ok) return this.report(nestedEntryFailure(l0, 34, BigInt(msr.index), loaded.guest, l1), undefined);
    if (verdict.kind === 'entry-failure') return this.report(nestedEntryFailure(l0, verdict.exitReason, verdict.qualification, loaded.guest, l1), verdict.checkId);
    const back = l1.clone();
    loadMsrList(l0.l1Port, entryList.base, entryList.count, back, l0.msrRules);
    const listed = new Set(Array.from({ length: Math.min(entryList.count, l0.msrRules.maxEntries) }, (_, i) => readMsrEntry(l0.l1Port, entryList.base, i).index));
    const exitBase = v12.get(Field.VM_EXIT_MSR_LOAD_ADDR);
    for (let i = 0; i < Math.min(v12.lo(Field.VM_EXIT_MSR_LOAD_COUNT), l0.msrRules.maxEntries); i++) {
      const e = readMsrEntry(l0.l1Port, exitBase, i);
      if (listed.has(e.index) && msrLoadRejection(e, l0.msrRules) === undefined) writeMsr(back, e.index, e.value);
    }
    return { result: l0.complete(back, l0.emu.failValid(7)), exitToL1: false, failedCheck: verdict.checkId };
  }

  private report(e: ExitToL1, failedCheck: string | undefined): LaunchReport {
    return { result: e.result, exitToL1: e.resumed, ...(failedCheck !== undefined ? { failedCheck } : {}) };
  }

  // ---- vmcs02 ----------------------------------------------------------------------------------------------------------

  /** The merged MSR bitmap in L0's page (§5.4), or null when vmcs12 has none or its page is unreadable. */
  private buildMsrBitmap02(v12: Vmcs): bigint | null {
    if (!(controlWord(v12, 'primary') & Primary.USE_MSR_BITMAPS)) return null;
    const b12 = this.l0.l1Port.readBytes(v12.get(Field.MSR_BITMAP), 4096);
    if (!b12) return null;
    const b01 = this.l0.hw.memory.read(HPA.of(L0Layout.MSR_BITMAP01), 4096);
    this.l0.hw.port.writeBytesTo(L0Layout.MSR_BITMAP02, mergeMsrBitmap(b01, b12, nestedMsrPassthrough(controlWord(v12, 'secondary'))));
    return L0Layout.MSR_BITMAP02;
  }

  /** The host page behind a vmcs12 pointer into L1 memory, or null when L1 has no memory there. */
  private hostPage(gpa: bigint): bigint | null {
    const h = this.l0.l1Port.hostOf(gpa, false);
    return h === undefined ? null : (h as bigint);
  }

  /** EPT12 (or none) and the EPT02 role for vmcs12 as it is now (VMWRITE or VMFUNC may have changed the EPTP). */
  private refreshEpt(v12: Vmcs): void {
    const sec = controlWord(v12, 'secondary');
    if (!(sec & Secondary.ENABLE_EPT)) {
      this.role = { kind: 'shadow-on-ept' };
      this.ept12 = null;
      return;
    }
    const mbec = (sec & Secondary.MODE_BASED_EXECUTE_CONTROL) !== 0;
    const eptp = v12.get(Field.EPT_POINTER);
    this.role = ept12Role(eptp, mbec);
    const h = ept12Handle({ eptp, config: eptConfig(eptCapabilities(this.l0.l1Model), { modeBasedExecute: mbec, rmwSetsRead: this.l0.rmwSetsRead }), tables: this.l0.l1Mem });
    if (!h.ok) throw new Error(`turtles bug: vmcs12 EPTP passed the entry checks but not EPT12 validation: ${h.error.message}`);
    this.pml12.enabled = pml12Enabled(v12);
    this.pml12.reset();
    this.ept12 = h.ept;
  }

  private mergeInputs(real: boolean, eptp02: bigint, vpid: number): L0MergeInputs {
    const l0 = this.l0;
    const v12 = l0.state.vmcs12;
    const l1 = this.l1AtEntry;
    return defaultL0MergeInputs(l0.vmcs01, {
      realEntry: real,
      l2Live: real ? null : l0.vmcs02.clone(),
      eptp02,
      vpid02: vpid,
      msrBitmap02: this.msrBitmap02,
      virtualApicPage: this.hostPage(v12.get(Field.VIRTUAL_APIC_PAGE_ADDR)),
      apicAccessPage: this.hostPage(v12.get(Field.APIC_ACCESS_ADDR)),
      postedIntrDesc: this.hostPage(v12.get(Field.POSTED_INTR_DESC_ADDR)),
      unbackedPage: L0Layout.UNBACKED_PAGE,
      shadowPdptrs: real ? this.shadowPdptes : null,
      l1: {
        dr7: l1.dr[7]!, debugctl: l1.msr(Msr.IA32_DEBUGCTL), pat: l1.msr(Msr.IA32_PAT), efer: l1.efer,
        bndcfgs: l1.msr(Msr.IA32_BNDCFGS), perfGlobalCtrl: l1.msr(Msr.IA32_PERF_GLOBAL_CTRL), cr0: l1.cr0,
      },
      reinjection: real ? null : this.reinjection,
    });
  }

  // ---- L2 ---------------------------------------------------------------------------------------------------------------

  /** Hardware entries of vmcs02 until an exit goes to L1 or the run stops. */
  private runL2(vpid: number): LaunchReport {
    const l0 = this.l0;
    const cpu = l0.hw.cpu;
    let real = true;
    for (;;) {
      const v12 = l0.state.vmcs12;
      this.refreshEpt(v12);
      let root = l0.ept02.root(this.role);
      if (!root) {
        l0.ept02.dropRoots('l0-request');
        root = l0.ept02.root(this.role);
        if (!root) throw new Error('turtles bug: L0 has no page for an EPT02 root');
      }
      this.currentEpt02 = root.ept;
      const inputs = this.mergeInputs(real, root.eptp02, vpid);
      this.lastInputs = inputs;
      const merged = l0.parts.merge(l0.vmcs01, v12, inputs, l0.profile);
      l0.record({
        // The merge's vmcs02 is not written after this (the hardware VMCS gets a copy below): no snapshot copy needed.
        kind: 'l2-entry', step: l0.step, realEntry: real, vmcs02: merged.vmcs02, provenance: merged.provenance, issues: merged.issues,
        eptp02: root.eptp02, vpid: real ? this.vpidPlan : null,
      });
      if (cpu.currentPointer !== L0Layout.VMCS02) expectSucceed(cpu.vmptrld(L0Layout.VMCS02), 'VMPTRLD vmcs02');
      cpu.currentVmcs!.copyFrom(merged.vmcs02);
      copyUnswitched(cpu.state, real ? this.l1AtEntry : this.l2);
      const o = cpu.launchState(L0Layout.VMCS02) === 'launched' ? cpu.vmresume() : cpu.vmlaunch();
      this.reinjection = null;
      if (o.kind !== 'vm-entry') return this.lateEntryFailure(o);
      const haltedBefore = real ? 0 : this.l2.activity;
      assignCpuState(this.l2, o.guest);
      cpu.guest = this.l2;
      this.pdptes = o.pdptes;
      // vmcs02 always enters the active state (N15): an HLT / wait-for-SIPI state of vmcs12 (or of L2 when L0 resumes
      // it) is L0's to keep, by not running L2 until an event wakes it — here: the interpreter's halted state.
      this.l2.activity = real ? activityAfterEntry(v12) : haltedBefore;
      if (real) {
        // The vmcs12 VM-entry MSR-load list, processed by L0 in software into L2's state (it passed above).
        const m = loadMsrList(l0.l1Port, v12.get(Field.VM_ENTRY_MSR_LOAD_ADDR), v12.lo(Field.VM_ENTRY_MSR_LOAD_COUNT), this.l2, l0.msrRules);
        if (!m.ok) throw new Error('turtles bug: the vmcs12 MSR-load list failed after passing');
        l0.state.nestedRunPending = false;
      }
      const entry: GuestEntry = { ...(o.injected ? { injected: o.injected } : {}), pendingMtf: o.pendingMtf || this.pendingMtf };
      this.pendingMtf = false;
      const run = this.runGuest(entry);
      real = false;
      if (run.kind === 'budget-exhausted' || run.kind === 'unsupported') return this.stopped(run);
      let verdict: HandlerVerdict;
      if (run.kind === 'timer') {
        // L0's own timer for L1's emulated VMX-preemption timer fired: a host interrupt takes L2 to L0 (§5.5).
        this.interp.leaveNonRoot();
        this.hardwareExit({ reason: ExitReason.EXTERNAL_INTERRUPT, qualification: 0n });
        const hw = this.readHardwareExit();
        l0.record({ kind: 'l2-exit', step: l0.step, hardware: hw, decision: { reflect: false, rule: 'l0.external-interrupt', handledBy: 'L0' }, handling: 'synthesized', handler: 'emulated-preemption-timer' });
        verdict = { kind: 'exit', exit: { ...exitInfoFromHardware(hw, {}, v12), reason: ExitReason.PREEMPTION_TIMER, intrInfo: 0, synthesized: true }, rule: 'priority.preemption-timer' };
      } else {
        this.hardwareExit(run.exit);
        const hw = this.readHardwareExit();
        const decision = l0.parts.reflect(hw, v12, this.reflectionContext(), l0.parts);
        if (decision.reflect) {
          l0.record({ kind: 'l2-exit', step: l0.step, hardware: hw, decision, handling: 'reflected', handler: 'reflect' });
          verdict = { kind: 'exit', exit: exitInfoFromHardware(hw, run.exit, v12), rule: decision.rule };
        } else {
          verdict = handleL0Exit(this, hw, run.exit, decision);
        }
      }
      switch (verdict.kind) {
        case 'resume':
          continue;
        case 'stop':
          return { result: { kind: 'l2-stopped', why: 'unsupported-instruction', l2Steps: this.events.l2Steps, mnemonic: verdict.why }, exitToL1: false, stopped: 'unsupported-instruction' };
        case 'exit':
          return this.toL1(verdict.exit, verdict.rule);
      }
    }
  }

  /** One L2 step L0 completed itself (an emulated instruction, a re-injected event's delivery): the reference's clock. */
  countStep(): void {
    this.events.l2Steps++;
    this.budgetLeft--;
  }

  /** The hardware VM exit from vmcs02 (exit information recorded, L2 saved, L0's host state loaded). */
  hardwareExit(exit: NonRootExit | { reason: number; qualification: bigint }): void {
    const out = this.l0.hw.cpu.vmExit(exit, this.l2);
    if (out.kind !== 'host') throw new Error(`turtles bug: VMX abort on an exit from vmcs02 (${out.indicator})`);
  }

  /** The exit information of vmcs02 as L0 reads it. */
  readHardwareExit(): HardwareExit {
    const v = this.l0.vmcs02;
    return {
      reason: v.lo(Field.VM_EXIT_REASON), qualification: v.get(Field.EXIT_QUALIFICATION), intrInfo: v.lo(Field.VM_EXIT_INTR_INFO),
      intrErrorCode: v.lo(Field.VM_EXIT_INTR_ERROR_CODE), idtVectoringInfo: v.lo(Field.IDT_VECTORING_INFO_FIELD),
      idtVectoringErrorCode: v.lo(Field.IDT_VECTORING_ERROR_CODE), instructionLength: v.lo(Field.VM_EXIT_INSTRUCTION_LEN),
      instructionInfo: v.lo(Field.VMX_INSTRUCTION_INFO), guestLinearAddress: v.get(Field.GUEST_LINEAR_ADDRESS),
      guestPhysicalAddress: v.get(Field.GUEST_PHYSICAL_ADDRESS),
    };
  }

  reflectionContext(): ReflectionContext {
    const l2 = this.l2;
    return {
      profile: this.l0.profile,
      l0: quietL0Policy(),
      l2Gpr: (r) => (l2.longMode64 ? l2.gpr[r]! : l2.gpr[r]! & 0xffff_ffffn),
      l2Msr: (i) => l2.msr(i),
      readL1Memory: (gpa, size) => this.l0.l1Port.readBytes(gpa, size),
    };
  }

  /**
   * Run L2 under vmcs02 until it exits, the per-entry budget runs out, or L1's emulated preemption timer expires
   * (runs are cut where the timer can first expire, so the exit comes at the boundary the reference takes it).
   */
  private runGuest(entry: GuestEntry): RunOutcome {
    const vmcs02 = this.l0.vmcs02;
    const hwPort = this.l0.hw.port;
    // The hardware's APIC virtualization under vmcs02 (host-physical APIC-access and virtual-APIC pages).
    const apic = makeVirtualApic(vmcs02, readNonRootControls(vmcs02), {
      readPhys32: (a) => Number(readPhys(hwPort, a, 4)),
      writePhys32: (a, v) => hwPort.write(a, 4, BigInt(v >>> 0)),
      saveGuestInterruptStatus: (v) => vmcs02.set(Field.GUEST_INTR_STATUS, BigInt(v & 0xffff)),
    });
    const runtime = makeNonRootRuntime(vmcs02, this.hostEnv, {
      preemptionTimerRate: this.l0.hw.host.preemptionTimerRate,
      writePhysByte: (a, v) => hwPort.write(a, 1, BigInt(v & 0xff)),
      shadowVmcs: null,
      apic,
    });
    configureL2Smm(this.interp.signals, this.l0.profile);
    const base = { interp: this.interp, runtime, guest: this.l2, port: this.port, memory: this.memory, events: this.events };
    const batch: EventRecord[] = [];
    if (entry.injected || entry.pendingMtf) {
      const r = runGuestUntilExit({ ...base, entry, budget: 0, delivered: batch });
      this.delivered.push(...batch);
      this.exitFromStep = false;
      if (r.kind !== 'budget-exhausted') return r;
      if (this.stepOwed && batch.length > 0) {
        this.countStep();
        this.stepOwed = false;
      }
      // An INT n / INT3 / INTO whose delivery L0 had to interrupt retires only now: the tick its step would have made.
      if (this.softTickOwed && batch.length > 0) {
        this.l2.tsc = BigInt.asUintN(64, this.l2.tsc + 1n);
        this.softTickOwed = false;
      }
      if (this.suppressMtfAfterInjection && batch.length > 0) {
        this.interp.aux.mtfPending = false;
        this.suppressMtfAfterInjection = false;
      }
    }
    const rate = this.l0.l1Model.preemptionTimerRate;
    for (;;) {
      const mtf = this.interp.aux.mtfPending;
      let chunk = this.budgetLeft;
      if (this.deadline !== null) {
        const left = preemptionTicksLeft(this.deadline, this.l2.tsc, rate);
        if (left === 0n) {
          // MTF and a pending debug trap come before the timer at an instruction boundary (SDM 6.9 / 25.2).
          if (!mtf && this.interp.aux.pendingDebugTrap === 0) return { kind: 'timer' };
          chunk = Math.min(chunk, 1);
        } else if (left < BigInt(chunk)) {
          chunk = Number(left);
        }
      }
      if (chunk <= 0) return { kind: 'budget-exhausted', steps: 0 };
      const r = runGuestUntilExit({ ...base, entry: { pendingMtf: mtf }, budget: chunk, delivered: batch });
      this.delivered.push(...batch);
      this.budgetLeft -= r.steps;
      this.exitFromStep = r.kind === 'vm-exit';
      if (r.kind !== 'budget-exhausted' || this.budgetLeft <= 0) return r;
    }
  }

  private stopped(run: Extract<RunOutcome, { kind: 'budget-exhausted' | 'unsupported' }>): LaunchReport {
    const why = run.kind === 'budget-exhausted' ? 'budget-exhausted' : 'unsupported-instruction';
    return {
      result: { kind: 'l2-stopped', why, l2Steps: this.events.l2Steps, ...(run.kind === 'unsupported' ? { mnemonic: run.mnemonic } : {}) },
      exitToL1: false,
      stopped: why,
    };
  }

  /** The hardware refused vmcs02: KVM reports VMfailValid(7) for every late failure (N8); an sdm L0 has a bug then. */
  private lateEntryFailure(o: { kind: string }): LaunchReport {
    const l0 = this.l0;
    const what = `hardware entry of vmcs02 failed: ${JSON.stringify(o, (_k, v) => (typeof v === 'bigint' ? `0x${v.toString(16)}` : v))}`;
    l0.record({ kind: 'l0-internal', step: l0.step, what });
    l0.state.guestMode = false;
    if (o.kind === 'entry-failure-exit' && 'exitReason' in o) {
      // The hardware loaded L0's host state already; L1 gets the entry failure from vmcs02 (reason 33, always reflected).
      const q = 'qualification' in o ? (o.qualification as bigint) : 0n;
      return this.report(nestedEntryFailure(l0, 33, q, this.l1AtEntry, this.l1AtEntry), undefined);
    }
    // A VMfail leaves L0 in root operation with vmcs02 current; L1 resumes after its VMLAUNCH/VMRESUME.
    return { result: l0.complete(this.l1AtEntry.clone(), l0.emu.failValid(7)), exitToL1: false };
  }

  /** The nested VM exit, with O4 taken first (L2 as it was when the exit happened). */
  toL1(exit: Parameters<typeof nestedVmExit>[1], rule: string): LaunchReport {
    const v02 = this.l0.vmcs02;
    const l2 = {
      detail: l2StateDetail(this.l2, {
        cr0Mask: v02.get(Field.CR0_GUEST_HOST_MASK), cr0Shadow: v02.get(Field.CR0_READ_SHADOW),
        cr4Mask: v02.get(Field.CR4_GUEST_HOST_MASK), cr4Shadow: v02.get(Field.CR4_READ_SHADOW),
      }),
      delivered: this.delivered.map(eventText),
    };
    const e = nestedVmExit(this.l0, exit, rule, { l2: this.l2, preemptionDeadline: this.deadline, l1Cr0AtEntry: this.l1AtEntry.cr0 });
    this.deadline = null;
    return { result: e.result, exitToL1: e.resumed, l2 };
  }

  /** Refresh vmcs02's guest area from L2's state after L0 changed it (what KVM writes before resuming). */
  saveL2(): void {
    writeGuest(this.l0.vmcs02, this.l0.hw.host, this.l2, this.pdptes);
  }

  /**
   * The controls a CPU running vmcs12 applies, for L0's emulation of one L2 instruction (timer left to L0). `handled`
   * names an exit class L0 has decided is its own (its reflection part said so): vmcs12's controls for that class are
   * switched off, so the instruction completes even where vmcs12 would have exited (a wrong part stays wrong).
   */
  vmcs12Runtime(handled?: 'io' | 'msr' | 'cr'): NonRootRuntime {
    const l0 = this.l0;
    const v12 = l0.state.vmcs12.clone();
    v12.set32(Field.PIN_BASED_VM_EXEC_CONTROL, v12.lo(Field.PIN_BASED_VM_EXEC_CONTROL) & ~Pin.ACTIVATE_VMX_PREEMPTION_TIMER);
    const primary = v12.lo(Field.CPU_BASED_VM_EXEC_CONTROL);
    if (handled === 'io') v12.set32(Field.CPU_BASED_VM_EXEC_CONTROL, primary & ~(Primary.USE_IO_BITMAPS | Primary.UNCONDITIONAL_IO_EXITING));
    if (handled === 'cr') {
      v12.set32(Field.CPU_BASED_VM_EXEC_CONTROL, primary & ~(Primary.CR3_LOAD_EXITING | Primary.CR3_STORE_EXITING | Primary.CR8_LOAD_EXITING | Primary.CR8_STORE_EXITING));
      v12.set(Field.CR0_GUEST_HOST_MASK, 0n);
      v12.set(Field.CR4_GUEST_HOST_MASK, 0n);
    }
    const noMsrExits = handled === 'msr' && (primary & Primary.USE_MSR_BITMAPS) !== 0;
    if (handled === 'msr') v12.set32(Field.CPU_BASED_VM_EXEC_CONTROL, primary | Primary.USE_MSR_BITMAPS);
    const msrBitmap = v12.get(Field.MSR_BITMAP);
    const model = l0.l1Model;
    const inMsrBitmap = (a: bigint) => handled === 'msr' && (!noMsrExits || (a >= msrBitmap && a < msrBitmap + 4096n));
    const env: NonRootEnv = {
      readPhysByte: (a) => (inMsrBitmap(a) ? 0 : l0.l1Port.readByte(a)),
      insOutsInfo: bit(model.msr('IA32_VMX_BASIC'), 54),
      eptpValid: (e) => ept12Handle({ eptp: e, config: eptConfig(eptCapabilities(model)), tables: l0.l1Mem }).ok,
    };
    const link = v12.get(Field.VMCS_LINK_POINTER);
    const shadowing = (secondaryControls(v12) & Secondary.VMCS_SHADOWING) !== 0;
    const shadow = !shadowing || link === 0xffff_ffff_ffff_ffffn ? null : l0.emu.activate(link).vmcs;
    const live = l0.state.vmcs12;
    return makeNonRootRuntime(v12, env, {
      preemptionTimerRate: model.preemptionTimerRate,
      writePhysByte: (a, v) => l0.l1Port.write(a, 1, BigInt(v & 0xff)),
      // vmcs12's APIC-access page as the emulated access sees it (after EPT02 translation, SDM 29.4).
      apic: emulationApic(v12, l0.vmcs02, l0.hw.port),
      shadowVmcs: shadow === null ? null : {
        // Field existence as for L1's own VMREAD/VMWRITE (kvm N24 lets every vmcs12 field through).
        read: (e) => (l0.emu.fieldExists(e) ? shadow.get(e) : undefined),
        write: (e, v) => {
          if (!l0.emu.fieldExists(e)) return 12;
          if (l0.emu.readOnlyField(e) && !model.vmwriteAnyField) return 13;
          shadow.set(e, v);
          return 'ok';
        },
      },
      ...((secondaryControls(v12) & Secondary.ENABLE_EPT) !== 0
        ? {
            switchEptp: (index: number, eptp: bigint) => {
              live.set(Field.EPT_POINTER, eptp);
              if (model.fieldSupported(Field.EPTP_INDEX)) live.set(Field.EPTP_INDEX, BigInt(index));
            },
          }
        : {}),
    });
  }

  /** vmcs12's acknowledge-interrupt-on-exit (for the external-interrupt exits L0 forwards). */
  ackOnExit12(): boolean {
    return (this.l0.state.vmcs12.lo(Field.VM_EXIT_CONTROLS) & ExitCtl.ACKNOWLEDGE_INTERRUPT_ON_EXIT) !== 0;
  }
}
