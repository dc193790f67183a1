// I/O-instruction and MSR-access rules: unconditional I/O exiting vs I/O bitmaps (every byte of the access,
// wrap past FFFFh exits), MSR bitmaps (low/high ranges; outside both ranges always exits).
// Must not: perform the TSS I/O-permission check (it needs guest memory; the interpreter does it first, and
// its #GP has priority over the exit, SDM 25.1.1). SDM Vol. 3C 25.1.3, 24.6.4, 24.6.9, 27.2.1 table 27-5;
// reference §4.3.3, §6.3.2, §6.3.3.
import { Primary } from '../generated/controls.js';
import { ExitReason } from '../generated/exit-reasons.js';
import { encodeIo } from '../exit-info/qualifications.js';
import { Reg, Seg, type CpuState } from '../state.js';
import type { DecodedInstr } from '../interp/decoded.js';
import { addrMask, linearAddress } from '../interp/ea.js';
import { EXECUTE, GP0, bitmapBit, instrExit, privileged } from './common.js';
import type { NonRootControls, NonRootEnv } from './controls.js';
import { insOutsInfo } from './instruction-info.js';
import type { NonRootDecision } from './types.js';

/** The access an I/O instruction makes. */
export interface IoAccess {
  readonly port: number;
  readonly size: 1 | 2 | 4;
  readonly input: boolean;
  readonly string: boolean;
  readonly rep: boolean;
  readonly immediate: boolean;
}

const IO_NAMES = new Set(['in', 'out', 'insb', 'insw', 'insd', 'outsb', 'outsw', 'outsd']);

export function isIoInstruction(instr: DecodedInstr): boolean {
  return IO_NAMES.has(instr.name);
}

/** Port, size, direction and form of an I/O instruction. */
export function ioAccessOf(instr: DecodedInstr, state: CpuState): IoAccess {
  const name = instr.name;
  const string = name.startsWith('ins') || name.startsWith('outs');
  const input = name.startsWith('in');
  if (string) {
    return { port: Number(state.gpr[Reg.RDX]! & 0xffffn), size: instr.opSize as 1 | 2 | 4, input, string, rep: instr.rep !== 'none', immediate: false };
  }
  const portOp = input ? instr.ops[1]! : instr.ops[0]!;
  const dataOp = input ? instr.ops[0]! : instr.ops[1]!;
  const size = (dataOp.kind === 'reg' ? dataOp.size : 1) as 1 | 2 | 4;
  if (portOp.kind === 'imm') return { port: Number(portOp.value & 0xffn), size, input, string, rep: false, immediate: true };
  return { port: Number(state.gpr[Reg.RDX]! & 0xffffn), size, input, string, rep: false, immediate: false };
}

/** I/O qualification (table 27-5): size−1 2:0, IN 3, string 4, REP 5, immediate 6, port 31:16. */
export function ioQualification(a: IoAccess): bigint {
  return encodeIo({ size: a.size, direction: a.input ? 'in' : 'out', string: a.string, rep: a.rep, immediate: a.immediate, port: a.port });
}

/** Whether an access of `size` bytes at `port` exits under the I/O controls (SDM 25.1.3). */
export function ioExits(c: NonRootControls, env: NonRootEnv, port: number, size: number): boolean {
  if (!(c.primary & Primary.USE_IO_BITMAPS)) return (c.primary & Primary.UNCONDITIONAL_IO_EXITING) !== 0;
  for (let i = 0; i < size; i++) {
    const p = port + i;
    if (p > 0xffff) return true; // wraps around the 16-bit port space
    const base = p < 0x8000 ? c.ioBitmapA : c.ioBitmapB;
    if (bitmapBit((a) => env.readPhysByte(a), base, p & 0x7fff)) return true;
  }
  return false;
}

/** CPL > IOPL in protected mode, or virtual-8086 mode: the TSS I/O permission bitmap must be consulted. */
export function ioPermissionCheckNeeded(state: CpuState): boolean {
  if (!state.protectedMode) return false;
  if (state.v8086) return true;
  const iopl = Number((state.rflags >> 12n) & 3n);
  return state.cpl > iopl;
}

/** IN/OUT/INS/OUTS, assuming the TSS permission check (if needed) already passed. */
export function ioRule(instr: DecodedInstr, state: CpuState, c: NonRootControls, env: NonRootEnv): NonRootDecision {
  const a = ioAccessOf(instr, state);
  if (!ioExits(c, env, a.port, a.size)) return EXECUTE;
  const q = ioQualification(a);
  if (!a.string) return instrExit(ExitReason.IO_INSTRUCTION, instr, q);
  // String I/O: the linear address of the memory operand (ES:rDI for INS, seg:rSI for OUTS).
  const mask = addrMask(instr.addrSize);
  const linear = a.input
    ? linearAddress(state, Seg.ES, state.gpr[Reg.RDI]! & mask)
    : linearAddress(state, instr.strSrcSeg, state.gpr[Reg.RSI]! & mask);
  const extra = env.insOutsInfo ? { guestLinearAddress: linear, instructionInfo: insOutsInfo(instr, !a.input) } : { guestLinearAddress: linear };
  return instrExit(ExitReason.IO_INSTRUCTION, instr, q, extra);
}

/** Whether RDMSR/WRMSR of `msr` exits (SDM 25.1.3, bitmap layout 24.6.9). */
export function msrExits(c: NonRootControls, env: NonRootEnv, msr: number, write: boolean): boolean {
  if (!(c.primary & Primary.USE_MSR_BITMAPS)) return true;
  const m = msr >>> 0;
  let offset: number;
  let n: number;
  if (m <= 0x1fff) { offset = 0; n = m; }
  else if (m >= 0xc000_0000 && m <= 0xc000_1fff) { offset = 1024; n = m - 0xc000_0000; }
  else return true;
  if (write) offset += 2048;
  return bitmapBit((a) => env.readPhysByte(a), c.msrBitmap + BigInt(offset), n);
}

/** RDMSR/WRMSR: CPL > 0 (and virtual-8086 mode) faults first; then the bitmaps decide. */
export function msrRule(instr: DecodedInstr, state: CpuState, c: NonRootControls, env: NonRootEnv): NonRootDecision {
  if (privileged(state)) return GP0;
  const write = instr.name === 'wrmsr';
  const msr = Number(state.gpr[Reg.RCX]! & 0xffff_ffffn);
  if (msrExits(c, env, msr, write)) return instrExit(write ? ExitReason.MSR_WRITE : ExitReason.MSR_READ, instr);
  return EXECUTE;
}
