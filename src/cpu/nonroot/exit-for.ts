// The entry points of the single-level non-root rule set: for a decoded instruction and the guest state
// under a VMCS, decide exit / prior fault / execute, and build the exit information. The nested L0 reuses
// exactly this to decide reflection ("would a CPU running vmcs12 exit here?").
// Must not: execute instructions, deliver events, or read guest memory. SDM Vol. 3C 25.1 (table of rules).
import type { CpuState } from '../state.js';
import type { DecodedInstr } from '../interp/decoded.js';
import type { VmcsReader } from '../vmcs.js';
import { EXECUTE, NO_INPUTS, type RuleInputs } from './common.js';
import { readNonRootControls, type NonRootControls, type NonRootEnv } from './controls.js';
import { cltsRule, lmswRule, movCrRule, movDrRule } from './rules-cr-dr.js';
import { ioRule, msrRule } from './rules-io-msr.js';
import {
  cpuidRule, descriptorTableRule, enclsRule, getsecRule, hltRule, invdRule, invlpgRule, invpcidRule, loadiwkeyRule, monitorRule,
  mwaitRule, pauseRule, pconfigRule, rdpmcRule, rdrandRule, rdtscRule, rdtscpRule, rsmRule, seamRule, umwaitRule, vmcallRule,
  vmfuncRule, vmreadWriteRule, vmxRule, wbinvdRule, xsavesRule, xsetbvRule,
} from './rules-instructions.js';
import type { NonRootDecision, NonRootExit } from './types.js';

type Rule = (instr: DecodedInstr, state: CpuState, c: NonRootControls, env: NonRootEnv, inputs: RuleInputs) => NonRootDecision;

/**
 * A basic EPTP validity test for VMFUNC EPTP switching (SDM 24.6.11): memory type UC or WB, 4- or 5-level
 * walk, reserved bits 11:8 and 63:52 clear. Callers with a CPU model pass a stricter one in the env.
 */
export function basicEptpValid(eptp: bigint): boolean {
  const mt = Number(eptp & 7n);
  const walk = Number((eptp >> 3n) & 7n);
  return (mt === 0 || mt === 6) && (walk === 3 || walk === 4) && ((eptp >> 8n) & 0xfn) === 0n && eptp >> 52n === 0n;
}

/** Rules by lower-case mnemonic. MOV is dispatched by operand kind (CR / DR forms only). */
const RULES: Record<string, Rule> = {
  cpuid: (i) => cpuidRule(i),
  getsec: (i, s) => getsecRule(i, s),
  getsecq: (i, s) => getsecRule(i, s),
  invd: (i, s) => invdRule(i, s),
  xsetbv: (i, s) => xsetbvRule(i, s),
  vmcall: (i) => vmcallRule(i),
  vmclear: (i, s) => vmxRule(i, s),
  vmlaunch: (i, s) => vmxRule(i, s),
  vmptrld: (i, s) => vmxRule(i, s),
  vmptrst: (i, s) => vmxRule(i, s),
  vmresume: (i, s) => vmxRule(i, s),
  vmxoff: (i, s) => vmxRule(i, s),
  vmxon: (i, s) => vmxRule(i, s),
  invept: (i, s) => vmxRule(i, s),
  invvpid: (i, s) => vmxRule(i, s),
  vmread: (i, s, c, e) => vmreadWriteRule(i, s, c, e),
  vmwrite: (i, s, c, e) => vmreadWriteRule(i, s, c, e),
  seamcall: (i) => seamRule(i),
  tdcall: (i) => seamRule(i),
  invlpg: (i, s, c) => invlpgRule(i, s, c),
  invpcid: (i, s, c) => invpcidRule(i, s, c),
  hlt: (i, s, c) => hltRule(i, s, c),
  rdpmc: (i, s, c) => rdpmcRule(i, s, c),
  rdtsc: (i, s, c) => rdtscRule(i, s, c),
  rdtscp: (i, s, c) => rdtscpRule(i, s, c),
  rsm: () => rsmRule(),
  clts: (i, s, c) => cltsRule(i, s, c),
  lmsw: (i, s, c, _e, x) => lmswRule(i, s, c, x),
  in: (i, s, c, e) => ioRule(i, s, c, e),
  out: (i, s, c, e) => ioRule(i, s, c, e),
  insb: (i, s, c, e) => ioRule(i, s, c, e),
  insw: (i, s, c, e) => ioRule(i, s, c, e),
  insd: (i, s, c, e) => ioRule(i, s, c, e),
  outsb: (i, s, c, e) => ioRule(i, s, c, e),
  outsw: (i, s, c, e) => ioRule(i, s, c, e),
  outsd: (i, s, c, e) => ioRule(i, s, c, e),
  rdmsr: (i, s, c, e) => msrRule(i, s, c, e),
  wrmsr: (i, s, c, e) => msrRule(i, s, c, e),
  mwait: (i, s, c, _e, x) => mwaitRule(i, s, c, x),
  monitor: (i, s, c) => monitorRule(i, s, c),
  pause: (i, s, c, _e, x) => pauseRule(i, s, c, x),
  wbinvd: (i, s, c) => wbinvdRule(i, s, c),
  wbnoinvd: (i, s, c) => wbinvdRule(i, s, c),
  lgdt: (i, s, c) => descriptorTableRule(i, s, c),
  lidt: (i, s, c) => descriptorTableRule(i, s, c),
  sgdt: (i, s, c) => descriptorTableRule(i, s, c),
  sidt: (i, s, c) => descriptorTableRule(i, s, c),
  lldt: (i, s, c) => descriptorTableRule(i, s, c),
  ltr: (i, s, c) => descriptorTableRule(i, s, c),
  sldt: (i, s, c) => descriptorTableRule(i, s, c),
  str: (i, s, c) => descriptorTableRule(i, s, c),
  rdrand: (i, s, c) => rdrandRule(i, s, c),
  rdseed: (i, s, c) => rdrandRule(i, s, c),
  xsaves: (i, s, c) => xsavesRule(i, s, c),
  xsaves64: (i, s, c) => xsavesRule(i, s, c),
  xrstors: (i, s, c) => xsavesRule(i, s, c),
  xrstors64: (i, s, c) => xsavesRule(i, s, c),
  encls: (i, s, c) => enclsRule(i, s, c),
  enclv: (i, s, c) => enclsRule(i, s, c),
  pconfig: (i, s, c) => pconfigRule(i, s, c),
  umwait: (i, s, c) => umwaitRule(i, s, c),
  tpause: (i, s, c) => umwaitRule(i, s, c),
  loadiwkey: (i, s, c) => loadiwkeyRule(i, s, c),
  vmfunc: (i, s, c, e) => vmfuncRule(i, s, c, e, e.eptpValid ?? basicEptpValid),
};

/** Mnemonics (lower case) that can cause a VM exit by their execution, the domain of `evaluateInstruction`. */
export const EXIT_CAPABLE_MNEMONICS: readonly string[] = [...Object.keys(RULES), 'mov'].sort();

/** Whether a decoded instruction is one the non-root rule set judges (MOV only in its CR/DR forms). */
export function isExitCapable(instr: DecodedInstr): boolean {
  if (instr.name === 'mov') return instr.ops.some((o) => o.kind === 'cr' || o.kind === 'dr');
  return RULES[instr.name] !== undefined;
}

/**
 * Judge one instruction in VMX non-root operation under the given controls: a prior fault, a VM exit with
 * its information, or execution. Instructions outside the exit-capable set always execute.
 */
export function evaluateInstruction(
  instr: DecodedInstr, state: CpuState, controls: NonRootControls, env: NonRootEnv, inputs: RuleInputs = NO_INPUTS,
): NonRootDecision {
  if (instr.name === 'mov') {
    if (instr.ops.some((o) => o.kind === 'cr')) return movCrRule(instr, state, controls);
    if (instr.ops.some((o) => o.kind === 'dr')) return movDrRule(instr, state, controls);
    return EXECUTE;
  }
  const rule = RULES[instr.name];
  return rule ? rule(instr, state, controls, env, inputs) : EXECUTE;
}

/**
 * The VM exit `instr` causes under `vmcs`, or null when it does not exit (it executes, or a fault with
 * priority over the exit is raised instead; use `evaluateInstruction` to see which).
 */
export function exitFor(instr: DecodedInstr, state: CpuState, vmcs: VmcsReader, env: NonRootEnv, inputs: RuleInputs = NO_INPUTS): NonRootExit | null {
  const d = evaluateInstruction(instr, state, readNonRootControls(vmcs), env, inputs);
  return d.kind === 'exit' ? d.exit : null;
}
