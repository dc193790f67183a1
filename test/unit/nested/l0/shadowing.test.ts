// Hardware VMCS shadowing for L1: L1's VMREAD/VMWRITE of shadowed vmcs12 fields complete in VMX non-root operation
// without an exit to L0, the others exit and are emulated; shadow and vmcs12 stay coherent across exits, emulated
// VMWRITEs of shadowed read-only fields, VMCLEAR/VMPTRLD write-back — with the same O1 as the reference.
import { describe, expect, it } from 'vitest';
import { L1_GPA } from '../../../../src/cpu/address.js';
import { Field } from '../../../../src/cpu/generated/vmcs-fields.js';
import type { L1Program } from '../../../../src/cpu/l1/machine.js';
import { firstDifference, runPair } from '../machine/harness.js';

const A = 0x10_0000n;
const B = 0x10_1000n;
const V = 0x10_2000n;

function program(body: L1Program): L1Program {
  return (m) => {
    const rev = m.rdmsr(0x480) & 0x7fff_ffffn;
    for (const p of [A, B, V]) m.writeMemory(L1_GPA.of(p), 4, rev);
    m.vmxon(L1_GPA.of(V));
    m.vmclear(L1_GPA.of(A));
    m.vmptrld(L1_GPA.of(A));
    body(m);
  };
}

describe('VMCS shadowing for L1', () => {
  const body: L1Program = (m) => {
    m.vmwrite(BigInt(Field.GUEST_RIP), 0x1111n); // shadowed RW: no exit
    m.vmread(BigInt(Field.EPT_POINTER)); // not shadowed: exits, L0 syncs the shadow first
    m.vmread(BigInt(Field.GUEST_RIP));
    m.vmwrite(BigInt(Field.VM_EXIT_REASON), 30n); // shadowed RO: VMWRITE exits (VMWRITE-any), L0 mirrors it
    m.vmread(BigInt(Field.VM_EXIT_REASON)); // read through the shadow
    m.vmptrld(L1_GPA.of(B));
    m.vmread(BigInt(Field.GUEST_RIP));
    m.vmptrld(L1_GPA.of(A));
    m.vmread(BigInt(Field.GUEST_RIP));
  };

  it('gives the reference\'s results', () => {
    const p = runPair(program(body));
    expect(firstDifference(p.reference.log, p.nested.log)).toBeUndefined();
    const reads = p.nested.log.filter((o) => o.kind === 'vmx-instruction' && o.instruction === 'vmread').map((o) => (o.kind === 'vmx-instruction' ? o.value : 0n));
    expect(reads).toEqual([0n, 0x1111n, 30n, 0n, 0x1111n]);
  });

  it('only the accesses outside the shadowed set exit to L0', () => {
    const p = runPair(program(body));
    const handlers = p.nested.records.ofKind('l1-exit').map((x) => x.handler);
    // rdmsr, vmxon, vmclear, vmptrld, then: vmread EPT_POINTER, vmwrite VM_EXIT_REASON, vmptrld B, vmptrld A.
    expect(handlers).toEqual(['rdmsr-vmx-capability', 'vmxon', 'vmclear', 'vmptrld', 'vmread', 'vmwrite', 'vmptrld', 'vmptrld']);
    const off = runPair(program(body), { shadowVmcs: false });
    expect(off.nested.records.ofKind('l1-exit').filter((x) => x.handler === 'vmread')).toHaveLength(5);
    expect(firstDifference(off.reference.log, off.nested.log)).toBeUndefined();
  });
});
