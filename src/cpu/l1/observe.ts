// How a machine turns its state into the oracle's observations (O2–O5), shared by the reference and the nested
// machine so both derive them the same way: exit information and guest-state fields read from the VMCS L1 sees,
// canonical L1/L2 state details, and the L1-memory digest with VMX-region masking. Must not: run anything or decide
// when to observe (each machine's doc comment says when). DESIGN.md §3, reference §9.1 (what is / is not observable).
import type { L1Gpa } from '../address.js';
import type { CpuModel } from '../cpu-model.js';
import { VMCS_FIELDS } from '../generated/vmcs-fields.js';
import { Field } from '../generated/vmcs-fields.js';
import type { PhysicalMemory } from '../memory.js';
import { Msr, REG_NAMES, SEG_NAMES, type CpuState } from '../state.js';
import type { ExitInformation, Observation, ObservationSink } from './observation.js';

/** Collects observations in order (tests, determinism checks, the recorder). */
export class ObservationLog implements ObservationSink {
  readonly items: Observation[] = [];

  observe(o: Observation): void {
    this.items.push(o);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// O2: exit information and guest state as L1 would VMREAD them.

/** Every exit-information field of an exit to L1, read through `read` (a VMCS field reader). */
export function readExitInformation(read: (encoding: number) => bigint): ExitInformation {
  const n = (e: number) => Number(read(e) & 0xffff_ffffn) >>> 0;
  return {
    exitReason: n(Field.VM_EXIT_REASON),
    qualification: read(Field.EXIT_QUALIFICATION),
    guestLinearAddress: read(Field.GUEST_LINEAR_ADDRESS),
    guestPhysicalAddress: read(Field.GUEST_PHYSICAL_ADDRESS),
    interruptionInfo: n(Field.VM_EXIT_INTR_INFO),
    interruptionErrorCode: n(Field.VM_EXIT_INTR_ERROR_CODE),
    idtVectoringInfo: n(Field.IDT_VECTORING_INFO_FIELD),
    idtVectoringErrorCode: n(Field.IDT_VECTORING_ERROR_CODE),
    instructionLength: n(Field.VM_EXIT_INSTRUCTION_LEN),
    instructionInfo: n(Field.VMX_INSTRUCTION_INFO),
  };
}

const guestFieldCache = new WeakMap<CpuModel, readonly number[]>();

/**
 * The guest-state fields O2 reports: every full (not _HIGH) guest-state encoding the CPU model lets VMREAD access,
 * ascending. Both machines use the capability model L1 sees, so the sets agree.
 */
export function guestStateFields(cpu: CpuModel): readonly number[] {
  let f = guestFieldCache.get(cpu);
  if (!f) {
    f = VMCS_FIELDS.filter((d) => d.type === 'guest state' && d.access === 'full' && cpu.fieldSupported(d.encoding))
      .map((d) => d.encoding)
      .sort((a, b) => a - b);
    guestFieldCache.set(cpu, f);
  }
  return f;
}

/** Guest-state fields (encoding → value) as L1 would VMREAD them from the VMCS read by `read`. */
export function readGuestState(cpu: CpuModel, read: (encoding: number) => bigint): Map<number, bigint> {
  const m = new Map<number, bigint>();
  for (const e of guestStateFields(cpu)) m.set(e, read(e));
  return m;
}

// ---------------------------------------------------------------------------------------------------------------
// O3 / O4: canonical register-state details.

const hex = (v: bigint | number): string => (typeof v === 'number' ? v >>> 0 : v).toString(16);

/** MSRs O3 reports (besides EFER and the FS/GS bases, which are in the segment part). */
const L1_MSRS: readonly [string, number][] = [
  ['msr.sysenter_cs', Msr.IA32_SYSENTER_CS], ['msr.sysenter_esp', Msr.IA32_SYSENTER_ESP], ['msr.sysenter_eip', Msr.IA32_SYSENTER_EIP],
  ['msr.debugctl', Msr.IA32_DEBUGCTL], ['msr.pat', Msr.IA32_PAT], ['msr.perf_global_ctrl', Msr.IA32_PERF_GLOBAL_CTRL],
  ['msr.bndcfgs', Msr.IA32_BNDCFGS], ['msr.kernel_gs_base', Msr.IA32_KERNEL_GS_BASE], ['msr.star', Msr.IA32_STAR],
  ['msr.lstar', Msr.IA32_LSTAR], ['msr.fmask', Msr.IA32_FMASK], ['msr.tsc_aux', Msr.IA32_TSC_AUX],
];

function putRegisters(m: Map<string, bigint>, s: CpuState): void {
  for (let i = 0; i < 16; i++) m.set(REG_NAMES[i]!, s.gpr[i]!);
  m.set('rip', s.rip);
  m.set('rflags', s.rflags);
}

const SEG_KEYS = SEG_NAMES.map((n) => [`${n}.sel`, `${n}.base`, `${n}.limit`, `${n}.ar`] as const);

function putSegments(m: Map<string, bigint>, s: CpuState): void {
  for (let i = 0; i < 8; i++) {
    const k = SEG_KEYS[i]!;
    m.set(k[0], BigInt(s.segSel[i]!));
    m.set(k[1], s.segBase[i]!);
    m.set(k[2], BigInt(s.segLimit[i]!));
    m.set(k[3], BigInt(s.segAr[i]!));
  }
  m.set('gdtr.base', s.gdtrBase);
  m.set('gdtr.limit', BigInt(s.gdtrLimit));
  m.set('idtr.base', s.idtrBase);
  m.set('idtr.limit', BigInt(s.idtrLimit));
}

/**
 * O3 detail of L1's state: GPRs, RIP, RFLAGS, CR0/2/3/4/8, DR7, EFER, segments and descriptor tables, the MSRs in
 * L1_MSRS, interruptibility and activity. The TSC is left out: time is not observable (reference §9.1).
 */
export function l1StateDetail(s: CpuState): Map<string, bigint> {
  const m = new Map<string, bigint>();
  putRegisters(m, s);
  m.set('cr0', s.cr0);
  m.set('cr2', s.cr2);
  m.set('cr3', s.cr3);
  m.set('cr4', s.cr4);
  m.set('cr8', s.cr8);
  m.set('dr7', s.dr[7]!);
  m.set('efer', s.efer);
  putSegments(m, s);
  for (const [k, idx] of L1_MSRS) m.set(k, s.msr(idx));
  m.set('interruptibility', BigInt(s.interruptibility));
  m.set('activity', BigInt(s.activity));
  return m;
}

/** The canonical text form of a detail map ("key=hex" lines in insertion order), O3's digest. */
export function detailDigest(detail: ReadonlyMap<string, bigint>): string {
  let out = '';
  for (const [k, v] of detail) out += k + '=' + v.toString(16) + '\n';
  return out;
}

/** The O3 observation for L1 state `s`; its digest text is built on first read (most consumers compare `detail`). */
export function l1StateObservation(step: number, s: CpuState): Observation {
  const detail = l1StateDetail(s);
  let digest: string | undefined;
  return {
    kind: 'l1-state', step, detail,
    get digest(): string {
      digest ??= detailDigest(detail);
      return digest;
    },
  };
}

/** The CR0/CR4 guest/host masks and read shadows in force while L2 runs (what L2 reads from CR0/CR4). */
export interface CrView {
  readonly cr0Mask: bigint;
  readonly cr0Shadow: bigint;
  readonly cr4Mask: bigint;
  readonly cr4Shadow: bigint;
}

/**
 * O4 detail of L2's state as L2 can observe it: GPRs, RIP, RFLAGS, CR0 and CR4 as MOV from CR reads them (owned bits
 * from the read shadow), CR2, CR3, EFER, DR7, segments and descriptor tables, interruptibility and activity. The
 * real CR0/CR4 bits L2 cannot see are left out, so an L0 that forces host-owned bits stays equivalent.
 */
export function l2StateDetail(s: CpuState, view: CrView): Map<string, bigint> {
  const m = new Map<string, bigint>();
  putRegisters(m, s);
  m.set('cr0', (s.cr0 & ~view.cr0Mask) | (view.cr0Shadow & view.cr0Mask));
  m.set('cr2', s.cr2);
  m.set('cr3', s.cr3);
  m.set('cr4', (s.cr4 & ~view.cr4Mask) | (view.cr4Shadow & view.cr4Mask));
  m.set('dr7', s.dr[7]!);
  m.set('efer', s.efer);
  putSegments(m, s);
  m.set('interruptibility', BigInt(s.interruptibility));
  m.set('activity', BigInt(s.activity));
  return m;
}

/** "vector/type[/error code]" in hex, the form O4 lists delivered events in. */
export function eventText(e: { readonly vector: number; readonly type: number; readonly errorCode?: number }): string {
  return e.errorCode === undefined ? `${hex(e.vector)}/${e.type}` : `${hex(e.vector)}/${e.type}/${hex(e.errorCode)}`;
}

// ---------------------------------------------------------------------------------------------------------------
// O5: L1-physical memory digest.

const PAGE = 4096;
/** Bytes of a VMX region (VMXON region, VMCS) that software may rely on: revision dword and abort indicator. */
const VMX_REGION_VISIBLE = 8;

/** FNV-1a 64 over `bytes[from, to)` continuing from `h` (hi/lo 32-bit halves; no bigint in the loop). */
function fnv(bytes: Uint8Array, from: number, to: number, hi0: number, lo0: number): [number, number] {
  let hi = hi0;
  let lo = lo0;
  for (let i = from; i < to; i++) {
    lo = (lo ^ bytes[i]!) >>> 0;
    // (hi·2^32 + lo) · (2^40 + 0x1b3) mod 2^64.
    const t = lo * 0x1b3;
    const tl = t >>> 0;
    const carry = Math.floor(t / 0x1_0000_0000);
    hi = (Math.imul(hi, 0x1b3) + ((lo << 8) >>> 0) + carry) >>> 0;
    lo = tl;
  }
  return [hi, lo];
}

const FNV_HI = 0xcbf29ce4;
const FNV_LO = 0x84222325;

/** FNV-1a 64 of a byte array. */
export function fnv1a64(bytes: Uint8Array): bigint {
  const [hi, lo] = fnv(bytes, 0, bytes.length, FNV_HI, FNV_LO);
  return (BigInt(hi) << 32n) | BigInt(lo);
}

/**
 * Tracks L1-physical memory for O5. The digest is the sum (mod 2^64) over every page that is not all zero of
 * FNV-1a-64(page number as 8 little-endian bytes ‖ page hash), where the page hash is FNV-1a-64 of the page's
 * 4096 bytes; summing makes the digest independent of page order and updatable from the dirty pages alone.
 *
 * VMX regions are masked: a page that L1 successfully named as a VMXON region or VMCS (VMXON, VMCLEAR, VMPTRLD)
 * contributes only its first 8 bytes (revision identifier and VMX-abort indicator), the rest hashing as zeros,
 * from then on for the rest of the run. The SDM leaves the rest of a region's layout implementation-specific
 * (24.2, 24.11.1), so the reference's image and a nested L0's vmcs12 image may differ without L1 noticing.
 */
export class L1MemoryDigest {
  private readonly hashes = new Map<number, bigint>();
  private readonly dirty = new Set<number>();
  private readonly regions = new Set<number>();
  private sum = 0n;

  constructor(private readonly memory: Pick<PhysicalMemory<L1Gpa>, 'pageNumbers' | 'onWrite' | 'read'>) {
    for (const p of memory.pageNumbers()) this.dirty.add(Number(p));
    memory.onWrite((address, length) => {
      const first = Number((address as bigint) >> 12n);
      const last = Number(((address as bigint) + BigInt(length - 1)) >> 12n);
      for (let p = first; p <= last; p++) this.dirty.add(p);
    });
  }

  /** Mask the page holding a VMX region from now on (only its first 8 bytes are observable). */
  markVmxRegion(address: bigint): void {
    const p = Number(address >> 12n);
    if (!this.regions.has(p)) {
      this.regions.add(p);
      this.dirty.add(p);
    }
  }

  /** The hash of one page as the digest sees it, or undefined when it is all zero (absent). */
  pageHash(page: number): bigint | undefined {
    const bytes = this.memory.read((BigInt(page) << 12n) as L1Gpa, PAGE);
    const end = this.regions.has(page) ? VMX_REGION_VISIBLE : PAGE;
    let zero = true;
    for (let i = 0; i < end; i++) {
      if (bytes[i] !== 0) {
        zero = false;
        break;
      }
    }
    if (zero) return undefined;
    let [hi, lo] = fnv(bytes, 0, end, FNV_HI, FNV_LO);
    if (end < PAGE) [hi, lo] = fnv(ZERO_PAGE, end, PAGE, hi, lo);
    return (BigInt(hi) << 32n) | BigInt(lo);
  }

  /** Bring the digest up to date and return the O5 observation for `step`. */
  observe(step: number): Observation {
    const changed = new Map<bigint, bigint>();
    const pages = [...this.dirty].sort((a, b) => a - b);
    this.dirty.clear();
    for (const p of pages) {
      const before = this.hashes.get(p);
      const after = this.pageHash(p);
      if (before === after) continue;
      if (before !== undefined) this.sum = BigInt.asUintN(64, this.sum - mix(p, before));
      if (after !== undefined) {
        this.sum = BigInt.asUintN(64, this.sum + mix(p, after));
        this.hashes.set(p, after);
      } else {
        this.hashes.delete(p);
      }
      changed.set(BigInt(p), after ?? fnv1a64(ZERO_PAGE));
    }
    return { kind: 'l1-memory', step, digest: this.sum, changedPages: changed };
  }

  get digest(): bigint {
    return this.sum;
  }
}

const ZERO_PAGE = new Uint8Array(PAGE);
const MIX_BUF = new Uint8Array(16);
const MIX_VIEW = new DataView(MIX_BUF.buffer);

function mix(page: number, hash: bigint): bigint {
  MIX_VIEW.setBigUint64(0, BigInt(page), true);
  MIX_VIEW.setBigUint64(8, hash, true);
  return fnv1a64(MIX_BUF);
}
