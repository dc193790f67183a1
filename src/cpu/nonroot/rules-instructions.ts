// One rule per exit-causing instruction other than CR/DR/I/O/MSR accesses: the unconditional exits
// (CPUID, GETSEC, INVD, XSETBV, VMX instructions, SEAMCALL/TDCALL) and those conditioned on a control
// (HLT, INVLPG, INVPCID, RDPMC, RDTSC(P), MWAIT, MONITOR, PAUSE, WBINVD, descriptor tables, RDRAND, RDSEED,
// XSAVES/XRSTORS, ENCLS/ENCLV, PCONFIG, UMWAIT/TPAUSE, LOADIWKEY, VMFUNC), each with the faults that the SDM
// gives priority over the exit. Must not: execute the instruction. SDM Vol. 3C 25.1.1–25.1.3, 25.3, 27.2.
import { Primary, Secondary, Tertiary } from '../generated/controls.js';
import { ExitReason } from '../generated/exit-reasons.js';
import { Cr4, Reg, type CpuState } from '../state.js';
import type { DecodedInstr } from '../interp/decoded.js';
import { effectiveAddress, linearAddress } from '../interp/ea.js';
import { EXECUTE, GP0, UD, bitmapBit, cplOf, cr4, instrExit, privileged, vmxInstructionUd, type RuleInputs } from './common.js';
import type { NonRootControls, NonRootEnv } from './controls.js';
import {
  displacementQualification, gdtrIdtrInfo, invInfo, ldtrTrInfo, loadiwkeyInfo, rdrandInfo, vmreadWriteInfo, vmxMemInfo, waitInfo,
} from './instruction-info.js';
import type { NonRootDecision } from './types.js';

/** CPUID: unconditional, no privilege check. */
export function cpuidRule(instr: DecodedInstr): NonRootDecision {
  return instrExit(ExitReason.CPUID, instr);
}

/** GETSEC: #UD if CR4.SMXE = 0, else unconditional exit. */
export function getsecRule(instr: DecodedInstr, state: CpuState): NonRootDecision {
  if (!cr4(state, Cr4.SMXE)) return UD;
  return instrExit(ExitReason.GETSEC, instr);
}

/** INVD: CPL check first, then unconditional. */
export function invdRule(instr: DecodedInstr, state: CpuState): NonRootDecision {
  if (privileged(state)) return GP0;
  return instrExit(ExitReason.INVD, instr);
}

/** XSETBV: #UD if CR4.OSXSAVE = 0, #GP(0) if CPL > 0, then unconditional (bad XCR values fault only if no exit). */
export function xsetbvRule(instr: DecodedInstr, state: CpuState): NonRootDecision {
  if (!cr4(state, Cr4.OSXSAVE)) return UD;
  if (privileged(state)) return GP0;
  return instrExit(ExitReason.XSETBV, instr);
}

/** VMCALL exits in every mode and at every CPL. */
export function vmcallRule(instr: DecodedInstr): NonRootDecision {
  return instrExit(ExitReason.VMCALL, instr);
}

const VMX_REASON: Record<string, number> = {
  vmclear: ExitReason.VMCLEAR, vmlaunch: ExitReason.VMLAUNCH, vmptrld: ExitReason.VMPTRLD, vmptrst: ExitReason.VMPTRST,
  vmresume: ExitReason.VMRESUME, vmxoff: ExitReason.VMXOFF, vmxon: ExitReason.VMXON, invept: ExitReason.INVEPT, invvpid: ExitReason.INVVPID,
};

/**
 * VMX instructions: the #UD checks (PE = 0, VM = 1, compatibility mode; VMXON also CR4.VMXE = 0) precede the
 * exit; CPL is checked only after it (so CPL 3 exits). Memory forms report displacement + instruction info.
 */
export function vmxRule(instr: DecodedInstr, state: CpuState): NonRootDecision {
  if (vmxInstructionUd(state)) return UD;
  if (instr.name === 'vmxon' && !cr4(state, Cr4.VMXE)) return UD;
  const reason = VMX_REASON[instr.name]!;
  if (instr.name === 'invept' || instr.name === 'invvpid') {
    return instrExit(reason, instr, displacementQualification(instr, state), { instructionInfo: invInfo(instr) });
  }
  if (instr.mem) return instrExit(reason, instr, displacementQualification(instr, state), { instructionInfo: vmxMemInfo(instr) });
  return instrExit(reason, instr);
}

/**
 * VMREAD/VMWRITE: exit unless VMCS shadowing is on, the encoding register has no bits above 14, and the
 * encoding's bit in the VMREAD/VMWRITE bitmap is 0 (then the access goes to the shadow VMCS).
 */
export function vmreadWriteRule(instr: DecodedInstr, state: CpuState, c: NonRootControls, env: NonRootEnv): NonRootDecision {
  if (vmxInstructionUd(state)) return UD;
  const isWrite = instr.name === 'vmwrite';
  const reason = isWrite ? ExitReason.VMWRITE : ExitReason.VMREAD;
  const exit = () =>
    instrExit(reason, instr, displacementQualification(instr, state), { instructionInfo: vmreadWriteInfo(instr, isWrite) });
  if (!(c.secondary & Secondary.VMCS_SHADOWING)) return exit();
  const encOp = isWrite ? instr.ops[0]! : instr.ops[1]!;
  if (encOp.kind !== 'reg') throw new Error('turtles bug: VMREAD/VMWRITE encoding operand');
  const enc = state.longMode64 ? state.gpr[encOp.reg]! : state.gpr[encOp.reg]! & 0xffff_ffffn;
  if (enc >> 15n !== 0n) return exit();
  const bitmap = isWrite ? c.vmwriteBitmap : c.vmreadBitmap;
  if (bitmapBit((a) => env.readPhysByte(a), bitmap, Number(enc))) return exit();
  return EXECUTE;
}

/** SEAMCALL/TDCALL in VMX non-root operation exit unconditionally (reference §4.2; KVM N7 differs). */
export function seamRule(instr: DecodedInstr): NonRootDecision {
  return instrExit(instr.name === 'seamcall' ? ExitReason.SEAMCALL : ExitReason.TDCALL, instr);
}

/** INVLPG: CPL first; exit if "INVLPG exiting"; qualification = linear-address operand (63:32 cleared outside 64-bit mode). */
export function invlpgRule(instr: DecodedInstr, state: CpuState, c: NonRootControls): NonRootDecision {
  if (privileged(state)) return GP0;
  if (!(c.primary & Primary.INVLPG_EXITING)) return EXECUTE;
  const mem = instr.mem!;
  let linear = linearAddress(state, mem.seg, effectiveAddress(instr, mem, state));
  if (!state.longMode64) linear &= 0xffff_ffffn;
  return instrExit(ExitReason.INVLPG, instr, linear);
}

/** INVPCID: #UD unless "enable INVPCID"; CPL first; exit iff "INVLPG exiting". */
export function invpcidRule(instr: DecodedInstr, state: CpuState, c: NonRootControls): NonRootDecision {
  if (!(c.secondary & Secondary.ENABLE_INVPCID) || state.v8086) return UD;
  if (privileged(state)) return GP0;
  if (!(c.primary & Primary.INVLPG_EXITING)) return EXECUTE;
  return instrExit(ExitReason.INVPCID, instr, displacementQualification(instr, state), { instructionInfo: invInfo(instr) });
}

export function hltRule(instr: DecodedInstr, state: CpuState, c: NonRootControls): NonRootDecision {
  if (privileged(state)) return GP0;
  return c.primary & Primary.HLT_EXITING ? instrExit(ExitReason.HLT, instr) : EXECUTE;
}

/** RDPMC: #GP(0) for CPL > 0 with CR4.PCE = 0 precedes the exit; an invalid ECX does not (it faults only if no exit). */
export function rdpmcRule(instr: DecodedInstr, state: CpuState, c: NonRootControls): NonRootDecision {
  if (cplOf(state) > 0 && !cr4(state, Cr4.PCE)) return GP0;
  return c.primary & Primary.RDPMC_EXITING ? instrExit(ExitReason.RDPMC, instr) : EXECUTE;
}

/** RDTSC: #GP(0) for CR4.TSD with CPL > 0 precedes the exit. */
export function rdtscRule(instr: DecodedInstr, state: CpuState, c: NonRootControls): NonRootDecision {
  if (cr4(state, Cr4.TSD) && cplOf(state) > 0) return GP0;
  return c.primary & Primary.RDTSC_EXITING ? instrExit(ExitReason.RDTSC, instr) : EXECUTE;
}

/** RDTSCP: #UD unless "enable RDTSCP"; then as RDTSC (exit reason 51). */
export function rdtscpRule(instr: DecodedInstr, state: CpuState, c: NonRootControls): NonRootDecision {
  if (!(c.secondary & Secondary.ENABLE_RDTSCP)) return UD;
  if (cr4(state, Cr4.TSD) && cplOf(state) > 0) return GP0;
  return c.primary & Primary.RDTSC_EXITING ? instrExit(ExitReason.RDTSCP, instr) : EXECUTE;
}

/** RSM outside SMM is #UD; the model has no SMM, so RSM never exits (exit reason 17 needs SMM). */
export function rsmRule(): NonRootDecision {
  return UD;
}

/** MWAIT: #UD at CPL > 0 precedes; exit if "MWAIT exiting"; qualification bit 0 = monitoring armed. */
export function mwaitRule(instr: DecodedInstr, state: CpuState, c: NonRootControls, inputs: RuleInputs): NonRootDecision {
  if (cplOf(state) > 0) return UD;
  return c.primary & Primary.MWAIT_EXITING ? instrExit(ExitReason.MWAIT_INSTRUCTION, instr, inputs.monitorArmed ? 1n : 0n) : EXECUTE;
}

export function monitorRule(instr: DecodedInstr, state: CpuState, c: NonRootControls): NonRootDecision {
  if (cplOf(state) > 0) return UD;
  return c.primary & Primary.MONITOR_EXITING ? instrExit(ExitReason.MONITOR_INSTRUCTION, instr) : EXECUTE;
}

/** PAUSE: "PAUSE exiting", or "PAUSE-loop exiting" at CPL 0 when the caller reports the loop window exceeded. */
export function pauseRule(instr: DecodedInstr, state: CpuState, c: NonRootControls, inputs: RuleInputs): NonRootDecision {
  if (c.primary & Primary.PAUSE_EXITING) return instrExit(ExitReason.PAUSE_INSTRUCTION, instr);
  if (c.secondary & Secondary.PAUSE_LOOP_EXITING && cplOf(state) === 0 && inputs.pauseLoopExceeded) {
    return instrExit(ExitReason.PAUSE_INSTRUCTION, instr);
  }
  return EXECUTE;
}

/** WBINVD / WBNOINVD share exit reason 54 and the "WBINVD exiting" control. */
export function wbinvdRule(instr: DecodedInstr, state: CpuState, c: NonRootControls): NonRootDecision {
  if (privileged(state)) return GP0;
  return c.secondary & Secondary.WBINVD_EXITING ? instrExit(ExitReason.WBINVD, instr) : EXECUTE;
}

/**
 * Descriptor-table instructions under "descriptor-table exiting". Faults with priority: LLDT/LTR/SLDT/STR are
 * #UD in real and virtual-8086 mode; the loads need CPL 0; the stores need CPL 0 only with CR4.UMIP.
 */
export function descriptorTableRule(instr: DecodedInstr, state: CpuState, c: NonRootControls): NonRootDecision {
  const name = instr.name;
  const ldtTr = name === 'lldt' || name === 'ltr' || name === 'sldt' || name === 'str';
  if (ldtTr && (!state.protectedMode || state.v8086)) return UD;
  const load = name === 'lgdt' || name === 'lidt' || name === 'lldt' || name === 'ltr';
  if (load && privileged(state)) return GP0;
  if (!load && cr4(state, Cr4.UMIP) && cplOf(state) > 0) return GP0;
  if (!(c.secondary & Secondary.DESCRIPTOR_TABLE_EXITING)) return EXECUTE;
  if (ldtTr) {
    return instrExit(ExitReason.LDTR_TR, instr, displacementQualification(instr, state), { instructionInfo: ldtrTrInfo(instr) });
  }
  return instrExit(ExitReason.GDTR_IDTR, instr, displacementQualification(instr, state), { instructionInfo: gdtrIdtrInfo(instr) });
}

export function rdrandRule(instr: DecodedInstr, _state: CpuState, c: NonRootControls): NonRootDecision {
  const seed = instr.name === 'rdseed';
  const on = seed ? c.secondary & Secondary.RDSEED_EXITING : c.secondary & Secondary.RDRAND_EXITING;
  if (!on) return EXECUTE;
  return instrExit(seed ? ExitReason.RDSEED : ExitReason.RDRAND, instr, 0n, { instructionInfo: rdrandInfo(instr) });
}

/**
 * XSAVES/XRSTORS: #UD unless "enable XSAVES/XRSTORS" (and CR4.OSXSAVE); CPL first; exit iff any bit of
 * EDX:EAX ∧ IA32_XSS ∧ XSS-exiting bitmap is set.
 */
export function xsavesRule(instr: DecodedInstr, state: CpuState, c: NonRootControls): NonRootDecision {
  if (!(c.secondary & Secondary.ENABLE_XSAVES_XRSTORS) || !cr4(state, Cr4.OSXSAVE)) return UD;
  if (privileged(state)) return GP0;
  const edxEax = ((state.gpr[Reg.RDX]! & 0xffff_ffffn) << 32n) | (state.gpr[Reg.RAX]! & 0xffff_ffffn);
  const xss = state.msr(0xda0);
  if ((edxEax & xss & c.xssExitBitmap) === 0n) return EXECUTE;
  const reason = instr.name.startsWith('xsaves') ? ExitReason.XSAVES : ExitReason.XRSTORS;
  return instrExit(reason, instr, displacementQualification(instr, state), { instructionInfo: vmxMemInfo(instr) });
}

function leafBit(bitmap: bigint, eax: bigint): boolean {
  const n = eax > 63n ? 63n : eax;
  return ((bitmap >> n) & 1n) === 1n;
}

/** ENCLS/ENCLV: ring-0 protected-mode instructions; exit iff the control and bitmap bit min(EAX, 63) are set. */
export function enclsRule(instr: DecodedInstr, state: CpuState, c: NonRootControls): NonRootDecision {
  if (!state.protectedMode || state.v8086) return UD;
  if (cplOf(state) > 0) return UD;
  const eax = state.gpr[Reg.RAX]! & 0xffff_ffffn;
  if (instr.name === 'encls') {
    return c.secondary & Secondary.ENABLE_ENCLS_EXITING && leafBit(c.enclsBitmap, eax) ? instrExit(ExitReason.ENCLS, instr) : EXECUTE;
  }
  return c.secondary & Secondary.ENABLE_ENCLV_EXITING && leafBit(c.enclvBitmap, eax) ? instrExit(ExitReason.ENCLV, instr) : EXECUTE;
}

/** PCONFIG: #UD unless "enable PCONFIG"; CPL first; exit iff bit min(EAX, 63) of the PCONFIG-exiting bitmap. */
export function pconfigRule(instr: DecodedInstr, state: CpuState, c: NonRootControls): NonRootDecision {
  if (!(c.secondary & Secondary.ENABLE_PCONFIG)) return UD;
  if (privileged(state)) return GP0;
  return leafBit(c.pconfigBitmap, state.gpr[Reg.RAX]! & 0xffff_ffffn) ? instrExit(ExitReason.PCONFIG, instr) : EXECUTE;
}

/**
 * UMWAIT/TPAUSE: #UD unless "enable user wait and pause"; CR4.TSD with CPL > 0 → #GP(0); exit iff "RDTSC
 * exiting" (SDM 25.1.3 and Bochs). The reference's §4.2 / §6.2 name only "user wait/pause" as the
 * condition; the SDM wins (that control makes the instructions legal, RDTSC exiting makes them exit).
 */
export function umwaitRule(instr: DecodedInstr, state: CpuState, c: NonRootControls): NonRootDecision {
  if (!(c.secondary & Secondary.ENABLE_USER_WAIT_AND_PAUSE)) return UD;
  if (cr4(state, Cr4.TSD) && cplOf(state) > 0) return GP0;
  if (!(c.primary & Primary.RDTSC_EXITING)) return EXECUTE;
  return instrExit(instr.name === 'tpause' ? ExitReason.TPAUSE : ExitReason.UMWAIT, instr, 0n, { instructionInfo: waitInfo(instr) });
}

/** LOADIWKEY: #UD without CR4.KL; CPL first; exit iff tertiary "LOADIWKEY exiting". */
export function loadiwkeyRule(instr: DecodedInstr, state: CpuState, c: NonRootControls): NonRootDecision {
  if (!cr4(state, Cr4.KL)) return UD;
  if (privileged(state)) return GP0;
  return c.tertiary & Tertiary.LOADIWKEY_EXITING ? instrExit(ExitReason.LOADIWKEY, instr, 0n, { instructionInfo: loadiwkeyInfo(instr) }) : EXECUTE;
}

/**
 * VMFUNC: #UD unless "enable VM functions"; exit (reason 59) when EAX ≥ 64 or its VM-function control bit is
 * 0, or when EPTP switching (EAX = 0) cannot complete (ECX ≥ 512 or an invalid/unreadable list entry).
 */
export function vmfuncRule(instr: DecodedInstr, state: CpuState, c: NonRootControls, env: NonRootEnv, validEptp: (eptp: bigint) => boolean): NonRootDecision {
  if (!(c.secondary & Secondary.ENABLE_VM_FUNCTIONS)) return UD;
  const eax = state.gpr[Reg.RAX]! & 0xffff_ffffn;
  if (eax >= 64n || ((c.vmFunctionControls >> eax) & 1n) === 0n) return instrExit(ExitReason.VMFUNC, instr);
  if (eax === 0n) {
    const ecx = state.gpr[Reg.RCX]! & 0xffff_ffffn;
    if (ecx >= 512n) return instrExit(ExitReason.VMFUNC, instr);
    const entry = readQword(env, c.eptpListAddress + ecx * 8n);
    if (entry === undefined || !validEptp(entry)) return instrExit(ExitReason.VMFUNC, instr);
  }
  return EXECUTE;
}

/** Little-endian qword through the env's byte reader; undefined if any byte is unreadable. */
export function readQword(env: NonRootEnv, addr: bigint): bigint | undefined {
  let v = 0n;
  for (let i = 7; i >= 0; i--) {
    const b = env.readPhysByte(addr + BigInt(i));
    if (b === undefined) return undefined;
    v = (v << 8n) | BigInt(b);
  }
  return v;
}
