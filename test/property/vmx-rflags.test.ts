// Every VMX instruction leaves RFLAGS in exactly one of the three result patterns of SDM 30.2 (VMsucceed,
// VMfailInvalid, VMfailValid) with all other RFLAGS bits preserved — or, on a fault or a VM exit, unchanged — and a
// VMfailValid always records its error number in the current VMCS. Random instruction sequences with random
// (often invalid) operands from random root states; VM entries are followed by a VM exit.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Field } from '../../src/cpu/generated/vmcs-fields.js';
import { Seg } from '../../src/cpu/state.js';
import { VMX_RESULT_FLAGS, flagsPattern, type VmxInstrOutcome } from '../../src/cpu/vmx/outcome.js';
import { VmxProcessor } from '../../src/cpu/vmx/processor.js';
import type { EntryVerdict } from '../../src/cpu/vmx/entry-port.js';
import { SKYLAKE, VMCS_A, VMCS_B, VMXON_PTR, fillGuestAndHost, identity, root64, standardMemory } from '../unit/cpu/vmx/helpers.js';
import { propertyParams } from '../support/property.js';

const POINTERS = [VMXON_PTR, VMCS_A, VMCS_B, VMCS_A + 8n, 1n << 40n, 0x40_0000n, 0xffff_ffff_ffff_ffffn];
const ENCODINGS = [Field.GUEST_RIP, Field.VM_EXIT_REASON, Field.GUEST_ES_SELECTOR, Field.TSC_OFFSET_HIGH, 0x6c40, 0x1000 | Field.GUEST_RIP].map(BigInt);

type Op =
  | { op: 'vmxon' | 'vmclear' | 'vmptrld'; ptr: bigint; mem: boolean }
  | { op: 'vmxoff' | 'vmptrst' | 'vmcall' | 'vmlaunch' | 'vmresume' }
  | { op: 'vmread'; enc: bigint; size: 32 | 64 }
  | { op: 'vmwrite'; enc: bigint; value: bigint; size: 32 | 64 }
  | { op: 'invept' | 'invvpid'; type: bigint; desc: bigint }
  | { op: 'cpl'; cpl: number }
  | { op: 'flags'; bits: bigint };

const arbOp: fc.Arbitrary<Op> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ op: fc.constantFrom('vmclear' as const, 'vmptrld' as const), ptr: fc.constantFrom(...POINTERS), mem: fc.boolean() }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('vmxon' as const), ptr: fc.constantFrom(...POINTERS), mem: fc.boolean() }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('vmxoff' as const) }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constantFrom('vmptrst' as const, 'vmcall' as const) }) },
  { weight: 4, arbitrary: fc.record({ op: fc.constantFrom('vmlaunch' as const, 'vmresume' as const) }) },
  { weight: 3, arbitrary: fc.record({ op: fc.constant('vmread' as const), enc: fc.constantFrom(...ENCODINGS), size: fc.constantFrom(32 as const, 64 as const) }) },
  { weight: 3, arbitrary: fc.record({ op: fc.constant('vmwrite' as const), enc: fc.constantFrom(...ENCODINGS), value: fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), size: fc.constantFrom(32 as const, 64 as const) }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constantFrom('invept' as const, 'invvpid' as const), type: fc.bigInt({ min: 0n, max: 5n }), desc: fc.bigInt({ min: 0n, max: (1n << 128n) - 1n }) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('cpl' as const), cpl: fc.constantFrom(0, 0, 3) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('flags' as const), bits: fc.bigInt({ min: 0n, max: 0x3f_ffffn }) }) },
);

const arbVerdict: fc.Arbitrary<EntryVerdict> = fc.constantFrom<EntryVerdict>(
  { kind: 'pass' },
  { kind: 'pass' },
  { kind: 'pass' },
  { kind: 'vmfail', error: 7, checkId: 'C' },
  { kind: 'vmfail', error: 8, checkId: 'H' },
  { kind: 'entry-failure', exitReason: 33, qualification: 0n, checkId: 'G' },
);

describe('RFLAGS after VMX instructions (SDM 30.2)', () => {
  it('exactly one result pattern, other bits preserved; untouched on faults and VM exits', () => {
    fc.assert(
      fc.property(fc.boolean(), fc.array(arbOp, { minLength: 1, maxLength: 40, size: 'medium' }), arbVerdict, (prefix, tail, verdict) => {
        // Most runs start in VMX operation with a current VMCS, so the deeper outcomes are reached.
        const start: Op[] = prefix
          ? [{ op: 'vmxon', ptr: VMXON_PTR, mem: false }, { op: 'vmclear', ptr: VMCS_A, mem: true }, { op: 'vmptrld', ptr: VMCS_A, mem: false }]
          : [];
        const ops = [...start, ...tail];
        const mem = standardMemory(SKYLAKE);
        const p = new VmxProcessor({ cpu: SKYLAKE, memory: mem, state: root64(), translate: identity, entryChecker: () => verdict });
        for (const r of [VMCS_A, VMCS_B]) {
          // Give every region a VMCS image that loads cleanly, so a passing stub verdict can enter and exit.
          const staging = new VmxProcessor({ cpu: SKYLAKE, memory: mem, state: root64(), translate: identity });
          staging.vmxon(VMXON_PTR);
          staging.vmclear(r);
          staging.vmptrld(r);
          fillGuestAndHost(staging.currentVmcs!);
          staging.vmclear(r);
        }
        for (const o of ops) {
          if (o.op === 'cpl') {
            p.state.segAr[Seg.SS] = (p.state.segAr[Seg.SS]! & ~0x60) | (o.cpl << 5);
            continue;
          }
          if (o.op === 'flags') {
            p.state.rflags = (o.bits & ~(1n << 17n)) | 0x2n; // never set VM: that changes the mode, not the flags rule
            continue;
          }
          const before = p.state.rflags;
          const operand = (ptr: bigint) => {
            if (!('mem' in o) || !o.mem) return ptr;
            mem.write(0x8000n, 8, ptr);
            return { segment: Seg.DS, offset: 0x8000n } as const;
          };
          let out: VmxInstrOutcome;
          switch (o.op) {
            case 'vmxon': out = p.vmxon(operand(o.ptr)); break;
            case 'vmclear': out = p.vmclear(operand(o.ptr)); break;
            case 'vmptrld': out = p.vmptrld(operand(o.ptr)); break;
            case 'vmxoff': out = p.vmxoff(); break;
            case 'vmptrst': out = p.vmptrst(); break;
            case 'vmcall': out = p.vmcall(); break;
            case 'vmlaunch': out = p.vmlaunch(); break;
            case 'vmresume': out = p.vmresume(); break;
            case 'vmread': out = p.vmread(o.enc, o.size); break;
            case 'vmwrite': out = p.vmwrite(o.enc, o.value, o.size); break;
            case 'invept': out = p.invept(o.type, o.desc); break;
            case 'invvpid': out = p.invvpid(o.type, o.desc); break;
          }
          const after = p.state.rflags;
          switch (out.kind) {
            case 'fault':
            case 'vm-exit':
              expect(after).toBe(before);
              break;
            case 'vmsucceed':
            case 'vmfail-invalid':
            case 'vmfail-valid': {
              const want = out.kind === 'vmsucceed' ? 'succeed' : out.kind === 'vmfail-invalid' ? 'fail-invalid' : 'fail-valid';
              expect(flagsPattern(after)).toBe(want);
              expect(after & ~VMX_RESULT_FLAGS).toBe(before & ~VMX_RESULT_FLAGS);
              if (out.kind === 'vmfail-valid') expect(p.currentVmcs!.get(Field.VM_INSTRUCTION_ERROR)).toBe(BigInt(out.error));
              break;
            }
            case 'vm-entry': {
              // L1's RFLAGS are not reported until the VM exit, which loads RFLAGS = 2.
              expect(after).toBe(before);
              const exit = p.vmExit({ reason: 10 }, out.guest);
              expect(exit.kind).toBe('host');
              expect(p.state.rflags).toBe(0x2n);
              break;
            }
            case 'entry-failure-exit':
              expect(after).toBe(0x2n);
              break;
            case 'vmx-abort':
              throw new Error('no VMX abort expected from these VMCS images');
          }
        }
      }),
      propertyParams({ numRuns: 150 }),
    );
  });
});
