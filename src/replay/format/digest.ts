// 64-bit FNV-1a state digests for the chunk index: the running VMCS content (every kind's last snapshot) after a
// chunk's last event, serialised canonically (kinds in enum order, fields ascending), so a reader that seeks or
// decodes chunks in parallel can confirm it reconstructed the same state the writer had.
// Computed with 16-bit limbs in plain numbers: no bigint arithmetic per byte. Must not: depend on Map order.
import { VMCS_KINDS } from './events.js';
import type { VmcsState } from './codec.js';

export class Fnv1a64 {
  // h = h3:h2:h1:h0, 16 bits each; initial value is the FNV-1a 64 offset basis 0xcbf29ce484222325.
  private h0 = 0x2325;
  private h1 = 0x8422;
  private h2 = 0x9ce4;
  private h3 = 0xcbf2;

  byte(b: number): void {
    const h0 = (this.h0 ^ (b & 0xff)) >>> 0;
    const h1 = this.h1;
    // h * 0x100000001b3 = h * 0x1b3 + (h << 40), modulo 2^64.
    const t0 = h0 * 0x1b3;
    const t1 = h1 * 0x1b3 + (t0 >>> 16);
    const t2 = this.h2 * 0x1b3 + ((h0 << 8) & 0xffff) + (t1 >>> 16);
    const t3 = this.h3 * 0x1b3 + ((h0 >>> 8) | ((h1 & 0xff) << 8)) + (t2 >>> 16);
    this.h0 = t0 & 0xffff;
    this.h1 = t1 & 0xffff;
    this.h2 = t2 & 0xffff;
    this.h3 = t3 & 0xffff;
  }

  u32(x: number): void {
    for (let i = 0; i < 4; i++) this.byte((x >>> (8 * i)) & 0xff);
  }

  u64(x: bigint): void {
    this.u32(Number(x & 0xffff_ffffn));
    this.u32(Number((x >> 32n) & 0xffff_ffffn));
  }

  bytes(b: Uint8Array): void {
    for (let i = 0; i < b.length; i++) this.byte(b[i]!);
  }

  digest(): bigint {
    return (BigInt(((this.h3 << 16) | this.h2) >>> 0) << 32n) | BigInt(((this.h1 << 16) | this.h0) >>> 0);
  }
}

/** Digest of the running VMCS state. */
export function vmcsStateDigest(state: VmcsState): bigint {
  const h = new Fnv1a64();
  VMCS_KINDS.forEach((kind, index) => {
    const fields = state.get(kind);
    if (!fields) return;
    h.byte(index);
    h.u32(fields.size);
    for (const enc of [...fields.keys()].sort((a, b) => a - b)) {
      h.u32(enc);
      h.u64(fields.get(enc)!);
    }
  });
  return h.digest();
}
