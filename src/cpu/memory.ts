// Sparse, page-granular physical memory of one address space (PhysicalMemory<L1Gpa>, <Hpa>, …): little-endian
// byte/word/dword/qword and bulk access, snapshots, and write observers (L0 uses them to notice writes to EPT12 pages).
// Must not: translate addresses, throw on guest-reachable conditions (running out of the page budget is a value),
// or depend on hash order (pages are enumerated sorted). SDM Vol. 1 1.3.1 (little-endian byte order).
import type { AddressSpaceName, PhysicalAddress } from './address.js';
import { toSafeNumber, toU32 } from './u64.js';

export const PAGE_SIZE = 4096;
const PAGE_SHIFT = 12n;
const PAGE_MASK = 0xfffn;
const TWO_POW_64 = 1n << 64n;
const U32 = 0xffff_ffffn;

/** Default budget: 65,536 pages = 256 MiB of touched memory, far above what traces and fuzz cases use. */
export const DEFAULT_MAX_PAGES = 65_536;

export interface MemoryPageLimitError<A extends PhysicalAddress> {
  readonly kind: 'memory-page-limit';
  /** First byte of the write that needed a page beyond the budget. */
  readonly address: A;
  readonly maxPages: number;
  readonly message: string;
}
export type MemoryError<A extends PhysicalAddress> = MemoryPageLimitError<A>;
export type MemoryWriteResult<A extends PhysicalAddress> = { readonly ok: true } | { readonly ok: false; readonly error: MemoryError<A> };

const OK: { readonly ok: true } = { ok: true };

/** Called after every successful write with its first address and length (bytes). */
export type WriteObserver<A extends PhysicalAddress> = (address: A, length: number) => void;

export interface MemoryOptions {
  /** Maximum number of 4 KiB pages that may be allocated; a write needing more returns an error value. */
  readonly maxPages?: number;
  /** Space name for messages only. */
  readonly space?: AddressSpaceName;
}

/** An immutable copy of memory contents: allocated pages sorted by page number. */
export interface MemorySnapshot {
  readonly pages: ReadonlyArray<readonly [pageNumber: bigint, bytes: Uint8Array]>;
}

/**
 * What the EPT walker needs from a memory holding paging structures. Walkers only write (A/D flags) entries they just
 * read as non-zero, so a write there must succeed; a failure is reported by the walker as a turtles bug. Adapters
 * (e.g. L0 reading EPT12 through EPT01) must keep that guarantee.
 */
export interface QwordMemory<A extends PhysicalAddress> {
  readU64(address: A): bigint;
  writeU64(address: A, value: bigint): MemoryWriteResult<A>;
}

export class PhysicalMemory<A extends PhysicalAddress> implements QwordMemory<A> {
  readonly maxPages: number;
  readonly space: AddressSpaceName | undefined;
  // Keyed by page number (address >> 12). A page number is < 2^52 and so exact as a JS number.
  private readonly pages = new Map<number, Uint8Array>();
  private readonly observers: WriteObserver<A>[] = [];

  constructor(options: MemoryOptions = {}) {
    this.maxPages = options.maxPages ?? DEFAULT_MAX_PAGES;
    this.space = options.space;
    if (!Number.isInteger(this.maxPages) || this.maxPages < 0) {
      throw new RangeError(`turtles bug: maxPages must be a non-negative integer, got ${this.maxPages}`);
    }
  }

  /** Number of pages currently allocated (pages only ever written with zeros are never allocated). */
  get allocatedPages(): number {
    return this.pages.size;
  }

  /** Allocated page numbers, ascending. */
  pageNumbers(): bigint[] {
    return [...this.pages.keys()].sort((a, b) => a - b).map((n) => BigInt(n));
  }

  isAllocated(address: A): boolean {
    return this.pages.has(pageIndex(address));
  }

  readU8(address: A): number {
    checkRange(address, 1);
    const page = this.pages.get(pageIndex(address));
    return page === undefined ? 0 : page[pageOffset(address)]!;
  }

  readU16(address: A): number {
    return this.readSmall(address, 2);
  }

  readU32(address: A): number {
    return this.readSmall(address, 4);
  }

  readU64(address: A): bigint {
    return this.readLittle(address, 8);
  }

  writeU8(address: A, value: number): MemoryWriteResult<A> {
    checkValue(value, 8);
    return this.writeWords(address, 1, value, 0);
  }

  writeU16(address: A, value: number): MemoryWriteResult<A> {
    checkValue(value, 16);
    return this.writeWords(address, 2, value, 0);
  }

  writeU32(address: A, value: number): MemoryWriteResult<A> {
    checkValue(value, 32);
    return this.writeWords(address, 4, value, 0);
  }

  writeU64(address: A, value: bigint): MemoryWriteResult<A> {
    if (value < 0n || value >= TWO_POW_64) throw new RangeError(`turtles bug: qword value ${value} is not a u64`);
    // Split into exact 32-bit halves: the value itself never passes through a JS number.
    return this.writeWords(address, 8, Number(value & U32), Number(value >> 32n));
  }

  /** `length` bytes starting at `address` (a copy; never-written bytes read as 0). */
  read(address: A, length: number): Uint8Array {
    checkRange(address, length);
    const off0 = Number((address as bigint) & PAGE_MASK);
    if (off0 + length <= PAGE_SIZE) {
      // Within one page (the common case: instruction fetches, entries): one copy, no per-page bigint arithmetic.
      const page = this.pages.get(Number((address as bigint) >> PAGE_SHIFT));
      return page === undefined ? new Uint8Array(length) : page.slice(off0, off0 + length);
    }
    const out = new Uint8Array(length);
    let done = 0;
    let cur = address as bigint;
    while (done < length) {
      const off = Number(cur & PAGE_MASK);
      const n = Math.min(PAGE_SIZE - off, length - done);
      const page = this.pages.get(toSafeNumber(cur >> PAGE_SHIFT));
      if (page !== undefined) out.set(page.subarray(off, off + n), done);
      done += n;
      cur += BigInt(n);
    }
    return out;
  }

  /** Write all of `bytes` at `address`, or nothing at all when the page budget would be exceeded. */
  write(address: A, bytes: Uint8Array): MemoryWriteResult<A> {
    checkRange(address, bytes.length);
    const needed = this.pagesToAllocate(address, bytes);
    if (needed.length > 0 && this.pages.size + needed.length > this.maxPages) {
      return { ok: false, error: this.limitError(address) };
    }
    for (const p of needed) this.pages.set(p, new Uint8Array(PAGE_SIZE));
    let done = 0;
    let cur = address as bigint;
    while (done < bytes.length) {
      const off = Number(cur & PAGE_MASK);
      const n = Math.min(PAGE_SIZE - off, bytes.length - done);
      const page = this.pages.get(toSafeNumber(cur >> PAGE_SHIFT));
      if (page !== undefined) page.set(bytes.subarray(done, done + n), off);
      done += n;
      cur += BigInt(n);
    }
    this.notify(address, bytes.length);
    return OK;
  }

  /**
   * Register a write observer; returns the function that removes it. Observers run after the bytes are in
   * memory, in registration order. An observer may itself write (it is then notified of its own write too).
   */
  onWrite(observer: WriteObserver<A>): () => void {
    this.observers.push(observer);
    return () => {
      const i = this.observers.indexOf(observer);
      if (i >= 0) this.observers.splice(i, 1);
    };
  }

  /** A deep copy with the same budget and contents; observers are not copied. */
  clone(): PhysicalMemory<A> {
    const c = new PhysicalMemory<A>({ maxPages: this.maxPages, ...(this.space ? { space: this.space } : {}) });
    for (const [k, v] of this.pages) c.pages.set(k, v.slice());
    return c;
  }

  snapshot(): MemorySnapshot {
    const keys = [...this.pages.keys()].sort((a, b) => a - b);
    return { pages: keys.map((k) => [BigInt(k), this.pages.get(k)!.slice()] as const) };
  }

  /** Replace the contents by a snapshot's (observers are kept and not notified). */
  restore(snapshot: MemorySnapshot): void {
    this.pages.clear();
    for (const [n, bytes] of snapshot.pages) {
      if (bytes.length !== PAGE_SIZE) throw new RangeError('turtles bug: snapshot page is not 4 KiB');
      this.pages.set(toSafeNumber(n), bytes.slice());
    }
  }

  /** Same bytes everywhere (an allocated all-zero page equals an absent one). */
  contentEquals(other: PhysicalMemory<A>): boolean {
    return this.differingPages(other).length === 0;
  }

  /** Page numbers whose contents differ, ascending. */
  differingPages(other: PhysicalMemory<A>): bigint[] {
    const keys = new Set<number>([...this.pages.keys(), ...other.pages.keys()]);
    const out: number[] = [];
    for (const k of keys) {
      const a = this.pages.get(k);
      const b = other.pages.get(k);
      if (!bytesEqual(a, b)) out.push(k);
    }
    return out.sort((x, y) => x - y).map((n) => BigInt(n));
  }

  private readLittle(address: A, size: number): bigint {
    checkRange(address, size);
    const a = address as bigint;
    const off = Number(a & PAGE_MASK);
    if (off + size <= PAGE_SIZE) {
      // In range (checked above), so the page number is below 2^52 and exact as a number.
      const page = this.pages.get(Number(a >> PAGE_SHIFT));
      if (page === undefined) return 0n;
      if (size === 8) {
        const lo = le32(page, off);
        const hi = le32(page, off + 4);
        return hi === 0 ? BigInt(lo) : (BigInt(hi) << 32n) | BigInt(lo);
      }
      let v = 0n;
      for (let i = size - 1; i >= 0; i--) v = (v << 8n) | BigInt(page[off + i]!);
      return v;
    }
    const bytes = this.read(address, size);
    let v = 0n;
    for (let i = size - 1; i >= 0; i--) v = (v << 8n) | BigInt(bytes[i]!);
    return v;
  }

  /** A 2- or 4-byte little-endian value as a number (exact: at most 32 bits). */
  private readSmall(address: A, size: 2 | 4): number {
    checkRange(address, size);
    const a = address as bigint;
    const off = Number(a & PAGE_MASK);
    if (off + size <= PAGE_SIZE) {
      const page = this.pages.get(Number(a >> PAGE_SHIFT));
      if (page === undefined) return 0;
      return size === 4 ? le32(page, off) : page[off]! | (page[off + 1]! << 8);
    }
    return toU32(this.readLittle(address, size));
  }

  /**
   * Write the low `size` bytes of the value whose bits 31:0 are `lo` and 63:32 are `hi` (both exact 32-bit
   * numbers). Within one page that is already allocated (or when the value is zero, which needs no page) the bytes
   * go straight in; anything else takes the general path with its page-budget check. Observers are told either way.
   */
  private writeWords(address: A, size: number, lo: number, hi: number): MemoryWriteResult<A> {
    checkRange(address, size);
    const a = address as bigint;
    const off = Number(a & PAGE_MASK);
    if (off + size <= PAGE_SIZE) {
      const page = this.pages.get(Number(a >> PAGE_SHIFT));
      if (page !== undefined) {
        for (let i = 0; i < size && i < 4; i++) page[off + i] = (lo >>> (8 * i)) & 0xff;
        for (let i = 4; i < size; i++) page[off + i] = (hi >>> (8 * (i - 4))) & 0xff;
        this.notify(address, size);
        return OK;
      }
      if (lo === 0 && hi === 0) {
        this.notify(address, size);
        return OK;
      }
    }
    const bytes = new Uint8Array(size);
    for (let i = 0; i < size && i < 4; i++) bytes[i] = (lo >>> (8 * i)) & 0xff;
    for (let i = 4; i < size; i++) bytes[i] = (hi >>> (8 * (i - 4))) & 0xff;
    return this.write(address, bytes);
  }

  /** Absent pages the write would touch with at least one non-zero byte (zeros need no page: absent reads as 0). */
  private pagesToAllocate(address: A, bytes: Uint8Array): number[] {
    const out: number[] = [];
    let done = 0;
    let cur = address as bigint;
    while (done < bytes.length) {
      const off = Number(cur & PAGE_MASK);
      const n = Math.min(PAGE_SIZE - off, bytes.length - done);
      const p = toSafeNumber(cur >> PAGE_SHIFT);
      if (!this.pages.has(p) && bytes.subarray(done, done + n).some((b) => b !== 0)) out.push(p);
      done += n;
      cur += BigInt(n);
    }
    return out;
  }

  private limitError(address: A): MemoryPageLimitError<A> {
    const where = `${this.space ?? 'physical'} 0x${(address as bigint).toString(16)}`;
    return {
      kind: 'memory-page-limit',
      address,
      maxPages: this.maxPages,
      message: `writing ${where} needs more than the ${this.maxPages}-page memory budget`,
    };
  }

  private notify(address: A, length: number): void {
    const obs = this.observers;
    if (obs.length === 0) return;
    if (obs.length === 1) {
      obs[0]!(address, length);
      return;
    }
    // Copy: an observer may unsubscribe itself (or others) while being notified.
    for (const o of [...obs]) o(address, length);
  }
}

function pageIndex(address: PhysicalAddress): number {
  return toSafeNumber((address as bigint) >> PAGE_SHIFT);
}

function pageOffset(address: PhysicalAddress): number {
  return Number((address as bigint) & PAGE_MASK);
}

/** Below this address an access of at most a page cannot run past 2^64 (saves a bigint addition per access). */
const LAST_SHORT_ACCESS = TWO_POW_64 - BigInt(PAGE_SIZE);

function le32(page: Uint8Array, off: number): number {
  return (page[off]! | (page[off + 1]! << 8) | (page[off + 2]! << 16) | (page[off + 3]! << 24)) >>> 0;
}

function checkRange(address: PhysicalAddress, length: number): void {
  if (!Number.isInteger(length) || length < 0) throw new RangeError(`turtles bug: bad access length ${length}`);
  const a = address as bigint;
  if (a < 0n || ((length > PAGE_SIZE || a > LAST_SHORT_ACCESS) && a + BigInt(length) > TWO_POW_64)) {
    throw new RangeError(`turtles bug: access at 0x${a.toString(16)} (+${length}) leaves the 64-bit address space`);
  }
}

function checkValue(value: number, width: number): void {
  if (!Number.isInteger(value) || value < 0 || value >= 2 ** width) {
    throw new RangeError(`turtles bug: ${value} is not an unsigned ${width}-bit value`);
  }
}

function bytesEqual(a: Uint8Array | undefined, b: Uint8Array | undefined): boolean {
  if (a === undefined && b === undefined) return true;
  const x = a ?? new Uint8Array(PAGE_SIZE);
  const y = b ?? new Uint8Array(PAGE_SIZE);
  for (let i = 0; i < PAGE_SIZE; i++) if (x[i] !== y[i]) return false;
  return true;
}
