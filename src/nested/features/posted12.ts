// L1's posted-interrupt notification while L2 runs: vmcs02 uses L0's own notification vector (KVM's nested posted
// vector), so an interrupt with vmcs12's POSTED_INTR_NV reaches L0 as an external-interrupt exit; L0 then does what a
// CPU running vmcs12 does instead of that exit (SDM 29.6): process vmcs12's descriptor into L2's virtual-APIC page and
// raise RVI; the re-entry of vmcs02 evaluates pending virtual interrupts (SDM 29.2.1). Must not: touch vmcs12.
import { processPostedInterrupts } from '../../cpu/apic/posted.js';
import { Pin } from '../../cpu/generated/controls.js';
import { Field } from '../../cpu/generated/vmcs-fields.js';
import type { Vmcs } from '../../cpu/vmcs.js';
import { readPhys, type VmxPhysicalAccess } from '../../cpu/vmx/physical.js';
import { Deviation, deviates, type L0Profile } from '../profile.js';
import { POSTED_CONTROL_DWORD } from '../../cpu/apic/posted.js';

/** VIRR: the virtual-APIC page's IRR, eight dwords 16 bytes apart (SDM 29.1.1). */
const VIRR = 0x200;

/** Whether an acknowledged external interrupt `vector` is the posted-interrupt notification of vmcs12. */
export function isPostedNotification12(v12: Vmcs, vector: number): boolean {
  return (v12.lo(Field.PIN_BASED_VM_EXEC_CONTROL) & Pin.PROCESS_POSTED_INTERRUPTS) !== 0 && (vector & 0xff) === (v12.lo(Field.POSTED_INTR_NV) & 0xff);
}

/**
 * Posted-interrupt processing for L2 in software on host memory: the descriptor and virtual-APIC page are vmcs02's
 * (the host pages backing vmcs12's), RVI goes into vmcs02's guest interrupt status (L2's live copy). A CPU moves PIR
 * into VIRR whatever the outstanding-notification bit (SDM 29.6 clears ON, it does not test it); KVM tests and clears
 * ON first and leaves PIR alone when ON was 0 (kvm.posted-interrupt-deferred), so L2 sees those requests only at a
 * later notification that finds ON set.
 */
export function processPosted12(vmcs02: Vmcs, host: VmxPhysicalAccess, profile: L0Profile): void {
  const vapic = vmcs02.get(Field.VIRTUAL_APIC_PAGE_ADDR) & ~0xfffn;
  const bus = {
    readPhys32: (a: bigint) => Number(readPhys(host, a, 4)) >>> 0,
    writePhys32: (a: bigint, v: number) => void host.write(a, 4, BigInt(v >>> 0)),
  };
  const desc = vmcs02.get(Field.POSTED_INTR_DESC_ADDR) & ~0x3fn;
  if (deviates(profile, Deviation.POSTED_INTERRUPT_DEFERRED) && (bus.readPhys32(desc + BigInt(POSTED_CONTROL_DWORD)) & 1) === 0) return;
  const highest = processPostedInterrupts(bus, desc, (i, bits) => {
    const at = vapic + BigInt(VIRR + i * 0x10);
    bus.writePhys32(at, (bus.readPhys32(at) | bits) >>> 0);
  });
  if (highest === undefined) return;
  const status = Number(vmcs02.get(Field.GUEST_INTR_STATUS) & 0xffffn);
  const rvi = Math.max(status & 0xff, highest);
  vmcs02.set(Field.GUEST_INTR_STATUS, BigInt((status & 0xff00) | rvi));
}
