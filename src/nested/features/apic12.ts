// APIC virtualization for the L2 instructions L0 emulates under vmcs12 (an OUTS, a MOV to CR, an RDMSR vmcs02 exits on
// but vmcs12 does not): the emulated access must see vmcs12's APIC-access page as a CPU running vmcs12 would (SDM
// 29.4), compared after L0's EPT02 translation, so the page addresses are vmcs02's host-physical ones.
// Must not: change vmcs12, or decide what an APIC-access exit becomes (the emulation's exit goes to L1 as recorded).
import { makeVirtualApic, type VirtualApic } from '../../cpu/apic/virtual-apic.js';
import { Field } from '../../cpu/generated/vmcs-fields.js';
import { readNonRootControls } from '../../cpu/nonroot/controls.js';
import type { Vmcs, VmcsReader } from '../../cpu/vmcs.js';
import { readPhys, type VmxPhysicalAccess } from '../../cpu/vmx/physical.js';

/** Fields whose vmcs12 value is an L1-physical address (or L2's live state) that vmcs02 holds in host terms. */
const FROM_VMCS02 = new Set<number>([Field.APIC_ACCESS_ADDR, Field.VIRTUAL_APIC_PAGE_ADDR, Field.POSTED_INTR_DESC_ADDR, Field.GUEST_INTR_STATUS]);

/**
 * The VirtualApic of a CPU running `v12` (vmcs12 with L0's emulation adjustments), addressing host memory: page
 * addresses and the live guest interrupt status come from vmcs02, everything else from vmcs12. Null when vmcs12
 * virtualizes nothing of the APIC.
 */
export function emulationApic(v12: Vmcs, vmcs02: Vmcs, host: VmxPhysicalAccess): VirtualApic | null {
  const view: VmcsReader = { read: (e) => (FROM_VMCS02.has(e) ? vmcs02.get(e) : v12.read(e)) };
  return makeVirtualApic(view, readNonRootControls(view), {
    readPhys32: (a) => Number(readPhys(host, a, 4)),
    writePhys32: (a, v) => host.write(a, 4, BigInt(v >>> 0)),
    saveGuestInterruptStatus: (v) => vmcs02.set(Field.GUEST_INTR_STATUS, BigInt(v & 0xffff)),
  });
}
