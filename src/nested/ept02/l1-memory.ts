// L1-physical memory as L0 sees it, every access translated through EPT01 into host memory: L0 walks EPT12 in it (with
// the A/D updates a CPU makes) and reads vmcs12's pages; a read-only variant serves side-effect-free inspection walks.
// Must not: cache translations or let a write to unmapped L1 memory allocate.
// Reference: nested-vmx.md §8.6 (L0 walks EPT12, in L1 memory, through EPT01); SDM 28.2.2.
import type { GuestPhysical, Hpa, L1Gpa, PhysicalAddress } from '../../cpu/address.js';
import { walkEpt } from '../../cpu/ept/walker.js';
import type { Ept } from '../../cpu/ept/types.js';
import type { MemoryWriteResult, PhysicalMemory, QwordMemory } from '../../cpu/memory.js';

const OK: { readonly ok: true } = { ok: true };

/** Translate one L1-physical address through EPT01 (no A/D side effects unless `sideEffects`). */
export function l1ToHost(ept01: Ept<L1Gpa, Hpa>, gpa: L1Gpa, write: boolean, sideEffects = false): Hpa | undefined {
  const e = sideEffects ? ept01 : readOnlyEpt(ept01);
  const t = walkEpt(e, gpa, { type: write ? 'write' : 'read', cause: { kind: 'no-linear' } });
  return t.ok ? t.out : undefined;
}

/** The same EPT with its tables behind a view that ignores writes (A/D updates): an inspection walk. */
export function readOnlyEpt<In extends GuestPhysical, Out extends PhysicalAddress>(ept: Ept<In, Out>): Ept<In, Out> {
  return { ...ept, tables: readOnlyQwords(ept.tables) };
}

/** A qword view whose writes report success and change nothing. */
export function readOnlyQwords<A extends PhysicalAddress>(mem: QwordMemory<A>): QwordMemory<A> {
  return { readU64: (a) => mem.readU64(a), writeU64: () => OK };
}

/**
 * L1 memory through EPT01. Reads of L1 addresses EPT01 does not map read as all ones (the platform rule for
 * nonexistent memory, which also makes an EPT12 entry there misconfigured, never silently "present"); writes there are
 * dropped. `readOnly` turns every write into a no-op (inspection walks).
 */
export class L1MemoryView implements QwordMemory<L1Gpa> {
  constructor(
    private readonly host: PhysicalMemory<Hpa>,
    private readonly ept01: () => Ept<L1Gpa, Hpa>,
    private readonly readOnly = false,
  ) {}

  /** The host address backing `gpa` for an access of this kind, if EPT01 allows it. */
  translate(gpa: L1Gpa, write: boolean): Hpa | undefined {
    return l1ToHost(this.ept01(), gpa, write);
  }

  readU64(address: L1Gpa): bigint {
    const h = this.translate(address, false);
    return h === undefined ? 0xffff_ffff_ffff_ffffn : this.host.readU64(h);
  }

  writeU64(address: L1Gpa, value: bigint): MemoryWriteResult<L1Gpa> {
    if (this.readOnly) return OK;
    const h = this.translate(address, true);
    if (h === undefined) return OK;
    const r = this.host.writeU64(h, value);
    return r.ok ? OK : { ok: false, error: { ...r.error, address } };
  }

  /** Bytes of L1 memory, or null when any of them is not mapped by EPT01 (callers treat that as unreadable). */
  readBytes(address: L1Gpa, length: number): Uint8Array | null {
    const out = new Uint8Array(length);
    let done = 0;
    while (done < length) {
      const a = ((address as bigint) + BigInt(done)) as L1Gpa;
      const n = Math.min(length - done, 4096 - Number((a as bigint) & 0xfffn));
      const h = this.translate(a, false);
      if (h === undefined) return null;
      out.set(this.host.read(h, n), done);
      done += n;
    }
    return out;
  }

  /** Write bytes to L1 memory; false when a page is not writable through EPT01 (nothing is written then). */
  writeBytes(address: L1Gpa, bytes: Uint8Array): boolean {
    if (this.readOnly) return true;
    const parts: [Hpa, number, number][] = [];
    let done = 0;
    while (done < bytes.length) {
      const a = ((address as bigint) + BigInt(done)) as L1Gpa;
      const n = Math.min(bytes.length - done, 4096 - Number((a as bigint) & 0xfffn));
      const h = this.translate(a, true);
      if (h === undefined) return false;
      parts.push([h, done, n]);
      done += n;
    }
    for (const [h, off, n] of parts) {
      const r = this.host.write(h, bytes.subarray(off, off + n));
      if (!r.ok) throw new Error(`turtles bug: L1 memory write exceeded the host memory budget: ${r.error.message}`);
    }
    return true;
  }
}
