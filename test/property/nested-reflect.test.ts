// P-REFLECT (decision part, reference §9.2): for every generated L2 event that exits under vmcs02, decideReflection
// reflects it to L1 exactly when the simple single-level model says vmcs12 exits; events L0 owns (host NMIs and
// interrupts, #MC, #VE) stay in L0 under an L0 policy that claims nothing else.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { Field } from '../../src/cpu/generated/vmcs-fields.js';
import { ExitReason } from '../../src/cpu/generated/exit-reasons.js';
import { Primary } from '../../src/cpu/generated/controls.js';
import { mergeVmcs02 } from '../../src/nested/merge/merge.js';
import { defaultL0MergeInputs } from '../../src/nested/merge/l0-inputs.js';
import { mergeMsrBitmap, nestedMsrPassthrough } from '../../src/nested/msr-bitmap.js';
import { decideReflection } from '../../src/nested/reflect/decide.js';
import { quietL0Policy, type HardwareExit, type ReflectionContext } from '../../src/nested/reflect/types.js';
import { kvmProfile, sdmProfile, type L0Profile } from '../../src/nested/profile.js';
import { propertyParams } from '../support/property.js';
import { HOST_PAGES, l2EventArb, PageMemory, simpleExits, vmcs01PolicyArb, vmcs12WorldArb, type InstrName, type L2Event } from '../support/arbitraries/vmcs12.js';

const INSTR_REASON: Record<InstrName, number> = {
  HLT: ExitReason.HLT, INVLPG: ExitReason.INVLPG, RDTSC: ExitReason.RDTSC, RDTSCP: ExitReason.RDTSCP, RDPMC: ExitReason.RDPMC,
  MWAIT: ExitReason.MWAIT_INSTRUCTION, MONITOR: ExitReason.MONITOR_INSTRUCTION, PAUSE: ExitReason.PAUSE_INSTRUCTION, WBINVD: ExitReason.WBINVD,
  RDRAND: ExitReason.RDRAND, RDSEED: ExitReason.RDSEED, INVPCID: ExitReason.INVPCID, MOV_DR: ExitReason.DR_ACCESS, SGDT: ExitReason.GDTR_IDTR,
  SLDT: ExitReason.LDTR_TR, CPUID: ExitReason.CPUID, INVD: ExitReason.INVD, XSETBV: ExitReason.XSETBV, VMCALL: ExitReason.VMCALL,
  VMLAUNCH: ExitReason.VMLAUNCH, GETSEC: ExitReason.GETSEC, UMWAIT: ExitReason.UMWAIT,
};

/** The hardware exit an event produces from vmcs02, and the L2 registers/MSRs the exit handler may read. */
function hardwareExit(e: L2Event): { exit: HardwareExit; gpr: Map<number, bigint>; xss: bigint } {
  const base: HardwareExit = { reason: 0, qualification: 0n, intrInfo: 0, intrErrorCode: 0, idtVectoringInfo: 0, idtVectoringErrorCode: 0, instructionLength: 0, instructionInfo: 0, guestLinearAddress: 0n, guestPhysicalAddress: 0n };
  const gpr = new Map<number, bigint>();
  let xss = 0n;
  let exit: HardwareExit;
  switch (e.kind) {
    case 'exception': exit = { ...base, reason: 0, intrInfo: (0x8000_0b00 | e.vector) >>> 0, intrErrorCode: e.errorCode }; break;
    case 'nmi': exit = { ...base, reason: 0, intrInfo: 0x8000_0202 }; break;
    case 'external-interrupt': exit = { ...base, reason: 1 }; break;
    case 'window': exit = { ...base, reason: e.which === 'interrupt' ? 7 : 8 }; break;
    case 'io': exit = { ...base, reason: 30, qualification: BigInt((e.size - 1) | (e.input ? 8 : 0) | (e.port << 16)) }; break;
    case 'msr': gpr.set(1, BigInt(e.msr >>> 0)); exit = { ...base, reason: e.write ? 32 : 31 }; break;
    case 'mov-to-cr': gpr.set(2, e.value); exit = { ...base, reason: 28, qualification: BigInt(e.cr | (2 << 8)) }; break;
    case 'mov-from-cr': exit = { ...base, reason: 28, qualification: BigInt(e.cr | (1 << 4)) }; break;
    case 'clts': exit = { ...base, reason: 28, qualification: 2n << 4n }; break;
    case 'lmsw': exit = { ...base, reason: 28, qualification: BigInt((3 << 4) | (e.src << 16)) }; break;
    case 'instr': exit = { ...base, reason: INSTR_REASON[e.name] }; break;
    case 'vmread': case 'vmwrite': gpr.set(3, BigInt(e.encoding >>> 0)); exit = { ...base, reason: e.kind === 'vmread' ? 23 : 25, instructionInfo: (3 << 28) >>> 0 }; break;
    case 'xsaves': xss = e.xss; exit = { ...base, reason: 63 }; break;
    case 'encls': gpr.set(0, BigInt(e.leaf >>> 0)); exit = { ...base, reason: 60 }; break;
  }
  return { exit, gpr, xss };
}

const L0_OWNED = (e: L2Event): boolean => e.kind === 'nmi' || e.kind === 'external-interrupt' || (e.kind === 'exception' && (e.vector === 18 || e.vector === 20));

function check(profile: L0Profile) {
  return fc.property(vmcs01PolicyArb, vmcs12WorldArb, fc.array(l2EventArb, { minLength: 1, maxLength: 8 }), (p, w, events) => {
    const hostMemory = new PageMemory();
    const pri12 = w.vmcs12.lo(Field.CPU_BASED_VM_EXEC_CONTROL);
    const sec12 = pri12 & Primary.ACTIVATE_SECONDARY_CONTROLS ? w.vmcs12.lo(Field.SECONDARY_VM_EXEC_CONTROL) : 0;
    hostMemory.map(HOST_PAGES.msr02, mergeMsrBitmap(p.msrBitmap01, w.memory.read(w.vmcs12.get(Field.MSR_BITMAP), 4096)!, nestedMsrPassthrough(sec12)));
    const vmcs02 = mergeVmcs02(p.vmcs01, w.vmcs12, defaultL0MergeInputs(p.vmcs01, { msrBitmap02: HOST_PAGES.msr02, needsPfIntercept: false }), profile).vmcs02;
    for (const raw of events) {
      // N19 makes the kvm profile compare only error-code bits 15:0; the property covers codes where that agrees.
      const e: L2Event = profile.name === 'kvm' && raw.kind === 'exception' ? { ...raw, errorCode: raw.errorCode & 0xffff } : raw;
      if (!simpleExits(vmcs02, e, hostMemory.read)) continue;
      const { exit, gpr, xss } = hardwareExit(e);
      const ctx: ReflectionContext = {
        profile, l0: { ...quietL0Policy(), sgxExposedToL1: true }, l2Gpr: (r) => gpr.get(r) ?? 0n, l2Msr: (i) => (i === 0xda0 ? xss : 0n), readL1Memory: w.memory.read,
      };
      const d = decideReflection(exit, w.vmcs12, ctx);
      const label = `${JSON.stringify(e, (_k, x: unknown) => (typeof x === 'bigint' ? `${x}n` : x))} → ${d.rule}`;
      if (L0_OWNED(e)) {
        expect(d, label).toMatchObject({ reflect: false, handledBy: 'L0' });
        expect(d.rule.startsWith('l0.') && d.rule !== 'l0.none', label).toBe(true);
      } else {
        expect(d.reflect, label).toBe(simpleExits(w.vmcs12, e, w.memory.read));
        expect(d.handledBy, label).toBe(d.reflect ? 'L1' : 'L0');
      }
    }
  });
}

describe('P-REFLECT: reflect ⇔ vmcs12 exits', () => {
  it('sdm profile', () => {
    fc.assert(check(sdmProfile()), propertyParams({ numRuns: 200 }));
  });
  it('kvm profile (16-bit error codes)', () => {
    fc.assert(check(kvmProfile()), propertyParams({ numRuns: 100 }));
  });
});
