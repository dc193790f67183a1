// The single-level reference machine R (reference §9.1): L1 runs in VMX root operation directly on one VmxProcessor
// with the capability MSRs L0 advertises, over L1-physical memory; L2 runs in the interpreter under the current VMCS
// (EPT12 over L1 memory, or L2-physical = L1-physical) until a VM exit returns to the L1 program. Emits O1–O6.
// Must not: know about L0 or nesting, read clocks or randomness. SDM Vol. 3C ch. 26 (entry), 25, 27 (exit), 30.
import { L1_GPA, type L1Gpa, type L2Gpa } from '../address.js';
import type { CpuModel } from '../cpu-model.js';
import { VMX_MSR_INDEX, type VmxMsrName } from '../cpu-model-data.js';
import { eptCapabilities, eptConfig, ept12, validateEptp } from '../ept/eptp.js';
import { PageModificationLog } from '../ept/pml.js';
import type { VeArea } from '../ept/ve.js';
import type { Ept, EptCapabilities } from '../ept/types.js';
import { Secondary } from '../generated/controls.js';
import { Field } from '../generated/vmcs-fields.js';
import { DeterministicPlatform, type PlatformConfig } from '../interp/platform.js';
import { DecodeCache } from '../interp/decode.js';
import { DirectGuestMemory } from '../interp/guest-memory.js';
import { Interpreter } from '../interp/interpreter.js';
import { makeNonRootRuntime, type NonRootRuntime, type ShadowVmcsAccess } from '../interp/runtime.js';
import type { EventRecord } from '../interp/types.js';
import { readNonRootControls, type NonRootEnv } from '../nonroot/controls.js';
import { makeVirtualApic } from '../apic/virtual-apic.js';
import { PhysicalMemory } from '../memory.js';
import { CpuState } from '../state.js';
import { bit } from '../u64.js';
import { fieldDef, type Vmcs } from '../vmcs.js';
import { defaultEntryChecker, type EntryChecker } from '../vmx/entry-port.js';
import { secondaryControls } from '../vmx/guest-state.js';
import type { VmEntryOutcome, VmxInstrOutcome } from '../vmx/outcome.js';
import { VmxProcessor } from '../vmx/processor.js';
import type { L1LaunchResult, L1Machine, L1Program, L1VmxResult } from '../l1/machine.js';
import type { Observation, ObservationSink } from '../l1/observation.js';
import {
  L1MemoryDigest, eventText, l1StateObservation, l2StateDetail, readExitInformation, readGuestState,
} from '../l1/observe.js';
import { CachedEptGuestMemory } from './ept-guest-memory.js';
import { L1PhysicalPort, assignCpuState, defaultL1State } from './l1-memory.js';
import { ExternalEvents, GuestMemoryPort, runGuestUntilExit, type ScheduledEvent } from './run-guest.js';
import { ObservingL1Machine, type MachineRunResult } from './observing-machine.js';

export interface ReferenceMachineOptions {
  /** The capability model L1 sees (the reference uses what L0 advertises, e.g. 'kvm-l1'). */
  readonly cpu: CpuModel;
  /** L1-physical memory (default: empty, the model's MAXPHYADDR). */
  readonly memory?: PhysicalMemory<L1Gpa>;
  /** L1's state at the start (default: defaultL1State(cpu)). */
  readonly l1State?: CpuState;
  /** External events at L2 steps (see ScheduledEvent). */
  readonly schedule?: readonly ScheduledEvent[];
  /** The platform L2's non-exiting CPUID/RDMSR/I/O/RDRAND see. */
  readonly platform?: PlatformConfig;
  /** Maximum L2 steps per VM entry before the run stops with 'budget-exhausted' (default 100,000). */
  readonly l2StepBudget?: number;
  /** Receives O1–O6; without a sink no observation is computed. */
  readonly sink?: ObservationSink;
}

export type { MachineRunResult, MachineStatus } from './observing-machine.js';

export const DEFAULT_L2_STEP_BUDGET = 100_000;

const VMX_MSR_BY_INDEX = new Map<number, VmxMsrName>(Object.entries(VMX_MSR_INDEX).map(([k, v]) => [v, k as VmxMsrName]));

/**
 * The reference machine. It is the L1Machine the L1 program runs against; `run(program)` runs one.
 *
 * Observation rules (identical for the nested machine, which the checker compares step by step):
 * - `step` is the index of the L1 operation: every call of an L1Machine method (VMX instructions, memory and MSR
 *   accesses, setGpr, l1State) is one operation, numbered from 0 in call order.
 * - Each operation emits, in this order and only when it applies:
 *   1. O1 `vmx-instruction` for vmxon, vmxoff, vmclear, vmptrld, vmptrst, vmread, vmwrite, vmlaunch, vmresume, invept,
 *      invvpid: outcome (vmsucceed / vmfail-invalid / vmfail-valid / fault / vm-exit / shutdown), error, vector,
 *      value, L1's RFLAGS afterwards; VMfailValid(7/8) of VM entry names the failing check. Operands: vmxon/vmclear/
 *      vmptrld [region]; vmread [encoding]; vmwrite [encoding, value]; invept [type, eptp]; invvpid [type, vpid,
 *      linear]; others [].
 *   2. O4 `l2-state` when L2 ran and a VM exit ended the run: L2's state at the exit and the events delivered through
 *      its IDT since the entry (the injected event included).
 *   3. O2 `exit-to-l1` when L1 resumes at HOST_RIP (VM exit, or VM-entry failure naming its check): every exit-
 *      information field and every supported guest-state field as L1 would VMREAD them.
 *   4. O6 `shutdown` on a VMX abort (with its indicator).
 *   5. O3 `l1-state` after every O2.
 *   6. O5 `l1-memory` after vmclear, vmxoff, vmlaunch, vmresume, writeMemory and writeBytes, whatever their outcome.
 *      VMX regions are masked (see L1MemoryDigest): pages named by a successful VMXON, VMCLEAR or VMPTRLD, and the
 *      VMCS link pointer of a VM entry with VMCS shadowing.
 * - An L2 that stops without a VM exit (budget, interpreter gap) ends the run: vmlaunch/vmresume return 'l2-stopped',
 *   O1 reports outcome 'l2-stopped', O5 follows, and the run result says why. Any later operation is a program bug.
 */
export class ReferenceMachine extends ObservingL1Machine implements L1Machine {
  readonly cpu: CpuModel;
  readonly memory: PhysicalMemory<L1Gpa>;
  readonly processor: VmxProcessor;
  readonly interp: Interpreter;
  readonly platform: DeterministicPlatform;
  readonly events: ExternalEvents;
  /** L2's state object, reused across entries (the interpreter's memory adapters are bound to it). */
  readonly l2 = new CpuState();
  private readonly port: L1PhysicalPort;
  private readonly guestPort = new GuestMemoryPort();
  private readonly direct: DirectGuestMemory<L1Gpa>;
  private readonly underEpt: CachedEptGuestMemory<L2Gpa, L1Gpa>;
  private readonly env: NonRootEnv;
  private readonly caps: EptCapabilities;
  private readonly budget: number;
  private readonly delivered: EventRecord[] = [];
  private ept: Ept<L2Gpa, L1Gpa> | undefined;
  /** Page-modification logging into vmcs12's PML page (installed on every EPT12 handle; on while "enable PML" is). */
  private readonly pml: PageModificationLog;
  private pdptes: readonly bigint[] | undefined;
  private lastCheck: string | undefined;

  constructor(opts: ReferenceMachineOptions) {
    super(opts.sink);
    this.cpu = opts.cpu;
    this.memory = opts.memory ?? new PhysicalMemory<L1Gpa>({ space: 'L1Gpa' });
    this.port = new L1PhysicalPort(this.memory, this.cpu.maxPhysAddr);
    this.platform = new DeterministicPlatform({ maxPhysAddr: this.cpu.maxPhysAddr, ...(opts.platform ?? {}) });
    const checker: EntryChecker = (vmcs, env) => {
      const v = defaultEntryChecker(vmcs, env);
      this.lastCheck = v.kind === 'pass' ? undefined : v.checkId;
      return v;
    };
    this.processor = new VmxProcessor({
      cpu: this.cpu,
      memory: this.port,
      state: opts.l1State?.clone() ?? defaultL1State(this.cpu),
      entryChecker: checker,
      wrmsrFaults: (i, v) => !this.platform.msrWritable(i, v),
      rdmsrFaults: (i) => !this.platform.msrExists(i),
    });
    this.interp = new Interpreter({ mem: this.guestPort, platform: this.platform, cache: new DecodeCache() });
    this.events = new ExternalEvents(opts.schedule ?? []);
    this.budget = opts.l2StepBudget ?? DEFAULT_L2_STEP_BUDGET;
    this.digest = opts.sink ? new L1MemoryDigest(this.memory) : undefined;
    this.caps = eptCapabilities(this.cpu);
    const gmOpts = { maxPhysAddr: this.cpu.maxPhysAddr, pdptes: () => this.pdptes, apicPage: () => this.interp.nonRoot?.apic };
    this.direct = new DirectGuestMemory(this.l2, this.memory, L1_GPA, gmOpts);
    this.underEpt = new CachedEptGuestMemory(this.l2, this.memory, () => this.currentEpt(), gmOpts);
    this.pml = new PageModificationLog({
      readIndex: () => Number((this.processor.currentVmcs?.get(Field.GUEST_PML_INDEX) ?? 0n) & 0xffffn),
      writeIndex: (i) => this.processor.currentVmcs?.set(Field.GUEST_PML_INDEX, BigInt(i & 0xffff)),
      readAddress: () => this.processor.currentVmcs?.get(Field.PML_ADDRESS) ?? 0n,
      writeEntry: (a, v) => this.port.write(a, 8, v),
    });
    this.env = {
      readPhysByte: (a) => this.port.readByte(a),
      insOutsInfo: bit(this.cpu.msr('IA32_VMX_BASIC'), 54),
      eptpValid: (e) => validateEptp(e, this.caps).ok,
    };
  }

  // ---- L1Machine ------------------------------------------------------------------------------------------------

  vmxon(region: L1Gpa): L1VmxResult {
    const step = this.begin();
    const r = this.vmxResult(this.processor.vmxon(region as bigint));
    if (r.kind === 'vmsucceed') this.digest?.markVmxRegion(region as bigint);
    this.o1(step, 'vmxon', [region as bigint], r);
    return r;
  }

  vmxoff(): L1VmxResult {
    const step = this.begin();
    const r = this.vmxResult(this.processor.vmxoff());
    this.o1(step, 'vmxoff', [], r);
    this.o5(step);
    return r;
  }

  vmclear(region: L1Gpa): L1VmxResult {
    const step = this.begin();
    const r = this.vmxResult(this.processor.vmclear(region as bigint));
    if (r.kind === 'vmsucceed') this.digest?.markVmxRegion(region as bigint);
    this.o1(step, 'vmclear', [region as bigint], r);
    this.o5(step);
    return r;
  }

  vmptrld(region: L1Gpa): L1VmxResult {
    const step = this.begin();
    const r = this.vmxResult(this.processor.vmptrld(region as bigint));
    if (r.kind === 'vmsucceed') this.digest?.markVmxRegion(region as bigint);
    this.o1(step, 'vmptrld', [region as bigint], r);
    return r;
  }

  vmptrst(): L1VmxResult {
    const step = this.begin();
    const r = this.vmxResult(this.processor.vmptrst());
    this.o1(step, 'vmptrst', [], r);
    return r;
  }

  vmread(encoding: bigint): L1VmxResult {
    const step = this.begin();
    const r = this.vmxResult(this.processor.vmread(encoding, this.operandBits()));
    this.o1(step, 'vmread', [encoding], r);
    return r;
  }

  vmwrite(encoding: bigint, value: bigint): L1VmxResult {
    const step = this.begin();
    const r = this.vmxResult(this.processor.vmwrite(encoding, value, this.operandBits()));
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
    // The reference keeps no EPT translation cache, so the invalidation itself has nothing to drop.
    const r = this.vmxResult(this.processor.invept(type, BigInt.asUintN(64, eptp)));
    this.o1(step, 'invept', [type, eptp], r);
    return r;
  }

  invvpid(type: bigint, vpid: number, linear: bigint): L1VmxResult {
    const step = this.begin();
    const descriptor = (BigInt.asUintN(64, linear) << 64n) | BigInt(vpid & 0xffff);
    const r = this.vmxResult(this.processor.invvpid(type, descriptor));
    this.o1(step, 'invvpid', [type, BigInt(vpid), linear], r);
    return r;
  }

  readMemory(gpa: L1Gpa, size: 1 | 2 | 4 | 8): bigint {
    this.begin();
    return this.port.read(gpa as bigint, size) ?? BigInt.asUintN(size * 8, -1n);
  }

  writeMemory(gpa: L1Gpa, size: 1 | 2 | 4 | 8, value: bigint): void {
    const step = this.begin();
    this.port.write(gpa as bigint, size, value);
    this.o5(step);
  }

  writeBytes(gpa: L1Gpa, bytes: Uint8Array): void {
    const step = this.begin();
    this.port.writeBytes(gpa as bigint, bytes);
    this.o5(step);
  }

  rdmsr(index: number): bigint {
    this.begin();
    const name = VMX_MSR_BY_INDEX.get(index >>> 0);
    if (name !== undefined) return this.cpu.msr(name);
    return this.processor.state.msr(index >>> 0);
  }

  wrmsr(index: number, value: bigint): void {
    this.begin();
    this.processor.state.setMsr(index >>> 0, BigInt.asUintN(64, value));
  }

  setGpr(index: number, value: bigint): void {
    this.begin();
    if (!Number.isInteger(index) || index < 0 || index > 15) throw new Error(`turtles bug: setGpr(${index}): no such register`);
    this.processor.state.gpr[index] = BigInt.asUintN(64, value);
  }

  l1State(): CpuState {
    this.begin();
    return this.processor.state.clone();
  }

  // ---- internals ------------------------------------------------------------------------------------------------

  protected l1Rflags(): bigint {
    return this.processor.state.rflags;
  }

  private operandBits(): 32 | 64 {
    return this.processor.state.longMode64 ? 64 : 32;
  }

  private vmxResult(o: VmxInstrOutcome): L1VmxResult {
    switch (o.kind) {
      case 'vmsucceed': return o.value === undefined ? { kind: 'vmsucceed' } : { kind: 'vmsucceed', value: o.value };
      case 'vmfail-invalid': return { kind: 'vmfail-invalid' };
      case 'vmfail-valid': return { kind: 'vmfail-valid', error: o.error };
      case 'fault': return o.errorCode === undefined ? { kind: 'fault', vector: o.vector } : { kind: 'fault', vector: o.vector, errorCode: o.errorCode };
      default: throw new Error(`turtles bug: VMX instruction in root operation produced ${o.kind}`);
    }
  }

  /** VMLAUNCH / VMRESUME: VM entry, L2 until its exit, the VM exit; or the VMfail / entry failure / abort. */
  private enter(launch: boolean): L1LaunchResult {
    const step = this.begin();
    const p = this.processor;
    this.lastCheck = undefined;
    const o = launch ? p.vmlaunch() : p.vmresume();
    let result: L1LaunchResult;
    let l2: Observation | undefined;
    let exitToL1 = false;
    let failedCheck: string | undefined;
    switch (o.kind) {
      case 'vm-entry': {
        const run = this.runL2(o, step);
        if (run.kind === 'stopped') {
          result = run.result;
          break;
        }
        l2 = run.l2;
        const out = p.vmExit(run.exitInfo, this.l2);
        if (out.kind === 'vmx-abort') {
          result = { kind: 'shutdown', why: 'vmx-abort', abortIndicator: out.indicator };
          this.status = 'shutdown';
        } else {
          result = { kind: 'vm-exit', exitReason: p.currentVmcs!.lo(Field.VM_EXIT_REASON) };
          exitToL1 = true;
        }
        break;
      }
      case 'entry-failure-exit':
        result = { kind: 'vm-exit', exitReason: o.exitReason };
        exitToL1 = true;
        failedCheck = o.checkId;
        break;
      case 'vmx-abort':
        result = { kind: 'shutdown', why: 'vmx-abort', abortIndicator: o.indicator };
        this.status = 'shutdown';
        break;
      default:
        result = this.vmxResult(o);
    }
    if (exitToL1) this.exits++;
    const sink = this.sink;
    if (sink) {
      const check = result.kind === 'vmfail-valid' ? this.lastCheck : undefined;
      this.o1(step, launch ? 'vmlaunch' : 'vmresume', [], result, check);
      if (l2) sink.observe(l2);
      if (exitToL1) {
        const vmcs = p.currentVmcs!;
        const read = (e: number) => vmcs.get(e);
        sink.observe({
          kind: 'exit-to-l1', step, exit: readExitInformation(read), guestState: readGuestState(this.cpu, read),
          ...(failedCheck !== undefined ? { failedCheck } : {}),
        });
      }
      if (result.kind === 'shutdown') {
        sink.observe({ kind: 'shutdown', step, why: 'vmx-abort', ...(result.abortIndicator !== undefined ? { abortIndicator: result.abortIndicator } : {}) });
      }
      if (exitToL1) sink.observe(l1StateObservation(step, p.state));
      this.o5(step);
    }
    return result;
  }

  private runL2(o: VmEntryOutcome, step: number):
    | { kind: 'exit'; exitInfo: Parameters<VmxProcessor['vmExit']>[0]; l2: Observation | undefined }
    | { kind: 'stopped'; result: L1LaunchResult } {
    const p = this.processor;
    const vmcs = p.currentVmcs!;
    assignCpuState(this.l2, o.guest);
    p.guest = this.l2;
    this.pdptes = o.pdptes;
    const eptOn = (secondaryControls(vmcs) & Secondary.ENABLE_EPT) !== 0;
    if (eptOn) this.ept = this.makeEpt(vmcs, vmcs.get(Field.EPT_POINTER));
    this.pml.enabled = eptOn && (secondaryControls(vmcs) & Secondary.ENABLE_PML) !== 0;
    this.pml.reset();
    const runtime = this.runtimeFor(vmcs, eptOn);
    const run = runGuestUntilExit({
      interp: this.interp, runtime, guest: this.l2, entry: o, port: this.guestPort, memory: eptOn ? this.underEpt : this.direct,
      events: this.events, budget: this.budget, delivered: this.delivered,
    });
    if (run.kind === 'vm-exit') {
      const exitInfo = run.preemptionTimer === undefined ? run.exit : { ...run.exit, preemptionTimer: run.preemptionTimer };
      let l2: Observation | undefined;
      if (this.sink) {
        const c = runtime.controls;
        l2 = {
          kind: 'l2-state', step,
          detail: l2StateDetail(this.l2, { cr0Mask: c.cr0Mask, cr0Shadow: c.cr0Shadow, cr4Mask: c.cr4Mask, cr4Shadow: c.cr4Shadow }),
          deliveredEvents: this.delivered.map(eventText),
        };
      }
      return { kind: 'exit', exitInfo, l2 };
    }
    this.status = run.kind === 'budget-exhausted' ? 'budget-exhausted' : 'unsupported-instruction';
    const why = run.kind === 'budget-exhausted' ? 'budget-exhausted' : 'unsupported-instruction';
    return {
      kind: 'stopped',
      result: { kind: 'l2-stopped', why, l2Steps: this.events.l2Steps, ...(run.kind === 'unsupported' ? { mnemonic: run.mnemonic } : {}) },
    };
  }

  private currentEpt(): Ept<L2Gpa, L1Gpa> {
    if (!this.ept) throw new Error('turtles bug: EPT guest memory used without an EPT');
    return this.ept;
  }

  /**
   * EPT12 from an EPTP the entry checks (or VMFUNC's validity rule) already accepted. The same handle is kept while
   * EPTP and MBEC stay the same, so the guest-memory translation cache survives VM exits (it is exact, see
   * CachedEptGuestMemory; the reference keeps no TLB, so INVEPT has nothing to drop).
   */
  private makeEpt(vmcs: Vmcs, eptp: bigint): Ept<L2Gpa, L1Gpa> {
    const mbec = (secondaryControls(vmcs) & Secondary.MODE_BASED_EXECUTE_CONTROL) !== 0;
    const e = this.ept;
    if (e && e.eptp.raw === eptp && e.config.modeBasedExecute === mbec) return e;
    const h = ept12({ eptp, config: eptConfig(this.caps, { modeBasedExecute: mbec }), tables: this.memory });
    if (!h.ok) throw new Error(`turtles bug: VM entry accepted an invalid EPTP: ${h.error.message}`);
    return { ...h.ept, flagGate: this.pml };
  }

  private runtimeFor(vmcs: Vmcs, eptOn: boolean): NonRootRuntime {
    const p = this.processor;
    const link = vmcs.get(Field.VMCS_LINK_POINTER);
    const shadowing = (secondaryControls(vmcs) & Secondary.VMCS_SHADOWING) !== 0;
    const shadowed = shadowing && link !== 0xffff_ffff_ffff_ffffn;
    // The shadow VMCS is a VMX region from now on (its image is implementation-specific, like any VMCS's).
    if (shadowed) this.digest?.markVmxRegion(link);
    const shadowVmcs: ShadowVmcsAccess | null = shadowed ? this.shadowAccess(p.vmcsData(link)) : null;
    const apic = makeVirtualApic(vmcs, readNonRootControls(vmcs), {
      readPhys32: (a) => Number(this.port.read(a, 4) ?? 0n),
      writePhys32: (a, v) => this.port.write(a, 4, BigInt(v >>> 0)),
      saveGuestInterruptStatus: (v) => vmcs.set(Field.GUEST_INTR_STATUS, BigInt(v & 0xffff)),
    });
    return makeNonRootRuntime(vmcs, this.env, {
      preemptionTimerRate: this.cpu.preemptionTimerRate,
      writePhysByte: (a, v) => this.port.write(a, 1, BigInt(v & 0xff)),
      shadowVmcs,
      apic,
      ...(eptOn
        ? {
            veArea: this.veArea(vmcs),
            switchEptp: (index: number, eptp: bigint) => {
              vmcs.set(Field.EPT_POINTER, eptp);
              if (this.cpu.fieldSupported(Field.EPTP_INDEX)) vmcs.set(Field.EPTP_INDEX, BigInt(index));
              this.ept = this.makeEpt(vmcs, eptp);
            },
          }
        : {}),
    });
  }

  /** The VE-information area vmcs12 names (L1-physical) and its EPTP index, read when a #VE is decided. */
  private veArea(vmcs: Vmcs): VeArea {
    const port = this.port;
    const base = () => vmcs.get(Field.VE_INFORMATION_ADDRESS);
    return {
      readBusy: () => {
        const v = port.read(base() + 4n, 4);
        return v === undefined ? undefined : Number(v);
      },
      write: (offset, size, value) => {
        port.write(base() + BigInt(offset), size, value);
      },
      get eptpIndex() {
        return Number(vmcs.get(Field.EPTP_INDEX) & 0xffffn);
      },
    };
  }

  /** VMREAD/VMWRITE that VMCS shadowing lets through reach the shadow VMCS's data (SDM 24.10, 30.3). */
  private shadowAccess(shadow: Vmcs): ShadowVmcsAccess {
    const cpu = this.cpu;
    return {
      read: (e) => (cpu.fieldSupported(e) ? shadow.get(e) : undefined),
      write: (e, v) => {
        if (!cpu.fieldSupported(e)) return 12;
        if (fieldDef(e)?.type === 'read-only data' && !cpu.vmwriteAnyField) return 13;
        shadow.set(e, v);
        return 'ok';
      },
    };
  }
}

/** Convenience: a machine with a fresh memory, run one program; the run result and the machine. */
export function runReference(program: L1Program, opts: ReferenceMachineOptions): { machine: ReferenceMachine; result: MachineRunResult } {
  const machine = new ReferenceMachine(opts);
  return { machine, result: machine.run(program) };
}

