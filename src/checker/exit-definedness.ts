// Which VM-exit information fields the SDM defines for an exit, so the comparison masks exactly the fields a CPU leaves
// undefined (L1 cannot rely on them, reference §9.1) and compares every other one.
// Must not: compare values or know which machine produced an exit. SDM 27.2.1–27.2.5, 26.8 (entry failures).
import { ExitReason } from '../cpu/generated/exit-reasons.js';
import { instructionInfoLayout } from '../cpu/exit-info/instruction-info.js';
import type { ExitInformation } from '../cpu/l1/observation.js';

export type ExitInfoField = Exclude<keyof ExitInformation, 'exitReason'>;

const ENTRY_FAILURE = 0x8000_0000;
const VALID = 0x8000_0000;
const ERROR_CODE_VALID = 0x800;

/** Exits caused by executing an instruction: they record the instruction length (SDM 27.2.5). */
const INSTRUCTION_EXITS: ReadonlySet<number> = new Set([
  ExitReason.CPUID, ExitReason.GETSEC, ExitReason.HLT, ExitReason.INVD, ExitReason.INVLPG, ExitReason.RDPMC, ExitReason.RDTSC,
  ExitReason.RSM, ExitReason.VMCALL, ExitReason.VMCLEAR, ExitReason.VMLAUNCH, ExitReason.VMPTRLD, ExitReason.VMPTRST,
  ExitReason.VMREAD, ExitReason.VMRESUME, ExitReason.VMWRITE, ExitReason.VMXOFF, ExitReason.VMXON, ExitReason.CR_ACCESS,
  ExitReason.DR_ACCESS, ExitReason.IO_INSTRUCTION, ExitReason.MSR_READ, ExitReason.MSR_WRITE, ExitReason.MWAIT_INSTRUCTION,
  ExitReason.MONITOR_INSTRUCTION, ExitReason.PAUSE_INSTRUCTION, ExitReason.GDTR_IDTR, ExitReason.LDTR_TR, ExitReason.INVEPT,
  ExitReason.RDTSCP, ExitReason.INVVPID, ExitReason.WBINVD, ExitReason.XSETBV, ExitReason.RDRAND, ExitReason.INVPCID,
  ExitReason.VMFUNC, ExitReason.ENCLS, ExitReason.RDSEED, ExitReason.XSAVES, ExitReason.XRSTORS, ExitReason.PCONFIG,
  ExitReason.UMWAIT, ExitReason.TPAUSE, ExitReason.LOADIWKEY, ExitReason.ENCLV, ExitReason.SEAMCALL, ExitReason.TDCALL,
  ExitReason.RDMSRLIST, ExitReason.WRMSRLIST, ExitReason.URDMSR, ExitReason.UWRMSR, ExitReason.MSR_READ_IMM, ExitReason.MSR_WRITE_IMM,
]);

/** Interruption types of software events (SDM 24.9.2): their delivery records the instruction length. */
function softwareEvent(info: number): boolean {
  const type = (info >>> 8) & 7;
  return (info & VALID) !== 0 && (type === 4 || type === 5 || type === 6);
}

/**
 * Whether `field` holds an architecturally defined value after the exit described by `exit` (the exit as the
 * reference recorded it). Exit reason and qualification are always defined; interruption and IDT-vectoring information
 * are always written (0 = not valid); everything else depends on the reason (and, for some, on the qualification).
 */
export function exitFieldDefined(exit: ExitInformation, field: ExitInfoField): boolean {
  const reason = exit.exitReason >>> 0;
  const basic = reason & 0xffff;
  const q = exit.qualification;
  // A VM-entry failure writes only the exit reason and the qualification (SDM 26.8).
  if ((reason & ENTRY_FAILURE) !== 0) return field === 'qualification';
  switch (field) {
    case 'qualification':
    case 'interruptionInfo':
    case 'idtVectoringInfo':
      return true;
    case 'interruptionErrorCode':
      return (exit.interruptionInfo & VALID) !== 0 && (exit.interruptionInfo & ERROR_CODE_VALID) !== 0;
    case 'idtVectoringErrorCode':
      return (exit.idtVectoringInfo & VALID) !== 0 && (exit.idtVectoringInfo & ERROR_CODE_VALID) !== 0;
    case 'guestLinearAddress':
      // LMSW with a memory operand, string I/O, EPT violations with a linear address (qualification bit 7).
      if (basic === ExitReason.CR_ACCESS) return ((q >> 4n) & 3n) === 3n && (q & 0x40n) !== 0n;
      if (basic === ExitReason.IO_INSTRUCTION) return (q & 0x10n) !== 0n;
      if (basic === ExitReason.EPT_VIOLATION) return (q & 0x80n) !== 0n;
      return false;
    case 'guestPhysicalAddress':
      return basic === ExitReason.EPT_VIOLATION || basic === ExitReason.EPT_MISCONFIG;
    case 'instructionLength':
      return INSTRUCTION_EXITS.has(basic) || softwareEvent(exit.interruptionInfo) || softwareEvent(exit.idtVectoringInfo)
        || basic === ExitReason.TASK_SWITCH;
    case 'instructionInfo':
      // INS/OUTS report instruction information only for the string forms.
      if (basic === ExitReason.IO_INSTRUCTION) return (q & 0x10n) !== 0n;
      return instructionInfoLayout(basic) !== undefined;
  }
}
