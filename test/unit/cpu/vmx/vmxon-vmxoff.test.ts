// VMXON and VMXOFF, one test per row of reference §2.3 (VMXON steps 1-5, VMXOFF) in SDM check order, asserting
// the exact outcome and the RFLAGS pattern (or untouched RFLAGS on a fault).
import { describe, expect, it } from 'vitest';
import { Field } from '../../../../src/cpu/generated/vmcs-fields.js';
import { Seg } from '../../../../src/cpu/state.js';
import { flagsPattern } from '../../../../src/cpu/vmx/outcome.js';
import { INVALID_VMCS_POINTER } from '../../../../src/cpu/vmx/processor.js';
import { CORE2, DATA, SKYLAKE, VMCS_A, VMXON_PTR, expectKind, inVmx, processor } from './helpers.js';

/** All six result flags set, so every pattern has something to clear. */
const DIRTY = 0x8d7n;

describe('VMXON (SDM 30.3; reference §2.3 VMXON)', () => {
  it('step 1: #UD when CR4.VMXE = 0, CR0.PE = 0, RFLAGS.VM = 1 or in compatibility mode; RFLAGS untouched', () => {
    const cases: [string, (s: ReturnType<typeof processor>['p']['state']) => void][] = [
      ['CR4.VMXE = 0', (s) => { s.cr4 &= ~0x2000n; }],
      ['CR0.PE = 0', (s) => { s.cr0 = 0x30n; s.efer = 0n; }],
      ['RFLAGS.VM = 1', (s) => { s.rflags |= 1n << 17n; s.efer = 0n; s.segAr[Seg.CS] = 0xc09b; }],
      ['compatibility mode', (s) => { s.segAr[Seg.CS] = 0xc09b; }],
    ];
    for (const [name, mutate] of cases) {
      const { p } = processor();
      mutate(p.state);
      p.state.rflags |= DIRTY;
      const before = p.state.rflags;
      expect(p.vmxon(VMXON_PTR), name).toEqual({ kind: 'fault', vector: 6 });
      expect(p.state.rflags, name).toBe(before);
      expect(p.inVmxOperation).toBe(false);
    }
  });

  it('step 3: #GP(0) outside VMX operation for CPL > 0, CR0/CR4 outside the fixed bits, IA32_FEATURE_CONTROL lock or bit 2 clear', () => {
    const cases: [string, (s: ReturnType<typeof processor>['p']['state']) => void][] = [
      ['CPL 3', (s) => { s.segAr[Seg.SS] = 0xc0f3; }],
      ['CR0.NE = 0 (fixed-1)', (s) => { s.cr0 &= ~0x20n; }],
      ['CR4 bit beyond FIXED1', (s) => { s.cr4 |= 1n << 23n; }],
      ['feature control unlocked', (s) => { s.setMsr(0x3a, 0x4n); }],
      ['VMX outside SMX disabled', (s) => { s.setMsr(0x3a, 0x1n); }],
    ];
    for (const [name, mutate] of cases) {
      const { p } = processor();
      mutate(p.state);
      const before = p.state.rflags;
      expect(p.vmxon(VMXON_PTR), name).toEqual({ kind: 'fault', vector: 13, errorCode: 0 });
      expect(p.state.rflags, name).toBe(before);
    }
  });

  it('step 4: VMfailInvalid for a misaligned pointer, one beyond MAXPHYADDR, a wrong revision, the shadow bit, unbacked memory', () => {
    const pointers: [string, bigint, (m: ReturnType<typeof processor>['mem']) => void][] = [
      ['misaligned', VMXON_PTR + 8n, () => {}],
      ['beyond MAXPHYADDR (39)', 1n << 39n, () => {}],
      ['revision mismatch', VMXON_PTR, (m) => m.write(VMXON_PTR, 4, 5n)],
      ['shadow indicator set', DATA, () => {}],
      ['unbacked memory reads as all ones', 0x10_0000n, () => {}],
    ];
    for (const [name, ptr, prep] of pointers) {
      const { p, mem: m } = processor();
      m.write(DATA, 4, BigInt(SKYLAKE.vmcsRevision) | 0x8000_0000n);
      prep(m);
      p.state.rflags |= DIRTY;
      expect(p.vmxon(ptr), name).toEqual({ kind: 'vmfail-invalid' });
      expect(flagsPattern(p.state.rflags), name).toBe('fail-invalid');
      expect(p.inVmxOperation, name).toBe(false);
    }
  });

  it('step 4: the memory operand is read after the #GP checks; a non-canonical address faults with #GP(0), an SS one with #SS(0)', () => {
    const { p } = processor();
    expect(p.vmxon({ segment: Seg.DS, offset: 0x8000_0000_0000_0000n })).toEqual({ kind: 'fault', vector: 13, errorCode: 0 });
    expect(p.vmxon({ segment: Seg.SS, offset: 0x8000_0000_0000_0000n })).toEqual({ kind: 'fault', vector: 12, errorCode: 0 });
    const { p: q, mem } = processor();
    mem.write(DATA, 8, VMXON_PTR);
    expectKind(q.vmxon({ segment: Seg.DS, offset: DATA }), 'vmsucceed');
    expect(q.vmxonPointer).toBe(VMXON_PTR);
  });

  it('step 4: a #PF from the page walk is returned with its error code and address', () => {
    const { p } = processor(SKYLAKE, { translate: (la) => ({ ok: false, fault: { kind: 'fault', vector: 14, errorCode: 0, address: la } }) });
    const before = p.state.rflags;
    expect(p.vmxon({ segment: Seg.DS, offset: DATA })).toEqual({ kind: 'fault', vector: 14, errorCode: 0, address: DATA });
    expect(p.state.rflags).toBe(before);
  });

  it('step 5: success enters VMX root operation with no current VMCS; VMsucceed clears all six flags', () => {
    const { p } = processor();
    p.state.rflags |= DIRTY;
    expect(p.vmxon(VMXON_PTR)).toEqual({ kind: 'vmsucceed' });
    expect(p.state.rflags).toBe(0x2n);
    expect(p.inVmxOperation).toBe(true);
    expect(p.vmxonPointer).toBe(VMXON_PTR);
    expect(p.currentPointer).toBe(INVALID_VMCS_POINTER);
  });

  it('step 2: in VMX root operation, CPL > 0 → #GP(0); else VMfail(15): invalid without a current VMCS, valid with one', () => {
    const { p } = inVmx(SKYLAKE, false);
    p.state.segAr[Seg.SS] = 0xc0f3;
    expect(p.vmxon(VMXON_PTR)).toEqual({ kind: 'fault', vector: 13, errorCode: 0 });
    p.state.segAr[Seg.SS] = 0xc093;
    expect(p.vmxon(VMXON_PTR)).toEqual({ kind: 'vmfail-invalid' });
    expect(flagsPattern(p.state.rflags)).toBe('fail-invalid');
    expectKind(p.vmptrld(VMCS_A), 'vmsucceed');
    expect(p.vmxon(VMXON_PTR)).toEqual({ kind: 'vmfail-valid', error: 15 });
    expect(flagsPattern(p.state.rflags)).toBe('fail-valid');
    expect(p.currentVmcs!.get(Field.VM_INSTRUCTION_ERROR)).toBe(15n);
  });

  it('the revision identifier comes from the CPU model (core2: 7)', () => {
    const { p, mem } = processor(CORE2);
    mem.write(VMXON_PTR, 4, 4n);
    expect(p.vmxon(VMXON_PTR)).toEqual({ kind: 'vmfail-invalid' });
    mem.write(VMXON_PTR, 4, 7n);
    expect(p.vmxon(VMXON_PTR)).toEqual({ kind: 'vmsucceed' });
  });
});

describe('VMXOFF (reference §2.3 VMXOFF)', () => {
  it('#UD outside VMX operation, #GP(0) at CPL > 0', () => {
    const { p } = processor();
    expect(p.vmxoff()).toEqual({ kind: 'fault', vector: 6 });
    const { p: q } = inVmx();
    q.state.segAr[Seg.SS] = 0xc0f3;
    expect(q.vmxoff()).toEqual({ kind: 'fault', vector: 13, errorCode: 0 });
  });

  it('leaves VMX operation with VMsucceed and writes active VMCS data back to memory', () => {
    const { p } = inVmx();
    expectKind(p.vmwrite(BigInt(Field.GUEST_RIP), 0x1234n, 64), 'vmsucceed');
    p.state.rflags |= DIRTY;
    expect(p.vmxoff()).toEqual({ kind: 'vmsucceed' });
    expect(p.state.rflags).toBe(0x2n);
    expect(p.inVmxOperation).toBe(false);
    expect(p.currentPointer).toBe(INVALID_VMCS_POINTER);
    expect(p.vmread(BigInt(Field.GUEST_RIP), 64)).toEqual({ kind: 'fault', vector: 6 });
    // VMXON again and VMPTRLD the same region: the data comes back from memory.
    expectKind(p.vmxon(VMXON_PTR), 'vmsucceed');
    expectKind(p.vmptrld(VMCS_A), 'vmsucceed');
    expect(p.vmread(BigInt(Field.GUEST_RIP), 64)).toEqual({ kind: 'vmsucceed', value: 0x1234n });
  });
});
