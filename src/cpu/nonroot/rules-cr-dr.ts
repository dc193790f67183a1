// Control- and debug-register rules: MOV to/from CR0/CR3/CR4/CR8, CLTS, LMSW, MOV DR; the CR0/CR4 guest/host
// masks and read shadows (both the exit test and the value a non-exiting read returns / write produces).
// Must not: touch the virtual-APIC page (the interpreter does, using tprShadowActive). SDM Vol. 3C 25.1.3,
// 25.3 (changes to instruction behaviour), 27.2.1 tables 27-3/27-4; reference §4.3.1, §4.3.2, §6.3.1.
import { Primary } from '../generated/controls.js';
import { ExitReason } from '../generated/exit-reasons.js';
import { encodeCrAccess, encodeMovDr } from '../exit-info/qualifications.js';
import { Cr4, type CpuState } from '../state.js';
import type { DecodedInstr } from '../interp/decoded.js';
import { effectiveAddress, linearAddress } from '../interp/ea.js';
import { EXECUTE, GP0, UD, cr4, instrExit, privileged, type RuleInputs } from './common.js';
import type { NonRootControls } from './controls.js';
import type { NonRootDecision } from './types.js';

export const CrAccess = { MOV_TO: 0, MOV_FROM: 1, CLTS: 2, LMSW: 3 } as const;

/** Control-register-access qualification (table 27-3), through the exit-info codec. */
export function crQualification(cr: number, type: number, gpr: number, lmswMemory = false, lmswSource = 0): bigint {
  switch (type) {
    case CrAccess.MOV_TO: return encodeCrAccess({ access: 'mov-to-cr', cr, gpr });
    case CrAccess.MOV_FROM: return encodeCrAccess({ access: 'mov-from-cr', cr, gpr });
    case CrAccess.CLTS: return encodeCrAccess({ access: 'clts' });
    default: return encodeCrAccess({ access: 'lmsw', memoryOperand: lmswMemory, sourceData: lmswSource & 0xffff });
  }
}

/** MOV-DR qualification (table 27-4): DR number 2:0, direction 4 (1 = MOV from DR), GPR 11:8. */
export function drQualification(dr: number, fromDr: boolean, gpr: number): bigint {
  return encodeMovDr({ dr, direction: fromDr ? 'from-dr' : 'to-dr', gpr });
}

/** Value read by a non-exiting MOV from CR0/CR4: shadow bits where the mask is set, real bits elsewhere. */
export function shadowedRead(real: bigint, mask: bigint, shadow: bigint): bigint {
  return (real & ~mask) | (shadow & mask);
}

/** Value a non-exiting MOV to CR0/CR4 writes: bits owned by the host (mask set) keep their current value. */
export function maskedWrite(current: bigint, mask: bigint, value: bigint): bigint {
  return (current & mask) | (value & ~mask);
}

/** The GPR value of a MOV CR/DR source: 64 bits in 64-bit mode, else the low 32 bits. */
function sourceValue(state: CpuState, reg: number): bigint {
  const v = state.gpr[reg]!;
  return state.longMode64 ? v : v & 0xffff_ffffn;
}

/** MOV to/from CRn (n ∈ {0, 2, 3, 4, 8}); CR1, CR5–CR7, CR9–CR15 are #UD before any exit. */
export function movCrRule(instr: DecodedInstr, state: CpuState, c: NonRootControls): NonRootDecision {
  const a = instr.ops[0]!;
  const b = instr.ops[1]!;
  const toCr = a.kind === 'cr';
  const crOp = toCr ? a : b;
  const regOp = toCr ? b : a;
  if (crOp.kind !== 'cr' || regOp.kind !== 'reg') throw new Error('turtles bug: MOV CR operand shape');
  const n = crOp.n;
  if (!(n === 0 || n === 2 || n === 3 || n === 4 || n === 8)) return UD;
  if (n === 8 && !state.longMode64) return UD;
  if (privileged(state)) return GP0;
  const gpr = regOp.reg;
  if (toCr) {
    const v = sourceValue(state, gpr);
    const q = () => crQualification(n, CrAccess.MOV_TO, gpr);
    switch (n) {
      case 0:
        return ((v ^ c.cr0Shadow) & c.cr0Mask) !== 0n ? instrExit(ExitReason.CR_ACCESS, instr, q()) : EXECUTE;
      case 3:
        return c.primary & Primary.CR3_LOAD_EXITING && !c.cr3Targets.includes(v) ? instrExit(ExitReason.CR_ACCESS, instr, q()) : EXECUTE;
      case 4:
        return ((v ^ c.cr4Shadow) & c.cr4Mask) !== 0n ? instrExit(ExitReason.CR_ACCESS, instr, q()) : EXECUTE;
      case 8:
        return c.primary & Primary.CR8_LOAD_EXITING ? instrExit(ExitReason.CR_ACCESS, instr, q()) : EXECUTE;
      default:
        return EXECUTE;
    }
  }
  const q = crQualification(n, CrAccess.MOV_FROM, gpr);
  if (n === 3 && c.primary & Primary.CR3_STORE_EXITING) return instrExit(ExitReason.CR_ACCESS, instr, q);
  if (n === 8 && c.primary & Primary.CR8_STORE_EXITING) return instrExit(ExitReason.CR_ACCESS, instr, q);
  return EXECUTE;
}

/** CLTS exits iff CR0.TS is set in both the guest/host mask and the read shadow. */
export function cltsRule(instr: DecodedInstr, state: CpuState, c: NonRootControls): NonRootDecision {
  if (privileged(state)) return GP0;
  const ts = 1n << 3n;
  return c.cr0Mask & ts && c.cr0Shadow & ts ? instrExit(ExitReason.CR_ACCESS, instr, crQualification(0, CrAccess.CLTS, 0)) : EXECUTE;
}

/**
 * LMSW exits iff it would write, under the mask, a value different from the shadow in bits 3:1, or set PE
 * (mask.PE ∧ src.PE ∧ ¬shadow.PE) — LMSW never clears PE. A memory source must already have been read.
 */
export function lmswRule(instr: DecodedInstr, state: CpuState, c: NonRootControls, inputs: RuleInputs): NonRootDecision {
  if (privileged(state)) return GP0;
  const o = instr.ops[0]!;
  let src: bigint;
  let memory = false;
  if (o.kind === 'reg') src = state.gpr[o.reg]! & 0xffffn;
  else {
    if (inputs.memSource === undefined) throw new Error('turtles bug: LMSW memory source not supplied');
    src = inputs.memSource & 0xffffn;
    memory = true;
  }
  const mask = c.cr0Mask & 0xfn;
  const shadow = c.cr0Shadow & 0xfn;
  const setsPe = (mask & 1n) !== 0n && (src & 1n) !== 0n && (shadow & 1n) === 0n;
  const differs = (mask & 0xen & (src ^ shadow)) !== 0n;
  if (!setsPe && !differs) return EXECUTE;
  // Table 27-3: GPR field is 0 for LMSW; the source data goes to 31:16. With a memory operand the guest-linear
  // address field holds the operand's linear address (SDM 27.2.1; the reference's §4.3.1 does not mention it).
  const q = crQualification(0, CrAccess.LMSW, 0, memory, Number(src));
  if (!memory || !instr.mem) return instrExit(ExitReason.CR_ACCESS, instr, q);
  return instrExit(ExitReason.CR_ACCESS, instr, q, { guestLinearAddress: linearAddress(state, instr.mem.seg, effectiveAddress(instr, instr.mem, state)) });
}

/** Value a non-exiting LMSW produces: bits 3:0 of CR0 outside the mask from the source; PE can only be set. */
export function lmswResult(cr0: bigint, src: bigint, mask: bigint): bigint {
  const writable = 0xfn & ~mask;
  let v = (cr0 & ~writable) | (src & writable);
  if (cr0 & 1n) v |= 1n; // LMSW never clears PE
  return v;
}

/**
 * MOV DR: DR8–15 → #UD; CPL > 0 → #GP(0); DR4/DR5 with CR4.DE → #UD (all before the exit); then the exit
 * if "MOV-DR exiting". The exit has priority over the DR7.GD debug exception (KVM handle_dr relies on it).
 */
export function movDrRule(instr: DecodedInstr, state: CpuState, c: NonRootControls): NonRootDecision {
  const a = instr.ops[0]!;
  const b = instr.ops[1]!;
  const toDr = a.kind === 'dr';
  const drOp = toDr ? a : b;
  const regOp = toDr ? b : a;
  if (drOp.kind !== 'dr' || regOp.kind !== 'reg') throw new Error('turtles bug: MOV DR operand shape');
  if (drOp.n > 7) return UD;
  if (privileged(state)) return GP0;
  if ((drOp.n === 4 || drOp.n === 5) && cr4(state, Cr4.DE)) return UD;
  if (c.primary & Primary.MOV_DR_EXITING) return instrExit(ExitReason.DR_ACCESS, instr, drQualification(drOp.n, !toDr, regOp.reg));
  return EXECUTE;
}

/** "Use TPR shadow" governs non-exiting CR8 accesses (SDM 29.3). */
export function tprShadowActive(c: NonRootControls): boolean {
  return (c.primary & Primary.USE_TPR_SHADOW) !== 0;
}
