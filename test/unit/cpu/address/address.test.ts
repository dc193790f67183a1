// Address-space brands: runtime behaviour of the constructors and helpers, and compile-time proof (each
// `@ts-expect-error` must see an error, or `tsc -p tsconfig.json` fails) that spaces cannot be mixed, including an
// EPT-on-EPT composition that feeds an L2 GPA to EPT01. SDM Vol. 3C 28.2.1; reference §8.6.
import { describe, expect, it } from 'vitest';
import {
  addrAdd, alignDown, guestLinear, hpa, l1gpa, l2gpa, l2gpaToL1gpaIdentity, offsetIn, HPA, L1_GPA, L2_GPA,
  type GuestLinear, type Hpa, type L1Gpa, type L2Gpa,
} from '../../../../src/cpu/address.js';
import { PhysicalMemory } from '../../../../src/cpu/memory.js';
import { ept01, ept12, eptConfig } from '../../../../src/cpu/ept/eptp.js';
import { walkEpt } from '../../../../src/cpu/ept/walker.js';
import type { Ept, EptAccess, EptCapabilities } from '../../../../src/cpu/ept/types.js';

const CAPS: EptCapabilities = {
  maxPhysAddr: 46, executeOnly: true, walkLength4: true, walkLength5: true, memTypeUc: true, memTypeWb: true,
  pages2M: true, pages1G: true, accessedDirty: true, advancedExitInfo: true, supervisorShadowStack: false,
};
const READ: EptAccess = { type: 'read', cause: { kind: 'no-linear' } };

/**
 * Never called: it only has to type-check. Every line marked @ts-expect-error is a mix-up that must not compile.
 */
export function typeLevelChecks(e12: Ept<L2Gpa, L1Gpa>, e01: Ept<L1Gpa, Hpa>, g2: L2Gpa, g1: L1Gpa, h: Hpa, la: GuestLinear): void {
  // @ts-expect-error an L2 guest-physical address is not an L1 guest-physical address
  const a: L1Gpa = g2;
  // @ts-expect-error nor a host-physical one
  const b: Hpa = g1;
  // @ts-expect-error a linear address is not physical
  const c: L2Gpa = la;
  // @ts-expect-error constructors refuse values already branded for another space (no laundering)
  l1gpa(g2);
  // @ts-expect-error the same through a space handle
  HPA.of(g1);
  // @ts-expect-error EPT01 translates L1 GPAs: an L2 GPA cannot be fed to it
  walkEpt(e01, g2, READ);
  // @ts-expect-error EPT12 takes L2 GPAs
  walkEpt(e12, g1, READ);
  const t12 = walkEpt(e12, g2, READ);
  if (t12.ok) {
    // EPT-on-EPT composition: EPT12's output (L1Gpa) is exactly EPT01's input.
    const t01 = walkEpt(e01, t12.out, READ);
    if (t01.ok) {
      const host: Hpa = t01.out;
      // @ts-expect-error the composition's result is host-physical, not L1
      const wrong: L1Gpa = t01.out;
      void host; void wrong;
    }
    // @ts-expect-error feeding EPT12's input (L2Gpa) to EPT01 instead of its output
    walkEpt(e01, t12.gpa, READ);
  }
  // @ts-expect-error arithmetic results are plain bigint until re-branded by the right constructor
  const d: L2Gpa = g2 + 1n;
  const e: L2Gpa = addrAdd(g2, 1n);
  // @ts-expect-error the identity translation only goes L2 → L1
  l2gpaToL1gpaIdentity(g1);
  void a; void b; void c; void d; void e; void h;
}

describe('address brands', () => {
  it('constructors keep the value and reject values outside u64', () => {
    expect(l2gpa(0x1234n) as bigint).toBe(0x1234n);
    expect(L1_GPA.of(5n) as bigint).toBe(5n);
    expect(L2_GPA.name).toBe('L2Gpa');
    expect(() => hpa(-1n)).toThrow(/not an unsigned 64-bit/);
    expect(() => guestLinear(1n << 64n)).toThrow(RangeError);
  });

  it('in-space helpers wrap modulo 2^64 and align', () => {
    expect(addrAdd(guestLinear(0xffff_ffff_ffff_ffffn), 2n) as bigint).toBe(1n);
    expect(alignDown(l1gpa(0x20_1234n), 0x20_0000n) as bigint).toBe(0x20_0000n);
    expect(offsetIn(l1gpa(0x20_1234n), 0x1000n)).toBe(0x234n);
    expect(l2gpaToL1gpaIdentity(l2gpa(0x9000n)) as bigint).toBe(0x9000n);
  });

  it('typed EPT handles compose EPT12 then EPT01 at run time too', () => {
    // L1 memory holds EPT12; host memory holds EPT01 and the data. L1 page 0x5000 is host page 0x7000.
    const l1mem = new PhysicalMemory<L1Gpa>();
    const host = new PhysicalMemory<Hpa>();
    const w12 = [[0x1000n, 0x2007n], [0x2000n, 0x3007n], [0x3000n, 0x4007n], [0x4008n, 0x5037n]] as const;
    for (const [a, v] of w12) expect(l1mem.writeU64(l1gpa(a), v).ok).toBe(true);
    const w01 = [[0x1_0000n, 0x1_1007n], [0x1_1000n, 0x1_2007n], [0x1_2000n, 0x1_3007n], [0x1_3028n, 0x7037n]] as const;
    for (const [a, v] of w01) expect(host.writeU64(hpa(a), v).ok).toBe(true);
    const h12 = ept12({ eptp: 0x1000n | 0x1en, config: eptConfig(CAPS), tables: l1mem });
    const h01 = ept01({ eptp: 0x1_0000n | 0x1en, config: eptConfig(CAPS), tables: host });
    if (!h12.ok || !h01.ok) throw new Error('EPTP rejected');
    const t12 = walkEpt(h12.ept, l2gpa(0x1abcn), READ);
    expect(t12.ok && (t12.out as bigint)).toBe(0x5abcn);
    if (!t12.ok) return;
    const t01 = walkEpt(h01.ept, t12.out, READ);
    expect(t01.ok && (t01.out as bigint)).toBe(0x7abcn);
  });
});
