// Step-by-step comparison of observation streams (src/checker/compare.ts) on hand-built streams: one divergence per
// differing field with its rule id, SDM section and hex values; masking of exactly the undefined exit-information fields
// and unusable-segment parts; sequence divergences stop the comparison; 'first' mode stops at one.
import { describe, expect, it } from 'vitest';
import { Field } from '../../../src/cpu/generated/vmcs-fields.js';
import type { ExitInformation, Observation } from '../../../src/cpu/l1/observation.js';
import { compareObservationStreams, ObservationComparator } from '../../../src/checker/compare.js';
import { collector } from '../../../src/checker/divergence.js';
import { exitFieldDefined } from '../../../src/checker/exit-definedness.js';
import { CHECKER_RULES } from '../../../src/checker/rules.js';

const exit0: ExitInformation = {
  exitReason: 10, qualification: 0n, guestLinearAddress: 0x1234n, guestPhysicalAddress: 0x5000n, interruptionInfo: 0,
  interruptionErrorCode: 0x55, idtVectoringInfo: 0, idtVectoringErrorCode: 0x66, instructionLength: 2, instructionInfo: 0x77,
};

function exitObs(step: number, exit: Partial<ExitInformation> = {}, guest: [number, bigint][] = [[Field.GUEST_RIP, 0x1000n]]): Observation {
  return { kind: 'exit-to-l1', step, exit: { ...exit0, ...exit }, guestState: new Map(guest) };
}
const vmread = (step: number, value: bigint, rflags = 0x2n): Observation =>
  ({ kind: 'vmx-instruction', step, instruction: 'vmread', operands: [BigInt(Field.GUEST_RIP)], outcome: 'vmsucceed', value, rflags });
const l1 = (step: number, kv: [string, bigint][]): Observation => ({ kind: 'l1-state', step, digest: '', detail: new Map(kv) });

describe('compareObservationStreams', () => {
  it('reports nothing for equal streams', () => {
    const s = [vmread(0, 5n), exitObs(1), l1(1, [['rip', 1n]])];
    expect(compareObservationStreams(s, s)).toEqual([]);
  });

  it('reports one divergence per differing O1 field with rule, SDM section, hex values and the VMREAD field name', () => {
    const d = compareObservationStreams([vmread(3, 0x10n, 0x2n)], [vmread(3, 0x11n, 0x3n)]);
    expect(d.map((x) => x.rule)).toEqual(['oracle.o1.vmread-value', 'oracle.o1.rflags']);
    expect(d[0]).toMatchObject({
      kind: 'observation', observationClass: 'O1', event: 3, level: 'L1', field: 'GUEST_RIP', expected: '0x10', actual: '0x11', sdm: CHECKER_RULES.get('oracle.o1.vmread-value')!.sdm,
    });
    expect(d[0]!.explanation).toMatch(/0x11.*0x10/);
  });

  it('compares only the exit-information fields the SDM defines for the exit', () => {
    // CPUID: instruction length defined; linear/physical address, instruction info and error codes are not.
    const masked = compareObservationStreams([exitObs(0)], [exitObs(0, { guestLinearAddress: 0n, guestPhysicalAddress: 0n, instructionInfo: 0, interruptionErrorCode: 0, idtVectoringErrorCode: 0 })]);
    expect(masked).toEqual([]);
    const d = compareObservationStreams([exitObs(0)], [exitObs(0, { instructionLength: 3, qualification: 1n })]);
    expect(d.map((x) => [x.rule, x.field, x.expected, x.actual])).toEqual([
      ['oracle.o2.qualification', 'EXIT_QUALIFICATION', '0x0', '0x1'],
      ['oracle.o2.instruction-length', 'VM_EXIT_INSTRUCTION_LEN', '0x2', '0x3'],
    ]);
    // An EPT violation with a linear address defines both addresses; a VM-entry failure only reason and qualification.
    const ept: Partial<ExitInformation> = { exitReason: 48, qualification: 0x181n };
    expect(compareObservationStreams([exitObs(0, ept)], [exitObs(0, { ...ept, guestPhysicalAddress: 1n, guestLinearAddress: 2n })]).map((x) => x.rule))
      .toEqual(['oracle.o2.guest-linear-address', 'oracle.o2.guest-physical-address']);
    const fail: Partial<ExitInformation> = { exitReason: 0x8000_0021 };
    expect(compareObservationStreams([exitObs(0, fail)], [exitObs(0, { ...fail, instructionLength: 9, interruptionInfo: 0x8000_0b0e })])).toEqual([]);
  });

  it('error codes count only when the information says they are valid', () => {
    const pf: Partial<ExitInformation> = { exitReason: 0, interruptionInfo: 0x8000_0b0e, interruptionErrorCode: 2 };
    expect(exitFieldDefined({ ...exit0, ...pf }, 'interruptionErrorCode')).toBe(true);
    expect(compareObservationStreams([exitObs(0, pf)], [exitObs(0, { ...pf, interruptionErrorCode: 3 })]).map((x) => x.rule)).toEqual(['oracle.o2.interruption-error-code']);
    const idt: Partial<ExitInformation> = { idtVectoringInfo: 0x8000_0300 };
    expect(compareObservationStreams([exitObs(0, idt)], [exitObs(0, { ...idt, idtVectoringErrorCode: 1 })])).toEqual([]);
    expect(compareObservationStreams([exitObs(0, idt)], [exitObs(0, { idtVectoringInfo: 0 })]).map((x) => x.rule)).toEqual(['oracle.o2.idt-vectoring-info']);
  });

  it('a different exit reason is one divergence (the other fields are not compared)', () => {
    const d = compareObservationStreams([exitObs(2)], [exitObs(2, { exitReason: 30, qualification: 5n })]);
    expect(d).toHaveLength(1);
    expect(d[0]).toMatchObject({ rule: 'oracle.o2.exit-reason', expected: '0xa', actual: '0x1e', field: 'VM_EXIT_REASON' });
    expect(d[0]!.explanation).toContain('IO_INSTRUCTION');
  });

  it('guest state: compared field by field, undefined access-rights bits of unusable segments masked', () => {
    const ar = Field.GUEST_LDTR_AR_BYTES;
    const e = exitObs(0, {}, [[Field.GUEST_RIP, 1n], [ar, 0x1_0082n]]);
    expect(compareObservationStreams([e], [exitObs(0, {}, [[Field.GUEST_RIP, 1n], [ar, 0x1_0000n]])])).toEqual([]);
    const d = compareObservationStreams([e], [exitObs(0, {}, [[Field.GUEST_RIP, 2n], [ar, 0x82n]])]);
    expect(d.map((x) => x.field)).toEqual(['GUEST_RIP', 'GUEST_LDTR_AR_BYTES']);
  });

  it('L1 state: unusable segments after the host-state load mask limit, base (not FS/GS) and AR bits', () => {
    const ref = l1(4, [['rip', 1n], ['DS.ar', 0x1_0000n], ['DS.base', 0n], ['DS.limit', 0n], ['FS.ar', 0x1_0000n], ['FS.base', 0x10n]]);
    const ok = l1(4, [['rip', 1n], ['DS.ar', 0x1_0093n], ['DS.base', 7n], ['DS.limit', 0xffffn], ['FS.ar', 0x1_0000n], ['FS.base', 0x10n]]);
    expect(compareObservationStreams([ref], [ok])).toEqual([]);
    const bad = l1(4, [['rip', 1n], ['DS.ar', 0x93n], ['DS.base', 0n], ['DS.limit', 0n], ['FS.ar', 0x1_0000n], ['FS.base', 0x11n]]);
    expect(compareObservationStreams([ref], [bad]).map((x) => [x.rule, x.field, x.observationClass])).toEqual([
      ['oracle.o3.l1-state', 'DS.ar', 'O3'], ['oracle.o3.l1-state', 'FS.base', 'O3'],
    ]);
    const undef = compareObservationStreams([l1(1, [['cr0', 1n]])], [l1(1, [['cr0', 3n]])], 'all', { l1StateUndefined: () => ['cr0'] });
    expect(undef).toEqual([]);
    const recorded = compareObservationStreams([l1(1, [['cr0', 1n]])], [l1(1, [['cr0', 3n]])], 'all', { kind: 'recorded' });
    expect(recorded.map((x) => x.kind)).toEqual(['recorded']);
  });

  it('O4, O5 and O6 each have their rules; a memory difference is reported once, not at every later step', () => {
    const l2 = (rax: bigint, ev: string[]): Observation => ({ kind: 'l2-state', step: 1, detail: new Map([['rax', rax]]), deliveredEvents: ev });
    expect(compareObservationStreams([l2(1n, ['e/3'])], [l2(2n, [])]).map((x) => [x.rule, x.level])).toEqual([['oracle.o4.l2-state', 'L2'], ['oracle.o4.delivered-events', 'L2']]);
    const mem = (step: number, digest: bigint, pages: [bigint, bigint][]): Observation => ({ kind: 'l1-memory', step, digest, changedPages: new Map(pages) });
    const d = compareObservationStreams(
      [mem(1, 10n, [[5n, 1n]]), mem(2, 10n, []), mem(3, 12n, [[6n, 2n]])],
      [mem(1, 11n, [[5n, 9n]]), mem(2, 11n, []), mem(3, 13n, [[6n, 2n]])],
    );
    expect(d.map((x) => [x.rule, x.event, x.field])).toEqual([['oracle.o5.memory', 1, 'L1-physical page 0x5000']]);
    const sd = (why: 'vmx-abort' | 'triple-fault', ind?: number): Observation => ({ kind: 'shutdown', step: 9, why, ...(ind !== undefined ? { abortIndicator: ind } : {}) });
    expect(compareObservationStreams([sd('vmx-abort', 1)], [sd('triple-fault')]).map((x) => x.rule)).toEqual(['oracle.o6.shutdown']);
    expect(compareObservationStreams([sd('vmx-abort', 1)], [sd('vmx-abort', 4)]).map((x) => x.rule)).toEqual(['oracle.o6.abort-indicator']);
  });

  it('a different kind of observation or a different step is one sequence divergence, and comparison stops there', () => {
    const d = compareObservationStreams([vmread(0, 1n), exitObs(1), vmread(2, 1n)], [vmread(0, 1n), vmread(1, 2n), vmread(2, 3n)]);
    expect(d.map((x) => [x.rule, x.event, x.observationClass])).toEqual([['oracle.sequence.kind', 1, 'O2']]);
    expect(d[0]!.expected).toContain('CPUID');
    const s = compareObservationStreams([vmread(0, 1n)], [vmread(1, 1n)]);
    expect(s.map((x) => x.rule)).toEqual(['oracle.sequence.step']);
    const longer = compareObservationStreams([vmread(0, 1n)], [vmread(0, 1n), exitObs(1)]);
    expect(longer.map((x) => [x.rule, x.actual])).toEqual([['oracle.sequence.length', 'exit to L1: CPUID']]);
  });

  it("'first' mode stops at the first divergence; the streaming comparator accepts interleaved pushes", () => {
    const d = compareObservationStreams([vmread(0, 1n, 2n), vmread(1, 1n)], [vmread(0, 2n, 3n), vmread(1, 2n)], 'first');
    expect(d).toHaveLength(1);
    const out = collector('all');
    const c = new ObservationComparator(out);
    c.pushActual(vmread(0, 1n));
    c.pushActual(vmread(1, 1n));
    c.pushReference(vmread(0, 1n));
    c.pushReference(vmread(1, 7n));
    c.finish();
    expect(out.divergences.map((x) => [x.rule, x.event])).toEqual([['oracle.o1.vmread-value', 1]]);
  });

  it('every rule id the comparator can emit is in the catalogue', () => {
    for (const id of CHECKER_RULES.keys()) expect(id).toMatch(/^(oracle\.((o[1-6]|sequence)\.)?|merge\.|ept02\.|reflect\.|vpid\.)[a-z0-9-]+$/);
  });
});
