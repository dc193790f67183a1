// Which accesses to the APIC-access page and which x2APIC MSR accesses are virtualized, as pure tables of page offset,
// access size and the APIC-virtualization controls; the APIC-access exit with its qualification. Must not: touch
// memory or guest state (virtual-apic.ts applies these decisions). SDM Vol. 3C 29.4.2, 29.4.3.1, 29.5 (30.x in newer
// editions), 27.2.1 table 27-6, 27.2.5 (no instruction length for these exits except during software-event delivery).
import { Primary, Secondary } from '../generated/controls.js';
import { ExitReason } from '../generated/exit-reasons.js';
import { ApicAccessType, encodeApicAccess } from '../exit-info/qualifications.js';
import type { NonRootControls } from '../nonroot/controls.js';
import type { NonRootExit } from '../nonroot/types.js';

/** The APIC-virtualization control bits that decide virtualization (decoded once per VM entry). */
export interface ApicVirtControls {
  readonly useTprShadow: boolean;
  readonly virtualizeApicAccesses: boolean;
  readonly virtualizeX2apic: boolean;
  readonly apicRegisterVirtualization: boolean;
  readonly virtualInterruptDelivery: boolean;
  readonly processPostedInterrupts: boolean;
}

const PIN_PROCESS_POSTED_INTERRUPTS = 0x80;

export function apicVirtControls(c: NonRootControls): ApicVirtControls {
  return {
    useTprShadow: (c.primary & Primary.USE_TPR_SHADOW) !== 0,
    virtualizeApicAccesses: (c.secondary & Secondary.VIRTUALIZE_APIC_ACCESSES) !== 0,
    virtualizeX2apic: (c.secondary & Secondary.VIRTUALIZE_X2APIC_MODE) !== 0,
    apicRegisterVirtualization: (c.secondary & Secondary.APIC_REGISTER_VIRTUALIZATION) !== 0,
    virtualInterruptDelivery: (c.secondary & Secondary.VIRTUAL_INTERRUPT_DELIVERY) !== 0,
    processPostedInterrupts: (c.pin & PIN_PROCESS_POSTED_INTERRUPTS) !== 0,
  };
}

/** Virtual-APIC page offsets of the registers virtualization uses (SDM 29.1.1). */
export const ApicReg = {
  ID: 0x020, VERSION: 0x030, TPR: 0x080, PPR: 0x0a0, EOI: 0x0b0, LDR: 0x0d0, DFR: 0x0e0, SVR: 0x0f0,
  ISR: 0x100, TMR: 0x180, IRR: 0x200, ESR: 0x280, ICR_LO: 0x300, ICR_HI: 0x310, LVT_CMCI: 0x2f0,
  LVT_FIRST: 0x320, LVT_LAST: 0x370, TMICT: 0x380, TMCCT: 0x390, TDCR: 0x3e0, SELF_IPI: 0x3f0,
} as const;

/** 16-byte register slots whose low 4 bytes a read may be virtualized from with APIC-register virtualization. */
const READ_SLOTS: ReadonlySet<number> = new Set([
  0x020, 0x030, 0x080, 0x0b0, 0x0d0, 0x0e0, 0x0f0,
  ...range(0x100, 0x170), ...range(0x180, 0x1f0), ...range(0x200, 0x270),
  0x280, 0x300, 0x310, ...range(0x320, 0x370), 0x380, 0x3e0,
]);

/** 16-byte register slots a write may be virtualized to with APIC-register virtualization. */
const WRITE_SLOTS: ReadonlySet<number> = new Set([
  0x020, 0x080, 0x0b0, 0x0d0, 0x0e0, 0x0f0, 0x280, 0x300, 0x310, ...range(0x320, 0x370), 0x380, 0x3e0,
]);

function range(first: number, last: number): number[] {
  const out: number[] = [];
  for (let o = first; o <= last; o += 0x10) out.push(o);
  return out;
}

/** The access lies in the low 4 bytes of one naturally aligned 16-byte region (so never 8 bytes). */
function inLowDword(offset: number, size: number): boolean {
  return size >= 1 && size <= 4 && (offset & 0xf) + size <= 4;
}

/**
 * A linear read of `size` bytes at page `offset` of the APIC-access page is virtualized (returns virtual-APIC page
 * data) rather than causing an APIC-access exit (SDM 29.4.2). Without APIC-register virtualization only a read at
 * page offset 080H (the VTPR) is, as for writes (29.4.3.1); Bochs' vapic.cc reads the SDM the same way.
 */
export function readVirtualized(c: ApicVirtControls, offset: number, size: number): boolean {
  if (!c.useTprShadow || !inLowDword(offset, size)) return false;
  if (!c.apicRegisterVirtualization) return offset === ApicReg.TPR;
  return READ_SLOTS.has(offset & 0xff0);
}

/**
 * A linear write at page `offset` is virtualized (goes to the virtual-APIC page, followed by APIC-write emulation)
 * rather than causing an APIC-access exit (SDM 29.4.3.1). Without APIC-register virtualization the SDM names exact
 * page offsets (080H; with virtual-interrupt delivery also 0B0H and 300H).
 */
export function writeVirtualized(c: ApicVirtControls, offset: number, size: number): boolean {
  if (!c.useTprShadow || !inLowDword(offset, size)) return false;
  if (c.apicRegisterVirtualization) return WRITE_SLOTS.has(offset & 0xff0);
  if (offset === ApicReg.TPR) return true;
  return c.virtualInterruptDelivery && (offset === ApicReg.EOI || offset === ApicReg.ICR_LO);
}

/** What APIC-write emulation does after a virtualized write at `offset` completes (SDM 29.4.3.2). */
export type WriteEmulation =
  | { readonly kind: 'tpr' }
  | { readonly kind: 'eoi' }
  | { readonly kind: 'self-ipi-check' }
  | { readonly kind: 'clear-icr-hi' }
  | { readonly kind: 'apic-write-exit' };

export function writeEmulation(c: ApicVirtControls, offset: number): WriteEmulation {
  switch (offset & 0xff0) {
    case ApicReg.TPR: return { kind: 'tpr' };
    case ApicReg.EOI: return c.virtualInterruptDelivery ? { kind: 'eoi' } : { kind: 'apic-write-exit' };
    case ApicReg.ICR_LO: return c.virtualInterruptDelivery ? { kind: 'self-ipi-check' } : { kind: 'apic-write-exit' };
    case ApicReg.ICR_HI: return { kind: 'clear-icr-hi' };
    default: return { kind: 'apic-write-exit' };
  }
}

/**
 * VICR_LO describes a fixed, edge-triggered self-IPI with a vector ≥ 16: reserved bits 31:20, 17:16, 13 and delivery
 * status (12) clear, shorthand (19:18) = 01b, trigger mode (15) = 0, delivery mode (10:8) = 000b, vector[7:4] ≠ 0.
 */
export function isVirtualizableSelfIpi(icrLo: number): boolean {
  const v = icrLo >>> 0;
  if (v & (0xfff0_0000 | 0x3_0000 | 0x2000 | 0x1000)) return false;
  if (((v >>> 18) & 3) !== 1) return false;
  if (v & 0x8000) return false;
  if ((v >>> 8) & 7) return false;
  return ((v >>> 4) & 0xf) !== 0;
}

/** How the access met the APIC-access page (qualification bits 15:12). */
export type ApicAccessKind = 'read' | 'write' | 'fetch' | 'event-delivery';

/** APIC-access exit (reason 44) for a linear access at page `offset`: qualification only (SDM 27.2.1, table 27-6). */
export function apicAccessExit(offset: number, kind: ApicAccessKind): NonRootExit {
  const type = kind === 'read' ? ApicAccessType.LINEAR_READ : kind === 'write' ? ApicAccessType.LINEAR_WRITE
    : kind === 'fetch' ? ApicAccessType.LINEAR_FETCH : ApicAccessType.LINEAR_EVENT_DELIVERY;
  return { reason: ExitReason.APIC_ACCESS, qualification: encodeApicAccess({ offset: offset & 0xfff, type, asynchronous: false }) };
}

/** APIC-write exit (reason 56): trap-like, qualification = page offset of the write (SDM 29.4.3.3, 27.2.1). */
export function apicWriteExit(offset: number): NonRootExit {
  return { reason: ExitReason.APIC_WRITE, qualification: BigInt(offset & 0xfff) };
}

/** EOI-induced exit (reason 45): trap-like, qualification = the dismissed vector (SDM 29.1.4, 27.2.1). */
export function eoiInducedExit(vector: number): NonRootExit {
  return { reason: ExitReason.EOI_INDUCED, qualification: BigInt(vector & 0xff) };
}

// ---- x2APIC MSRs (SDM 29.5) ----------------------------------------------------------------------------------------

export const X2apicMsr = { FIRST: 0x800, LAST: 0x8ff, TPR: 0x808, EOI: 0x80b, SELF_IPI: 0x83f } as const;

/** MSRs RDMSR reads from the virtual-APIC page with APIC-register virtualization (offset = (ECX & FFH) << 4). */
const X2APIC_READABLE: ReadonlySet<number> = new Set([
  0x802, 0x803, 0x808, 0x80a, 0x80d, 0x80f,
  ...Array.from({ length: 24 }, (_, i) => 0x810 + i), // ISR 810H–817H, TMR 818H–81FH, IRR 820H–827H
  0x828, 0x82f, 0x830, 0x832, 0x833, 0x834, 0x835, 0x836, 0x837, 0x838, 0x83e,
]);

/** Virtual-APIC page offset RDMSR `msr` reads, or undefined when RDMSR is not virtualized (operates normally). */
export function x2apicReadOffset(c: ApicVirtControls, msr: number): number | undefined {
  if (!c.virtualizeX2apic || msr < X2apicMsr.FIRST || msr > X2apicMsr.LAST) return undefined;
  if (!c.apicRegisterVirtualization) return msr === X2apicMsr.TPR ? ApicReg.TPR : undefined;
  return X2APIC_READABLE.has(msr) ? (msr & 0xff) << 4 : undefined;
}

/** The WRMSR virtualizations of SDM 29.5: TPR always, EOI and SELF IPI with virtual-interrupt delivery. */
export type X2apicWrite = 'tpr' | 'eoi' | 'self-ipi';

export function x2apicWriteKind(c: ApicVirtControls, msr: number): X2apicWrite | undefined {
  if (!c.virtualizeX2apic) return undefined;
  if (msr === X2apicMsr.TPR) return 'tpr';
  if (!c.virtualInterruptDelivery) return undefined;
  if (msr === X2apicMsr.EOI) return 'eoi';
  if (msr === X2apicMsr.SELF_IPI) return 'self-ipi';
  return undefined;
}

/** WRMSR value checks that raise #GP(0) before virtualization: EOI needs 0; TPR and SELF IPI need bits 63:8 clear. */
export function x2apicWriteFaults(kind: X2apicWrite, value: bigint): boolean {
  return kind === 'eoi' ? value !== 0n : value >> 8n !== 0n;
}
