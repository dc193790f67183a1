// A ready-to-run guest environment for L2 programs in real, 32-bit protected (unpaged, 32-bit paging or PAE paging)
// or 64-bit mode (4- or 5-level paging): GDT (flat ring-0/3 code and data, TSS), IDT with one `hlt` stub per vector,
// TSS with stacks and an all-clear I/O bit map, identity paging, a stack and the code placed at a fixed address.
// Tests, the fuzzer's L2 programs and the benchmark share it. Must not: make VMX decisions.
// SDM Vol. 3A 3.4.5, 4.3–4.5, 6.10–6.14, 7.2.1, 9.8.
import { guestLinear, type AddressSpace, type PhysicalAddress } from '../address.js';
import type { PhysicalMemory } from '../memory.js';
import { GuestPageTableBuilder, type GuestPagingMode } from '../paging/builder.js';
import { Ar, Cr0, Cr4, Efer, Seg, type CpuState } from '../state.js';

/**
 * 'protected32' runs without paging; 'paged32' uses 32-bit paging (CR4.PSE: 4-KiB pages below 4 MiB, 4-MiB pages
 * above), 'pae32' PAE paging (4-KiB pages below 2 MiB, 2-MiB pages above), 'long64' 4-level and 'long64-la57'
 * 5-level paging (2-MiB pages). Every paged mode identity-maps [0, L2Layout.MAPPED) with user, writable pages and
 * leaves everything above not present (a #PF on first touch).
 */
export type L2Mode = 'real' | 'protected32' | 'paged32' | 'pae32' | 'long64' | 'long64-la57';

export const L2_MODES: readonly L2Mode[] = ['real', 'protected32', 'paged32', 'pae32', 'long64', 'long64-la57'];

/** IA-32e mode (64-bit code). */
export function isLongMode(mode: L2Mode): boolean {
  return mode === 'long64' || mode === 'long64-la57';
}

/** Modes VMX can only run with "unrestricted guest" (CR0.PE = 0 or CR0.PG = 0; SDM 26.3.1.1). */
export function needsUnrestrictedGuest(mode: L2Mode): boolean {
  return mode === 'real' || mode === 'protected32';
}

/** Default operand size of the code segment the environment starts in. */
export function modeBitness(mode: L2Mode): 16 | 32 | 64 {
  return mode === 'real' ? 16 : isLongMode(mode) ? 64 : 32;
}

/** Fixed physical (= linear) layout of the environment. */
export const L2Layout = {
  GDT: 0x1000n,
  IDT: 0x2000n,
  TSS: 0x3000n,
  /** I/O permission bit map (8 KiB + 1 terminator byte) right after the 0x68-byte TSS. */
  IO_BITMAP: 0x3068n,
  HANDLERS: 0x6000n,
  /** Stack for CPL 0 (and the initial stack); grows down from here. */
  STACK_TOP: 0x8_0000n,
  /** Stack used by the TSS for CPL 0 when entered from CPL 3. */
  RING0_STACK_TOP: 0x7_0000n,
  DATA: 0x9_0000n,
  CODE: 0x1_0000n,
  PAGE_TABLES: 0x20_0000n,
  /** Identity-mapped span in the paged modes (everything above is not present). */
  MAPPED: 0x4000_0000n,
} as const;

export const L2Selectors = { CODE64: 0x08, DATA: 0x10, CODE32: 0x18, CODE16: 0x20, USER_CODE64: 0x2b, USER_DATA: 0x33, TSS: 0x38, USER_CODE32: 0x4b } as const;

/** Handler stub address for an interrupt vector (each stub is `hlt; jmp back to hlt`). */
export function handlerAddress(vector: number): bigint {
  return L2Layout.HANDLERS + BigInt(vector * 8);
}

function desc(base: number, limit: number, access: number, flags: number): bigint {
  const lo = ((limit & 0xffff) | ((base & 0xffff) << 16)) >>> 0;
  const hi = (((base >>> 16) & 0xff) | (access << 8) | (((limit >>> 16) & 0xf) << 16) | (flags << 20) | (base & 0xff00_0000)) >>> 0;
  return (BigInt(hi) << 32n) | BigInt(lo);
}

export interface L2EnvOptions<P extends PhysicalAddress> {
  readonly mode: L2Mode;
  readonly memory: PhysicalMemory<P>;
  readonly space: AddressSpace<P>;
  /** Program bytes, placed at L2Layout.CODE. */
  readonly code: Uint8Array;
  /** Start at CPL 3 (every mode but real). */
  readonly user?: boolean;
}

function write<P extends PhysicalAddress>(o: L2EnvOptions<P>, addr: bigint, bytes: Uint8Array): void {
  const r = o.memory.write(o.space.of(addr), bytes);
  if (!r.ok) throw new Error(`turtles bug: L2 environment does not fit the memory budget: ${r.error.message}`);
}

function q<P extends PhysicalAddress>(o: L2EnvOptions<P>, addr: bigint, v: bigint): void {
  const r = o.memory.writeU64(o.space.of(addr), BigInt.asUintN(64, v));
  if (!r.ok) throw new Error(`turtles bug: L2 environment does not fit the memory budget: ${r.error.message}`);
}

/** Write the environment into memory and set `state` up to run the code at L2Layout.CODE. */
export function buildL2Environment<P extends PhysicalAddress>(state: CpuState, o: L2EnvOptions<P>): void {
  write(o, L2Layout.CODE, o.code);
  // Handler stubs: F4 (hlt) EB FD (jmp back to the hlt).
  const stubs = new Uint8Array(256 * 8);
  for (let v = 0; v < 256; v++) stubs.set([0xf4, 0xeb, 0xfd], v * 8);
  write(o, L2Layout.HANDLERS, stubs);
  const gdt: bigint[] = [
    0n,
    desc(0, 0xfffff, 0x9b, 0xa), // 0x08 64-bit code, DPL 0
    desc(0, 0xfffff, 0x93, 0xc), // 0x10 data, DPL 0
    desc(0, 0xfffff, 0x9b, 0xc), // 0x18 32-bit code, DPL 0
    desc(0, 0xffff, 0x9b, 0x0), // 0x20 16-bit code, DPL 0
    desc(0, 0xfffff, 0xfb, 0xa), // 0x28 64-bit code, DPL 3
    desc(0, 0xfffff, 0xf3, 0xc), // 0x30 data, DPL 3
    0n, 0n, // 0x38 TSS (16 bytes in IA-32e mode), filled below
    desc(0, 0xfffff, 0xfb, 0xc), // 0x48 32-bit code, DPL 3
  ];
  const tssLimit = 0x68 + 0x2000;
  const tssDesc = desc(Number(L2Layout.TSS), tssLimit, 0x8b, 0);
  gdt[7] = tssDesc;
  gdt[8] = 0n;
  gdt.forEach((d, i) => q(o, L2Layout.GDT + BigInt(i * 8), d));
  // TSS: ESP0/SS0 (32-bit) or RSP0 (64-bit), I/O map base, all-clear bit map with terminator.
  const tss = new Uint8Array(0x68 + 0x2000 + 1);
  const dv = new DataView(tss.buffer);
  if (isLongMode(o.mode)) {
    dv.setBigUint64(4, L2Layout.RING0_STACK_TOP, true);
    dv.setBigUint64(0x24, L2Layout.RING0_STACK_TOP - 0x1000n, true); // IST1
  } else {
    dv.setUint32(4, Number(L2Layout.RING0_STACK_TOP), true);
    dv.setUint16(8, L2Selectors.DATA, true);
  }
  dv.setUint16(0x66, 0x68, true);
  tss[0x68 + 0x2000] = 0xff;
  write(o, L2Layout.TSS, tss);
  // IDT.
  for (let v = 0; v < 256; v++) {
    const h = Number(handlerAddress(v));
    if (o.mode === 'real') {
      const seg = 0;
      const e = new Uint8Array([h & 0xff, (h >> 8) & 0xff, seg & 0xff, seg >> 8]);
      write(o, BigInt(v * 4), e);
    } else if (!isLongMode(o.mode)) {
      // 32-bit interrupt gate, DPL 3 so INT n works from CPL 3.
      const lo = ((h & 0xffff) | (L2Selectors.CODE32 << 16)) >>> 0;
      const hi = ((h & 0xffff_0000) | 0xee00) >>> 0;
      q(o, L2Layout.IDT + BigInt(v * 8), (BigInt(hi) << 32n) | BigInt(lo));
    } else {
      const lo = ((h & 0xffff) | (L2Selectors.CODE64 << 16)) >>> 0;
      const hi = ((h & 0xffff_0000) | 0xee00) >>> 0;
      q(o, L2Layout.IDT + BigInt(v * 16), (BigInt(hi) << 32n) | BigInt(lo));
      q(o, L2Layout.IDT + BigInt(v * 16 + 8), 0n);
    }
  }
  setupState(state, o);
}

function setSeg(s: CpuState, seg: number, sel: number, base: bigint, limit: number, ar: number): void {
  s.segSel[seg] = sel;
  s.segBase[seg] = base;
  s.segLimit[seg] = limit >>> 0;
  s.segAr[seg] = ar;
}

function setupState<P extends PhysicalAddress>(s: CpuState, o: L2EnvOptions<P>): void {
  s.rflags = 0x2n;
  s.gpr.fill(0n);
  s.gdtrBase = L2Layout.GDT;
  s.gdtrLimit = 10 * 8 - 1;
  setSeg(s, Seg.LDTR, 0, 0n, 0, Ar.UNUSABLE);
  if (o.mode === 'real') {
    s.cr0 = Cr0.ET;
    s.cr4 = 0n;
    s.efer = 0n;
    s.idtrBase = 0n;
    s.idtrLimit = 0x3ff;
    setSeg(s, Seg.CS, Number(L2Layout.CODE >> 4n), L2Layout.CODE, 0xffff, 0x9b);
    for (const seg of [Seg.DS, Seg.ES, Seg.FS, Seg.GS, Seg.SS]) setSeg(s, seg, 0, 0n, 0xffff, 0x93);
    setSeg(s, Seg.TR, 0, 0n, 0xffff, 0x8b);
    s.rip = 0n;
    s.gpr[4] = 0x8000n;
    return;
  }
  s.idtrBase = L2Layout.IDT;
  setSeg(s, Seg.TR, L2Selectors.TSS, L2Layout.TSS, 0x68 + 0x2000, 0x8b);
  const user = o.user === true;
  const dataAr = user ? 0xc0f3 : 0xc093;
  const dataSel = user ? L2Selectors.USER_DATA : L2Selectors.DATA;
  if (!isLongMode(o.mode)) {
    s.cr0 = Cr0.PE | Cr0.ET | Cr0.NE;
    s.cr4 = 0n;
    s.efer = 0n;
    if (o.mode === 'paged32') {
      s.cr0 |= Cr0.PG | Cr0.WP;
      s.cr3 = identityMap(o, '32bit', 0x40_0000n, '4M');
      s.cr4 = Cr4.PSE;
    } else if (o.mode === 'pae32') {
      s.cr0 |= Cr0.PG | Cr0.WP;
      s.cr3 = identityMap(o, 'pae', 0x20_0000n, '2M');
      s.cr4 = Cr4.PAE;
    }
    s.idtrLimit = 256 * 8 - 1;
    setSeg(s, Seg.CS, user ? L2Selectors.USER_CODE32 : L2Selectors.CODE32, 0n, 0xffff_ffff, user ? 0xc0fb : 0xc09b);
  } else {
    const la57 = o.mode === 'long64-la57';
    s.cr0 = Cr0.PE | Cr0.ET | Cr0.NE | Cr0.PG | Cr0.WP;
    s.cr3 = identityMap(o, la57 ? '5level' : '4level', 0n, '2M');
    s.cr4 = Cr4.PAE | (la57 ? Cr4.LA57 : 0n);
    s.efer = Efer.LME | Efer.LMA | Efer.NXE;
    s.idtrLimit = 256 * 16 - 1;
    setSeg(s, Seg.CS, user ? L2Selectors.USER_CODE64 : L2Selectors.CODE64, 0n, 0xffff_ffff, user ? 0xa0fb : 0xa09b);
  }
  for (const seg of [Seg.DS, Seg.ES, Seg.FS, Seg.GS, Seg.SS]) setSeg(s, seg, dataSel, 0n, 0xffff_ffff, dataAr);
  s.rip = L2Layout.CODE;
  s.gpr[4] = user ? L2Layout.STACK_TOP - 0x8000n : L2Layout.STACK_TOP;
}

/**
 * Identity-map [0, L2Layout.MAPPED) at L2Layout.PAGE_TABLES: 4-KiB pages below `small` (so programs can meet page
 * tables of every level), `large` pages from there on. Returns CR3.
 */
function identityMap<P extends PhysicalAddress>(o: L2EnvOptions<P>, mode: GuestPagingMode, small: bigint, large: '2M' | '4M'): bigint {
  const builder = new GuestPageTableBuilder({ mode, memory: o.memory, space: o.space, tableArea: { base: L2Layout.PAGE_TABLES, pages: 16 } });
  const step = large === '4M' ? 0x40_0000n : 0x20_0000n;
  const map = (a: bigint, pageSize: '4K' | '2M' | '4M') => {
    const r = builder.map(guestLinear(a), o.space.of(a), { pageSize, writable: true, user: true });
    if (!r.ok) throw new Error(`turtles bug: identity map failed: ${r.error.message}`);
  };
  for (let a = 0n; a < small; a += 0x1000n) map(a, '4K');
  for (let a = small; a < L2Layout.MAPPED; a += step) map(a, large);
  return builder.cr3;
}
