// Architectural register state of one logical processor (L1 on the reference machine, L2 in the interpreter).
// Registers live in typed arrays; 64-bit values are bigint at this API. Segment access rights use the VMX
// format (SDM 24.4.1: type 3:0, S 4, DPL 6:5, P 7, AVL 12, L 13, D/B 14, G 15, unusable 16).
// Must not: decide VMX policy or touch memory; that is vmx/ and memory.ts.

export const Reg = {
  RAX: 0, RCX: 1, RDX: 2, RBX: 3, RSP: 4, RBP: 5, RSI: 6, RDI: 7,
  R8: 8, R9: 9, R10: 10, R11: 11, R12: 12, R13: 13, R14: 14, R15: 15,
} as const;
export type RegIndex = (typeof Reg)[keyof typeof Reg];
export const REG_NAMES = ['rax', 'rcx', 'rdx', 'rbx', 'rsp', 'rbp', 'rsi', 'rdi', 'r8', 'r9', 'r10', 'r11', 'r12', 'r13', 'r14', 'r15'] as const;

export const Seg = { ES: 0, CS: 1, SS: 2, DS: 3, FS: 4, GS: 5, LDTR: 6, TR: 7 } as const;
export type SegIndex = (typeof Seg)[keyof typeof Seg];
export const SEG_NAMES = ['ES', 'CS', 'SS', 'DS', 'FS', 'GS', 'LDTR', 'TR'] as const;

export const Ar = {
  TYPE_MASK: 0xf, S: 1 << 4, DPL_SHIFT: 5, P: 1 << 7, AVL: 1 << 12, L: 1 << 13, DB: 1 << 14, G: 1 << 15, UNUSABLE: 1 << 16,
} as const;

export const Cr0 = {
  PE: 1n << 0n, MP: 1n << 1n, EM: 1n << 2n, TS: 1n << 3n, ET: 1n << 4n, NE: 1n << 5n,
  WP: 1n << 16n, AM: 1n << 18n, NW: 1n << 29n, CD: 1n << 30n, PG: 1n << 31n,
} as const;

export const Cr4 = {
  VME: 1n << 0n, PVI: 1n << 1n, TSD: 1n << 2n, DE: 1n << 3n, PSE: 1n << 4n, PAE: 1n << 5n, MCE: 1n << 6n,
  PGE: 1n << 7n, PCE: 1n << 8n, OSFXSR: 1n << 9n, OSXMMEXCPT: 1n << 10n, UMIP: 1n << 11n, LA57: 1n << 12n,
  VMXE: 1n << 13n, SMXE: 1n << 14n, FSGSBASE: 1n << 16n, PCIDE: 1n << 17n, OSXSAVE: 1n << 18n, KL: 1n << 19n,
  SMEP: 1n << 20n, SMAP: 1n << 21n, PKE: 1n << 22n, CET: 1n << 23n, PKS: 1n << 24n,
} as const;

export const Efer = { SCE: 1n << 0n, LME: 1n << 8n, LMA: 1n << 10n, NXE: 1n << 11n, SVME: 1n << 12n } as const;

export const Rflags = {
  CF: 1n << 0n, FIXED1: 1n << 1n, PF: 1n << 2n, AF: 1n << 4n, ZF: 1n << 6n, SF: 1n << 7n, TF: 1n << 8n,
  IF: 1n << 9n, DF: 1n << 10n, OF: 1n << 11n, IOPL: 3n << 12n, NT: 1n << 14n, RF: 1n << 16n, VM: 1n << 17n,
  AC: 1n << 18n, VIF: 1n << 19n, VIP: 1n << 20n, ID: 1n << 21n,
} as const;

/** Architectural MSR indices the VMX model reads or writes. */
export const Msr = {
  IA32_TSC: 0x10, IA32_FEATURE_CONTROL: 0x3a, IA32_SYSENTER_CS: 0x174, IA32_SYSENTER_ESP: 0x175, IA32_SYSENTER_EIP: 0x176,
  IA32_DEBUGCTL: 0x1d9, IA32_PAT: 0x277, IA32_PERF_GLOBAL_CTRL: 0x38f, IA32_BNDCFGS: 0xd90, IA32_S_CET: 0x6a2,
  IA32_PL3_SSP: 0x6a7, IA32_INTERRUPT_SSP_TABLE_ADDR: 0x6a8, IA32_RTIT_CTL: 0x570, IA32_LBR_CTL: 0x14ce, IA32_PKRS: 0x6e1,
  IA32_EFER: 0xc0000080, IA32_STAR: 0xc0000081, IA32_LSTAR: 0xc0000082, IA32_FMASK: 0xc0000084,
  IA32_FS_BASE: 0xc0000100, IA32_GS_BASE: 0xc0000101, IA32_KERNEL_GS_BASE: 0xc0000102, IA32_TSC_AUX: 0xc0000103,
  IA32_SMBASE: 0x9e, IA32_SMM_MONITOR_CTL: 0x9b, IA32_BIOS_UPDT_TRIG: 0x79, IA32_BIOS_SIGN_ID: 0x8b, IA32_APIC_BASE: 0x1b,
} as const;

// The 16 GPRs take 128 bytes, above V8's limit for typed arrays kept on the JS heap (64 bytes), so each
// `new BigUint64Array(16)` would allocate and later finalize an external backing store — the dominant cost of a
// state copy. GPR arrays are instead views into small shared chunks (a chunk lives while any of its views does,
// at most GPR_CHUNK_BYTES per live state). The views behave exactly like separately allocated arrays.
const GPR_BYTES = 16 * 8;
const GPR_CHUNK_BYTES = 1024;
let gprChunk = new ArrayBuffer(GPR_CHUNK_BYTES);
let gprChunkUsed = 0;

function newGprArray(): BigUint64Array {
  if (gprChunkUsed + GPR_BYTES > GPR_CHUNK_BYTES) {
    gprChunk = new ArrayBuffer(GPR_CHUNK_BYTES);
    gprChunkUsed = 0;
  }
  const a = new BigUint64Array(gprChunk, gprChunkUsed, 16);
  gprChunkUsed += GPR_BYTES;
  return a;
}

export class CpuState {
  readonly gpr: BigUint64Array;
  rip: bigint;
  rflags: bigint;
  cr0: bigint;
  cr2: bigint;
  cr3: bigint;
  cr4: bigint;
  cr8: bigint;
  readonly dr: BigUint64Array;
  efer: bigint;
  readonly segSel: Uint16Array;
  readonly segBase: BigUint64Array;
  readonly segLimit: Uint32Array;
  readonly segAr: Uint32Array;
  gdtrBase: bigint;
  gdtrLimit: number;
  idtrBase: bigint;
  idtrLimit: number;
  /** MSRs not held in dedicated fields (EFER and the segment bases FS/GS are fields). */
  readonly msrs: Map<number, bigint>;
  /** Interruptibility state in the VMX format (SDM 24.4.2): STI 0, MOV-SS 1, SMI 2, NMI 3. */
  interruptibility: number;
  /** Activity state (SDM 24.4.2): 0 active, 1 HLT, 2 shutdown, 3 wait-for-SIPI. */
  activity: number;
  pendingDebugExceptions: bigint;
  /** Time-stamp counter: an instruction count, never the host clock. */
  tsc: bigint;

  /**
   * The reset state, or a copy of `source` (what clone() returns). Copying here, rather than building the reset
   * state and overwriting it, allocates each array once: VM entries and exits copy a state every time.
   */
  constructor(source?: CpuState) {
    if (source) {
      this.gpr = newGprArray();
      this.gpr.set(source.gpr);
      this.rip = source.rip; this.rflags = source.rflags;
      this.cr0 = source.cr0; this.cr2 = source.cr2; this.cr3 = source.cr3; this.cr4 = source.cr4; this.cr8 = source.cr8;
      this.dr = source.dr.slice();
      this.efer = source.efer;
      this.segSel = source.segSel.slice(); this.segBase = source.segBase.slice();
      this.segLimit = source.segLimit.slice(); this.segAr = source.segAr.slice();
      this.gdtrBase = source.gdtrBase; this.gdtrLimit = source.gdtrLimit; this.idtrBase = source.idtrBase; this.idtrLimit = source.idtrLimit;
      this.msrs = new Map(source.msrs);
      this.interruptibility = source.interruptibility; this.activity = source.activity;
      this.pendingDebugExceptions = source.pendingDebugExceptions; this.tsc = source.tsc;
      return;
    }
    this.gpr = newGprArray();
    this.rip = 0xfff0n; this.rflags = 0x2n;
    this.cr0 = 0x60000010n; this.cr2 = 0n; this.cr3 = 0n; this.cr4 = 0n; this.cr8 = 0n;
    this.dr = new BigUint64Array(8);
    this.efer = 0n;
    this.segSel = new Uint16Array(8); this.segBase = new BigUint64Array(8);
    this.segLimit = new Uint32Array(8); this.segAr = new Uint32Array(8);
    this.gdtrBase = 0n; this.gdtrLimit = 0xffff; this.idtrBase = 0n; this.idtrLimit = 0xffff;
    this.msrs = new Map<number, bigint>();
    this.interruptibility = 0; this.activity = 0;
    this.pendingDebugExceptions = 0n; this.tsc = 0n;
    this.dr[6] = 0xffff0ff0n;
    this.dr[7] = 0x400n;
    for (let s = 0; s < 8; s++) {
      this.segLimit[s] = 0xffff;
      this.segAr[s] = s === Seg.LDTR ? 0x82 : s === Seg.TR ? 0x8b : 0x93;
    }
    this.segSel[Seg.CS] = 0xf000;
    this.segBase[Seg.CS] = 0xffff0000n;
    this.segAr[Seg.CS] = 0x9b;
    this.msrs.set(Msr.IA32_PAT, 0x0007040600070406n);
  }

  get cpl(): number {
    return (this.segAr[Seg.SS]! >> Ar.DPL_SHIFT) & 3;
  }

  /** CR0.PE = 1. */
  get protectedMode(): boolean {
    return (this.cr0 & Cr0.PE) !== 0n;
  }

  get v8086(): boolean {
    return (this.rflags & Rflags.VM) !== 0n;
  }

  /** IA-32e mode active (EFER.LMA). */
  get ia32e(): boolean {
    return (this.efer & Efer.LMA) !== 0n;
  }

  /** 64-bit mode: IA-32e with CS.L = 1. */
  get longMode64(): boolean {
    return this.ia32e && (this.segAr[Seg.CS]! & Ar.L) !== 0;
  }

  /** IA-32e compatibility mode: IA-32e with CS.L = 0. */
  get compatibilityMode(): boolean {
    return this.ia32e && (this.segAr[Seg.CS]! & Ar.L) === 0;
  }

  msr(index: number): bigint {
    if (index === Msr.IA32_EFER) return this.efer;
    if (index === Msr.IA32_FS_BASE) return this.segBase[Seg.FS]!;
    if (index === Msr.IA32_GS_BASE) return this.segBase[Seg.GS]!;
    return this.msrs.get(index) ?? 0n;
  }

  setMsr(index: number, value: bigint): void {
    if (index === Msr.IA32_EFER) this.efer = value;
    else if (index === Msr.IA32_FS_BASE) this.segBase[Seg.FS] = value;
    else if (index === Msr.IA32_GS_BASE) this.segBase[Seg.GS] = value;
    else this.msrs.set(index, value);
  }

  clone(): CpuState {
    return new CpuState(this);
  }
}
