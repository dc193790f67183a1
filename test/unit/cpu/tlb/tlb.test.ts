// TLB model scenarios: tagging by VPID/PCID/EPTRTA, global entries, dirty-before-write, and each invalidating
// operation's scope (INVLPG, INVPCID, MOV to CR3 with and without PCID, CR4 changes, INVVPID 0–3, INVEPT,
// VM transitions with VPID disabled, EPT violations), plus capacity eviction. SDM Vol. 3A 4.10.4, Vol. 3C 28.3.
import { beforeEach, describe, expect, it } from 'vitest';
import { guestLinear, l1gpa, l2gpa, type L1Gpa, type L2Gpa } from '../../../../src/cpu/address.js';
import { Tlb } from '../../../../src/cpu/tlb.js';
import type { PageSize } from '../../../../src/cpu/paging/types.js';

const RIGHTS = { user: true, writable: true, executeDisable: false, protectionKey: 0 };
const PERMS = { read: true, write: true, execute: true, userExecute: true };
const R = { write: false };

let tlb: Tlb<L2Gpa, L1Gpa>;
const lin = (vpid: number, pcid: number, base: bigint, phys: bigint, o: { global?: boolean; dirty?: boolean; size?: PageSize } = {}): void =>
  tlb.fillLinear({ vpid, pcid, base: guestLinear(base), pageSize: o.size ?? '4K', phys: l1gpa(phys), rights: RIGHTS, global: o.global ?? false, dirty: o.dirty ?? true, patIndex: 0 });
const comb = (vpid: number, pcid: number, eptrta: bigint, base: bigint, out: bigint, global = false): void =>
  tlb.fillCombined({ vpid, pcid, eptrta, base: guestLinear(base), pageSize: '4K', gpa: l2gpa(base), out: l1gpa(out), rights: RIGHTS, permissions: PERMS, global, dirty: true, patIndex: 0, memType: 6, ipat: false });
const gpa = (eptrta: bigint, base: bigint, out: bigint, dirty = true): void =>
  tlb.fillGuestPhysical({ eptrta, base: l2gpa(base), pageSize: '4K', out: l1gpa(out), permissions: PERMS, memType: 6, ipat: false, dirty });
const hitL = (vpid: number, pcid: number, a: bigint, write = false): bigint | undefined => tlb.lookupLinear(vpid, pcid, guestLinear(a), { write })?.address;
const hitC = (vpid: number, pcid: number, eptrta: bigint, a: bigint): bigint | undefined => tlb.lookupCombined(vpid, pcid, eptrta, guestLinear(a), R)?.address;
const hitG = (eptrta: bigint, a: bigint, write = false): bigint | undefined => tlb.lookupGuestPhysical(eptrta, l2gpa(a), { write })?.address;

beforeEach(() => {
  tlb = new Tlb<L2Gpa, L1Gpa>();
});

describe('lookups', () => {
  it('are tagged by VPID and PCID; global entries serve every PCID of their VPID only', () => {
    lin(1, 3, 0x1000n, 0x9000n);
    lin(1, 0, 0x2000n, 0xa000n, { global: true });
    expect(hitL(1, 3, 0x1234n)).toBe(0x9234n);
    expect(hitL(1, 4, 0x1234n)).toBeUndefined();
    expect(hitL(2, 3, 0x1234n)).toBeUndefined();
    expect(hitL(1, 7, 0x2008n)).toBe(0xa008n);
    expect(hitL(2, 0, 0x2008n)).toBeUndefined();
  });

  it('find large pages and refuse clean entries for writes', () => {
    lin(0, 0, 0x20_0000n, 0x4000_0000n, { size: '2M', dirty: false });
    expect(hitL(0, 0, 0x3f_fff0n)).toBe(0x401f_fff0n);
    expect(hitL(0, 0, 0x3f_fff0n, true)).toBeUndefined();
    gpa(0x1000n, 0x5000n, 0x9000n, false);
    expect(hitG(0x1000n, 0x5000n, true)).toBeUndefined();
    expect(hitG(0x1000n, 0x5000n)).toBe(0x9000n);
    expect(hitG(0x2000n, 0x5000n)).toBeUndefined();
  });

  it('reject unaligned fills as caller bugs', () => {
    expect(() => lin(0, 0, 0x1800n, 0x9000n)).toThrow(/unaligned/);
    expect(() => lin(0, 0, 0x20_0000n, 0x1000n, { size: '2M' })).toThrow(/unaligned/);
  });
});

describe('invalidation scopes', () => {
  it('INVLPG drops the page for the VPID, globals and large pages included, and keeps others', () => {
    lin(1, 0, 0x1000n, 0x9000n, { global: true });
    lin(1, 0, 0x0n, 0x4000_0000n, { size: '1G' });
    lin(1, 0, 0x5000_0000n, 0xb000n);
    lin(2, 0, 0x1000n, 0xc000n);
    comb(1, 0, 0x7000n, 0x1000n, 0xd000n);
    tlb.invlpg(1, guestLinear(0x1fffn));
    expect(hitL(1, 0, 0x1000n)).toBeUndefined(); // neither the global 4 KiB nor the 1 GiB page serve it
    expect(hitL(1, 0, 0x2000n)).toBeUndefined(); // the 1 GiB page covered 0x1fff too
    expect(hitL(1, 0, 0x5000_0000n)).toBe(0xb000n);
    expect(hitL(2, 0, 0x1000n)).toBe(0xc000n);
    expect(hitC(1, 0, 0x7000n, 0x1000n)).toBeUndefined();
  });

  it('MOV to CR3 drops non-global entries of PCID 0 (PCIDE = 0) or of the new PCID unless bit 63 was set', () => {
    lin(1, 0, 0x1000n, 0x9000n);
    lin(1, 0, 0x2000n, 0xa000n, { global: true });
    lin(1, 5, 0x3000n, 0xb000n);
    tlb.movToCr3(1, { pcide: false, pcid: 0, noFlush: false });
    expect([hitL(1, 0, 0x1000n), hitL(1, 0, 0x2000n), hitL(1, 5, 0x3000n)]).toEqual([undefined, 0xa000n, 0xb000n]);
    tlb.movToCr3(1, { pcide: true, pcid: 5, noFlush: true });
    expect(hitL(1, 5, 0x3000n)).toBe(0xb000n);
    tlb.movToCr3(1, { pcide: true, pcid: 5, noFlush: false });
    expect(hitL(1, 5, 0x3000n)).toBeUndefined();
    expect(hitL(1, 5, 0x2000n)).toBe(0xa000n);
    tlb.flushVpid(1, { includeGlobal: true });
    expect(hitL(1, 5, 0x2000n)).toBeUndefined();
  });

  it('INVPCID types 0–3', () => {
    const fill = (): void => {
      tlb.flushAll();
      lin(1, 2, 0x1000n, 0x9000n);
      lin(1, 2, 0x2000n, 0xa000n);
      lin(1, 3, 0x1000n, 0xb000n);
      lin(1, 0, 0x4000n, 0xc000n, { global: true });
    };
    fill();
    tlb.invpcid(1, 0, 2, guestLinear(0x1000n));
    expect([hitL(1, 2, 0x1000n), hitL(1, 2, 0x2000n), hitL(1, 3, 0x1000n), hitL(1, 2, 0x4000n)]).toEqual([undefined, 0xa000n, 0xb000n, 0xc000n]);
    fill();
    tlb.invpcid(1, 1, 2);
    expect([hitL(1, 2, 0x1000n), hitL(1, 2, 0x2000n), hitL(1, 3, 0x1000n), hitL(1, 2, 0x4000n)]).toEqual([undefined, undefined, 0xb000n, 0xc000n]);
    fill();
    tlb.invpcid(1, 3, 0);
    expect([hitL(1, 3, 0x1000n), hitL(1, 2, 0x4000n)]).toEqual([undefined, 0xc000n]);
    tlb.invpcid(1, 2, 0);
    expect(hitL(1, 2, 0x4000n)).toBeUndefined();
  });

  it('INVVPID types 0–3 act on linear and combined mappings of every PCID and EPTRTA', () => {
    const fill = (): void => {
      tlb.flushAll();
      lin(1, 0, 0x1000n, 0x9000n);
      lin(1, 4, 0x2000n, 0xa000n, { global: true });
      lin(2, 0, 0x1000n, 0xb000n);
      lin(0, 0, 0x1000n, 0xe000n);
      comb(1, 9, 0x7000n, 0x1000n, 0xc000n);
      comb(1, 9, 0x8000n, 0x3000n, 0xd000n, true);
      gpa(0x7000n, 0x1000n, 0xf000n);
    };
    fill();
    tlb.invvpid(0, 1, guestLinear(0x1abcn));
    expect([hitL(1, 0, 0x1000n), hitC(1, 9, 0x7000n, 0x1000n), hitL(1, 4, 0x2000n), hitL(2, 0, 0x1000n)]).toEqual([undefined, undefined, 0xa000n, 0xb000n]);
    fill();
    tlb.invvpid(1, 1);
    expect([hitL(1, 4, 0x2000n), hitC(1, 9, 0x8000n, 0x3000n), hitL(2, 0, 0x1000n), hitG(0x7000n, 0x1000n)]).toEqual([undefined, undefined, 0xb000n, 0xf000n]);
    fill();
    tlb.invvpid(2, 0);
    expect([hitL(1, 0, 0x1000n), hitL(2, 0, 0x1000n), hitL(0, 0, 0x1000n), hitG(0x7000n, 0x1000n)]).toEqual([undefined, undefined, 0xe000n, 0xf000n]);
    fill();
    tlb.invvpid(3, 1);
    expect([hitL(1, 0, 0x1000n), hitL(1, 4, 0x2000n), hitC(1, 9, 0x7000n, 0x1000n), hitC(1, 9, 0x8000n, 0x3000n)]).toEqual([undefined, 0xa000n, undefined, 0xd000n]);
  });

  it('INVEPT single-context drops guest-physical and combined mappings of one EPTRTA; all-context of every one', () => {
    gpa(0x7000n, 0x1000n, 0x9000n);
    gpa(0x8000n, 0x1000n, 0xa000n);
    comb(1, 0, 0x7000n, 0x1000n, 0xb000n);
    comb(2, 0, 0x8000n, 0x1000n, 0xc000n);
    lin(1, 0, 0x1000n, 0xd000n);
    tlb.invept(1, 0x7000n);
    expect([hitG(0x7000n, 0x1000n), hitG(0x8000n, 0x1000n), hitC(1, 0, 0x7000n, 0x1000n), hitC(2, 0, 0x8000n, 0x1000n), hitL(1, 0, 0x1000n)])
      .toEqual([undefined, 0xa000n, undefined, 0xc000n, 0xd000n]);
    tlb.invept(2);
    expect([hitG(0x8000n, 0x1000n), hitC(2, 0, 0x8000n, 0x1000n), hitL(1, 0, 0x1000n)]).toEqual([undefined, undefined, 0xd000n]);
  });

  it('VM entry/exit with VPID disabled flush VPID 0 linear and combined mappings, never guest-physical ones', () => {
    lin(0, 0, 0x1000n, 0x9000n, { global: true });
    comb(0, 0, 0x7000n, 0x2000n, 0xa000n);
    lin(1, 0, 0x1000n, 0xb000n);
    gpa(0x7000n, 0x2000n, 0xc000n);
    tlb.vmTransition({ vpidEnabled: true });
    expect(hitL(0, 0, 0x1000n)).toBe(0x9000n);
    tlb.vmTransition({ vpidEnabled: false });
    expect([hitL(0, 0, 0x1000n), hitC(0, 0, 0x7000n, 0x2000n), hitL(1, 0, 0x1000n), hitG(0x7000n, 0x2000n)]).toEqual([undefined, undefined, 0xb000n, 0xc000n]);
  });

  it('an EPT violation drops the guest-physical mapping of its address and the combined mapping of its linear address', () => {
    gpa(0x7000n, 0x5000n, 0x9000n);
    gpa(0x7000n, 0x6000n, 0xa000n);
    comb(1, 0, 0x7000n, 0x1000n, 0xb000n);
    comb(1, 0, 0x7000n, 0x3000n, 0xc000n);
    tlb.eptViolation(0x7000n, l2gpa(0x5008n), { vpid: 1, linear: guestLinear(0x1008n) });
    expect([hitG(0x7000n, 0x5000n), hitG(0x7000n, 0x6000n), hitC(1, 0, 0x7000n, 0x1000n), hitC(1, 0, 0x7000n, 0x3000n)]).toEqual([undefined, 0xa000n, undefined, 0xc000n]);
  });

  it('evicts the oldest entry beyond capacity', () => {
    tlb = new Tlb<L2Gpa, L1Gpa>({ capacity: 2 });
    lin(0, 0, 0x1000n, 0x9000n);
    lin(0, 0, 0x2000n, 0xa000n);
    lin(0, 0, 0x1000n, 0x9000n); // refill moves it to the young end
    lin(0, 0, 0x3000n, 0xb000n);
    expect([hitL(0, 0, 0x1000n), hitL(0, 0, 0x2000n), hitL(0, 0, 0x3000n)]).toEqual([0x9000n, undefined, 0xb000n]);
    expect(tlb.size).toEqual({ linear: 2, guestPhysical: 0, combined: 0 });
  });
});
