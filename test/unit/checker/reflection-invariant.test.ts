// The reflection invariant (src/checker/invariants/reflection.ts): what a single-level CPU running vmcs12 does, judged
// with src/cpu/nonroot, against what L1 received for a hardware exit from vmcs02 — missed, spurious and mis-reported
// exits, EPT02 faults judged by the EPT12 walk, and exits it cannot judge (L0's own).
import { describe, expect, it } from 'vitest';
import { L1_GPA, L2_GPA, l1gpa, l2gpa, type L1Gpa, type L2Gpa } from '../../../src/cpu/address.js';
import { EptTableBuilder, ept12, eptCapabilities, eptConfig } from '../../../src/cpu/ept/index.js';
import { Field } from '../../../src/cpu/generated/vmcs-fields.js';
import { Primary } from '../../../src/cpu/generated/controls.js';
import { decodeOne } from '../../../src/cpu/interp/decode.js';
import type { ExitInformation } from '../../../src/cpu/l1/observation.js';
import { PhysicalMemory } from '../../../src/cpu/memory.js';
import { Ar, Cr0, CpuState, Efer, Seg } from '../../../src/cpu/state.js';
import { validVmcs } from '../../../src/cpu/vmentry/valid-state.js';
import { checkReflection, singleLevelExpectation, type ReflectionCheckInput } from '../../../src/checker/invariants/reflection.js';
import { L1_MODEL } from '../../support/arbitraries/vmcs12.js';

const NONE: ExitInformation = {
  exitReason: 0, qualification: 0n, guestLinearAddress: 0n, guestPhysicalAddress: 0n, interruptionInfo: 0, interruptionErrorCode: 0,
  idtVectoringInfo: 0, idtVectoringErrorCode: 0, instructionLength: 0, instructionInfo: 0,
};
const exit = (x: Partial<ExitInformation>): ExitInformation => ({ ...NONE, ...x });

function l2State(): CpuState {
  const s = new CpuState();
  s.cr0 = Cr0.PE | Cr0.PG | Cr0.NE;
  s.efer = Efer.LMA | Efer.LME;
  s.segAr[Seg.CS] = 0xb | Ar.S | Ar.P | Ar.L;
  s.segAr[Seg.SS] = 0x3 | Ar.S | Ar.P;
  return s;
}

function instr(bytes: number[]) {
  const r = decodeOne(new Uint8Array(bytes), 64, 0x1000n);
  if (!r.ok) throw new Error('decode');
  return r.instr;
}

function input(over: Partial<ReflectionCheckInput>): ReflectionCheckInput {
  const l1 = new PhysicalMemory<L1Gpa>();
  return {
    event: 5, vmcs12: validVmcs(L1_MODEL), exit: NONE, delivered: null, l2: l2State(), instruction: null,
    env: { readPhysByte: (a) => l1.readU8(l1gpa(a)), insOutsInfo: true }, ...over,
  };
}

describe('checkReflection', () => {
  it('CPUID always exits: reflected is right, handled by L0 is a missed exit; exit information is compared', () => {
    const i = instr([0x0f, 0xa2]);
    const hw = exit({ exitReason: 10, instructionLength: 2 });
    expect(checkReflection(input({ exit: hw, instruction: i, delivered: hw }))).toEqual({ divergences: [], judged: true });
    const missed = checkReflection(input({ exit: hw, instruction: i, delivered: null })).divergences;
    expect(missed.map((d) => [d.rule, d.kind, d.level, d.event])).toEqual([['reflect.missed', 'invariant', 'L0', 5]]);
    const wrongLen = checkReflection(input({ exit: hw, instruction: i, delivered: { ...hw, instructionLength: 3 } })).divergences;
    expect(wrongLen.map((d) => [d.rule, d.field, d.expected, d.actual])).toEqual([['reflect.exit-info', 'instructionLength', '0x2', '0x3']]);
  });

  it('HLT follows vmcs12 HLT exiting: reflecting without it is spurious', () => {
    const v = validVmcs(L1_MODEL);
    v.set32(Field.CPU_BASED_VM_EXEC_CONTROL, v.lo(Field.CPU_BASED_VM_EXEC_CONTROL) & ~Primary.HLT_EXITING);
    const hw = exit({ exitReason: 12, instructionLength: 1 });
    const d = checkReflection(input({ vmcs12: v, exit: hw, instruction: instr([0xf4]), delivered: hw })).divergences;
    expect(d.map((x) => x.rule)).toEqual(['reflect.spurious']);
    expect(checkReflection(input({ vmcs12: v, exit: hw, instruction: instr([0xf4]), delivered: null })).divergences).toEqual([]);
  });

  it('I/O is judged by vmcs12 bitmaps in L1 memory (vmcs02 exits unconditionally)', () => {
    const v = validVmcs(L1_MODEL);
    v.set32(Field.CPU_BASED_VM_EXEC_CONTROL, (v.lo(Field.CPU_BASED_VM_EXEC_CONTROL) | Primary.USE_IO_BITMAPS) & ~Primary.UNCONDITIONAL_IO_EXITING);
    v.set(Field.IO_BITMAP_A, 0x10000n);
    const mem = new PhysicalMemory<L1Gpa>();
    mem.writeU8(l1gpa(0x10000n + (0x70n >> 3n)), 1 << (0x70 & 7));
    const env = { readPhysByte: (a: bigint) => mem.readU8(l1gpa(a)), insOutsInfo: true };
    const st = l2State();
    st.gpr[2] = 0x70n; // DX
    const outDx = instr([0xee]); // out dx, al
    const hw = exit({ exitReason: 30, qualification: (0x70n << 16n) | 0x40n | 0n, instructionLength: 1 });
    expect(singleLevelExpectation(input({ vmcs12: v, env, l2: st, exit: hw, instruction: outDx })).kind).toBe('exit');
    st.gpr[2] = 0x71n;
    expect(singleLevelExpectation(input({ vmcs12: v, env, l2: st, exit: hw, instruction: outDx })).kind).toBe('no-exit');
    const d = checkReflection(input({ vmcs12: v, env, l2: st, exit: hw, instruction: outDx, delivered: hw })).divergences;
    expect(d.map((x) => x.rule)).toEqual(['reflect.spurious']);
  });

  it('exceptions follow vmcs12 exception bitmap with the full-width PFEC rule', () => {
    const v = validVmcs(L1_MODEL);
    v.set32(Field.EXCEPTION_BITMAP, 1 << 14);
    v.set32(Field.PAGE_FAULT_ERROR_CODE_MASK, 0x1_0000);
    v.set32(Field.PAGE_FAULT_ERROR_CODE_MATCH, 0x1_0000);
    const pf = (ec: number) => exit({ exitReason: 0, interruptionInfo: 0x8000_0b0e, interruptionErrorCode: ec });
    expect(singleLevelExpectation(input({ vmcs12: v, exit: pf(0x1_0002) })).kind).toBe('exit');
    expect(singleLevelExpectation(input({ vmcs12: v, exit: pf(0x2) })).kind).toBe('no-exit');
    // An error code whose bits 31:16 matter: a 16-bit comparison (kvm N19) reflects where the CPU would not.
    expect(checkReflection(input({ vmcs12: v, exit: pf(0x2), delivered: pf(0x2) })).divergences.map((x) => x.rule)).toEqual(['reflect.spurious']);
  });

  it('EPT02 violations: L1 gets exit 48 exactly when the EPT12 walk faults, with its qualification', () => {
    const l1 = new PhysicalMemory<L1Gpa>();
    const b = new EptTableBuilder<L2Gpa, L1Gpa>({ memory: l1, inSpace: L2_GPA, outSpace: L1_GPA, tableArea: { base: 0x100000n, pages: 8 } });
    b.map(l2gpa(0x5000n), l1gpa(0x3000n), { write: false });
    const h = ept12({ eptp: b.eptp(), config: eptConfig(eptCapabilities(L1_MODEL)), tables: l1 });
    if (!h.ok) throw new Error('eptp');
    const read = exit({ exitReason: 48, qualification: 0x1n, guestPhysicalAddress: 0x5000n });
    expect(checkReflection(input({ exit: read, ept12: h.ept, delivered: null })).divergences).toEqual([]);
    const write = exit({ exitReason: 48, qualification: 0x2n, guestPhysicalAddress: 0x5008n });
    const e = singleLevelExpectation(input({ exit: write, ept12: h.ept }));
    expect(e.kind).toBe('exit');
    const d = checkReflection(input({ exit: write, ept12: h.ept, delivered: null })).divergences;
    expect(d.map((x) => x.rule)).toEqual(['reflect.ept12']);
    const good = e.kind === 'exit' ? exit({ exitReason: 48, qualification: e.exit.qualification, guestPhysicalAddress: 0x5008n }) : NONE;
    expect(checkReflection(input({ exit: write, ept12: h.ept, delivered: good })).divergences).toEqual([]);
    expect(checkReflection(input({ exit: write, ept12: h.ept, delivered: { ...good, qualification: 0x2n } })).divergences.map((x) => [x.rule, x.field])).toEqual([['reflect.exit-info', 'qualification']]);
  });

  it("does not judge exits that are L0's (external interrupt, preemption timer) or lack the instruction", () => {
    expect(checkReflection(input({ exit: exit({ exitReason: 1 }) })).judged).toBe(false);
    expect(checkReflection(input({ exit: exit({ exitReason: 52 }) })).judged).toBe(false);
    expect(checkReflection(input({ exit: exit({ exitReason: 10 }) })).judged).toBe(false);
  });
});
