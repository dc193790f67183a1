// L1-physical memory as a VmxPhysicalAccess for L0's software paths (vmcs12 regions, MSR lists, bitmaps, the VMX
// abort dword): each access translated through EPT01 into host memory; L1 addresses EPT01 does not map are nonexistent
// memory (reads all ones, writes dropped), as they would be for a CPU. Also the inverse view O5 digests.
// Must not: bypass EPT01's rights or cache translations. Reference: nested-vmx.md §7.5, §9.1 O5; SDM 24.2.
import { L1_GPA, type Hpa, type L1Gpa } from '../../cpu/address.js';
import type { Ept } from '../../cpu/ept/types.js';
import type { PhysicalMemory, WriteObserver } from '../../cpu/memory.js';
import type { VmxPhysicalAccess } from '../../cpu/vmx/physical.js';
import type { Ept01Policy } from '../ept02/ept01.js';
import { l1ToHost } from '../ept02/l1-memory.js';

export class L1Port implements VmxPhysicalAccess {
  private readonly limit: bigint;

  constructor(
    private readonly host: PhysicalMemory<Hpa>,
    private readonly ept01: () => Ept<L1Gpa, Hpa>,
    maxPhysAddr: number,
  ) {
    this.limit = 1n << BigInt(maxPhysAddr);
  }

  /** The host address of one L1 byte for an access of this kind, if L1 has memory there. */
  hostOf(addr: bigint, write: boolean): Hpa | undefined {
    if (addr < 0n || addr >= this.limit) return undefined;
    return l1ToHost(this.ept01(), L1_GPA.of(addr), write);
  }

  read(addr: bigint, size: 1 | 2 | 4 | 8): bigint | undefined {
    if ((addr & 0xfffn) + BigInt(size) <= 0x1000n) {
      const h = this.hostOf(addr, false);
      if (h === undefined) return undefined;
      switch (size) {
        case 1: return BigInt(this.host.readU8(h));
        case 2: return BigInt(this.host.readU16(h));
        case 4: return BigInt(this.host.readU32(h));
        case 8: return this.host.readU64(h);
      }
    }
    let v = 0n;
    for (let i = size - 1; i >= 0; i--) {
      const h = this.hostOf(addr + BigInt(i), false);
      if (h === undefined) return undefined;
      v = (v << 8n) | BigInt(this.host.readU8(h));
    }
    return v;
  }

  write(addr: bigint, size: 1 | 2 | 4 | 8, value: bigint): boolean {
    const hs: Hpa[] = [];
    for (let i = 0; i < size; i++) {
      const h = this.hostOf(addr + BigInt(i), true);
      if (h === undefined) return false;
      hs.push(h);
    }
    const bytes = new Uint8Array(size);
    for (let i = 0; i < size; i++) bytes[i] = Number((BigInt.asUintN(size * 8, value) >> BigInt(8 * i)) & 0xffn);
    if (Number((hs[size - 1]! as bigint) - (hs[0]! as bigint)) === size - 1) {
      const r = this.host.write(hs[0]!, bytes);
      if (!r.ok) throw new Error(`turtles bug: host memory exceeded its page budget: ${r.error.message}`);
      return true;
    }
    hs.forEach((h, i) => {
      const r = this.host.writeU8(h, bytes[i]!);
      if (!r.ok) throw new Error(`turtles bug: host memory exceeded its page budget: ${r.error.message}`);
    });
    return true;
  }

  readByte(addr: bigint): number | undefined {
    const v = this.read(addr, 1);
    return v === undefined ? undefined : Number(v);
  }

  readBytes(addr: bigint, length: number): Uint8Array | null {
    const out = new Uint8Array(length);
    let done = 0;
    while (done < length) {
      const a = addr + BigInt(done);
      const n = Math.min(length - done, 4096 - Number(a & 0xfffn));
      const h = this.hostOf(a, false);
      if (h === undefined) return null;
      out.set(this.host.read(h, n), done);
      done += n;
    }
    return out;
  }

  /** Bulk write; false (nothing written) when some page is not writable L1 memory. */
  writeBytes(addr: bigint, bytes: Uint8Array): boolean {
    const parts: [Hpa, number, number][] = [];
    let done = 0;
    while (done < bytes.length) {
      const a = addr + BigInt(done);
      const n = Math.min(bytes.length - done, 4096 - Number(a & 0xfffn));
      const h = this.hostOf(a, true);
      if (h === undefined) return false;
      parts.push([h, done, n]);
      done += n;
    }
    for (const [h, off, n] of parts) {
      const r = this.host.write(h, bytes.subarray(off, off + n));
      if (!r.ok) throw new Error(`turtles bug: host memory exceeded its page budget: ${r.error.message}`);
    }
    return true;
  }
}

/**
 * L1-physical memory seen back from host memory through the EPT01 policy's regions (the inverse of EPT01), shaped for
 * the O5 digest (src/cpu/l1/observe.ts L1MemoryDigest): which L1 pages exist, their bytes, and writes to them.
 */
export class L1MemoryInverse {
  constructor(
    private readonly host: PhysicalMemory<Hpa>,
    private readonly policy: Ept01Policy,
    private readonly port: L1Port,
  ) {}

  private toL1(hpa: bigint): bigint | undefined {
    for (const r of this.policy.regions) {
      if (hpa >= r.hostBase && hpa < r.hostBase + r.size) return r.l1Base + (hpa - r.hostBase);
    }
    return undefined;
  }

  /** L1 pages that hold data (host pages inside an L1 RAM region), ascending. */
  pageNumbers(): bigint[] {
    const out: bigint[] = [];
    for (const hp of this.host.pageNumbers()) {
      const l1 = this.toL1(hp << 12n);
      if (l1 !== undefined) out.push(l1 >> 12n);
    }
    return out.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  }

  read(address: L1Gpa, length: number): Uint8Array {
    return this.port.readBytes(address as bigint, length) ?? new Uint8Array(length);
  }

  onWrite(observer: WriteObserver<L1Gpa>): () => void {
    return this.host.onWrite((address, length) => {
      const first = this.toL1(address as bigint);
      if (first !== undefined) observer(L1_GPA.of(first), length);
    });
  }
}

