// maskRange remembers its masks: every (hi, lo) gives the value of the defining formula, on first and later calls.
import { describe, expect, it } from 'vitest';
import { maskRange } from '../../../../src/cpu/u64.js';

describe('maskRange', () => {
  it('equals ((1 << (hi − lo + 1)) − 1) << lo for every 0 <= lo <= hi < 64, every time', () => {
    for (let round = 0; round < 2; round++) {
      for (let hi = 0; hi < 64; hi++) {
        for (let lo = 0; lo <= hi; lo++) {
          expect(maskRange(hi, lo)).toBe(((1n << BigInt(hi - lo + 1)) - 1n) << BigInt(lo));
        }
      }
    }
    expect(maskRange(51, 12)).toBe(0x000f_ffff_ffff_f000n);
    expect(maskRange(200, 190)).toBe(((1n << 11n) - 1n) << 190n);
  });
});
