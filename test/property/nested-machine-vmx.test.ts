// P-INSTR / P-ENC on the nested machine (reference §9.2): random sequences of L1's VMX instructions with valid and
// invalid pointers, revisions, shadow indicators, encodings, operand types, plus writes to the regions, give the same
// O1 and O5 on the nested machine (L0 emulating them, with and without hardware VMCS shadowing) as on the reference
// running the capability model L0 advertises.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { L1_GPA } from '../../src/cpu/address.js';
import { Field } from '../../src/cpu/generated/vmcs-fields.js';
import type { L1Program } from '../../src/cpu/l1/machine.js';
import { kvmProfile, sdmProfile } from '../../src/nested/profile.js';
import { propertyParams } from '../support/property.js';
import { firstDifference, runPair } from '../unit/nested/machine/harness.js';

const F = Field;
const REGIONS = [0x10_0000n, 0x10_1000n, 0x10_2000n, 0x10_3000n, 0x10_4000n];
/** Region 3 carries a bad revision, region 4 the shadow-VMCS indicator. */
const BAD_REV = REGIONS[3]!;
const SHADOW = REGIONS[4]!;
const POINTERS = [...REGIONS, 0x10_0001n, 1n << 45n, 0n, 0x10_5000n];
const ENCODINGS: readonly bigint[] = [
  BigInt(F.GUEST_RIP), BigInt(F.GUEST_CR0), BigInt(F.CPU_BASED_VM_EXEC_CONTROL), BigInt(F.EXCEPTION_BITMAP), BigInt(F.VM_EXIT_REASON),
  BigInt(F.EXIT_QUALIFICATION), BigInt(F.GUEST_PHYSICAL_ADDRESS), BigInt(F.GUEST_PHYSICAL_ADDRESS_HIGH), BigInt(F.VM_INSTRUCTION_ERROR),
  BigInt(F.GUEST_CS_AR_BYTES), BigInt(F.GUEST_ES_AR_BYTES), BigInt(F.HOST_FS_SELECTOR), BigInt(F.EPT_POINTER), BigInt(F.VMCS_LINK_POINTER),
  BigInt(F.GUEST_INTR_STATUS), BigInt(F.TSC_OFFSET), BigInt(F.TSC_OFFSET_HIGH), BigInt(F.PLE_GAP), 0x2n, 0x1_0000_4402n, 0x8000n, 0x6c00n,
];
/** Encoding indexes, half the time one of the first six (fields in the hardware shadow VMCS when L0 shadows). */
const arbEnc = fc.oneof({ weight: 1, arbitrary: fc.nat({ max: 5 }) }, { weight: 1, arbitrary: fc.nat({ max: 21 }) });
const EPTPS = [0x50_001en, 0x50_005en, 0x50_0018n, 0x50_0006n, 0x50_0026n, 1n << 50n | 0x1en];

type Op =
  | { k: 'vmxon' | 'vmclear' | 'vmptrld'; p: number }
  | { k: 'vmxoff' | 'vmptrst' }
  | { k: 'vmread'; e: number }
  | { k: 'vmwrite'; e: number; v: bigint }
  | { k: 'invept'; t: number; e: number }
  | { k: 'invvpid'; t: number; vpid: number; linear: bigint }
  | { k: 'poke'; p: number; v: number };

const arbOp: fc.Arbitrary<Op> = fc.oneof(
  { weight: 3, arbitrary: fc.record({ k: fc.constantFrom('vmxon' as const, 'vmclear' as const, 'vmptrld' as const), p: fc.nat({ max: POINTERS.length - 1 }) }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constantFrom('vmxoff' as const, 'vmptrst' as const) }) },
  { weight: 4, arbitrary: fc.record({ k: fc.constant('vmread' as const), e: arbEnc }) },
  {
    weight: 4,
    arbitrary: fc.record({
      k: fc.constant('vmwrite' as const), e: arbEnc,
      v: fc.oneof(fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), fc.constantFrom(0n, 0x1c0ffn, 0xffff_ffffn, 0x50_001en)),
    }),
  },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('invept' as const), t: fc.integer({ min: 0, max: 3 }), e: fc.nat({ max: EPTPS.length - 1 }) }) },
  {
    weight: 1,
    arbitrary: fc.record({
      k: fc.constant('invvpid' as const), t: fc.integer({ min: 0, max: 4 }), vpid: fc.constantFrom(0, 1, 0xffff),
      linear: fc.constantFrom(0n, 0x7fff_ffff_f000n, 0x8000_0000_0000n, 0xffff_8000_0000_0000n),
    }),
  },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('poke' as const), p: fc.nat({ max: REGIONS.length - 1 }), v: fc.nat() }) },
);

function program(ops: readonly Op[]): L1Program {
  return (m) => {
    const rev = m.rdmsr(0x480) & 0x7fff_ffffn;
    for (const r of REGIONS) m.writeMemory(L1_GPA.of(r), 4, rev);
    m.writeMemory(L1_GPA.of(BAD_REV), 4, rev ^ 1n);
    m.writeMemory(L1_GPA.of(SHADOW), 4, rev | 0x8000_0000n);
    for (const op of ops) {
      switch (op.k) {
        case 'vmxon': m.vmxon(L1_GPA.of(POINTERS[op.p]!)); break;
        case 'vmclear': m.vmclear(L1_GPA.of(POINTERS[op.p]!)); break;
        case 'vmptrld': m.vmptrld(L1_GPA.of(POINTERS[op.p]!)); break;
        case 'vmxoff': m.vmxoff(); break;
        case 'vmptrst': m.vmptrst(); break;
        case 'vmread': m.vmread(ENCODINGS[op.e]!); break;
        case 'vmwrite': m.vmwrite(ENCODINGS[op.e]!, op.v); break;
        case 'invept': m.invept(BigInt(op.t), EPTPS[op.e]!); break;
        case 'invvpid': m.invvpid(BigInt(op.t), op.vpid, op.linear); break;
        case 'poke': m.writeMemory(L1_GPA.of(REGIONS[op.p]! + 0x10n), 4, BigInt(op.v)); break;
      }
    }
  };
}

/** Sequences that mostly get into VMX operation with a current VMCS, so the deeper checks are reached. */
const arbProgram = fc.array(arbOp, { minLength: 1, maxLength: 30 }).map((ops) => [
  { k: 'vmxon', p: 0 } as Op, { k: 'vmclear', p: 1 } as Op, { k: 'vmptrld', p: 1 } as Op, ...ops,
]);

describe('L1 VMX instructions on the nested machine ≡ on the reference', () => {
  it('sdm profile, hardware VMCS shadowing for L1 on', () => {
    fc.assert(
      fc.property(fc.oneof(arbProgram, fc.array(arbOp, { minLength: 1, maxLength: 20 })), (ops) => {
        const p = runPair(program(ops));
        const diff = firstDifference(p.reference.log, p.nested.log);
        expect(diff, diff).toBeUndefined();
      }),
      propertyParams({ numRuns: 120 }),
    );
  });

  it('sdm profile, every VMREAD/VMWRITE exits to L0', () => {
    fc.assert(
      fc.property(arbProgram, (ops) => {
        const p = runPair(program(ops), { shadowVmcs: false });
        const diff = firstDifference(p.reference.log, p.nested.log);
        expect(diff, diff).toBeUndefined();
      }),
      propertyParams({ numRuns: 60 }),
    );
  });

  it('kvm profile without the VMWRITE AR-byte and field-existence deviations is equivalent too', () => {
    fc.assert(
      fc.property(arbProgram, (ops) => {
        // N24 lets L1 reach vmcs12 fields of features kvm-l1 does not offer (error 12 on a CPU): also a named deviation.
        const p = runPair(program(ops), { profile: kvmProfile({ without: ['kvm.vmwrite-ar-bytes-masked', 'kvm.field-existence-ignores-features'] }) });
        // KVM's vmcs12 cache (write-back at VMPTRLD, none at VMXOFF) changes only VMCS-region bytes, which O5 masks.
        const diff = firstDifference(p.reference.log, p.nested.log);
        expect(diff, diff).toBeUndefined();
      }),
      propertyParams({ numRuns: 60 }),
    );
  });

  it('kvm AR-byte masking is the only O1 difference it makes (N10)', () => {
    const ops: Op[] = [{ k: 'vmxon', p: 0 }, { k: 'vmclear', p: 1 }, { k: 'vmptrld', p: 1 }, { k: 'vmwrite', e: 10, v: 0xffff_ffffn }, { k: 'vmread', e: 10 }];
    const p = runPair(program(ops), { profile: kvmProfile() });
    const reads = (log: typeof p.reference.log) => log.filter((o) => o.kind === 'vmx-instruction' && o.instruction === 'vmread').map((o) => (o.kind === 'vmx-instruction' ? o.value : undefined));
    expect(reads(p.reference.log)).toEqual([0xffff_ffffn]);
    expect(reads(p.nested.log)).toEqual([0x1f0ffn]);
    expect(sdmProfile().deviations.size).toBe(0);
  });
});
