// What a dump proves: exit reasons that imply the control and host checks passed, the widened CPU model (only
// what the VMCS used, invariants kept), and the host's IA-32e mode from the exit controls and HOST_IA32_EFER.
import { describe, expect, it } from 'vitest';
import { CpuModel, DEFAULT_CPU_MODEL, findCpuModel } from '../../../../../src/cpu/cpu-model.js';
import { PartialVmcs } from '../../../../../src/cpu/vmcs.js';
import { Field } from '../../../../../src/cpu/generated/vmcs-fields.js';
import { controlsProven, impliedHostIa32e, widenForProvenControls } from '../../../../../src/replay/import/vmcs-dump/facts.js';
import { emptyDerived } from '../../../../../src/replay/import/vmcs-dump/types.js';

const withExit = (reason: bigint) => {
  const d = emptyDerived();
  d.exit = { reason, basic: Number(reason & 0xffffn), failedEntry: reason >> 31n === 1n, line: 1 };
  return d;
};

describe('controlsProven', () => {
  it('a VM exit or an exit-33/34 entry failure proves the controls passed; other failures and no exit do not', () => {
    expect(controlsProven(withExit(0x30n))).toMatch(/VM entry succeeded/);
    expect(controlsProven(withExit(0x80000021n))).toMatch(/reason 33/);
    expect(controlsProven(withExit(0x80000022n))).toMatch(/reason 34/);
    expect(controlsProven(withExit(0x80000029n))).toBeUndefined();
    expect(controlsProven(emptyDerived())).toBeUndefined();
  });
});

describe('widenForProvenControls', () => {
  const base = findCpuModel(DEFAULT_CPU_MODEL)!;
  it('adds exactly the used control bits the preset lacked, keeping TRUE/non-TRUE consistent', () => {
    const v = new PartialVmcs();
    v.set(Field.PIN_BASED_VM_EXEC_CONTROL, 0xffn);
    v.set(Field.CPU_BASED_VM_EXEC_CONTROL, 0xb5a06dfan);
    v.set(Field.SECONDARY_VM_EXEC_CONTROL, 0x37ebn);
    const w = widenForProvenControls(base.data, v, 'test', true);
    const m = new CpuModel(w.data);
    expect(m.msr('IA32_VMX_TRUE_PINBASED_CTLS')).toBe(0x000000ff00000016n);
    expect(m.msr('IA32_VMX_PINBASED_CTLS')).toBe(0x000000ff00000016n);
    expect(m.controlsValid('pin', 0xffn)).toBe(true);
    expect(m.controlsValid('secondary', 0x37ebn)).toBe(true);
    expect(m.controlsValid('secondary', 0x37ebn | (1n << 25n))).toBe(false);
    expect(w.data.id).toBe(`${DEFAULT_CPU_MODEL}+proven`);
    expect(w.changes).toHaveLength(3);
  });

  it('does not widen the secondary controls when the primary control does not activate them', () => {
    const v = new PartialVmcs();
    v.set(Field.CPU_BASED_VM_EXEC_CONTROL, 0x04006172n);
    v.set(Field.SECONDARY_VM_EXEC_CONTROL, 0xffffffffn);
    expect(widenForProvenControls(base.data, v, 'test', true).changes).toEqual([]);
  });

  it('relaxes a TRUE must-be-one bit the VMCS has clear, and raises MAXPHYADDR to the addresses used', () => {
    const v = new PartialVmcs();
    v.set(Field.CPU_BASED_VM_EXEC_CONTROL, 0x84006172n & ~(1n << 26n));
    v.set(Field.SECONDARY_VM_EXEC_CONTROL, 0x2n);
    v.set(Field.EPT_POINTER, 0x0000_7f00_0000_005en);
    const m = new CpuModel(widenForProvenControls(base.data, v, 'test', false).data);
    expect(m.controlsValid('primary', 0x84006172n & ~(1n << 26n))).toBe(true);
    expect(m.maxPhysAddr).toBe(47);
  });

  it('leaves a model that already allows everything unchanged', () => {
    const v = new PartialVmcs();
    v.set(Field.PIN_BASED_VM_EXEC_CONTROL, 0x16n);
    const w = widenForProvenControls(base.data, v, 'test', true);
    expect(w.changes).toEqual([]);
    expect(w.data).toBe(base.data);
  });
});

describe('impliedHostIa32e', () => {
  const v = (exit: bigint, efer?: bigint) => {
    const p = new PartialVmcs();
    p.set(Field.VM_EXIT_CONTROLS, exit);
    if (efer !== undefined) p.set(Field.HOST_IA32_EFER, efer);
    return p;
  };
  it('uses HOST_IA32_EFER.LMA when "load IA32_EFER" is set and it agrees with "host address-space size"', () => {
    expect(impliedHostIa32e(v(0x2befffn, 0xd01n), undefined).value).toBe(true);
    expect(impliedHostIa32e(v(0x2bedffn, 0xd01n), undefined).value).toBeUndefined();
  });
  it('uses "host address-space size" when the exit proves the host checks passed, else unknown', () => {
    expect(impliedHostIa32e(v(0xfefffn, 0n), 'proof').value).toBe(true);
    expect(impliedHostIa32e(v(0xfefffn, 0n), undefined).value).toBeUndefined();
    expect(impliedHostIa32e(new PartialVmcs(), 'proof').value).toBeUndefined();
  });
});
