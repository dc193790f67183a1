// EPT-violation virtualization exceptions (#VE, vector 20): which EPT violations are convertible, whether a convertible
// one becomes a #VE, and the virtualization-exception information area it writes. Must not: deliver the exception
// (the interpreter raises it like any fault, exception bitmap bit 20 included) or walk EPT.
// SDM Vol. 3C 26.5.7 / 25.5.6 (Virtualization Exceptions; Table "Format of the VE Information Area"), 24.6.18.
import { ExitReason } from '../generated/exit-reasons.js';
import type { NonRootExit } from '../nonroot/types.js';
import { EptBit } from './entry.js';
import type { EptViolation } from './types.js';
import type { PhysicalAddress } from '../address.js';

/** The #VE vector (a fault, no error code). */
export const VE_VECTOR = 20;

/** Byte offsets in the virtualization-exception information area (SDM table in 25.5.6.2). */
export const VeInfo = {
  EXIT_REASON: 0,
  /** 32 bits: software clears it to 0 to allow the next #VE; delivery writes FFFFFFFFh. */
  BUSY: 4,
  QUALIFICATION: 8,
  GUEST_LINEAR: 16,
  GUEST_PHYSICAL: 24,
  /** 16 bits: the EPTP-index VM-execution control field. */
  EPTP_INDEX: 32,
} as const;

/**
 * Exactly one EPT entry decides convertibility (SDM 25.5.6.1): the entry that was not present, or the entry that maps
 * the page when the rights did not allow the access. Its bit 63 clear makes the violation convertible. A violation
 * without any entry (a guest-physical address wider than the EPT translates) has none and is not convertible. [verify]
 */
export function eptViolationConvertible<P extends PhysicalAddress>(v: Pick<EptViolation<P>, 'path'>): boolean {
  const last = v.path[v.path.length - 1];
  return last !== undefined && (last.entry & EptBit.SUPPRESS_VE) === 0n;
}

/** What the #VE decision needs from the machine: the VE-information area and the EPTP index. */
export interface VeArea {
  /** The 32 bits at offset 4 of the area (VE_INFORMATION_ADDRESS + 4); undefined if not readable. */
  readBusy(): number | undefined;
  /** Write the low `size` bytes of `value` at byte `offset` of the area. */
  write(offset: number, size: 2 | 4 | 8, value: bigint): void;
  /** EPTP-index field (0x0004). */
  readonly eptpIndex: number;
}

/**
 * A convertible EPT violation outside event delivery: with CR0.PE = 1 and the area's busy word 0 it becomes a #VE —
 * the area receives exit reason 48, FFFFFFFFh at offset 4, the qualification, guest-linear and guest-physical
 * addresses and the EPTP index, and the caller raises vector 20. Otherwise (false) the violation is a VM exit.
 * The caller has already checked "EPT-violation #VE", convertibility and that no event is being delivered.
 * Bit 12 (NMI unblocking due to IRET) is not set here: it is defined for the VM exit, and the interpreter keeps the
 * NMI blocking state of a faulting IRET for the #VE path as for any fault. The guest-linear address is written as 0
 * when the qualification says it is not valid (bit 7 = 0; the SDM leaves it undefined). [verify]
 */
export function convertToVe(exit: NonRootExit, cr0: bigint, area: VeArea): boolean {
  if (exit.reason !== ExitReason.EPT_VIOLATION) return false;
  if ((cr0 & 1n) === 0n) return false;
  if (area.readBusy() !== 0) return false;
  area.write(VeInfo.EXIT_REASON, 4, BigInt(ExitReason.EPT_VIOLATION));
  area.write(VeInfo.BUSY, 4, 0xffff_ffffn);
  area.write(VeInfo.QUALIFICATION, 8, exit.qualification);
  area.write(VeInfo.GUEST_LINEAR, 8, (exit.qualification >> 7n) & 1n ? (exit.guestLinearAddress ?? 0n) : 0n);
  area.write(VeInfo.GUEST_PHYSICAL, 8, exit.guestPhysicalAddress ?? 0n);
  area.write(VeInfo.EPTP_INDEX, 2, BigInt(area.eptpIndex & 0xffff));
  return true;
}
