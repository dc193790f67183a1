// Guest paging under EPT: EPT faults during the guest walk (bit 7 = 1, bit 8 = 0), on A/D updates (writes), on the
// final access (bit 8 = 1, advanced bits, MBEC with the guest U/S), PDPTE loads (bit 7 = 0, reads even with EPT A/D),
// and guest A/D flags set only when the whole access succeeds. SDM Vol. 3C 28.2.3.2–28.2.3.3, 27.2.1.
import { describe, expect, it } from 'vitest';
import { guestLinear, L1_GPA, L2_GPA, l1gpa, l2gpa, type L1Gpa, type L2Gpa } from '../../../../src/cpu/address.js';
import { PhysicalMemory } from '../../../../src/cpu/memory.js';
import { Cr0, Cr4, Efer } from '../../../../src/cpu/state.js';
import { EptTableBuilder, type EptMapOptions } from '../../../../src/cpu/ept/builder.js';
import { eptConfig, makeEpt } from '../../../../src/cpu/ept/eptp.js';
import type { EptCapabilities } from '../../../../src/cpu/ept/types.js';
import { GuestPageTableBuilder } from '../../../../src/cpu/paging/builder.js';
import { loadPaePdptes } from '../../../../src/cpu/paging/pdpte.js';
import { eptPagingAccess, translateLinearUnderEpt } from '../../../../src/cpu/paging/under-ept.js';
import type { PagingControls } from '../../../../src/cpu/paging/types.js';

const CAPS: EptCapabilities = {
  maxPhysAddr: 46, executeOnly: true, walkLength4: true, walkLength5: false, memTypeUc: false, memTypeWb: true,
  pages2M: true, pages1G: true, accessedDirty: true, advancedExitInfo: true, supervisorShadowStack: false,
};

/** L2 guest paging structures at L2 GPAs 0x10_0000.., EPT12 in L1 memory at 0x800_0000.., data page L2 0x5000. */
function setup(options: { ad?: boolean; mbec?: boolean; tableRights?: EptMapOptions; dataRights?: EptMapOptions } = {}) {
  const l1 = new PhysicalMemory<L1Gpa>();
  const l2view = new PhysicalMemory<L2Gpa>(); // builder scratch in L2 space, copied into L1 memory through the identity offset
  const guest = new GuestPageTableBuilder<L2Gpa>({ mode: '4level', memory: l2view, space: L2_GPA, tableArea: { base: 0x10_0000n, pages: 8 } });
  guest.map(guestLinear(0x40_0000n), l2gpa(0x5000n), { user: true });
  const ept = new EptTableBuilder<L2Gpa, L1Gpa>({ memory: l1, inSpace: L2_GPA, outSpace: L1_GPA, tableArea: { base: 0x800_0000n, pages: 16 } });
  // L2 GPA g lives at L1 GPA g + 0x100_0000.
  for (const page of l2view.pageNumbers()) {
    const g = page << 12n;
    expect(l1.write(l1gpa(g + 0x100_0000n), l2view.read(l2gpa(g), 4096)).ok).toBe(true);
    expect(ept.map(l2gpa(g), l1gpa(g + 0x100_0000n), options.tableRights ?? {}).ok).toBe(true);
  }
  expect(ept.map(l2gpa(0x5000n), l1gpa(0x105_000n), options.dataRights ?? {}).ok).toBe(true);
  const h = makeEpt({ eptp: ept.eptp({ accessedDirty: options.ad ?? false }), config: eptConfig(CAPS, { modeBasedExecute: options.mbec ?? false }), tables: l1, inSpace: L2_GPA, outSpace: L1_GPA });
  if (!h.ok) throw new Error(h.error.message);
  const ctl: PagingControls = {
    cr0: Cr0.PE | Cr0.PG | Cr0.WP, cr3: guest.cr3, cr4: Cr4.PAE, efer: Efer.LMA | Efer.LME | Efer.NXE, rflags: 2n, pkru: 0, maxPhysAddr: 46,
  };
  const pteL1 = l1gpa((guest.entryAddress(guestLinear(0x40_0000n), 1)! as bigint) + 0x100_0000n);
  return { l1, ept: h.ept, ctl, guest, eptBuilder: ept, pteL1 };
}

describe('translateLinearUnderEpt', () => {
  it('translates linear → L2 GPA → L1 GPA and sets guest A/D in L1 memory', () => {
    const s = setup();
    const t = translateLinearUnderEpt(s.ctl, guestLinear(0x40_0123n), { kind: 'write', mode: 'user' }, s.ept, s.l1);
    expect(t.ok && [t.phys as bigint, t.final.out as bigint]).toEqual([0x5123n, 0x10_5123n]);
    expect(s.l1.readU64(s.pteL1) & 0x60n).toBe(0x60n);
  });

  it('an EPT violation reading a guest paging structure: bit 7 = 1, bit 8 = 0, the guest-physical address of the entry', () => {
    const s = setup({ tableRights: { read: false, write: false, execute: false } });
    const t = translateLinearUnderEpt(s.ctl, guestLinear(0x40_0000n), { kind: 'read', mode: 'user' }, s.ept, s.l1);
    if (t.ok || t.fault.kind !== 'violation') throw new Error('expected an EPT violation');
    expect(t.fault.gpa as bigint).toBe(s.guest.cr3); // the PML4 entry for linear 0x400000 is entry 0 of the PML4
    expect(t.fault.qualification).toBe(0x1n | 0x80n);
    expect(t.fault.linear as bigint).toBe(0x40_0000n);
  });

  it('A/D updates are EPT writes: a read-only guest table page faults on the update (bit 1), with EPT A/D on the read (bits 0, 1)', () => {
    const s = setup({ tableRights: { write: false } });
    const t = translateLinearUnderEpt(s.ctl, guestLinear(0x40_0000n), { kind: 'read', mode: 'user' }, s.ept, s.l1);
    if (t.ok || t.fault.kind !== 'violation') throw new Error('expected an EPT violation');
    expect(t.fault.qualification).toBe(0x2n | 0x8n | 0x20n | 0x80n);
    const withAd = setup({ tableRights: { write: false }, ad: true });
    const u = translateLinearUnderEpt(withAd.ctl, guestLinear(0x40_0000n), { kind: 'read', mode: 'user' }, withAd.ept, withAd.l1);
    if (u.ok || u.fault.kind !== 'violation') throw new Error('expected an EPT violation');
    expect(u.fault.qualification).toBe(0x3n | 0x8n | 0x20n | 0x80n);
  });

  it('a violation on the final access has bit 8 = 1 and advanced bits, and leaves guest A/D flags alone', () => {
    const s = setup({ dataRights: { write: false } });
    const t = translateLinearUnderEpt(s.ctl, guestLinear(0x40_0010n), { kind: 'write', mode: 'user' }, s.ept, s.l1, { nmiUnblocking: true });
    if (t.ok || t.fault.kind !== 'violation') throw new Error('expected an EPT violation');
    expect(t.fault.gpa as bigint).toBe(0x5010n);
    // write; R and X walked; linear valid; final; user-mode, writable linear address; NMI unblocking.
    expect(t.fault.qualification).toBe(0x2n | 0x8n | 0x20n | 0x80n | 0x100n | 0x200n | 0x400n | 0x1000n);
    expect(s.l1.readU64(s.pteL1) & 0x60n).toBe(0n);
  });

  it('with MBEC a fetch from a user-mode linear address needs XU', () => {
    const s = setup({ mbec: true, dataRights: { userExecute: false } });
    const t = translateLinearUnderEpt(s.ctl, guestLinear(0x40_0000n), { kind: 'fetch', mode: 'user' }, s.ept, s.l1);
    expect(!t.ok && t.fault.kind === 'violation' && t.fault.fields.fetch && !t.fault.fields.userExecutable).toBe(true);
  });

  it('loading PAE PDPTEs under EPT: bit 7 = 0, and a read even with EPT A/D', () => {
    const l1 = new PhysicalMemory<L1Gpa>();
    const eb = new EptTableBuilder<L2Gpa, L1Gpa>({ memory: l1, inSpace: L2_GPA, outSpace: L1_GPA, tableArea: { base: 0x800_0000n, pages: 8 } });
    expect(eb.map(l2gpa(0x3000n), l1gpa(0x9000n), { write: false }).ok).toBe(true);
    l1.writeU64(l1gpa(0x9000n), 0x4001n);
    const h = makeEpt({ eptp: eb.eptp({ accessedDirty: true }), config: eptConfig(CAPS), tables: l1, inSpace: L2_GPA, outSpace: L1_GPA });
    if (!h.ok) throw new Error(h.error.message);
    expect(loadPaePdptes(0x3000n, 46, L2_GPA, eptPagingAccess(h.ept, l1))).toEqual({ ok: true, pdptes: [0x4001n, 0n, 0n, 0n] });
    const miss = loadPaePdptes(0x7000n, 46, L2_GPA, eptPagingAccess(h.ept, l1));
    expect(!miss.ok && miss.fault.kind === 'violation' && [miss.fault.qualification, miss.fault.linear]).toEqual([0x1n, undefined]);
  });
});
