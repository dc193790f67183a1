// Result and error types shared by the VMCS-state importers (KVM dump_vmcs, Xen vmcs_dump_vcpu, QEMU's
// "KVM: entry failed" register dump, turtles' JSON VMCS format).
// Must not: parse anything; it only names what the parsers return.
import type { PartialVmcs } from '../../../cpu/vmcs.js';

export type VmcsDumpFormat = 'kvm-dump-vmcs' | 'xen-vmcs-dump' | 'turtles-json' | 'qemu-entry-failed' | 'unknown';

/** A line (or JSON member) the importer saw but could not map to VMCS state, with the reason. */
export interface UnmappedLine {
  readonly line: number;
  readonly text: string;
  readonly reason: string;
}

/** QEMU's KVM_GET_SREGS/KVM_GET_REGS view printed after "KVM: entry failed" (trace-formats.md §8). Not the VMCS. */
export interface QemuSegment {
  readonly selector: bigint;
  readonly base: bigint;
  readonly limit: bigint;
  /** Descriptor bits 31:8 as QEMU prints them: (VMX access rights) << 8 for present segments. */
  readonly flags: bigint;
  /** The decoded tail of 64-bit dumps, e.g. `DPL=0 DS   [-WA]`. */
  readonly decoded?: string;
}

export interface QemuRegisterDump {
  readonly line: number;
  hardwareError?: bigint;
  /** General registers by QEMU's name (EAX/RAX …, R8 …, EIP/RIP, EFL). */
  readonly regs: Record<string, bigint>;
  /** CPL, II, A20, SMM, HLT. */
  readonly state: Record<string, bigint>;
  readonly segments: Record<string, QemuSegment>;
  /** GDT and IDT: base and limit. */
  readonly tables: Record<string, { base: bigint; limit: bigint }>;
  /** CR0, CR2, CR3, CR4, DR0-DR7, EFER. */
  readonly control: Record<string, bigint>;
  /** The RFLAGS decode in brackets, e.g. `[-------]`. */
  flagsText?: string;
  /** Code bytes with the byte at RIP in angle brackets. */
  code?: string;
  /** QEMU's hint text for hardware error 0x80000021. */
  readonly hint: string[];
}

export interface MsrListEntry {
  readonly index: number;
  readonly msr: bigint;
  readonly value: bigint;
}

/** Facts a dump states that are not VMCS fields. Nothing here is written into the PartialVmcs. */
export interface DumpDerived {
  /** Layout variants recognised, e.g. `kvm:efer<=5.11`, `kvm:controls>=5.18`, `xen:efer(vmcs)`. */
  readonly layout: string[];
  /** An EFER value that is NOT the GUEST_IA32_EFER field: KVM's "(effective)"/"(autoload)", Xen's "EFER(MSR LL)". */
  efer?: { value: bigint; source: 'effective' | 'autoload' | 'msr-load-list'; line: number };
  /** Xen prints its cached copy of RSP/RIP/RFLAGS next to the VMCS value. */
  readonly xenCached: Record<string, bigint>;
  hostRipSymbol?: string;
  /** KVM's software copies of the MSR lists (`MSR guest autoload:` …), keyed by the list name. */
  readonly msrLists: Record<string, MsrListEntry[]>;
  vmcsPointer?: string;
  lastEntryCpu?: number;
  veInfo?: bigint[];
  /** The exit the dump reports (also stored as VM_EXIT_REASON): basic reason and the failed-entry bit 31. */
  exit?: { reason: bigint; basic: number; failedEntry: boolean; line: number };
  xen?: { domain?: number; vcpu?: number; banner?: string };
  qemu?: QemuRegisterDump;
  readonly notes: string[];
}

export interface ParsedVmcsDump {
  readonly format: VmcsDumpFormat;
  readonly vmcs: PartialVmcs;
  /** Line in the input where each field's value was read (JSON: the member's line). */
  readonly fieldLines: Map<number, number>;
  readonly derived: DumpDerived;
  /** Physical lines in the input. */
  readonly lines: number;
  readonly unmapped: UnmappedLine[];
  /** JSON format only: CPU preset and host mode the file names, and guest memory for checks that read it. */
  readonly cpu?: string;
  readonly hostIa32e?: boolean;
  readonly memory?: ReadonlyMap<bigint, bigint>;
}

/** Bad input: the file and line, and what was expected there. The CLI turns it into a one-line error (exit 2). */
export interface VmcsDumpError {
  readonly kind: 'vmcs-dump';
  readonly file: string;
  readonly line: number;
  readonly expected: string;
}

export type ParseResult = { ok: true; value: ParsedVmcsDump } | { ok: false; error: VmcsDumpError };

export function dumpError(file: string, line: number, expected: string): { ok: false; error: VmcsDumpError } {
  return { ok: false, error: { kind: 'vmcs-dump', file, line, expected } };
}

export function emptyDerived(): DumpDerived {
  return { layout: [], xenCached: {}, msrLists: {}, notes: [] };
}
