// One logical processor's VMX state and instructions on the single-level reference machine (VMXON/VMXOFF, VMCLEAR/
// VMPTRLD/VMPTRST, VMREAD/VMWRITE incl. shadowing, VMCALL, INVEPT/INVVPID, VM entry, VM exit) in SDM check order.
// Must not: decode instructions, advance RIP (callers do on completions), walk page tables, or know L0/L1.
// SDM Vol. 3C ch. 30 (instruction pseudocode), 24.11 (VMCS caching), 26.1/26.8 (entry), 27 (exit); reference §2, §3.0.
import type { CpuModel } from '../cpu-model.js';
import { ExitReason } from '../generated/exit-reasons.js';
import { Pin, Secondary } from '../generated/controls.js';
import { Field } from '../generated/vmcs-fields.js';
import { VmError } from '../generated/vm-instruction-errors.js';
import { eptCapabilities, validateEptp } from '../ept/eptp.js';
import { Cr4, CpuState, Msr } from '../state.js';
import { U64_MASK, isCanonical } from '../u64.js';
import { Vmcs } from '../vmcs.js';
import { defaultEntryChecker, type EntryChecker } from './entry-port.js';
import { type VmExitInfo, recordEntryFailure, recordExitInformation } from './exit-fields.js';
import { loadGuestState, saveGuestState, secondaryControls } from './guest-state.js';
import { type ModelFacts, factsOf } from './model-facts.js';
import { VmxAbort, loadHostState } from './host-state.js';
import { type MsrAccessRules, loadMsrList, storeMsrList } from './msr-list.js';
import { type MemoryOperand, type TranslateFn, readMemoryOperand, writeMemoryOperand } from './operands.js';
import {
  GP0, UD, type TlbInvalidation, type VmExitOutcome, type VmxAbortOutcome, type VmxFault, type VmxInstrOutcome,
  flagsFailInvalid, flagsFailValid, flagsSucceed,
} from './outcome.js';
import { type VmxPhysicalAccess, readPhys, readPhys32, writePhys } from './physical.js';
import { REGION_ABORT_OFFSET, type VmcsRegionLayout, regionLayout } from './vmcs-region.js';

/** The current-VMCS pointer value meaning "no current VMCS" (FFFFFFFF_FFFFFFFFH). */
export const INVALID_VMCS_POINTER = U64_MASK;

const SUCCEED: VmxInstrOutcome = Object.freeze({ kind: 'vmsucceed' });

export interface VmxProcessorOptions {
  readonly cpu: CpuModel;
  readonly memory: VmxPhysicalAccess;
  /** Initial root state; default is a fresh CpuState. IA32_FEATURE_CONTROL defaults to the model's value. */
  readonly state?: CpuState;
  /** Linear → physical translation for memory operands when CR0.PG = 1. */
  readonly translate?: TranslateFn;
  /** WRMSR would fault (MSR-load lists). Default: never. */
  readonly wrmsrFaults?: (index: number, value: bigint) => boolean;
  /** RDMSR would fault (VM-exit MSR-store list). Default: never. */
  readonly rdmsrFaults?: (index: number) => boolean;
  /** VM-entry check engine; default: src/cpu/vmentry in 'first' mode. */
  readonly entryChecker?: EntryChecker;
}

/** A VMCS held by the processor ("active", SDM 24.1): data cached here until VMCLEAR flushes it to its region. */
interface ActiveVmcs {
  readonly vmcs: Vmcs;
  launched: boolean;
  /** Shadow-VMCS indicator (bit 31 of the revision dword) as read by the last VMPTRLD. */
  shadow: boolean;
}

/** An operand given either as its value or as a memory operand the processor reads itself. */
export type Operand = bigint | MemoryOperand;

type Read = { ok: true; value: bigint } | { ok: false; fault: VmxFault };

export class VmxProcessor {
  readonly cpu: CpuModel;
  readonly memory: VmxPhysicalAccess;
  readonly layout: VmcsRegionLayout;
  /** Root-operation (L1) state. Replaced by a new object at every VM exit and VM-entry failure. */
  state: CpuState;
  inVmxOperation = false;
  /** Between a successful VM entry and the next VM exit. */
  nonRoot = false;
  vmxonPointer = INVALID_VMCS_POINTER;
  currentPointer = INVALID_VMCS_POINTER;
  /** Guest state while in non-root operation (the object the VM entry returned). */
  guest: CpuState | undefined;
  /** PDPTE registers loaded by the last VM entry (PAE paging only). */
  guestPdptes: readonly bigint[] | undefined;
  /** Set when a VMX abort put the processor into the VMX-abort shutdown state (only RESET leaves it). */
  abortIndicator: number | undefined;
  private readonly active = new Map<bigint, ActiveVmcs>();
  // The last lookup in `active` (bigint keys hash slowly; lookups mostly repeat). Dropped on every change to `active`.
  private lookedUp: bigint | undefined;
  private lookedUpEntry: ActiveVmcs | undefined;

  private activeEntry(ptr: bigint): ActiveVmcs | undefined {
    if (ptr === this.lookedUp) return this.lookedUpEntry;
    const a = this.active.get(ptr);
    this.lookedUp = ptr;
    this.lookedUpEntry = a;
    return a;
  }
  private readonly translate: TranslateFn | undefined;
  private readonly msrRules: MsrAccessRules;
  private readonly entryChecker: EntryChecker;
  private readonly facts: ModelFacts;

  constructor(opts: VmxProcessorOptions) {
    this.cpu = opts.cpu;
    this.memory = opts.memory;
    this.layout = regionLayout(opts.cpu);
    this.state = opts.state ?? new CpuState();
    if (!this.state.msrs.has(Msr.IA32_FEATURE_CONTROL)) this.state.setMsr(Msr.IA32_FEATURE_CONTROL, opts.cpu.featureControl);
    this.translate = opts.translate;
    const wr = opts.wrmsrFaults ?? (() => false);
    const rd = opts.rdmsrFaults ?? (() => false);
    this.msrRules = { wrmsrFaults: wr, rdmsrFaults: rd, maxEntries: opts.cpu.maxMsrListEntries };
    this.entryChecker = opts.entryChecker ?? defaultEntryChecker;
    this.facts = factsOf(opts.cpu);
  }

  /** The cached data of the current VMCS, or undefined when the current-VMCS pointer is invalid. */
  get currentVmcs(): Vmcs | undefined {
    return this.activeEntry(this.currentPointer)?.vmcs;
  }

  get shutdown(): boolean {
    return this.abortIndicator !== undefined;
  }

  /** Launch state of an active VMCS (undefined if the processor holds no data for that region). */
  launchState(ptr: bigint): 'clear' | 'launched' | undefined {
    const a = this.activeEntry(ptr);
    return a === undefined ? undefined : a.launched ? 'launched' : 'clear';
  }

  /** Pointers of the active VMCSs, in activation order. */
  activePointers(): bigint[] {
    return [...this.active.keys()];
  }

  // ------------------------------------------------------------------------------------------------------------
  // Result conventions (SDM 30.2).

  /** The state the executing software sees: the guest in non-root operation, else the root state. */
  private get ctx(): CpuState {
    return this.nonRoot ? this.guest! : this.state;
  }

  private succeed(value?: bigint, invalidation?: TlbInvalidation): VmxInstrOutcome {
    const s = this.ctx;
    s.rflags = flagsSucceed(s.rflags);
    if (value !== undefined) return { kind: 'vmsucceed', value };
    return invalidation ? { kind: 'vmsucceed', invalidation } : SUCCEED;
  }

  private failInvalid(): VmxInstrOutcome {
    this.ctx.rflags = flagsFailInvalid(this.ctx.rflags);
    return { kind: 'vmfail-invalid' };
  }

  /** VMfailValid: the error number goes to the VM-instruction error field of the current VMCS. */
  private failValid(error: number): VmxInstrOutcome {
    this.currentVmcs!.set32(Field.VM_INSTRUCTION_ERROR, error);
    this.ctx.rflags = flagsFailValid(this.ctx.rflags);
    return { kind: 'vmfail-valid', error };
  }

  /** VMfail(n): VMfailValid(n) with a current VMCS, VMfailInvalid without. */
  private fail(error: number): VmxInstrOutcome {
    return this.currentPointer === INVALID_VMCS_POINTER ? this.failInvalid() : this.failValid(error);
  }

  private assertRunning(): void {
    if (this.abortIndicator !== undefined) throw new Error('turtles bug: VMX instruction on a processor in VMX-abort shutdown');
  }

  /**
   * Steps common to every VMX instruction except VMXON and VMCALL (reference §2.2 P1-P3): #UD outside VMX operation,
   * with CR0.PE = 0, in virtual-8086 or compatibility mode; VM exit in non-root operation; #GP(0) at CPL > 0.
   */
  private commonChecks(exitReason: number): VmxInstrOutcome | undefined {
    this.assertRunning();
    const s = this.ctx;
    if (!this.inVmxOperation || !s.protectedMode || s.v8086 || s.compatibilityMode) return UD;
    if (this.nonRoot) return { kind: 'vm-exit', reason: exitReason };
    if (s.cpl > 0) return GP0;
    return undefined;
  }

  /** 4 KiB aligned and within the physical-address width (32 bits when IA32_VMX_BASIC[48] = 1). */
  private pointerValid(ptr: bigint): boolean {
    return (ptr & 0xfffn) === 0n && ptr >> this.facts.pointerWidth === 0n;
  }

  /** Register operand width: 64 in 64-bit mode, else 32 (CS.D is ignored by VMX instructions). */
  private get registerBits(): 32 | 64 {
    return this.ctx.longMode64 ? 64 : 32;
  }

  private fetch(src: Operand, size: 4 | 8 | 16): Read {
    if (typeof src === 'bigint') return { ok: true, value: BigInt.asUintN(size * 8, src) };
    const r = readMemoryOperand(this.ctx, this.memory, src, size, this.translate);
    return r.ok ? { ok: true, value: r.value } : { ok: false, fault: r.fault };
  }

  // ------------------------------------------------------------------------------------------------------------
  // VMXON / VMXOFF.

  /** VMXON m64 (SDM 30.3 VMXON). */
  vmxon(src: Operand): VmxInstrOutcome {
    this.assertRunning();
    const s = this.ctx;
    if (!s.protectedMode || (s.cr4 & Cr4.VMXE) === 0n || s.v8086 || s.compatibilityMode) return UD;
    if (!this.inVmxOperation) {
      const fc = s.msr(Msr.IA32_FEATURE_CONTROL);
      if (s.cpl > 0 || !this.crValuesAllowed(s) || (fc & 1n) === 0n || (fc & 4n) === 0n) return GP0;
      const r = this.fetch(src, 8);
      if (!r.ok) return r.fault;
      const ptr = r.value;
      if (!this.pointerValid(ptr)) return this.failInvalid();
      const rev = readPhys32(this.memory, ptr);
      if ((rev & 0x7fff_ffff) !== this.cpu.vmcsRevision || rev >>> 31 === 1) return this.failInvalid();
      this.inVmxOperation = true;
      this.vmxonPointer = ptr;
      this.currentPointer = INVALID_VMCS_POINTER;
      return this.succeed();
    }
    if (this.nonRoot) return { kind: 'vm-exit', reason: ExitReason.VMXON };
    if (s.cpl > 0) return GP0;
    return this.fail(VmError.VMXON_IN_VMX_ROOT_OPERATION);
  }

  /** CR0 and CR4 satisfy IA32_VMX_CR0_FIXED0/1 and IA32_VMX_CR4_FIXED0/1 (SDM 23.8). */
  private crValuesAllowed(s: CpuState): boolean {
    const ok = (v: bigint, f0: bigint, f1: bigint) => (v & f0) === f0 && (v & ~f1 & U64_MASK) === 0n;
    return ok(s.cr0, this.cpu.cr0Fixed0, this.cpu.cr0Fixed1) && ok(s.cr4, this.cpu.cr4Fixed0, this.cpu.cr4Fixed1);
  }

  /**
   * VMXOFF. Dual-monitor treatment is never active on this model, so error 23 cannot occur. VMCSs still active are
   * written back to their regions (the SDM leaves their fate undefined when software skips VMCLEAR; writing back
   * is the deterministic choice and matches KVM's write-back of the cached vmcs12).
   */
  vmxoff(): VmxInstrOutcome {
    const c = this.commonChecks(ExitReason.VMXOFF);
    if (c) return c;
    for (const [ptr, a] of this.active) this.layout.store(this.memory, ptr, a.vmcs, a.launched);
    this.active.clear();
    this.lookedUp = undefined;
    this.inVmxOperation = false;
    this.vmxonPointer = INVALID_VMCS_POINTER;
    this.currentPointer = INVALID_VMCS_POINTER;
    return this.succeed();
  }

  // ------------------------------------------------------------------------------------------------------------
  // VMCLEAR / VMPTRLD / VMPTRST.

  /** VMCLEAR m64: flush the VMCS's data to its region and make its launch state clear. */
  vmclear(src: Operand): VmxInstrOutcome {
    const c = this.commonChecks(ExitReason.VMCLEAR);
    if (c) return c;
    const r = this.fetch(src, 8);
    if (!r.ok) return r.fault;
    const ptr = r.value;
    if (!this.pointerValid(ptr)) return this.fail(VmError.VMCLEAR_INVALID_ADDRESS);
    if (ptr === this.vmxonPointer) return this.fail(VmError.VMCLEAR_VMXON_POINTER);
    const a = this.active.get(ptr);
    if (a) {
      this.layout.store(this.memory, ptr, a.vmcs, false);
      this.active.delete(ptr);
      this.lookedUp = undefined;
    } else {
      this.layout.storeLaunchState(this.memory, ptr, false);
    }
    if (ptr === this.currentPointer) this.currentPointer = INVALID_VMCS_POINTER;
    return this.succeed();
  }

  /** VMPTRLD m64: make the VMCS current (activating it from its region if the processor holds no data for it). */
  vmptrld(src: Operand): VmxInstrOutcome {
    const c = this.commonChecks(ExitReason.VMPTRLD);
    if (c) return c;
    const r = this.fetch(src, 8);
    if (!r.ok) return r.fault;
    const ptr = r.value;
    if (!this.pointerValid(ptr)) return this.fail(VmError.VMPTRLD_INVALID_ADDRESS);
    if (ptr === this.vmxonPointer) return this.fail(VmError.VMPTRLD_VMXON_POINTER);
    const rev = readPhys32(this.memory, ptr);
    const shadow = rev >>> 31 === 1;
    if ((rev & 0x7fff_ffff) !== this.cpu.vmcsRevision || (shadow && !this.facts.shadowing)) {
      return this.fail(VmError.VMPTRLD_INCORRECT_VMCS_REVISION_ID);
    }
    this.activate(ptr).shadow = shadow;
    this.currentPointer = ptr;
    return this.succeed();
  }

  /** The processor's data for the VMCS at `ptr`, reading its region if it is not active yet. */
  private activate(ptr: bigint): ActiveVmcs {
    let a = this.activeEntry(ptr);
    if (!a) {
      const vmcs = new Vmcs();
      const { launched } = this.layout.load(this.memory, ptr, vmcs);
      a = { vmcs, launched, shadow: readPhys32(this.memory, ptr) >>> 31 === 1 };
      this.active.set(ptr, a);
      this.lookedUp = undefined;
    }
    return a;
  }

  /**
   * The processor's data for the VMCS at `ptr`, activating it from its region when it is not active yet: what
   * VMREAD/VMWRITE in non-root operation reach through the VMCS link pointer when VMCS shadowing lets them through.
   */
  vmcsData(ptr: bigint): Vmcs {
    return this.activate(ptr).vmcs;
  }

  /** VMPTRST m64: the current-VMCS pointer (FFFFFFFF_FFFFFFFFH if none), returned as `value` or stored to `dest`. */
  vmptrst(dest?: MemoryOperand): VmxInstrOutcome {
    const c = this.commonChecks(ExitReason.VMPTRST);
    if (c) return c;
    if (dest) {
      const w = writeMemoryOperand(this.ctx, this.memory, dest, 8, this.currentPointer, this.translate);
      if (!w.ok) return w.fault;
    }
    return this.succeed(this.currentPointer);
  }

  // ------------------------------------------------------------------------------------------------------------
  // VMREAD / VMWRITE.

  /**
   * The encoding as a number when the model supports that field; undefined → VMfailValid(12). Bits 63:32 set
   * (64-bit operand), reserved bits 31:15 or 12, unknown indices and high halves of non-64-bit fields are not in
   * the table, so no field corresponds to them (SDM App. B).
   */
  private supportedField(encoding: bigint): number | undefined {
    if (encoding > 0xffff_ffffn) return undefined;
    const e = Number(encoding);
    return this.facts.fields.has(e) ? e : undefined;
  }

  /**
   * In non-root operation VMREAD/VMWRITE exit unless VMCS shadowing lets them through: shadowing on, encoding
   * below 2^15 and its bit clear in the VMREAD/VMWRITE bitmap. Returns the exit, or undefined to proceed.
   */
  private shadowExit(reason: number, encoding: bigint): VmxInstrOutcome | undefined {
    const vmcs = this.currentVmcs!;
    if ((secondaryControls(vmcs) & Secondary.VMCS_SHADOWING) === 0 || encoding >> 15n !== 0n) return { kind: 'vm-exit', reason };
    const bitmap = vmcs.get(reason === ExitReason.VMREAD ? Field.VMREAD_BITMAP : Field.VMWRITE_BITMAP);
    const idx = Number(encoding);
    const byte = Number(readPhys(this.memory, bitmap + BigInt(idx >> 3), 1));
    return (byte >> (idx & 7)) & 1 ? { kind: 'vm-exit', reason } : undefined;
  }

  /** #UD / VM exit / #GP(0) / VMfailInvalid for VMREAD and VMWRITE; on success the VMCS to access. */
  private vmcsForAccess(reason: number, encoding: bigint): VmxInstrOutcome | Vmcs {
    this.assertRunning();
    const s = this.ctx;
    if (!this.inVmxOperation || !s.protectedMode || s.v8086 || s.compatibilityMode) return UD;
    if (this.nonRoot) {
      const exit = this.shadowExit(reason, encoding);
      if (exit) return exit;
    }
    if (s.cpl > 0) return GP0;
    if (!this.nonRoot) {
      if (this.currentPointer === INVALID_VMCS_POINTER) return this.failInvalid();
      return this.currentVmcs!;
    }
    // Non-root with shadowing: the shadow VMCS is the one the VMCS link pointer references.
    const link = this.currentVmcs!.get(Field.VMCS_LINK_POINTER);
    if (link === INVALID_VMCS_POINTER) return this.failInvalid();
    return this.activate(link).vmcs;
  }

  /**
   * VMREAD: the field value zero-extended to the operand size (64 in 64-bit mode, else 32), returned as `value`
   * and stored to `dest` when given (a fault on that store leaves RFLAGS unchanged).
   */
  vmread(encoding: bigint, operandSize: 32 | 64, dest?: MemoryOperand): VmxInstrOutcome {
    const opMask = operandSize === 64 ? U64_MASK : 0xffff_ffffn;
    const enc = BigInt.asUintN(64, encoding) & opMask;
    const target = this.vmcsForAccess(ExitReason.VMREAD, enc);
    if (!(target instanceof Vmcs)) return target;
    const e = this.supportedField(enc);
    if (e === undefined) return this.failValid(VmError.UNSUPPORTED_VMCS_COMPONENT);
    const value = target.get(e) & opMask;
    if (dest) {
      const w = writeMemoryOperand(this.ctx, this.memory, dest, operandSize === 64 ? 8 : 4, value, this.translate);
      if (!w.ok) return w.fault;
    }
    return this.succeed(value);
  }

  /**
   * VMWRITE: write the source (register value or memory operand of the operand size) to the field, truncated to the
   * field width; a 32-bit source clears bits 63:32 of a 64-bit or natural-width field. A memory source is read after
   * the VMCS-pointer check and before the field checks (SDM VMWRITE description).
   */
  vmwrite(encoding: bigint, src: Operand, operandSize: 32 | 64): VmxInstrOutcome {
    const opMask = operandSize === 64 ? U64_MASK : 0xffff_ffffn;
    const enc = BigInt.asUintN(64, encoding) & opMask;
    const target = this.vmcsForAccess(ExitReason.VMWRITE, enc);
    if (!(target instanceof Vmcs)) return target;
    const r = this.fetch(src, operandSize === 64 ? 8 : 4);
    if (!r.ok) return r.fault;
    const e = this.supportedField(enc);
    if (e === undefined) return this.failValid(VmError.UNSUPPORTED_VMCS_COMPONENT);
    if (this.facts.fields.get(e) === true && !this.cpu.vmwriteAnyField) return this.failValid(VmError.VMWRITE_READ_ONLY_VMCS_COMPONENT);
    target.set(e, r.value & opMask);
    return this.succeed();
  }

  // ------------------------------------------------------------------------------------------------------------
  // VMCALL / INVEPT / INVVPID.

  /** VMCALL: exits in non-root operation; in root operation (no dual-monitor treatment) VMfail(1). */
  vmcall(): VmxInstrOutcome {
    this.assertRunning();
    const s = this.ctx;
    if (!this.inVmxOperation) return UD;
    // VMCALL is the one VMX instruction that exits from compatibility/virtual-8086 mode: the exit comes first.
    if (this.nonRoot) return { kind: 'vm-exit', reason: ExitReason.VMCALL };
    if (s.v8086 || s.compatibilityMode) return UD;
    if (s.cpl > 0) return GP0;
    return this.fail(VmError.VMCALL_IN_VMX_ROOT);
  }

  /** INVEPT r, m128: the type register value and the descriptor (128-bit value or memory operand). */
  invept(type: bigint, descriptor: Operand): VmxInstrOutcome {
    this.assertRunning();
    if (!this.facts.invept) return UD;
    const c = this.commonChecks(ExitReason.INVEPT);
    if (c) return c;
    const t = BigInt.asUintN(this.registerBits, type);
    const supported = (t === 1n && this.cpu.eptCap(25)) || (t === 2n && this.cpu.eptCap(26));
    if (!supported) return this.fail(VmError.INVALID_OPERAND_TO_INVEPT_INVVPID);
    const d = this.fetch(descriptor, 16);
    if (!d.ok) return d.fault;
    const eptp = d.value & U64_MASK;
    if (t === 1n) {
      // "VM entry with enable EPT = 1 would fail due to the EPTP value" — the same rule the entry checks use.
      if (!validateEptp(eptp, eptCapabilities(this.cpu)).ok) return this.fail(VmError.INVALID_OPERAND_TO_INVEPT_INVVPID);
      return this.succeed(undefined, { kind: 'ept-single-context', eptp });
    }
    return this.succeed(undefined, { kind: 'ept-all-context' });
  }

  /** INVVPID r, m128: descriptor bits 15:0 VPID, 63:16 reserved, 127:64 linear address. */
  invvpid(type: bigint, descriptor: Operand): VmxInstrOutcome {
    this.assertRunning();
    if (!this.facts.invvpid) return UD;
    const c = this.commonChecks(ExitReason.INVVPID);
    if (c) return c;
    const t = BigInt.asUintN(this.registerBits, type);
    if (t > 3n || !this.cpu.eptCap(40 + Number(t))) return this.fail(VmError.INVALID_OPERAND_TO_INVEPT_INVVPID);
    const d = this.fetch(descriptor, 16);
    if (!d.ok) return d.fault;
    const bad = () => this.fail(VmError.INVALID_OPERAND_TO_INVEPT_INVVPID);
    if (((d.value >> 16n) & 0xffff_ffff_ffffn) !== 0n) return bad();
    const vpid = Number(d.value & 0xffffn);
    const linearAddress = d.value >> 64n;
    switch (t) {
      case 0n:
        // Canonical with respect to the processor's linear-address width (57 with LA57 support, regardless of
        // CR4.LA57), as for INVLPG.
        if (vpid === 0 || !isCanonical(linearAddress, this.cpu.linearAddressWidth)) return bad();
        return this.succeed(undefined, { kind: 'vpid-individual-address', vpid, linearAddress });
      case 1n:
        if (vpid === 0) return bad();
        return this.succeed(undefined, { kind: 'vpid-single-context', vpid });
      case 2n:
        return this.succeed(undefined, { kind: 'vpid-all-context' });
      default:
        if (vpid === 0) return bad();
        return this.succeed(undefined, { kind: 'vpid-single-context-retaining-globals', vpid });
    }
  }

  // ------------------------------------------------------------------------------------------------------------
  // VM entry.

  vmlaunch(): VmxInstrOutcome {
    return this.vmentry(true);
  }

  vmresume(): VmxInstrOutcome {
    return this.vmentry(false);
  }

  /** SDM 26.1 basic checks, then 26.2-26.4 through the entry checker, guest-state and MSR loading, injection. */
  private vmentry(launch: boolean): VmxInstrOutcome {
    const c = this.commonChecks(launch ? ExitReason.VMLAUNCH : ExitReason.VMRESUME);
    if (c) return c;
    if (this.currentPointer === INVALID_VMCS_POINTER) return this.failInvalid();
    const current = this.activeEntry(this.currentPointer)!;
    // A shadow VMCS cannot be entered: VMfailInvalid although the pointer is valid (SDM 26.1, 24.10).
    if (current.shadow) return this.failInvalid();
    if (this.state.interruptibility & 0x2) return this.failValid(VmError.ENTRY_EVENTS_BLOCKED_BY_MOV_SS);
    if (launch && current.launched) return this.failValid(VmError.VMLAUNCH_NONCLEAR_VMCS);
    if (!launch && !current.launched) return this.failValid(VmError.VMRESUME_NONLAUNCHED_VMCS);

    const vmcs = current.vmcs;
    const apicBase = this.state.msr(Msr.IA32_APIC_BASE);
    const verdict = this.entryChecker(vmcs, {
      cpu: this.cpu,
      hostIa32e: this.state.ia32e,
      readPhys: (addr, size) => readPhys(this.memory, addr, size),
      wrmsrFaults: this.msrRules.wrmsrFaults,
      x2apicEnabled: ((apicBase >> 10n) & 3n) === 3n,
      inSmm: false,
      currentVmptr: this.currentPointer,
    });
    if (verdict.kind === 'vmfail') return this.failValid(verdict.error);
    if (verdict.kind === 'entry-failure' && verdict.exitReason === ExitReason.INVALID_STATE) {
      // Guest-state (and PDPTE / link-pointer) failures: no guest state is kept; host state is loaded over the
      // root state. (Loading order is unspecified, so "nothing loaded" is a valid deterministic choice.)
      return this.entryFailure(ExitReason.INVALID_STATE, verdict.qualification, this.state, verdict.checkId);
    }

    const loaded = loadGuestState(vmcs, this.cpu, this.memory, this.state);
    const failAt = verdict.kind === 'entry-failure' ? Number(verdict.qualification) : undefined;
    const msr = loadMsrList(
      this.memory, vmcs.get(Field.VM_ENTRY_MSR_LOAD_ADDR), vmcs.lo(Field.VM_ENTRY_MSR_LOAD_COUNT), loaded.guest, this.msrRules, failAt,
    );
    if (!msr.ok) {
      // MSRs of the entries before the failing one stay loaded (they carry into the host state).
      const checkId = verdict.kind === 'entry-failure' ? verdict.checkId : undefined;
      return this.entryFailure(ExitReason.MSR_LOAD_FAIL, BigInt(msr.index), loaded.guest, checkId);
    }

    if (launch) current.launched = true;
    this.nonRoot = true;
    this.guest = loaded.guest;
    this.guestPdptes = loaded.pdptes;
    return {
      kind: 'vm-entry',
      instruction: launch ? 'vmlaunch' : 'vmresume',
      guest: loaded.guest,
      pendingMtf: loaded.pendingMtf,
      ...(loaded.injected ? { injected: loaded.injected } : {}),
      ...(loaded.pdptes ? { pdptes: loaded.pdptes } : {}),
      ...(loaded.preemptionTimer !== undefined ? { preemptionTimer: loaded.preemptionTimer } : {}),
    };
  }

  /**
   * VM-entry failure after the basic checks (SDM 26.8): only exit reason and qualification are written, no guest
   * state or MSR store, launch state unchanged; host state and the VM-exit MSR-load list are loaded, NMI blocking
   * is what it was before the entry, and L1 continues at HOST_RIP.
   */
  private entryFailure(basic: number, qualification: bigint, base: CpuState, checkId: string | undefined): VmxInstrOutcome {
    const vmcs = this.currentVmcs!;
    const exitReason = recordEntryFailure(vmcs, basic, qualification);
    const done = this.finishExit(vmcs, base, (this.state.interruptibility & 0x8) !== 0);
    if (done.kind === 'vmx-abort') return done;
    return { kind: 'entry-failure-exit', exitReason, qualification, ...(checkId !== undefined ? { checkId } : {}) };
  }

  // ------------------------------------------------------------------------------------------------------------
  // VM exit.

  /**
   * Perform a VM exit from non-root operation (SDM 27.1-27.7): record exit information, save guest state, store
   * MSRs, load host state, load host MSRs. `guest` is the guest state at the moment the exit commences.
   */
  vmExit(exit: VmExitInfo, guest: CpuState): VmExitOutcome {
    this.assertRunning();
    if (!this.nonRoot) throw new Error('turtles bug: vmExit called outside VMX non-root operation');
    const vmcs = this.currentVmcs!;
    recordExitInformation(vmcs, this.cpu, exit);
    const pdptes = exit.pdptes ?? this.guestPdptes;
    saveGuestState(vmcs, this.cpu, guest, {
      ...(pdptes ? { pdptes } : {}),
      ...(exit.preemptionTimer !== undefined ? { preemptionTimer: exit.preemptionTimer } : {}),
      timerExpired: exit.reason === ExitReason.PREEMPTION_TIMER,
    });
    const store = storeMsrList(
      this.memory, vmcs.get(Field.VM_EXIT_MSR_STORE_ADDR), vmcs.lo(Field.VM_EXIT_MSR_STORE_COUNT), guest, this.msrRules,
    );
    if (!store.ok) return this.abort(VmxAbort.SAVE_GUEST_MSRS);
    // With "virtual NMIs" = 0 the guest's NMI blocking is the processor's and survives the exit; with virtual NMIs
    // the guest bit is virtual-NMI blocking and NMIs are not blocked in non-root operation.
    const virtualNmis = (vmcs.lo(Field.PIN_BASED_VM_EXEC_CONTROL) & Pin.VIRTUAL_NMIS) !== 0;
    return this.finishExit(vmcs, guest, !virtualNmis && (guest.interruptibility & 0x8) !== 0);
  }

  /** Host-state loading and the VM-exit MSR-load list, shared by VM exits and VM-entry failures. */
  private finishExit(vmcs: Vmcs, base: CpuState, nmiBlocked: boolean): VmExitOutcome {
    const h = loadHostState(vmcs, this.cpu, this.memory, base, nmiBlocked);
    if (!h.ok) return this.abort(h.abort);
    const load = loadMsrList(this.memory, vmcs.get(Field.VM_EXIT_MSR_LOAD_ADDR), vmcs.lo(Field.VM_EXIT_MSR_LOAD_COUNT), h.host, this.msrRules);
    if (!load.ok) return this.abort(VmxAbort.LOAD_HOST_MSRS);
    this.state = h.host;
    this.nonRoot = false;
    this.guest = undefined;
    this.guestPdptes = undefined;
    return { kind: 'host', state: h.host };
  }

  /** VMX abort (SDM 27.7): the indicator goes to offset 4 of the current VMCS region; the processor shuts down. */
  private abort(indicator: number): VmxAbortOutcome {
    writePhys(this.memory, this.currentPointer + REGION_ABORT_OFFSET, 4, BigInt(indicator));
    this.abortIndicator = indicator;
    this.nonRoot = false;
    this.guest = undefined;
    return { kind: 'vmx-abort', indicator };
  }
}
