// Loading the four PAE PDPTE registers from the page-directory-pointer table named by CR3 (MOV to CR0/CR3/CR4 in PAE
// paging; VM entry without EPT), with the reserved-bit check that makes the instruction #GP(0).
// Must not: be called on every translation: PAE walks use the registers, not memory (SDM 4.4.1).
// SDM Vol. 3A 4.4.1 (PDPTE registers), Vol. 3C 28.2.3.2 (PDPTE loads under EPT are reads, qualification bit 7 = 0).
import type { PhysicalAddress, AddressSpace } from '../address.js';
import type { EptFault } from '../ept/types.js';
import { maskRange } from '../u64.js';
import { paePdpteReservedMask, PteBit } from './permissions.js';
import type { PagingStructureAccess } from './types.js';

export type PdpteLoadResult<P extends PhysicalAddress> =
  | { readonly ok: true; readonly pdptes: readonly [bigint, bigint, bigint, bigint] }
  /** A present PDPTE with a reserved bit: the MOV to CR faults with #GP(0) and the registers keep their values. */
  | { readonly ok: false; readonly fault: { readonly kind: 'general-protection'; readonly errorCode: 0; readonly index: number } }
  | { readonly ok: false; readonly fault: EptFault<P> };

/** Read PDPTE i at (CR3[31:5] + 8·i) for i = 0..3 through `mem` and validate them. */
export function loadPaePdptes<P extends PhysicalAddress>(
  cr3: bigint,
  maxPhysAddr: number,
  space: AddressSpace<P>,
  mem: PagingStructureAccess<P>,
): PdpteLoadResult<P> {
  const base = cr3 & maskRange(31, 5);
  const out: bigint[] = [];
  for (let i = 0; i < 4; i++) {
    const r = mem.read(space.of(base + BigInt(8 * i)), 8, { purpose: 'pdpte-load', index: i });
    if (!r.ok) return r;
    out.push(r.value);
  }
  const reserved = paePdpteReservedMask(maxPhysAddr);
  for (let i = 0; i < 4; i++) {
    const e = out[i]!;
    if ((e & PteBit.P) !== 0n && (e & reserved) !== 0n) {
      return { ok: false, fault: { kind: 'general-protection', errorCode: 0, index: i } };
    }
  }
  return { ok: true, pdptes: [out[0]!, out[1]!, out[2]!, out[3]!] };
}
