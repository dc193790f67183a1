// Property (c): for generated VMCS configurations and exit-capable instructions, "exits or not" equals an
// independent control-by-control rule written here from reference §4.2/§6.3 (single-level reading, SDM
// where they differ), and the exit information decodes back to the instruction's operands.
// The rule below never calls src/cpu/nonroot; the machine under test runs the instruction for real.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { L2_GPA, type L2Gpa } from '../../src/cpu/address.js';
import { PhysicalMemory } from '../../src/cpu/memory.js';
import { Cr4, type CpuState } from '../../src/cpu/state.js';
import { Vmcs } from '../../src/cpu/vmcs.js';
import { Field } from '../../src/cpu/generated/vmcs-fields.js';
import { decodeInstructionInfo } from '../../src/cpu/exit-info/instruction-info.js';
import { decodeCrAccess, decodeIo, decodeMovDr } from '../../src/cpu/exit-info/qualifications.js';
import { assemble } from '../../src/asm/index.js';
import {
  DeterministicPlatform, DirectGuestMemory, Interpreter, L2Layout, buildL2Environment, makeNonRootRuntime, type StepResult,
} from '../../src/cpu/interp/index.js';
import { CpuState as State } from '../../src/cpu/state.js';
import { propertyParams } from '../support/property.js';
import { effectiveSeg, exitCaseArb, type ExitCase, type MemSpec } from '../support/arbitraries/l2-programs.js';

// ---- the independent rule (reference §4.2 "cond" column, §6.3 helper predicates, single-level) ----------------

const P = { HLT: 1 << 7, INVLPG: 1 << 9, MWAIT: 1 << 10, RDPMC: 1 << 11, RDTSC: 1 << 12, CR3_LOAD: 1 << 15, CR3_STORE: 1 << 16, CR8_LOAD: 1 << 19, CR8_STORE: 1 << 20, TPR_SHADOW: 1 << 21, MOV_DR: 1 << 23, UNCOND_IO: 1 << 24, IO_BITMAPS: 1 << 25, MSR_BITMAPS: 1 << 28, MONITOR: 1 << 29, PAUSE: 1 << 30, SECONDARY: 1 << 31 };
const S = { DT: 1 << 2, RDTSCP: 1 << 3, WBINVD: 1 << 6, VID: 1 << 9, RDRAND: 1 << 11, INVPCID: 1 << 12, VMFUNC: 1 << 13, SHADOWING: 1 << 14, ENCLS: 1 << 15, RDSEED: 1 << 16, XSAVES: 1 << 20, USER_WAIT: 1 << 26, PCONFIG: 1 << 27, ENCLV: 1 << 28 };
const P_TERTIARY = 1 << 17;
const Reason = { IO: 30, CR: 28, DR: 29, RDMSR: 31, WRMSR: 32, TPR: 43, CPUID: 10, INVD: 13, VMCALL: 18, HLT: 12, RDPMC: 15, RDTSC: 16, RDTSCP: 51, MONITOR: 39, MWAIT: 36, PAUSE: 40, WBINVD: 54, XSETBV: 55, VMLAUNCH: 20, VMRESUME: 24, VMXOFF: 26, VMCLEAR: 19, VMPTRLD: 21, VMPTRST: 22, VMXON: 27, VMREAD: 23, VMWRITE: 25, INVEPT: 50, INVVPID: 53, INVPCID: 58, GDTR_IDTR: 46, LDTR_TR: 47, RDRAND: 57, RDSEED: 61, INVLPG: 14, GETSEC: 11, XSAVES: 63, XRSTORS: 64, ENCLS: 60, ENCLV: 70, PCONFIG: 65, UMWAIT: 67, TPAUSE: 68, LOADIWKEY: 69, SEAMCALL: 76, TDCALL: 77, VMFUNC: 59 } as const;

interface Config {
  readonly primary: number;
  readonly secondaryRaw: number;
  readonly cr0Mask: bigint; readonly cr0Shadow: bigint; readonly cr4Mask: bigint; readonly cr4Shadow: bigint;
  readonly cr3Count: number; readonly cr3Targets: readonly bigint[];
  readonly tprThreshold: number; readonly vtpr: number;
  /** Bitmap bytes written at fixed addresses, by offset within each bitmap page. */
  readonly ioA: ReadonlyMap<number, number>; readonly ioB: ReadonlyMap<number, number>;
  readonly msr: ReadonlyMap<number, number>; readonly vmrw: ReadonlyMap<number, number>;
  readonly tertiary: bigint; readonly xssBitmap: bigint; readonly enclsBitmap: bigint; readonly enclvBitmap: bigint;
  readonly pconfigBitmap: bigint; readonly vmfuncControl: bigint; readonly eptpList: ReadonlyMap<number, bigint>;
  readonly xss: bigint; readonly fsBase: bigint; readonly gsBase: bigint;
}

const bit = (map: ReadonlyMap<number, number>, n: number) => (((map.get(n >> 3) ?? 0) >> (n & 7)) & 1) === 1;

function expectedReason(c: ExitCase, f: Config, regs: Regs): number | null {
  const pri = f.primary;
  const sec = pri & P.SECONDARY ? f.secondaryRaw : 0;
  switch (c.kind) {
    case 'io': {
      if (pri & P.IO_BITMAPS) {
        for (let p = c.port; p < c.port + c.size; p++) {
          if (p > 0xffff) return Reason.IO;
          if (bit(p < 0x8000 ? f.ioA : f.ioB, p & 0x7fff)) return Reason.IO;
        }
        return null;
      }
      return pri & P.UNCOND_IO ? Reason.IO : null;
    }
    case 'cr-write': {
      const v = c.value;
      if (c.cr === 0) return ((v ^ f.cr0Shadow) & f.cr0Mask) !== 0n ? Reason.CR : null;
      if (c.cr === 4) return ((v ^ f.cr4Shadow) & f.cr4Mask) !== 0n ? Reason.CR : null;
      if (c.cr === 3) return pri & P.CR3_LOAD && !f.cr3Targets.slice(0, f.cr3Count).includes(v) ? Reason.CR : null;
      if (pri & P.CR8_LOAD) return Reason.CR;
      // TPR shadow: VTPR := value << 4; TPR below threshold (trap-like) unless virtual-interrupt delivery.
      if (pri & P.TPR_SHADOW && !(sec & S.VID) && (f.tprThreshold & 0xf) > Number(v & 0xfn)) return Reason.TPR;
      return null;
    }
    case 'cr-read':
      if (c.cr === 3) return pri & P.CR3_STORE ? Reason.CR : null;
      if (c.cr === 8) return pri & P.CR8_STORE ? Reason.CR : null;
      return null;
    case 'clts':
      return f.cr0Mask & 8n && f.cr0Shadow & 8n ? Reason.CR : null;
    case 'lmsw': {
      const src = BigInt(c.source & 0xf);
      const lowMask = f.cr0Mask & 0xfn;
      const lowShadow = f.cr0Shadow & 0xfn;
      const setsPe = (lowMask & 1n) !== 0n && (lowShadow & 1n) === 0n && (src & 1n) !== 0n;
      return setsPe || (lowMask & 0xen & (src ^ lowShadow)) !== 0n ? Reason.CR : null;
    }
    case 'mov-dr':
      return pri & P.MOV_DR ? Reason.DR : null;
    case 'msr': {
      const r = c.write ? Reason.WRMSR : Reason.RDMSR;
      if (!(pri & P.MSR_BITMAPS)) return r;
      const m = c.msr >>> 0;
      const half = c.write ? 2048 : 0;
      if (m <= 0x1fff) return bit(f.msr, (half + 0) * 8 + m) ? r : null;
      if (m >= 0xc000_0000 && m <= 0xc000_1fff) return bit(f.msr, (half + 1024) * 8 + (m - 0xc000_0000)) ? r : null;
      return r;
    }
    case 'simple':
      switch (c.mnemonic) {
        case 'cpuid': return Reason.CPUID;
        case 'invd': return Reason.INVD;
        case 'vmcall': return Reason.VMCALL;
        case 'xsetbv': return Reason.XSETBV;
        case 'vmlaunch': return Reason.VMLAUNCH;
        case 'vmresume': return Reason.VMRESUME;
        case 'vmxoff': return Reason.VMXOFF;
        case 'hlt': return pri & P.HLT ? Reason.HLT : null;
        case 'rdpmc': return pri & P.RDPMC ? Reason.RDPMC : null;
        case 'rdtsc': return pri & P.RDTSC ? Reason.RDTSC : null;
        case 'rdtscp': return sec & S.RDTSCP && pri & P.RDTSC ? Reason.RDTSCP : null;
        case 'monitor': return pri & P.MONITOR ? Reason.MONITOR : null;
        case 'mwait': return pri & P.MWAIT ? Reason.MWAIT : null;
        case 'pause': return pri & P.PAUSE ? Reason.PAUSE : null;
        case 'wbinvd': return sec & S.WBINVD ? Reason.WBINVD : null;
      }
      throw new Error(`model has no rule for ${c.mnemonic}`);
    case 'vmx-mem':
      return ({ vmclear: Reason.VMCLEAR, vmptrld: Reason.VMPTRLD, vmptrst: Reason.VMPTRST, vmxon: Reason.VMXON } as Record<string, number>)[c.mnemonic]!;
    case 'vmx-rw': {
      const r = c.write ? Reason.VMWRITE : Reason.VMREAD;
      if (!(sec & S.SHADOWING)) return r;
      const enc = regs.get(c.encodingReg) ?? 0n;
      if (enc > 0x7fffn) return r;
      return bit(f.vmrw, Number(enc)) ? r : null;
    }
    case 'inv':
      if (c.mnemonic === 'invpcid') return sec & S.INVPCID && pri & P.INVLPG ? Reason.INVPCID : null;
      return c.mnemonic === 'invept' ? Reason.INVEPT : Reason.INVVPID;
    case 'dt':
      return sec & S.DT ? Reason.GDTR_IDTR : null;
    case 'ldt':
      return sec & S.DT ? Reason.LDTR_TR : null;
    case 'rand':
      return c.seed ? (sec & S.RDSEED ? Reason.RDSEED : null) : (sec & S.RDRAND ? Reason.RDRAND : null);
    case 'invlpg':
      return pri & P.INVLPG ? Reason.INVLPG : null;
    case 'other': {
      const eax = (regs.get(0) ?? 0n) & 0xffff_ffffn;
      const ecx = (regs.get(1) ?? 0n) & 0xffff_ffffn;
      const edx = (regs.get(2) ?? 0n) & 0xffff_ffffn;
      const leafBit = (bm: bigint) => ((bm >> (eax > 63n ? 63n : eax)) & 1n) === 1n;
      switch (c.mnemonic) {
        case 'getsec': return Reason.GETSEC; // CR4.SMXE = 1 in these guests
        case 'rsm': return null; // #UD outside SMM
        case 'seamcall': return Reason.SEAMCALL;
        case 'tdcall': return Reason.TDCALL;
        case 'wbnoinvd': return sec & S.WBINVD ? Reason.WBINVD : null;
        case 'xsaves': case 'xrstors':
          if (!(sec & S.XSAVES)) return null;
          return (((edx << 32n) | eax) & f.xss & f.xssBitmap) !== 0n ? (c.mnemonic === 'xsaves' ? Reason.XSAVES : Reason.XRSTORS) : null;
        case 'encls': return sec & S.ENCLS && leafBit(f.enclsBitmap) ? Reason.ENCLS : null;
        case 'enclv': return sec & S.ENCLV && leafBit(f.enclvBitmap) ? Reason.ENCLV : null;
        case 'pconfig': return sec & S.PCONFIG && leafBit(f.pconfigBitmap) ? Reason.PCONFIG : null;
        // SDM 25.1.3: RDTSC exiting decides; "enable user wait and pause" only makes them legal (reference §4.2 differs).
        case 'umwait': return sec & S.USER_WAIT && pri & P.RDTSC ? Reason.UMWAIT : null;
        case 'tpause': return sec & S.USER_WAIT && pri & P.RDTSC ? Reason.TPAUSE : null;
        case 'loadiwkey': return pri & P_TERTIARY && f.tertiary & 1n ? Reason.LOADIWKEY : null;
        case 'vmfunc': {
          if (!(sec & S.VMFUNC)) return null;
          if (eax >= 64n || ((f.vmfuncControl >> eax) & 1n) === 0n) return Reason.VMFUNC;
          if (eax !== 0n) return null;
          if (ecx >= 512n) return Reason.VMFUNC;
          const e = f.eptpList.get(Number(ecx)) ?? 0n;
          const mt = e & 7n;
          const walk = (e >> 3n) & 7n;
          const valid = (mt === 0n || mt === 6n) && (walk === 3n || walk === 4n) && ((e >> 8n) & 0xfn) === 0n && e >> 52n === 0n;
          return valid ? null : Reason.VMFUNC;
        }
      }
      throw new Error(`model has no rule for ${c.mnemonic}`);
    }
  }
}

// ---- running one case ------------------------------------------------------------------------------------------

type Regs = Map<number, bigint>;

const IO_A = 0xb0000n;
const IO_B = 0xb1000n;
const MSR_BM = 0xb2000n;
const VMRW_BM = 0xb3000n;
const VAPIC = 0xb4000n;
const EPTP_LIST = 0xb5000n;

const base = (() => {
  const memory = new PhysicalMemory<L2Gpa>({ space: 'L2Gpa' });
  const state = new State();
  buildL2Environment(state, { mode: 'long64', memory, space: L2_GPA, code: new Uint8Array([0xf4]) });
  return { memory, state, snapshot: memory.snapshot() };
})();

function regsFor(c: ExitCase, rnd: { rsi: bigint; rdi: bigint }): Regs {
  const r: Regs = new Map([[3, L2Layout.DATA], [6, rnd.rsi], [7, rnd.rdi]]);
  switch (c.kind) {
    case 'io': if (!c.immediate) r.set(2, BigInt(c.port)); break;
    case 'cr-write': r.set(c.gpr, c.value); break;
    case 'lmsw': if (!c.memory) r.set(c.gpr, BigInt(c.source)); break;
    case 'msr': r.set(1, BigInt(c.msr)); break;
    case 'vmx-rw': r.set(c.encodingReg, BigInt(c.encoding)); break;
    case 'invlpg': for (let i = 0; i < 16; i++) if (i !== 3 && i !== 4) r.set(i, BigInt.asUintN(64, rnd.rsi * BigInt(i + 3) + rnd.rdi)); break;
    case 'other': r.set(0, rnd.rsi & 0x7fn); r.set(1, rnd.rdi & 0x3ffn); r.set(2, rnd.rsi >> 20n); break;
    default: break;
  }
  return r;
}

function runCase(c: ExitCase, f: Config, regs: Regs, code: Uint8Array): { result: StepResult; state: CpuState } {
  const memory = base.memory;
  memory.restore(base.snapshot);
  const put = (a: bigint, bytes: Uint8Array | number[]) => memory.write(L2_GPA.of(a), bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes));
  put(L2Layout.CODE, code);
  for (const [pageBase, map] of [[IO_A, f.ioA], [IO_B, f.ioB], [MSR_BM, f.msr], [VMRW_BM, f.vmrw]] as const) {
    for (const [off, v] of map) put(pageBase + BigInt(off), [v]);
  }
  put(VAPIC + 0x80n, [f.vtpr]);
  if (c.kind === 'lmsw' && c.memory) put(L2Layout.DATA, [c.source & 0xff, c.source >> 8]);
  const state = base.state.clone();
  // A valid VMX non-root guest has CR4.VMXE = 1 (IA32_VMX_CR4_FIXED0); OSXSAVE so XSETBV/XSAVES can exit, SMXE for
  // GETSEC, KL for LOADIWKEY.
  state.cr4 |= Cr4.OSXSAVE | Cr4.VMXE | Cr4.SMXE | Cr4.KL;
  state.setMsr(0xda0, f.xss);
  state.segBase[4] = f.fsBase;
  state.segBase[5] = f.gsBase;
  for (const [i, e] of f.eptpList) memory.writeU64(L2_GPA.of(EPTP_LIST + BigInt(i) * 8n), e);
  for (const [r, v] of regs) state.gpr[r] = v;
  const vmcs = new Vmcs();
  vmcs.set(Field.CPU_BASED_VM_EXEC_CONTROL, BigInt(f.primary >>> 0));
  vmcs.set(Field.SECONDARY_VM_EXEC_CONTROL, BigInt(f.secondaryRaw >>> 0));
  vmcs.set(Field.CR0_GUEST_HOST_MASK, f.cr0Mask);
  vmcs.set(Field.CR0_READ_SHADOW, f.cr0Shadow);
  vmcs.set(Field.CR4_GUEST_HOST_MASK, f.cr4Mask);
  vmcs.set(Field.CR4_READ_SHADOW, f.cr4Shadow);
  vmcs.set(Field.CR3_TARGET_COUNT, BigInt(f.cr3Count));
  [Field.CR3_TARGET_VALUE0, Field.CR3_TARGET_VALUE1, Field.CR3_TARGET_VALUE2, Field.CR3_TARGET_VALUE3].forEach((e, i) => vmcs.set(e, f.cr3Targets[i] ?? 0n));
  vmcs.set(Field.IO_BITMAP_A, IO_A);
  vmcs.set(Field.IO_BITMAP_B, IO_B);
  vmcs.set(Field.MSR_BITMAP, MSR_BM);
  vmcs.set(Field.VMREAD_BITMAP, VMRW_BM);
  vmcs.set(Field.VMWRITE_BITMAP, VMRW_BM);
  vmcs.set(Field.VIRTUAL_APIC_PAGE_ADDR, VAPIC);
  vmcs.set(Field.TPR_THRESHOLD, BigInt(f.tprThreshold));
  vmcs.set(Field.TERTIARY_VM_EXEC_CONTROL, f.tertiary);
  vmcs.set(Field.XSS_EXIT_BITMAP, f.xssBitmap);
  vmcs.set(Field.ENCLS_EXITING_BITMAP, f.enclsBitmap);
  vmcs.set(Field.ENCLV_EXITING_BITMAP, f.enclvBitmap);
  vmcs.set(Field.PCONFIG_EXITING_BITMAP, f.pconfigBitmap);
  vmcs.set(Field.VM_FUNCTION_CONTROL, f.vmfuncControl);
  vmcs.set(Field.EPTP_LIST_ADDRESS, EPTP_LIST);
  const env = { readPhysByte: (a: bigint) => memory.readU8(L2_GPA.of(a)), insOutsInfo: true };
  const nonRoot = makeNonRootRuntime(vmcs, env, {
    preemptionTimerRate: 0,
    writePhysByte: (a, v) => memory.writeU8(L2_GPA.of(a), v).ok,
    shadowVmcs: null,
    switchEptp: () => undefined,
  });
  const mem = new DirectGuestMemory(state, memory, L2_GPA, { maxPhysAddr: 46 });
  const interp = new Interpreter({ mem, platform: new DeterministicPlatform(), nonRoot });
  return { result: interp.step(state), state };
}

// ---- arbitraries for the configuration -------------------------------------------------------------------------

const WINDOW_BITS = (1 << 2) | (1 << 22) | (1 << 27); // interrupt/NMI window, MTF: boundary exits, tested elsewhere
const byteMap = (maxOffset: number): fc.Arbitrary<Map<number, number>> =>
  fc.array(fc.tuple(fc.integer({ min: 0, max: maxOffset }), fc.integer({ min: 0, max: 255 })), { maxLength: 24 }).map((a) => new Map(a));

function configArb(c: ExitCase): fc.Arbitrary<Config> {
  // Bitmap bytes concentrated where this case looks, plus random noise.
  const focus = (n: number): fc.Arbitrary<Map<number, number>> => fc.tuple(byteMap(4095), fc.integer({ min: 0, max: 255 }), fc.boolean())
    .map(([m, v, on]) => { if (on) m.set(n >> 3, v); if (on) m.set((n >> 3) + 1, v); return m; });
  const port = c.kind === 'io' ? c.port : 0;
  const msrOff = c.kind === 'msr' ? ((c.write ? 2048 : 0) + (c.msr >= 0xc000_0000 ? 1024 : 0)) * 8 + (c.msr & 0x1fff) : 0;
  const enc = c.kind === 'vmx-rw' ? c.encoding & 0x7fff : 0;
  const cr3Value = c.kind === 'cr-write' ? c.value : 0n;
  return fc.record({
    primary: fc.integer({ min: 0, max: 0xffff_ffff }).map((v) => (v & ~WINDOW_BITS) >>> 0),
    secondaryRaw: fc.integer({ min: 0, max: 0xffff_ffff }).map((v) => v >>> 0),
    cr0Mask: fc.oneof(fc.constant(0n), fc.bigInt({ min: 0n, max: 0xffff_ffffn }), fc.constant(0xfn)),
    cr0Shadow: fc.bigInt({ min: 0n, max: 0xffff_ffffn }),
    cr4Mask: fc.oneof(fc.constant(0n), fc.bigInt({ min: 0n, max: 0x3f_ffffn })),
    cr4Shadow: fc.bigInt({ min: 0n, max: 0x3f_ffffn }),
    cr3Count: fc.integer({ min: 0, max: 4 }),
    cr3Targets: fc.array(fc.oneof(fc.constant(cr3Value), fc.bigInt({ min: 0n, max: (1n << 52n) - 1n })), { minLength: 4, maxLength: 4 }),
    tprThreshold: fc.integer({ min: 0, max: 15 }),
    vtpr: fc.integer({ min: 0, max: 255 }),
    ioA: focus(port & 0x7fff),
    ioB: focus(port & 0x7fff),
    msr: focus(msrOff),
    vmrw: focus(enc),
    tertiary: fc.bigInt({ min: 0n, max: 0x1ffn }),
    xssBitmap: fc.oneof(fc.constant(0n), fc.bigInt({ min: 0n, max: (1n << 64n) - 1n })),
    enclsBitmap: fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }),
    enclvBitmap: fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }),
    pconfigBitmap: fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }),
    vmfuncControl: fc.oneof(fc.constant(1n), fc.bigInt({ min: 0n, max: (1n << 64n) - 1n })),
    eptpList: fc.array(fc.tuple(fc.integer({ min: 0, max: 0x3ff }), fc.oneof(fc.constant(0x5000n | 0x1en), fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }))), { maxLength: 8 }).map((a) => new Map(a)),
    xss: fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }),
    fsBase: fc.oneof(fc.constant(0n), fc.bigInt({ min: 0n, max: (1n << 47n) - 1n })),
    gsBase: fc.oneof(fc.constant(0n), fc.bigInt({ min: 0n, max: (1n << 47n) - 1n })),
  });
}

// ---- decode-back checks ----------------------------------------------------------------------------------------

function memInfo(m: MemSpec): Record<string, unknown> {
  const o: Record<string, unknown> = { addressSize: m.addrSize === 8 ? 2 : 1, segment: effectiveSeg(m), indexInvalid: m.index === null, baseInvalid: m.base === null };
  if (m.index !== null) Object.assign(o, { indexReg: m.index, scaling: [1, 2, 4, 8].indexOf(m.scale) });
  if (m.base !== null) o['baseReg'] = m.base;
  return o;
}

let cfgFs = 0n;
let cfgGs = 0n;

function checkInfo(c: ExitCase, exit: { qualification: bigint; instructionInfo?: number; guestLinearAddress?: bigint }, reason: number, regs: Regs): void {
  const q = exit.qualification;
  const info = exit.instructionInfo === undefined ? undefined : (decodeInstructionInfo(reason, exit.instructionInfo)?.value as Record<string, unknown> | undefined);
  const disp = (m: MemSpec | null) => (m ? BigInt.asUintN(64, BigInt(m.disp)) : 0n);
  switch (c.kind) {
    case 'io': {
      expect(decodeIo(q).value).toEqual({ size: c.size, direction: c.input ? 'in' : 'out', string: c.string, rep: c.rep, immediate: c.immediate, port: c.port });
      if (c.string) {
        const mask = c.addrSize === 8 ? (1n << 64n) - 1n : 0xffff_ffffn;
        // 64-bit mode: only FS/GS bases apply (OUTS with an FS/GS override; INS always uses ES).
        const segBase = !c.input && c.seg === 4 ? cfgFs : !c.input && c.seg === 5 ? cfgGs : 0n;
        expect(exit.guestLinearAddress).toBe(BigInt.asUintN(64, segBase + ((c.input ? regs.get(7)! : regs.get(6)!) & mask)));
        expect(info).toMatchObject({ addressSize: c.addrSize === 8 ? 2 : 1, ...(c.input ? {} : { segment: c.seg ?? 3 }) });
      }
      return;
    }
    case 'cr-write': case 'cr-read':
      if (reason === Reason.TPR) return;
      expect(decodeCrAccess(q).value).toEqual({ access: c.kind === 'cr-write' ? 'mov-to-cr' : 'mov-from-cr', cr: c.cr, gpr: c.gpr });
      return;
    case 'clts':
      expect(decodeCrAccess(q).value).toEqual({ access: 'clts' });
      return;
    case 'lmsw':
      expect(decodeCrAccess(q).value).toEqual({ access: 'lmsw', memoryOperand: c.memory, sourceData: c.source });
      expect(exit.guestLinearAddress).toBe(c.memory ? L2Layout.DATA : undefined);
      return;
    case 'mov-dr':
      expect(decodeMovDr(q).value).toEqual({ dr: c.dr, direction: c.toDr ? 'to-dr' : 'from-dr', gpr: c.gpr });
      return;
    case 'vmx-mem':
      expect(q).toBe(disp(c.mem));
      expect(info).toMatchObject(memInfo(c.mem));
      return;
    case 'vmx-rw':
      expect(q).toBe(disp(c.mem));
      expect(info).toMatchObject({ reg2: c.encodingReg, register: c.rmReg !== null, ...(c.rmReg !== null ? { reg1: c.rmReg } : memInfo(c.mem!)) });
      return;
    case 'inv':
      expect(q).toBe(disp(c.mem));
      expect(info).toMatchObject({ ...memInfo(c.mem), reg2: c.typeReg });
      return;
    case 'dt':
      expect(q).toBe(disp(c.mem));
      expect(info).toMatchObject({ ...memInfo(c.mem), instruction: c.mnemonic });
      return;
    case 'ldt':
      expect(q).toBe(disp(c.mem));
      expect(info).toMatchObject({ instruction: c.mnemonic, register: c.reg !== null, ...(c.reg !== null ? { reg1: c.reg } : memInfo(c.mem!)) });
      return;
    case 'rand':
      expect(info).toMatchObject({ register: c.reg, operandSize: c.size === 2 ? 0 : c.size === 4 ? 1 : 2 });
      return;
    case 'invlpg': {
      // Linear-address operand: seg base (FS/GS only in 64-bit mode) + base + index·scale + disp, at the address size.
      const m = c.mem;
      const amask = m.addrSize === 8 ? (1n << 64n) - 1n : 0xffff_ffffn;
      let ea = BigInt(m.disp);
      if (m.base !== null) ea += regs.get(m.base) ?? (m.base === 3 ? L2Layout.DATA : m.base === 4 ? L2Layout.STACK_TOP : 0n);
      if (m.index !== null) ea += (regs.get(m.index) ?? (m.index === 3 ? L2Layout.DATA : 0n)) * BigInt(m.scale);
      ea &= amask;
      const segBase = m.seg === 4 ? cfgFs : m.seg === 5 ? cfgGs : 0n;
      expect(q).toBe(BigInt.asUintN(64, segBase + ea));
      return;
    }
    case 'other':
      if (c.mnemonic === 'umwait' || c.mnemonic === 'tpause') expect(exit.instructionInfo).toBe(c.reg << 3);
      if (c.mnemonic === 'loadiwkey') expect(exit.instructionInfo).toBe((1 << 3) | (2 << 28));
      if (c.mnemonic === 'xsaves' || c.mnemonic === 'xrstors') expect(info).toMatchObject({ baseReg: 3, baseInvalid: false, indexInvalid: true });
      return;
    default:
      expect(q).toBe(0n);
  }
}

describe('property (c): instruction exits vs the reference rule', () => {
  it('exits iff the rule says so, with exit information that decodes to the operands', () => {
    const arb = exitCaseArb.chain((c) => fc.tuple(fc.constant(c), configArb(c), fc.bigInt({ min: 0n, max: (1n << 48n) - 1n }), fc.bigInt({ min: 0n, max: (1n << 48n) - 1n })));
    fc.assert(
      fc.property(arb, ([c, f, rsi, rdi]) => {
        const asm = assemble(c.text, { bitness: 64, ip: L2Layout.CODE });
        if (!asm.ok) throw new Error(`generated program did not assemble: ${c.text}: ${asm.error.message}`);
        const regs = regsFor(c, { rsi, rdi });
        const want = expectedReason(c, f, regs);
        const { result, state } = runCase(c, f, regs, asm.bytes);
        cfgFs = f.fsBase;
        cfgGs = f.gsBase;
        const got = result.kind === 'vmexit' ? result.exit.reason : null;
        expect({ text: c.text, reason: got }).toEqual({ text: c.text, reason: want });
        if (result.kind === 'vmexit' && want !== null) {
          if (want !== Reason.TPR) {
            expect(result.exit.instructionLength).toBe(asm.bytes.length);
            expect(state.rip).toBe(L2Layout.CODE);
          }
          checkInfo(c, result.exit, want, regs);
        }
      }),
      propertyParams({ numRuns: 400 }),
    );
  });
});
