// L0 on the model hardware: runs L1 in VMX non-root operation under vmcs01, takes L1's exits (VMX instructions, reads
// of the VMX capability MSRs), emulates them against vmcs12 through L0Parts, keeps hardware VMCS shadowing for L1
// coherent with vmcs12 and owns EPT02 (running L2 is nested-run.ts). Must not: emit observations or decide what a part
// decides. Reference: nested-vmx.md §2 (instructions), §10.1 (state), Turtles §3.2; SDM 25.1.3, 27.5, 30.3.
import { HPA } from '../../cpu/address.js';
import type { CpuModel } from '../../cpu/cpu-model.js';
import { VMX_MSR_INDEX, type VmxMsrName } from '../../cpu/cpu-model-data.js';
import { Secondary } from '../../cpu/generated/controls.js';
import { Field } from '../../cpu/generated/vmcs-fields.js';
import type { Platform } from '../../cpu/interp/platform.js';
import type { L1VmxResult } from '../../cpu/l1/machine.js';
import type { CpuState } from '../../cpu/state.js';
import type { Vmcs } from '../../cpu/vmcs.js';
import { flagsFailInvalid, flagsFailValid, flagsSucceed, type InjectedEvent, type VmxInstrOutcome } from '../../cpu/vmx/outcome.js';
import type { MsrAccessRules } from '../../cpu/vmx/msr-list.js';
import { msrBitmapExits } from '../msr-bitmap.js';
import { Deviation, type L0Profile } from '../profile.js';
import { Ept02Manager } from '../ept02/ept02.js';
import type { Ept01Policy } from '../ept02/ept01.js';
import { L1MemoryView } from '../ept02/l1-memory.js';
import { NestedVmxState } from '../vmcs12/state.js';
import { Vmcs12Emulator, type Emulated, type EmulationResult, type Vmcs12Effect } from '../vmcs12/emulate.js';
import { copyShadowToVmcs12, copyVmcs12ToShadow, shadowBitmaps, shadowFieldSets, type ShadowFieldSets } from '../vmcs12/shadow.js';
import { L0Layout, bootHardware, copyUnswitched, expectSucceed, setUpVmcs01, writeGuest, type Hardware } from './hardware.js';
import { L1Port } from './l1-port.js';
import { defaultL0Parts, type L0Parts } from './parts.js';
import type { NestedRecord, NestedRecordSink } from './records.js';

const VMX_MSR_BY_INDEX = new Map<number, VmxMsrName>(Object.entries(VMX_MSR_INDEX).map(([k, v]) => [v, k as VmxMsrName]));

export interface L0Options {
  /** The capability model L0 advertises to L1 (IA32_VMX_* MSRs, vmcs12 field set), e.g. 'kvm-l1'. */
  readonly l1Model: CpuModel;
  /** The model hardware L0 runs on. */
  readonly hostModel: CpuModel;
  readonly profile: L0Profile;
  /** Default: defaultL0Parts(profile). */
  readonly parts?: L0Parts;
  /** L1 at the start (it becomes vmcs01's guest state). */
  readonly l1State: CpuState;
  /** L0's EPT01 (default: L1 RAM [0, 256 GiB) at host 256 GiB). */
  readonly ept01Policy?: Ept01Policy;
  /** Hardware VMCS shadowing for L1's VMREAD/VMWRITE of the KVM shadow field set (default true). */
  readonly shadowVmcs?: boolean;
  /** The platform answering which MSRs exist and which writes fault (vmcs12 MSR lists). */
  readonly platform: Pick<Platform, 'msrExists' | 'msrWritable'>;
  readonly records?: NestedRecordSink;
  /** Qualification bit 0 on read-modify-writes (must match the reference's EPT configuration). */
  readonly rmwSetsRead?: boolean;
  /** The VMM's userspace MSR filter (KVM_X86_SET_MSR_FILTER); only the kvm.msr-access-filter deviation consults it. */
  readonly msrFilter?: L0MsrFilter;
}

/** MSR indexes the VMM's userspace filter denies to the guest, per direction. */
export interface L0MsrFilter {
  readonly deniedReads?: readonly number[];
  readonly deniedWrites?: readonly number[];
}

export class L0 {
  readonly hw: Hardware;
  readonly l1Model: CpuModel;
  readonly profile: L0Profile;
  readonly parts: L0Parts;
  readonly state = new NestedVmxState();
  readonly emu: Vmcs12Emulator;
  readonly ept02: Ept02Manager;
  readonly l1Port: L1Port;
  /** L1 memory as qwords through EPT01 (EPT12 tables). */
  readonly l1Mem: L1MemoryView;
  readonly shadowSets: ShadowFieldSets;
  readonly useShadow: boolean;
  readonly msrRules: MsrAccessRules;
  readonly rmwSetsRead: boolean;
  /** The index of the L1 operation being performed (records carry it). */
  step = 0;
  /** An exception L0 delivers to L1 at the next entry of vmcs01. */
  pendingL1Event: InjectedEvent | null = null;
  private readonly records: NestedRecordSink | undefined;
  private shadowActive = false;

  constructor(o: L0Options) {
    this.l1Model = o.l1Model;
    this.profile = o.profile;
    this.parts = o.parts ?? defaultL0Parts(o.profile);
    this.records = o.records;
    this.useShadow = (o.shadowVmcs ?? true) && o.hostModel.controlOffered('secondary.vmcs-shadowing');
    this.rmwSetsRead = o.rmwSetsRead ?? true;
    const plat = o.platform;
    const wrmsrFaults = (i: number, v: bigint): boolean => !plat.msrWritable(i, v);
    const rdmsrFaults = (i: number): boolean => !plat.msrExists(i);
    // N13 (kvm.msr-access-filter): KVM reads and writes the vmcs12 MSR lists' MSRs through the userspace MSR filter, so a
    // denied index fails the list where a CPU (which has no such filter, SDM 26.4, 27.4, 27.6) would access the MSR.
    const filter = o.profile.deviations.has(Deviation.MSR_ACCESS_FILTER) ? o.msrFilter : undefined;
    const denied = (list: readonly number[] | undefined, i: number): boolean => list?.includes(i >>> 0) ?? false;
    this.msrRules = {
      wrmsrFaults: (i, v) => wrmsrFaults(i, v) || denied(filter?.deniedWrites, i),
      rdmsrFaults: (i) => rdmsrFaults(i) || denied(filter?.deniedReads, i),
      maxEntries: o.l1Model.maxMsrListEntries,
    };
    this.hw = bootHardware({ host: o.hostModel, ...(o.ept01Policy ? { policy: o.ept01Policy } : {}), wrmsrFaults, rdmsrFaults });
    this.l1Port = new L1Port(this.hw.memory, () => this.hw.ept01, o.l1Model.maxPhysAddr);
    this.l1Mem = new L1MemoryView(this.hw.memory, () => this.hw.ept01);
    this.emu = new Vmcs12Emulator(this.state, o.l1Model, o.profile, this.l1Port);
    this.ept02 = new Ept02Manager({
      host: this.hw.memory, pages: this.hw.pages, hostCaps: this.hw.hostCaps, rmwSetsRead: this.rmwSetsRead,
      onEvent: (event) => this.record({ kind: 'ept02', step: this.step, event }),
    });
    this.shadowSets = shadowFieldSets(o.hostModel, o.l1Model);
    const bitmaps = shadowBitmaps(this.shadowSets);
    this.hw.port.writeBytesTo(L0Layout.VMREAD_BITMAP, bitmaps.vmread);
    this.hw.port.writeBytesTo(L0Layout.VMWRITE_BITMAP, bitmaps.vmwrite);
    setUpVmcs01(this.hw, o.l1State);
    const launched = this.hw.cpu.vmlaunch();
    if (launched.kind !== 'vm-entry') throw new Error(`turtles bug: L0 could not launch L1: ${JSON.stringify(launched, (_k, v) => (typeof v === 'bigint' ? `0x${v.toString(16)}` : v))}`);
  }

  record(r: NestedRecord): void {
    this.records?.record(r);
  }

  /** vmcs01's data (the processor's cached copy). */
  get vmcs01(): Vmcs {
    return this.hw.cpu.vmcsData(L0Layout.VMCS01);
  }

  /** vmcs02's data. */
  get vmcs02(): Vmcs {
    return this.hw.cpu.vmcsData(L0Layout.VMCS02);
  }

  /** CR0 as L1 has it architecturally: the hardware's value with vmcs01's read shadow for the bits L0 owns. */
  architecturalCr0(hardware: bigint): bigint {
    const v = this.vmcs01;
    const m = v.get(Field.CR0_GUEST_HOST_MASK);
    return (hardware & ~m) | (v.get(Field.CR0_READ_SHADOW) & m);
  }

  /** A copy of L1's architectural state while it runs (what L1 and O3 see). */
  l1View(): CpuState {
    const s = this.l1.clone();
    s.cr0 = this.architecturalCr0(s.cr0);
    return s;
  }

  /** L1's live state while it runs in VMX non-root operation (the hardware's guest state). */
  get l1(): CpuState {
    const g = this.hw.cpu.guest;
    if (!this.hw.cpu.nonRoot || !g) throw new Error('turtles bug: L1 state asked for while L1 is not running');
    return g;
  }

  // ---- transitions between L1 and L0 -------------------------------------------------------------------------------

  /** L1 exits to L0 (the processor records the exit in vmcs01); returns L1's state as L0 now holds it. */
  exitFromL1(reason: number, qualification = 0n): CpuState {
    const l1 = this.l1;
    // L1's operations are not machine code: they have no length, so L0 advances RIP by 0 (the reference does not move it).
    const out = this.hw.cpu.vmExit({ reason, qualification, instructionLength: 0, instructionInfo: 0 }, l1);
    if (out.kind !== 'host') throw new Error(`turtles bug: VMX abort on an exit from L1 (${out.indicator})`);
    // From here on L0 holds L1's architectural state: CR0 with the bits L0 owns taken from the read shadow.
    l1.cr0 = this.architecturalCr0(l1.cr0);
    if (this.shadowActive) copyShadowToVmcs12(this.hw.cpu.vmcsData(L0Layout.SHADOW_VMCS), this.state.vmcs12, this.shadowSets);
    return l1;
  }

  /**
   * Enter L1 with `state` (vmcs01's guest area, the unswitched state, VMCS shadowing as vmcs12 requires, an exception
   * to deliver if L0 has one). Returns the event the entry injected, or an error text when the hardware refused.
   */
  enterL1(state: CpuState): { ok: true; injected?: InjectedEvent } | { ok: false; why: string } {
    const cpu = this.hw.cpu;
    if (cpu.currentPointer !== L0Layout.VMCS01) expectSucceed(cpu.vmptrld(L0Layout.VMCS01), 'VMPTRLD vmcs01');
    const v = cpu.currentVmcs!;
    writeGuest(v, this.hw.host, state);
    v.set(Field.CR0_READ_SHADOW, state.cr0);
    const sec = v.lo(Field.SECONDARY_VM_EXEC_CONTROL) & ~Secondary.VMCS_SHADOWING;
    if (this.shadowActive) {
      copyVmcs12ToShadow(this.state.vmcs12, cpu.vmcsData(L0Layout.SHADOW_VMCS), this.shadowSets);
      v.set32(Field.SECONDARY_VM_EXEC_CONTROL, sec | Secondary.VMCS_SHADOWING);
      v.set(Field.VMCS_LINK_POINTER, L0Layout.SHADOW_VMCS);
    } else {
      v.set32(Field.SECONDARY_VM_EXEC_CONTROL, sec);
      v.set(Field.VMCS_LINK_POINTER, 0xffff_ffff_ffff_ffffn);
    }
    const e = this.pendingL1Event;
    this.pendingL1Event = null;
    if (e) {
      v.set32(Field.VM_ENTRY_INTR_INFO_FIELD, (0x8000_0000 | (e.type << 8) | e.vector | (e.errorCode !== undefined ? 0x800 : 0)) >>> 0);
      v.set32(Field.VM_ENTRY_EXCEPTION_ERROR_CODE, e.errorCode ?? 0);
    } else {
      v.set32(Field.VM_ENTRY_INTR_INFO_FIELD, 0);
    }
    copyUnswitched(cpu.state, state);
    const o = cpu.vmresume();
    if (o.kind !== 'vm-entry') {
      const why = `L0 could not resume L1: ${o.kind}${'error' in o ? ` ${o.error}` : ''}${'checkId' in o && o.checkId ? ` (${o.checkId})` : ''}`;
      this.record({ kind: 'l0-internal', step: this.step, what: why });
      return { ok: false, why };
    }
    return o.injected ? { ok: true, injected: o.injected } : { ok: true };
  }

  // ---- L1's VMX instructions -----------------------------------------------------------------------------------------

  /**
   * One VMX instruction of L1: the hardware executes it in non-root operation (a #UD before the exit, a VMREAD/VMWRITE
   * VMCS shadowing lets through, or the VM exit); on the exit L0 emulates it with `emulate` and resumes L1.
   */
  l1Vmx(reason: number, hardware: VmxInstrOutcome, handler: string, emulate: (l1: CpuState) => EmulationResult): L1VmxResult {
    switch (hardware.kind) {
      case 'vmsucceed': return hardware.value === undefined ? { kind: 'vmsucceed' } : { kind: 'vmsucceed', value: hardware.value };
      case 'vmfail-invalid': return { kind: 'vmfail-invalid' };
      case 'vmfail-valid': return { kind: 'vmfail-valid', error: hardware.error };
      case 'fault': return hardware.errorCode === undefined ? { kind: 'fault', vector: hardware.vector } : { kind: 'fault', vector: hardware.vector, errorCode: hardware.errorCode };
      case 'vm-exit': break;
      default: throw new Error(`turtles bug: L1's VMX instruction produced ${hardware.kind} on the hardware`);
    }
    const l1 = this.exitFromL1(reason);
    this.record({ kind: 'l1-exit', step: this.step, reason, handler });
    const r = emulate(l1);
    this.applyEffects(r.effects);
    return this.complete(l1, r.outcome);
  }

  /** Finish an emulated instruction: RFLAGS per SDM 30.2, or an exception for L1; resume L1. */
  complete(l1: CpuState, outcome: Emulated): L1VmxResult {
    let result: L1VmxResult;
    switch (outcome.kind) {
      case 'vmsucceed':
        l1.rflags = flagsSucceed(l1.rflags);
        result = outcome.value === undefined ? { kind: 'vmsucceed' } : { kind: 'vmsucceed', value: outcome.value };
        break;
      case 'vmfail-invalid':
        l1.rflags = flagsFailInvalid(l1.rflags);
        result = { kind: 'vmfail-invalid' };
        break;
      case 'vmfail-valid':
        l1.rflags = flagsFailValid(l1.rflags);
        result = { kind: 'vmfail-valid', error: outcome.error };
        break;
      case 'fault':
        this.pendingL1Event = { vector: outcome.vector, type: 3, ...(outcome.errorCode !== undefined ? { errorCode: outcome.errorCode } : {}) };
        result = outcome.errorCode === undefined ? { kind: 'fault', vector: outcome.vector } : { kind: 'fault', vector: outcome.vector, errorCode: outcome.errorCode };
        break;
    }
    const entered = this.enterL1(l1);
    if (!entered.ok) throw new Error(`turtles bug: ${entered.why}`);
    if (result.kind === 'fault') {
      // The exception L0 injected is what L1 sees instead of completion; the hardware reports the injection back.
      const inj = entered.injected;
      if (!inj || inj.vector !== result.vector) throw new Error('turtles bug: the exception L0 injected into L1 did not come back from the entry');
    }
    return result;
  }

  /** Side effects of an emulated instruction outside vmcs12: EPT02, VPID, hardware VMCS shadowing. */
  applyEffects(effects: readonly Vmcs12Effect[]): void {
    for (const e of effects) {
      switch (e.kind) {
        case 'vmxon':
          // KVM allocates one vpid02 per vCPU at VMXON (§5.6).
          this.state.vpid02 = 2;
          this.state.lastVpid12 = null;
          break;
        case 'vmxoff':
          this.ept02.dropRoots('vmxoff');
          this.shadowActive = false;
          break;
        case 'vmcs12-released':
          // nested_release_vmcs12: every EPT02 root goes with the vmcs12 it was built for.
          this.ept02.dropRoots(e.reason);
          this.shadowActive = false;
          break;
        case 'vmcs12-loaded':
          this.shadowActive = this.useShadow;
          break;
        case 'field-written':
          break;
        case 'invalidate': {
          const inv = e.invalidation;
          if (inv.kind === 'ept-single-context' || inv.kind === 'ept-all-context') {
            this.parts.invept(this.ept02, inv);
          } else {
            const type = inv.kind === 'vpid-individual-address' ? 0 : inv.kind === 'vpid-single-context' ? 1 : inv.kind === 'vpid-all-context' ? 2 : 3;
            const flush = this.parts.invvpid(type, inv.kind === 'vpid-individual-address' ? inv.linearAddress : 0n, 1, this.state.vpid02);
            this.record({ kind: 'vpid-flush', step: this.step, flush, cause: `invvpid type ${type}` });
          }
          break;
        }
      }
    }
  }

  // ---- L1's MSR reads --------------------------------------------------------------------------------------------------

  /** RDMSR by L1: vmcs01's MSR bitmap decides whether it exits; L0 answers the VMX capability MSRs it advertises. */
  rdmsr(index: number): bigint {
    const i = index >>> 0;
    const bitmap = this.hw.memory.read(HPA.of(L0Layout.MSR_BITMAP01), 4096);
    if (!msrBitmapExits(bitmap, i, false)) return this.l1.msr(i);
    const l1 = this.exitFromL1(31);
    this.record({ kind: 'l1-exit', step: this.step, reason: 31, handler: 'rdmsr-vmx-capability' });
    const name = VMX_MSR_BY_INDEX.get(i);
    const value = name !== undefined ? this.l1Model.msr(name) : l1.msr(i);
    const entered = this.enterL1(l1);
    if (!entered.ok) throw new Error(`turtles bug: ${entered.why}`);
    return value;
  }

  /** Whether the current vmcs12 is mirrored in the hardware shadow VMCS (L1's shadowed VMREAD/VMWRITE do not exit). */
  get shadowing(): boolean {
    return this.shadowActive;
  }
}

