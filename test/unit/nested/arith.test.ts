// TSC fixed-point arithmetic (§5.3), MSR-bitmap layout and merge (§5.4), VPID mapping and flushes (§5.6), and the
// emulated preemption timer over an instruction-count clock (§5.5).
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { mulSignedOffset, nestedTscMultiplier, nestedTscOffset, scaleTsc, guestTsc, TSC_ONE } from '../../../src/nested/tsc.js';
import { mergeMsrBitmap, msrBitmapExits, msrBitmapPosition, nestedMsrPassthrough, setMsrBitmapBit } from '../../../src/nested/msr-bitmap.js';
import { invvpidFlush, nestedEntryVpid, nestedExitFlush } from '../../../src/nested/vpid.js';
import { preemptionDeadline, preemptionExpired, preemptionRemaining, savedPreemptionTimerValue } from '../../../src/nested/preemption-timer.js';
import { Pin, Primary, Secondary, ExitCtl } from '../../../src/cpu/generated/controls.js';
import { kvmProfile, sdmProfile } from '../../../src/nested/profile.js';
import { propertyParams } from '../../support/property.js';

describe('tsc', () => {
  it('scales with a 128-bit intermediate and wraps offsets modulo 2^64', () => {
    expect(scaleTsc(1n << 63n, 2n * TSC_ONE)).toBe(0n);
    expect(scaleTsc((1n << 63n) + 1n, TSC_ONE / 2n)).toBe(1n << 62n);
    expect(guestTsc(10n, BigInt.asUintN(64, -20n), TSC_ONE)).toBe(BigInt.asUintN(64, -10n));
  });
  it('scales a negative offset by magnitude (round toward zero)', () => {
    expect(mulSignedOffset(BigInt.asUintN(64, -3n), TSC_ONE / 2n)).toBe(BigInt.asUintN(64, -1n));
    expect(mulSignedOffset(3n, TSC_ONE / 2n)).toBe(1n);
  });
  it('keeps L1 values when vmcs12 does not scale', () => {
    expect(nestedTscMultiplier(5n * TSC_ONE, TSC_ONE)).toBe(5n * TSC_ONE);
    expect(nestedTscOffset(7n, TSC_ONE, 5n)).toBe(12n);
    expect(nestedTscMultiplier(3n * TSC_ONE, TSC_ONE / 4n)).toBe((3n * TSC_ONE) / 4n);
  });
});

describe('msr bitmap', () => {
  it('positions: read-low, read-high, write-low, write-high; outside the ranges always exits', () => {
    expect(msrBitmapPosition(0x10, false)).toEqual({ byte: 2, bit: 0 });
    expect(msrBitmapPosition(0xc000_0082, false)).toEqual({ byte: 1024 + 16, bit: 2 });
    expect(msrBitmapPosition(0x1fff, true)).toEqual({ byte: 2048 + 1023, bit: 7 });
    expect(msrBitmapPosition(0xc000_1fff, true)).toEqual({ byte: 4095, bit: 7 });
    expect(msrBitmapPosition(0x2000, false)).toBeNull();
    expect(msrBitmapExits(new Uint8Array(4096), 0x4000_0000, false)).toBe(true);
  });
  it('exit02 ⊇ exit01 ∪ exit12 for every MSR and direction; pass-through only where both pass', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 4096, maxLength: 4096 }), fc.uint8Array({ minLength: 4096, maxLength: 4096 }), fc.nat({ max: 0xffff_ffff }), fc.nat({ max: 0xffff_ffff }), (b01, b12, sec, msr) => {
        const merged = mergeMsrBitmap(b01, b12, nestedMsrPassthrough(sec));
        for (const m of [msr, msr & 0x1fff, 0xc000_0000 + (msr & 0x1fff), 0xc000_0100, 0x808, 0x48]) {
          for (const w of [false, true]) {
            if (msrBitmapExits(b01, m, w) || msrBitmapExits(b12, m, w)) expect(msrBitmapExits(merged, m, w)).toBe(true);
          }
        }
      }),
      propertyParams({ numRuns: 200 }),
    );
  });
  it('clears FS_BASE only when both L0 and L1 pass it; x2APIC TPR only with virtualize-x2APIC', () => {
    const b01 = new Uint8Array(4096);
    const b12 = new Uint8Array(4096);
    const merged = mergeMsrBitmap(b01, b12, nestedMsrPassthrough(0));
    expect(msrBitmapExits(merged, 0xc000_0100, true)).toBe(false);
    expect(msrBitmapExits(merged, 0x808, false)).toBe(true);
    expect(msrBitmapExits(merged, 0x10, false)).toBe(true);
    setMsrBitmapBit(b12, 0xc000_0100, true, true);
    expect(msrBitmapExits(mergeMsrBitmap(b01, b12, nestedMsrPassthrough(0)), 0xc000_0100, true)).toBe(true);
    expect(msrBitmapExits(mergeMsrBitmap(b01, b12, nestedMsrPassthrough(Secondary.VIRTUALIZE_X2APIC_MODE)), 0x808, false)).toBe(false);
  });
});

describe('vpid (§5.6)', () => {
  const pri = Primary.ACTIVATE_SECONDARY_CONTROLS;
  it('vmcs12 without VPID: L2 on vpid01, flushed at entry and exit', () => {
    expect(nestedEntryVpid(pri, 0, 5, 1, 2, null)).toEqual({ vpid: 1, flush: { kind: 'context', vpid: 1 }, lastVpid12: null, rule: 'vpid.l2-shares-vpid01' });
    expect(nestedExitFlush(pri, 0, 1, 2)).toEqual({ kind: 'context', vpid: 1 });
  });
  it('vmcs12 with VPID: vpid02, flushed only when vpid12 changes', () => {
    expect(nestedEntryVpid(pri, Secondary.ENABLE_VPID, 5, 1, 2, 4).flush).toEqual({ kind: 'context', vpid: 2 });
    expect(nestedEntryVpid(pri, Secondary.ENABLE_VPID, 5, 1, 2, 5)).toEqual({ vpid: 2, flush: { kind: 'none' }, lastVpid12: 5, rule: 'vpid.vpid02-same-vpid12' });
    expect(nestedEntryVpid(pri, Secondary.ENABLE_VPID, 5, 1, null, 5).rule).toBe('vpid.no-vpid02');
    expect(nestedEntryVpid(0, Secondary.ENABLE_VPID, 5, 1, 2, 5).rule).toBe('vpid.l2-shares-vpid01');
    expect(nestedExitFlush(pri, Secondary.ENABLE_VPID, 1, 2)).toEqual({ kind: 'none' });
  });
  it('INVVPID flushes vpid02 (address for type 0, context otherwise)', () => {
    expect(invvpidFlush(0, 0x1000n, 1, 2)).toEqual({ kind: 'address', vpid: 2, address: 0x1000n });
    expect(invvpidFlush(3, 0n, 1, 2)).toEqual({ kind: 'context', vpid: 2 });
    expect(invvpidFlush(2, 0n, 1, null)).toEqual({ kind: 'context', vpid: 1 });
  });
});

describe('preemption timer (§5.5)', () => {
  it('counts down once per 2^rate TSC ticks from the entry', () => {
    const d = preemptionDeadline(10, 1000n, 5);
    expect(d).toBe(10n + (1000n >> 5n));
    expect(preemptionRemaining(d, 1000n, 5)).toBe(10);
    expect(preemptionRemaining(d, 1000n + 32n * 3n, 5)).toBe(7);
    expect(preemptionExpired(d, 1000n + 32n * 11n, 5)).toBe(true);
    expect(preemptionExpired(preemptionDeadline(0, 77n, 5), 77n, 5)).toBe(true);
  });
  it('saves the remaining value when vmcs12 asks; kvm skips it while the entry is pending (N6)', () => {
    const pin = Pin.ACTIVATE_VMX_PREEMPTION_TIMER;
    const exit = ExitCtl.SAVE_VMX_PREEMPTION_TIMER_VALUE;
    expect(savedPreemptionTimerValue(pin, exit, 50n, 40n << 5n, false, sdmProfile())).toBe(10);
    expect(savedPreemptionTimerValue(pin, 0, 50n, 40n << 5n, false, sdmProfile())).toBeNull();
    expect(savedPreemptionTimerValue(pin, exit, 50n, 40n << 5n, true, kvmProfile())).toBeNull();
    expect(savedPreemptionTimerValue(pin, exit, 50n, 60n << 5n, true, sdmProfile())).toBe(0);
  });
});
