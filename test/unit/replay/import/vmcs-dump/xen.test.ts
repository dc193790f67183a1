// Xen vmcs_dump_vcpu(): the segment table, the two-value RSP/RIP/RFLAGS form, EFER vs EFER(VMCS) vs
// EFER(MSR LL), PDPTE, PreemptionTimer/SM Base, EPTP index, VMfunc controls, CR3 targets, banners.
import { describe, expect, it } from 'vitest';
import { REAL, fixture, parseOk, parseErr, fields, enc, allFields } from './helpers.js';
import { XEN_4_14 } from './synthetic.js';
import { detectVmcsDumpFormat } from '../../../../../src/replay/import/vmcs-dump/index.js';

describe("Xen 4.11 'v' debug-key dump (solo5, known good)", () => {
  const p = parseOk(fixture(REAL.xen), REAL.xen);
  it('is detected as Xen and reads the segment table', () => {
    expect(p.format).toBe('xen-vmcs-dump');
    expect(fields(p, ['GUEST_CS_SELECTOR', 'GUEST_CS_AR_BYTES', 'GUEST_CS_LIMIT', 'GUEST_FS_AR_BYTES', 'GUEST_LDTR_AR_BYTES', 'GUEST_LDTR_LIMIT', 'GUEST_TR_LIMIT', 'GUEST_TR_BASE', 'GUEST_GDTR_LIMIT', 'GUEST_GDTR_BASE', 'GUEST_IDTR_BASE'])).toEqual({
      GUEST_CS_SELECTOR: '0x8',
      GUEST_CS_AR_BYTES: '0xa099',
      GUEST_CS_LIMIT: '0xffffffff',
      GUEST_FS_AR_BYTES: '0x1c000',
      GUEST_LDTR_AR_BYTES: '0x10000',
      GUEST_LDTR_LIMIT: '0x0',
      GUEST_TR_LIMIT: '0x68',
      GUEST_TR_BASE: '0x3e1040',
      GUEST_GDTR_LIMIT: '0x27',
      GUEST_GDTR_BASE: '0x3e13c0',
      GUEST_IDTR_BASE: '0x3e10a8',
    });
  });

  it('takes the first of "RSP = 0x… (0x…)" as the VMCS value and keeps Xen\'s cached copy apart', () => {
    expect(fields(p, ['GUEST_RSP', 'GUEST_RIP', 'GUEST_RFLAGS'])).toEqual({ GUEST_RSP: '0xffffec0', GUEST_RIP: '0x209997', GUEST_RFLAGS: '0x297' });
    expect(p.derived.xenCached).toEqual({ RSP: 0xffffec0n, RIP: 0x209998n, RFLAGS: 0x297n });
  });

  it('reads "EFER = …" (<=4.11) as the raw GUEST_IA32_EFER field, whatever the entry controls say', () => {
    expect(fields(p, ['GUEST_IA32_EFER', 'GUEST_IA32_PAT', 'VM_ENTRY_CONTROLS', 'HOST_IA32_EFER', 'HOST_IA32_PAT'])).toEqual({
      GUEST_IA32_EFER: '0x0',
      GUEST_IA32_PAT: '0x7040600070406',
      VM_ENTRY_CONTROLS: '0x53ff',
      HOST_IA32_EFER: '0x0',
      HOST_IA32_PAT: '0x50100070406',
    });
    expect(p.derived.efer).toBeUndefined();
  });

  it('reads PreemptionTimer/SM Base, TSC multiplier, TPR/posted vector, EPTP index, VPID and VMfunc controls', () => {
    expect(fields(p, ['VMX_PREEMPTION_TIMER_VALUE', 'GUEST_SMBASE', 'TSC_OFFSET', 'TSC_MULTIPLIER', 'TPR_THRESHOLD', 'POSTED_INTR_NV', 'EPT_POINTER', 'EPTP_INDEX', 'VIRTUAL_PROCESSOR_ID', 'VM_FUNCTION_CONTROL', 'VM_EXIT_REASON'])).toEqual({
      VMX_PREEMPTION_TIMER_VALUE: '0x0',
      GUEST_SMBASE: '0x0',
      TSC_OFFSET: '0xffffffd2984c98e6',
      TSC_MULTIPLIER: '0x0',
      TPR_THRESHOLD: '0x0',
      POSTED_INTR_NV: '0x0',
      EPT_POINTER: '0x16e5ac01e',
      EPTP_INDEX: '0x0',
      VIRTUAL_PROCESSOR_ID: '0xe',
      VM_FUNCTION_CONTROL: '0x0',
      VM_EXIT_REASON: '0xc',
    });
  });

  it('keeps the host RIP symbol, the domain and vCPU, and reads the wrapped lines', () => {
    expect(p.derived.hostRipSymbol).toBe('vmx_asm_vmexit_handler');
    expect(p.derived.xen).toEqual({ domain: 3, vcpu: 0 });
    expect(fields(p, ['HOST_RSP', 'HOST_TR_BASE', 'GUEST_PENDING_DBG_EXCEPTIONS', 'CR4_GUEST_HOST_MASK'])).toEqual({
      HOST_RSP: '0xffff83009c057f70',
      HOST_TR_BASE: '0xffff82d08055e000',
      GUEST_PENDING_DBG_EXCEPTIONS: '0x0',
      CR4_GUEST_HOST_MASK: '0xffffffffffc8f860',
    });
    expect(p.unmapped.filter((u) => !u.text.startsWith('#'))).toEqual([]);
  });
});

describe('Xen >=4.12 layout with timestamps and a vmentry-failure banner', () => {
  const p = parseOk(XEN_4_14);
  it('reads EFER(VMCS), PDPTE0-3 and the CR3 target lines', () => {
    expect(detectVmcsDumpFormat(XEN_4_14)).toBe('xen-vmcs-dump');
    expect(fields(p, ['GUEST_IA32_EFER', 'GUEST_PDPTR0', 'GUEST_PDPTR3', 'CR3_TARGET_VALUE0', 'CR3_TARGET_VALUE1', 'CR3_TARGET_VALUE2', 'CR3_TARGET_VALUE3'])).toEqual({
      GUEST_IA32_EFER: '0x0',
      GUEST_PDPTR0: '0xff5001',
      GUEST_PDPTR3: '0xff8001',
      CR3_TARGET_VALUE0: '0x1000',
      CR3_TARGET_VALUE1: '0x2000',
      CR3_TARGET_VALUE2: '0x3000',
      CR3_TARGET_VALUE3: undefined,
    });
    expect(p.derived.layout).toContain('xen:efer(vmcs)');
    expect(p.derived.xen).toEqual({ domain: 1, vcpu: 0, banner: 'vmentry failure (reason 0x80000021): Invalid guest state (0)' });
    expect(p.unmapped).toEqual([]);
  });

  it('does not take "EFER(MSR LL)" (the guest load-only MSR list) as the EFER field', () => {
    const q = parseOk(XEN_4_14.replace('EFER(VMCS) = 0x0000000000000000', 'EFER(MSR LL) = 0x0000000000000500'));
    expect(q.vmcs.read(enc('GUEST_IA32_EFER'))).toBeUndefined();
    expect(q.derived.efer).toMatchObject({ value: 0x500n, source: 'msr-load-list' });
    expect(q.vmcs.read(enc('GUEST_IA32_PAT'))).toBe(0x7040600070406n);
  });

  it('parses the same with the (XEN) prefixes removed by hand', () => {
    const bare = XEN_4_14.replace(/^\(XEN\) \[[^\]]*\] /gm, '');
    expect(allFields(parseOk(bare))).toEqual(allFields(p));
  });

  it('a malformed segment table row is bad input naming the line', () => {
    const e = parseErr(XEN_4_14.replace('  DS: 0010 0c093 ffffffff 0000000000000000', '  DS: 0010 0c093 ffffffff 00000000'));
    expect(e.line).toBe(14);
    expect(e.expected).toMatch(/DS: <sel 4 hex> <attr 5 hex> <limit 8 hex> <base 16 hex>/);
  });
});
