// Posted-interrupt descriptor processing: clear the outstanding-notification bit, move the posted-interrupt requests
// (PIR, bits 255:0) into VIRR and clear them. Must not: update RVI or evaluate interrupts (virtual-apic.ts does).
// SDM Vol. 3C 29.6 (posted-interrupt processing, steps 3, 5 and 6), 24.6.8 (descriptor layout: PIR 255:0, ON 256).

/** Dword access to the physical memory that holds the 64-byte descriptor. */
export interface PostedDescriptorMemory {
  readPhys32(addr: bigint): number;
  writePhys32(addr: bigint, value: number): void;
}

/** Byte offset of the dword holding ON (bit 256) and SN (bit 257). */
export const POSTED_CONTROL_DWORD = 32;

/**
 * Process the descriptor at `desc`: ON := 0, then for each PIR dword i with bits set, `orIntoVirr(i, bits)` and
 * clear it. Returns the highest vector that was set in PIR, or undefined when PIR was empty (RVI then stays).
 */
export function processPostedInterrupts(mem: PostedDescriptorMemory, desc: bigint, orIntoVirr: (dword: number, bits: number) => void): number | undefined {
  const ctl = desc + BigInt(POSTED_CONTROL_DWORD);
  mem.writePhys32(ctl, (mem.readPhys32(ctl) & ~1) >>> 0);
  let highest: number | undefined;
  for (let i = 0; i < 8; i++) {
    const a = desc + BigInt(i * 4);
    const bits = mem.readPhys32(a) >>> 0;
    if (bits === 0) continue;
    orIntoVirr(i, bits);
    mem.writePhys32(a, 0);
    highest = i * 32 + 31 - Math.clz32(bits);
  }
  return highest;
}
