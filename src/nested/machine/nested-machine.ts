// The nested machine N (reference §9.1): L1 runs as L0's guest in VMX non-root operation under vmcs01 on the model
// hardware, L0 emulates VMX for it (src/nested/l0), L2 runs on vmcs02/EPT02. An L1Machine emitting O1–O6 exactly as
// the ReferenceMachine does, plus nested records for the checker. Must not: read clocks or randomness, or decide what
// L0's parts decide. SDM Vol. 3C ch. 24–30; DESIGN.md §3–§4.
import { L1_GPA, L2_GPA, type L1Gpa, type L2Gpa } from '../../cpu/address.js';
import { findCpuModel, type CpuModel } from '../../cpu/cpu-model.js';
import type { EptAccess } from '../../cpu/ept/types.js';
import { Field } from '../../cpu/generated/vmcs-fields.js';
import { DecodeCache } from '../../cpu/interp/decode.js';
import { Interpreter } from '../../cpu/interp/interpreter.js';
import { DeterministicPlatform, type PlatformConfig } from '../../cpu/interp/platform.js';
import type { L1LaunchResult, L1Machine, L1Program, L1VmxResult } from '../../cpu/l1/machine.js';
import type { ObservationSink } from '../../cpu/l1/observation.js';
import { L1MemoryDigest, detailDigest, l1StateDetail, readExitInformation, readGuestState } from '../../cpu/l1/observe.js';
import { defaultL1State } from '../../cpu/machine/l1-memory.js';
import { DEFAULT_L2_STEP_BUDGET, type MachineRunResult } from '../../cpu/machine/reference-machine.js';
import { ObservingL1Machine } from '../../cpu/machine/observing-machine.js';
import { ExternalEvents, GuestMemoryPort, type ScheduledEvent } from '../../cpu/machine/run-guest.js';
import type { PhysicalMemory } from '../../cpu/memory.js';
import { ExitReason } from '../../cpu/generated/exit-reasons.js';
import { Msr, type CpuState } from '../../cpu/state.js';
import type { Vmcs } from '../../cpu/vmcs.js';
import { Deviation, sdmProfile, type L0Profile } from '../profile.js';
import { auditEpt02, walkNested, type Ept02AuditIssue, type NestedWalk } from '../ept02/inspect.js';
import type { Ept02Leaf } from '../ept02/types.js';
import type { Ept01Policy } from '../ept02/ept01.js';
import { L0, type L0MsrFilter } from '../l0/l0.js';
import { L1MemoryInverse } from '../l0/l1-port.js';
import { NestedRunner } from '../l0/nested-run.js';
import { defaultL0Parts, type L0Parts } from '../l0/parts.js';
import type { NestedRecordSink } from '../l0/records.js';

export const DEFAULT_HOST_MODEL = 'intel-core-i7-6700k';

export interface NestedMachineOptions {
  /** The capability model L0 advertises to L1 (the reference machine runs the same one), e.g. findCpuModel('kvm-l1'). */
  readonly cpu: CpuModel;
  /** The hardware L0 runs on (default intel-core-i7-6700k, the host kvm-l1 is derived from). */
  readonly host?: CpuModel;
  /** sdm (default: indistinguishable from hardware) or kvm (KVM's observable deviations, §9.3). */
  readonly profile?: L0Profile;
  /** L0 made of these parts (default defaultL0Parts(profile)); tests substitute single members. */
  readonly parts?: L0Parts;
  /** Initial L1-physical memory contents (copied into L1 RAM through EPT01). */
  readonly memory?: PhysicalMemory<L1Gpa>;
  /** L1's state at the start (default: defaultL1State(cpu), as the reference). */
  readonly l1State?: CpuState;
  readonly schedule?: readonly ScheduledEvent[];
  readonly platform?: PlatformConfig;
  /** Maximum L2 steps per emulated VMLAUNCH/VMRESUME (default 100,000, as the reference). */
  readonly l2StepBudget?: number;
  readonly sink?: ObservationSink;
  /** Nested-only records: vmcs02 + provenance per L2 entry, hardware exit + reflection per L2 exit, EPT02 events. */
  readonly records?: NestedRecordSink;
  readonly ept01Policy?: Ept01Policy;
  /** Hardware VMCS shadowing for L1 (default true when the host supports it). */
  readonly shadowVmcs?: boolean;
  /** The VMM's userspace MSR filter (used only by the kvm.msr-access-filter deviation). */
  readonly msrFilter?: L0MsrFilter;
}

/**
 * The nested machine. Observation rules are the ReferenceMachine's (see its doc comment): one step per L1Machine call;
 * O1 for VMX instructions with L1's RFLAGS after them; on VMLAUNCH/VMRESUME, O4 (L2 at the exit, events delivered
 * since the emulated entry, CR0/CR4 as L2 reads them through vmcs02's shadows), O2 from vmcs12 as L1 would VMREAD it,
 * O6 on abort / triple fault, O3 after O2, O5 after vmclear, vmxoff, vmlaunch, vmresume, writeMemory, writeBytes.
 *
 * Agreements with the reference machine that are not architectural: L1's operations have no instruction length (RIP
 * does not move; L0 advances it by the exit's length 0), and L1's operands are values (L0 gets them decoded).
 */
export class NestedMachine extends ObservingL1Machine implements L1Machine {
  readonly cpu: CpuModel;
  readonly l0: L0;
  readonly runner: NestedRunner;
  readonly platform: DeterministicPlatform;
  readonly events: ExternalEvents;
  readonly interp: Interpreter;
  /** L1's state when it is not running (after a shutdown). */
  private lastL1: CpuState | undefined;

  constructor(opts: NestedMachineOptions) {
    super(opts.sink);
    this.cpu = opts.cpu;
    const host = opts.host ?? findCpuModel(DEFAULT_HOST_MODEL);
    if (!host) throw new Error(`turtles bug: CPU model ${DEFAULT_HOST_MODEL} missing`);
    const profile = opts.profile ?? sdmProfile();
    this.platform = new DeterministicPlatform({ maxPhysAddr: this.cpu.maxPhysAddr, ...(opts.platform ?? {}) });
    this.l0 = new L0({
      l1Model: this.cpu, hostModel: host, profile, parts: opts.parts ?? defaultL0Parts(profile),
      l1State: opts.l1State?.clone() ?? defaultL1State(this.cpu), platform: this.platform,
      ...(opts.ept01Policy ? { ept01Policy: opts.ept01Policy } : {}),
      ...(opts.shadowVmcs !== undefined ? { shadowVmcs: opts.shadowVmcs } : {}),
      ...(opts.records ? { records: opts.records } : {}),
      ...(opts.msrFilter ? { msrFilter: opts.msrFilter } : {}),
    });
    if (opts.memory) {
      for (const page of opts.memory.pageNumbers()) {
        const a = page << 12n;
        if (!this.l0.l1Port.writeBytes(a, opts.memory.read(L1_GPA.of(a), 4096))) {
          throw new Error(`turtles bug: initial L1 memory page 0x${a.toString(16)} is outside L0's EPT01`);
        }
      }
    }
    const port = new GuestMemoryPort();
    this.interp = new Interpreter({ mem: port, platform: this.platform, cache: new DecodeCache() });
    this.events = new ExternalEvents(opts.schedule ?? []);
    this.runner = new NestedRunner(this.l0, { interp: this.interp, events: this.events, port, budget: opts.l2StepBudget ?? DEFAULT_L2_STEP_BUDGET });
    const view = new L1MemoryInverse(this.l0.hw.memory, this.l0.hw.policy, this.l0.l1Port);
    this.digest = opts.sink ? new L1MemoryDigest(view) : undefined;
  }

  // ---- L1Machine --------------------------------------------------------------------------------------------------

  vmxon(region: L1Gpa): L1VmxResult {
    const step = this.begin();
    const r = this.l0.l1Vmx(ExitReason.VMXON, this.l0.hw.cpu.vmxon(region as bigint), 'vmxon', (l1) => this.l0.emu.vmxon(region as bigint, l1));
    if (r.kind === 'vmsucceed') this.digest?.markVmxRegion(region as bigint);
    this.o1(step, 'vmxon', [region as bigint], r);
    return r;
  }

  vmxoff(): L1VmxResult {
    const step = this.begin();
    const r = this.l0.l1Vmx(ExitReason.VMXOFF, this.l0.hw.cpu.vmxoff(), 'vmxoff', (l1) => this.l0.emu.vmxoff(l1));
    this.o1(step, 'vmxoff', [], r);
    this.o5(step);
    return r;
  }

  vmclear(region: L1Gpa): L1VmxResult {
    const step = this.begin();
    const r = this.l0.l1Vmx(ExitReason.VMCLEAR, this.l0.hw.cpu.vmclear(region as bigint), 'vmclear', (l1) => this.l0.emu.vmclear(region as bigint, l1));
    if (r.kind === 'vmsucceed') this.digest?.markVmxRegion(region as bigint);
    this.o1(step, 'vmclear', [region as bigint], r);
    this.o5(step);
    return r;
  }

  vmptrld(region: L1Gpa): L1VmxResult {
    const step = this.begin();
    const r = this.l0.l1Vmx(ExitReason.VMPTRLD, this.l0.hw.cpu.vmptrld(region as bigint), 'vmptrld', (l1) => this.l0.emu.vmptrld(region as bigint, l1));
    if (r.kind === 'vmsucceed') this.digest?.markVmxRegion(region as bigint);
    this.o1(step, 'vmptrld', [region as bigint], r);
    return r;
  }

  vmptrst(): L1VmxResult {
    const step = this.begin();
    const r = this.l0.l1Vmx(ExitReason.VMPTRST, this.l0.hw.cpu.vmptrst(), 'vmptrst', (l1) => this.l0.emu.vmptrst(l1));
    this.o1(step, 'vmptrst', [], r);
    return r;
  }

  vmread(encoding: bigint): L1VmxResult {
    const step = this.begin();
    const hw = this.l0.hw.cpu.vmread(encoding, this.operandBits());
    const r = this.l0.l1Vmx(ExitReason.VMREAD, hw, 'vmread', (l1) => this.l0.emu.vmread(encoding, l1));
    this.o1(step, 'vmread', [encoding], r);
    return r;
  }

  vmwrite(encoding: bigint, value: bigint): L1VmxResult {
    const step = this.begin();
    const hw = this.l0.hw.cpu.vmwrite(encoding, value, this.operandBits());
    const r = this.l0.l1Vmx(ExitReason.VMWRITE, hw, 'vmwrite', (l1) => this.l0.emu.vmwrite(encoding, value, l1));
    this.o1(step, 'vmwrite', [encoding, value], r);
    return r;
  }

  vmlaunch(): L1LaunchResult {
    return this.enter(true);
  }

  vmresume(): L1LaunchResult {
    return this.enter(false);
  }

  invept(type: bigint, eptp: bigint): L1VmxResult {
    const step = this.begin();
    const e = BigInt.asUintN(64, eptp);
    const r = this.l0.l1Vmx(ExitReason.INVEPT, this.l0.hw.cpu.invept(type, e), 'invept', (l1) => this.l0.emu.invept(type, e, l1));
    this.o1(step, 'invept', [type, eptp], r);
    return r;
  }

  invvpid(type: bigint, vpid: number, linear: bigint): L1VmxResult {
    const step = this.begin();
    const descriptor = (BigInt.asUintN(64, linear) << 64n) | BigInt(vpid & 0xffff);
    const r = this.l0.l1Vmx(ExitReason.INVVPID, this.l0.hw.cpu.invvpid(type, descriptor), 'invvpid', (l1) => this.l0.emu.invvpid(type, descriptor, l1));
    this.o1(step, 'invvpid', [type, BigInt(vpid), linear], r);
    return r;
  }

  readMemory(gpa: L1Gpa, size: 1 | 2 | 4 | 8): bigint {
    this.begin();
    return this.l0.l1Port.read(gpa as bigint, size) ?? BigInt.asUintN(size * 8, -1n);
  }

  writeMemory(gpa: L1Gpa, size: 1 | 2 | 4 | 8, value: bigint): void {
    const step = this.begin();
    this.l0.l1Port.write(gpa as bigint, size, value);
    this.o5(step);
  }

  writeBytes(gpa: L1Gpa, bytes: Uint8Array): void {
    const step = this.begin();
    this.l0.l1Port.writeBytes(gpa as bigint, bytes);
    this.o5(step);
  }

  rdmsr(index: number): bigint {
    this.begin();
    return this.l0.rdmsr(index);
  }

  wrmsr(index: number, value: bigint): void {
    this.begin();
    // vmcs01's MSR bitmap lets every write through: it lands in L1's state. Except IA32_DEBUGCTL, which KVM intercepts
    // and whose LBR/BTF bits (1:0) it drops (kvm N12).
    let v = BigInt.asUintN(64, value);
    if (index >>> 0 === Msr.IA32_DEBUGCTL && this.l0.profile.deviations.has(Deviation.DEBUGCTL_BITS_DROPPED)) v &= ~0b11n;
    this.l0.l1.setMsr(index >>> 0, v);
  }

  setGpr(index: number, value: bigint): void {
    this.begin();
    if (!Number.isInteger(index) || index < 0 || index > 15) throw new Error(`turtles bug: setGpr(${index}): no such register`);
    this.l0.l1.gpr[index] = BigInt.asUintN(64, value);
  }

  l1State(): CpuState {
    this.begin();
    return this.currentL1().clone();
  }

  // ---- inspection for the checker, the recorder and the triage UI ---------------------------------------------------

  /** vmcs01, vmcs02 (the hardware's data) and the current vmcs12 (L0's cache), or undefined. */
  vmcs01(): Vmcs {
    return this.l0.vmcs01;
  }

  vmcs02(): Vmcs {
    return this.l0.vmcs02;
  }

  vmcs12(): Vmcs | undefined {
    return this.l0.state.current?.vmcs;
  }

  /** Every present EPT02 leaf with what it was composed from. */
  ept02Entries(): Ept02Leaf[] {
    return this.l0.ept02.entries();
  }

  /** "EPT12 ∘ EPT01 walk against EPT02" for one L2 GPA, for the current vmcs12 (no side effects). */
  walkNested(gpa: bigint, access?: EptAccess): NestedWalk {
    const r = this.runner;
    const root = this.l0.ept02.rootList().find((x) => JSON.stringify(x.role, big) === JSON.stringify(r.role, big));
    return walkNested({
      gpa: L2_GPA.of(gpa) as L2Gpa, ...(access ? { access } : {}), ept12: r.ept12, ept01: this.l0.hw.ept01,
      ept02: root ? this.l0.ept02.handleFor(root.eptp02) ?? null : null,
    });
  }

  /** Every EPT02 leaf of the current role checked against EPT12 ∘ EPT01 as they are now. */
  auditEpt02(): Ept02AuditIssue[] {
    const r = this.runner;
    const key = JSON.stringify(r.role, big);
    const leaves = this.l0.ept02.entries().filter((l) => JSON.stringify(l.role, big) === key);
    return auditEpt02(leaves, () => r.ept12, this.l0.hw.ept01, (leaf) => this.l0.ept02.handleFor(leaf.eptp02), this.l0.profile);
  }

  // ---- internals ----------------------------------------------------------------------------------------------------

  protected override onStep(step: number): void {
    this.l0.step = step;
  }

  protected l1Rflags(): bigint {
    return this.liveL1().rflags;
  }

  /** L1's architectural state (a copy while L1 runs: CR0 from the hardware and vmcs01's read shadow). */
  private currentL1(): CpuState {
    const cpu = this.l0.hw.cpu;
    // While L2 is (or was left) running, L1 is where its VMLAUNCH/VMRESUME left it.
    if (this.l0.state.guestMode) return this.runner.l1AtEntry;
    if (cpu.nonRoot && cpu.guest) {
      this.lastL1 = this.l0.l1View();
      return this.lastL1;
    }
    if (this.lastL1) return this.lastL1;
    throw new Error('turtles bug: L1 state unavailable');
  }

  /**
   * L1's state for reading RFLAGS or the operating mode only (which the architectural-CR0 view does not change): the
   * live state while L1 runs, without the copy currentL1 makes. The copy currentL1 keeps is read only once L1 stopped
   * running, and every such stop (a shutdown in enter) sets it itself, so skipping it here changes no result.
   */
  private liveL1(): CpuState {
    const cpu = this.l0.hw.cpu;
    if (!this.l0.state.guestMode && cpu.nonRoot && cpu.guest) return this.l0.l1;
    return this.currentL1();
  }

  private operandBits(): 32 | 64 {
    return this.liveL1().longMode64 ? 64 : 32;
  }

  private enter(launch: boolean): L1LaunchResult {
    const step = this.begin();
    const before = this.currentL1();
    const rep = this.runner.launch(launch);
    const result = rep.result;
    if (rep.exitToL1) this.exits++;
    if (rep.stopped) this.status = rep.stopped;
    if (result.kind === 'shutdown') {
      this.status = 'shutdown';
      this.lastL1 = before;
    }
    const sink = this.sink;
    if (sink) {
      this.o1(step, launch ? 'vmlaunch' : 'vmresume', [], result, result.kind === 'vmfail-valid' ? rep.failedCheck : undefined);
      if (rep.l2) sink.observe({ kind: 'l2-state', step, detail: rep.l2.detail, deliveredEvents: [...rep.l2.delivered] });
      const v12 = this.l0.state.current?.vmcs;
      if (rep.exitToL1 && v12) {
        const read = (e: number) => v12.get(e);
        const entryFailure = (v12.lo(Field.VM_EXIT_REASON) & 0x8000_0000) !== 0;
        sink.observe({
          kind: 'exit-to-l1', step, exit: readExitInformation(read), guestState: readGuestState(this.cpu, read),
          ...(entryFailure && rep.failedCheck !== undefined ? { failedCheck: rep.failedCheck } : {}),
        });
      }
      if (result.kind === 'shutdown') {
        sink.observe({ kind: 'shutdown', step, why: result.why, ...(result.abortIndicator !== undefined ? { abortIndicator: result.abortIndicator } : {}) });
      }
      if (rep.exitToL1) {
        const detail = l1StateDetail(this.currentL1());
        sink.observe({ kind: 'l1-state', step, digest: detailDigest(detail), detail });
      }
      this.o5(step);
    }
    return result;
  }
}


function big(_k: string, v: unknown): unknown {
  return typeof v === 'bigint' ? `0x${v.toString(16)}` : v;
}

/** Convenience: a nested machine, run one program. */
export function runNested(program: L1Program, opts: NestedMachineOptions): { machine: NestedMachine; result: MachineRunResult } {
  const machine = new NestedMachine(opts);
  return { machine, result: machine.run(program) };
}
