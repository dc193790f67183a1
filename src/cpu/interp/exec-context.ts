// The per-instruction execution context: register and operand access with x86 width rules, segmented
// memory access (limit/usability/canonical checks, then the linear GuestMemoryAccess), and the stack.
// Faults are returned as values (`Fault`), never thrown. Must not: decide VM exits (nonroot/) or deliver
// events (events.ts). SDM Vol. 1 3.4.1.1 (32-bit writes zero-extend), Vol. 3A 5.3 (limit checks), 3.4.4.
import { Ar, Cr4, Reg, Rflags, Seg, type CpuState } from '../state.js';
import type { NonRootExit } from '../nonroot/types.js';
import { op, type DecodedInstr, type MemRef, type OpSize } from './decoded.js';
import { effectiveAddress } from './ea.js';
import type { AccessKind, GuestFault, GuestMemoryAccess } from './types.js';
import type { Platform } from './platform.js';
import type { AuxState, NonRootRuntime } from './runtime.js';

export interface ExcFault {
  readonly t: 'fault';
  readonly vector: number;
  readonly errorCode?: number;
  /** Faulting linear address for #PF (CR2 / exit qualification). */
  readonly cr2?: bigint;
}
export interface ExitFault {
  readonly t: 'exit';
  readonly exit: NonRootExit;
  /** An EPT violation that "EPT-violation #VE" may turn into a #VE (see ept/ve.ts). */
  readonly veConvertible?: boolean;
}
export type Fault = ExcFault | ExitFault;

export function exc(vector: number, errorCode?: number): ExcFault {
  return errorCode === undefined ? { t: 'fault', vector } : { t: 'fault', vector, errorCode };
}
export const GP0 = exc(13, 0);
export const UD = exc(6);

export function isFault(v: unknown): v is Fault {
  return typeof v === 'object' && v !== null && 't' in v;
}

export function fromGuestFault(f: GuestFault): Fault {
  if (f.kind === 'exit') return f.veConvertible ? { t: 'exit', exit: f.exit, veConvertible: true } : { t: 'exit', exit: f.exit };
  return { t: 'fault', vector: f.vector, ...(f.errorCode !== undefined ? { errorCode: f.errorCode } : {}), ...(f.address !== undefined ? { cr2: f.address } : {}) };
}

const MASK: Record<number, bigint> = { 1: 0xffn, 2: 0xffffn, 4: 0xffff_ffffn, 8: 0xffff_ffff_ffff_ffffn };

const KIND_CACHE = new Map<string, AccessKind>();
function kindOf(type: AccessKind['type'], user: boolean, implicit: boolean): AccessKind {
  const key = `${type}${user ? 1 : 0}${implicit ? 1 : 0}`;
  let k = KIND_CACHE.get(key);
  if (!k) { k = { type, user, implicit }; KIND_CACHE.set(key, k); }
  return k;
}

export class ExecContext {
  /** RIP of the next instruction; handlers that branch set `rip` explicitly. */
  nextRip = 0n;
  ripSet = false;
  /** Interruptibility shadow this instruction starts (1 = STI, 2 = MOV SS), applied when it completes. */
  newShadow = 0;
  /** IRET cleared NMI blocking (a fault in the same IRET reports "NMI unblocking due to IRET"). */
  iretUnblockedNmi = false;
  /** A trap-like VM exit to take once this instruction has completed (TPR below threshold). */
  trapExit: NonRootExit | null = null;

  /** Reset the per-instruction fields before executing `nextRip`-based instruction. */
  begin(nextRip: bigint): void {
    this.nextRip = nextRip;
    this.ripSet = false;
    this.newShadow = 0;
    this.iretUnblockedNmi = false;
    this.trapExit = null;
  }

  /** Branch: the next RIP is `rip` (truncated to the operand size by the caller). */
  jump(rip: bigint): void {
    this.nextRip = rip;
    this.ripSet = true;
  }

  constructor(
    readonly state: CpuState,
    readonly mem: GuestMemoryAccess,
    readonly platform: Platform,
    readonly aux: AuxState,
    /** VMX non-root context, or null when L2 runs without VMX (plain interpreter). */
    readonly nr: NonRootRuntime | null,
  ) {}

  // ---- privilege and mode -------------------------------------------------------------------------------

  get cpl(): number {
    const s = this.state;
    if (!s.protectedMode) return 0;
    if (s.v8086) return 3;
    return s.cpl;
  }

  /** Bits of RFLAGS below 32 as a number (the upper half is reserved 0). */
  get flags(): number {
    return Number(this.state.rflags & 0xffff_ffffn);
  }

  set flags(v: number) {
    this.state.rflags = BigInt((v | 2) >>> 0);
  }

  /** Width of RSP arithmetic: 8 in 64-bit mode, else SS.B ? 4 : 2. */
  get stackAddrSize(): 2 | 4 | 8 {
    const s = this.state;
    if (s.longMode64) return 8;
    return s.segAr[Seg.SS]! & Ar.DB ? 4 : 2;
  }

  // ---- registers ----------------------------------------------------------------------------------------

  getReg(reg: number, size: number, high8 = false): bigint {
    const v = this.state.gpr[reg]!;
    if (high8) return (v >> 8n) & 0xffn;
    return v & MASK[size]!;
  }

  /** Register write with the x86 rules: 8/16-bit writes merge, 32-bit writes zero-extend, 64-bit replace. */
  setReg(reg: number, size: number, value: bigint, high8 = false): void {
    const g = this.state.gpr;
    if (high8) g[reg] = (g[reg]! & ~0xff00n) | ((value & 0xffn) << 8n);
    else if (size === 1) g[reg] = (g[reg]! & ~0xffn) | (value & 0xffn);
    else if (size === 2) g[reg] = (g[reg]! & ~0xffffn) | (value & 0xffffn);
    else if (size === 4) g[reg] = value & 0xffff_ffffn;
    else g[reg] = BigInt.asUintN(64, value);
  }

  // ---- segmented memory ---------------------------------------------------------------------------------

  /**
   * Check a data access of `size` bytes at `offset` in segment `seg` and return its linear address. 64-bit
   * mode: canonical check only (#SS(0) for SS, else #GP(0)). Otherwise usability, type and limit checks
   * (expand-down aware), then base + offset truncated to 32 bits.
   */
  linear(seg: number, offset: bigint, size: number, write: boolean): bigint | Fault {
    const s = this.state;
    const stackFault = seg === Seg.SS ? exc(12, 0) : GP0;
    if (s.longMode64) {
      const base = seg === Seg.FS || seg === Seg.GS ? s.segBase[seg]! : 0n;
      const lin = BigInt.asUintN(64, base + offset);
      if (!canonical(lin, this.la57) || !canonical(BigInt.asUintN(64, lin + BigInt(size - 1)), this.la57)) return stackFault;
      return lin;
    }
    const ar = s.segAr[seg]!;
    if (s.protectedMode && !s.v8086) {
      if (ar & Ar.UNUSABLE) return stackFault;
      const type = ar & Ar.TYPE_MASK;
      const code = (type & 8) !== 0;
      if (write && (code || (type & 2) === 0)) return stackFault;
      if (!write && code && (type & 2) === 0) return stackFault;
    }
    const limit = BigInt(s.segLimit[seg]!);
    const last = offset + BigInt(size - 1);
    const type = ar & Ar.TYPE_MASK;
    const expandDown = (type & 8) === 0 && (type & 4) !== 0 && s.protectedMode;
    if (expandDown) {
      const upper = ar & Ar.DB ? 0xffff_ffffn : 0xffffn;
      if (offset <= limit || last > upper) return stackFault;
    } else if (last > limit) return stackFault;
    return (s.segBase[seg]! + offset) & 0xffff_ffffn;
  }

  private dataKind(type: 'read' | 'write'): AccessKind {
    return kindOf(type, this.cpl === 3, false);
  }

  readLinear(lin: bigint, size: number, implicit = false): bigint | Fault {
    const r = this.mem.read(lin, size, implicit ? kindOf('read', false, true) : this.dataKind('read'));
    return r.ok ? r.value : fromGuestFault(r.fault);
  }

  writeLinear(lin: bigint, size: number, value: bigint, implicit = false): Fault | undefined {
    const r = this.mem.write(lin, size, BigInt.asUintN(size * 8, value), implicit ? kindOf('write', false, true) : this.dataKind('write'));
    return r.ok ? undefined : fromGuestFault(r.fault);
  }

  readMem(seg: number, offset: bigint, size: number): bigint | Fault {
    const lin = this.linear(seg, offset, size, false);
    if (typeof lin !== 'bigint') return lin;
    return this.readLinear(lin, size);
  }

  writeMem(seg: number, offset: bigint, size: number, value: bigint): Fault | undefined {
    const lin = this.linear(seg, offset, size, true);
    if (typeof lin !== 'bigint') return lin;
    return this.writeLinear(lin, size, value);
  }

  /** Probe that a write would succeed without writing (read-modify-write ordering, multi-part stores). */
  probeWrite(seg: number, offset: bigint, size: number): Fault | undefined {
    const lin = this.linear(seg, offset, size, true);
    if (typeof lin !== 'bigint') return lin;
    const r = this.mem.read(lin, size, this.dataKind('read'));
    if (!r.ok) return fromGuestFault(r.fault);
    return this.writeLinear(lin, size, r.value);
  }

  // ---- operands -----------------------------------------------------------------------------------------

  ea(instr: DecodedInstr, m: MemRef): bigint {
    return effectiveAddress(instr, m, this.state);
  }

  /** Read operand `i` as an unsigned value of `size` bytes (default: the operand's own size). */
  read(instr: DecodedInstr, i: number, size?: number): bigint | Fault {
    const o = op(instr, i);
    switch (o.kind) {
      case 'reg':
        return this.getReg(o.reg, size ?? o.size, o.high8);
      case 'imm':
        return size && size !== o.size ? BigInt.asUintN(size * 8, BigInt.asIntN(o.size * 8, o.value)) : o.value;
      case 'mem': {
        const m = instr.mem!;
        return this.readMem(m.seg, this.ea(instr, m), size ?? (m.size || instr.opSize));
      }
      case 'sreg':
        return BigInt(this.state.segSel[o.seg]!);
      default:
        throw new Error(`turtles bug: cannot read operand kind ${o.kind} of ${instr.name}`);
    }
  }

  write(instr: DecodedInstr, i: number, value: bigint, size?: number): Fault | undefined {
    const o = op(instr, i);
    switch (o.kind) {
      case 'reg':
        this.setReg(o.reg, size ?? o.size, value, o.high8);
        return undefined;
      case 'mem': {
        const m = instr.mem!;
        return this.writeMem(m.seg, this.ea(instr, m), size ?? (m.size || instr.opSize), value);
      }
      default:
        throw new Error(`turtles bug: cannot write operand kind ${o.kind} of ${instr.name}`);
    }
  }

  /** Size in bytes of operand `i`. */
  sizeOf(instr: DecodedInstr, i: number): OpSize {
    const o = op(instr, i);
    if (o.kind === 'reg') return o.size;
    if (o.kind === 'imm') return o.size;
    if (o.kind === 'mem') return ((instr.mem!.size || instr.opSize) as OpSize);
    return instr.opSize;
  }

  // ---- stack --------------------------------------------------------------------------------------------

  get rsp(): bigint {
    return this.state.gpr[Reg.RSP]! & MASK[this.stackAddrSize]!;
  }

  setRsp(v: bigint): void {
    this.setReg(Reg.RSP, this.stackAddrSize, v);
  }

  /** Push without committing RSP: returns the new RSP or a fault (#SS / #PF / exit). */
  pushAt(rsp: bigint, value: bigint, size: number): bigint | Fault {
    const n = (rsp - BigInt(size)) & MASK[this.stackAddrSize]!;
    const f = this.writeMem(Seg.SS, n, size, value);
    return f ?? n;
  }

  push(value: bigint, size: number): Fault | undefined {
    const n = this.pushAt(this.rsp, value, size);
    if (typeof n !== 'bigint') return n;
    this.setRsp(n);
    return undefined;
  }

  /** Read `size` bytes at RSP + `skip` without changing RSP. */
  peek(size: number, skip = 0): bigint | Fault {
    return this.readMem(Seg.SS, (this.rsp + BigInt(skip)) & MASK[this.stackAddrSize]!, size);
  }

  pop(size: number): bigint | Fault {
    const v = this.peek(size);
    if (typeof v !== 'bigint') return v;
    this.setRsp(this.rsp + BigInt(size));
    return v;
  }

  // ---- flags --------------------------------------------------------------------------------------------

  flag(bit: bigint): boolean {
    return (this.state.rflags & bit) !== 0n;
  }

  setFlag(bit: bigint, on: boolean): void {
    this.state.rflags = on ? this.state.rflags | bit : this.state.rflags & ~bit;
  }

  /** 57-bit linear addresses (CR4.LA57; meaningful in IA-32e mode, the only mode that can set it). */
  get la57(): boolean {
    return (this.state.cr4 & Cr4.LA57) !== 0n;
  }

  get iopl(): number {
    return Number((this.state.rflags & Rflags.IOPL) >> 12n);
  }
}

/**
 * `v` (64-bit) is canonical: bits 63:47 all equal (4-level paging), or bits 63:56 with `la57` (CR4.LA57, 5-level
 * paging; SDM Vol. 3A 3.3.7.1, 4.5).
 */
export function canonical(v: bigint, la57 = false): boolean {
  if (la57) {
    const top = v >> 56n;
    return top === 0n || top === 0xffn;
  }
  const top = v >> 47n;
  return top === 0n || top === 0x1_ffffn;
}
