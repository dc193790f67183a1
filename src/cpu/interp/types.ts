// Interfaces between the interpreter and the rest of the machine: guest memory seen through linear
// addresses (an adapter over paging + EPT implements it), guest-visible faults and step outcomes as values.
// Must not: contain behaviour; see interpreter.ts. SDM Vol. 3A 4 (paging faults), Vol. 3C 28 (EPT exits).
import type { NonRootExit } from '../nonroot/types.js';

/** How a linear access is made; `user` selects the U/S checks (CPL 3 data/fetch, never implicit accesses). */
export interface AccessKind {
  readonly type: 'read' | 'write' | 'fetch';
  /** CPL = 3 access (false for supervisor and for implicit supervisor accesses to GDT/LDT/IDT/TSS). */
  readonly user: boolean;
  /** Implicit supervisor access (descriptor tables, TSS, shadow stacks): SMAP never applies. */
  readonly implicit: boolean;
}

/** A fault raised by translating a guest-linear access: a guest exception, or a VM exit (EPT, APIC access). */
export type GuestFault =
  | { readonly kind: 'exception'; readonly vector: number; readonly errorCode?: number; readonly address?: bigint }
  /** `veConvertible`: an EPT violation whose deciding EPT entry has suppress-#VE clear (ept/ve.ts). */
  | { readonly kind: 'exit'; readonly exit: NonRootExit; readonly veConvertible?: boolean };

export type MemRead = { readonly ok: true; readonly value: bigint } | { readonly ok: false; readonly fault: GuestFault };
export type MemWrite = { readonly ok: true } | { readonly ok: false; readonly fault: GuestFault };

/**
 * Bytes fetched for decoding: `bytes` holds as many as could be translated (up to the requested count);
 * when fewer than requested, `fault` is what fetching the next byte raises (undefined if it was only the
 * request limit). `phys` is the physical address of the first byte, the decode-cache key.
 */
export type MemFetch =
  | { readonly ok: true; readonly bytes: Uint8Array; readonly phys: bigint; readonly fault?: GuestFault }
  | { readonly ok: false; readonly fault: GuestFault };

/**
 * Guest memory through linear addresses. Accesses may be unaligned and may cross a page; a crossing write
 * must check both pages before writing either (x86 does not commit half of one access).
 */
export interface GuestMemoryAccess {
  read(linear: bigint, size: number, kind: AccessKind): MemRead;
  write(linear: bigint, size: number, value: bigint, kind: AccessKind): MemWrite;
  fetch(linear: bigint, maxBytes: number, kind: AccessKind): MemFetch;
}

/** An event delivered (or being delivered) through the IDT, in interruption-information terms. */
export interface EventRecord {
  readonly vector: number;
  /** IntrType (0 external, 2 NMI, 3 hardware exception, 4 software interrupt, 5 privileged sw exception, 6 sw exception). */
  readonly type: number;
  readonly errorCode?: number;
}

/** Result of one interpreter step. Guest-visible outcomes only; a thrown exception is a turtles bug. */
export type StepResult =
  /** One instruction (or one REP iteration) retired. */
  | { readonly kind: 'retired' }
  /** An event (exception, interrupt, NMI) was delivered through the guest IDT. */
  | { readonly kind: 'delivered'; readonly event: EventRecord }
  /** A VM exit (VMX non-root operation only). Guest state is as the exit leaves it. */
  | { readonly kind: 'vmexit'; readonly exit: NonRootExit }
  /** The processor is in the HLT (or MWAIT) state and no event woke it; one idle tick elapsed. */
  | { readonly kind: 'halted' }
  /** Triple fault outside VMX non-root operation: the processor entered shutdown. */
  | { readonly kind: 'shutdown' }
  /** The interpreter does not implement this instruction; state is unchanged. Listed in coverage.ts. */
  | { readonly kind: 'unsupported'; readonly mnemonic: string; readonly rip: bigint };
