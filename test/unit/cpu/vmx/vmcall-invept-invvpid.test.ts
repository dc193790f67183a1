// VMCALL in root operation (VMfail(1)), INVEPT and INVVPID: #UD without the capability, the common
// prerequisites, error 28 for every invalid-operand row of reference §2.3, the invalidation reported on success,
// and the SDM order (type check before the descriptor is read).
import { describe, expect, it } from 'vitest';
import { Seg } from '../../../../src/cpu/state.js';
import { flagsPattern } from '../../../../src/cpu/vmx/outcome.js';
import { CORE2, DATA, SKYLAKE, expectKind, inVmx, processor } from './helpers.js';

const desc = (lo: bigint, hi = 0n) => (hi << 64n) | lo;
/** A valid EPTP for skylake: WB (6), 4-level walk (3 << 3), root at 0x5000. */
const EPTP = 0x5000n | (3n << 3n) | 6n;
const BAD = { segment: Seg.DS, offset: 1n << 63n } as const;

describe('VMCALL in VMX root operation', () => {
  it('#UD outside VMX operation', () => {
    expect(processor().p.vmcall()).toEqual({ kind: 'fault', vector: 6 });
  });
  it('#UD in compatibility mode, #GP(0) at CPL > 0', () => {
    const { p } = inVmx();
    p.state.segAr[Seg.CS] = 0xc09b;
    expect(p.vmcall()).toEqual({ kind: 'fault', vector: 6 });
    p.state.segAr[Seg.CS] = 0xa09b;
    p.state.segAr[Seg.SS] = 0xc0f3;
    expect(p.vmcall()).toEqual({ kind: 'fault', vector: 13, errorCode: 0 });
  });
  it('VMfail(1): invalid without a current VMCS, valid with one', () => {
    const none = inVmx(SKYLAKE, false);
    expect(none.p.vmcall()).toEqual({ kind: 'vmfail-invalid' });
    const cur = inVmx();
    expect(cur.p.vmcall()).toEqual({ kind: 'vmfail-valid', error: 1 });
    expect(flagsPattern(cur.p.state.rflags)).toBe('fail-valid');
  });
});

describe('INVEPT', () => {
  it('#UD when EPT/INVEPT is not supported (core2), even in VMX operation', () => {
    const { p } = inVmx(CORE2);
    expect(p.invept(2n, 0n)).toEqual({ kind: 'fault', vector: 6 });
  });
  it('#UD outside VMX operation, #GP(0) at CPL > 0', () => {
    expect(processor().p.invept(2n, 0n)).toEqual({ kind: 'fault', vector: 6 });
    const { p } = inVmx();
    p.state.segAr[Seg.SS] = 0xc0f3;
    expect(p.invept(2n, 0n)).toEqual({ kind: 'fault', vector: 13, errorCode: 0 });
  });
  it('error 28 for an unsupported type, checked before the descriptor is read', () => {
    const { p } = inVmx();
    for (const t of [0n, 3n, 32n, 1n << 40n]) expect(p.invept(t, BAD), `type ${t}`).toEqual({ kind: 'vmfail-valid', error: 28 });
    const none = inVmx(SKYLAKE, false);
    expect(none.p.invept(0n, BAD)).toEqual({ kind: 'vmfail-invalid' });
  });
  it('a supported type reads the descriptor: a bad memory operand faults', () => {
    const { p } = inVmx();
    expect(p.invept(1n, BAD)).toEqual({ kind: 'fault', vector: 13, errorCode: 0 });
  });
  it('error 28 for single-context with an EPTP VM entry would reject', () => {
    const { p } = inVmx();
    expect(p.invept(1n, desc((EPTP & ~7n) | 1n))).toEqual({ kind: 'vmfail-valid', error: 28 }); // memory type 1 (WC) is never valid
    expect(p.invept(1n, desc((EPTP & ~0x38n) | (1n << 3n)))).toEqual({ kind: 'vmfail-valid', error: 28 }); // 2-level walk
    expect(p.invept(1n, desc(EPTP | (1n << 45n)))).toEqual({ kind: 'vmfail-valid', error: 28 }); // beyond MAXPHYADDR 39
  });
  it('success reports the invalidation', () => {
    const { p, mem } = inVmx();
    expect(p.invept(1n, desc(EPTP, 0xffffn))).toEqual({ kind: 'vmsucceed', invalidation: { kind: 'ept-single-context', eptp: EPTP } });
    expect(p.invept(2n, desc(0xdeadn))).toEqual({ kind: 'vmsucceed', invalidation: { kind: 'ept-all-context' } });
    mem.write(DATA, 8, EPTP);
    mem.write(DATA + 8n, 8, 0n);
    expect(p.invept(1n, { segment: Seg.DS, offset: DATA })).toEqual({ kind: 'vmsucceed', invalidation: { kind: 'ept-single-context', eptp: EPTP } });
    expect(flagsPattern(p.state.rflags)).toBe('succeed');
  });
  it('outside 64-bit mode only bits 31:0 of the type register count', () => {
    const { p } = inVmx();
    p.state.efer &= ~0x400n; // drop LMA: 32-bit register operands (the processor derives operand width from mode)
    p.state.segAr[Seg.CS] = 0xc09b;
    expect(p.invept((1n << 32n) | 2n, 0n)).toEqual({ kind: 'vmsucceed', invalidation: { kind: 'ept-all-context' } });
  });
});

describe('INVVPID', () => {
  it('#UD when VPID/INVVPID is not supported (core2)', () => {
    const { p } = inVmx(CORE2);
    expect(p.invvpid(1n, desc(1n))).toEqual({ kind: 'fault', vector: 6 });
  });
  it('error 28 for an unsupported type (before the descriptor is read)', () => {
    const { p } = inVmx();
    expect(p.invvpid(4n, BAD)).toEqual({ kind: 'vmfail-valid', error: 28 });
  });
  it('error 28 for descriptor bits 63:16 set', () => {
    const { p } = inVmx();
    expect(p.invvpid(2n, desc(0x1_0001n))).toEqual({ kind: 'vmfail-valid', error: 28 });
  });
  it('error 28 for VPID 0 with types 0, 1 and 3; type 2 accepts it', () => {
    const { p } = inVmx();
    for (const t of [0n, 1n, 3n]) expect(p.invvpid(t, desc(0n)), `type ${t}`).toEqual({ kind: 'vmfail-valid', error: 28 });
    expect(p.invvpid(2n, desc(0n))).toEqual({ kind: 'vmsucceed', invalidation: { kind: 'vpid-all-context' } });
  });
  it('error 28 for a non-canonical address with type 0', () => {
    const { p } = inVmx();
    expect(p.invvpid(0n, desc(5n, 0x0000_8000_0000_0000n))).toEqual({ kind: 'vmfail-valid', error: 28 });
    expect(p.invvpid(0n, desc(5n, 0xffff_8000_0000_0000n))).toEqual({
      kind: 'vmsucceed', invalidation: { kind: 'vpid-individual-address', vpid: 5, linearAddress: 0xffff_8000_0000_0000n },
    });
  });
  it('types 1 and 3 report their VPID', () => {
    const { p } = inVmx();
    expect(p.invvpid(1n, desc(7n, 0x8000_0000_0000_0000n))).toEqual({ kind: 'vmsucceed', invalidation: { kind: 'vpid-single-context', vpid: 7 } });
    expect(p.invvpid(3n, desc(9n))).toEqual({ kind: 'vmsucceed', invalidation: { kind: 'vpid-single-context-retaining-globals', vpid: 9 } });
    expectKind(p.vmclear(0x2000n), 'vmsucceed');
    expect(p.invvpid(3n, desc(0n))).toEqual({ kind: 'vmfail-invalid' });
  });
});
