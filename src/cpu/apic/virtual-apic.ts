// The virtual APIC of one VM entry: TPR, PPR, EOI and self-IPI virtualization over the virtual-APIC page, RVI/SVI
// (guest interrupt status), evaluation and delivery bookkeeping of pending virtual interrupts, APIC-access page
// redirection with APIC-write emulation, x2APIC MSR virtualization and posted-interrupt processing.
// Must not: deliver events through the IDT or decide instruction exits (the interpreter does). SDM Vol. 3C ch. 29.
import { Primary, Secondary } from '../generated/controls.js';
import { Field } from '../generated/vmcs-fields.js';
import type { NonRootControls } from '../nonroot/controls.js';
import { tprBelowThresholdExit } from '../nonroot/rules-events.js';
import type { NonRootExit } from '../nonroot/types.js';
import type { VmcsReader } from '../vmcs.js';
import {
  ApicReg, apicAccessExit, apicVirtControls, apicWriteExit, eoiInducedExit, isVirtualizableSelfIpi, readVirtualized,
  writeEmulation, writeVirtualized, x2apicReadOffset, x2apicWriteFaults, x2apicWriteKind, type ApicVirtControls,
} from './apic-access.js';
import { processPostedInterrupts } from './posted.js';

/** Physical memory named by VMCS fields (virtual-APIC page, posted-interrupt descriptor) and the VMCS in force. */
export interface VirtualApicBus {
  /** Dword of physical memory; unreadable memory reads as 0. */
  readPhys32(addr: bigint): number;
  writePhys32(addr: bigint, value: number): void;
  /** Store the guest interrupt status (RVI in bits 7:0, SVI in 15:8) in the VMCS in force (SDM 24.4.2). */
  saveGuestInterruptStatus(value: number): void;
}

/** The VMCS fields APIC virtualization uses beyond NonRootControls, read at VM entry. */
export interface VirtualApicSettings {
  readonly controls: ApicVirtControls;
  readonly interruptWindowExiting: boolean;
  readonly tprThreshold: number;
  readonly virtualApicAddress: bigint;
  readonly apicAccessAddress: bigint;
  /** EOI_EXIT_BITMAP0..3: bit v of the 256-bit bitmap is bit (v & 63) of entry v >> 6. */
  readonly eoiExitBitmap: readonly bigint[];
  readonly guestInterruptStatus: number;
  readonly postedNotificationVector: number;
  readonly postedDescriptorAddress: bigint;
}

const EOI_EXIT_FIELDS = [Field.EOI_EXIT_BITMAP0, Field.EOI_EXIT_BITMAP1, Field.EOI_EXIT_BITMAP2, Field.EOI_EXIT_BITMAP3] as const;

export function readVirtualApicSettings(vmcs: VmcsReader, c: NonRootControls): VirtualApicSettings {
  const f = (e: number) => vmcs.read(e) ?? 0n;
  return {
    controls: apicVirtControls(c),
    interruptWindowExiting: (c.primary & Primary.INTERRUPT_WINDOW_EXITING) !== 0,
    tprThreshold: c.tprThreshold,
    virtualApicAddress: c.virtualApicPage & ~0xfffn,
    apicAccessAddress: f(Field.APIC_ACCESS_ADDR) & ~0xfffn,
    eoiExitBitmap: EOI_EXIT_FIELDS.map(f),
    guestInterruptStatus: Number(f(Field.GUEST_INTR_STATUS) & 0xffffn),
    postedNotificationVector: Number(f(Field.POSTED_INTR_NV) & 0xffn),
    postedDescriptorAddress: f(Field.POSTED_INTR_DESC_ADDR) & ~0x3fn,
  };
}

/** Bit `v` of a 256-bit register spread over 8 dwords at base | ((v & E0H) >> 1) (VISR, VIRR, TMR; SDM 29.1.1). */
export function vectorSlot(base: number, v: number): { readonly offset: number; readonly bit: number } {
  return { offset: base | ((v & 0xe0) >> 1), bit: v & 31 };
}

/** Outcome of a virtualized WRMSR: a #GP, or done (with a trap-like exit to take after the instruction). */
export type X2apicWriteOutcome = { readonly kind: 'gp' } | { readonly kind: 'done'; readonly trap: NonRootExit | null };

export class VirtualApic {
  readonly controls: ApicVirtControls;
  /** Requesting virtual interrupt and servicing virtual interrupt (guest interrupt status). */
  rvi: number;
  svi: number;
  /** Set by the interpreter while it delivers an event through the IDT (APIC-access type 3). */
  eventDelivery = false;
  private recognized = false;
  /** The virtualized write of the current operation, for APIC-write emulation once the operation completes. */
  private pendingWrite: { readonly offset: number; readonly size: number } | null = null;

  constructor(private readonly s: VirtualApicSettings, private readonly bus: VirtualApicBus) {
    this.controls = s.controls;
    this.rvi = s.guestInterruptStatus & 0xff;
    this.svi = (s.guestInterruptStatus >> 8) & 0xff;
  }

  // ---- virtual-APIC page -------------------------------------------------------------------------------------------

  read(offset: number): number {
    return this.bus.readPhys32(this.s.virtualApicAddress + BigInt(offset)) >>> 0;
  }

  write(offset: number, value: number): void {
    this.bus.writePhys32(this.s.virtualApicAddress + BigInt(offset), value >>> 0);
  }

  private setVectorBit(base: number, v: number, on: boolean): void {
    const { offset, bit } = vectorSlot(base, v);
    const w = this.read(offset);
    this.write(offset, on ? w | (1 << bit) : w & ~(1 << bit));
  }

  /** Highest vector set in the 256-bit register at `base`, or undefined when none is. */
  highestVector(base: number): number | undefined {
    for (let i = 7; i >= 0; i--) {
      const w = this.read(base + i * 0x10);
      if (w !== 0) return i * 32 + 31 - Math.clz32(w);
    }
    return undefined;
  }

  private saveStatus(): void {
    this.bus.saveGuestInterruptStatus(((this.svi & 0xff) << 8) | (this.rvi & 0xff));
  }

  // ---- VM entry ----------------------------------------------------------------------------------------------------

  /** With virtual-interrupt delivery, VM entry performs PPR virtualization and evaluates pending virtual interrupts. */
  onVmEntry(): void {
    if (!this.controls.virtualInterruptDelivery) return;
    this.pprVirtualization();
    this.evaluate();
  }

  /**
   * The TPR-threshold VM exit immediately after VM entry (SDM 26.7.7): TPR shadow without virtual-interrupt delivery
   * and TPR_THRESHOLD[3:0] > VTPR[7:4]. The entry checks forbid this unless "virtualize APIC accesses" is 1.
   */
  entryTprExit(): NonRootExit | null {
    if (!this.controls.useTprShadow || this.controls.virtualInterruptDelivery) return null;
    return this.tprBelowThreshold() ? tprBelowThresholdExit() : null;
  }

  // ---- TPR, PPR, EOI, self-IPI virtualization (SDM 29.1) -----------------------------------------------------------

  private tprBelowThreshold(): boolean {
    return (this.s.tprThreshold & 0xf) > ((this.read(ApicReg.TPR) >> 4) & 0xf);
  }

  /** TPR virtualization after a VTPR write: the threshold check, or PPR virtualization and evaluation with VID. */
  tprVirtualization(): NonRootExit | null {
    if (!this.controls.virtualInterruptDelivery) return this.tprBelowThreshold() ? tprBelowThresholdExit() : null;
    this.pprVirtualization();
    this.evaluate();
    return null;
  }

  pprVirtualization(): void {
    const vtpr = this.read(ApicReg.TPR);
    const ppr = ((vtpr >> 4) & 0xf) >= ((this.svi >> 4) & 0xf) ? vtpr & 0xff : this.svi & 0xf0;
    this.write(ApicReg.PPR, ppr);
  }

  /** Evaluation of pending virtual interrupts: recognized iff no interrupt-window exiting and RVI[7:4] > VPPR[7:4]. */
  evaluate(): void {
    this.recognized = !this.s.interruptWindowExiting && ((this.rvi >> 4) & 0xf) > ((this.read(ApicReg.PPR) >> 4) & 0xf);
  }

  eoiVirtualization(): NonRootExit | null {
    const vector = this.svi;
    this.setVectorBit(ApicReg.ISR, vector, false);
    this.svi = this.highestVector(ApicReg.ISR) ?? 0;
    this.saveStatus();
    this.pprVirtualization();
    const bitmap = this.s.eoiExitBitmap[vector >> 6] ?? 0n;
    if ((bitmap >> BigInt(vector & 63)) & 1n) return eoiInducedExit(vector);
    this.evaluate();
    return null;
  }

  selfIpiVirtualization(vector: number): void {
    this.setVectorBit(ApicReg.IRR, vector, true);
    this.rvi = Math.max(this.rvi, vector & 0xff);
    this.saveStatus();
    this.evaluate();
  }

  // ---- virtual-interrupt delivery (SDM 29.2.2) ---------------------------------------------------------------------

  /** A virtual interrupt is recognized (the interpreter delivers it when RFLAGS.IF = 1 and nothing blocks it). */
  get pendingVirtualInterrupt(): boolean {
    return this.controls.virtualInterruptDelivery && this.recognized;
  }

  /** The bookkeeping of delivering the recognized virtual interrupt; returns the vector to deliver through the IDT. */
  beginVirtualInterruptDelivery(): number {
    const vector = this.rvi;
    this.setVectorBit(ApicReg.ISR, vector, true);
    this.svi = vector;
    this.write(ApicReg.PPR, vector & 0xf0);
    this.setVectorBit(ApicReg.IRR, vector, false);
    this.rvi = this.highestVector(ApicReg.IRR) ?? 0;
    this.saveStatus();
    this.recognized = false;
    return vector;
  }

  // ---- posted interrupts (SDM 29.6) ---------------------------------------------------------------------------------

  /** An acknowledged external interrupt with the notification vector is processed, not a VM exit. */
  isPostedNotification(vector: number): boolean {
    return this.controls.processPostedInterrupts && (vector & 0xff) === this.s.postedNotificationVector;
  }

  processPostedInterrupts(): void {
    const highest = processPostedInterrupts(this.bus, this.s.postedDescriptorAddress, (i, bits) => {
      const offset = ApicReg.IRR + i * 0x10;
      this.write(offset, this.read(offset) | bits);
    });
    if (highest !== undefined) {
      this.rvi = Math.max(this.rvi, highest);
      this.saveStatus();
    }
    this.evaluate();
  }

  // ---- memory-mapped accesses (SDM 29.4) ---------------------------------------------------------------------------

  /**
   * A linear access of `size` bytes reached physical address `phys`: the address to use instead (the same, or the
   * virtual-APIC page when virtualized) or the APIC-access exit it causes. Only "virtualize APIC accesses" makes the
   * APIC-access page special; its address is compared after any EPT translation.
   */
  redirect(phys: bigint, size: number, type: 'read' | 'write' | 'fetch'): bigint | NonRootExit {
    if (!this.controls.virtualizeApicAccesses || (phys & ~0xfffn) !== this.s.apicAccessAddress) return phys;
    const offset = Number(phys & 0xfffn);
    if (type === 'fetch') return apicAccessExit(offset, 'fetch');
    const kind = this.eventDelivery ? 'event-delivery' : type;
    const p = this.pendingWrite;
    // A read in an operation that already virtualized a write exits (SDM 29.4.2).
    if (type === 'read') return readVirtualized(this.controls, offset, size) && !p ? this.s.virtualApicAddress + BigInt(offset) : apicAccessExit(offset, kind);
    if (!writeVirtualized(this.controls, offset, size) || (p && (p.offset !== offset || p.size !== size))) return apicAccessExit(offset, kind);
    this.pendingWrite = { offset, size };
    return this.s.virtualApicAddress + BigInt(offset);
  }

  /** A VM exit ended the operation: its APIC-write emulation does not happen (SDM 29.4.3.2). */
  discardPendingWrite(): void {
    this.pendingWrite = null;
  }

  /** APIC-write emulation after an operation that made a virtualized write; a trap-like exit, or null. */
  completeOperation(): NonRootExit | null {
    const w = this.pendingWrite;
    if (!w) return null;
    this.pendingWrite = null;
    const e = writeEmulation(this.controls, w.offset);
    switch (e.kind) {
      case 'tpr':
        this.write(ApicReg.TPR, this.read(ApicReg.TPR) & 0xff);
        return this.tprVirtualization();
      case 'eoi':
        return this.eoiVirtualization();
      case 'self-ipi-check': {
        const icr = this.read(ApicReg.ICR_LO);
        if (!isVirtualizableSelfIpi(icr)) return apicWriteExit(w.offset);
        this.selfIpiVirtualization(icr & 0xff);
        return null;
      }
      case 'clear-icr-hi':
        this.write(ApicReg.ICR_HI, this.read(ApicReg.ICR_HI) & 0xff00_0000);
        return null;
      case 'apic-write-exit':
        return apicWriteExit(w.offset);
    }
  }

  // ---- MSR-based accesses (SDM 29.5) --------------------------------------------------------------------------------

  /** RDMSR of an x2APIC MSR from the virtual-APIC page (EDX:EAX = 8 bytes at the offset), or undefined: not virtualized. */
  rdmsr(msr: number): bigint | undefined {
    const offset = x2apicReadOffset(this.controls, msr);
    if (offset === undefined) return undefined;
    return (BigInt(this.read(offset + 4)) << 32n) | BigInt(this.read(offset));
  }

  /** WRMSR of an x2APIC MSR the controls virtualize, or undefined: not virtualized (the instruction operates normally). */
  wrmsr(msr: number, value: bigint): X2apicWriteOutcome | undefined {
    const kind = x2apicWriteKind(this.controls, msr);
    if (kind === undefined) return undefined;
    if (x2apicWriteFaults(kind, value)) return { kind: 'gp' };
    const offset = kind === 'tpr' ? ApicReg.TPR : kind === 'eoi' ? ApicReg.EOI : ApicReg.SELF_IPI;
    this.write(offset, Number(value & 0xffff_ffffn));
    this.write(offset + 4, Number(value >> 32n));
    if (kind === 'tpr') return { kind: 'done', trap: this.tprVirtualization() };
    if (kind === 'eoi') return { kind: 'done', trap: this.eoiVirtualization() };
    // A self-IPI with a vector below 16 is left to the VMM: APIC-write exit with offset 3F0H (as Bochs' vapic.cc).
    const vector = Number(value & 0xffn);
    if (vector < 16) return { kind: 'done', trap: apicWriteExit(ApicReg.SELF_IPI) };
    this.selfIpiVirtualization(vector);
    return { kind: 'done', trap: null };
  }
}

/**
 * The virtual APIC for a VM entry, or null when neither "use TPR shadow" nor "virtualize APIC accesses" is 1 (then
 * nothing APIC-related is virtualized; with only the latter, every access to the APIC-access page exits).
 */
export function makeVirtualApic(vmcs: VmcsReader, c: NonRootControls, bus: VirtualApicBus): VirtualApic | null {
  if (!(c.primary & Primary.USE_TPR_SHADOW) && !(c.secondary & Secondary.VIRTUALIZE_APIC_ACCESSES)) return null;
  return new VirtualApic(readVirtualApicSettings(vmcs, c), bus);
}
