// VMREAD and VMWRITE in root operation: check order (#UD, #GP, VMfailInvalid, memory source, error 12, error 13),
// unsupported and reserved encodings, read-only fields vs IA32_VMX_MISC[29], operand sizes, high halves and
// width truncation. Non-root shadowing is covered in vmentry.test.ts (it needs a guest).
import { describe, expect, it } from 'vitest';
import { Field } from '../../../../src/cpu/generated/vmcs-fields.js';
import { Seg } from '../../../../src/cpu/state.js';
import { flagsPattern } from '../../../../src/cpu/vmx/outcome.js';
import { CORE2, DATA, SKYLAKE, expectKind, inVmx, root32 } from './helpers.js';

const enc = (e: number) => BigInt(e);

describe('VMREAD / VMWRITE prerequisites', () => {
  it('#UD outside VMX operation; #GP(0) at CPL > 0; RFLAGS untouched', () => {
    const { p } = inVmx();
    expectKind(p.vmxoff(), 'vmsucceed');
    expect(p.vmread(enc(Field.GUEST_RIP), 64)).toEqual({ kind: 'fault', vector: 6 });
    expect(p.vmwrite(enc(Field.GUEST_RIP), 0n, 64)).toEqual({ kind: 'fault', vector: 6 });
    const { p: q } = inVmx();
    q.state.segAr[Seg.SS] = 0xc0b3; // DPL 1
    const before = q.state.rflags;
    expect(q.vmread(enc(Field.GUEST_RIP), 64)).toEqual({ kind: 'fault', vector: 13, errorCode: 0 });
    expect(q.vmwrite(enc(Field.GUEST_RIP), 0n, 64)).toEqual({ kind: 'fault', vector: 13, errorCode: 0 });
    expect(q.state.rflags).toBe(before);
  });

  it('VMfailInvalid without a current VMCS, even for an unsupported encoding', () => {
    const { p } = inVmx(SKYLAKE, false);
    expect(p.vmread(0xffffn, 64)).toEqual({ kind: 'vmfail-invalid' });
    expect(flagsPattern(p.state.rflags)).toBe('fail-invalid');
    expect(p.vmwrite(enc(Field.GUEST_RIP), 1n, 64)).toEqual({ kind: 'vmfail-invalid' });
  });
});

describe('error 12: unsupported VMCS component', () => {
  const cases: [string, bigint][] = [
    ['encoding not in the field table', 0x6c40n],
    ['reserved bit 12 set', enc(Field.GUEST_RIP | 0x1000)],
    ['bits 31:15 set', enc(Field.GUEST_RIP) | 0x8000n],
    ['high access to a 32-bit field', enc(Field.VM_EXIT_CONTROLS | 1)],
    ['high access to a natural-width field', enc(Field.GUEST_RIP | 1)],
    ['bits 63:32 of a 64-bit encoding operand', enc(Field.GUEST_RIP) | (1n << 32n)],
  ];
  for (const [name, e] of cases) {
    it(name, () => {
      const { p } = inVmx();
      expect(p.vmread(e, 64)).toEqual({ kind: 'vmfail-valid', error: 12 });
      expect(flagsPattern(p.state.rflags)).toBe('fail-valid');
      expect(p.vmwrite(e, 5n, 64)).toEqual({ kind: 'vmfail-valid', error: 12 });
      expect(p.currentVmcs!.get(Field.VM_INSTRUCTION_ERROR)).toBe(12n);
    });
  }

  it('a field the CPU model does not support (core2 has no EPT: EPT_POINTER)', () => {
    const { p } = inVmx(CORE2);
    expect(p.vmread(enc(Field.EPT_POINTER), 64)).toEqual({ kind: 'vmfail-valid', error: 12 });
    expect(p.vmwrite(enc(Field.EPT_POINTER_HIGH), 0n, 64)).toEqual({ kind: 'vmfail-valid', error: 12 });
    const sky = inVmx();
    expect(sky.p.vmread(enc(Field.EPT_POINTER), 64)).toEqual({ kind: 'vmsucceed', value: 0n });
  });

  it('in 32-bit operation only bits 31:0 of the encoding register count', () => {
    const { p } = inVmx(SKYLAKE, true, { state: root32() });
    expectKind(p.vmwrite(enc(Field.GUEST_RIP) | (1n << 32n), 0x1234n, 32), 'vmsucceed');
    expect(p.vmread(enc(Field.GUEST_RIP), 32)).toEqual({ kind: 'vmsucceed', value: 0x1234n });
  });
});

describe('error 13: VMWRITE to a read-only field', () => {
  it('fails when IA32_VMX_MISC[29] = 0 (core2), after the error-12 check', () => {
    const { p } = inVmx(CORE2);
    expect(p.vmwrite(enc(Field.VM_EXIT_REASON), 1n, 64)).toEqual({ kind: 'vmfail-valid', error: 13 });
    expect(p.vmwrite(enc(Field.EXIT_QUALIFICATION), 1n, 64)).toEqual({ kind: 'vmfail-valid', error: 13 });
    expect(p.vmwrite(enc(Field.GUEST_PHYSICAL_ADDRESS), 1n, 64)).toEqual({ kind: 'vmfail-valid', error: 12 });
    expect(p.vmread(enc(Field.VM_EXIT_REASON), 64)).toEqual({ kind: 'vmsucceed', value: 0n });
  });

  it('succeeds when IA32_VMX_MISC[29] = 1 (skylake)', () => {
    const { p } = inVmx();
    expect(p.vmwrite(enc(Field.VM_EXIT_REASON), 0x1cn, 64)).toEqual({ kind: 'vmsucceed' });
    expect(p.vmread(enc(Field.VM_EXIT_REASON), 64)).toEqual({ kind: 'vmsucceed', value: 0x1cn });
  });
});

describe('operand sizes and widths', () => {
  it('VMWRITE truncates to the field width; VMREAD zero-extends', () => {
    const { p } = inVmx();
    expectKind(p.vmwrite(enc(Field.GUEST_ES_SELECTOR), 0xffff_1234_5678n, 64), 'vmsucceed');
    expect(p.vmread(enc(Field.GUEST_ES_SELECTOR), 64)).toEqual({ kind: 'vmsucceed', value: 0x5678n });
    expectKind(p.vmwrite(enc(Field.GUEST_ES_LIMIT), 0xffff_1234_5678n, 64), 'vmsucceed');
    expect(p.vmread(enc(Field.GUEST_ES_LIMIT), 64)).toEqual({ kind: 'vmsucceed', value: 0x1234_5678n });
  });

  it('a 32-bit VMWRITE clears bits 63:32 of 64-bit and natural-width fields; a 32-bit VMREAD returns bits 31:0', () => {
    const { p } = inVmx(SKYLAKE, true, { state: root32() });
    p.currentVmcs!.set(Field.TSC_OFFSET, 0xaaaa_bbbb_cccc_ddddn);
    expect(p.vmread(enc(Field.TSC_OFFSET), 32)).toEqual({ kind: 'vmsucceed', value: 0xcccc_ddddn });
    expectKind(p.vmwrite(enc(Field.TSC_OFFSET), 0x1_0000_0001n, 32), 'vmsucceed');
    expect(p.currentVmcs!.get(Field.TSC_OFFSET)).toBe(1n);
    p.currentVmcs!.set(Field.GUEST_RSP, 0xffff_ffff_ffff_ffffn);
    expectKind(p.vmwrite(enc(Field.GUEST_RSP), 0x1234n, 32), 'vmsucceed');
    expect(p.currentVmcs!.get(Field.GUEST_RSP)).toBe(0x1234n);
  });

  it('the high encoding of a 64-bit field reads and writes bits 63:32 only', () => {
    const { p } = inVmx();
    expectKind(p.vmwrite(enc(Field.TSC_OFFSET), 0x1111_2222_3333_4444n, 64), 'vmsucceed');
    expect(p.vmread(enc(Field.TSC_OFFSET_HIGH), 64)).toEqual({ kind: 'vmsucceed', value: 0x1111_2222n });
    expectKind(p.vmwrite(enc(Field.TSC_OFFSET_HIGH), 0xffff_ffff_9999_8888n, 64), 'vmsucceed');
    expect(p.vmread(enc(Field.TSC_OFFSET), 64)).toEqual({ kind: 'vmsucceed', value: 0x9999_8888_3333_4444n });
  });
});

describe('memory operands', () => {
  it('VMWRITE reads its memory source after the VMCS-pointer check and before the field checks', () => {
    const bad = { segment: Seg.DS, offset: 1n << 63n } as const;
    const none = inVmx(SKYLAKE, false);
    expect(none.p.vmwrite(0xffffn, bad, 64)).toEqual({ kind: 'vmfail-invalid' });
    const cur = inVmx();
    const before = cur.p.state.rflags;
    expect(cur.p.vmwrite(0xffffn, bad, 64)).toEqual({ kind: 'fault', vector: 13, errorCode: 0 });
    expect(cur.p.state.rflags).toBe(before);
    cur.mem.write(DATA, 8, 0x77n);
    expect(cur.p.vmwrite(enc(Field.GUEST_RIP), { segment: Seg.DS, offset: DATA }, 64)).toEqual({ kind: 'vmsucceed' });
    expect(cur.p.currentVmcs!.get(Field.GUEST_RIP)).toBe(0x77n);
  });

  it('VMREAD writes its memory destination only after the field checks; a faulting store leaves RFLAGS alone', () => {
    const { p, mem } = inVmx();
    const bad = { segment: Seg.DS, offset: 1n << 63n } as const;
    expect(p.vmread(0xffffn, 64, bad)).toEqual({ kind: 'vmfail-valid', error: 12 });
    p.state.rflags = 0x2n | 0x40n;
    expect(p.vmread(enc(Field.GUEST_RIP), 64, bad)).toEqual({ kind: 'fault', vector: 13, errorCode: 0 });
    expect(p.state.rflags).toBe(0x42n);
    expectKind(p.vmwrite(enc(Field.GUEST_RIP), 0x99n, 64), 'vmsucceed');
    expect(p.vmread(enc(Field.GUEST_RIP), 64, { segment: Seg.DS, offset: DATA + 0x10n })).toEqual({ kind: 'vmsucceed', value: 0x99n });
    expect(mem.read(DATA + 0x10n, 8)).toBe(0x99n);
  });

  it('32-bit operation uses 4-byte memory operands with segment limit checks', () => {
    const { p, mem } = inVmx(SKYLAKE, true, { state: root32() });
    mem.write(DATA, 8, 0xaaaa_bbbb_1234_5678n);
    expectKind(p.vmwrite(enc(Field.GUEST_RIP), { segment: Seg.DS, offset: DATA }, 32), 'vmsucceed');
    expect(p.currentVmcs!.get(Field.GUEST_RIP)).toBe(0x1234_5678n);
    p.state.segLimit[Seg.DS] = Number(DATA) + 2;
    expect(p.vmwrite(enc(Field.GUEST_RIP), { segment: Seg.DS, offset: DATA }, 32)).toEqual({ kind: 'fault', vector: 13, errorCode: 0 });
  });
});
