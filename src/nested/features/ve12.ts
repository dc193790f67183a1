// EPT-violation #VE for L2 emulated by L0 (vmcs02 runs without "EPT-violation #VE"): an EPT12 violation L0's software
// walk finds becomes, as on a CPU running vmcs12, a virtualization exception — VE information area in L1 memory
// written, then #VE (vector 20) for L2, or exit 0 to L1 when vmcs12's exception bitmap has bit 20 (SDM 25.5.6,
// 24.6.18). Must not: walk EPT12, deliver the event (L0 injects it through vmcs02) or decide other exits.
import { convertToVe, eptViolationConvertible, VE_VECTOR, type VeArea } from '../../cpu/ept/ve.js';
import type { EptViolation } from '../../cpu/ept/types.js';
import type { L2Gpa } from '../../cpu/address.js';
import { ExitReason } from '../../cpu/generated/exit-reasons.js';
import { Secondary } from '../../cpu/generated/controls.js';
import { Field } from '../../cpu/generated/vmcs-fields.js';
import type { Vmcs } from '../../cpu/vmcs.js';
import { controlWord } from '../reflect/control-bits.js';

/** L1-physical memory as L0 reads and writes it (the VE information area vmcs12 names is an L1 address). */
export interface L1Access {
  read(gpa: bigint, size: 1 | 2 | 4 | 8): bigint | undefined;
  write(gpa: bigint, size: 1 | 2 | 4 | 8, value: bigint): boolean;
}

/** Interruption information of a #VE: valid, hardware exception, vector 20, no error code. */
export const VE_INTR_INFO = (0x8000_0000 | (3 << 8) | VE_VECTOR) >>> 0;

/** vmcs12's VE information area in L1 memory, and its EPTP index. */
function area12(v12: Vmcs, l1: L1Access): VeArea {
  const base = v12.get(Field.VE_INFORMATION_ADDRESS);
  return {
    readBusy: () => {
      const v = l1.read(base + 4n, 4);
      return v === undefined ? undefined : Number(v);
    },
    write: (offset, size, value) => void l1.write(base + BigInt(offset), size, value),
    eptpIndex: Number(v12.get(Field.EPTP_INDEX) & 0xffffn),
  };
}

export interface Ve12Input {
  readonly v12: Vmcs;
  readonly l1: L1Access;
  /** The EPT12 violation of L0's walk (its path decides convertibility). */
  readonly fault: EptViolation<L2Gpa>;
  /** The qualification a CPU running vmcs12 computes (bit 12, defined only for the VM exit, is dropped). */
  readonly qualification: bigint;
  readonly guestLinearAddress: bigint | undefined;
  /** The violating access happened while delivering an event (IDT-vectoring information valid): never a #VE. */
  readonly duringDelivery: boolean;
  /** L2's CR0 (PE = 0 keeps the VM exit). */
  readonly cr0: bigint;
}

/**
 * 've': the VE area was written and L2 takes #VE (or L1 gets exit 0 for it, see `exceptionExit12`); null: the
 * violation stays the EPT-violation exit to L1 (SDM 25.5.6.1: control off, not convertible, in delivery, busy area).
 */
export function eptViolationToVe12(i: Ve12Input): 've' | null {
  if (!(controlWord(i.v12, 'secondary') & Secondary.EPT_VIOLATION_VE)) return null;
  if (i.duringDelivery || !eptViolationConvertible(i.fault)) return null;
  const exit = {
    reason: ExitReason.EPT_VIOLATION, qualification: i.qualification & ~(1n << 12n),
    guestPhysicalAddress: i.fault.gpa as bigint, ...(i.guestLinearAddress !== undefined ? { guestLinearAddress: i.guestLinearAddress } : {}),
  };
  return convertToVe(exit, i.cr0, area12(i.v12, i.l1)) ? 've' : null;
}

/** Whether vmcs12's exception bitmap turns the #VE into exit 0 to L1 (SDM 25.2: checked before delivery). */
export function veExits12(v12: Vmcs): boolean {
  return ((v12.lo(Field.EXCEPTION_BITMAP) >>> VE_VECTOR) & 1) === 1;
}
