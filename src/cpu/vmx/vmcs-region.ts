// In-memory format of a VMCS region on this model: the architectural header plus an implementation-specific image of
// the launch state and every supported field. VMCLEAR/VMXOFF flush to it; VMPTRLD of an inactive VMCS reads it.
// Must not: be relied on by guest software (only offsets 0 and 4 are architectural) or hold cached state itself.
// SDM Vol. 3C 24.2 (VMCS region format), 24.11.1 (software must use VMREAD/VMWRITE, data may be cached).
import type { CpuModel } from '../cpu-model.js';
import { type VmcsFieldDef } from '../generated/vmcs-fields.js';
import { type Vmcs, slotFields, slotOf } from '../vmcs.js';
import { type VmxPhysicalAccess, readPhys, writePhys } from './physical.js';

/*
 * Layout (byte offsets from the region base):
 *   0   u32  revision identifier (bits 30:0) and shadow-VMCS indicator (bit 31)  — architectural, written by software
 *   4   u32  VMX-abort indicator                                                   — architectural, written on VMX abort
 *   8   u64 × n64   every supported 64-bit and natural-width field, ordered by encoding
 *   …   u32 × n32   every supported 32-bit field, ordered by encoding
 *   …   u32         launch state: 0 = clear, 1 = launched (any other value reads as launched)
 *   …   u16 × n16   every supported 16-bit field, ordered by encoding
 * Fields are grouped by width so every access is naturally aligned, and only fields the model supports are stored,
 * which keeps the image within the region size IA32_VMX_BASIC[44:32] reports (1 KiB on intel-sapphire-rapids).
 * A region never written by VMCLEAR decodes as whatever its bytes say: a zeroed page is a clear VMCS with all
 * fields 0 (the SDM leaves the contents of an un-VMCLEARed region undefined; this is the deterministic choice).
 */

export const REGION_REVISION_OFFSET = 0n;
export const REGION_ABORT_OFFSET = 4n;

interface Slot {
  readonly encoding: number;
  readonly offset: bigint;
  readonly size: 2 | 4 | 8;
}

export class VmcsRegionLayout {
  private readonly slots: readonly Slot[];
  readonly launchStateOffset: bigint;
  /** Bytes the layout occupies (≤ the model's VMCS region size). */
  readonly size: number;

  constructor(cpu: CpuModel) {
    // Listed, not only supported: a region image that also holds a VMCS store's feature-less fields (N24).
    const supported = slotFields().filter((f) => cpu.fieldListed(f.encoding));
    const byWidth = (pred: (f: VmcsFieldDef) => boolean) => supported.filter(pred).sort((a, b) => a.encoding - b.encoding);
    const wide = byWidth((f) => f.width === '64' || f.width === 'natural');
    const w32 = byWidth((f) => f.width === '32');
    const w16 = byWidth((f) => f.width === '16');
    const slots: Slot[] = [];
    let off = 8;
    for (const f of wide) { slots.push({ encoding: f.encoding, offset: BigInt(off), size: 8 }); off += 8; }
    for (const f of w32) { slots.push({ encoding: f.encoding, offset: BigInt(off), size: 4 }); off += 4; }
    this.launchStateOffset = BigInt(off);
    off += 4;
    for (const f of w16) { slots.push({ encoding: f.encoding, offset: BigInt(off), size: 2 }); off += 2; }
    this.slots = slots;
    this.size = off;
    const regionSize = cpu.vmcsRegionSize;
    if (regionSize !== 0 && off > regionSize) {
      throw new Error(`turtles bug: CPU model ${cpu.id}: VMCS image needs ${off} bytes, IA32_VMX_BASIC allows ${regionSize}`);
    }
  }

  /** Read the launch state and all stored fields of the region at `base` into `into` (fields not stored become 0). */
  load(mem: VmxPhysicalAccess, base: bigint, into: Vmcs): { launched: boolean } {
    into.words.fill(0);
    for (const s of this.slots) {
      const slot = slotOf(s.encoding);
      const v = readPhys(mem, base + s.offset, s.size);
      into.words[2 * slot] = Number(v & 0xffff_ffffn);
      into.words[2 * slot + 1] = Number(v >> 32n);
    }
    return { launched: readPhys(mem, base + this.launchStateOffset, 4) !== 0n };
  }

  /** Write the launch state and all stored fields to the region at `base` (the header dwords are not touched). */
  store(mem: VmxPhysicalAccess, base: bigint, vmcs: Vmcs, launched: boolean): void {
    for (const s of this.slots) {
      const slot = slotOf(s.encoding);
      const v = (BigInt(vmcs.words[2 * slot + 1]!) << 32n) | BigInt(vmcs.words[2 * slot]!);
      writePhys(mem, base + s.offset, s.size, v);
    }
    this.storeLaunchState(mem, base, launched);
  }

  storeLaunchState(mem: VmxPhysicalAccess, base: bigint, launched: boolean): void {
    writePhys(mem, base + this.launchStateOffset, 4, launched ? 1n : 0n);
  }

  readLaunchState(mem: VmxPhysicalAccess, base: bigint): boolean {
    return readPhys(mem, base + this.launchStateOffset, 4) !== 0n;
  }
}

const layouts = new WeakMap<CpuModel, VmcsRegionLayout>();

/** The (cached) region layout for a CPU model. */
export function regionLayout(cpu: CpuModel): VmcsRegionLayout {
  let l = layouts.get(cpu);
  if (!l) {
    l = new VmcsRegionLayout(cpu);
    layouts.set(cpu, l);
  }
  return l;
}
