// Well-formedness of recorded exit information per exit reason: exit-reason bits, interruption and IDT-vectoring
// information (against the reason), qualification formats, error codes, instruction length and information, on a
// flat numeric view shared by the columnar and the object paths. Must not: allocate unless it reports a problem, or
// judge a field the source did not carry. SDM Vol. 3C 24.9, 27.2.1–27.2.5, App. C; Vol. 3A 6.13; reference §4.
import { EXIT_REASONS } from '../../cpu/generated/exit-reasons.js';
import { EXCEPTIONS_WITH_ERROR_CODE } from '../../cpu/exit-info/interruption-info.js';
import {
  decodeApicAccess, decodeCrAccess, decodeDebugQualification, decodeInstructionInfo, decodeIo, decodeMovDr, decodeTaskSwitch,
} from '../../cpu/exit-info/index.js';
import { EXIT_REASON_RESERVED_MASK } from '../../cpu/exit-info/exit-reason.js';
import { EPT_QUALIFICATION_RESERVED_MASK } from '../../cpu/ept/qualification.js';
import type { TraceRuleId } from './rules.js';

/** Bits of ExitView.known, in the trace format's ExitField order. */
export const K_REASON = 1, K_QUAL = 2, K_RIP = 4, K_LINEAR = 8, K_PHYS = 16, K_INTR = 32, K_INTR_ERR = 64, K_IDT = 128,
  K_IDT_ERR = 256, K_LEN = 512, K_INFO = 1024;

/** One exit's information as numbers; a field counts only when its bit is set in `known`. */
export interface ExitView {
  known: number;
  reason: number;
  qualLo: number;
  qualHi: number;
  intrInfo: number;
  intrError: number;
  idtInfo: number;
  idtError: number;
  instrLen: number;
  instrInfo: number;
}

export function emptyExitView(): ExitView {
  return { known: 0, reason: 0, qualLo: 0, qualHi: 0, intrInfo: 0, intrError: 0, idtInfo: 0, idtError: 0, instrLen: 0, instrInfo: 0 };
}

export type ExitInfoSink = (rule: TraceRuleId, field: string, expected: string, actual: string, explanation: string) => void;

const VALID = 0x8000_0000;
const INTR_RESERVED = 0x7fff_e000;
const DEFINED_REASONS = new Set(EXIT_REASONS.filter((r) => r.kind !== 'reserved').map((r) => r.reason));
const NAME = new Map(EXIT_REASONS.map((r) => [r.reason, r.name]));
const ENTRY_FAILURE_REASONS = new Set([33, 34, 41]);

/** Reasons whose exit can occur during event delivery through the IDT (SDM 27.2.4), so IDT-vectoring may be valid. */
const DURING_DELIVERY = new Set([
  0, // a fault during delivery, intercepted by the exception bitmap
  9, // task switch through a task gate in the IDT
  44, // APIC access during delivery
  48, 49, // EPT violation / misconfiguration during delivery
  62, 66, // PML full, SPP-related event
  74, 75, // bus lock, instruction timeout (notify) may report the event in delivery
]);

/** Basic reasons whose qualification the SDM clears (27.2.1: "for all other VM exits, this field is cleared"). */
const ZERO_QUALIFICATION = new Set([1, 2, 3, 6, 7, 8, 10, 11, 12, 13, 15, 16, 17, 18, 20, 24, 26, 31, 32, 37, 39, 40, 43, 51, 52, 54, 55, 57, 61]);

/**
 * Shortest encoding of each instruction whose exit defines the VM-exit instruction length (SDM 27.2.5); prefixes only
 * make an instruction longer. CR access and I/O depend on the qualification (see minimumLength).
 */
const MIN_LENGTH: ReadonlyMap<number, number> = new Map([
  [10, 2], [11, 2], [12, 1], [13, 2], [14, 3], [15, 2], [16, 2], [17, 2], [18, 3], [19, 4], [20, 3], [21, 3], [22, 3],
  [23, 3], [24, 3], [25, 3], [26, 3], [27, 4], [28, 2], [29, 3], [30, 1], [31, 2], [32, 2], [36, 3], [39, 3], [40, 2],
  [46, 3], [47, 3], [50, 5], [51, 3], [53, 5], [54, 2], [55, 3], [57, 3], [58, 5], [59, 3], [60, 3], [61, 3], [63, 3],
  [64, 3], [65, 3], [67, 4], [68, 4], [69, 4], [70, 3], [78, 4], [79, 4], [84, 1], [85, 1],
]);

const EPT_RESERVED_LO = Number(EPT_QUALIFICATION_RESERVED_MASK & 0xffff_ffffn) | 0;
const EPT_RESERVED_HI = Number(EPT_QUALIFICATION_RESERVED_MASK >> 32n) | 0;
const hex = (v: number): string => '0x' + (v >>> 0).toString(16);
const hex64 = (lo: number, hi: number): string => '0x' + ((BigInt(hi >>> 0) << 32n) | BigInt(lo >>> 0)).toString(16);

export function reasonName(basic: number): string {
  return NAME.get(basic) ?? `reason ${basic}`;
}

/**
 * Shortest legal instruction length for an exit, or 0 when the SDM does not define the instruction length for it
 * (the field is then not checked).
 */
export function minimumLength(v: ExitView): number {
  const basic = v.reason & 0xffff;
  if ((v.known & K_IDT) !== 0 && (v.idtInfo & VALID) !== 0) {
    // An exit during delivery of a software interrupt or exception reports the length of INT n / INT3 / INTO / INT1.
    const type = (v.idtInfo >>> 8) & 7;
    if (type === 4) return 2;
    if (type === 5 || type === 6) return 1;
  }
  if (basic === 0) {
    if ((v.known & K_INTR) === 0 || (v.intrInfo & VALID) === 0) return 0;
    const type = (v.intrInfo >>> 8) & 7;
    return type === 5 || type === 6 ? 1 : 0;
  }
  const min = MIN_LENGTH.get(basic) ?? 0;
  if (min === 0 || (v.known & K_QUAL) === 0) return basic === 28 || basic === 30 ? 0 : min;
  if (basic === 28) return ((v.qualLo >>> 4) & 3) === 2 ? 2 : 3; // CLTS 0F 06; MOV CR / LMSW take a ModRM byte
  if (basic === 30) return (v.qualLo & 0x40) !== 0 ? 2 : 1; // IN/OUT imm8 vs DX forms, INS/OUTS
  return min;
}

function checkEvent(
  info: number, error: number, errorKnown: boolean, which: 'intr-info' | 'idt-vectoring', reason: string, out: ExitInfoSink,
): void {
  const field = which === 'intr-info' ? 'VM_EXIT_INTR_INFO' : 'IDT_VECTORING_INFO_FIELD';
  const reserved = (info & INTR_RESERVED) >>> 0;
  if (reserved !== 0) {
    out(`trace.exit-info.${which}.reserved`, field, `bits 30:13 clear`, hex(info), `${field} ${hex(info)} sets reserved bits ${hex(reserved)} (${reason})`);
  }
  const vector = info & 0xff;
  const type = (info >>> 8) & 7;
  const errorValid = (info & 0x800) !== 0;
  let typeProblem: string | undefined;
  if (type === 1) typeProblem = 'interruption type 1 is not used';
  else if (which === 'intr-info' && (type === 4 || type === 7)) typeProblem = `interruption type ${type} is never reported for the event that caused a VM exit`;
  else if (type === 2 && vector !== 2) typeProblem = `an NMI (type 2) has vector 2, not ${vector}`;
  else if (type === 3 && (vector > 31 || vector === 2)) typeProblem = `a hardware exception (type 3) has a vector in 0–31 other than 2, not ${vector}`;
  else if (type === 5 && vector !== 1) typeProblem = `a privileged software exception (type 5, INT1) has vector 1, not ${vector}`;
  else if (type === 6 && vector !== 3 && vector !== 4) typeProblem = `a software exception (type 6, INT3/INTO) has vector 3 or 4, not ${vector}`;
  if (typeProblem) out(`trace.exit-info.${which}.type`, field, 'a used type with a vector it allows', hex(info), `${field} ${hex(info)}: ${typeProblem} (${reason})`);
  const pushes = type === 3 && EXCEPTIONS_WITH_ERROR_CODE.has(vector);
  if (errorValid && !pushes) {
    out(`trace.exit-info.${which}.error-code`, field, 'bit 11 clear (the event pushes no error code)', hex(info),
      `${field} ${hex(info)} marks an error code valid, but ${type === 3 ? `exception ${vector}` : `interruption type ${type}`} pushes none (${reason})`);
  } else if (which === 'intr-info' && !errorValid && type === 3 && vector === 14) {
    out('trace.exit-info.intr-info.error-code', field, 'bit 11 set (#PF always pushes an error code)', hex(info),
      `${field} ${hex(info)} reports a page fault without an error code; paging implies protected mode, where #PF pushes one (${reason})`);
  }
  if (errorValid && errorKnown && pushes) {
    const errField = which === 'intr-info' ? 'VM_EXIT_INTR_ERROR_CODE' : 'IDT_VECTORING_ERROR_CODE';
    if ((vector === 8 || vector === 17) && error !== 0) {
      out('trace.exit-info.error-code', errField, '0', hex(error), `${vector === 8 ? '#DF' : '#AC'} always pushes error code 0, the trace has ${hex(error)} (${reason})`);
    } else if (vector >= 10 && vector <= 13 && (error & 0xffff_0000) !== 0) {
      out('trace.exit-info.error-code', errField, 'bits 31:16 clear', hex(error), `the selector error code of exception ${vector} has bits 31:16 set: ${hex(error)} (${reason})`);
    }
  }
}

/** Check one exit's information; `out` is called once per problem. Returns how many rules were evaluated. */
export function checkExitInfo(v: ExitView, out: ExitInfoSink): number {
  if ((v.known & K_REASON) === 0) return 0;
  let evaluated = 1;
  const reason = v.reason >>> 0;
  const basic = reason & 0xffff;
  const name = reasonName(basic);
  const failed = (reason & 0x8000_0000) !== 0;
  const reserved = (reason & EXIT_REASON_RESERVED_MASK) >>> 0;
  if (reserved !== 0) {
    out('trace.exit-info.reason.reserved', 'VM_EXIT_REASON', 'bits 16, 25:17 and 30 clear', hex(reason), `exit reason ${hex(reason)} sets ${hex(reserved)}, bits the processor leaves 0`);
  }
  if (!DEFINED_REASONS.has(basic)) {
    out('trace.exit-info.reason.unknown', 'VM_EXIT_REASON', 'a basic exit reason of SDM Appendix C', hex(reason), `basic exit reason ${basic} is not defined (reserved or past the table)`);
    return evaluated;
  }
  if (failed !== ENTRY_FAILURE_REASONS.has(basic)) {
    out('trace.exit-info.reason.entry-failure', 'VM_EXIT_REASON', failed ? 'basic reason 33, 34 or 41 with bit 31' : 'bit 31 set for a VM-entry failure', hex(reason),
      failed ? `bit 31 (VM-entry failure) is set on basic reason ${basic} (${name}), which is not an entry failure` : `${name} is a VM-entry failure, reported with bit 31 set`);
  }
  const qualKnown = (v.known & K_QUAL) !== 0;
  if (failed) {
    // After a failed entry only the reason and the qualification are defined.
    if (basic === 33 && qualKnown && !(v.qualHi === 0 && (v.qualLo === 0 || v.qualLo === 2 || v.qualLo === 3 || v.qualLo === 4))) {
      out('trace.exit-info.qualification', 'EXIT_QUALIFICATION', '0, 2, 3 or 4', hex64(v.qualLo, v.qualHi), `an invalid-guest-state failure reports qualification 0 (default), 2 (PDPTEs), 3 (NMI injection under STI blocking) or 4 (VMCS link pointer)`);
    }
    return evaluated + 1;
  }

  // VM-exit interruption information.
  const intrKnown = (v.known & K_INTR) !== 0;
  const intrValid = intrKnown && (v.intrInfo & VALID) !== 0;
  if (intrKnown) {
    evaluated++;
    if (basic === 0 && !intrValid) {
      out('trace.exit-info.intr-info.valid', 'VM_EXIT_INTR_INFO', 'valid (bit 31 set)', hex(v.intrInfo), 'an exception or NMI exit always reports the event in VM-exit interruption information');
    } else if (basic !== 0 && basic !== 1 && intrValid) {
      out('trace.exit-info.intr-info.valid', 'VM_EXIT_INTR_INFO', 'invalid (bit 31 clear)', hex(v.intrInfo), `VM-exit interruption information is valid only for exception/NMI and external-interrupt exits, not ${name}`);
    }
    if (intrValid) {
      if (basic === 1 && (((v.intrInfo >>> 8) & 7) !== 0 || (v.intrInfo & 0x800) !== 0)) {
        out('trace.exit-info.intr-info.type', 'VM_EXIT_INTR_INFO', 'type 0 (external interrupt), no error code', hex(v.intrInfo), 'an external-interrupt exit that acknowledges the interrupt reports type 0 and its vector');
      } else if (basic === 0 && ((v.intrInfo >>> 8) & 7) === 0) {
        out('trace.exit-info.intr-info.type', 'VM_EXIT_INTR_INFO', 'type 2, 3, 5 or 6', hex(v.intrInfo), 'an exception or NMI exit does not report an external interrupt');
      }
      checkEvent(v.intrInfo, v.intrError, (v.known & K_INTR_ERR) !== 0, 'intr-info', name, out);
    }
  }

  // IDT-vectoring information against the reason.
  if ((v.known & K_IDT) !== 0) {
    evaluated++;
    const idtValid = (v.idtInfo & VALID) !== 0;
    if (idtValid && !DURING_DELIVERY.has(basic)) {
      out('trace.exit-info.idt-vectoring.reason', 'IDT_VECTORING_INFO_FIELD', 'invalid (bit 31 clear)', hex(v.idtInfo),
        `${name} exits do not occur during event delivery through the IDT, so IDT-vectoring information cannot be valid`);
    } else if (idtValid && basic === 0 && intrValid && (v.intrInfo & 0x7ff) === 0x308) {
      out('trace.exit-info.idt-vectoring.reason', 'IDT_VECTORING_INFO_FIELD', 'invalid (bit 31 clear)', hex(v.idtInfo),
        'a double fault that causes the VM exit directly is not an exit during event delivery');
    } else if (basic === 9 && qualKnown) {
      const viaGate = ((v.qualLo >>> 30) & 3) === 3;
      if (viaGate !== idtValid) {
        out('trace.exit-info.idt-vectoring.reason', 'IDT_VECTORING_INFO_FIELD', viaGate ? 'valid (task switch through an IDT task gate)' : 'invalid (task switch by CALL, IRET or JMP)', hex(v.idtInfo),
          `a task switch ${viaGate ? 'through a task gate in the IDT happens during event delivery' : 'by CALL, IRET or JMP is not event delivery'}, so IDT-vectoring information is ${viaGate ? 'valid' : 'invalid'}`);
      }
    }
    if (idtValid) checkEvent(v.idtInfo, v.idtError, (v.known & K_IDT_ERR) !== 0, 'idt-vectoring', name, out);
  }

  // Exit qualification.
  if (qualKnown) {
    evaluated++;
    const problem = qualificationProblem(basic, v, intrValid);
    if (problem) out('trace.exit-info.qualification', 'EXIT_QUALIFICATION', problem.expected, hex64(v.qualLo, v.qualHi), `${name}: ${problem.why}`);
  }

  // Instruction length.
  if ((v.known & K_LEN) !== 0) {
    const min = minimumLength(v);
    if (min > 0) {
      evaluated++;
      if (v.instrLen < min || v.instrLen > 15) {
        out('trace.exit-info.instruction-length', 'VM_EXIT_INSTRUCTION_LEN', `${min}–15`, String(v.instrLen),
          `${name}: an instruction length of ${v.instrLen} is impossible (x86 instructions are at most 15 bytes; the shortest encoding here takes ${min})`);
      }
    }
  }

  // Instruction information.
  if ((v.known & K_INFO) !== 0) {
    const d = instructionInfoVerdict(basic, v.instrInfo >>> 0);
    if (d) {
      evaluated++;
      if (d.reserved !== 0 || d.malformed.length > 0) {
        const parts = [d.reserved !== 0 ? `reserved bits ${hex(d.reserved)}` : '', d.malformed.length ? `unused encodings in ${d.malformed.join(', ')}` : ''].filter(Boolean);
        out('trace.exit-info.instruction-info', 'VMX_INSTRUCTION_INFO', 'reserved bits clear, defined encodings', hex(v.instrInfo), `${name}: ${parts.join('; ')}`);
      }
    }
  }
  return evaluated;
}

interface Verdict {
  readonly reserved: number;
  readonly malformed: readonly string[];
}
type Problem = { expected: string; why: string };

// Memos of the pure field decoders, by (basic reason, value): exits repeat the same few encodings (one I/O port, one
// CR access), so the decoders (which build objects) run once per distinct value. Bounded; they start over when full.
const MEMO_LIMIT = 1 << 16;
const INFO_MEMO = new Map<number, Verdict | null>();
const QUAL_MEMO = new Map<number, Problem | null>();

/** decodeInstructionInfo's reserved bits and malformed encodings; null when the reason has no layout. */
function instructionInfoVerdict(basic: number, raw: number): Verdict | null {
  const key = basic * 0x1_0000_0000 + raw;
  let d = INFO_MEMO.get(key);
  if (d === undefined) {
    const x = decodeInstructionInfo(basic, raw);
    d = x ? { reserved: x.reserved, malformed: x.malformed } : null;
    if (INFO_MEMO.size >= MEMO_LIMIT) INFO_MEMO.clear();
    INFO_MEMO.set(key, d);
  }
  return d;
}

/** The problem fromDecoded reports for a qualification decoded by a field codec (reasons 0 (#DB), 9, 28, 29, 30, 44). */
function decodedProblem(basic: number, v: ExitView): Problem | undefined {
  // Bits 63:32 are reserved in all of these layouts: such values are rare and not remembered.
  const key = v.qualHi === 0 ? basic * 0x1_0000_0000 + (v.qualLo >>> 0) : -1;
  let p = key >= 0 ? QUAL_MEMO.get(key) : undefined;
  if (p === undefined) {
    const q = (BigInt(v.qualHi >>> 0) << 32n) | BigInt(v.qualLo >>> 0);
    const d = basic === 0 ? decodeDebugQualification(q) : basic === 9 ? decodeTaskSwitch(q) : basic === 28 ? decodeCrAccess(q)
      : basic === 29 ? decodeMovDr(q) : basic === 30 ? decodeIo(q) : decodeApicAccess(q);
    const what = basic === 0 ? 'debug-exception' : basic === 9 ? 'task-switch' : basic === 28 ? 'control-register-access'
      : basic === 29 ? 'MOV-DR' : basic === 30 ? 'I/O-instruction' : 'APIC-access';
    p = fromDecoded(d, what) ?? null;
    if (key >= 0) {
      if (QUAL_MEMO.size >= MEMO_LIMIT) QUAL_MEMO.clear();
      QUAL_MEMO.set(key, p);
    }
  }
  return p ?? undefined;
}

function fromDecoded(d: { reserved: bigint; malformed: readonly string[] }, what: string): Problem | undefined {
  if (d.reserved === 0n && d.malformed.length === 0) return undefined;
  const parts = [d.reserved !== 0n ? `reserved bits 0x${d.reserved.toString(16)} set` : '', d.malformed.length ? `unused encoding in ${d.malformed.join(', ')}` : ''].filter(Boolean);
  return { expected: `a ${what} qualification (SDM 27.2.1)`, why: parts.join('; ') };
}

function qualificationProblem(basic: number, v: ExitView, intrValid: boolean): Problem | undefined {
  const nonzeroAbove = (bits: number) => (bits >= 32 ? v.qualHi >>> (bits - 32) !== 0 : v.qualHi !== 0 || v.qualLo >>> bits !== 0);
  if (ZERO_QUALIFICATION.has(basic)) {
    return v.qualLo === 0 && v.qualHi === 0 ? undefined : { expected: '0', why: 'the SDM clears the exit qualification for this exit' };
  }
  switch (basic) {
    case 0: {
      if (!intrValid) return undefined;
      const vector = v.intrInfo & 0xff;
      if (vector === 14 && ((v.intrInfo >>> 8) & 7) === 3) return undefined; // the faulting linear address
      if (vector === 1) return decodedProblem(0, v);
      return v.qualLo === 0 && v.qualHi === 0 ? undefined : { expected: '0', why: `only #PF and #DB exits carry a qualification, not vector ${vector}` };
    }
    case 4:
    case 45:
      return nonzeroAbove(8) ? { expected: 'bits 63:8 clear', why: 'the qualification holds only a vector (bits 7:0)' } : undefined;
    case 9:
    case 28:
    case 29:
    case 30:
      return decodedProblem(basic, v);
    case 36: return nonzeroAbove(1) ? { expected: 'bits 63:1 clear', why: 'MWAIT reports only whether monitoring hardware was armed (bit 0)' } : undefined;
    case 44: return decodedProblem(basic, v);
    case 48: {
      // Reserved bits as 32-bit halves first: the bigint (for the message) only when one is set.
      if ((v.qualLo & EPT_RESERVED_LO) === 0 && (v.qualHi & EPT_RESERVED_HI) === 0) return undefined;
      const q = (BigInt(v.qualHi >>> 0) << 32n) | BigInt(v.qualLo >>> 0);
      return { expected: 'bits 63:17 clear', why: `reserved bits 0x${(q & EPT_QUALIFICATION_RESERVED_MASK).toString(16)} set in an EPT-violation qualification` };
    }
    case 56: return nonzeroAbove(12) ? { expected: 'bits 63:12 clear', why: 'an APIC-write qualification holds only the page offset (bits 11:0)' } : undefined;
    case 62: return (v.qualHi !== 0 || (v.qualLo & ~0x1000) !== 0) ? { expected: 'only bit 12 (NMI unblocking) may be set', why: 'a page-modification-log-full qualification has no other bits' } : undefined;
    default: return undefined;
  }
}
