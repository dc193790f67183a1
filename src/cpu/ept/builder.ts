// EptTableBuilder: writes EPT paging structures into a PhysicalMemory so tests, fuzzers and scenarios can say
// "map this guest-physical page there with these rights" (or plant a raw entry) instead of encoding entries by hand.
// Must not: be used by the walker, or hide failures: conflicts and exhausted table space are returned values.
// SDM Vol. 3C 28.2.2 (entry formats), 24.6.11 (EPTP); reference §8.1–8.2.
import type { AddressSpace, GuestPhysical, PhysicalAddress } from '../address.js';
import type { PhysicalMemory } from '../memory.js';
import { maskRange } from '../u64.js';
import { EptBit, eptEntryIsLeaf, type EptLevel } from './entry.js';
import { pageSizeBytes, type EptPageSize } from './types.js';

export interface EptMapOptions {
  readonly read?: boolean;
  readonly write?: boolean;
  readonly execute?: boolean;
  /** Bit 10 (XU, only meaningful with mode-based execute control). */
  readonly userExecute?: boolean;
  readonly pageSize?: EptPageSize;
  /** Leaf memory type, default 6 (WB). */
  readonly memType?: number;
  readonly ipat?: boolean;
  readonly accessed?: boolean;
  readonly dirty?: boolean;
  readonly suppressVe?: boolean;
}

export type EptBuildErrorKind = 'ept-build-misaligned' | 'ept-build-conflict' | 'ept-build-table-space' | 'ept-build-memory';
export interface EptBuildError {
  readonly kind: EptBuildErrorKind;
  readonly message: string;
}
export type EptBuildResult = { readonly ok: true } | { readonly ok: false; readonly error: EptBuildError };

const OK: EptBuildResult = { ok: true };
const LEVEL_OF_SIZE: Record<EptPageSize, EptLevel> = { '4K': 1, '2M': 2, '1G': 3 };

export class EptTableBuilder<In extends GuestPhysical, Out extends PhysicalAddress> {
  readonly memory: PhysicalMemory<Out>;
  readonly inSpace: AddressSpace<In>;
  readonly outSpace: AddressSpace<Out>;
  readonly levels: 4 | 5;
  readonly root: Out;
  /** Rights given to entries that reference tables (default R, W, X and XU: the leaf decides). */
  readonly nonLeafRights: bigint;
  private nextTable: bigint;
  private readonly tableLimit: bigint;

  /**
   * Tables are allocated upwards from `tableArea.base` (4 KiB aligned, assumed all-zero), at most `tableArea.pages`
   * of them; the first one is the root.
   */
  constructor(args: {
    readonly memory: PhysicalMemory<Out>;
    readonly inSpace: AddressSpace<In>;
    readonly outSpace: AddressSpace<Out>;
    readonly tableArea: { readonly base: bigint; readonly pages: number };
    readonly levels?: 4 | 5;
    readonly nonLeafRights?: bigint;
  }) {
    if ((args.tableArea.base & 0xfffn) !== 0n) throw new RangeError('turtles bug: EPT table area must be 4 KiB aligned');
    this.memory = args.memory;
    this.inSpace = args.inSpace;
    this.outSpace = args.outSpace;
    this.levels = args.levels ?? 4;
    this.nonLeafRights = args.nonLeafRights ?? (EptBit.R | EptBit.W | EptBit.X | EptBit.XU);
    this.nextTable = args.tableArea.base;
    this.tableLimit = args.tableArea.base + BigInt(args.tableArea.pages) * 0x1000n;
    const root = this.allocTable();
    if (root === undefined) throw new RangeError('turtles bug: EPT table area has no room for the root');
    this.root = root;
  }

  /** An EPTP naming this root: memory type (default WB), walk length from `levels`, optional A/D enable. */
  eptp(options: { readonly memType?: 0 | 6; readonly accessedDirty?: boolean } = {}): bigint {
    const memType = BigInt(options.memType ?? 6);
    const pwl = BigInt(this.levels - 1) << 3n;
    const ad = options.accessedDirty ? 1n << 6n : 0n;
    return (this.root as bigint) | memType | pwl | ad;
  }

  /** Map the page containing `gpa` (aligned to the page size) to `out`. */
  map(gpa: In, out: Out, options: EptMapOptions = {}): EptBuildResult {
    const pageSize = options.pageSize ?? '4K';
    const size = pageSizeBytes(pageSize);
    if (((gpa as bigint) & (size - 1n)) !== 0n || ((out as bigint) & (size - 1n)) !== 0n) {
      return fail('ept-build-misaligned', `${pageSize} mapping of 0x${gpa.toString(16)} → 0x${out.toString(16)} is not aligned`);
    }
    const level = LEVEL_OF_SIZE[pageSize];
    let entry = (out as bigint) | (options.read ?? true ? EptBit.R : 0n) | (options.write ?? true ? EptBit.W : 0n)
      | (options.execute ?? true ? EptBit.X : 0n) | (options.userExecute ?? true ? EptBit.XU : 0n)
      | (BigInt(options.memType ?? 6) << EptBit.MEMTYPE_SHIFT) | (options.ipat ? EptBit.IPAT : 0n)
      | (options.accessed ? EptBit.A : 0n) | (options.dirty ? EptBit.D : 0n)
      | (options.suppressVe ? EptBit.SUPPRESS_VE : 0n);
    if (level > 1) entry |= EptBit.PS;
    return this.setEntry(gpa, level, entry);
  }

  /**
   * Write a raw entry at `level` for `gpa`, creating referencing tables above it as needed. Fuzzers use this to plant
   * misconfigured or not-present entries. A leaf already present above `level` is a conflict.
   */
  setEntry(gpa: In, level: EptLevel, entry: bigint): EptBuildResult {
    if (level > this.levels) return fail('ept-build-conflict', `level ${level} does not exist in a ${this.levels}-level EPT`);
    let table = this.root as bigint;
    for (let l = this.levels as EptLevel; l > level; l = (l - 1) as EptLevel) {
      const addr = this.outSpace.of(table + indexAt(gpa, l) * 8n);
      const cur = this.memory.readU64(addr);
      if ((cur & 7n) === 0n && (cur & EptBit.XU) === 0n) {
        const t = this.allocTable();
        if (t === undefined) return fail('ept-build-table-space', 'EPT table area exhausted');
        const w = this.memory.writeU64(addr, (t as bigint) | this.nonLeafRights);
        if (!w.ok) return fail('ept-build-memory', w.error.message);
        table = t as bigint;
      } else if (eptEntryIsLeaf(cur, l)) {
        return fail('ept-build-conflict', `0x${gpa.toString(16)} is already mapped by a level-${l} leaf`);
      } else {
        table = cur & maskRange(51, 12);
      }
    }
    const w = this.memory.writeU64(this.outSpace.of(table + indexAt(gpa, level) * 8n), entry);
    return w.ok ? OK : fail('ept-build-memory', w.error.message);
  }

  /** Where the level-`level` entry for `gpa` lives, if the tables above it exist (referencing, not leaf). */
  entryAddress(gpa: In, level: EptLevel): Out | undefined {
    let table = this.root as bigint;
    for (let l = this.levels as EptLevel; l > level; l = (l - 1) as EptLevel) {
      const cur = this.memory.readU64(this.outSpace.of(table + indexAt(gpa, l) * 8n));
      if ((cur & 7n) === 0n && (cur & EptBit.XU) === 0n) return undefined;
      if (eptEntryIsLeaf(cur, l)) return undefined;
      table = cur & maskRange(51, 12);
    }
    return this.outSpace.of(table + indexAt(gpa, level) * 8n);
  }

  /** Clear the entry mapping `gpa` at the level of `pageSize` (no-op when absent). */
  unmap(gpa: In, pageSize: EptPageSize = '4K'): EptBuildResult {
    const addr = this.entryAddress(gpa, LEVEL_OF_SIZE[pageSize]);
    if (addr === undefined) return OK;
    const w = this.memory.writeU64(addr, 0n);
    return w.ok ? OK : fail('ept-build-memory', w.error.message);
  }

  /** Number of 4 KiB tables allocated so far (root included). */
  get tablesUsed(): number {
    return Number((this.nextTable - (this.root as bigint)) / 0x1000n);
  }

  private allocTable(): Out | undefined {
    if (this.nextTable >= this.tableLimit) return undefined;
    const t = this.outSpace.of(this.nextTable);
    this.nextTable += 0x1000n;
    return t;
  }
}

function indexAt(gpa: bigint, level: EptLevel): bigint {
  return (gpa >> BigInt(12 + 9 * (level - 1))) & 0x1ffn;
}

function fail(kind: EptBuildErrorKind, message: string): EptBuildResult {
  return { ok: false, error: { kind, message } };
}
