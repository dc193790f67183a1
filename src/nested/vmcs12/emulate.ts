// L0's emulation of L1's VMXON, VMXOFF, VMCLEAR, VMPTRLD, VMPTRST, VMREAD, VMWRITE, INVEPT and INVVPID against the
// cached vmcs12, with the checks, order, errors and faults of a CPU with the advertised model (the reference processor
// is the specification) and KVM's caching/masking under the kvm profile. Must not: touch hardware VMCSs or EPT02 (it
// returns effects) or set L1's RFLAGS. Reference: nested-vmx.md §2.1–2.3, §9.3 N9–N11; SDM 30.3, 24.11.
import type { CpuModel } from '../../cpu/cpu-model.js';
import { eptCapabilities, validateEptp } from '../../cpu/ept/eptp.js';
import { Field, VMCS_FIELDS } from '../../cpu/generated/vmcs-fields.js';
import { VmError } from '../../cpu/generated/vm-instruction-errors.js';
import { Cr4, Msr, type CpuState } from '../../cpu/state.js';
import { U64_MASK, isCanonical } from '../../cpu/u64.js';
import { Vmcs } from '../../cpu/vmcs.js';
import { factsOf, type ModelFacts } from '../../cpu/vmx/model-facts.js';
import { GP0, UD, type TlbInvalidation, type VmxFault } from '../../cpu/vmx/outcome.js';
import { readPhys32, type VmxPhysicalAccess } from '../../cpu/vmx/physical.js';
import { regionLayout, type VmcsRegionLayout } from '../../cpu/vmx/vmcs-region.js';
import { Deviation, type L0Profile } from '../profile.js';
import { INVALID_POINTER, type NestedVmxState, type Vmcs12Slot } from './state.js';

/** What an emulated VMX instruction completes with, as L1 sees it (RFLAGS follow from the kind). */
export type Emulated =
  | { readonly kind: 'vmsucceed'; readonly value?: bigint }
  | { readonly kind: 'vmfail-invalid' }
  | { readonly kind: 'vmfail-valid'; readonly error: number }
  | VmxFault;

/** Side effects L0 must apply outside the vmcs12 cache (EPT02, VPID, hardware VMCS shadowing). */
export type Vmcs12Effect =
  | { readonly kind: 'vmxon' }
  | { readonly kind: 'vmxoff' }
  /** The current vmcs12 stopped being current (its data was written back when the profile says so). */
  | { readonly kind: 'vmcs12-released'; readonly ptr: bigint; readonly reason: 'vmclear' | 'vmptrld' | 'vmxoff' }
  /** A VMCS became current. */
  | { readonly kind: 'vmcs12-loaded'; readonly ptr: bigint }
  /** VMWRITE stored `encoding` (L0 mirrors it into a hardware shadow VMCS when that field is shadowed). */
  | { readonly kind: 'field-written'; readonly encoding: number }
  | { readonly kind: 'invalidate'; readonly invalidation: TlbInvalidation };

export interface EmulationResult {
  readonly outcome: Emulated;
  readonly effects: readonly Vmcs12Effect[];
}

const AR_FIRST = Field.GUEST_ES_AR_BYTES;
const AR_LAST = Field.GUEST_TR_AR_BYTES;
/** AR bits KVM keeps on VMWRITE (N10): the architecturally defined ones. */
const AR_KEEP = 0x1f0ffn;
const VMCS_FIELD_BY_ENCODING = new Map(VMCS_FIELDS.map((d) => [d.encoding, d]));

/**
 * The emulation engine. `mem` is L1-physical memory (through EPT01); unbacked addresses read as all ones. `l1` is
 * always L1's state as L1 sees it (its CR0/CR4 view, CPL from SS.DPL).
 */
export class Vmcs12Emulator {
  readonly facts: ModelFacts;
  readonly layout: VmcsRegionLayout;

  constructor(
    readonly state: NestedVmxState,
    readonly model: CpuModel,
    readonly profile: L0Profile,
    readonly mem: VmxPhysicalAccess,
  ) {
    this.facts = factsOf(model);
    this.layout = regionLayout(model);
  }

  /** KVM keeps only the current vmcs12 (written back when it stops being current); a CPU keeps every active VMCS. */
  private get kvmCaching(): boolean {
    return this.profile.name === 'kvm';
  }

  // ---- result conventions (SDM 30.2) -----------------------------------------------------------------------------

  /** VMfailValid(n) into the current vmcs12, or VMfailInvalid without one. */
  fail(error: number): Emulated {
    const c = this.state.current;
    if (!c) return { kind: 'vmfail-invalid' };
    c.vmcs.set32(Field.VM_INSTRUCTION_ERROR, error);
    return { kind: 'vmfail-valid', error };
  }

  /** VMfailValid(n) (the caller knows there is a current VMCS). */
  failValid(error: number): Emulated {
    return this.fail(error);
  }

  private done(outcome: Emulated, effects: Vmcs12Effect[] = []): EmulationResult {
    return { outcome, effects };
  }

  /** #UD outside VMX operation / without CR0.PE / in virtual-8086 or compatibility mode; #GP(0) at CPL > 0 (§2.2). */
  commonChecks(l1: CpuState): VmxFault | undefined {
    if (!this.state.vmxon || !l1.protectedMode || l1.v8086 || l1.compatibilityMode) return UD;
    if (l1.cpl > 0) return GP0;
    return undefined;
  }

  private pointerValid(ptr: bigint): boolean {
    return (ptr & 0xfffn) === 0n && ptr >> this.facts.pointerWidth === 0n;
  }

  private registerBits(l1: CpuState): 32 | 64 {
    return l1.longMode64 ? 64 : 32;
  }

  private crValuesAllowed(s: CpuState): boolean {
    const m = this.model;
    const ok = (v: bigint, f0: bigint, f1: bigint) => (v & f0) === f0 && (v & ~f1 & U64_MASK) === 0n;
    return ok(s.cr0, m.cr0Fixed0, m.cr0Fixed1) && ok(s.cr4, m.cr4Fixed0, m.cr4Fixed1);
  }

  // ---- VMXON / VMXOFF ----------------------------------------------------------------------------------------------

  vmxon(ptr: bigint, l1: CpuState): EmulationResult {
    if (!l1.protectedMode || (l1.cr4 & Cr4.VMXE) === 0n || l1.v8086 || l1.compatibilityMode) return this.done(UD);
    if (this.state.vmxon) {
      if (l1.cpl > 0) return this.done(GP0);
      return this.done(this.fail(VmError.VMXON_IN_VMX_ROOT_OPERATION));
    }
    const fc = l1.msr(Msr.IA32_FEATURE_CONTROL);
    if (l1.cpl > 0 || !this.crValuesAllowed(l1) || (fc & 1n) === 0n || (fc & 4n) === 0n) return this.done(GP0);
    if (!this.pointerValid(ptr)) return this.done({ kind: 'vmfail-invalid' });
    const rev = readPhys32(this.mem, ptr);
    if ((rev & 0x7fff_ffff) !== this.model.vmcsRevision || rev >>> 31 === 1) return this.done({ kind: 'vmfail-invalid' });
    const s = this.state;
    s.vmxon = true;
    s.vmxonPtr = ptr;
    s.currentPtr = INVALID_POINTER;
    return this.done({ kind: 'vmsucceed' }, [{ kind: 'vmxon' }]);
  }

  vmxoff(l1: CpuState): EmulationResult {
    const c = this.commonChecks(l1);
    if (c) return this.done(c);
    const s = this.state;
    const effects: Vmcs12Effect[] = [];
    if (s.currentPtr !== INVALID_POINTER) effects.push({ kind: 'vmcs12-released', ptr: s.currentPtr, reason: 'vmxoff' });
    // A CPU writes every active VMCS back (the SDM leaves it undefined; the reference does); KVM's free_nested drops
    // the cached vmcs12 without writing it (N9: region contents are not architectural).
    if (!this.kvmCaching) for (const [ptr, a] of s.active) this.layout.store(this.mem, ptr, a.vmcs, a.launched);
    s.active.clear();
    s.vmxon = false;
    s.vmxonPtr = INVALID_POINTER;
    s.currentPtr = INVALID_POINTER;
    s.vpid02 = null;
    s.lastVpid12 = null;
    effects.push({ kind: 'vmxoff' });
    return this.done({ kind: 'vmsucceed' }, effects);
  }

  // ---- VMCLEAR / VMPTRLD / VMPTRST ---------------------------------------------------------------------------------

  vmclear(ptr: bigint, l1: CpuState): EmulationResult {
    const c = this.commonChecks(l1);
    if (c) return this.done(c);
    if (!this.pointerValid(ptr)) return this.done(this.fail(VmError.VMCLEAR_INVALID_ADDRESS));
    if (ptr === this.state.vmxonPtr) return this.done(this.fail(VmError.VMCLEAR_VMXON_POINTER));
    const s = this.state;
    const effects: Vmcs12Effect[] = [];
    const a = s.active.get(ptr);
    if (ptr === s.currentPtr) effects.push({ kind: 'vmcs12-released', ptr, reason: 'vmclear' });
    if (a) {
      // Flush the cached data with launch state "clear" (KVM: write back the current vmcs12, then launch_state := 0).
      this.layout.store(this.mem, ptr, a.vmcs, false);
      s.active.delete(ptr);
    } else {
      this.layout.storeLaunchState(this.mem, ptr, false);
    }
    if (ptr === s.currentPtr) s.currentPtr = INVALID_POINTER;
    return this.done({ kind: 'vmsucceed' }, effects);
  }

  vmptrld(ptr: bigint, l1: CpuState): EmulationResult {
    const c = this.commonChecks(l1);
    if (c) return this.done(c);
    if (!this.pointerValid(ptr)) return this.done(this.fail(VmError.VMPTRLD_INVALID_ADDRESS));
    if (ptr === this.state.vmxonPtr) return this.done(this.fail(VmError.VMPTRLD_VMXON_POINTER));
    const rev = readPhys32(this.mem, ptr);
    const shadow = rev >>> 31 === 1;
    if ((rev & 0x7fff_ffff) !== this.model.vmcsRevision || (shadow && !this.facts.shadowing)) {
      return this.done(this.fail(VmError.VMPTRLD_INCORRECT_VMCS_REVISION_ID));
    }
    const s = this.state;
    const effects: Vmcs12Effect[] = [];
    if (ptr === s.currentPtr) {
      // KVM: VMPTRLD of the current VMCS is a no-op; a CPU re-reads only the shadow indicator.
      if (!this.kvmCaching) s.active.get(ptr)!.shadow = shadow;
      return this.done({ kind: 'vmsucceed' });
    }
    const old = s.current;
    if (old) {
      effects.push({ kind: 'vmcs12-released', ptr: old.ptr, reason: 'vmptrld' });
      if (this.kvmCaching) {
        // nested_release_vmcs12: the cached vmcs12 goes back to L1 memory, with its launch state.
        this.layout.store(this.mem, old.ptr, old.vmcs, old.launched);
        s.active.delete(old.ptr);
      }
    }
    this.activate(ptr).shadow = shadow;
    s.currentPtr = ptr;
    effects.push({ kind: 'vmcs12-loaded', ptr });
    return this.done({ kind: 'vmsucceed' }, effects);
  }

  /** L0's data for the VMCS at `ptr`, read from its region in L1 memory if L0 holds none. */
  activate(ptr: bigint): Vmcs12Slot {
    let a = this.state.active.get(ptr);
    if (!a) {
      const vmcs = new Vmcs();
      const { launched } = this.layout.load(this.mem, ptr, vmcs);
      a = { ptr, vmcs, launched, shadow: readPhys32(this.mem, ptr) >>> 31 === 1 };
      this.state.active.set(ptr, a);
    }
    return a;
  }

  vmptrst(l1: CpuState): EmulationResult {
    const c = this.commonChecks(l1);
    if (c) return this.done(c);
    return this.done({ kind: 'vmsucceed', value: this.state.currentPtr });
  }

  // ---- VMREAD / VMWRITE --------------------------------------------------------------------------------------------

  /**
   * The encoding when L1 may VMREAD/VMWRITE that field (error 12 otherwise): the fields a processor with the advertised
   * model has (the same table the processor uses), or under kvm (N24) every field vmcs12 holds, whatever is offered.
   */
  supportedField(encoding: bigint): number | undefined {
    if (encoding > 0xffff_ffffn) return undefined;
    const e = Number(encoding);
    return this.fieldExists(e) ? e : undefined;
  }

  /** Whether field `e` exists for L1's VMREAD/VMWRITE (also for L2's through an emulated shadow VMCS). */
  fieldExists(e: number): boolean {
    if (this.facts.fields.has(e)) return true;
    return this.profile.deviations.has(Deviation.FIELD_EXISTENCE_IGNORES_FEATURES) && this.model.fieldListed(e);
  }

  /** A read-only VM-exit information field (VMWRITE needs IA32_VMX_MISC[29]); also for fields outside facts.fields. */
  readOnlyField(e: number): boolean {
    return this.facts.fields.get(e) ?? VMCS_FIELD_BY_ENCODING.get(e)?.type === 'read-only data';
  }

  vmread(encoding: bigint, l1: CpuState): EmulationResult {
    const c = this.commonChecks(l1);
    if (c) return this.done(c);
    const cur = this.state.current;
    if (!cur) return this.done({ kind: 'vmfail-invalid' });
    const opMask = this.registerBits(l1) === 64 ? U64_MASK : 0xffff_ffffn;
    const e = this.supportedField(BigInt.asUintN(64, encoding) & opMask);
    if (e === undefined) return this.done(this.fail(VmError.UNSUPPORTED_VMCS_COMPONENT));
    return this.done({ kind: 'vmsucceed', value: cur.vmcs.get(e) & opMask });
  }

  vmwrite(encoding: bigint, value: bigint, l1: CpuState): EmulationResult {
    const c = this.commonChecks(l1);
    if (c) return this.done(c);
    const cur = this.state.current;
    if (!cur) return this.done({ kind: 'vmfail-invalid' });
    const opMask = this.registerBits(l1) === 64 ? U64_MASK : 0xffff_ffffn;
    const e = this.supportedField(BigInt.asUintN(64, encoding) & opMask);
    if (e === undefined) return this.done(this.fail(VmError.UNSUPPORTED_VMCS_COMPONENT));
    if (this.readOnlyField(e) && !this.model.vmwriteAnyField) return this.done(this.fail(VmError.VMWRITE_READ_ONLY_VMCS_COMPONENT));
    let v = BigInt.asUintN(64, value) & opMask;
    // kvm (N10): reserved AR-byte bits are dropped instead of stored.
    if (e >= AR_FIRST && e <= AR_LAST && this.profile.deviations.has(Deviation.VMWRITE_AR_BYTES_MASKED)) v &= AR_KEEP;
    cur.vmcs.set(e, v);
    return this.done({ kind: 'vmsucceed' }, [{ kind: 'field-written', encoding: e }]);
  }

  // ---- INVEPT / INVVPID --------------------------------------------------------------------------------------------

  invept(type: bigint, eptp: bigint, l1: CpuState): EmulationResult {
    if (!this.facts.invept) return this.done(UD);
    const c = this.commonChecks(l1);
    if (c) return this.done(c);
    const t = BigInt.asUintN(this.registerBits(l1), type);
    const supported = (t === 1n && this.model.eptCap(25)) || (t === 2n && this.model.eptCap(26));
    if (!supported) return this.done(this.fail(VmError.INVALID_OPERAND_TO_INVEPT_INVVPID));
    const e = BigInt.asUintN(64, eptp);
    if (t === 1n) {
      if (!validateEptp(e, eptCapabilities(this.model)).ok) return this.done(this.fail(VmError.INVALID_OPERAND_TO_INVEPT_INVVPID));
      return this.done({ kind: 'vmsucceed' }, [{ kind: 'invalidate', invalidation: { kind: 'ept-single-context', eptp: e } }]);
    }
    return this.done({ kind: 'vmsucceed' }, [{ kind: 'invalidate', invalidation: { kind: 'ept-all-context' } }]);
  }

  /** INVVPID with the 128-bit descriptor: bits 15:0 VPID, 63:16 reserved, 127:64 linear address. */
  invvpid(type: bigint, descriptor: bigint, l1: CpuState): EmulationResult {
    if (!this.facts.invvpid) return this.done(UD);
    const c = this.commonChecks(l1);
    if (c) return this.done(c);
    const t = BigInt.asUintN(this.registerBits(l1), type);
    const bad = () => this.done(this.fail(VmError.INVALID_OPERAND_TO_INVEPT_INVVPID));
    if (t > 3n || !this.model.eptCap(40 + Number(t))) return bad();
    if (((descriptor >> 16n) & 0xffff_ffff_ffffn) !== 0n) return bad();
    const vpid = Number(descriptor & 0xffffn);
    const linearAddress = BigInt.asUintN(64, descriptor >> 64n);
    const ok = (invalidation: TlbInvalidation) => this.done({ kind: 'vmsucceed' }, [{ kind: 'invalidate', invalidation }]);
    switch (t) {
      case 0n:
        if (vpid === 0 || !isCanonical(linearAddress, this.model.linearAddressWidth)) return bad();
        return ok({ kind: 'vpid-individual-address', vpid, linearAddress });
      case 1n:
        if (vpid === 0) return bad();
        return ok({ kind: 'vpid-single-context', vpid });
      case 2n:
        return ok({ kind: 'vpid-all-context' });
      default:
        if (vpid === 0) return bad();
        return ok({ kind: 'vpid-single-context-retaining-globals', vpid });
    }
  }
}
