// VMLAUNCH/VMRESUME with the real VM-entry check engine (src/cpu/vmentry) on every CPU model: an L1 that builds
// validVmcs(cpu) with VMWRITEs enters, exits and resumes; single perturbations land in the right outcome class.
import { describe, expect, it } from 'vitest';
import { Field } from '../../../../src/cpu/generated/vmcs-fields.js';
import type { CpuModel } from '../../../../src/cpu/cpu-model.js';
import { validVmcs } from '../../../../src/cpu/vmentry/index.js';
import { slotFields } from '../../../../src/cpu/vmcs.js';
import { VmxProcessor } from '../../../../src/cpu/vmx/processor.js';
import { CORE2, KVM_L1, MSR_AREA, SKYLAKE, VMCS_A, VMXON_PTR, expectKind, identity, msrEntry, root64, standardMemory } from './helpers.js';

/** VMXON + VMCLEAR + VMPTRLD, then VMWRITE every supported, writable field of validVmcs(cpu) (as L1 software would). */
function built(cpu: CpuModel, tweak: (write: (f: number, v: bigint) => void) => void = () => {}) {
  const mem = standardMemory(cpu).map(MSR_AREA);
  const p = new VmxProcessor({ cpu, memory: mem, state: root64(), translate: identity });
  expectKind(p.vmxon(VMXON_PTR), 'vmsucceed');
  expectKind(p.vmclear(VMCS_A), 'vmsucceed');
  expectKind(p.vmptrld(VMCS_A), 'vmsucceed');
  const valid = validVmcs(cpu);
  const write = (f: number, v: bigint) => expectKind(p.vmwrite(BigInt(f), v, 64), 'vmsucceed');
  for (const f of slotFields()) {
    if (!cpu.fieldSupported(f.encoding) || f.type === 'read-only data') continue;
    write(f.encoding, valid.get(f.encoding));
  }
  tweak(write);
  return { p, mem };
}

describe.each([
  ['intel-core-i7-6700k', SKYLAKE],
  ['kvm-l1', KVM_L1],
  ['intel-core2-x6800', CORE2],
] as const)('%s', (_id, cpu) => {
  it('enters with validVmcs, exits to HOST_RIP, resumes; VMLAUNCH of the launched VMCS fails with 4', () => {
    const { p } = built(cpu);
    const entry = expectKind(p.vmlaunch(), 'vm-entry');
    if (entry.kind !== 'vm-entry') return;
    expect(entry.guest.rip).toBe(0x40_1000n);
    expect(entry.guest.longMode64).toBe(true);
    expect(p.launchState(VMCS_A)).toBe('launched');
    const exit = p.vmExit({ reason: 10, instructionLength: 2 }, entry.guest);
    expectKind(exit, 'host');
    expect(p.state.rip).toBe(0xffff_ffff_8100_0000n);
    expect(p.state.segSel[1]).toBe(0x10);
    expect(p.state.longMode64).toBe(true);
    expect(p.vmread(BigInt(Field.VM_EXIT_REASON), 64)).toEqual({ kind: 'vmsucceed', value: 10n });
    expect(p.vmread(BigInt(Field.GUEST_RIP), 64)).toEqual({ kind: 'vmsucceed', value: 0x40_1000n });
    expectKind(p.vmresume(), 'vm-entry');
    expectKind(p.vmExit({ reason: 10 }, p.guest!), 'host');
    expect(p.vmlaunch()).toEqual({ kind: 'vmfail-valid', error: 4 });
  });

  it('a control violation is VMfailValid(7), a host-state violation VMfailValid(8)', () => {
    expect(built(cpu, (w) => w(Field.PIN_BASED_VM_EXEC_CONTROL, 0n)).p.vmlaunch()).toEqual({ kind: 'vmfail-valid', error: 7 });
    expect(built(cpu, (w) => w(Field.HOST_CR0, 0n)).p.vmlaunch()).toEqual({ kind: 'vmfail-valid', error: 8 });
  });

  it('a guest-state violation is exit 33 | bit 31 naming the check; an unreadable link pointer gives qualification 4', () => {
    const a = built(cpu, (w) => w(Field.GUEST_RFLAGS, 0n)).p.vmlaunch();
    expect(a).toMatchObject({ kind: 'entry-failure-exit', exitReason: 0x8000_0021, qualification: 0n });
    expect(a.kind === 'entry-failure-exit' && typeof a.checkId).toBe('string');
    const b = built(cpu, (w) => w(Field.VMCS_LINK_POINTER, 0x40_0000n)).p.vmlaunch();
    expect(b).toMatchObject({ kind: 'entry-failure-exit', exitReason: 0x8000_0021, qualification: 4n });
  });

  it('an MSR-load entry with reserved bits is exit 34 with its 1-based index; earlier entries are loaded', () => {
    const { p, mem } = built(cpu, (w) => {
      w(Field.VM_ENTRY_MSR_LOAD_ADDR, MSR_AREA);
      w(Field.VM_ENTRY_MSR_LOAD_COUNT, 2n);
    });
    msrEntry(mem, MSR_AREA, 0, 0xc000_0081, 0x55n);
    msrEntry(mem, MSR_AREA, 1, 0xc000_0082, 0n, 1);
    expect(p.vmlaunch()).toMatchObject({ kind: 'entry-failure-exit', exitReason: 0x8000_0022, qualification: 2n });
    expect(p.state.msr(0xc000_0081)).toBe(0x55n);
    expect(p.state.rip).toBe(0xffff_ffff_8100_0000n);
  });
});
