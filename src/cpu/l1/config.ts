// The declarative description of the built-in L1 hypervisor (in the spirit of kvm-unit-tests' VMX framework): what
// VMCS it builds for L2 (controls, bitmaps, CR masks, EPT12, MSR lists, injection, the L2 program) and its exit-handling policy
// as data, so a fuzzer can generate both. Plus the L1-physical layout it uses and a validator against a CPU model.
// Must not: perform L1 operations (builtin.ts does). SDM Vol. 3C 24.6–24.8, App. A.3–A.5 (allowed settings).
import type { CpuModel } from '../cpu-model.js';
import type { EptPageSize } from '../ept/types.js';
import type { L2Mode } from '../interp/l2-env.js';

/** L1-physical addresses of the built-in L1's own structures (far above the L2 environment, below 2^32). */
export const L1Layout = {
  VMXON: 0x0100_0000n,
  VMCS: 0x0100_1000n,
  /** The second VMCS for the 'switch-vmcs' action. */
  VMCS_ALT: 0x0100_2000n,
  /** The shadow VMCS named by the link pointer when "VMCS shadowing" is on. */
  SHADOW_VMCS: 0x0100_3000n,
  IO_BITMAP_A: 0x0100_4000n,
  IO_BITMAP_B: 0x0100_5000n,
  MSR_BITMAP: 0x0100_6000n,
  VMREAD_BITMAP: 0x0100_7000n,
  VMWRITE_BITMAP: 0x0100_8000n,
  VIRTUAL_APIC: 0x0100_c000n,
  EPTP_LIST: 0x0100_d000n,
  /** MSR lists (config.msrLists), 64 KiB each: room for 4096 entries, the largest capacity IA32_VMX_MISC[27:25]
   * can report (SDM A.6). */
  MSR_ENTRY_LOAD: 0x0101_0000n,
  MSR_EXIT_STORE: 0x0102_0000n,
  MSR_EXIT_LOAD: 0x0103_0000n,
  /** EPT12 paging structures, allocated upwards from here. */
  EPT_TABLES: 0x0110_0000n,
  EPT_TABLE_PAGES: 256,
  /** With EPT, L2-physical address x of the L2 environment lives at L1-physical L2_BASE + x by default. */
  L2_BASE: 0x0400_0000n,
} as const;

/** L2-physical ranges the L2 environment uses (mapped 4 KiB page by page by default under EPT). */
export const L2_ENV_RANGES: readonly (readonly [start: bigint, end: bigint])[] = [
  [0n, 0x10_0000n],
  [0x20_0000n, 0x21_0000n],
];

export interface L2Spec {
  readonly mode: L2Mode;
  /** Machine code placed at L2Layout.CODE (see src/cpu/interp/l2-env.ts). */
  readonly code: Uint8Array;
  /** Start at CPL 3 (any mode but real). */
  readonly user?: boolean;
  /** Initial GPRs by index (Reg order); the others start at 0, RSP at the environment's stack. */
  readonly gprs?: readonly (readonly [index: number, value: bigint])[];
  /** RFLAGS bits to set besides bit 1 (e.g. IF = 0x200). */
  readonly rflags?: bigint;
  /** Extra L2-physical memory contents (written where EPT12 maps them; unmapped pages are skipped). */
  readonly data?: readonly { readonly gpa: bigint; readonly bytes: Uint8Array }[];
}

/** Requested control words. In 'adjust' mode they are combined with the capability MSRs L1 reads (kvm-unit-tests
 * style: must-be-one bits set, not-allowed bits dropped) after the bits the configuration itself needs are added. */
export interface ControlRequest {
  readonly pin?: number;
  readonly primary?: number;
  readonly secondary?: number;
  readonly exit?: number;
  readonly entry?: number;
}

export interface Ept12Mapping {
  readonly l2: bigint;
  readonly l1: bigint;
  readonly pageSize?: EptPageSize;
  readonly read?: boolean;
  readonly write?: boolean;
  readonly execute?: boolean;
  readonly memType?: number;
}

export interface EptSpec {
  /** Mappings L2Gpa → L1Gpa; they replace the default mapping of the environment pages they cover. */
  readonly mappings?: readonly Ept12Mapping[];
  /** Do not map the L2 environment (only `mappings`). */
  readonly noDefaultMap?: boolean;
  /** EPTP bit 6 (accessed and dirty flags). */
  readonly accessedDirty?: boolean;
  readonly levels?: 4 | 5;
}

export interface EventInjection {
  readonly vector: number;
  /** Interruption type (0 external, 2 NMI, 3 hardware exception, 4 software interrupt, 5 privileged, 6 software exception, 7 other). */
  readonly type: number;
  readonly errorCode?: number;
  /** VM-entry instruction length (software events); for 'inject' actions default: the exit's instruction length. */
  readonly instructionLength?: number;
}

/** A VM-entry MSR-load or VM-exit MSR-load list entry: MSR index, value, and bits 63:32 of the first quadword
 * (reserved, must be 0: a non-zero value is how a test makes the entry invalid; SDM 26.4, 27.6). */
export type MsrListEntry = readonly [index: number, value: bigint, reserved?: number];

/** The three MSR lists (SDM 24.7.2, 24.8.2), each written at its L1Layout page; an empty or absent list leaves its
 * count at 0. Entries are not validated here: an invalid one makes VM entry fail (exit reason 34, qualification =
 * its 1-based index) or, in the exit lists, a VMX abort — the behaviour under test. */
export interface MsrLists {
  readonly entryLoad?: readonly MsrListEntry[];
  /** MSR indexes whose values each VM exit stores (read them back at L1Layout.MSR_EXIT_STORE + 16·i + 8). */
  readonly exitStore?: readonly number[];
  readonly exitLoad?: readonly MsrListEntry[];
}

export type ControlField = 'pin' | 'primary' | 'secondary' | 'exit' | 'entry' | 'exception-bitmap';

/** One step of handling an exit. Actions run in order; 'stop' ends the L1 program (after VMXOFF if configured). */
export type L1Action =
  /** RIP += VM-exit instruction length, and clear blocking by STI / MOV SS. */
  | { readonly kind: 'skip' }
  /** Emulate the exiting instruction with deterministic results (CPUID, RDMSR/WRMSR, IN/OUT, RDTSC(P), RDPMC, RDRAND/
   * RDSEED, MOV CR/DR, CLTS, LMSW, VMCALL, VMX instructions as VMfailInvalid), then skip it. Exits that are not
   * instructions fall back to the default actions. */
  | { readonly kind: 'emulate' }
  | ({ readonly kind: 'inject' } & EventInjection)
  /** Re-inject the event being delivered (IDT-vectoring information), else the exception the exit reports. */
  | { readonly kind: 'reinject' }
  /** Inject the external interrupt the exit acknowledged (or one kept from an earlier exit) if L2 can take it now
   * (RFLAGS.IF = 1, no STI / MOV-SS blocking); otherwise keep it and turn interrupt-window exiting on. With nothing
   * kept, turn interrupt-window exiting off. */
  | { readonly kind: 'deliver-interrupt' }
  | { readonly kind: 'set-control'; readonly field: ControlField; readonly set?: number; readonly clear?: number }
  | { readonly kind: 'vmwrite'; readonly encoding: number; readonly value: bigint }
  /** Map (or remap) one EPT12 page, splitting a large page in the way if needed. */
  | { readonly kind: 'ept-map'; readonly l2: bigint; readonly l1: bigint; readonly pageSize?: EptPageSize; readonly read?: boolean; readonly write?: boolean; readonly execute?: boolean }
  /** Change the rights of the EPT12 leaf mapping `l2` (no-op when unmapped). */
  | { readonly kind: 'ept-protect'; readonly l2: bigint; readonly read: boolean; readonly write: boolean; readonly execute: boolean }
  | { readonly kind: 'ept-unmap'; readonly l2: bigint }
  /** Give the EPT12 leaf mapping the exit's guest-physical address every right; with no leaf, map its 4-KiB page
   * with all rights at its default L1 page (L1Layout.L2_BASE + GPA). */
  | { readonly kind: 'ept-fix' }
  | { readonly kind: 'invept'; readonly type: 1 | 2 }
  | { readonly kind: 'invvpid'; readonly type: 0 | 1 | 2 | 3; readonly linear?: bigint }
  /** VMCLEAR the current VMCS and VMPTRLD the other one (VMLAUNCH next if its launch state is clear). */
  | { readonly kind: 'switch-vmcs' }
  | { readonly kind: 'stop' };

export interface L1PolicyRule {
  /** Basic exit reason (entry failures: 33/34 with bit 31 stripped), or 'any'. */
  readonly reason: number | 'any';
  readonly actions: readonly L1Action[];
  /** Applies from the n-th exit to L1 on (1-based), for `count` exits (default: always). */
  readonly from?: number;
  readonly count?: number;
}

/** Rules are tried in order; the first matching one decides; no match → the default actions for the reason. */
export interface L1Policy {
  readonly rules: readonly L1PolicyRule[];
}

export interface L1Config {
  readonly l2: L2Spec;
  readonly controls?: ControlRequest;
  /** 'adjust' (default): fit controls to the capability MSRs; 'exact': write them as given (VMfailValid(7) material). */
  readonly controlsMode?: 'adjust' | 'exact';
  readonly exceptionBitmap?: number;
  readonly pfecMask?: number;
  readonly pfecMatch?: number;
  readonly cr0Mask?: bigint;
  readonly cr0Shadow?: bigint;
  readonly cr4Mask?: bigint;
  readonly cr4Shadow?: bigint;
  /** CR3-target values (CR3_TARGET_COUNT = their number). */
  readonly cr3Targets?: readonly bigint[];
  /** Ports whose I/O-bitmap bit is set (turns on "use I/O bitmaps" in adjust mode). */
  readonly ioBitmap?: readonly number[];
  /** MSRs whose read / write bitmap bit is set (turns on "use MSR bitmaps" in adjust mode). */
  readonly msrBitmap?: { readonly read?: readonly number[]; readonly write?: readonly number[] };
  /** EPT12 (turns on "enable EPT"; implied by real and protected32 L2 modes, which need unrestricted guest; paged32
   * and pae32 run with or without it, and with it their PDPTEs go into GUEST_PDPTRn). */
  readonly ept?: EptSpec;
  /** VPID (turns on "enable VPID"). */
  readonly vpid?: number;
  readonly tscOffset?: bigint;
  readonly tscMultiplier?: bigint;
  /** VMX-preemption timer value (turns on the timer). */
  readonly preemptionTimer?: number;
  /** Event injected by the first VM entry. */
  readonly injection?: EventInjection;
  readonly xssExitBitmap?: bigint;
  readonly enclsExitingBitmap?: bigint;
  /** With "VMCS shadowing": encodings whose VMREAD/VMWRITE-bitmap bits are clear (L2's accesses reach the shadow
   * VMCS at L1Layout.SHADOW_VMCS); every other bit is set. */
  readonly shadowFields?: readonly number[];
  /** VM-function controls (with "enable VM functions"); EPTP list entry 0 is the EPTP in use. */
  readonly vmfuncControls?: bigint;
  readonly tprThreshold?: number;
  /** WRMSRs L1 performs before the first VM entry (L2 inherits MSRs the VMCS does not switch, e.g. IA32_XSS). */
  readonly l1Msrs?: readonly (readonly [index: number, value: bigint])[];
  /** VM-entry MSR-load, VM-exit MSR-store and VM-exit MSR-load lists. */
  readonly msrLists?: MsrLists;
  /** L1-physical memory contents written before the VMCS is built (custom tables; after msrLists, so they can
   * overwrite list entries). */
  readonly l1Data?: readonly { readonly gpa: bigint; readonly bytes: Uint8Array }[];
  /** Raw VMWRITEs applied after the whole VMCS is written (a fuzzer's perturbations). */
  readonly vmcsWrites?: readonly (readonly [encoding: number, value: bigint])[];
  readonly policy?: L1Policy;
  /** Stop after this many exits to L1 (default 64). */
  readonly maxExits?: number;
  /** VMXOFF when the program ends (default true). */
  readonly vmxoffAtEnd?: boolean;
}

export type ControlGroup = 'pin' | 'primary' | 'secondary' | 'exit' | 'entry';

export interface ControlProblem {
  readonly group: ControlGroup;
  /** 'must-be-one': allowed-0 bits left clear; 'not-allowed': bits set that the model does not allow to be 1. */
  readonly kind: 'must-be-one' | 'not-allowed';
  readonly bits: number;
}

/**
 * The requested controls checked against `cpu`'s allowed settings (SDM A.3–A.5, using the TRUE_ MSRs when
 * IA32_VMX_BASIC[55] = 1). In 'adjust' mode the built-in L1 repairs exactly these; in 'exact' mode any of them makes
 * VM entry fail with VMfailValid(7).
 */
export function validateL1Config(config: L1Config, cpu: CpuModel): ControlProblem[] {
  const out: ControlProblem[] = [];
  const c = config.controls ?? {};
  const groups: readonly ControlGroup[] = ['pin', 'primary', 'secondary', 'exit', 'entry'];
  for (const g of groups) {
    // Secondary controls are treated as 0 (and not checked) unless the primary controls activate them (SDM 24.6.2).
    if (g === 'secondary' && ((c.primary ?? 0) & 0x8000_0000) === 0) continue;
    const v = (c[g] ?? 0) >>> 0;
    const a = cpu.allowed(g);
    const must = Number(a.mustBeOne & 0xffff_ffffn) >>> 0;
    const may = Number(a.mayBeOne & 0xffff_ffffn) >>> 0;
    const missing = (must & ~v) >>> 0;
    const extra = (v & ~may) >>> 0;
    if (missing !== 0) out.push({ group: g, kind: 'must-be-one', bits: missing });
    if (extra !== 0) out.push({ group: g, kind: 'not-allowed', bits: extra });
  }
  return out;
}
