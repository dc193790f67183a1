// The instruction table: one row per mnemonic the interpreter claims, with its handler, its group, the
// status flags the SDM leaves undefined (so comparisons can mask them) and the basic exit reasons it can
// cause in VMX non-root operation. Everything else decoded by iced-x86 is a gap (coverage.ts).
// Must not: contain semantics. SDM Vol. 2 ("Flags Affected" of each page), Vol. 3C 25.1.2/25.1.3.
import { ExitReason as R } from '../generated/exit-reasons.js';
import { F } from './alu.js';
import { ALU_HANDLERS } from './handlers-alu.js';
import { CONTROL_HANDLERS } from './handlers-control.js';
import { DATA_HANDLERS } from './handlers-data.js';
import { IRET_HANDLERS } from './handlers-iret.js';
import { STRING_HANDLERS } from './handlers-string.js';
import { SYSTEM_HANDLERS, movCrDr } from './handlers-system.js';
import { TABLE_HANDLERS } from './handlers-tables.js';
import { VMX_HANDLERS } from './handlers-vmx.js';
import { UNSUPPORTED, type Handler } from './handler.js';
import type { DecodedInstr } from './decoded.js';
import type { ExecContext } from './exec-context.js';

export type Group = 'data' | 'alu' | 'control' | 'string' | 'system' | 'tables' | 'vmx' | 'exit-only';

/** Undefined status flags, possibly depending on the (masked) shift count and operand size. */
export type UndefinedFlags = number | ((count: number, size: number) => number);

export interface InstrRow {
  readonly name: string;
  readonly group: Group;
  readonly handler: Handler;
  readonly undefinedFlags: UndefinedFlags;
  /** Basic exit reasons executing this instruction can cause in VMX non-root operation. */
  readonly exitReasons: readonly number[];
}

const ALL_STATUS = F.CF | F.PF | F.AF | F.ZF | F.SF | F.OF;

/** SHL/SHR/SAR: AF undefined for a non-zero count, OF unless the count is 1, CF (SHL/SHR) for count ≥ width. */
function shiftUndefined(carryToo: boolean): (count: number, size: number) => number {
  return (countIn, size) => {
    const count = countIn & (size === 8 ? 0x3f : 0x1f);
    if (count === 0) return 0;
    let u = F.AF;
    if (count !== 1) u |= F.OF;
    if (carryToo && count >= size * 8) u |= F.CF;
    return u;
  };
}

/** Rotates: OF undefined unless the masked count is 1. */
function rotateUndefined(count: number, size: number): number {
  const c = count & (size === 8 ? 0x3f : 0x1f);
  return c !== 0 && c !== 1 ? F.OF : 0;
}

const UNDEFINED: Record<string, UndefinedFlags> = {
  and: F.AF, or: F.AF, xor: F.AF, test: F.AF,
  shl: shiftUndefined(true), sal: shiftUndefined(true), shr: shiftUndefined(true), sar: shiftUndefined(false),
  rol: rotateUndefined, ror: rotateUndefined, rcl: rotateUndefined, rcr: rotateUndefined,
  mul: F.SF | F.ZF | F.AF | F.PF, imul: F.SF | F.ZF | F.AF | F.PF,
  div: ALL_STATUS, idiv: ALL_STATUS,
  bt: F.OF | F.SF | F.AF | F.PF, bts: F.OF | F.SF | F.AF | F.PF, btr: F.OF | F.SF | F.AF | F.PF, btc: F.OF | F.SF | F.AF | F.PF,
};

const EXITS: Record<string, readonly number[]> = {
  cpuid: [R.CPUID], getsec: [R.GETSEC], getsecq: [R.GETSEC], hlt: [R.HLT], invd: [R.INVD], invlpg: [R.INVLPG],
  invpcid: [R.INVPCID], rdpmc: [R.RDPMC], rdtsc: [R.RDTSC], rdtscp: [R.RDTSCP], rsm: [],
  vmcall: [R.VMCALL], vmclear: [R.VMCLEAR], vmlaunch: [R.VMLAUNCH], vmptrld: [R.VMPTRLD], vmptrst: [R.VMPTRST],
  vmread: [R.VMREAD], vmresume: [R.VMRESUME], vmwrite: [R.VMWRITE], vmxoff: [R.VMXOFF], vmxon: [R.VMXON],
  invept: [R.INVEPT], invvpid: [R.INVVPID], vmfunc: [R.VMFUNC],
  mov: [R.CR_ACCESS, R.DR_ACCESS], clts: [R.CR_ACCESS], lmsw: [R.CR_ACCESS],
  in: [R.IO_INSTRUCTION], out: [R.IO_INSTRUCTION], insb: [R.IO_INSTRUCTION], insw: [R.IO_INSTRUCTION], insd: [R.IO_INSTRUCTION],
  outsb: [R.IO_INSTRUCTION], outsw: [R.IO_INSTRUCTION], outsd: [R.IO_INSTRUCTION],
  rdmsr: [R.MSR_READ], wrmsr: [R.MSR_WRITE], mwait: [R.MWAIT_INSTRUCTION], monitor: [R.MONITOR_INSTRUCTION],
  pause: [R.PAUSE_INSTRUCTION], wbinvd: [R.WBINVD], wbnoinvd: [R.WBINVD], xsetbv: [R.XSETBV],
  lgdt: [R.GDTR_IDTR], lidt: [R.GDTR_IDTR], sgdt: [R.GDTR_IDTR], sidt: [R.GDTR_IDTR],
  lldt: [R.LDTR_TR], ltr: [R.LDTR_TR], sldt: [R.LDTR_TR], str: [R.LDTR_TR],
  rdrand: [R.RDRAND], rdseed: [R.RDSEED], xsaves: [R.XSAVES], xsaves64: [R.XSAVES], xrstors: [R.XRSTORS], xrstors64: [R.XRSTORS],
  encls: [R.ENCLS], enclv: [R.ENCLV], pconfig: [R.PCONFIG], umwait: [R.UMWAIT], tpause: [R.TPAUSE], loadiwkey: [R.LOADIWKEY],
  seamcall: [R.SEAMCALL], tdcall: [R.TDCALL],
  // Task switches (far JMP/CALL to a TSS or task gate, IRET with NT) exit unconditionally.
  jmp: [R.TASK_SWITCH], call: [R.TASK_SWITCH], iret: [R.TASK_SWITCH], iretd: [R.TASK_SWITCH],
};

/** Instructions whose only modelled behaviour is their VM exit; executing them without an exit is a gap. */
const EXIT_ONLY = ['getsec', 'getsecq', 'rsm', 'xsaves', 'xsaves64', 'xrstors', 'xrstors64', 'encls', 'enclv', 'pconfig', 'umwait', 'tpause', 'loadiwkey', 'seamcall', 'tdcall'];

/** MOV dispatches its CR/DR forms to the system group. */
const movHandler: Handler = (x: ExecContext, i: DecodedInstr) =>
  i.ops.some((o) => o.kind === 'cr' || o.kind === 'dr') ? movCrDr(x, i) : DATA_HANDLERS.mov!(x, i);

/** String mnemonics shared with SSE (MOVSD, CMPSD): only the string forms are claimed. */
function stringOnly(h: Handler): Handler {
  return (x, i) => (i.isString ? h(x, i) : UNSUPPORTED);
}

function rows(): Map<string, InstrRow> {
  const m = new Map<string, InstrRow>();
  const add = (group: Group, handlers: Record<string, Handler>) => {
    for (const [name, handler] of Object.entries(handlers)) {
      m.set(name, { name, group, handler, undefinedFlags: UNDEFINED[name] ?? 0, exitReasons: EXITS[name] ?? [] });
    }
  };
  add('data', DATA_HANDLERS);
  add('alu', ALU_HANDLERS);
  add('control', CONTROL_HANDLERS);
  add('control', IRET_HANDLERS);
  add('string', STRING_HANDLERS);
  add('system', SYSTEM_HANDLERS);
  add('tables', TABLE_HANDLERS);
  add('vmx', VMX_HANDLERS);
  for (const name of EXIT_ONLY) m.set(name, { name, group: 'exit-only', handler: () => UNSUPPORTED, undefinedFlags: 0, exitReasons: EXITS[name] ?? [] });
  m.set('mov', { ...m.get('mov')!, handler: movHandler, exitReasons: EXITS.mov! });
  for (const n of ['movsd', 'cmpsd']) m.set(n, { ...m.get(n)!, handler: stringOnly(m.get(n)!.handler) });
  return m;
}

export const INSTRUCTION_TABLE: ReadonlyMap<string, InstrRow> = rows();

/** Undefined status-flag mask for an executed instruction (count = masked shift count where relevant). */
export function undefinedFlagsOf(name: string, count = 0, size = 4): number {
  const u = INSTRUCTION_TABLE.get(name)?.undefinedFlags ?? 0;
  return typeof u === 'number' ? u : u(count, size);
}
