// The VPID invariant (src/checker/invariants/vpid.ts) on hand-built VMCSs and recorded flushes: a vpid12 change needs a
// flush of L2's tag, entries and exits without VPID in vmcs12 need one, a successful INVVPID needs one; nothing else.
import { describe, expect, it } from 'vitest';
import { Primary, Secondary } from '../../../src/cpu/generated/controls.js';
import { Field } from '../../../src/cpu/generated/vmcs-fields.js';
import { Vmcs } from '../../../src/cpu/vmcs.js';
import { VpidMonitor, l2UsesVpid, vpidTag } from '../../../src/checker/invariants/vpid.js';

function vmcs(vpid: number | null): Vmcs {
  const v = new Vmcs();
  v.set32(Field.CPU_BASED_VM_EXEC_CONTROL, Primary.ACTIVATE_SECONDARY_CONTROLS);
  v.set32(Field.SECONDARY_VM_EXEC_CONTROL, vpid === null ? 0 : Secondary.ENABLE_VPID);
  v.set32(Field.VIRTUAL_PROCESSOR_ID, vpid ?? 0);
  return v;
}
const flush = (vpid: number) => ({ kind: 'context' as const, vpid });

describe('VpidMonitor', () => {
  it('reads the tag a VMCS runs with', () => {
    expect(vpidTag(vmcs(7))).toBe(7);
    expect(vpidTag(vmcs(null))).toBe(0);
    expect(l2UsesVpid(vmcs(3))).toBe(true);
  });

  it('a vpid12 change needs a flush of the tag L2 runs on; the same vpid12 does not', () => {
    const m = new VpidMonitor();
    const v02 = vmcs(2);
    expect(m.entry(1, vmcs(5), v02, [])).toEqual([]);
    expect(m.entry(2, vmcs(5), v02, [])).toEqual([]);
    const d = m.entry(3, vmcs(6), v02, []);
    expect(d.map((x) => [x.rule, x.event, x.expected, x.actual])).toEqual([['vpid.entry-flush', 3, 'context flush of vpid 2', 'no flush']]);
    expect(m.entry(4, vmcs(7), v02, [flush(2)])).toEqual([]);
    expect(m.entry(5, vmcs(8), v02, [flush(9)]).map((x) => x.rule)).toEqual(['vpid.entry-flush']);
  });

  it('without VPID in vmcs12, entries flush the tag L2 runs on and exits flush L1\'s', () => {
    const m = new VpidMonitor();
    expect(m.entry(1, vmcs(null), vmcs(1), []).map((x) => x.rule)).toEqual(['vpid.entry-flush']);
    expect(m.entry(1, vmcs(null), vmcs(1), [flush(1)])).toEqual([]);
    expect(m.exit(2, vmcs(null), vmcs(1), []).map((x) => x.rule)).toEqual(['vpid.exit-flush']);
    expect(m.exit(2, vmcs(null), vmcs(1), [flush(1)])).toEqual([]);
    expect(m.exit(2, vmcs(4), vmcs(1), [])).toEqual([]);
    // vmcs02 without a tag: the hardware entry flushes by itself.
    expect(m.entry(3, vmcs(null), vmcs(null), [])).toEqual([]);
  });

  it('INVVPID must invalidate something', () => {
    const m = new VpidMonitor();
    expect(m.invvpid(7, []).map((x) => x.rule)).toEqual(['vpid.invvpid-flush']);
    expect(m.invvpid(7, [{ kind: 'none' }]).map((x) => x.rule)).toEqual(['vpid.invvpid-flush']);
    expect(m.invvpid(7, [{ kind: 'address', vpid: 2, address: 0x1000n }])).toEqual([]);
  });
});
