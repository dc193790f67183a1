// L0's EPT01 (L1Gpa → Hpa) as real tables in host memory from a simple policy (RAM regions at a host offset with the
// largest pages alignment allows, MMIO holes unmapped), and the host page pool for L0's own pages (EPT02 tables).
// Must not: change EPT01 behind EPT02's back (callers zap EPT02 with Ept02Manager.zapHostRange after a change).
// Reference: nested-vmx.md §8.6 (T01), DESIGN.md §2; SDM 28.2.2.
import { HPA, L1_GPA, type Hpa, type L1Gpa } from '../../cpu/address.js';
import { EptTableBuilder } from '../../cpu/ept/builder.js';
import { ept01 as ept01Handle, eptConfig } from '../../cpu/ept/eptp.js';
import type { Ept, EptCapabilities, EptPageSize } from '../../cpu/ept/types.js';
import { PAGE_SIZE, type PhysicalMemory } from '../../cpu/memory.js';
import type { HostPageAllocator } from './types.js';

export interface Ept01Region {
  /** First L1-physical byte (4 KiB aligned). */
  readonly l1Base: bigint;
  readonly size: bigint;
  /** Host-physical address `l1Base` maps to (4 KiB aligned). */
  readonly hostBase: bigint;
  /** Rights L0 grants (default RWX). */
  readonly read?: boolean;
  readonly write?: boolean;
  readonly execute?: boolean;
}

export interface Ept01Policy {
  readonly regions: readonly Ept01Region[];
  /** L1-physical ranges left unmapped inside the regions (device MMIO L0 emulates). */
  readonly mmioHoles?: readonly { readonly base: bigint; readonly size: bigint }[];
  /** Largest page EPT01 may use (default: the largest the hardware supports). */
  readonly maxPageSize?: EptPageSize;
}

/** L1 RAM [0, 256 GiB) at host [256 GiB, 512 GiB): identity plus offset, leaving host memory below for L0 itself. */
export const DEFAULT_L1_RAM_HOST_BASE = 1n << 38n;

export function defaultEpt01Policy(overrides: Partial<Ept01Policy> = {}): Ept01Policy {
  return { regions: [{ l1Base: 0n, size: 1n << 38n, hostBase: DEFAULT_L1_RAM_HOST_BASE }], ...overrides };
}

const SIZES: readonly [EptPageSize, bigint][] = [['1G', 1n << 30n], ['2M', 1n << 21n], ['4K', 1n << 12n]];

export type Ept01BuildResult =
  | { readonly ok: true; readonly eptp: bigint; readonly ept: Ept<L1Gpa, Hpa>; readonly tablePages: number }
  | { readonly ok: false; readonly message: string };

/** Write EPT01 for `policy` into `host`, with its tables in [tableArea.base, + pages·4 KiB). */
export function buildEpt01(args: {
  readonly host: PhysicalMemory<Hpa>;
  readonly caps: EptCapabilities;
  readonly policy: Ept01Policy;
  readonly tableArea: { readonly base: bigint; readonly pages: number };
}): Ept01BuildResult {
  const { host, caps, policy } = args;
  const b = new EptTableBuilder<L1Gpa, Hpa>({ memory: host, inSpace: L1_GPA, outSpace: HPA, tableArea: args.tableArea, levels: caps.walkLength4 ? 4 : 5 });
  const allowed = SIZES.filter(([s]) => (s === '1G' ? caps.pages1G : s === '2M' ? caps.pages2M : true))
    .filter(([s]) => policy.maxPageSize === undefined || SIZES.findIndex(([x]) => x === s) >= SIZES.findIndex(([x]) => x === policy.maxPageSize));
  const holes = policy.mmioHoles ?? [];
  const hitsHole = (a: bigint, n: bigint) => holes.some((h) => a < h.base + h.size && h.base < a + n);
  const coveredByHole = (a: bigint, n: bigint) => holes.some((h) => h.base <= a && a + n <= h.base + h.size);
  for (const r of policy.regions) {
    if ((r.l1Base | r.size | r.hostBase) & 0xfffn) return { ok: false, message: `EPT01 region 0x${r.l1Base.toString(16)} is not 4 KiB aligned` };
    let a = r.l1Base;
    const end = r.l1Base + r.size;
    while (a < end) {
      const h = r.hostBase + (a - r.l1Base);
      const pick = allowed.find(([, n]) => (a & (n - 1n)) === 0n && (h & (n - 1n)) === 0n && a + n <= end && (!hitsHole(a, n) || coveredByHole(a, n) || n === 0x1000n));
      if (!pick) return { ok: false, message: 'EPT01: no page size fits' };
      const [size, n] = pick;
      if (!coveredByHole(a, n)) {
        const m = b.map(L1_GPA.of(a), HPA.of(h), { pageSize: size, read: r.read ?? true, write: r.write ?? true, execute: r.execute ?? true });
        if (!m.ok) return { ok: false, message: `EPT01: ${m.error.message}` };
      }
      a += n;
    }
  }
  const eptp = b.eptp({ memType: 6 });
  const h = ept01Handle({ eptp, config: eptConfig(caps), tables: host });
  if (!h.ok) return { ok: false, message: `EPT01 EPTP rejected: ${h.error.message}` };
  return { ok: true, eptp, ept: h.ept, tablePages: b.tablesUsed };
}

/** A LIFO pool of 4 KiB host pages in [base, base + pages·4 KiB); freed pages are zeroed and reused first. */
export class HostPagePool implements HostPageAllocator {
  private next: bigint;
  private readonly base: bigint;
  private readonly limit: bigint;
  private readonly freed: bigint[] = [];
  private readonly zero = new Uint8Array(PAGE_SIZE);

  constructor(private readonly host: PhysicalMemory<Hpa>, area: { readonly base: bigint; readonly pages: number }) {
    this.next = area.base;
    this.base = area.base;
    this.limit = area.base + BigInt(area.pages) * 0x1000n;
  }

  alloc(): Hpa | undefined {
    const f = this.freed.pop();
    if (f !== undefined) return HPA.of(f);
    if (this.next >= this.limit) return undefined;
    const p = this.next;
    this.next += 0x1000n;
    return HPA.of(p);
  }

  free(page: Hpa): void {
    const r = this.host.write(page, this.zero);
    if (!r.ok) throw new Error(`turtles bug: zeroing a freed L0 page failed: ${r.error.message}`);
    this.freed.push(page as bigint);
  }

  /** Pages handed out and not freed. */
  get inUse(): number {
    return Number((this.next - this.base) / 0x1000n) - this.freed.length;
  }
}
