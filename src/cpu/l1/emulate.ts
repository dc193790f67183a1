// The built-in L1's instruction emulation for L2: deterministic results for CPUID, RDMSR/WRMSR, IN/OUT, RDTSC(P),
// RDPMC, RDRAND/RDSEED, MOV to/from CR (with shadows), CLTS, LMSW, MOV DR, VMCALL and L2's VMX instructions, written
// into L2's registers (L1's GPRs, GUEST_RSP/RFLAGS/CRx) before the instruction is skipped.
// Must not: decide policy (builtin.ts) or use anything but L1Machine. SDM Vol. 3C 27.2.1 (qualifications), 27.2.5.
import { ExitReason } from '../generated/exit-reasons.js';
import { Field } from '../generated/vmcs-fields.js';
import { decodeCrAccess, decodeIo, decodeMovDr } from '../exit-info/qualifications.js';
import { decodeRdrandRdseedInfo } from '../exit-info/instruction-info.js';
import type { L1Caps } from './setup.js';
import type { L1Machine } from './machine.js';

/** A 32-bit integer mix (deterministic "device" values). */
function mix32(a: number, b: number): number {
  let h = Math.imul((a ^ 0x9e37_79b9) >>> 0, 0x85eb_ca6b) ^ b;
  h = Math.imul(h ^ (h >>> 13), 0xc2b2_ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

/** What the built-in L1 answers for CPUID(leaf, subleaf). */
export function emulatedCpuid(leaf: number, subleaf: number): readonly [number, number, number, number] {
  return [mix32(leaf, subleaf), mix32(leaf, subleaf + 1), mix32(leaf, subleaf + 2), mix32(leaf, subleaf + 3)];
}

/** What the built-in L1 answers for RDMSR(index) of an MSR L2 has not written. */
export function emulatedMsrValue(index: number): bigint {
  return (BigInt(mix32(index, 0x5a)) << 32n) | BigInt(mix32(index, 0xa5));
}

/** What an emulated IN of `size` bytes from `port` reads. */
export function emulatedPortValue(port: number, size: number): number {
  const v = mix32(port, size);
  return size === 4 ? v : size === 2 ? v & 0xffff : v & 0xff;
}

/** The n-th emulated RDRAND/RDSEED value (64 bits). */
export function emulatedRandom(n: number): bigint {
  return (BigInt(mix32(n, 0x3c)) << 32n) | BigInt(mix32(n, 0xc3));
}

const RESULT_FLAGS = 0x8d5n; // CF PF AF ZF SF OF

/** L2's registers as L1 sees and changes them after an exit (GPRs carry over; RSP and RFLAGS live in the VMCS). */
export interface GuestRegisters {
  readonly m: L1Machine;
  readonly caps: L1Caps;
  gpr(index: number): bigint;
  setGpr(index: number, value: bigint): void;
  vmread(encoding: number): bigint;
  vmwrite(encoding: number, value: bigint): void;
  /** Values L2 wrote with emulated WRMSR. */
  readonly msrs: Map<number, bigint>;
  /** L2's CR8 as the emulation keeps it. */
  cr8: bigint;
  /** A deterministic counter for RDTSC / RDRAND answers. */
  counter: number;
}

export interface ExitFacts {
  readonly basic: number;
  readonly qualification: bigint;
  readonly instructionInfo: number;
}

/** Write `value` into GPR `r` with x86 partial-register rules (32-bit writes zero-extend, 8/16-bit ones merge). */
function setSized(g: GuestRegisters, r: number, size: number, value: bigint): void {
  if (size === 8) g.setGpr(r, value);
  else if (size === 4) g.setGpr(r, value & 0xffff_ffffn);
  else {
    const mask = size === 2 ? 0xffffn : 0xffn;
    g.setGpr(r, (g.gpr(r) & ~mask) | (value & mask));
  }
}

function setEdxEax(g: GuestRegisters, v: bigint): void {
  g.setGpr(0, v & 0xffff_ffffn);
  g.setGpr(2, (v >> 32n) & 0xffff_ffffn);
}

function setRflagsResult(g: GuestRegisters, set: bigint): void {
  const f = g.vmread(Field.GUEST_RFLAGS);
  g.vmwrite(Field.GUEST_RFLAGS, (f & ~RESULT_FLAGS) | set);
}

const VMX_INSTRUCTION_EXITS = new Set<number>([
  ExitReason.VMCLEAR, ExitReason.VMLAUNCH, ExitReason.VMPTRLD, ExitReason.VMPTRST, ExitReason.VMREAD, ExitReason.VMRESUME,
  ExitReason.VMWRITE, ExitReason.VMXOFF, ExitReason.VMXON, ExitReason.INVEPT, ExitReason.INVVPID,
]);

/** Exits caused by executing an instruction whose only emulation is skipping it. */
const SKIP_ONLY = new Set<number>([
  ExitReason.GETSEC, ExitReason.HLT, ExitReason.INVD, ExitReason.INVLPG, ExitReason.MWAIT_INSTRUCTION, ExitReason.MONITOR_INSTRUCTION,
  ExitReason.PAUSE_INSTRUCTION, ExitReason.GDTR_IDTR, ExitReason.LDTR_TR, ExitReason.WBINVD, ExitReason.XSETBV, ExitReason.INVPCID,
  ExitReason.ENCLS, ExitReason.XSAVES, ExitReason.XRSTORS, ExitReason.UMWAIT, ExitReason.TPAUSE, ExitReason.PCONFIG,
  ExitReason.ENCLV, ExitReason.LOADIWKEY, ExitReason.SEAMCALL, ExitReason.TDCALL,
]);

/**
 * Emulate the instruction behind the exit (its effects on L2's registers); the caller then skips it. Returns false
 * when the exit is not an instruction this emulation knows (the caller falls back to its default handling).
 */
export function emulateInstruction(g: GuestRegisters, x: ExitFacts): boolean {
  const b = x.basic;
  switch (b) {
    case ExitReason.CPUID: {
      const r = emulatedCpuid(Number(g.gpr(0) & 0xffff_ffffn), Number(g.gpr(1) & 0xffff_ffffn));
      g.setGpr(0, BigInt(r[0]));
      g.setGpr(3, BigInt(r[1]));
      g.setGpr(1, BigInt(r[2]));
      g.setGpr(2, BigInt(r[3]));
      return true;
    }
    case ExitReason.MSR_READ: {
      const idx = Number(g.gpr(1) & 0xffff_ffffn);
      setEdxEax(g, g.msrs.get(idx) ?? emulatedMsrValue(idx));
      return true;
    }
    case ExitReason.MSR_WRITE:
      g.msrs.set(Number(g.gpr(1) & 0xffff_ffffn), ((g.gpr(2) & 0xffff_ffffn) << 32n) | (g.gpr(0) & 0xffff_ffffn));
      return true;
    case ExitReason.IO_INSTRUCTION: {
      const q = decodeIo(x.qualification).value;
      // String I/O is skipped without moving data (the L1 keeps no device model for it).
      if (q.direction === 'in' && !q.string) setSized(g, 0, q.size, BigInt(emulatedPortValue(q.port, q.size)));
      return true;
    }
    case ExitReason.RDTSC:
    case ExitReason.RDTSCP:
      g.counter++;
      setEdxEax(g, 0x1_0000_0000n + BigInt(g.counter) * 0x100n);
      if (b === ExitReason.RDTSCP) g.setGpr(1, 0n);
      return true;
    case ExitReason.RDPMC:
      setEdxEax(g, 0n);
      return true;
    case ExitReason.RDRAND:
    case ExitReason.RDSEED: {
      const info = decodeRdrandRdseedInfo(x.instructionInfo).value;
      g.counter++;
      const size = info.operandSize === 0 ? 2 : info.operandSize === 1 ? 4 : 8;
      setSized(g, info.register, size, emulatedRandom(g.counter));
      setRflagsResult(g, 1n);
      return true;
    }
    case ExitReason.CR_ACCESS:
      emulateCr(g, x.qualification);
      return true;
    case ExitReason.DR_ACCESS: {
      const q = decodeMovDr(x.qualification).value;
      if (q.direction === 'from-dr') g.setGpr(q.gpr, q.dr === 7 ? g.vmread(Field.GUEST_DR7) : 0n);
      else if (q.dr === 7 && g.gpr(q.gpr) >> 32n === 0n) g.vmwrite(Field.GUEST_DR7, g.gpr(q.gpr) | 0x400n);
      return true;
    }
    case ExitReason.VMCALL:
      g.setGpr(0, 0n);
      return true;
    default:
      if (VMX_INSTRUCTION_EXITS.has(b)) {
        // L2 has no VMX of its own here: its VMX instructions complete with VMfailInvalid.
        setRflagsResult(g, 1n);
        return true;
      }
      return SKIP_ONLY.has(b);
  }
}

/** MOV to/from CR, CLTS, LMSW: real CR and read shadow both take the new value (CR fixed bits kept in the real one). */
function emulateCr(g: GuestRegisters, qualification: bigint): void {
  const q = decodeCrAccess(qualification).value;
  const cr0 = (v: bigint) => (v | (g.caps.cr0Fixed0 & ~0x8000_0001n)) & g.caps.cr0Fixed1;
  switch (q.access) {
    case 'mov-to-cr': {
      const v = g.gpr(q.gpr);
      if (q.cr === 0) {
        g.vmwrite(Field.GUEST_CR0, cr0(v));
        g.vmwrite(Field.CR0_READ_SHADOW, v);
      } else if (q.cr === 4) {
        g.vmwrite(Field.GUEST_CR4, (v | g.caps.cr4Fixed0) & g.caps.cr4Fixed1);
        g.vmwrite(Field.CR4_READ_SHADOW, v);
      } else if (q.cr === 3) {
        g.vmwrite(Field.GUEST_CR3, v);
      } else {
        g.cr8 = v & 0xfn;
      }
      return;
    }
    case 'mov-from-cr':
      if (q.cr === 3) g.setGpr(q.gpr, g.vmread(Field.GUEST_CR3));
      else if (q.cr === 8) g.setGpr(q.gpr, g.cr8);
      else g.setGpr(q.gpr, g.vmread(q.cr === 0 ? Field.CR0_READ_SHADOW : Field.CR4_READ_SHADOW));
      return;
    case 'clts':
      g.vmwrite(Field.GUEST_CR0, g.vmread(Field.GUEST_CR0) & ~8n);
      g.vmwrite(Field.CR0_READ_SHADOW, g.vmread(Field.CR0_READ_SHADOW) & ~8n);
      return;
    case 'lmsw': {
      // LMSW loads CR0[3:0] but cannot clear PE.
      const src = BigInt(q.sourceData & 0xf);
      const apply = (old: bigint) => (old & ~0xen) | (src & 0xfn) | (old & 1n);
      g.vmwrite(Field.GUEST_CR0, cr0(apply(g.vmread(Field.GUEST_CR0))));
      g.vmwrite(Field.CR0_READ_SHADOW, apply(g.vmread(Field.CR0_READ_SHADOW)));
    }
  }
}
