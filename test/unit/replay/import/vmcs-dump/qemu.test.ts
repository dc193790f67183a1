// QEMU's "KVM: entry failed" register dump: parsed into derived.qemu (KVM_GET_SREGS state), never the VMCS.
import { describe, expect, it } from 'vitest';
import { addQemuLine, newQemuDump } from '../../../../../src/replay/import/vmcs-dump/qemu.js';
import { detectVmcsDumpFormat, parseVmcsDump } from '../../../../../src/replay/import/vmcs-dump/index.js';
import { QEMU_64, KVM_5_15 } from './synthetic.js';
import { parseOk } from './helpers.js';

describe('QEMU register dump', () => {
  it('reads the 64-bit form: R8-R15, RIP/RFL, segment decodes, GDT/IDT, control registers, Code=, the hint', () => {
    const q = newQemuDump(1);
    for (const l of QEMU_64.split('\n')) if (l.trim()) expect([l, addQemuLine(q, l)]).toEqual([l, null]);
    expect(q.hardwareError).toBe(0x80000021n);
    expect(q.regs).toMatchObject({ RCX: 0xc0000080n, RSP: 0x8f00n, R8: 0n, R15: 0n, RIP: 0x100000n, RFL: 2n });
    expect(q.segments['CS']).toEqual({ selector: 8n, base: 0n, limit: 0xffffffffn, flags: 0xc09b00n, decoded: 'DPL=0 CS32 [-RA]' });
    expect(q.segments['TR']?.decoded).toBe('DPL=0 TSS64-busy');
    expect(q.tables['IDT']).toEqual({ base: 0x2000n, limit: 0x7ffn });
    expect(q.control).toMatchObject({ CR0: 0x80000031n, CR3: 0xff4000n, CR4: 0x20n, DR6: 0xffff0ff0n, EFER: 0x500n });
    expect(q.code).toBe('00 00 00 00 00 00 <0f> 01 c1 00 00 00 00 00 00 00');
    expect(q.hint).toHaveLength(4);
  });

  it('a QEMU dump alone is not a VMCS state, and the error says why', () => {
    expect(detectVmcsDumpFormat(QEMU_64)).toBe('qemu-entry-failed');
    const r = parseVmcsDump(QEMU_64, 'qemu.log');
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.error.expected).toMatch(/KVM_GET_SREGS state, not the VMCS/);
  });

  it('before a KVM dump it lands in derived.qemu and the VMCS comes from the KVM dump only', () => {
    const p = parseOk(QEMU_64 + '\n' + KVM_5_15);
    expect(p.derived.qemu?.control['CR0']).toBe(0x80000031n);
    expect(p.vmcs.read(0x6800)).toBe(0x31n);
  });

  it('a broken QEMU line is bad input', () => {
    const r = parseVmcsDump(QEMU_64.replace('RIP=0000000000100000 RFL=00000002 [-------] CPL=0', 'RIP=0000000000100000 RFL=00000002 [-------] CPL=zz') + KVM_5_15, 'q.log');
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.error.line).toBe(12);
  });
});
