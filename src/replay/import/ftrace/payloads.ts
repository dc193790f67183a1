// Payload grammars of the KVM trace events in trace-formats.md §2–§5, one parser per event, each accepting every
// observed producer variant (kernel print fmt per version, libtraceevent kvm plugin, author-trimmed, the
// plugin's CAN'T FIND FIELD fallback). Parsers only read text; the mapper decides what a value means.
// Must not: assign meaning to kvm_exit's ambiguous `info2` (mapper.ts does, from the kernel version).

export type ExitForm =
  | 'E1/E3'          // "reason X rip 0x.. info A B": kernel ≤5.9 or the plugin on any kernel
  | 'E2'             // kernel ≥5.10: vcpu, reason, rip, info1, info2, intr_info, error_code
  | 'E4'             // E2 trimmed by an author: vcpu, reason and a subset of the fields
  | 'nested-kernel-old'  // kvm_nested_vmexit, kernel ≤5.9: "rip: … reason: … ext_inf1: …"
  | 'nested-plugin'  // "rip R reason X info1 … info2 … int_info … int_info_err …"
  | 'inject-kernel'  // kvm_nested_vmexit_inject: "reason: … ext_inf1: …"
  | 'inject-plugin'; // "reason X info1 … info2 … int_info … int_info_err …"

export interface ExitPayload {
  readonly form: ExitForm;
  /** The text carried the plugin's CAN'T FIND FIELD prefix (a ≥5.10 kernel printed by an old plugin). */
  readonly cantFindField: boolean;
  readonly vcpu?: number;
  readonly reasonText: string;
  readonly rip?: bigint;
  /** info1 / ext_inf1: the exit qualification on VMX. */
  readonly info1?: bigint;
  /** info2 / ext_inf2: IDT-vectoring info for E2 and nested events; version-dependent for E1/E3. */
  readonly info2?: bigint;
  readonly intrInfo?: bigint;
  readonly errorCode?: bigint;
}

const HEX = /^(?:0x)?[0-9a-f]{1,16}$/i;

/** Hex with or without 0x, at most 64 bits; undefined if malformed. */
export function hex(s: string | undefined): bigint | undefined {
  if (s === undefined || !HEX.test(s)) return undefined;
  return BigInt(s.toLowerCase().startsWith('0x') ? s : `0x${s}`);
}

function hex0x(s: string | undefined): bigint | undefined {
  return s !== undefined && /^0x/i.test(s) ? hex(s) : undefined;
}

const CANT_FIND = /^(?:(?:CAN'T FIND FIELD "[^"]*"|<CANT FIND FIELD [^>]*>)\s*)+/;

function stripCantFind(p: string): { text: string; cant: boolean } {
  const m = CANT_FIND.exec(p);
  return m ? { text: p.slice(m[0].length).trim(), cant: true } : { text: p, cant: false };
}

const E2_KEYS = ['rip', 'info1', 'info2', 'intr_info', 'error_code'] as const;
type E2Key = (typeof E2_KEYS)[number];

/** "vcpu N reason <tokens> [key 0x…]*": E2 when all five keys are there in order, E4 otherwise. */
function parseVcpuForm(text: string, cant: boolean): ExitPayload | undefined {
  const t = text.split(' ');
  if (t[0] !== 'vcpu' || !/^\d+$/.test(t[1] ?? '') || t[2] !== 'reason') return undefined;
  let i = 3;
  const reason: string[] = [];
  while (i < t.length && !(E2_KEYS as readonly string[]).includes(t[i]!)) reason.push(t[i++]!);
  if (reason.length === 0) return undefined;
  const seen: E2Key[] = [];
  const values = new Map<E2Key, bigint>();
  while (i < t.length) {
    const key = t[i] as E2Key;
    const v = hex(t[i + 1]);
    if (!(E2_KEYS as readonly string[]).includes(key) || values.has(key) || v === undefined) return undefined;
    values.set(key, v);
    seen.push(key);
    i += 2;
  }
  const isE2 = seen.length === 5 && seen.every((k, j) => k === E2_KEYS[j]);
  const opt = (k: E2Key, name: keyof ExitPayload) => (values.has(k) ? { [name]: values.get(k)! } : {});
  return {
    form: isE2 ? 'E2' : 'E4', cantFindField: cant, vcpu: Number(t[1]), reasonText: reason.join(' '),
    ...opt('rip', 'rip'), ...opt('info1', 'info1'), ...opt('info2', 'info2'), ...opt('intr_info', 'intrInfo'), ...opt('error_code', 'errorCode'),
  };
}

const E1 = /^reason (?<reason>.+?) rip 0x(?<rip>[0-9a-f]+) info (?<i1>[0-9a-f]+) (?<i2>[0-9a-f]+)$/i;

export function parseKvmExit(payload: string): ExitPayload | undefined {
  const { text, cant } = stripCantFind(payload);
  const v = parseVcpuForm(text, cant);
  if (v) return v;
  const m = E1.exec(text);
  if (!m?.groups) return undefined;
  const g = m.groups;
  const rip = hex(g['rip']);
  const info1 = hex(g['i1']);
  const info2 = hex(g['i2']);
  if (rip === undefined || info1 === undefined || info2 === undefined) return undefined;
  return { form: 'E1/E3', cantFindField: cant, reasonText: g['reason']!, rip, info1, info2 };
}

const NESTED_OLD =
  /^rip: (?<rip>0x[0-9a-f]+) reason: (?<reason>.+?) ext_inf1: (?<i1>0x[0-9a-f]+) ext_inf2: (?<i2>0x[0-9a-f]+) ext_int: (?<ii>0x[0-9a-f]+) ext_int_err: (?<ie>0x[0-9a-f]+)$/i;
const NESTED_PLUGIN =
  /^rip (?<rip>[0-9a-f]+) reason (?<reason>.+?) info1 (?<i1>[0-9a-f]+) info2 (?<i2>[0-9a-f]+) int_info (?<ii>[0-9a-f]+) int_info_err (?<ie>[0-9a-f]+)$/i;
const INJECT_KERNEL =
  /^reason: (?<reason>.+?) ext_inf1: (?<i1>0x[0-9a-f]+) ext_inf2: (?<i2>0x[0-9a-f]+) ext_int: (?<ii>0x[0-9a-f]+) ext_int_err: (?<ie>0x[0-9a-f]+)$/i;
const INJECT_PLUGIN =
  /^reason (?<reason>.+?) info1 (?<i1>[0-9a-f]+) info2 (?<i2>[0-9a-f]+) int_info (?<ii>[0-9a-f]+) int_info_err (?<ie>[0-9a-f]+)$/i;

function namedForm(re: RegExp, form: ExitForm, text: string, cant: boolean): ExitPayload | undefined {
  const g = re.exec(text)?.groups;
  if (!g) return undefined;
  const vals = { rip: hex(g['rip']), info1: hex(g['i1']), info2: hex(g['i2']), intrInfo: hex(g['ii']), errorCode: hex(g['ie']) };
  if (vals.info1 === undefined || vals.info2 === undefined || vals.intrInfo === undefined || vals.errorCode === undefined) return undefined;
  if (g['rip'] !== undefined && vals.rip === undefined) return undefined;
  return {
    form, cantFindField: cant, reasonText: g['reason']!, ...(vals.rip !== undefined ? { rip: vals.rip } : {}),
    info1: vals.info1, info2: vals.info2, intrInfo: vals.intrInfo, errorCode: vals.errorCode,
  };
}

/** kvm_nested_vmexit: kernel ≤5.9, kernel ≥5.10 (E2 grammar), plugin, or CAN'T FIND FIELD + kernel text. */
export function parseNestedVmexit(payload: string): ExitPayload | undefined {
  const { text, cant } = stripCantFind(payload);
  const v = parseVcpuForm(text, cant);
  if (v) return v.form === 'E2' ? v : undefined;
  return namedForm(NESTED_OLD, 'nested-kernel-old', text, cant) ?? namedForm(NESTED_PLUGIN, 'nested-plugin', text, cant);
}

export function parseNestedVmexitInject(payload: string): ExitPayload | undefined {
  const { text, cant } = stripCantFind(payload);
  return namedForm(INJECT_KERNEL, 'inject-kernel', text, cant) ?? namedForm(INJECT_PLUGIN, 'inject-plugin', text, cant);
}

export interface NestedVmenter {
  readonly svm: boolean;
  readonly rip: bigint;
  readonly vmcs: bigint;
  readonly nestedRip: bigint;
  readonly intCtl: bigint;
  readonly eventInj: bigint;
  readonly nestedEpt: boolean;
  readonly eptp?: bigint;
  readonly guestCr3?: bigint;
}

const VMENTER =
  /^rip: (?<rip>0x[0-9a-f]+) (?<kind>vmcs|vmcb): (?<vmcs>0x[0-9a-f]+) nested_rip: (?<nrip>0x[0-9a-f]+) int_ctl: (?<ic>0x[0-9a-f]+) event_inj: (?<ei>0x[0-9a-f]+) (?:nested_ept=(?<ept>[yn])|npt: (?<npt>on|off)) (?:guest cr3: (?<cr3>0x[0-9a-f]+)|nested_eptp: (?<eptp>0x[0-9a-f]+))$/i;

export function parseNestedVmenter(payload: string): NestedVmenter | undefined {
  const g = VMENTER.exec(payload)?.groups;
  if (!g) return undefined;
  const svm = g['kind']!.toLowerCase() === 'vmcb';
  const nestedEpt = svm ? g['npt'] === 'on' : g['ept'] === 'y';
  // The tail must agree with the flag: nested_eptp only with nested_ept=y, guest cr3 only with =n.
  if (!svm && nestedEpt !== (g['eptp'] !== undefined)) return undefined;
  const vals = [g['rip'], g['vmcs'], g['nrip'], g['ic'], g['ei']].map(hex0x);
  if (vals.some((x) => x === undefined)) return undefined;
  const [rip, vmcs, nestedRip, intCtl, eventInj] = vals as bigint[];
  return {
    svm, rip: rip!, vmcs: vmcs!, nestedRip: nestedRip!, intCtl: intCtl!, eventInj: eventInj!, nestedEpt,
    ...(g['eptp'] !== undefined ? { eptp: hex0x(g['eptp'])! } : {}), ...(g['cr3'] !== undefined ? { guestCr3: hex0x(g['cr3'])! } : {}),
  };
}

export function parseRipOnly(payload: string): bigint | undefined {
  const m = /^rip: (0x[0-9a-f]+)$/i.exec(payload);
  return m ? hex0x(m[1]) : undefined;
}

export interface KvmEntry {
  readonly vcpu: number;
  readonly rip?: bigint;
  /** Whether a comma separated vcpu and rip (kernel ≥5.10 prints one; a quoted test shows none). */
  readonly comma: boolean;
  readonly tail: string;
}

export function parseKvmEntry(payload: string): KvmEntry | undefined {
  const m = /^vcpu (\d+)(?:(,)? rip (0x[0-9a-f]+))?(?: (.*))?$/i.exec(payload);
  if (!m) return undefined;
  const rip = m[3] !== undefined ? hex0x(m[3]) : undefined;
  if (m[3] !== undefined && rip === undefined) return undefined;
  return { vcpu: Number(m[1]), ...(rip !== undefined ? { rip } : {}), comma: m[2] === ',', tail: m[4] ?? '' };
}

// ---- §5 events ----

export interface PageFault {
  readonly form: 'old' | 'new';
  readonly vcpu?: number;
  readonly rip?: bigint;
  readonly address: bigint;
  readonly errorCode: bigint;
}

export function parsePageFault(p: string): PageFault | undefined {
  let m = /^address ([0-9a-f]+) error_code ([0-9a-f]+)$/i.exec(p);
  if (m) return { form: 'old', address: hex(m[1])!, errorCode: hex(m[2])! };
  m = /^vcpu (\d+) rip (0x[0-9a-f]+) address (0x[0-9a-f]+) error_code (0x[0-9a-f]+)$/i.exec(p);
  if (m && hex(m[2]) !== undefined && hex(m[3]) !== undefined && hex(m[4]) !== undefined) {
    return { form: 'new', vcpu: Number(m[1]), rip: hex(m[2])!, address: hex(m[3])!, errorCode: hex(m[4])! };
  }
  return undefined;
}

export const parsePio = (p: string): boolean => /^pio_(?:read|write) at 0x[0-9a-f]+ size \d+ count \d+ val 0x[0-9a-f]+(?: \(\.\.\.\))?$/i.test(p);
export const parseMmio = (p: string): boolean => /^mmio (?:read|write|unsatisfied-read) len \d+ gpa 0x[0-9a-f]+ val 0x[0-9a-f]+$/i.test(p);
export const parseMsr = (p: string): boolean => /^msr_(?:read|write) [0-9a-f]+ = 0x[0-9a-f]+(?: \(#GP\))?$/i.test(p);
export const parseUserspaceExit = (p: string): boolean => /^reason [A-Z0-9_]+ \(\d+\)$/.test(p);
export const parseSmmTransition = (p: string): boolean => /^vcpu \d+: (?:entering|leaving) SMM, smbase 0x[0-9a-f]+$/i.test(p);

export interface CrAccess {
  readonly write: boolean;
  readonly cr: number;
  readonly value: bigint;
}

export function parseCr(p: string): CrAccess | undefined {
  const m = /^cr_(read|write) ([0-9a-f]+) = (0x[0-9a-f]+)$/i.exec(p);
  if (!m) return undefined;
  const value = hex0x(m[3]);
  return value === undefined ? undefined : { write: m[1] === 'write', cr: Number.parseInt(m[2]!, 16), value };
}

export interface Cpuid {
  readonly func: bigint;
  readonly index: bigint;
  readonly rax: bigint;
  readonly rbx: bigint;
  readonly rcx: bigint;
  readonly rdx: bigint;
  readonly tail: string;
}

export function parseCpuid(p: string): Cpuid | undefined {
  const m = /^func ([0-9a-f]+) idx ([0-9a-f]+) rax ([0-9a-f]+) rbx ([0-9a-f]+) rcx ([0-9a-f]+) rdx ([0-9a-f]+), cpuid entry (.+)$/i.exec(p);
  if (!m) return undefined;
  const v = m.slice(1, 7).map((x) => hex(x));
  if (v.some((x) => x === undefined)) return undefined;
  return { func: v[0]!, index: v[1]!, rax: v[2]!, rbx: v[3]!, rcx: v[4]!, rdx: v[5]!, tail: m[7]! };
}

/** Linux kvm_trace_sym_exc mnemonics. */
export const EXCEPTION_VECTORS: ReadonlyMap<string, number> = new Map([
  ['DE', 0], ['DB', 1], ['NMI', 2], ['BP', 3], ['OF', 4], ['BR', 5], ['UD', 6], ['NM', 7], ['DF', 8], ['TS', 10], ['NP', 11],
  ['SS', 12], ['GP', 13], ['PF', 14], ['MF', 16], ['AC', 17], ['MC', 18], ['XM', 19], ['VE', 20], ['CP', 21],
]);

/** Exceptions that deliver an error code (SDM 6.13): #DF, #TS, #NP, #SS, #GP, #PF, #AC, #CP. */
const ERROR_CODE_VECTORS = new Set([8, 10, 11, 12, 13, 14, 17, 21]);

export interface InjException {
  readonly vector: number;
  /** Printed error code, unless it is the old format's "(0x0)" placeholder. */
  readonly errorCode?: number;
  readonly reinjected: boolean;
  /** The text was the old format's placeholder "(0x0)" on a vector without an error code. */
  readonly oldForm: boolean;
}

export function parseInjException(p: string): InjException | undefined {
  const m = /^#?([A-Z]{2,3}|0x[0-9a-f]+)(?: \((0x[0-9a-f]+)\))?( \[reinjected\])?$/i.exec(p);
  if (!m) return undefined;
  const vector = EXCEPTION_VECTORS.get(m[1]!.toUpperCase()) ?? (m[1]!.startsWith('0x') ? Number(hex(m[1])) : undefined);
  if (vector === undefined || vector > 0xff) return undefined;
  const err = m[2] !== undefined ? hex(m[2]) : undefined;
  if (err !== undefined && err > 0xffff_ffffn) return undefined;
  // The old/plugin format prints "(0x%x)" for every exception; a zero there on a vector that never has an error
  // code is that placeholder, not an error code.
  const placeholder = err === 0n && !ERROR_CODE_VECTORS.has(vector);
  return { vector, ...(err !== undefined && !placeholder ? { errorCode: Number(err) } : {}), reinjected: m[3] !== undefined, oldForm: placeholder };
}

export interface InjVirq {
  readonly vector: number;
  readonly reinjected: boolean;
}

export function parseInjVirq(p: string): InjVirq | undefined {
  const m = /^(?:IRQ (0x[0-9a-f]+)|irq (\d+))( \[reinjected\])?$/i.exec(p);
  if (!m) return undefined;
  const vector = m[1] !== undefined ? Number(hex(m[1])) : Number(m[2]);
  return vector > 0xff ? undefined : { vector, reinjected: m[3] !== undefined };
}

export interface EmulateInsn {
  readonly csBase: bigint;
  readonly rip: bigint;
  readonly bytes: Uint8Array;
  readonly mode: string;
  readonly failed: boolean;
  readonly form: 'kernel' | 'plugin';
}

function hexBytes(s: string): Uint8Array | undefined {
  const t = s.replace(/ /g, '');
  if (t.length % 2 !== 0 || !/^[0-9a-f]*$/i.test(t)) return undefined;
  const out = new Uint8Array(t.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = Number.parseInt(t.slice(2 * i, 2 * i + 2), 16);
  return out;
}

export function parseEmulateInsn(p: string): EmulateInsn | undefined {
  // kernel: "%x:%llx:%s (%s)[ failed]" with the bytes as one hex string
  let m = /^([0-9a-f]+):([0-9a-f]+):([0-9a-f]*) \((\w+)\)( failed)?$/i.exec(p);
  if (m) {
    const bytes = hexBytes(m[3]!);
    if (bytes && hex(m[1]) !== undefined && hex(m[2]) !== undefined) {
      return { csBase: hex(m[1])!, rip: hex(m[2])!, bytes, mode: m[4]!, failed: m[5] !== undefined, form: 'kernel' };
    }
  }
  // plugin: "%x:%llx: xx xx ...[ disassembly][ FAIL]"
  // Each byte is a whole token, so disassembly that starts with hex letters ("add") is not taken for a byte.
  m = /^([0-9a-f]+):([0-9a-f]+):((?: [0-9a-f]{2}(?= |$))+)(.*)$/i.exec(p);
  if (m) {
    const bytes = hexBytes(m[3]!);
    if (bytes && hex(m[1]) !== undefined && hex(m[2]) !== undefined) {
      return { csBase: hex(m[1])!, rip: hex(m[2])!, bytes, mode: '', failed: /(?:^|\s)FAIL$/.test(m[4]!), form: 'plugin' };
    }
  }
  return undefined;
}

/** Events whose payload grammar this module knows. */
export const KNOWN_EVENTS = new Set([
  'kvm_exit', 'kvm_entry', 'kvm_nested_vmexit', 'kvm_nested_vmexit_inject', 'kvm_nested_vmenter', 'kvm_nested_intr_vmexit',
  'kvm_nested_vmenter_failed', 'kvm_page_fault', 'kvm_pio', 'kvm_mmio', 'kvm_cr', 'kvm_msr', 'kvm_cpuid', 'kvm_inj_exception',
  'kvm_inj_virq', 'kvm_emulate_insn', 'kvm_userspace_exit', 'kvm_smm_transition',
]);

/** Does the payload parse completely? (For unknown events: is there any payload at all.) */
export function payloadComplete(event: string, p: string): boolean {
  switch (event) {
    case 'kvm_exit': return parseKvmExit(p) !== undefined;
    case 'kvm_entry': return parseKvmEntry(p) !== undefined;
    case 'kvm_nested_vmexit': return parseNestedVmexit(p) !== undefined;
    case 'kvm_nested_vmexit_inject': return parseNestedVmexitInject(p) !== undefined;
    case 'kvm_nested_vmenter': return parseNestedVmenter(p) !== undefined;
    case 'kvm_nested_intr_vmexit': return parseRipOnly(p) !== undefined;
    case 'kvm_nested_vmenter_failed': return p !== '';
    case 'kvm_page_fault': return parsePageFault(p) !== undefined;
    case 'kvm_pio': return parsePio(p);
    case 'kvm_mmio': return parseMmio(p);
    case 'kvm_cr': return parseCr(p) !== undefined;
    case 'kvm_msr': return parseMsr(p);
    case 'kvm_cpuid': return parseCpuid(p) !== undefined;
    case 'kvm_inj_exception': return parseInjException(p) !== undefined;
    case 'kvm_inj_virq': return parseInjVirq(p) !== undefined;
    case 'kvm_emulate_insn': return parseEmulateInsn(p) !== undefined;
    case 'kvm_userspace_exit': return parseUserspaceExit(p);
    case 'kvm_smm_transition': return parseSmmTransition(p);
    default: return p !== '';
  }
}

/**
 * A complete payload that a soft wrap may still have cut short: an E4 kvm_exit ("vcpu N reason X" with some of the
 * E2 fields) parses at every field boundary, so the joiner tries the next lines too and keeps the longest parse.
 */
export function payloadExtendable(event: string, p: string): boolean {
  return event === 'kvm_exit' && parseKvmExit(p)?.form === 'E4';
}
