// GuestPageTableBuilder: writes guest paging structures (32-bit, PAE, 4-level, 5-level) into a PhysicalMemory so
// tests, fuzzers and L2 scenarios can map linear pages with given rights and sizes, or plant raw entries.
// Must not: be used by the walker, or hide failures: conflicts and exhausted table space are returned values.
// SDM Vol. 3A 4.3–4.5 (entry formats, Tables 4-4..4-20).
import type { AddressSpace, GuestLinear, PhysicalAddress } from '../address.js';
import type { PhysicalMemory } from '../memory.js';
import { maskRange, toU32 } from '../u64.js';
import { PteBit } from './permissions.js';
import type { PageSize } from './types.js';

export type GuestPagingMode = '32bit' | 'pae' | '4level' | '5level';

export interface GuestMapOptions {
  readonly pageSize?: PageSize;
  readonly writable?: boolean;
  readonly user?: boolean;
  readonly executeDisable?: boolean;
  readonly global?: boolean;
  readonly accessed?: boolean;
  readonly dirty?: boolean;
  /** Leaf bits 62:59 (IA-32e paging). */
  readonly protectionKey?: number;
  readonly pwt?: boolean;
  readonly pcd?: boolean;
  readonly pat?: boolean;
}

export type GuestBuildErrorKind = 'paging-build-misaligned' | 'paging-build-unsupported' | 'paging-build-conflict'
  | 'paging-build-table-space' | 'paging-build-memory';
export type GuestBuildResult =
  | { readonly ok: true }
  | { readonly ok: false; readonly error: { readonly kind: GuestBuildErrorKind; readonly message: string } };

const OK: GuestBuildResult = { ok: true };
type Level = 1 | 2 | 3 | 4 | 5;

export class GuestPageTableBuilder<P extends PhysicalAddress> {
  readonly mode: GuestPagingMode;
  readonly memory: PhysicalMemory<P>;
  readonly space: AddressSpace<P>;
  /** CR3 to load: the page directory (32-bit), the PDPT (PAE) or the PML4/PML5 table. */
  readonly cr3: bigint;
  private nextTable: bigint;
  private readonly tableLimit: bigint;

  constructor(args: {
    readonly mode: GuestPagingMode;
    readonly memory: PhysicalMemory<P>;
    readonly space: AddressSpace<P>;
    /** 4 KiB aligned, assumed all-zero; tables are allocated upwards from `base`, at most `pages` of them. */
    readonly tableArea: { readonly base: bigint; readonly pages: number };
  }) {
    if ((args.tableArea.base & 0xfffn) !== 0n) throw new RangeError('turtles bug: table area must be 4 KiB aligned');
    if (args.mode !== '4level' && args.mode !== '5level' && args.tableArea.base + BigInt(args.tableArea.pages) * 0x1000n > 1n << 32n) {
      throw new RangeError('turtles bug: 32-bit and PAE paging structures must lie below 4 GiB');
    }
    this.mode = args.mode;
    this.memory = args.memory;
    this.space = args.space;
    this.nextTable = args.tableArea.base;
    this.tableLimit = args.tableArea.base + BigInt(args.tableArea.pages) * 0x1000n;
    const root = this.alloc();
    if (root === undefined) throw new RangeError('turtles bug: table area has no room for the root');
    this.cr3 = root;
  }

  private get top(): Level {
    return this.mode === '32bit' ? 2 : this.mode === 'pae' ? 3 : this.mode === '4level' ? 4 : 5;
  }

  /** PAE: the PDPTE values as MOV to CR3 would load them (the four qwords at CR3). */
  pdptes(): [bigint, bigint, bigint, bigint] {
    const at = (i: number): bigint => this.memory.readU64(this.space.of(this.cr3 + BigInt(8 * i)));
    return [at(0), at(1), at(2), at(3)];
  }

  map(linear: GuestLinear, phys: P, options: GuestMapOptions = {}): GuestBuildResult {
    const size = options.pageSize ?? '4K';
    const bytes = size === '4K' ? 0x1000n : size === '2M' ? 0x20_0000n : size === '4M' ? 0x40_0000n : 0x4000_0000n;
    if (((linear as bigint) & (bytes - 1n)) !== 0n || ((phys as bigint) & (bytes - 1n)) !== 0n) {
      return fail('paging-build-misaligned', `${size} page 0x${linear.toString(16)} → 0x${phys.toString(16)} not aligned`);
    }
    const ok4M = size === '4M' && this.mode === '32bit';
    const ok2M = size === '2M' && this.mode !== '32bit';
    const ok1G = size === '1G' && (this.mode === '4level' || this.mode === '5level');
    if (size !== '4K' && !ok4M && !ok2M && !ok1G) return fail('paging-build-unsupported', `${size} pages in ${this.mode} paging`);
    let e = PteBit.P | (options.writable ?? true ? PteBit.RW : 0n) | (options.user ?? true ? PteBit.US : 0n)
      | (options.pwt ? PteBit.PWT : 0n) | (options.pcd ? PteBit.PCD : 0n) | (options.accessed ? PteBit.A : 0n)
      | (options.dirty ? PteBit.D : 0n) | (options.global ? PteBit.G : 0n);
    if (options.executeDisable) e |= PteBit.XD;
    if (options.protectionKey !== undefined) e |= BigInt(options.protectionKey & 0xf) << 59n;
    if (size === '4K') {
      e |= (phys as bigint) | (options.pat ? PteBit.PAT_4K : 0n);
    } else if (size === '4M') {
      e |= PteBit.PS | ((phys as bigint) & maskRange(31, 22)) | ((((phys as bigint) >> 32n) & 0xffn) << 13n)
        | (options.pat ? PteBit.PAT_LARGE : 0n);
    } else {
      e |= PteBit.PS | (phys as bigint) | (options.pat ? PteBit.PAT_LARGE : 0n);
    }
    const level: Level = size === '4K' ? 1 : size === '1G' ? 3 : 2;
    return this.setEntry(linear, level, e);
  }

  /** Write a raw entry at `level` for `linear`, creating referencing entries above it (P, R/W, U/S) as needed. */
  setEntry(linear: GuestLinear, level: Level, entry: bigint): GuestBuildResult {
    if (level > this.top) return fail('paging-build-unsupported', `level ${level} in ${this.mode} paging`);
    let table = this.cr3;
    for (let l = this.top; l > level; l = (l - 1) as Level) {
      const addr = this.space.of(table + this.index(linear, l) * this.entrySize);
      const cur = this.read(addr);
      if ((cur & PteBit.P) === 0n) {
        const t = this.alloc();
        if (t === undefined) return fail('paging-build-table-space', 'paging table area exhausted');
        // A PAE PDPTE has reserved bits 2:1, so only P; elsewhere referencing entries grant everything.
        const flags = this.mode === 'pae' && l === 3 ? PteBit.P : PteBit.P | PteBit.RW | PteBit.US;
        const w = this.write(addr, t | flags);
        if (!w.ok) return w;
        table = t;
      } else if ((l === 2 || l === 3) && (cur & PteBit.PS) !== 0n && !(this.mode === 'pae' && l === 3)) {
        return fail('paging-build-conflict', `0x${linear.toString(16)} is already mapped by a level-${l} large page`);
      } else {
        table = this.mode === '32bit' ? cur & maskRange(31, 12) : cur & maskRange(51, 12);
      }
    }
    return this.write(this.space.of(table + this.index(linear, level) * this.entrySize), entry);
  }

  /** Where the level-`level` entry for `linear` lives, if the referencing entries above it exist. */
  entryAddress(linear: GuestLinear, level: Level): P | undefined {
    let table = this.cr3;
    for (let l = this.top; l > level; l = (l - 1) as Level) {
      const cur = this.read(this.space.of(table + this.index(linear, l) * this.entrySize));
      if ((cur & PteBit.P) === 0n) return undefined;
      table = this.mode === '32bit' ? cur & maskRange(31, 12) : cur & maskRange(51, 12);
    }
    return this.space.of(table + this.index(linear, level) * this.entrySize);
  }

  get tablesUsed(): number {
    return Number((this.nextTable - this.cr3) / 0x1000n);
  }

  private get entrySize(): bigint {
    return this.mode === '32bit' ? 4n : 8n;
  }

  private index(linear: GuestLinear, level: Level): bigint {
    const l = linear as bigint;
    if (this.mode === '32bit') return (l >> (level === 2 ? 22n : 12n)) & 0x3ffn;
    if (this.mode === 'pae' && level === 3) return (l >> 30n) & 3n;
    return (l >> BigInt(12 + 9 * (level - 1))) & 0x1ffn;
  }

  private read(addr: P): bigint {
    return this.mode === '32bit' ? BigInt(this.memory.readU32(addr)) : this.memory.readU64(addr);
  }

  private write(addr: P, value: bigint): GuestBuildResult {
    const r = this.mode === '32bit' ? this.memory.writeU32(addr, toU32(value)) : this.memory.writeU64(addr, value);
    return r.ok ? OK : fail('paging-build-memory', r.error.message);
  }

  private alloc(): bigint | undefined {
    if (this.nextTable >= this.tableLimit) return undefined;
    const t = this.nextTable;
    this.nextTable += 0x1000n;
    return t;
  }
}

function fail(kind: GuestBuildErrorKind, message: string): GuestBuildResult {
  return { ok: false, error: { kind, message } };
}
