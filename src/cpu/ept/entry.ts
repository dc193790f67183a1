// EPT paging-structure entry format: bit names, presence, leaf detection, and the misconfiguration rules.
// Must not: read memory or decide violations; it classifies one entry at one level.
// SDM Vol. 3C 28.2.2 (entry formats, Tables 28-1..28-6), 28.2.3.1 (EPT misconfigurations); reference §8.2, §8.4.
import { maskRange } from '../u64.js';
import type { EptConfig, EptMisconfigReason } from './types.js';

export const EptBit = {
  R: 1n << 0n,
  W: 1n << 1n,
  X: 1n << 2n,
  /** bits 5:3 memory type (leaf). */
  MEMTYPE_SHIFT: 3n,
  IPAT: 1n << 6n,
  /** bit 7: large page in PDPTE/PDE. */
  PS: 1n << 7n,
  A: 1n << 8n,
  D: 1n << 9n,
  /** bit 10: user-mode execute with mode-based execute control. */
  XU: 1n << 10n,
  SUPPRESS_VE: 1n << 63n,
} as const;

export type EptLevel = 1 | 2 | 3 | 4 | 5;

/** Present = any of bits 2:0, or bit 10 with mode-based execute control (SDM 28.2.2). */
export function eptEntryPresent(entry: bigint, modeBasedExecute: boolean): boolean {
  return (entry & 7n) !== 0n || (modeBasedExecute && (entry & EptBit.XU) !== 0n);
}

/** The entry maps a page: a PTE, or a PDE/PDPTE with bit 7 = 1 (a PML4E/PML5E with bit 7 is misconfigured). */
export function eptEntryIsLeaf(entry: bigint, level: EptLevel): boolean {
  return level === 1 || ((level === 2 || level === 3) && (entry & EptBit.PS) !== 0n);
}

/** Valid leaf memory types (bits 5:3): UC 0, WC 1, WT 4, WP 5, WB 6. */
export function isValidEptMemType(t: number): boolean {
  return t === 0 || t === 1 || t === 4 || t === 5 || t === 6;
}

/**
 * Why a present entry at `level` is misconfigured, or undefined. Order follows SDM 28.2.3.1: the XWR encodings,
 * then reserved bits, then the leaf memory type. Callers check presence first: a not-present entry is never
 * misconfigured (reference §8.4).
 */
export function eptMisconfiguration(entry: bigint, level: EptLevel, config: EptConfig): EptMisconfigReason | undefined {
  // Bits 31:0 and 63:32 as exact 32-bit numbers: every test below is a bit test within one half.
  const lo = Number(entry & 0xffff_ffffn);
  const xwr = lo & 7;
  if (xwr === 0b010 || xwr === 0b110) return 'write-without-read';
  // Execute-only is the value 100b of bits 2:0 (SDM text). An XU-only entry (bits 2:0 = 000b, bit 10 = 1 with
  // MBEC) is not named by the SDM as misconfigured, so it is not treated as one. [verify]
  if (xwr === 0b100 && !config.caps.executeOnly) return 'execute-only-unsupported';
  const n = config.caps.maxPhysAddr;
  if (n < 52) {
    // Bits 51:n. With n >= 32 they all sit in the high half; a smaller width takes the general bigint test.
    if (n >= 32 ? (Number((entry >> 32n) & 0xfffffn) >>> (n - 32)) !== 0 : (entry & maskRange(51, n)) !== 0n) return 'reserved-bits';
  }
  if (level >= 4) {
    // PML5E / PML4E: bits 7:3 reserved (bit 7 must be 0: no 512-GiB pages).
    if ((lo & 0xf8) !== 0) return 'reserved-bits';
    return undefined;
  }
  if (level === 1) return leafMemType(entry);
  if ((lo & 0x80) === 0) {
    // PDPTE / PDE referencing a table: bits 6:3 reserved.
    if ((lo & 0x78) !== 0) return 'reserved-bits';
    return undefined;
  }
  if (level === 3 && !config.caps.pages1G) return 'large-page-unsupported';
  if (level === 2 && !config.caps.pages2M) return 'large-page-unsupported';
  // Bits 29:12 (1-GiB page) or 20:12 (2-MiB page) of the frame are reserved.
  if ((lo & (level === 3 ? 0x3fff_f000 : 0x1f_f000)) !== 0) return 'reserved-bits';
  return leafMemType(entry);
}

function leafMemType(entry: bigint): EptMisconfigReason | undefined {
  const t = Number((entry >> EptBit.MEMTYPE_SHIFT) & 7n);
  return isValidEptMemType(t) ? undefined : 'leaf-memory-type';
}

/** Physical address bits of an entry (next table or page frame), for a given level and leaf-ness. */
export function eptEntryFrame(entry: bigint, level: EptLevel, leaf: boolean): bigint {
  if (!leaf) return entry & maskRange(51, 12);
  if (level === 3) return entry & maskRange(51, 30);
  if (level === 2) return entry & maskRange(51, 21);
  return entry & maskRange(51, 12);
}
