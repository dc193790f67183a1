// Codecs for exit qualifications: control-register access (28), MOV DR (29), I/O instruction (30), exceptions (#PF
// address, #DB bits; reason 0), task switch (9), APIC access (44); bigint at this API (natural width).
// Must not: compute qualifications from machine state (nonroot/interp do). EPT violation: src/cpu/ept/qualification.ts.
// SDM Vol. 3C 27.2.1 (Tables 27-1 .. 27-6).
import { type Decoded, field32, flag32, joinQualification, mask32, place32, splitQualification } from './common.js';

// ---------------------------------------------------------------------------------------------------------------
// Control-register access (exit reason 28), SDM Table 27-3.

export type CrAccessQualification =
  | { readonly access: 'mov-to-cr'; readonly cr: number; readonly gpr: number }
  | { readonly access: 'mov-from-cr'; readonly cr: number; readonly gpr: number }
  | { readonly access: 'clts' }
  | { readonly access: 'lmsw'; readonly memoryOperand: boolean; readonly sourceData: number };

const CR_ACCESS_CODES = ['mov-to-cr', 'mov-from-cr', 'clts', 'lmsw'] as const;

export function encodeCrAccess(x: CrAccessQualification): bigint {
  const code = CR_ACCESS_CODES.indexOf(x.access);
  let lo = place32(code, 4, 2);
  if (x.access === 'mov-to-cr' || x.access === 'mov-from-cr') lo |= place32(x.cr, 0, 4) | place32(x.gpr, 8, 4);
  else if (x.access === 'lmsw') lo |= (x.memoryOperand ? 1 << 6 : 0) | place32(x.sourceData, 16, 16);
  return joinQualification(lo >>> 0, 0);
}

export function decodeCrAccess(q: bigint): Decoded<CrAccessQualification, bigint> {
  const { lo, hi } = splitQualification(q);
  const access = CR_ACCESS_CODES[field32(lo, 4, 2)]!;
  // Bits 7 and 15:12 are reserved; the rest depend on the access type ("cleared to 0" where not used).
  let mustBeZero = (1 << 7) | mask32(15, 12);
  let value: CrAccessQualification;
  const malformed: string[] = [];
  if (access === 'mov-to-cr' || access === 'mov-from-cr') {
    mustBeZero |= (1 << 6) | mask32(31, 16);
    const cr = field32(lo, 0, 4);
    if (cr !== 0 && cr !== 3 && cr !== 4 && cr !== 8) malformed.push('cr');
    value = { access, cr, gpr: field32(lo, 8, 4) };
  } else if (access === 'clts') {
    mustBeZero |= mask32(3, 0) | (1 << 6) | mask32(11, 8) | mask32(31, 16);
    value = { access };
  } else {
    mustBeZero |= mask32(3, 0) | mask32(11, 8);
    value = { access, memoryOperand: flag32(lo, 6), sourceData: field32(lo, 16, 16) };
  }
  return { value, reserved: joinQualification((lo & mustBeZero) >>> 0, hi), malformed };
}

// ---------------------------------------------------------------------------------------------------------------
// MOV DR (exit reason 29), SDM Table 27-4.

export interface MovDrQualification {
  readonly dr: number;
  readonly direction: 'to-dr' | 'from-dr';
  readonly gpr: number;
}

const MOV_DR_RESERVED_LO = (1 << 3) | mask32(7, 5) | mask32(31, 12);

export function encodeMovDr(x: MovDrQualification): bigint {
  return joinQualification((place32(x.dr, 0, 3) | (x.direction === 'from-dr' ? 1 << 4 : 0) | place32(x.gpr, 8, 4)) >>> 0, 0);
}

export function decodeMovDr(q: bigint): Decoded<MovDrQualification, bigint> {
  const { lo, hi } = splitQualification(q);
  return {
    value: { dr: field32(lo, 0, 3), direction: flag32(lo, 4) ? 'from-dr' : 'to-dr', gpr: field32(lo, 8, 4) },
    reserved: joinQualification((lo & MOV_DR_RESERVED_LO) >>> 0, hi),
    malformed: [],
  };
}

// ---------------------------------------------------------------------------------------------------------------
// I/O instruction (exit reason 30), SDM Table 27-5.

export interface IoQualification {
  /** Access size in bytes: bits 2:0 hold size − 1 (1, 2 or 4 are the defined sizes). */
  readonly size: number;
  readonly direction: 'out' | 'in';
  /** Bit 4: INS/OUTS. */
  readonly string: boolean;
  /** Bit 5: REP prefixed. */
  readonly rep: boolean;
  /** Bit 6: port given as an immediate (otherwise in DX). */
  readonly immediate: boolean;
  /** Bits 31:16. */
  readonly port: number;
}

const IO_RESERVED_LO = mask32(15, 7);

export function encodeIo(x: IoQualification): bigint {
  const lo =
    place32(x.size - 1, 0, 3) |
    (x.direction === 'in' ? 1 << 3 : 0) |
    (x.string ? 1 << 4 : 0) |
    (x.rep ? 1 << 5 : 0) |
    (x.immediate ? 1 << 6 : 0) |
    place32(x.port, 16, 16);
  return joinQualification(lo >>> 0, 0);
}

export function decodeIo(q: bigint): Decoded<IoQualification, bigint> {
  const { lo, hi } = splitQualification(q);
  const sizeCode = field32(lo, 0, 3);
  return {
    value: {
      size: sizeCode + 1,
      direction: flag32(lo, 3) ? 'in' : 'out',
      string: flag32(lo, 4),
      rep: flag32(lo, 5),
      immediate: flag32(lo, 6),
      port: field32(lo, 16, 16),
    },
    reserved: joinQualification((lo & IO_RESERVED_LO) >>> 0, hi),
    malformed: sizeCode === 0 || sizeCode === 1 || sizeCode === 3 ? [] : ['size'],
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Exceptions (exit reason 0), SDM 27.2.1 and Table 27-1.

/**
 * #PF qualification: the faulting linear address. Bits 63:32 are cleared when the guest was not in 64-bit mode
 * before the exit. (CR2 is not written by the VM exit.)
 */
export function pageFaultQualification(linearAddress: bigint, guestIn64BitMode: boolean): bigint {
  const a = BigInt.asUintN(64, linearAddress);
  return guestIn64BitMode ? a : a & 0xffff_ffffn;
}

/** #DB qualification: DR6-like bits in positive polarity. */
export interface DebugQualification {
  /** Bits 3:0: B3..B0 (breakpoint conditions met). */
  readonly breakpoints: number;
  /** Bit 11: BLD, bus-lock detected. */
  readonly busLock: boolean;
  /** Bit 13: BD, debug-register access detected. */
  readonly debugRegisterAccess: boolean;
  /** Bit 14: BS, single step. */
  readonly singleStep: boolean;
  /** Bit 16: RTM region. */
  readonly rtm: boolean;
}

const DEBUG_RESERVED_LO = mask32(10, 4) | (1 << 12) | (1 << 15) | mask32(31, 17);

export function encodeDebugQualification(x: DebugQualification): bigint {
  const lo =
    place32(x.breakpoints, 0, 4) |
    (x.busLock ? 1 << 11 : 0) |
    (x.debugRegisterAccess ? 1 << 13 : 0) |
    (x.singleStep ? 1 << 14 : 0) |
    (x.rtm ? 1 << 16 : 0);
  return joinQualification(lo >>> 0, 0);
}

export function decodeDebugQualification(q: bigint): Decoded<DebugQualification, bigint> {
  const { lo, hi } = splitQualification(q);
  return {
    value: {
      breakpoints: field32(lo, 0, 4),
      busLock: flag32(lo, 11),
      debugRegisterAccess: flag32(lo, 13),
      singleStep: flag32(lo, 14),
      rtm: flag32(lo, 16),
    },
    reserved: joinQualification((lo & DEBUG_RESERVED_LO) >>> 0, hi),
    malformed: [],
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Task switch (exit reason 9), SDM Table 27-2.

export type TaskSwitchSource = 'call' | 'iret' | 'jmp' | 'idt-task-gate';
const TASK_SWITCH_SOURCES: readonly TaskSwitchSource[] = ['call', 'iret', 'jmp', 'idt-task-gate'];

export interface TaskSwitchQualification {
  /** Bits 15:0: selector of the target TSS. */
  readonly selector: number;
  /** Bits 31:30. */
  readonly source: TaskSwitchSource;
}

export function encodeTaskSwitch(x: TaskSwitchQualification): bigint {
  return joinQualification((place32(x.selector, 0, 16) | place32(TASK_SWITCH_SOURCES.indexOf(x.source), 30, 2)) >>> 0, 0);
}

export function decodeTaskSwitch(q: bigint): Decoded<TaskSwitchQualification, bigint> {
  const { lo, hi } = splitQualification(q);
  return {
    value: { selector: field32(lo, 0, 16), source: TASK_SWITCH_SOURCES[field32(lo, 30, 2)]! },
    reserved: joinQualification((lo & mask32(29, 16)) >>> 0, hi),
    malformed: [],
  };
}

// ---------------------------------------------------------------------------------------------------------------
// APIC access (exit reason 44), SDM Table 27-6.

export const ApicAccessType = {
  LINEAR_READ: 0,
  LINEAR_WRITE: 1,
  LINEAR_FETCH: 2,
  LINEAR_EVENT_DELIVERY: 3,
  PHYSICAL_EVENT_DELIVERY: 10,
  PHYSICAL_FETCH_OR_EXECUTION: 15,
} as const;
const APIC_ACCESS_TYPES: ReadonlySet<number> = new Set(Object.values(ApicAccessType));

export interface ApicAccessQualification {
  /** Bits 11:0: page offset (linear accesses only). */
  readonly offset: number;
  /** Bits 15:12 (see ApicAccessType). */
  readonly type: number;
  /** Bit 16: asynchronous to instruction execution. */
  readonly asynchronous: boolean;
}

export function encodeApicAccess(x: ApicAccessQualification): bigint {
  return joinQualification((place32(x.offset, 0, 12) | place32(x.type, 12, 4) | (x.asynchronous ? 1 << 16 : 0)) >>> 0, 0);
}

export function decodeApicAccess(q: bigint): Decoded<ApicAccessQualification, bigint> {
  const { lo, hi } = splitQualification(q);
  const type = field32(lo, 12, 4);
  return {
    value: { offset: field32(lo, 0, 12), type, asynchronous: flag32(lo, 16) },
    reserved: joinQualification((lo & mask32(31, 17)) >>> 0, hi),
    malformed: APIC_ACCESS_TYPES.has(type) ? [] : ['type'],
  };
}
