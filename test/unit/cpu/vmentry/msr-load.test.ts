// Table-driven tests of SDM 26.4 (VM-entry MSR-load list → exit reason 34, qualification = 1-based entry index).
import { describe, expect, it } from 'vitest';
import { runEntryChecks, validVmcs, verdictOf } from '../../../../src/cpu/vmentry/index.js';
import { Field } from '../../../../src/cpu/generated/vmcs-fields.js';
import { MSR_LOAD_CASES } from './cases-non-register.js';
import { checkCase, PhysMemory, presets } from './support.js';

describe('VM-entry MSR loading (SDM 26.4)', () => {
  for (const c of MSR_LOAD_CASES) {
    it(c.name, () => {
      const r = checkCase(c);
      if (c.expect !== 'pass') expect(verdictOf(r.first)).toMatchObject({ kind: 'entry-failure', exitReason: 34 });
    });
  }

  it('qualification is the 1-based index of the failing entry', () => {
    const cpu = presets()[0]!;
    const v = validVmcs(cpu);
    v.set32(Field.VM_ENTRY_MSR_LOAD_COUNT, 3);
    v.set(Field.VM_ENTRY_MSR_LOAD_ADDR, 0x20000n);
    const m = new PhysMemory().msrList(0x20000n, [{ index: 0x10 }, { index: 0x277 }, { index: 0xc000_0100 }]);
    const r = runEntryChecks(v, { cpu, hostIa32e: true, readPhys: (a, s) => m.read(a, s), wrmsrFaults: () => false }, 'first');
    expect(verdictOf(r)).toMatchObject({ kind: 'entry-failure', exitReason: 34, qualification: 3n });
  });

  it('all mode reports every failing entry in list order; first mode only the first', () => {
    const cpu = presets()[0]!;
    const v = validVmcs(cpu);
    v.set32(Field.VM_ENTRY_MSR_LOAD_COUNT, 3);
    v.set(Field.VM_ENTRY_MSR_LOAD_ADDR, 0x20000n);
    const m = new PhysMemory().msrList(0x20000n, [{ index: 0x808 }, { index: 0x10 }, { index: 0x79, reserved: 5 }]);
    const env = { cpu, hostIa32e: true, readPhys: (a: bigint, s: 4 | 8) => m.read(a, s), wrmsrFaults: () => false };
    const all = runEntryChecks(v, env, 'all');
    expect(all.failures.map((f) => [f.id, f.qualification])).toEqual([
      ['msr-load.entry.x2apic', 1n], ['msr-load.entry.microcode', 3n], ['msr-load.entry.reserved-bits', 3n],
    ]);
    expect(runEntryChecks(v, env, 'first').failures.map((f) => f.id)).toEqual(['msr-load.entry.x2apic']);
  });

  it('entries the reader cannot see and an unknown WRMSR outcome are not evaluated', () => {
    const cpu = presets()[0]!;
    const v = validVmcs(cpu);
    v.set32(Field.VM_ENTRY_MSR_LOAD_COUNT, 1);
    v.set(Field.VM_ENTRY_MSR_LOAD_ADDR, 0x20000n);
    const blind = runEntryChecks(v, { cpu, hostIa32e: true }, 'all');
    expect(blind.failures).toEqual([]);
    expect(blind.notEvaluated).toEqual(expect.arrayContaining(['msr-load.entry.fs-gs-base', 'msr-load.entry.reserved-bits', 'msr-load.entry.wrmsr-fault']));
    const m = new PhysMemory().msrList(0x20000n, [{ index: 0x277 }]);
    const noWrmsr = runEntryChecks(v, { cpu, hostIa32e: true, readPhys: (a, s) => m.read(a, s) }, 'all');
    expect(noWrmsr.notEvaluated).toEqual(['msr-load.entry.wrmsr-fault']);
  });
});
