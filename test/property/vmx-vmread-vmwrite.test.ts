// VMREAD/VMWRITE round trip for every encoding in the field table (full and high halves, 16/32/64/natural widths),
// with 32- and 64-bit operand sizes, on every CPU model: the value read back is the value written, truncated to
// the operand size and the field width, a high access touches only bits 63:32, a 32-bit write clears bits 63:32,
// unsupported fields fail with 12 and read-only ones with 13 exactly when IA32_VMX_MISC[29] = 0.
// SDM Vol. 2 VMREAD/VMWRITE; Vol. 3C App. B; reference §1.1.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { cpuModelIds, findCpuModel } from '../../src/cpu/cpu-model.js';
import { Field, VMCS_FIELDS } from '../../src/cpu/generated/vmcs-fields.js';
import { widthMask } from '../../src/cpu/vmcs.js';
import { VmxProcessor } from '../../src/cpu/vmx/processor.js';
import { VMCS_A, VMXON_PTR, identity, root32, root64, standardMemory } from '../unit/cpu/vmx/helpers.js';
import { propertyParams } from '../support/property.js';

const U64 = (1n << 64n) - 1n;

describe.each(cpuModelIds())('VMREAD/VMWRITE on %s', (id) => {
  const cpu = findCpuModel(id)!;

  function ready(opSize: 32 | 64): VmxProcessor {
    const p = new VmxProcessor({ cpu, memory: standardMemory(cpu), state: opSize === 64 ? root64() : root32(), translate: identity });
    if (p.vmxon(VMXON_PTR).kind !== 'vmsucceed' || p.vmclear(VMCS_A).kind !== 'vmsucceed' || p.vmptrld(VMCS_A).kind !== 'vmsucceed') {
      throw new Error('setup failed');
    }
    return p;
  }

  it('every table encoding, both operand sizes: write then read gives the masked value', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: U64 }), fc.bigInt({ min: 0n, max: U64 }), fc.bigInt({ min: 0n, max: 0xffff_ffffn }), (value, prior, junk) => {
        for (const opSize of [32, 64] as const) {
          const p = ready(opSize);
          const opMask = opSize === 64 ? U64 : 0xffff_ffffn;
          const vmcs = p.currentVmcs!;
          for (const f of VMCS_FIELDS) {
            const full = f.encoding & ~1;
            vmcs.set(full, prior);
            const before = vmcs.get(full);
            // Outside 64-bit mode the encoding register is 32 bits wide: bits above are not seen.
            const encOperand = BigInt(f.encoding) | (opSize === 32 ? junk << 32n : 0n);
            const w = p.vmwrite(encOperand, value, opSize);
            const label = `${f.name} op${opSize}`;
            if (!cpu.fieldSupported(f.encoding)) {
              expect(w, label).toEqual({ kind: 'vmfail-valid', error: 12 });
              expect(vmcs.get(full), label).toBe(before);
              expect(p.vmread(encOperand, opSize), label).toEqual({ kind: 'vmfail-valid', error: 12 });
              continue;
            }
            if (f.type === 'read-only data' && !cpu.vmwriteAnyField) {
              expect(w, label).toEqual({ kind: 'vmfail-valid', error: 13 });
              // The failure itself writes the VM-instruction error field; every other field is untouched.
              expect(vmcs.get(full), label).toBe(full === Field.VM_INSTRUCTION_ERROR ? 13n : before);
              continue;
            }
            expect(w, label).toEqual({ kind: 'vmsucceed' });
            const src = value & opMask;
            const expectedFull = f.access === 'high' ? (before & 0xffff_ffffn) | ((src & 0xffff_ffffn) << 32n) : src & widthMask(f.width);
            expect(vmcs.get(full), label).toBe(expectedFull);
            const seen = (f.access === 'high' ? expectedFull >> 32n : expectedFull) & opMask;
            expect(p.vmread(encOperand, opSize), label).toEqual({ kind: 'vmsucceed', value: seen });
          }
        }
      }),
      propertyParams({ numRuns: 12 }),
    );
  });

  it('encodings outside the table (reserved bits, unknown indices, bad high halves) always fail with 12', () => {
    const known = new Set(VMCS_FIELDS.map((f) => f.encoding));
    fc.assert(
      fc.property(fc.oneof(fc.integer({ min: 0, max: 0x7fff }), fc.integer({ min: 0, max: 0xffff_ffff })), (e) => {
        fc.pre(!known.has(e));
        const p = ready(64);
        expect(p.vmread(BigInt(e), 64)).toEqual({ kind: 'vmfail-valid', error: 12 });
        expect(p.vmwrite(BigInt(e), 1n, 64)).toEqual({ kind: 'vmfail-valid', error: 12 });
      }),
      propertyParams({ numRuns: 200 }),
    );
  });
});
