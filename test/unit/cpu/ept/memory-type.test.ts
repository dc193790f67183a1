// Effective memory type of EPT-translated accesses: IPAT, CR0.CD, the MTRR×PAT table with the EPT type in the
// MTRR's place, and PAT entry decoding. SDM Vol. 3C 28.2.6.2; Vol. 3A 11.5.2.2 Table 11-7, 11.12.3.
import { describe, expect, it } from 'vitest';
import { effectiveMemoryType, memoryTypeFromEncoding, patMemoryType, type MemoryType } from '../../../../src/cpu/ept/memory-type.js';

describe('memory types', () => {
  it('decodes the power-on PAT (WB, WT, UC-, UC, WB, WT, UC-, UC) and refuses reserved entries', () => {
    const pat = 0x0007_0406_0007_0406n;
    expect([0, 1, 2, 3, 4, 5, 6, 7].map((i) => patMemoryType(pat, i))).toEqual(['WB', 'WT', 'UC-', 'UC', 'WB', 'WT', 'UC-', 'UC']);
    expect(patMemoryType(0x02n, 0)).toBeUndefined();
    expect(memoryTypeFromEncoding(3)).toBeUndefined();
  });

  it('combines EPT and PAT types as Table 11-7 does for MTRR and PAT', () => {
    const rows: [number, MemoryType[]][] = [
      // PAT columns: UC, UC-, WC, WT, WB, WP
      [0, ['UC', 'UC', 'WC', 'UC', 'UC', 'UC']],
      [1, ['UC', 'WC', 'WC', 'UC', 'WC', 'UC']],
      [4, ['UC', 'UC', 'WC', 'WT', 'WT', 'WP']],
      [6, ['UC', 'UC', 'WC', 'WT', 'WB', 'WP']],
      [5, ['UC', 'WC', 'WC', 'WT', 'WP', 'WP']],
    ];
    const cols: MemoryType[] = ['UC', 'UC-', 'WC', 'WT', 'WB', 'WP'];
    for (const [ept, want] of rows) {
      expect(cols.map((pat) => effectiveMemoryType({ eptMemType: ept, ipat: false, patType: pat, cacheDisable: false }))).toEqual(want);
    }
  });

  it('IPAT uses the EPT type alone; CR0.CD forces UC; no guest paging leaves the EPT type', () => {
    expect(effectiveMemoryType({ eptMemType: 6, ipat: true, patType: 'UC', cacheDisable: false })).toBe('WB');
    expect(effectiveMemoryType({ eptMemType: 6, ipat: true, patType: 'WB', cacheDisable: true })).toBe('UC');
    expect(effectiveMemoryType({ eptMemType: 4, ipat: false, patType: null, cacheDisable: false })).toBe('WT');
    expect(() => effectiveMemoryType({ eptMemType: 2, ipat: true, patType: null, cacheDisable: false })).toThrow(/turtles bug/);
  });
});
