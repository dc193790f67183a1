// VMCLEAR, VMPTRLD and VMPTRST: each row of reference §2.3 (errors 2, 3, 9, 10, 11, the VMfail selection, the
// common prerequisite rows P1-P4) plus the caching behaviour of SDM 24.11 (active VMCSs, flush on VMCLEAR).
import { describe, expect, it } from 'vitest';
import { Field } from '../../../../src/cpu/generated/vmcs-fields.js';
import { Seg } from '../../../../src/cpu/state.js';
import { flagsPattern } from '../../../../src/cpu/vmx/outcome.js';
import { INVALID_VMCS_POINTER } from '../../../../src/cpu/vmx/processor.js';
import { regionLayout } from '../../../../src/cpu/vmx/vmcs-region.js';
import { CORE2, DATA, SKYLAKE, VMCS_A, VMCS_B, VMXON_PTR, expectKind, inVmx, processor } from './helpers.js';

const GUEST_RIP = BigInt(Field.GUEST_RIP);

describe('common prerequisites (reference §2.2 P1-P4)', () => {
  it('P1 #UD outside VMX operation, in compatibility mode, with RFLAGS.VM', () => {
    const { p } = processor();
    expect(p.vmclear(VMCS_A)).toEqual({ kind: 'fault', vector: 6 });
    expect(p.vmptrld(VMCS_A)).toEqual({ kind: 'fault', vector: 6 });
    expect(p.vmptrst()).toEqual({ kind: 'fault', vector: 6 });
    const { p: q } = inVmx();
    q.state.segAr[Seg.CS] = 0xc09b; // CS.L = 0 with EFER.LMA = 1
    expect(q.vmptrld(VMCS_A)).toEqual({ kind: 'fault', vector: 6 });
  });

  it('P3 #GP(0) at CPL > 0, before the memory operand is read', () => {
    const { p } = inVmx();
    p.state.segAr[Seg.SS] = 0xc0f3;
    const before = p.state.rflags;
    expect(p.vmclear({ segment: Seg.DS, offset: 1n << 63n })).toEqual({ kind: 'fault', vector: 13, errorCode: 0 });
    expect(p.state.rflags).toBe(before);
  });

  it('P4 memory-operand faults precede the pointer checks', () => {
    const { p } = inVmx();
    const before = p.state.rflags;
    expect(p.vmptrld({ segment: Seg.SS, offset: 1n << 63n })).toEqual({ kind: 'fault', vector: 12, errorCode: 0 });
    expect(p.state.rflags).toBe(before);
  });
});

describe('VMCLEAR', () => {
  it('error 2 for a misaligned pointer or one beyond MAXPHYADDR: VMfailInvalid with no current VMCS', () => {
    const { p } = inVmx(SKYLAKE, false);
    expect(p.vmclear(VMCS_A + 0x10n)).toEqual({ kind: 'vmfail-invalid' });
    expect(flagsPattern(p.state.rflags)).toBe('fail-invalid');
    expect(p.vmclear(1n << 39n)).toEqual({ kind: 'vmfail-invalid' });
  });

  it('error 2 as VMfailValid(2) with a current VMCS, recorded in its VM-instruction error field', () => {
    const { p } = inVmx();
    expect(p.vmclear(VMCS_B | 0x800n)).toEqual({ kind: 'vmfail-valid', error: 2 });
    expect(flagsPattern(p.state.rflags)).toBe('fail-valid');
    expect(p.vmread(BigInt(Field.VM_INSTRUCTION_ERROR), 64)).toEqual({ kind: 'vmsucceed', value: 2n });
  });

  it('error 3 for the VMXON pointer', () => {
    const { p } = inVmx();
    expect(p.vmclear(VMXON_PTR)).toEqual({ kind: 'vmfail-valid', error: 3 });
  });

  it('flushes the data, clears the launch state, and invalidates the current pointer if it was current', () => {
    const { p, mem } = inVmx();
    expectKind(p.vmwrite(GUEST_RIP, 0xabcdn, 64), 'vmsucceed');
    expect(p.vmclear(VMCS_A)).toEqual({ kind: 'vmsucceed' });
    expect(flagsPattern(p.state.rflags)).toBe('succeed');
    expect(p.currentPointer).toBe(INVALID_VMCS_POINTER);
    expect(p.launchState(VMCS_A)).toBeUndefined();
    const layout = regionLayout(SKYLAKE);
    expect(layout.readLaunchState(mem, VMCS_A)).toBe(false);
    // Revision dword untouched by the processor.
    expect(mem.read(VMCS_A, 4)).toBe(BigInt(SKYLAKE.vmcsRevision));
    expectKind(p.vmptrld(VMCS_A), 'vmsucceed');
    expect(p.vmread(GUEST_RIP, 64)).toEqual({ kind: 'vmsucceed', value: 0xabcdn });
  });

  it('of a VMCS that is not current leaves the current pointer alone', () => {
    const { p } = inVmx();
    expectKind(p.vmclear(VMCS_B), 'vmsucceed');
    expect(p.currentPointer).toBe(VMCS_A);
  });
});

describe('VMPTRLD', () => {
  it('error 9 (invalid address), 10 (VMXON pointer), 11 (revision) in that order', () => {
    const { p, mem } = inVmx();
    expect(p.vmptrld(VMCS_B + 4n)).toEqual({ kind: 'vmfail-valid', error: 9 });
    expect(p.vmptrld(1n << 40n)).toEqual({ kind: 'vmfail-valid', error: 9 });
    expect(p.vmptrld(VMXON_PTR)).toEqual({ kind: 'vmfail-valid', error: 10 });
    mem.write(VMCS_B, 4, 0x1234n);
    expect(p.vmptrld(VMCS_B)).toEqual({ kind: 'vmfail-valid', error: 11 });
    expect(p.currentPointer).toBe(VMCS_A);
    expect(p.currentVmcs!.get(Field.VM_INSTRUCTION_ERROR)).toBe(11n);
  });

  it('errors without a current VMCS are VMfailInvalid', () => {
    const { p } = inVmx(SKYLAKE, false);
    expect(p.vmptrld(VMXON_PTR)).toEqual({ kind: 'vmfail-invalid' });
    expect(p.vmptrld(DATA + 0x10_0000n)).toEqual({ kind: 'vmfail-invalid' }); // unbacked: revision reads as all ones
  });

  it('accepts the shadow-VMCS indicator only when VMCS shadowing is supported', () => {
    const sky = inVmx();
    sky.mem.write(VMCS_B, 4, BigInt(SKYLAKE.vmcsRevision) | 0x8000_0000n);
    expect(sky.p.vmptrld(VMCS_B)).toEqual({ kind: 'vmsucceed' });
    const core = inVmx(CORE2);
    core.mem.write(VMCS_B, 4, BigInt(CORE2.vmcsRevision) | 0x8000_0000n);
    expect(core.p.vmptrld(VMCS_B)).toEqual({ kind: 'vmfail-valid', error: 11 });
  });

  it('keeps an active VMCS cached: switching away and back does not re-read its region', () => {
    const { p, mem } = inVmx();
    expectKind(p.vmwrite(GUEST_RIP, 0x1111n, 64), 'vmsucceed');
    expectKind(p.vmclear(VMCS_B), 'vmsucceed');
    expectKind(p.vmptrld(VMCS_B), 'vmsucceed');
    expect(p.activePointers()).toEqual([VMCS_A, VMCS_B]);
    // Scribble over A's region: the processor still holds A's data.
    for (let off = 8n; off < 0x400n; off += 8n) mem.write(VMCS_A + off, 8, 0xdeadn);
    expectKind(p.vmptrld(VMCS_A), 'vmsucceed');
    expect(p.vmread(GUEST_RIP, 64)).toEqual({ kind: 'vmsucceed', value: 0x1111n });
  });

  it('reads memory operands (and an unbacked page as all ones → misaligned → error 9)', () => {
    const { p, mem } = inVmx();
    mem.write(DATA, 8, VMCS_B);
    expectKind(p.vmclear({ segment: Seg.DS, offset: DATA }), 'vmsucceed');
    expect(p.vmptrld({ segment: Seg.DS, offset: DATA })).toEqual({ kind: 'vmsucceed' });
    expect(p.currentPointer).toBe(VMCS_B);
    expect(p.vmptrld({ segment: Seg.DS, offset: 0x20_0000n })).toEqual({ kind: 'vmfail-valid', error: 9 });
  });
});

describe('VMPTRST', () => {
  it('returns FFFFFFFF_FFFFFFFFH without a current VMCS, the pointer with one; VMsucceed either way', () => {
    const { p } = inVmx(SKYLAKE, false);
    p.state.rflags |= 0x8d5n;
    expect(p.vmptrst()).toEqual({ kind: 'vmsucceed', value: INVALID_VMCS_POINTER });
    expect(p.state.rflags).toBe(0x2n);
    expectKind(p.vmptrld(VMCS_A), 'vmsucceed');
    expect(p.vmptrst()).toEqual({ kind: 'vmsucceed', value: VMCS_A });
  });

  it('stores to a memory operand; a faulting store leaves RFLAGS and memory unchanged', () => {
    const { p, mem } = inVmx();
    expect(p.vmptrst({ segment: Seg.DS, offset: DATA + 8n })).toEqual({ kind: 'vmsucceed', value: VMCS_A });
    expect(mem.read(DATA + 8n, 8)).toBe(VMCS_A);
    p.state.rflags |= 0x1n;
    expect(p.vmptrst({ segment: Seg.GS, offset: 1n << 62n })).toEqual({ kind: 'fault', vector: 13, errorCode: 0 });
    expect(p.state.rflags & 1n).toBe(1n);
  });
});
