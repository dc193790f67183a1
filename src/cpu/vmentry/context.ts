// Shared machinery of the VM-entry stages: VMCS fields as 32-bit words by slot, CPU facts pre-digested into
// numbers, and the recording of failures / undecidable checks by catalogue index.
// Must not: allocate on the passing path, read a clock, or decide any check itself (the stages do).
// SDM Vol. 3C 26.2-26.4; capability MSR layout from Appendix A.
import type { CpuModel } from '../cpu-model.js';
import { ENTRY_CHECKS, type EntryCheckDef, type EntryCheckId } from '../generated/entry-checks.js';
import { Field, type FieldName } from '../generated/vmcs-fields.js';
import { slotOf } from '../vmcs.js';
import type { EntryCheckFailure, EntryEnvironment } from './types.js';

/** Storage slot of a field (words[2·slot] = bits 31:0, words[2·slot+1] = bits 63:32). */
export function slot(name: FieldName): number {
  const s = slotOf(Field[name]);
  if (s < 0) throw new Error(`turtles bug: VMCS field ${name} has no storage slot`);
  return s;
}

const CHECK_INDEX = new Map<string, number>(ENTRY_CHECKS.map((c, i) => [c.id, i]));
export const CHECK_COUNT = ENTRY_CHECKS.length;

/** Catalogue index of a check id (resolved once, at module load, by each stage file). */
export function ck(id: EntryCheckId): number {
  const i = CHECK_INDEX.get(id);
  if (i === undefined) throw new Error(`turtles bug: ${id} is not in schemas/vmx/entry-checks.json`);
  return i;
}

interface FieldRef { readonly name: string; readonly encoding: string; readonly slot: number }
/** Per check: the catalogue fields, resolved to slots, for the failure report. */
const CHECK_FIELDS: readonly (readonly FieldRef[])[] = ENTRY_CHECKS.map((c: EntryCheckDef) =>
  c.fields.map((name) => ({
    name,
    encoding: '0x' + Field[name as FieldName].toString(16).padStart(8, '0'),
    slot: slot(name as FieldName),
  })),
);

/** Capability facts the checks need, as 32-bit numbers (bit tests without bigint). */
export interface CpuFacts {
  readonly pinMust: number; readonly pinMay: number;
  readonly priMust: number; readonly priMay: number;
  readonly secMust: number; readonly secMay: number;
  readonly terMayLo: number; readonly terMayHi: number;
  readonly exitMust: number; readonly exitMay: number;
  readonly exit2MayLo: number; readonly exit2MayHi: number;
  readonly entryMust: number; readonly entryMay: number;
  readonly vmfuncLo: number; readonly vmfuncHi: number;
  readonly cr0Fixed0Lo: number; readonly cr0Fixed0Hi: number; readonly cr0Fixed1Lo: number; readonly cr0Fixed1Hi: number;
  readonly cr4Fixed0Lo: number; readonly cr4Fixed0Hi: number; readonly cr4Fixed1Lo: number; readonly cr4Fixed1Hi: number;
  readonly maxPhysAddr: number;
  /** Bits of the high word that lie at or above MAXPHYADDR. */
  readonly physHiMask: number;
  /** Shift of the (signed) high word whose result must be 0 or -1 for a canonical address of the processor's width. */
  readonly canonShift: number;
  readonly cr3TargetCount: number;
  readonly maxMsrListEntries: number;
  /** Bit n set = activity state n supported (0 always). */
  readonly activityMask: number;
  readonly vmcsRevision: number;
  readonly eptUc: boolean; readonly eptWb: boolean; readonly eptPwl4: boolean; readonly eptPwl5: boolean; readonly eptAd: boolean;
  readonly cet: boolean; readonly rtm: boolean; readonly mtf: boolean;
  /** "Enable ENCLS exiting" may be 1: the processor supports SGX (SDM 24.6.2; used for the enclave-interruption check). */
  readonly sgx: boolean;
  /** "Host address-space size" may be 1: the processor supports Intel 64 (SDM A.4). */
  readonly intel64: boolean;
  readonly relaxedErrorCode: boolean;
  readonly zeroLengthInjection: boolean;
  readonly perfValidLo: number; readonly perfValidHi: number;
  readonly eferValid: number;
  readonly debugctlValid: number;
}

const u32 = (x: bigint): number => Number(x & 0xffff_ffffn) >>> 0;
const h32 = (x: bigint): number => Number((x >> 32n) & 0xffff_ffffn) >>> 0;
const lowMask = (n: number): number => (n >= 32 ? 0xffff_ffff : (2 ** n) - 1) >>> 0;

function deriveFacts(cpu: CpuModel): CpuFacts {
  const pin = cpu.allowed('pin'), pri = cpu.allowed('primary'), sec = cpu.allowed('secondary');
  const ter = cpu.allowed('tertiary'), exit = cpu.allowed('exit'), exit2 = cpu.allowed('exit2'), entry = cpu.allowed('entry');
  const vmfunc = cpu.msr('IA32_VMX_VMFUNC');
  const p = cpu.maxPhysAddr;
  // The word-pair tests below assume the physical-address width lies in the high word (every Intel 64 part: 36-52).
  if (p < 33 || p > 63) throw new Error(`turtles bug: CPU model ${cpu.id}: MAXPHYADDR ${p} outside 33..63`);
  const id = cpu.cpuid;
  let activityMask = 1;
  for (let s = 1; s <= 3; s++) if (cpu.activityStateSupported(s)) activityMask |= 1 << s;
  const pmu = id.pmuVersion >= 2;
  return {
    pinMust: u32(pin.mustBeOne), pinMay: u32(pin.mayBeOne),
    priMust: u32(pri.mustBeOne), priMay: u32(pri.mayBeOne),
    secMust: u32(sec.mustBeOne), secMay: u32(sec.mayBeOne),
    terMayLo: u32(ter.mayBeOne), terMayHi: h32(ter.mayBeOne),
    exitMust: u32(exit.mustBeOne), exitMay: u32(exit.mayBeOne),
    exit2MayLo: u32(exit2.mayBeOne), exit2MayHi: h32(exit2.mayBeOne),
    entryMust: u32(entry.mustBeOne), entryMay: u32(entry.mayBeOne),
    vmfuncLo: u32(vmfunc), vmfuncHi: h32(vmfunc),
    cr0Fixed0Lo: u32(cpu.cr0Fixed0), cr0Fixed0Hi: h32(cpu.cr0Fixed0), cr0Fixed1Lo: u32(cpu.cr0Fixed1), cr0Fixed1Hi: h32(cpu.cr0Fixed1),
    cr4Fixed0Lo: u32(cpu.cr4Fixed0), cr4Fixed0Hi: h32(cpu.cr4Fixed0), cr4Fixed1Lo: u32(cpu.cr4Fixed1), cr4Fixed1Hi: h32(cpu.cr4Fixed1),
    maxPhysAddr: p,
    physHiMask: (~lowMask(p - 32)) >>> 0,
    canonShift: cpu.linearAddressWidth - 33,
    cr3TargetCount: cpu.cr3TargetCount,
    maxMsrListEntries: cpu.maxMsrListEntries,
    activityMask,
    vmcsRevision: cpu.vmcsRevision,
    eptUc: cpu.eptCap(8), eptWb: cpu.eptCap(14), eptPwl4: cpu.eptCap(6), eptPwl5: cpu.eptCap(7), eptAd: cpu.eptCap(21),
    cet: id.cet, rtm: id.rtm,
    mtf: (u32(pri.mayBeOne) & 0x0800_0000) !== 0,
    sgx: (u32(pri.mayBeOne) & 0x8000_0000) !== 0 && (u32(sec.mayBeOne) & 0x0000_8000) !== 0,
    intel64: (u32(exit.mayBeOne) & 0x0000_0200) !== 0,
    relaxedErrorCode: cpu.relaxedErrorCodeCheck,
    zeroLengthInjection: cpu.zeroLengthInjection,
    // IA32_PERF_GLOBAL_CTRL exists from architectural PMU version 2: one enable per general-purpose counter
    // (bits n-1:0) and per fixed counter (bits 32+m-1:32); everything else is reserved (SDM Vol. 3B 20.2.2).
    perfValidLo: pmu ? lowMask(id.pmuGpCounters) : 0,
    perfValidHi: pmu ? lowMask(id.pmuFixedCounters) : 0,
    // IA32_EFER on Intel: SCE (0), LME (8), LMA (10), NXE (11) when XD exists; bit 12 (SVME) is reserved.
    eferValid: 0x0501 | (id.nx ? 0x0800 : 0),
    // IA32_DEBUGCTL: LBR, BTF, TR..FREEZE_WHILE_SMM (bits 0, 1, 6-14); RTM_DEBUG (15) only with RTM.
    debugctlValid: 0x7fc3 | (id.rtm ? 0x8000 : 0),
  };
}

const FACTS = new WeakMap<CpuModel, CpuFacts>();
let lastCpu: CpuModel | null = null;
let lastFacts: CpuFacts | null = null;
export function cpuFacts(cpu: CpuModel): CpuFacts {
  if (cpu === lastCpu) return lastFacts!;
  let f = FACTS.get(cpu);
  if (!f) {
    f = deriveFacts(cpu);
    FACTS.set(cpu, f);
  }
  lastCpu = cpu;
  lastFacts = f;
  return f;
}

/** One run's state. Reused between runs (runEntryChecks is not re-entered while a run is in progress). */
export class CheckContext {
  w: Uint32Array = new Uint32Array(0);
  /** Presence per slot; null when every field is known (a full Vmcs). */
  p: Uint8Array | null = null;
  cpu!: CpuFacts;
  env!: EntryEnvironment;
  all = false;
  stopped = false;
  /** Catalogue index of the failure that stopped a 'first' run, or -1. */
  stopIndex = -1;
  failures: EntryCheckFailure[] | null = null;
  notEvaluated: number[] | null = null;
  neSeen: Uint8Array | null = null;
  /**
   * Control words read once per run (-1 when the reader lacks them). `sec` holds the secondary controls as the
   * processor uses them: 0 when "activate secondary controls" is 0 (SDM 26.2.1.1), -1 when unknown.
   */
  pin = -1;
  pri = -1;
  sec = -1;
  exit = -1;
  entry = -1;
  /** Scratch of the segment stage: access rights of CS..GS and their "outside virtual-8086" gates. */
  readonly segAr = new Uint32Array(6);
  readonly segGates = new Int8Array(6);

  reset(w: Uint32Array, p: Uint8Array | null, env: EntryEnvironment, all: boolean): void {
    this.w = w;
    this.p = p;
    this.env = env;
    this.cpu = cpuFacts(env.cpu);
    this.all = all;
    this.stopped = false;
    this.stopIndex = -1;
    this.failures = null;
    // neSeen is written only together with notEvaluated, so it needs clearing only after a run that recorded one.
    if (this.notEvaluated !== null) this.neSeen!.fill(0);
    this.notEvaluated = null;
    loadControls(this);
  }
}

/** The field in `slot` is known. */
export function has(c: CheckContext, s: number): boolean {
  return c.p === null || c.p[s] === 1;
}
export function lo(c: CheckContext, s: number): number {
  return c.w[s << 1]!;
}
export function hi(c: CheckContext, s: number): number {
  return c.w[(s << 1) | 1]!;
}
export function value(c: CheckContext, s: number): bigint {
  return (BigInt(c.w[(s << 1) | 1]!) << 32n) | BigInt(c.w[s << 1]!);
}

/** Record that check `k` could not be decided (each id once per run). */
export function ne(c: CheckContext, k: number): void {
  if (c.neSeen === null) c.neSeen = new Uint8Array(CHECK_COUNT);
  if (c.neSeen[k] === 1) return;
  c.neSeen[k] = 1;
  (c.notEvaluated ??= []).push(k);
}

/**
 * Record a failure of check `k`. Returns true when the run must stop ('first' mode), so stages write
 * `if (violated && fail(...)) return;`. The detail string is built by the caller only on this path.
 */
export function fail(c: CheckContext, k: number, detail: string, qualification?: bigint): boolean {
  const def = ENTRY_CHECKS[k]!;
  const fields: EntryCheckFailure['fields'] = [];
  for (const f of CHECK_FIELDS[k]!) if (has(c, f.slot)) fields.push({ name: f.name, encoding: f.encoding, value: value(c, f.slot) });
  const q = qualification ?? (def.qualification === null ? null : BigInt(def.qualification));
  (c.failures ??= []).push({ id: def.id as EntryCheckId, sdm: def.sdm, stage: def.stage, class: def.class, qualification: q, fields, detail });
  if (c.all) return false;
  c.stopped = true;
  c.stopIndex = k;
  return true;
}

// ---- value tests on (lo, hi) word pairs ----

/** Bits at or above MAXPHYADDR are clear. */
export function physOk(c: CheckContext, hiWord: number): boolean {
  return (hiWord & c.cpu.physHiMask) === 0;
}
/** Canonical for the processor's linear-address width (57 with LA57 support, else 48). */
export function canonical(c: CheckContext, hiWord: number): boolean {
  const t = (hiWord | 0) >> c.cpu.canonShift;
  return t === 0 || t === -1;
}
/** Canonical for an explicit width (48 or 57), for the checks tied to a CR4.LA57 field. */
export function canonicalWidth(hiWord: number, width: number): boolean {
  const t = (hiWord | 0) >> (width - 33);
  return t === 0 || t === -1;
}
/** Bits that violate allowed settings: set where may-be-one is 0, or clear where must-be-one is 1. */
export function badBits(v: number, must: number, may: number): number {
  return ((v & ~may) | (must & ~v)) >>> 0;
}
/** Every byte of a PAT value is 0, 1, 4, 5, 6 or 7. */
export function patValid(loWord: number, hiWord: number): boolean {
  for (let sh = 0; sh < 32; sh += 8) {
    const a = (loWord >>> sh) & 0xff, b = (hiWord >>> sh) & 0xff;
    if (a > 7 || a === 2 || a === 3 || b > 7 || b === 2 || b === 3) return false;
  }
  return true;
}
/** G bit consistent with the limit (SDM 26.3.1.2: limit[11:0] all 1 when G = 1; limit[31:20] all 0 when G = 0). */
export function granularityOk(limit: number, ar: number): boolean {
  return (ar & 0x8000) !== 0 ? (limit & 0xfff) === 0xfff : (limit & 0xfff0_0000) === 0;
}

export function hex32(x: number): string {
  return '0x' + (x >>> 0).toString(16).padStart(8, '0');
}
export function hex64(loWord: number, hiWord: number): string {
  return '0x' + (hiWord >>> 0).toString(16).padStart(8, '0') + (loWord >>> 0).toString(16).padStart(8, '0');
}

// ---- control words with "unknown" as -1 (a dump may lack them) ----

const S_PIN = slot('PIN_BASED_VM_EXEC_CONTROL');
const S_PRI = slot('CPU_BASED_VM_EXEC_CONTROL');
const S_SEC = slot('SECONDARY_VM_EXEC_CONTROL');
const S_EXIT = slot('VM_EXIT_CONTROLS');
const S_ENTRY = slot('VM_ENTRY_CONTROLS');

function loadControls(c: CheckContext): void {
  c.pin = ctl(c, S_PIN);
  c.pri = ctl(c, S_PRI);
  c.exit = ctl(c, S_EXIT);
  c.entry = ctl(c, S_ENTRY);
  c.sec = c.pri < 0 ? -1 : (c.pri & 0x8000_0000) === 0 ? 0 : ctl(c, S_SEC);
}

/** A 32-bit field as an unsigned number, or -1 when the reader lacks it. */
export function ctl(c: CheckContext, s: number): number {
  return c.p === null || c.p[s] === 1 ? c.w[s << 1]! : -1;
}
/** Tri-state bit test of a control word: -1 unknown, 0 clear, 1 set. */
export function bitOf(x: number, mask: number): number {
  return x < 0 ? -1 : (x & mask) !== 0 ? 1 : 0;
}
