// VMCS field storage: one 64-bit slot per field of the generated table, kept as (low, high) 32-bit words in a
// Uint32Array so hot paths (entry checks, merge) can test bits with plain numbers and no bigint allocation.
// Implements the SDM Appendix B encoding rules (high-half access, width masking); whether a field exists
// on a given CPU model, and read-only policy, belong to the VMX instructions (vmx/), not here.
// Must not: know about VM entry, nesting or memory layout of a VMCS region.
import { VMCS_FIELDS, type VmcsFieldDef, type VmcsFieldWidth } from './generated/vmcs-fields.js';

/** Read access to a VMCS-shaped state. `undefined` means the value is not known (a dump that lacks the field). */
export interface VmcsReader {
  read(encoding: number): bigint | undefined;
}

const FULL_FIELDS: VmcsFieldDef[] = VMCS_FIELDS.filter((f) => f.access === 'full');
const SLOT_BY_ENCODING = new Map<number, number>();
FULL_FIELDS.forEach((f, slot) => SLOT_BY_ENCODING.set(f.encoding, slot));
const DEF_BY_ENCODING = new Map<number, VmcsFieldDef>(VMCS_FIELDS.map((f) => [f.encoding, f]));
const DEF_BY_NAME = new Map<string, VmcsFieldDef>(VMCS_FIELDS.map((f) => [f.name, f]));

export const VMCS_SLOT_COUNT = FULL_FIELDS.length;

/**
 * Hot-path tables: slot + 1 by full encoding (0 = not in the table; encodings are 15-bit, SDM B), and per slot the
 * width class (0: 16-bit, 1: 32-bit, 2: 64-bit / natural). Same answers as SLOT_BY_ENCODING / the field definitions.
 */
const SLOT_PLUS_ONE = new Uint16Array(0x8000);
const WIDTH_CLASS = new Uint8Array(VMCS_SLOT_COUNT);
FULL_FIELDS.forEach((f, slot) => {
  if (f.encoding < 0 || f.encoding >= 0x8000) throw new Error(`turtles bug: VMCS encoding 0x${f.encoding.toString(16)} outside 15 bits`);
  SLOT_PLUS_ONE[f.encoding] = slot + 1;
  WIDTH_CLASS[slot] = f.width === '16' ? 0 : f.width === '32' ? 1 : 2;
});

/** slotOf without the Map: the slot for the full field `encoding & ~1` names, or -1. */
function fastSlot(encoding: number): number {
  const full = encoding & ~1;
  return full >= 0 && full < 0x8000 ? SLOT_PLUS_ONE[full]! - 1 : -1;
}

/** Field definition for an encoding in the table, or undefined. */
export function fieldDef(encoding: number): VmcsFieldDef | undefined {
  return DEF_BY_ENCODING.get(encoding);
}

export function fieldByName(name: string): VmcsFieldDef | undefined {
  return DEF_BY_NAME.get(name);
}

/** Storage slot of a full field, or of the field whose high half `encoding` names; -1 if not in the table. */
export function slotOf(encoding: number): number {
  return fastSlot(encoding);
}

/** The full (even) fields in slot order. */
export function slotFields(): readonly VmcsFieldDef[] {
  return FULL_FIELDS;
}

export function widthBits(width: VmcsFieldWidth): number {
  return width === '16' ? 16 : width === '32' ? 32 : 64;
}

/** Mask applied when storing a value into a field of this width. */
export function widthMask(width: VmcsFieldWidth): bigint {
  return width === '16' ? 0xffffn : width === '32' ? 0xffff_ffffn : 0xffff_ffff_ffff_ffffn;
}

/** Encoding decode per SDM B / reference §1.1. */
export function decodeEncoding(encoding: number): { access: 'full' | 'high'; index: number; type: number; width: VmcsFieldWidth; reservedBitsSet: boolean } {
  const widths: VmcsFieldWidth[] = ['16', '64', '32', 'natural'];
  return {
    access: encoding & 1 ? 'high' : 'full',
    index: (encoding >> 1) & 0x1ff,
    type: (encoding >> 10) & 3,
    width: widths[(encoding >> 13) & 3]!,
    reservedBitsSet: (encoding & 0x1000) !== 0 || encoding >>> 15 !== 0,
  };
}

export class Vmcs implements VmcsReader {
  /** words[2·slot] = bits 31:0, words[2·slot + 1] = bits 63:32. */
  readonly words: Uint32Array;

  constructor(words?: Uint32Array) {
    this.words = words ?? new Uint32Array(VMCS_SLOT_COUNT * 2);
  }

  /** Value of a field by encoding (high encodings give bits 63:32). Undefined for encodings not in the table. */
  read(encoding: number): bigint | undefined {
    const slot = fastSlot(encoding);
    if (slot < 0) return undefined;
    const high = this.words[2 * slot + 1]!;
    if (encoding & 1) return BigInt(high);
    const low = this.words[2 * slot]!;
    return high === 0 ? BigInt(low) : (BigInt(high) << 32n) | BigInt(low);
  }

  /** Value of a field known to be in the table (use with generated `Field` constants). */
  get(encoding: number): bigint {
    const v = this.read(encoding);
    if (v === undefined) throw new Error(`turtles bug: VMCS encoding 0x${encoding.toString(16)} is not in the field table`);
    return v;
  }

  /** Bits 31:0 of a field as an unsigned number (exact: controls, 16/32-bit fields, low halves). */
  lo(encoding: number): number {
    const slot = fastSlot(encoding);
    if (slot < 0) throw new Error(`turtles bug: VMCS encoding 0x${encoding.toString(16)} is not in the field table`);
    return this.words[2 * slot + (encoding & 1)]!;
  }

  /** Bits 63:32 of a field as an unsigned number. */
  hi(encoding: number): number {
    const slot = fastSlot(encoding);
    if (slot < 0) throw new Error(`turtles bug: VMCS encoding 0x${encoding.toString(16)} is not in the field table`);
    return encoding & 1 ? 0 : this.words[2 * slot + 1]!;
  }

  /** Low 32 bits of a control or 32-bit field as a number (control words are exact in a number). */
  get32(encoding: number): number {
    return this.lo(encoding);
  }

  /** Store with the architectural width rule: truncated to the field width; a high access replaces bits 63:32. */
  set(encoding: number, value: bigint): void {
    const slot = fastSlot(encoding);
    if (slot < 0) throw new Error(`turtles bug: VMCS encoding 0x${encoding.toString(16)} is not in the field table`);
    if (encoding & 1) {
      this.words[2 * slot + 1] = Number(BigInt.asUintN(32, value));
      return;
    }
    const width = WIDTH_CLASS[slot]!;
    if (width === 2) {
      // Most 64-bit field values fit 32 bits (selectors, small addresses): two comparisons instead of three
      // bigint truncations; the stored words are the same.
      if (value >= 0n && value <= 0xffff_ffffn) {
        this.words[2 * slot] = Number(value);
        this.words[2 * slot + 1] = 0;
        return;
      }
      const v = BigInt.asUintN(64, value);
      this.words[2 * slot] = Number(BigInt.asUintN(32, v));
      this.words[2 * slot + 1] = Number(v >> 32n);
      return;
    }
    this.words[2 * slot] = Number(BigInt.asUintN(width === 0 ? 16 : 32, value));
    this.words[2 * slot + 1] = 0;
  }

  /** Store a 32-bit (or narrower) value given as a number; truncated to the field width. */
  set32(encoding: number, value: number): void {
    const slot = fastSlot(encoding);
    if (slot < 0) throw new Error(`turtles bug: VMCS encoding 0x${encoding.toString(16)} is not in the field table`);
    if (encoding & 1) {
      this.words[2 * slot + 1] = value >>> 0;
      return;
    }
    this.words[2 * slot] = (WIDTH_CLASS[slot] === 0 ? value & 0xffff : value) >>> 0;
    this.words[2 * slot + 1] = 0;
  }

  clone(): Vmcs {
    return new Vmcs(this.words.slice());
  }

  copyFrom(other: Vmcs): void {
    this.words.set(other.words);
  }

  /**
   * For each full field at `slots`: `this.set(e, other.get(e))` without bigints (the value truncated to the field width,
   * as set does). For copying a fixed field list between two VMCSs (shadow VMCS sync, vmcs02 → vmcs12 guest state).
   */
  copySlotsFrom(other: Vmcs, slots: Int32Array): void {
    const to = this.words;
    const from = other.words;
    for (let k = 0; k < slots.length; k++) {
      const s = slots[k]!;
      const width = WIDTH_CLASS[s];
      if (width === undefined) throw new Error(`turtles bug: VMCS slot ${s} is not in the field table`);
      const low = from[2 * s]!;
      to[2 * s] = width === 0 ? low & 0xffff : low;
      to[2 * s + 1] = width === 2 ? from[2 * s + 1]! : 0;
    }
  }

  /** Slots whose value differs from `other` (for deltas and diffs). */
  diff(other: Vmcs): number[] {
    const out: number[] = [];
    for (let i = 0; i < VMCS_SLOT_COUNT; i++) {
      if (this.words[2 * i] !== other.words[2 * i] || this.words[2 * i + 1] !== other.words[2 * i + 1]) out.push(i);
    }
    return out;
  }
}

/** A partial VMCS state: the fields a dump or trace shows, nothing else. */
export class PartialVmcs implements VmcsReader {
  readonly values = new Map<number, bigint>();

  read(encoding: number): bigint | undefined {
    const direct = this.values.get(encoding);
    if (direct !== undefined) return direct;
    if (encoding & 1) {
      const full = this.values.get(encoding & ~1);
      return full === undefined ? undefined : full >> 32n;
    }
    return undefined;
  }

  set(encoding: number, value: bigint): void {
    const def = DEF_BY_ENCODING.get(encoding);
    this.values.set(encoding, def ? value & widthMask(def.width) : value);
  }

  has(encoding: number): boolean {
    return this.read(encoding) !== undefined;
  }
}
