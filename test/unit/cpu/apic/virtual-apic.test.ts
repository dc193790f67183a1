// VirtualApic over an in-memory virtual-APIC page: PPR virtualization, EOI virtualization with several in-service
// vectors, recognition of pending virtual interrupts (blocked by interrupt-window exiting), posted-interrupt descriptor
// processing, x2APIC MSR virtualization and the self-IPI filter. Expectations from SDM Vol. 3C 29.1–29.6.
import { describe, expect, it } from 'vitest';
import { VirtualApic, vectorSlot, type VirtualApicSettings } from '../../../../src/cpu/apic/virtual-apic.js';
import { isVirtualizableSelfIpi, type ApicVirtControls } from '../../../../src/cpu/apic/apic-access.js';

const VAPIC = 0x5000n;
const DESC = 0x9000n;

interface Harness {
  readonly apic: VirtualApic;
  readonly mem: Map<bigint, number>;
  readonly status: number[];
}

const ALL: ApicVirtControls = {
  useTprShadow: true, virtualizeApicAccesses: false, virtualizeX2apic: true, apicRegisterVirtualization: true,
  virtualInterruptDelivery: true, processPostedInterrupts: true,
};

function make(over: Partial<VirtualApicSettings> = {}, controls: Partial<ApicVirtControls> = {}): Harness {
  const mem = new Map<bigint, number>();
  const status: number[] = [];
  const s: VirtualApicSettings = {
    controls: { ...ALL, ...controls }, interruptWindowExiting: false, tprThreshold: 0, virtualApicAddress: VAPIC,
    apicAccessAddress: 0xfee0_0000n, eoiExitBitmap: [0n, 0n, 0n, 0n], guestInterruptStatus: 0, postedNotificationVector: 0xf2,
    postedDescriptorAddress: DESC, ...over,
  };
  const apic = new VirtualApic(s, {
    readPhys32: (a) => mem.get(a) ?? 0,
    writePhys32: (a, v) => mem.set(a, v >>> 0),
    saveGuestInterruptStatus: (v) => status.push(v),
  });
  return { apic, mem, status };
}

function setVector(h: Harness, base: number, v: number): void {
  const { offset, bit } = vectorSlot(base, v);
  const a = VAPIC + BigInt(offset);
  h.mem.set(a, ((h.mem.get(a) ?? 0) | (1 << bit)) >>> 0);
}

describe('PPR virtualization and evaluation (SDM 29.1.3, 29.2.1)', () => {
  it('VPPR = VTPR when VTPR[7:4] ≥ SVI[7:4], else SVI & F0H', () => {
    const h = make({ guestInterruptStatus: 0x5300 });
    h.mem.set(VAPIC + 0x80n, 0x6a);
    h.apic.pprVirtualization();
    expect(h.mem.get(VAPIC + 0xa0n)).toBe(0x6a);
    h.mem.set(VAPIC + 0x80n, 0x4a);
    h.apic.pprVirtualization();
    expect(h.mem.get(VAPIC + 0xa0n)).toBe(0x50);
  });

  it('a virtual interrupt is recognized iff RVI[7:4] > VPPR[7:4] and interrupt-window exiting is 0', () => {
    const h = make({ guestInterruptStatus: 0x0051 });
    h.mem.set(VAPIC + 0x80n, 0x40);
    h.apic.onVmEntry();
    expect(h.apic.pendingVirtualInterrupt).toBe(true);
    h.mem.set(VAPIC + 0x80n, 0x50);
    expect(h.apic.tprVirtualization()).toBeNull();
    expect(h.apic.pendingVirtualInterrupt).toBe(false);
    const w = make({ guestInterruptStatus: 0x0051, interruptWindowExiting: true });
    w.apic.onVmEntry();
    expect(w.apic.pendingVirtualInterrupt).toBe(false);
  });

  it('without virtual-interrupt delivery TPR virtualization is the threshold check', () => {
    const h = make({ tprThreshold: 4 }, { virtualInterruptDelivery: false });
    h.mem.set(VAPIC + 0x80n, 0x30);
    expect(h.apic.tprVirtualization()).toEqual({ reason: 43, qualification: 0n });
    h.mem.set(VAPIC + 0x80n, 0x40);
    expect(h.apic.tprVirtualization()).toBeNull();
  });
});

describe('delivery and EOI bookkeeping (SDM 29.2.2, 29.1.4)', () => {
  it('delivery moves RVI into VISR/SVI and picks the next VIRR vector as RVI', () => {
    const h = make({ guestInterruptStatus: 0x0061 });
    setVector(h, 0x200, 0x61);
    setVector(h, 0x200, 0x35);
    h.apic.onVmEntry();
    expect(h.apic.beginVirtualInterruptDelivery()).toBe(0x61);
    expect([h.apic.rvi, h.apic.svi]).toEqual([0x35, 0x61]);
    expect(h.mem.get(VAPIC + 0xa0n)).toBe(0x60);
    expect(h.status.at(-1)).toBe(0x6135);
    // VPPR now masks 35H: nothing more is recognized until EOI.
    expect(h.apic.pendingVirtualInterrupt).toBe(false);
  });

  it('EOI clears the SVI vector, SVI becomes the next in-service vector, and the EOI-exit bitmap selects the exit', () => {
    const h = make({ guestInterruptStatus: 0x9100, eoiExitBitmap: [0n, 0n, 1n << BigInt(0x91 - 128), 0n] });
    setVector(h, 0x100, 0x91);
    setVector(h, 0x100, 0x22);
    expect(h.apic.eoiVirtualization()).toEqual({ reason: 45, qualification: 0x91n });
    expect(h.apic.svi).toBe(0x22);
    expect(h.apic.highestVector(0x100)).toBe(0x22);
    expect(h.apic.eoiVirtualization()).toBeNull();
    expect([h.apic.svi, h.apic.highestVector(0x100)]).toEqual([0, undefined]);
  });
});

describe('posted-interrupt processing (SDM 29.6)', () => {
  it('ON cleared, PIR ORed into VIRR and cleared, RVI = max(RVI, highest PIR vector), then evaluation', () => {
    const h = make({ guestInterruptStatus: 0x0030 });
    h.mem.set(DESC + 4n, 1 << (0x28 & 31)); // PIR[28H]
    h.mem.set(DESC + 12n, 1 << (0x70 & 31)); // PIR[70H]
    h.mem.set(DESC + 32n, 0x3); // ON | SN
    setVector(h, 0x200, 0x30);
    expect(h.apic.isPostedNotification(0xf2)).toBe(true);
    expect(h.apic.isPostedNotification(0xf3)).toBe(false);
    h.apic.processPostedInterrupts();
    expect(h.mem.get(DESC + 32n)).toBe(0x2);
    expect([h.mem.get(DESC + 4n), h.mem.get(DESC + 12n)]).toEqual([0, 0]);
    expect(h.apic.rvi).toBe(0x70);
    expect(h.mem.get(VAPIC + 0x230n)).toBe(1 << (0x70 & 31));
    expect(h.mem.get(VAPIC + 0x210n)).toBe(((1 << (0x28 & 31)) | (1 << (0x30 & 31))) >>> 0);
    expect(h.apic.pendingVirtualInterrupt).toBe(true);
  });

  it('an empty PIR leaves RVI as it was', () => {
    const h = make({ guestInterruptStatus: 0x0030 });
    h.apic.processPostedInterrupts();
    expect(h.apic.rvi).toBe(0x30);
  });

  it('notification needs "process posted interrupts"', () => {
    expect(make({}, { processPostedInterrupts: false }).apic.isPostedNotification(0xf2)).toBe(false);
  });
});

describe('x2APIC MSRs (SDM 29.5)', () => {
  it('with APIC-register virtualization RDMSR reads 8 bytes at (ECX & FFH) << 4, PPR included; TMCCT is not virtualized', () => {
    const h = make();
    h.mem.set(VAPIC + 0xa0n, 0x40);
    h.mem.set(VAPIC + 0xa4n, 0x1);
    expect(h.apic.rdmsr(0x80a)).toBe(0x1_0000_0040n);
    expect(h.apic.rdmsr(0x839)).toBeUndefined();
    expect(h.apic.rdmsr(0x80b)).toBeUndefined();
  });

  it('without APIC-register virtualization only 808H (TPR) is read from the page', () => {
    const h = make({}, { apicRegisterVirtualization: false });
    h.mem.set(VAPIC + 0x80n, 0x20);
    expect(h.apic.rdmsr(0x808)).toBe(0x20n);
    expect(h.apic.rdmsr(0x802)).toBeUndefined();
  });

  it('WRMSR: TPR and SELF IPI need bits 63:8 clear, EOI needs 0; without VID only TPR is virtualized', () => {
    const h = make();
    expect(h.apic.wrmsr(0x808, 0x100n)).toEqual({ kind: 'gp' });
    expect(h.apic.wrmsr(0x80b, 1n)).toEqual({ kind: 'gp' });
    expect(h.apic.wrmsr(0x83f, 1n << 32n)).toEqual({ kind: 'gp' });
    expect(h.apic.wrmsr(0x83f, 0x45n)).toEqual({ kind: 'done', trap: null });
    expect([h.apic.rvi, h.mem.get(VAPIC + 0x3f0n)]).toEqual([0x45, 0x45]);
    // Vectors below 16 are not virtualized: the write lands on the page, then an APIC-write exit with offset 3F0H.
    expect(h.apic.wrmsr(0x83f, 0x0fn)).toEqual({ kind: 'done', trap: { reason: 56, qualification: 0x3f0n } });
    expect([h.apic.rvi, h.mem.get(VAPIC + 0x3f0n)]).toEqual([0x45, 0x0f]);
    const noVid = make({}, { virtualInterruptDelivery: false });
    expect(noVid.apic.wrmsr(0x80b, 0n)).toBeUndefined();
    expect(noVid.apic.wrmsr(0x808, 0x10n)).toEqual({ kind: 'done', trap: null });
    expect(make({}, { virtualizeX2apic: false }).apic.wrmsr(0x808, 0n)).toBeUndefined();
  });
});

describe('self-IPI filter for ICR-low writes (SDM 29.4.3.2)', () => {
  it.each([
    [0x0004_0061, true], // self shorthand, fixed, edge, vector 61H
    [0x0004_000f, false], // vector < 16
    [0x0000_0061, false], // no shorthand
    [0x000c_0061, false], // all-excluding-self
    [0x0004_8061, false], // level trigger
    [0x0004_0161, false], // lowest-priority delivery mode
    [0x0004_1061, false], // delivery status
    [0x0014_0061, false], // reserved bit 20
    [0x0004_4861, true], // level assert (14) and logical destination (11) are not checked
  ])('ICR low %s → %s', (icr, ok) => {
    expect(isVirtualizableSelfIpi(icr)).toBe(ok);
  });
});
