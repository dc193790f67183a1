// The implementation-specific VMCS region image: fits the model's region size, never touches the architectural
// header dwords, round-trips every supported field and the launch state, and aligns every access naturally.
import { describe, expect, it } from 'vitest';
import { cpuModelIds, findCpuModel } from '../../../../src/cpu/cpu-model.js';
import { Vmcs, slotFields } from '../../../../src/cpu/vmcs.js';
import { VmcsRegionLayout, regionLayout } from '../../../../src/cpu/vmx/vmcs-region.js';
import { MapMemory } from './helpers.js';

describe.each(cpuModelIds())('region layout on %s', (id) => {
  const cpu = findCpuModel(id)!;
  const layout = regionLayout(cpu);

  it('fits in IA32_VMX_BASIC[44:32] bytes and keeps offsets 0 and 4 for the revision and abort indicator', () => {
    expect(layout.size).toBeLessThanOrEqual(cpu.vmcsRegionSize);
    const mem = new MapMemory().map(0x2000n);
    mem.write(0x2000n, 4, 0x1234n);
    mem.write(0x2004n, 4, 0x5678n);
    layout.store(mem, 0x2000n, new Vmcs(), true);
    expect(mem.read(0x2000n, 4)).toBe(0x1234n);
    expect(mem.read(0x2004n, 4)).toBe(0x5678n);
    expect(layout.launchStateOffset % 4n).toBe(0n);
  });

  // Listed, not only supported: kvm-l1 lists fields of features it does not offer (vmcs12 holds them, N24).
  it('round-trips every listed field and the launch state; unlisted fields are not stored', () => {
    const v = new Vmcs();
    let k = 1n;
    for (const f of slotFields()) v.set(f.encoding, 0x0123_4567_89ab_cdefn * k++);
    const mem = new MapMemory().map(0x2000n);
    layout.store(mem, 0x2000n, v, true);
    const back = new Vmcs();
    expect(layout.load(mem, 0x2000n, back)).toEqual({ launched: true });
    for (const f of slotFields()) {
      expect(back.get(f.encoding), f.name).toBe(cpu.fieldListed(f.encoding) ? v.get(f.encoding) : 0n);
    }
    layout.storeLaunchState(mem, 0x2000n, false);
    expect(layout.readLaunchState(mem, 0x2000n)).toBe(false);
  });
});

describe('region layout sizing', () => {
  it('refuses a model whose region is too small for the image (a model-data bug, not a guest outcome)', () => {
    const base = findCpuModel('intel-core-i7-6700k')!;
    const tiny = Object.create(base) as typeof base;
    Object.defineProperty(tiny, 'vmcsRegionSize', { get: () => 256 });
    expect(() => new VmcsRegionLayout(tiny)).toThrow(/turtles bug/);
  });
});
