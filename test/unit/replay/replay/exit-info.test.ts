// Exit-information well-formedness (src/replay/replay/exit-info.ts): each rule passes on well-formed exits of real
// shapes and fails on a hand-made exit that breaks it; fields a source did not carry are never judged.
import { describe, expect, it } from 'vitest';
import { checkExitInfo, emptyExitView, minimumLength } from '../../../../src/replay/replay/index.js';
import { viewOfEvent } from '../../../../src/replay/replay/exit-info-check.js';
import type { ExitFields } from '../../../../src/replay/format/index.js';

function rules(x: Omit<ExitFields, 'level'>): string[] {
  const found: string[] = [];
  checkExitInfo(viewOfEvent({ level: 'L2', ...x }, emptyExitView()), (rule) => found.push(rule));
  return found;
}

const V = 0x8000_0000;

describe('exit-information rules', () => {
  it('well-formed exits of every shape the bundled logs hold pass', () => {
    expect(rules({ reason: 1, qualification: 0n, intrInfo: 0x800000f6 })).toEqual([]); // ack-on-exit external interrupt
    expect(rules({ reason: 30, qualification: 0xe90008n, intrInfo: 0, instructionLength: 2 })).toEqual([]); // IN AL,0xe9? (DX form: 1+)
    expect(rules({ reason: 30, qualification: 0x700040n, instructionLength: 2 })).toEqual([]); // OUT 0x70, AL
    expect(rules({ reason: 12, qualification: 0n, instructionLength: 1 })).toEqual([]);
    expect(rules({ reason: 48, qualification: 0x781n, idtVectoringInfo: 0x8000030d, intrInfo: 0 })).toEqual([]); // #GP delivery
    expect(rules({ reason: 0x80000021, qualification: 0n })).toEqual([]);
    expect(rules({ reason: 0, intrInfo: 0x80000b0e, intrError: 0x4, qualification: 0xdeadbeefn })).toEqual([]); // #PF
    expect(rules({ reason: 0, intrInfo: 0x80000306, qualification: 0n })).toEqual([]); // #UD
    expect(rules({ reason: 28, qualification: 0x0n, instructionLength: 3 })).toEqual([]); // MOV to CR0 from RAX
    expect(rules({ reason: 9, qualification: 0xc0000028n, idtVectoringInfo: 0x8000000d | 0x300 })).toEqual([]); // task gate
  });

  it('nothing is judged without an exit reason, and unknown fields are not checked', () => {
    expect(rules({ reasonText: 'npf', intrInfo: 0x7fffffff })).toEqual([]);
    expect(rules({ reason: 10 })).toEqual([]);
  });

  it('trace.exit-info.reason.*', () => {
    expect(rules({ reason: 0x10001 })).toEqual(['trace.exit-info.reason.reserved']);
    expect(rules({ reason: 35 })).toEqual(['trace.exit-info.reason.unknown']);
    expect(rules({ reason: 200 })).toEqual(['trace.exit-info.reason.unknown']);
    expect(rules({ reason: 0x8000000a })).toEqual(['trace.exit-info.reason.entry-failure']);
    expect(rules({ reason: 33 })).toEqual(['trace.exit-info.reason.entry-failure']);
  });

  it('trace.exit-info.intr-info.*', () => {
    expect(rules({ reason: 0, intrInfo: 0x0e })).toEqual(['trace.exit-info.intr-info.valid']);
    expect(rules({ reason: 12, intrInfo: V | 0x20 })).toEqual(['trace.exit-info.intr-info.valid']);
    expect(rules({ reason: 1, intrInfo: V | 0x4000 | 0x20 })).toEqual(['trace.exit-info.intr-info.reserved']);
    expect(rules({ reason: 1, intrInfo: V | 0x300 | 0x06 })).toEqual(['trace.exit-info.intr-info.type']); // not type 0
    expect(rules({ reason: 0, intrInfo: V | 0x020 })).toEqual(['trace.exit-info.intr-info.type']); // ext. interrupt on reason 0
    expect(rules({ reason: 0, intrInfo: V | 0x203 })).toEqual(['trace.exit-info.intr-info.type']); // NMI with vector 3
    expect(rules({ reason: 0, intrInfo: V | 0x328 })).toEqual(['trace.exit-info.intr-info.type']); // hw exception vector 40
    expect(rules({ reason: 0, intrInfo: V | 0x602 })).toEqual(['trace.exit-info.intr-info.type']); // sw exception vector 2
    expect(rules({ reason: 0, intrInfo: V | 0x100 })).toEqual(['trace.exit-info.intr-info.type']); // type 1
    expect(rules({ reason: 0, intrInfo: V | 0xb06 })).toEqual(['trace.exit-info.intr-info.error-code']); // #UD with error code
    expect(rules({ reason: 0, intrInfo: V | 0x30e, qualification: 0x1000n })).toEqual(['trace.exit-info.intr-info.error-code']); // #PF without
  });

  it('trace.exit-info.error-code', () => {
    expect(rules({ reason: 0, intrInfo: V | 0xb08, intrError: 1 })).toEqual(['trace.exit-info.error-code']); // #DF pushes 0
    expect(rules({ reason: 0, intrInfo: V | 0xb0d, intrError: 0x10010 })).toEqual(['trace.exit-info.error-code']); // #GP selector code
    expect(rules({ reason: 48, qualification: 0x181n, idtVectoringInfo: V | 0xb0d, idtVectoringError: 0x10000 })).toEqual(['trace.exit-info.error-code']);
  });

  it('trace.exit-info.idt-vectoring.*', () => {
    expect(rules({ reason: 1, idtVectoringInfo: V | 0xfd })).toEqual(['trace.exit-info.idt-vectoring.reason']);
    expect(rules({ reason: 2, qualification: 0n, idtVectoringInfo: V | 0x30e })).toEqual(['trace.exit-info.idt-vectoring.reason']); // triple fault
    expect(rules({ reason: 0, intrInfo: V | 0xb08, intrError: 0, idtVectoringInfo: V | 0x30e })).toEqual(['trace.exit-info.idt-vectoring.reason']); // #DF directly
    expect(rules({ reason: 9, qualification: 0x28n, idtVectoringInfo: V | 0x20 })).toEqual(['trace.exit-info.idt-vectoring.reason']); // CALL, not via IDT
    expect(rules({ reason: 9, qualification: 0xc0000028n, idtVectoringInfo: 0 })).toEqual(['trace.exit-info.idt-vectoring.reason']); // IDT gate, no info
    expect(rules({ reason: 48, qualification: 0x181n, idtVectoringInfo: V | 0x10000 | 0x20 })).toEqual(['trace.exit-info.idt-vectoring.reserved']);
    expect(rules({ reason: 48, qualification: 0x181n, idtVectoringInfo: V | 0x100 })).toEqual(['trace.exit-info.idt-vectoring.type']);
    expect(rules({ reason: 48, qualification: 0x181n, idtVectoringInfo: V | 0x820 })).toEqual(['trace.exit-info.idt-vectoring.error-code']);
    // bit 12 of IDT-vectoring information is undefined: not judged
    expect(rules({ reason: 48, qualification: 0x181n, idtVectoringInfo: V | 0x1000 | 0x30e })).toEqual([]);
  });

  it('trace.exit-info.qualification per reason', () => {
    expect(rules({ reason: 10, qualification: 1n })).toEqual(['trace.exit-info.qualification']); // CPUID: cleared
    expect(rules({ reason: 28, qualification: 0x85n })).toEqual(['trace.exit-info.qualification']); // bit 7 reserved
    expect(rules({ reason: 28, qualification: 0x02n })).toEqual(['trace.exit-info.qualification']); // CR2 is not an exiting CR
    expect(rules({ reason: 29, qualification: 0x8n })).toEqual(['trace.exit-info.qualification']);
    expect(rules({ reason: 30, qualification: 0x00e90002n })).toEqual(['trace.exit-info.qualification']); // size code 2 unused
    expect(rules({ reason: 30, qualification: 0x00e90080n })).toEqual(['trace.exit-info.qualification']); // bit 7 reserved
    expect(rules({ reason: 48, qualification: 1n << 40n })).toEqual(['trace.exit-info.qualification']);
    expect(rules({ reason: 44, qualification: 0x5000n })).toEqual(['trace.exit-info.qualification']); // APIC access type 5
    expect(rules({ reason: 45, qualification: 0x1ffn })).toEqual(['trace.exit-info.qualification']);
    expect(rules({ reason: 0, intrInfo: V | 0x306, qualification: 4n })).toEqual(['trace.exit-info.qualification']); // #UD carries none
    expect(rules({ reason: 0, intrInfo: V | 0x301, qualification: 0x20n })).toEqual(['trace.exit-info.qualification']); // #DB reserved bit 5
    expect(rules({ reason: 0x80000021, qualification: 1n })).toEqual(['trace.exit-info.qualification']);
    expect(rules({ reason: 49, qualification: 0x1234n })).toEqual([]); // EPT misconfiguration: undefined
  });

  it('trace.exit-info.instruction-length where defined', () => {
    expect(rules({ reason: 10, instructionLength: 16 })).toEqual(['trace.exit-info.instruction-length']);
    expect(rules({ reason: 10, instructionLength: 1 })).toEqual(['trace.exit-info.instruction-length']); // CPUID is 0F A2
    expect(rules({ reason: 30, qualification: 0x700040n, instructionLength: 1 })).toEqual(['trace.exit-info.instruction-length']); // imm8 form
    expect(rules({ reason: 30, qualification: 0x700048n, instructionLength: 1 })).toEqual(['trace.exit-info.instruction-length']);
    expect(rules({ reason: 30, qualification: 0x700008n, instructionLength: 1 })).toEqual([]); // IN AL, DX
    expect(rules({ reason: 28, qualification: 0x20n, instructionLength: 2 })).toEqual([]); // CLTS
    expect(rules({ reason: 28, qualification: 0x0n, instructionLength: 2 })).toEqual(['trace.exit-info.instruction-length']);
    expect(rules({ reason: 48, qualification: 0x181n, instructionLength: 0 })).toEqual([]); // undefined for EPT violations
    expect(rules({ reason: 48, qualification: 0x181n, idtVectoringInfo: V | 0x480, instructionLength: 0 })).toEqual(['trace.exit-info.instruction-length']); // INT 0x80 delivery
    expect(rules({ reason: 0, intrInfo: V | 0x603, instructionLength: 0, qualification: 0n })).toEqual(['trace.exit-info.instruction-length']); // INT3
    expect(minimumLength({ ...emptyExitView(), known: 1, reason: 50 })).toBe(5);
  });

  it('trace.exit-info.instruction-info', () => {
    expect(rules({ reason: 23, instructionInfo: 0x400 })).toEqual([]); // VMREAD, register operand
    expect(rules({ reason: 23, instructionInfo: 3 << 7 })).toEqual(['trace.exit-info.instruction-info']); // address size 3
    expect(rules({ reason: 21, instructionInfo: 1 << 10 })).toEqual(['trace.exit-info.instruction-info']); // VMPTRLD bit 10 must be 0
  });
});
