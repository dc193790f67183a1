// Known-value tests for the exit-information codecs: encodings taken from the SDM tables, reserved-bit and
// unused-encoding reporting, and the layout selection by exit reason.
import { describe, expect, it } from 'vitest';
import {
  ApicAccessType, IntrType, addressSizeBits, decodeApicAccess, decodeCrAccess, decodeDebugQualification, decodeExitReason,
  decodeGdtrIdtrInfo, decodeInsOutsInfo, decodeInstructionInfo, decodeInterruptionInfo, decodeInvalidationInfo, decodeIo,
  decodeLdtrTrInfo, decodeMovDr, decodeRdrandRdseedInfo, decodeTaskSwitch, decodeVmreadVmwriteInfo, decodeVmxPointerInfo,
  encodeApicAccess, encodeCrAccess, encodeExitReason, encodeGdtrIdtrInfo, encodeInterruptionInfo, encodeIo, encodeMovDr,
  encodeTaskSwitch, encodeVmreadVmwriteInfo, exitReason, instructionInfoLayout, interruptionInfo, pageFaultQualification,
} from '../../../../src/cpu/exit-info/index.js';

describe('exit reason (SDM 24.9.1)', () => {
  it('puts the basic reason in bits 15:0 and the entry-failure flag in bit 31', () => {
    expect(exitReason(33, true)).toBe(0x8000_0021);
    expect(exitReason(10)).toBe(10);
    const d = decodeExitReason(0x8000_0022);
    expect(d.value).toEqual({ basic: 34, busLock: false, enclaveMode: false, pendingMtf: false, fromVmxRoot: false, entryFailure: true });
    expect(d.reserved).toBe(0);
  });
  it('encodes bits 26-29', () => {
    expect(encodeExitReason({ basic: 1, busLock: true, enclaveMode: true, pendingMtf: true, fromVmxRoot: true, entryFailure: false })).toBe(0x3c00_0001);
  });
  it('reports bit 16, bits 25:17 and bit 30 as reserved', () => {
    expect(decodeExitReason(0x0001_0000).reserved).toBe(0x0001_0000);
    expect(decodeExitReason(0x0200_0000).reserved).toBe(0x0200_0000);
    expect(decodeExitReason(0x4000_0000).reserved).toBe(0x4000_0000);
    expect(decodeExitReason(0x0400_0000).reserved).toBe(0);
  });
});

describe('interruption information (SDM 24.8.3, 24.9.2)', () => {
  it('encodes a #PF hardware exception with error code', () => {
    expect(interruptionInfo(14, IntrType.HARDWARE_EXCEPTION, true)).toBe(0x8000_0b0e);
    expect(encodeInterruptionInfo({ vector: 2, type: IntrType.NMI, errorCodeValid: false, nmiUnblocking: true, valid: true })).toBe(0x8000_1202);
  });
  it('treats bit 12 as NMI unblocking for exits, undefined-but-kept for IDT vectoring, reserved for entry', () => {
    expect(decodeInterruptionInfo(0x8000_1202, 'exit')).toMatchObject({ value: { nmiUnblocking: true }, reserved: 0 });
    expect(decodeInterruptionInfo(0x8000_1202, 'idt-vectoring')).toMatchObject({ value: { nmiUnblocking: true }, reserved: 0 });
    expect(decodeInterruptionInfo(0x8000_1202, 'entry')).toMatchObject({ value: { nmiUnblocking: false }, reserved: 0x1000 });
  });
  it('reports bits 30:13 as reserved and type 1 as malformed', () => {
    expect(decodeInterruptionInfo(0xc000_0300, 'exit').reserved).toBe(0x4000_0000);
    expect(decodeInterruptionInfo(0x8000_0100, 'exit').malformed).toEqual(['type']);
  });
});

describe('control-register access qualification (SDM Table 27-3)', () => {
  it('MOV to CR3 from RAX is 0x3, MOV from CR8 to R9 is 0x918', () => {
    expect(encodeCrAccess({ access: 'mov-to-cr', cr: 3, gpr: 0 })).toBe(0x3n);
    expect(encodeCrAccess({ access: 'mov-from-cr', cr: 8, gpr: 9 })).toBe(0x918n);
    expect(decodeCrAccess(0x918n).value).toEqual({ access: 'mov-from-cr', cr: 8, gpr: 9 });
  });
  it('LMSW from memory carries its source data in bits 31:16', () => {
    const q = encodeCrAccess({ access: 'lmsw', memoryOperand: true, sourceData: 0x000f });
    expect(q).toBe(0x000f_0070n);
    expect(decodeCrAccess(q)).toEqual({ value: { access: 'lmsw', memoryOperand: true, sourceData: 0xf }, reserved: 0n, malformed: [] });
  });
  it('CLTS has everything but the access type cleared; stray bits are reported', () => {
    expect(encodeCrAccess({ access: 'clts' })).toBe(0x20n);
    expect(decodeCrAccess(0x320n).reserved).toBe(0x300n);
    expect(decodeCrAccess(0x1_0000_0000n).reserved).toBe(0x1_0000_0000n);
    expect(decodeCrAccess(0x5n).malformed).toEqual(['cr']);
  });
});

describe('MOV DR and I/O qualifications (SDM Tables 27-4, 27-5)', () => {
  it('MOV DR7 <- RCX', () => {
    expect(encodeMovDr({ dr: 7, direction: 'to-dr', gpr: 1 })).toBe(0x107n);
    expect(decodeMovDr(0x117n).value).toEqual({ dr: 7, direction: 'from-dr', gpr: 1 });
    expect(decodeMovDr(0x8n).reserved).toBe(0x8n);
  });
  it('IN AL, 0x60 and REP OUTSW to DX', () => {
    expect(encodeIo({ size: 1, direction: 'in', string: false, rep: false, immediate: true, port: 0x60 })).toBe(0x0060_0048n);
    const d = decodeIo(0x03f8_0031n);
    expect(d.value).toEqual({ size: 2, direction: 'out', string: true, rep: true, immediate: false, port: 0x3f8 });
    expect(decodeIo(0x2n).malformed).toEqual(['size']);
    expect(decodeIo(0x80n).reserved).toBe(0x80n);
  });
});

describe('exception, task-switch and APIC-access qualifications', () => {
  it('#PF qualification drops bits 63:32 outside 64-bit mode', () => {
    expect(pageFaultQualification(0xffff_8000_dead_b000n, true)).toBe(0xffff_8000_dead_b000n);
    expect(pageFaultQualification(0xffff_8000_dead_b000n, false)).toBe(0xdead_b000n);
  });
  it('#DB qualification is DR6-like with positive polarity', () => {
    const d = decodeDebugQualification(0x4003n);
    expect(d.value).toEqual({ breakpoints: 3, busLock: false, debugRegisterAccess: false, singleStep: true, rtm: false });
    expect(decodeDebugQualification(0x1000n).reserved).toBe(0x1000n);
  });
  it('task switch through an IDT task gate', () => {
    expect(encodeTaskSwitch({ selector: 0x28, source: 'idt-task-gate' })).toBe(0xc000_0028n);
    expect(decodeTaskSwitch(0x4000_0030n).value).toEqual({ selector: 0x30, source: 'iret' });
    expect(decodeTaskSwitch(0x1_0000n).reserved).toBe(0x1_0000n);
  });
  it('APIC access: linear write at offset 0x300; unused type codes are malformed', () => {
    expect(encodeApicAccess({ offset: 0x300, type: ApicAccessType.LINEAR_WRITE, asynchronous: false })).toBe(0x1300n);
    expect(decodeApicAccess(0x5000n).malformed).toEqual(['type']);
    expect(decodeApicAccess(0x2_0000n).reserved).toBe(0x2_0000n);
  });
});

describe('instruction information (SDM 27.2.5)', () => {
  it('VMREAD rax, rbx register form: reg1 = RAX, reg2 = RBX, bit 10 set', () => {
    const raw = encodeVmreadVmwriteInfo({
      scaling: 0, reg1: 0, addressSize: 2, register: true, segment: 0, indexReg: 0, indexInvalid: false, baseReg: 0, baseInvalid: false, reg2: 3, undefinedBits: 0,
    });
    expect(raw).toBe(0x3000_0500);
    expect(decodeVmreadVmwriteInfo(raw).value).toMatchObject({ register: true, reg1: 0, reg2: 3, addressSize: 2 });
  });
  it('keeps undefined bits so decoding is lossless', () => {
    const d = decodeVmreadVmwriteInfo(0x0000_7804);
    expect(d.value.undefinedBits).toBe(0x7804);
    expect(d.reserved).toBe(0);
  });
  it('VMPTRLD [rsi + rdi*8] with 64-bit addresses in DS', () => {
    const d = decodeVmxPointerInfo((3 << 0) | (2 << 7) | (3 << 15) | (7 << 18) | (6 << 23));
    expect(d.value).toMatchObject({ scaling: 3, addressSize: 2, segment: 3, indexReg: 7, indexInvalid: false, baseReg: 6, baseInvalid: false });
    expect(addressSizeBits(d.value.addressSize)).toBe(64);
  });
  it('bit 10 is cleared for VMX-pointer and invalidation layouts (reported as reserved)', () => {
    expect(decodeVmxPointerInfo(0x400).reserved).toBe(0x400);
    expect(decodeInvalidationInfo(0x400).reserved).toBe(0x400);
    expect(decodeInvalidationInfo(0x5000_0000).value.reg2).toBe(5);
  });
  it('LGDT/LIDT/SGDT/SIDT identity in bits 29:28 and operand size in bit 11', () => {
    const raw = encodeGdtrIdtrInfo({
      scaling: 0, addressSize: 1, segment: 3, indexReg: 0, indexInvalid: true, baseReg: 0, baseInvalid: false, operandSize32: true, instruction: 'lidt', undefinedBits: 0,
    });
    expect(raw).toBe((1 << 7) | (1 << 11) | (3 << 15) | (1 << 22) | (3 << 28));
    expect(decodeGdtrIdtrInfo(raw).value.instruction).toBe('lidt');
    expect(decodeLdtrTrInfo((2 << 28) | (1 << 10) | (5 << 3)).value).toMatchObject({ instruction: 'lldt', register: true, reg1: 5 });
  });
  it('unused address-size and segment codes are malformed', () => {
    expect(decodeVmxPointerInfo((3 << 7) | (6 << 15)).malformed).toEqual(['addressSize', 'segment']);
    // The memory sub-fields are undefined for register forms, so they are not judged there.
    expect(decodeVmreadVmwriteInfo((1 << 10) | (3 << 7)).malformed).toEqual([]);
    expect(decodeInsOutsInfo(7 << 15).malformed).toEqual(['segment']);
    expect(decodeRdrandRdseedInfo(3 << 11).malformed).toEqual(['operandSize']);
  });
  it('selects the layout by exit reason', () => {
    expect(instructionInfoLayout(23)).toBe('vmread-vmwrite');
    expect(instructionInfoLayout(21)).toBe('vmx-pointer');
    expect(instructionInfoLayout(53)).toBe('invalidation');
    expect(instructionInfoLayout(46)).toBe('gdtr-idtr');
    expect(instructionInfoLayout(47)).toBe('ldtr-tr');
    expect(instructionInfoLayout(10)).toBeUndefined();
    expect(decodeInstructionInfo(10, 0)).toBeUndefined();
    expect(decodeInstructionInfo(50, 0x400)?.reserved).toBe(0x400);
  });
});
