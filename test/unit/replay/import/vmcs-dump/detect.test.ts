// detectVmcsDumpFormat: JSON, KVM (with or without a QEMU dump before it), Xen (by its own lines or its
// `(XEN)` prefix), QEMU alone, anything else.
import { describe, expect, it } from 'vitest';
import { detectVmcsDumpFormat } from '../../../../../src/replay/import/vmcs-dump/index.js';
import { REAL, fixture } from './helpers.js';
import { KVM_5_15, KVM_6X, QEMU_64, XEN_4_14 } from './synthetic.js';

describe('detectVmcsDumpFormat', () => {
  it('recognises each real file', () => {
    expect(detectVmcsDumpFormat(fixture(REAL.dosemu2))).toBe('kvm-dump-vmcs');
    expect(detectVmcsDumpFormat(fixture(REAL.syzbot))).toBe('kvm-dump-vmcs');
    expect(detectVmcsDumpFormat(fixture(REAL.linuxNext))).toBe('kvm-dump-vmcs');
    expect(detectVmcsDumpFormat(fixture(REAL.xen))).toBe('xen-vmcs-dump');
  });
  it('recognises the constructed layouts', () => {
    expect(detectVmcsDumpFormat(KVM_6X)).toBe('kvm-dump-vmcs');
    expect(detectVmcsDumpFormat(QEMU_64 + KVM_5_15)).toBe('kvm-dump-vmcs');
    expect(detectVmcsDumpFormat(XEN_4_14)).toBe('xen-vmcs-dump');
    expect(detectVmcsDumpFormat(QEMU_64)).toBe('qemu-entry-failed');
  });
  it('takes a "(XEN)"-prefixed dump as Xen even without Xen-only lines, and JSON by its first character', () => {
    expect(detectVmcsDumpFormat('(XEN) *** Guest State ***\n(XEN) CR3 = 0x0000000000000000\n')).toBe('xen-vmcs-dump');
    expect(detectVmcsDumpFormat('  \n{"format": "turtles.vmcs.v1", "fields": {}}')).toBe('turtles-json');
  });
  it('anything else is unknown', () => {
    expect(detectVmcsDumpFormat('')).toBe('unknown');
    expect(detectVmcsDumpFormat('CR3 = 0x0\nRSP = 0x0  RIP = 0x0\n')).toBe('unknown');
  });
});
