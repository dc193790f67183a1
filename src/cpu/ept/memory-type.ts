// Memory types: PAT entry decoding and the effective memory type of an access translated by EPT (EPT memory type
// and IPAT from the leaf, combined with the guest PAT type by the MTRR×PAT table with EPT in the MTRR's place).
// Must not: model MTRRs (they do not apply to EPT-translated accesses) or caches.
// SDM Vol. 3C 28.2.6.2 (memory type for translated guest-physical addresses), Vol. 3A 11.5.2.2 Table 11-7, 11.12.3.

export type MemoryType = 'UC' | 'WC' | 'WT' | 'WP' | 'WB' | 'UC-';

/** EPT / MTRR encodings (0, 1, 4, 5, 6); undefined for reserved values. */
export function memoryTypeFromEncoding(n: number): Exclude<MemoryType, 'UC-'> | undefined {
  switch (n) {
    case 0: return 'UC';
    case 1: return 'WC';
    case 4: return 'WT';
    case 5: return 'WP';
    case 6: return 'WB';
    default: return undefined;
  }
}

/** PAT entry `index` (0..7) of IA32_PAT; undefined for a reserved encoding (WRMSR would have refused it). */
export function patMemoryType(pat: bigint, index: number): MemoryType | undefined {
  if (!Number.isInteger(index) || index < 0 || index > 7) throw new RangeError(`turtles bug: PAT index ${index}`);
  const e = Number((pat >> BigInt(8 * index)) & 0xffn);
  if (e === 7) return 'UC-';
  return memoryTypeFromEncoding(e);
}

// Table 11-7: rows are the MTRR-position type (here: the EPT memory type), columns the PAT type.
const COMBINE: Record<Exclude<MemoryType, 'UC-'>, Record<MemoryType, MemoryType>> = {
  UC: { UC: 'UC', 'UC-': 'UC', WC: 'WC', WT: 'UC', WB: 'UC', WP: 'UC' },
  WC: { UC: 'UC', 'UC-': 'WC', WC: 'WC', WT: 'UC', WB: 'WC', WP: 'UC' },
  WT: { UC: 'UC', 'UC-': 'UC', WC: 'WC', WT: 'WT', WB: 'WT', WP: 'WP' },
  WB: { UC: 'UC', 'UC-': 'UC', WC: 'WC', WT: 'WT', WB: 'WB', WP: 'WP' },
  WP: { UC: 'UC', 'UC-': 'WC', WC: 'WC', WT: 'WT', WB: 'WP', WP: 'WP' },
};

export interface EffectiveMemoryTypeInput {
  /** Leaf EPT memory type (bits 5:3), already known valid (an invalid one is an EPT misconfiguration). */
  readonly eptMemType: number;
  /** Leaf bit 6. */
  readonly ipat: boolean;
  /**
   * The guest PAT type of the access (paging entry PAT/PCD/PWT → IA32_PAT). `null` when there is none because guest
   * paging is off; the PAT then contributes WB, which leaves the EPT type unchanged. [verify: SDM 28.2.6.2 footnote]
   */
  readonly patType: MemoryType | null;
  /** CR0.CD of the guest: 1 forces UC. */
  readonly cacheDisable: boolean;
}

export function effectiveMemoryType(input: EffectiveMemoryTypeInput): MemoryType {
  if (input.cacheDisable) return 'UC';
  const ept = memoryTypeFromEncoding(input.eptMemType);
  if (ept === undefined) throw new RangeError(`turtles bug: EPT memory type ${input.eptMemType} reached the combiner`);
  if (input.ipat) return ept;
  return COMBINE[ept][input.patType ?? 'WB'];
}
