// The physical-memory port the VMX processor uses for the VMXON region, VMCS regions, the VMCS link pointer,
// MSR lists, bitmaps and (already translated) instruction memory operands.
// Must not: translate addresses or depend on src/cpu/memory.ts; any sparse memory can implement the interface.
// SDM Vol. 3C 24.2 (VMCS region), 24.7.2/24.8.2 (MSR areas): unbacked physical memory reads as all ones.

export interface VmxPhysicalAccess {
  /** Little-endian read of `size` bytes at a host-physical address; undefined when nothing backs it. */
  read(addr: bigint, size: 1 | 2 | 4 | 8): bigint | undefined;
  /** Little-endian write; false when nothing backs the address (the write is dropped). */
  write(addr: bigint, size: 1 | 2 | 4 | 8, value: bigint): boolean;
}

const ALL_ONES: Record<1 | 2 | 4 | 8, bigint> = { 1: 0xffn, 2: 0xffffn, 4: 0xffff_ffffn, 8: 0xffff_ffff_ffff_ffffn };

/**
 * Read with the platform rule for unbacked addresses: reads return all ones (as PCI master-abort reads do),
 * which is also what makes a missing VMCS region fail its revision check deterministically.
 */
export function readPhys(mem: VmxPhysicalAccess, addr: bigint, size: 1 | 2 | 4 | 8): bigint {
  return mem.read(BigInt.asUintN(64, addr), size) ?? ALL_ONES[size];
}

/** 32-bit read as a number (revision identifiers, indices, launch state). */
export function readPhys32(mem: VmxPhysicalAccess, addr: bigint): number {
  return Number(readPhys(mem, addr, 4)) >>> 0;
}

/** Write, ignoring writes to unbacked memory (they have no architectural effect). */
export function writePhys(mem: VmxPhysicalAccess, addr: bigint, size: 1 | 2 | 4 | 8, value: bigint): void {
  mem.write(BigInt.asUintN(64, addr), size, BigInt.asUintN(size * 8, value));
}
