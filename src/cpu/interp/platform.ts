// The deterministic "platform" an L2 program sees when an instruction does not exit: a CPUID leaf table,
// an MSR file, I/O port devices with fixed patterns, and a seeded generator for RDRAND/RDSEED.
// Must not: read the clock, unseeded randomness, the environment or files; all entropy comes from the seed.
// SDM Vol. 2 CPUID/RDMSR/IN/RDRAND pages (semantics); the values themselves are the model's choice.
import { Msr } from '../state.js';

export type CpuidRegs = readonly [eax: number, ebx: number, ecx: number, edx: number];

/** A port device: reads and writes of 1, 2 or 4 bytes at `port`. */
export interface PortDevice {
  read(port: number, size: 1 | 2 | 4): number;
  write(port: number, size: 1 | 2 | 4, value: number): void;
}

/** One I/O write as observed by the platform (the log tests and traces compare). */
export interface PortWrite {
  readonly port: number;
  readonly size: 1 | 2 | 4;
  readonly value: number;
}

/** What the interpreter asks the platform. Everything here must be a pure function of the seed and history. */
export interface Platform {
  cpuid(leaf: number, subleaf: number): CpuidRegs;
  /** Whether an MSR exists (RDMSR/WRMSR of a missing MSR raise #GP(0)). */
  msrExists(index: number): boolean;
  /** Whether a write of `value` is legal (else #GP(0)). Values themselves live in CpuState.msrs. */
  msrWritable(index: number, value: bigint): boolean;
  portIn(port: number, size: 1 | 2 | 4): number;
  portOut(port: number, size: 1 | 2 | 4, value: number): void;
  /** Next RDRAND value (`bits` wide) or undefined to report CF = 0 (no entropy). */
  rdrand(bits: 16 | 32 | 64): bigint | undefined;
  rdseed(bits: 16 | 32 | 64): bigint | undefined;
  /** RDPMC counter value, or undefined if ECX names no counter (#GP(0)). */
  pmc(index: number): bigint | undefined;
}

/** splitmix64: tiny, well-distributed, deterministic; state and output are bigint (64-bit exact). */
export class SeededRng {
  private state: bigint;

  constructor(seed: bigint | number) {
    this.state = BigInt.asUintN(64, BigInt(seed));
  }

  next64(): bigint {
    this.state = BigInt.asUintN(64, this.state + 0x9e3779b97f4a7c15n);
    let z = this.state;
    z = BigInt.asUintN(64, (z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n);
    z = BigInt.asUintN(64, (z ^ (z >> 27n)) * 0x94d049bb133111ebn);
    return z ^ (z >> 31n);
  }
}

/** Returns the same byte pattern for every read: byte i of a read at port p is (p + i) XOR 0xA5 (low 8 bits). */
export class PatternDevice implements PortDevice {
  read(port: number, size: 1 | 2 | 4): number {
    let v = 0;
    for (let i = size - 1; i >= 0; i--) v = (v * 256 + (((port + i) & 0xff) ^ 0xa5)) >>> 0;
    return v >>> 0;
  }

  write(): void {
    // Writes are recorded in the platform's log; the pattern does not change.
  }
}

/** Reads return the last value written to the same port (0 before any write). */
export class LatchDevice implements PortDevice {
  private readonly values = new Map<number, number>();

  read(port: number, size: 1 | 2 | 4): number {
    const v = this.values.get(port) ?? 0;
    return size === 4 ? v >>> 0 : v & (size === 2 ? 0xffff : 0xff);
  }

  write(port: number, _size: 1 | 2 | 4, value: number): void {
    this.values.set(port, value >>> 0);
  }
}

export interface PlatformConfig {
  /** Seed for RDRAND/RDSEED. */
  readonly seed?: bigint | number;
  /** CPUID overrides: key `leaf` or `leaf:subleaf` (hex or decimal as number). */
  readonly cpuid?: ReadonlyMap<string, CpuidRegs>;
  /** Physical-address width reported in CPUID.80000008H:EAX[7:0]. */
  readonly maxPhysAddr?: number;
  /** Extra MSR indices that exist (beyond the architectural set below). */
  readonly extraMsrs?: readonly number[];
  /** Devices by port; ports without a device use the pattern device. */
  readonly devices?: ReadonlyMap<number, PortDevice>;
  /** RDRAND reports failure (CF = 0) every `rdrandFailEvery` calls (0 = never). */
  readonly rdrandFailEvery?: number;
}

/** Architectural MSRs every model exposes to L2 (values live in CpuState; see CpuState.msr()). */
const ARCH_MSRS = new Set<number>([
  Msr.IA32_TSC, Msr.IA32_APIC_BASE, Msr.IA32_SYSENTER_CS, Msr.IA32_SYSENTER_ESP, Msr.IA32_SYSENTER_EIP,
  Msr.IA32_DEBUGCTL, Msr.IA32_PAT, Msr.IA32_EFER, Msr.IA32_STAR, Msr.IA32_LSTAR, Msr.IA32_FMASK,
  Msr.IA32_FS_BASE, Msr.IA32_GS_BASE, Msr.IA32_KERNEL_GS_BASE, Msr.IA32_TSC_AUX, Msr.IA32_BIOS_SIGN_ID,
  0xc0000083 /* IA32_CSTAR */, 0xda0 /* IA32_XSS */, 0x277 /* PAT */, 0xe1 /* IA32_UMWAIT_CONTROL */,
]);

/**
 * CPUID table modelled on a 64-bit Intel part without VMX exposed to L2 (nested VMX in L2 is out of scope).
 * Leaf 1 ECX: SSE3, MONITOR, SSSE3, CX16, SSE4.1/4.2, POPCNT, XSAVE, OSXSAVE mirrors CR4 (filled by the
 * interpreter), RDRAND; EDX: FPU, TSC, MSR, PAE, CX8, APIC, SEP, MTRR, PGE, CMOV, PAT, CLFSH, FXSR, SSE, SSE2.
 */
function defaultCpuid(maxPhysAddr: number): Map<string, CpuidRegs> {
  const t = new Map<string, CpuidRegs>();
  // "GenuineIntel" in EBX, EDX, ECX.
  t.set('0', [0x16, 0x756e6547, 0x6c65746e, 0x49656e69]);
  t.set('1', [0x000806ec, 0x00010800, 0x4098_2209 | (1 << 23), 0x0f8b_fbff]);
  t.set('7:0', [0, (1 << 0) | (1 << 7) | (1 << 9) | (1 << 18), (1 << 5), 0]);
  t.set('d:0', [0x7, 0x340, 0x340, 0]);
  t.set('d:1', [0xb, 0, 0, 0]);
  t.set('80000000', [0x80000008, 0, 0, 0]);
  t.set('80000001', [0, 0, 0x121, (1 << 29) | (1 << 27) | (1 << 20) | (1 << 11)]);
  t.set('80000008', [0x3000 | (maxPhysAddr & 0xff), 0, 0, 0]);
  return t;
}

export class DeterministicPlatform implements Platform {
  readonly portWrites: PortWrite[] = [];
  private readonly rng: SeededRng;
  private readonly table: Map<string, CpuidRegs>;
  private readonly msrSet: Set<number>;
  private readonly devices: ReadonlyMap<number, PortDevice>;
  private readonly pattern = new PatternDevice();
  private readonly failEvery: number;
  private rdrandCalls = 0;

  constructor(config: PlatformConfig = {}) {
    this.rng = new SeededRng(config.seed ?? 0x7475_7274_6c65n);
    this.table = defaultCpuid(config.maxPhysAddr ?? 46);
    for (const [k, v] of config.cpuid ?? []) this.table.set(k, v);
    this.msrSet = new Set([...ARCH_MSRS, ...(config.extraMsrs ?? [])]);
    this.devices = config.devices ?? new Map();
    this.failEvery = config.rdrandFailEvery ?? 0;
  }

  cpuid(leaf: number, subleaf: number): CpuidRegs {
    const l = (leaf >>> 0).toString(16);
    const s = (subleaf >>> 0).toString(16);
    const hit = this.table.get(`${l}:${s}`) ?? this.table.get(l);
    if (hit) return hit;
    // Leaves above the maximum report the highest basic leaf's data (Intel behaviour); others are zero.
    const maxBasic = this.table.get('0')![0];
    if (leaf >>> 0 < 0x8000_0000 && leaf >>> 0 > maxBasic) return this.table.get(maxBasic.toString(16)) ?? [0, 0, 0, 0];
    return [0, 0, 0, 0];
  }

  msrExists(index: number): boolean {
    return this.msrSet.has(index >>> 0);
  }

  msrWritable(index: number, value: bigint): boolean {
    if (!this.msrExists(index)) return false;
    // Canonical checks for the base-address MSRs (SDM WRMSR: #GP for non-canonical values).
    if (index === Msr.IA32_FS_BASE || index === Msr.IA32_GS_BASE || index === Msr.IA32_KERNEL_GS_BASE || index === Msr.IA32_LSTAR || index === 0xc0000083
      || index === Msr.IA32_SYSENTER_EIP || index === Msr.IA32_SYSENTER_ESP) {
      const top = value >> 47n;
      return top === 0n || top === 0x1ffffn;
    }
    if (index === Msr.IA32_TSC_AUX) return value >> 32n === 0n;
    if (index === Msr.IA32_DEBUGCTL) {
      // Reserved IA32_DEBUGCTL bits #GP (SDM 18.4.1, WRMSR): the same bits VM entry rejects in GUEST_IA32_DEBUGCTL
      // (26.3.1.1, src/cpu/vmentry/context.ts debugctlValid); RTM_DEBUG (bit 15) exists only with RTM.
      const rtm = ((this.cpuid(7, 0)[1] >>> 11) & 1) !== 0;
      return (value & ~BigInt(0x7fc3 | (rtm ? 0x8000 : 0))) === 0n;
    }
    if (index === Msr.IA32_BIOS_SIGN_ID) return true;
    return true;
  }

  portIn(port: number, size: 1 | 2 | 4): number {
    return (this.devices.get(port) ?? this.pattern).read(port, size);
  }

  portOut(port: number, size: 1 | 2 | 4, value: number): void {
    this.portWrites.push({ port, size, value: value >>> 0 });
    (this.devices.get(port) ?? this.pattern).write(port, size, value);
  }

  rdrand(bits: 16 | 32 | 64): bigint | undefined {
    this.rdrandCalls++;
    if (this.failEvery > 0 && this.rdrandCalls % this.failEvery === 0) return undefined;
    return BigInt.asUintN(bits, this.rng.next64());
  }

  rdseed(bits: 16 | 32 | 64): bigint | undefined {
    return this.rdrand(bits);
  }

  pmc(index: number): bigint | undefined {
    // Four general-purpose counters and three fixed counters (ECX bit 30), all reading 0: nothing counts.
    const fixed = (index & 0x4000_0000) !== 0;
    const n = index & 0x3fff_ffff;
    if (fixed ? n < 3 : n < 4) return 0n;
    return undefined;
  }
}
