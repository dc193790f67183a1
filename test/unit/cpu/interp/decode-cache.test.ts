// The decode cache: a hit only for the same physical address, bitness, bytes and CS offset, at any physical address
// (small ones use number keys, ones at or above 2^51 bigint keys; the two never collide).
import { describe, expect, it } from 'vitest';
import { DecodeCache } from '../../../../src/cpu/interp/decode.js';

const NOP = new Uint8Array([0x90, 0, 0, 0]);
const JMP = new Uint8Array([0xeb, 0xfe, 0, 0]); // jmp $ (target depends on IP)
const INC = new Uint8Array([0xff, 0xc0, 0, 0]); // inc eax

describe('DecodeCache', () => {
  it('hits only when address, bitness, bytes and IP all match', () => {
    const c = new DecodeCache();
    c.decode(0x1000n, JMP, 64, 0x1000n);
    expect(c.decode(0x1000n, JMP, 64, 0x1000n)).toMatchObject({ ok: true });
    expect([c.hits, c.misses]).toEqual([1, 1]);
    c.decode(0x1000n, JMP, 64, 0x2000n); // other CS offset: the branch target differs
    c.decode(0x1000n, JMP, 32, 0x1000n); // other bitness
    c.decode(0x1000n, INC, 64, 0x1000n); // code rewritten
    expect([c.hits, c.misses]).toEqual([1, 4]);
  });

  it('keeps addresses above 2^51 and their low-address aliases apart', () => {
    const c = new DecodeCache();
    const high = (1n << 51n) + 0x1000n;
    const a = c.decode(0x1000n, NOP, 64, 0n);
    const b = c.decode(high, INC, 64, 0n);
    expect(a.ok && a.instr.name).not.toBe(b.ok && b.instr.name);
    const again = c.decode(high, INC, 64, 0n);
    expect(again.ok && again.instr).toBe(b.ok && b.instr);
    // The number key of 0x1000·4 + 2 and a bigint key with the same value are different entries.
    const low = c.decode(0x1000n, NOP, 64, 0n);
    expect(low.ok && low.instr).toBe(a.ok && a.instr);
    expect(c.hits).toBe(2);
  });
});
