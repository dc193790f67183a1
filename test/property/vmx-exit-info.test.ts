// Codec contracts for every exit-information format: decode(encode(x)) = x for generated records, and
// encode(decode(raw)) = raw for any raw value whose reserved bits are 0 (and reserved bits are exactly what is lost).
// SDM Vol. 3C 24.8.3, 24.9, 27.2.1, 27.2.5.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  type Decoded,
  decodeApicAccess, decodeCrAccess, decodeDebugQualification, decodeExitReason, decodeGdtrIdtrInfo, decodeInsOutsInfo,
  decodeInterruptionInfo, decodeInvalidationInfo, decodeIo, decodeLdtrTrInfo, decodeMovDr, decodeRdrandRdseedInfo,
  decodeTaskSwitch, decodeVmreadVmwriteInfo, decodeVmxPointerInfo,
  encodeApicAccess, encodeCrAccess, encodeDebugQualification, encodeExitReason, encodeGdtrIdtrInfo, encodeInsOutsInfo,
  encodeInterruptionInfo, encodeInvalidationInfo, encodeIo, encodeLdtrTrInfo, encodeMovDr, encodeRdrandRdseedInfo,
  encodeTaskSwitch, encodeVmreadVmwriteInfo, encodeVmxPointerInfo,
  type InterruptionInfoKind,
} from '../../src/cpu/exit-info/index.js';
import { propertyParams } from '../support/property.js';

const u32 = fc.integer({ min: 0, max: 0xffff_ffff });
const u64 = fc.bigInt({ min: 0n, max: (1n << 64n) - 1n });
const bits = (n: number) => fc.integer({ min: 0, max: 2 ** n - 1 });

interface Codec<T, R extends number | bigint> {
  name: string;
  arb: fc.Arbitrary<T>;
  raw: fc.Arbitrary<R>;
  encode: (x: T) => R;
  decode: (r: R) => Decoded<T, R>;
}

function codec<T, R extends number | bigint>(c: Codec<T, R>): Codec<unknown, number | bigint> {
  return c as unknown as Codec<unknown, number | bigint>;
}

const mem = {
  scaling: bits(2), addressSize: bits(3), segment: bits(3), indexReg: bits(4), indexInvalid: fc.boolean(), baseReg: bits(4), baseInvalid: fc.boolean(),
};

function intrCodec(kind: InterruptionInfoKind) {
  return codec({
    name: `interruption info (${kind})`,
    arb: fc.record({
      vector: bits(8), type: bits(3), errorCodeValid: fc.boolean(),
      nmiUnblocking: kind === 'entry' ? fc.constant(false) : fc.boolean(), valid: fc.boolean(),
    }),
    raw: u32,
    encode: encodeInterruptionInfo,
    decode: (r: number) => decodeInterruptionInfo(r, kind),
  });
}

const CODECS: Codec<unknown, number | bigint>[] = [
  codec({
    name: 'exit reason',
    arb: fc.record({ basic: bits(16), busLock: fc.boolean(), enclaveMode: fc.boolean(), pendingMtf: fc.boolean(), fromVmxRoot: fc.boolean(), entryFailure: fc.boolean() }),
    raw: u32, encode: encodeExitReason, decode: decodeExitReason,
  }),
  intrCodec('exit'), intrCodec('idt-vectoring'), intrCodec('entry'),
  codec({
    name: 'CR access',
    arb: fc.oneof(
      fc.record({ access: fc.constantFrom('mov-to-cr' as const, 'mov-from-cr' as const), cr: bits(4), gpr: bits(4) }),
      fc.record({ access: fc.constant('clts' as const) }),
      fc.record({ access: fc.constant('lmsw' as const), memoryOperand: fc.boolean(), sourceData: bits(16) }),
    ),
    raw: u64, encode: encodeCrAccess, decode: decodeCrAccess,
  }),
  codec({
    name: 'MOV DR',
    arb: fc.record({ dr: bits(3), direction: fc.constantFrom('to-dr' as const, 'from-dr' as const), gpr: bits(4) }),
    raw: u64, encode: encodeMovDr, decode: decodeMovDr,
  }),
  codec({
    name: 'I/O',
    arb: fc.record({
      size: fc.integer({ min: 1, max: 8 }), direction: fc.constantFrom('out' as const, 'in' as const), string: fc.boolean(), rep: fc.boolean(), immediate: fc.boolean(), port: bits(16),
    }),
    raw: u64, encode: encodeIo, decode: decodeIo,
  }),
  codec({
    name: '#DB',
    arb: fc.record({ breakpoints: bits(4), busLock: fc.boolean(), debugRegisterAccess: fc.boolean(), singleStep: fc.boolean(), rtm: fc.boolean() }),
    raw: u64, encode: encodeDebugQualification, decode: decodeDebugQualification,
  }),
  codec({
    name: 'task switch',
    arb: fc.record({ selector: bits(16), source: fc.constantFrom('call' as const, 'iret' as const, 'jmp' as const, 'idt-task-gate' as const) }),
    raw: u64, encode: encodeTaskSwitch, decode: decodeTaskSwitch,
  }),
  codec({
    name: 'APIC access',
    arb: fc.record({ offset: bits(12), type: bits(4), asynchronous: fc.boolean() }),
    raw: u64, encode: encodeApicAccess, decode: decodeApicAccess,
  }),
  codec({
    name: 'VMREAD/VMWRITE info',
    arb: fc.record({ ...mem, reg1: bits(4), register: fc.boolean(), reg2: bits(4), undefinedBits: fc.constantFrom(0, 0x4, 0x7800, 0x7804) }),
    raw: u32, encode: encodeVmreadVmwriteInfo, decode: decodeVmreadVmwriteInfo,
  }),
  codec({
    name: 'VMX-pointer info',
    arb: fc.record({ ...mem, undefinedBits: fc.constantFrom(0, 0x7c, 0x7800, 0xf000_0000) }),
    raw: u32, encode: encodeVmxPointerInfo, decode: decodeVmxPointerInfo,
  }),
  codec({
    name: 'INVEPT/INVVPID/INVPCID info',
    arb: fc.record({ ...mem, reg2: bits(4), undefinedBits: fc.constantFrom(0, 0x7c, 0x7800) }),
    raw: u32, encode: encodeInvalidationInfo, decode: decodeInvalidationInfo,
  }),
  codec({
    name: 'GDTR/IDTR info',
    arb: fc.record({ ...mem, operandSize32: fc.boolean(), instruction: fc.constantFrom('sgdt' as const, 'sidt' as const, 'lgdt' as const, 'lidt' as const), undefinedBits: fc.constantFrom(0, 0x7c, 0x7000, 0xc000_0000) }),
    raw: u32, encode: encodeGdtrIdtrInfo, decode: decodeGdtrIdtrInfo,
  }),
  codec({
    name: 'LDTR/TR info',
    arb: fc.record({ ...mem, reg1: bits(4), register: fc.boolean(), instruction: fc.constantFrom('sldt' as const, 'str' as const, 'lldt' as const, 'ltr' as const), undefinedBits: fc.constantFrom(0, 0x4, 0x7800, 0xc000_0000) }),
    raw: u32, encode: encodeLdtrTrInfo, decode: decodeLdtrTrInfo,
  }),
  codec({
    name: 'INS/OUTS info',
    arb: fc.record({ addressSize: bits(3), segment: bits(3), undefinedBits: fc.constantFrom(0, 0x7f, 0x7c00, 0xfffc_0000) }),
    raw: u32, encode: encodeInsOutsInfo, decode: decodeInsOutsInfo,
  }),
  codec({
    name: 'RDRAND/RDSEED info',
    arb: fc.record({ register: bits(4), operandSize: bits(2), undefinedBits: fc.constantFrom(0, 0x7, 0x780, 0xffff_e000) }),
    raw: u32, encode: encodeRdrandRdseedInfo, decode: decodeRdrandRdseedInfo,
  }),
];

function zero<R extends number | bigint>(r: R): boolean {
  return typeof r === 'bigint' ? r === 0n : r === 0;
}

describe.each(CODECS.map((c) => [c.name, c] as const))('%s codec', (_name, c) => {
  it('decode(encode(x)) = x with no reserved bits', () => {
    fc.assert(
      fc.property(c.arb, (x) => {
        const d = c.decode(c.encode(x));
        expect(d.value).toEqual(x);
        expect(zero(d.reserved)).toBe(true);
      }),
      propertyParams({ numRuns: 300 }),
    );
  });

  it('encode(decode(raw)) = raw exactly when no reserved bits are set; otherwise raw without them', () => {
    fc.assert(
      fc.property(c.raw, (raw) => {
        const d = c.decode(raw);
        const back = c.encode(d.value);
        if (typeof raw === 'bigint') expect(back).toBe(raw & ~(d.reserved as bigint));
        else expect(back).toBe((raw & ~(d.reserved as number)) >>> 0);
        if (zero(d.reserved)) expect(back).toBe(raw);
      }),
      propertyParams({ numRuns: 300 }),
    );
  });
});
