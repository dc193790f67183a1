// KVM dump_vmcs(): every layout of trace-formats.md §6 maps each printed value to its VMCS field, keeps values
// that are not VMCS fields in `derived`, and lists everything else in `unmapped`.
import { describe, expect, it } from 'vitest';
import { REAL, fixture, parseOk, parseErr, fields, allFields, enc } from './helpers.js';
import { KVM_6X, KVM_5_15 } from './synthetic.js';

const lineOf = (text: string, needle: string) => text.split('\n').findIndex((l) => l.includes(needle)) + 1;

describe('KVM dump_vmcs, <=5.11 layout (dosemu2, dmesg timestamps, format=flowed wraps)', () => {
  const p = parseOk(fixture(REAL.dosemu2), REAL.dosemu2);

  it('is detected as a KVM dump and reads the wrapped CR0/CR4 triples into value, read shadow and mask', () => {
    expect(p.format).toBe('kvm-dump-vmcs');
    expect(fields(p, ['GUEST_CR0', 'CR0_READ_SHADOW', 'CR0_GUEST_HOST_MASK', 'GUEST_CR4', 'CR4_READ_SHADOW', 'CR4_GUEST_HOST_MASK'])).toEqual({
      GUEST_CR0: '0x80000031',
      CR0_READ_SHADOW: '0xe0000031',
      CR0_GUEST_HOST_MASK: '0xfffffffffffffff7',
      GUEST_CR4: '0x2041',
      CR4_READ_SHADOW: '0x1',
      CR4_GUEST_HOST_MASK: '0xffffffffffffe871',
    });
  });

  it('reads segments (sel/attr/limit/base) including the parts a mail client wrapped', () => {
    expect(fields(p, ['GUEST_DS_SELECTOR', 'GUEST_DS_AR_BYTES', 'GUEST_DS_LIMIT', 'GUEST_DS_BASE', 'GUEST_CS_BASE', 'GUEST_ES_AR_BYTES', 'GUEST_FS_AR_BYTES', 'GUEST_TR_LIMIT', 'GUEST_GDTR_BASE', 'GUEST_IDTR_LIMIT'])).toEqual({
      GUEST_DS_SELECTOR: '0xf7',
      GUEST_DS_AR_BYTES: '0xc0f2',
      GUEST_DS_LIMIT: '0xffffffff',
      GUEST_DS_BASE: '0x0',
      GUEST_CS_BASE: '0x2110000',
      GUEST_ES_AR_BYTES: '0xc0f2',
      GUEST_FS_AR_BYTES: '0x10000',
      GUEST_TR_LIMIT: '0x2088',
      GUEST_GDTR_BASE: '0xa708100',
      GUEST_IDTR_LIMIT: '0x7ff',
    });
  });

  it('maps the one-line "EFER =     … PAT = …" to the raw GUEST_IA32_EFER/PAT fields and the host line to HOST_*', () => {
    expect(fields(p, ['GUEST_IA32_EFER', 'GUEST_IA32_PAT', 'HOST_IA32_EFER', 'HOST_IA32_PAT'])).toEqual({
      GUEST_IA32_EFER: '0x0',
      GUEST_IA32_PAT: '0x7040600070406',
      HOST_IA32_EFER: '0xd01',
      HOST_IA32_PAT: '0x407050600070106',
    });
    expect(p.derived.layout).toEqual(['kvm', 'kvm:efer-pat-one-line', 'kvm:controls<=5.17']);
    expect(p.derived.efer).toBeUndefined();
  });

  it('reads host state, the old control layout and the exit information', () => {
    expect(fields(p, ['HOST_CR3', 'HOST_CR4', 'HOST_TR_BASE', 'HOST_IA32_SYSENTER_EIP', 'HOST_TR_SELECTOR', 'PIN_BASED_VM_EXEC_CONTROL', 'CPU_BASED_VM_EXEC_CONTROL', 'SECONDARY_VM_EXEC_CONTROL', 'VM_ENTRY_CONTROLS', 'VM_EXIT_CONTROLS', 'PAGE_FAULT_ERROR_CODE_MATCH', 'VM_ENTRY_INTR_INFO_FIELD', 'VM_ENTRY_INSTRUCTION_LEN', 'VM_EXIT_REASON', 'EXIT_QUALIFICATION', 'TSC_OFFSET', 'EPT_POINTER', 'PLE_GAP', 'PLE_WINDOW', 'VIRTUAL_PROCESSOR_ID', 'GUEST_PENDING_DBG_EXCEPTIONS'])).toEqual({
      HOST_CR3: '0x4c0642001',
      HOST_CR4: '0x1626e0',
      HOST_TR_BASE: '0xfffffe0000102000',
      HOST_IA32_SYSENTER_EIP: '0xffffffffbd001720',
      HOST_TR_SELECTOR: '0x40',
      PIN_BASED_VM_EXEC_CONTROL: '0x7f',
      CPU_BASED_VM_EXEC_CONTROL: '0xb5986dfa',
      SECONDARY_VM_EXEC_CONTROL: '0x2c6a',
      VM_ENTRY_CONTROLS: '0xd1ff',
      VM_EXIT_CONTROLS: '0x2befff',
      PAGE_FAULT_ERROR_CODE_MATCH: '0x0',
      VM_ENTRY_INTR_INFO_FIELD: '0x4e6',
      VM_ENTRY_INSTRUCTION_LEN: '0x2',
      VM_EXIT_REASON: '0x80000021',
      EXIT_QUALIFICATION: '0x0',
      TSC_OFFSET: '0xffa686ee1681acf4',
      EPT_POINTER: '0x5fcec605e',
      PLE_GAP: '0x80',
      PLE_WINDOW: '0x1000',
      VIRTUAL_PROCESSOR_ID: '0x1',
      GUEST_PENDING_DBG_EXCEPTIONS: '0x0',
    });
    expect(p.derived.exit).toEqual({ reason: 0x80000021n, basic: 33, failedEntry: true, line: 69 });
  });

  it('records the physical line of each field and lists the non-dump lines as unmapped', () => {
    expect(p.fieldLines.get(enc('GUEST_CR0'))).toBe(20);
    expect(p.fieldLines.get(enc('HOST_CR4'))).toBe(58);
    expect(p.lines).toBe(126);
    expect(p.unmapped.find((u) => u.text === 'gp regs dump:')?.reason).toBe('after the VMCS dump');
    expect(p.unmapped.filter((u) => u.reason === 'outside the VMCS dump').every((u) => u.text.startsWith('#'))).toBe(true);
    // Nothing inside the dump went unread.
    expect(p.unmapped.filter((u) => u.line >= 19 && u.line <= 74)).toEqual([]);
  });

  it('does not print fields the dump does not show (no VMCS link pointer, no guest PERF_GLOBAL_CTRL)', () => {
    expect(p.vmcs.read(enc('VMCS_LINK_POINTER'))).toBeUndefined();
    expect(p.vmcs.read(enc('GUEST_IA32_PERF_GLOBAL_CTRL'))).toBeUndefined();
    expect(p.vmcs.values.size).toBe(101);
  });
});

describe('KVM dump_vmcs, 4.13 layout mail-quoted with wraps at commas (syzbot)', () => {
  const p = parseOk(fixture(REAL.syzbot), REAL.syzbot);
  it('rejoins "> " continuation lines by grammar and reads every field', () => {
    expect(fields(p, ['CR0_GUEST_HOST_MASK', 'CR4_GUEST_HOST_MASK', 'GUEST_CR4', 'GUEST_LDTR_AR_BYTES', 'GUEST_IA32_EFER', 'HOST_IA32_PAT', 'VM_EXIT_CONTROLS', 'EPT_POINTER'])).toEqual({
      CR0_GUEST_HOST_MASK: '0xfffffffffffffff7',
      CR4_GUEST_HOST_MASK: '0xfffffffffffff871',
      GUEST_CR4: '0x6154',
      GUEST_LDTR_AR_BYTES: '0x4082',
      GUEST_IA32_EFER: '0x1',
      HOST_IA32_PAT: '0x0',
      VM_EXIT_CONTROLS: '0x23efff',
      EPT_POINTER: '0x1d8af001e',
    });
    expect(p.unmapped.map((u) => [u.line, u.reason])).toContainEqual([55, 'after the VMCS dump']);
    expect(p.unmapped.map((u) => [u.line, u.reason])).toContainEqual([14, 'outside the VMCS dump']);
  });
});

describe('KVM dump_vmcs after QEMU\'s register dump (linux-next 2020, [time][Tpid] caller prefix, quoted)', () => {
  const p = parseOk(fixture(REAL.linuxNext), REAL.linuxNext);
  it('reads the VMCS, including InterruptStatus, APIC addresses and the posted-interrupt vector', () => {
    expect(fields(p, ['GUEST_CR0', 'GUEST_CS_SELECTOR', 'GUEST_CS_AR_BYTES', 'GUEST_CS_BASE', 'GUEST_INTR_STATUS', 'TPR_THRESHOLD', 'APIC_ACCESS_ADDR', 'VIRTUAL_APIC_PAGE_ADDR', 'POSTED_INTR_NV', 'VM_EXIT_REASON', 'EXIT_QUALIFICATION', 'VM_EXIT_INSTRUCTION_LEN'])).toEqual({
      GUEST_CR0: '0x30',
      GUEST_CS_SELECTOR: '0xf000',
      GUEST_CS_AR_BYTES: '0x9b',
      GUEST_CS_BASE: '0xffff0000',
      GUEST_INTR_STATUS: '0x0',
      TPR_THRESHOLD: '0x0',
      APIC_ACCESS_ADDR: '0xe5dfc0000',
      VIRTUAL_APIC_PAGE_ADDR: '0xd2e76c000',
      POSTED_INTR_NV: '0xf2',
      VM_EXIT_REASON: '0x30',
      EXIT_QUALIFICATION: '0x184',
      VM_EXIT_INSTRUCTION_LEN: '0x3',
    });
    expect(p.derived.exit?.failedEntry).toBe(false);
  });

  it("puts QEMU's KVM_GET_SREGS view in derived.qemu, never in the VMCS", () => {
    const q = p.derived.qemu!;
    expect(q.hardwareError).toBe(0n);
    expect(q.regs).toMatchObject({ EDX: 0x306f2n, EIP: 0xfff0n, EFL: 0x10002n });
    expect(q.state).toEqual({ CPL: 0n, II: 0n, A20: 1n, SMM: 0n, HLT: 0n });
    expect(q.segments['CS']).toEqual({ selector: 0xf000n, base: 0xffff0000n, limit: 0xffffn, flags: 0x9b00n });
    expect(Object.keys(q.segments)).toEqual(['ES', 'CS', 'SS', 'DS', 'FS', 'GS', 'LDT', 'TR']);
    expect(q.tables['GDT']).toEqual({ base: 0n, limit: 0xffffn });
    expect(q.control).toMatchObject({ CR0: 0x60000010n, CR4: 0n, DR6: 0xffff0ff0n, DR7: 0x400n, EFER: 0n });
    // QEMU says CR0=60000010 (what the guest sees); the VMCS GUEST_CR0 is 0x30 and stays so.
    expect(p.vmcs.read(enc('GUEST_CR0'))).toBe(0x30n);
    expect(p.unmapped.filter((u) => !u.text.startsWith('#'))).toEqual([]);
  });
});

describe('KVM dump_vmcs, 6.x layout (VMCS header, kvm_intel: prefix, EFER (effective), MSR lists, >=5.18 controls)', () => {
  const p = parseOk(KVM_6X);
  it('does not write the "(effective)" EFER into GUEST_IA32_EFER', () => {
    expect(p.vmcs.read(enc('GUEST_IA32_EFER'))).toBeUndefined();
    expect(p.derived.efer).toEqual({ value: 0xd01n, source: 'effective', line: 21 });
    expect(fields(p, ['GUEST_IA32_PAT', 'HOST_IA32_EFER', 'HOST_IA32_PAT', 'GUEST_IA32_PERF_GLOBAL_CTRL'])).toEqual({
      GUEST_IA32_PAT: '0x407050600070106',
      HOST_IA32_EFER: '0xd01',
      HOST_IA32_PAT: '0x407050600070106',
      GUEST_IA32_PERF_GLOBAL_CTRL: '0x70000000f',
    });
  });

  it('reads the >=5.18 control lines, tertiary controls and the optional lines', () => {
    expect(fields(p, ['CPU_BASED_VM_EXEC_CONTROL', 'SECONDARY_VM_EXEC_CONTROL', 'TERTIARY_VM_EXEC_CONTROL', 'PIN_BASED_VM_EXEC_CONTROL', 'VM_ENTRY_CONTROLS', 'VM_EXIT_CONTROLS', 'TSC_MULTIPLIER', 'GUEST_INTR_STATUS', 'GUEST_PDPTR0', 'GUEST_PDPTR3', 'VE_INFORMATION_ADDRESS', 'VM_ENTRY_INTR_INFO_FIELD'])).toEqual({
      CPU_BASED_VM_EXEC_CONTROL: '0xb5a06dfa',
      SECONDARY_VM_EXEC_CONTROL: '0x82f5afbf',
      TERTIARY_VM_EXEC_CONTROL: '0x10',
      PIN_BASED_VM_EXEC_CONTROL: '0xff',
      VM_ENTRY_CONTROLS: '0xd3ff',
      VM_EXIT_CONTROLS: '0x2befff',
      TSC_MULTIPLIER: '0x1000000000000',
      GUEST_INTR_STATUS: '0xec',
      GUEST_PDPTR0: '0x11',
      GUEST_PDPTR3: '0x44',
      VE_INFORMATION_ADDRESS: '0x104d2e000',
      VM_ENTRY_INTR_INFO_FIELD: '0x800000ec',
    });
    expect(p.derived.layout).toEqual(['kvm', 'kvm:vmcs-header>=5.15', 'kvm:efer>=5.12', 'kvm:controls>=5.18']);
  });

  it('keeps the MSR autoload lists, the VMCS pointer and ve_info in derived', () => {
    expect(p.derived.msrLists['guest autoload']).toEqual([
      { index: 0, msr: 0x600n, value: 0n },
      { index: 1, msr: 0xc0000080n, value: 0xd01n },
    ]);
    expect(p.derived.msrLists['host autoload']).toEqual([{ index: 0, msr: 0x600n, value: 0xfffffe0000010000n }]);
    expect(p.derived.vmcsPointer).toBe('00000000b1d5e4a2');
    expect(p.derived.lastEntryCpu).toBe(3);
    expect(p.derived.veInfo).toEqual([0xffffffffn, 0n, 0n, 0n, 0n, 0n]);
    expect(p.unmapped).toEqual([]);
  });

  it('reads "(autoload)" as an MSR-list value, not the EFER field', () => {
    const q = parseOk(KVM_6X.replace('(effective)', '(autoload)'));
    expect(q.derived.efer?.source).toBe('autoload');
    expect(q.vmcs.read(enc('GUEST_IA32_EFER'))).toBeUndefined();
  });

  it('reads the same state through journal, trace_printk and mail-quote prefixes', () => {
    const base = allFields(p);
    const journal = KVM_6X.split('\n').map((l) => (l ? `Jun 24 17:25:51 builder kernel: ${l}` : l)).join('\n');
    expect(allFields(parseOk(journal))).toEqual(base);
    const tp = KVM_6X.split('\n').map((l, i) => (l ? `  qemu-system-x86-4711  [003] d..1. ${1000 + i}.000001: bprint: dump_vmcs: ${l.replace(/^kvm_intel: /, '')}` : l)).join('\n');
    expect(allFields(parseOk(tp))).toEqual(base);
    const quoted = KVM_6X.split('\n').map((l) => `> > ${l}`).join('\n');
    expect(allFields(parseOk(quoted))).toEqual(base);
  });
});

describe('KVM dump_vmcs, 5.12-5.17 layout', () => {
  const p = parseOk(KVM_5_15);
  it('reads "EFER= 0x…" without a suffix as the GUEST_IA32_EFER field', () => {
    expect(p.vmcs.read(enc('GUEST_IA32_EFER'))).toBe(0n);
    expect(p.derived.efer).toBeUndefined();
    expect(p.derived.layout).toEqual(['kvm', 'kvm:efer>=5.12', 'kvm:controls<=5.17']);
  });
  it("reads the pr_cont virt-APIC line that has no prefix of its own and is not glued to TPR Threshold", () => {
    expect(fields(p, ['TPR_THRESHOLD', 'VIRTUAL_APIC_PAGE_ADDR', 'EPT_POINTER', 'VIRTUAL_PROCESSOR_ID'])).toEqual({
      TPR_THRESHOLD: '0x0',
      VIRTUAL_APIC_PAGE_ADDR: '0x109c6d000',
      EPT_POINTER: '0x10f7e405e',
      VIRTUAL_PROCESSOR_ID: '0x1',
    });
    expect(p.fieldLines.get(enc('VIRTUAL_APIC_PAGE_ADDR'))).toBe(lineOf(KVM_5_15, 'virt-APIC addr'));
    expect(p.unmapped).toEqual([]);
  });
  it('reads the pr_cont line also when no timestamps are printed (dmesg -t)', () => {
    const bare = KVM_5_15.replace(/^\[ *\d+\.\d+\] /gm, '');
    expect(allFields(parseOk(bare))).toEqual(allFields(p));
  });
});

describe('KVM dump_vmcs: bad input and odd input', () => {
  const text = fixture(REAL.dosemu2);
  const lines = text.split('\n');

  it('a dump cut before its control state is a truncated dump naming the last line', () => {
    const cut = lines.slice(0, 61).join('\n') + '\n';
    const e = parseErr(cut, 'cut.txt');
    expect(e.file).toBe('cut.txt');
    expect(e.line).toBe(61);
    expect(e.expected).toMatch(/^truncated dump: expected "\*\*\* Control State \*\*\*"/);
  });

  it('a line cut in the middle is bad input naming that line and the expected form', () => {
    const cut = lines.slice(0, 66).join('\n') + '\n[7011807.029797] VMEntry: intr_info=000004e6 errc\n';
    const e = parseErr(cut);
    expect(e.line).toBe(67);
    expect(e.expected).toMatch(/VMEntry: intr_info=… VMEntry: errcode=… VMEntry: ilen=…/);
  });

  it('a malformed value in a known line is bad input', () => {
    const bad = text.replace('RSP = 0x000000000000eff0  RIP = 0x000000000000017c', 'RSP = 0x000000000000eff0  RIP = 0xZZZ');
    const e = parseErr(bad);
    expect(e.line).toBe(25);
    expect(e.expected).toMatch(/RSP=… RIP=…/);
  });

  it('a value wider than its field is bad input', () => {
    const bad = text.replace('Interruptibility = 00000000', 'Interruptibility = 0000000000');
    expect(parseErr(bad).expected).toMatch(/Interruptibility|ActivityState/);
  });

  it('garbage is not a VMCS dump', () => {
    const e = parseErr('hello\nworld\n', 'garbage.bin');
    expect(e).toEqual({ kind: 'vmcs-dump', file: 'garbage.bin', line: 1, expected: expect.stringMatching(/a KVM dump_vmcs/) });
  });

  it('an empty file is not a VMCS dump', () => {
    expect(parseErr('').line).toBe(1);
  });

  it('a second dump in the same file is listed as unmapped, not mixed into the first', () => {
    const two = parseOk(KVM_5_15 + KVM_5_15.replace('reason=80000021', 'reason=00000030'));
    expect(two.vmcs.read(enc('VM_EXIT_REASON'))).toBe(0x80000021n);
    expect(two.unmapped[0]?.reason).toBe(`another VMCS dump starts at line ${KVM_5_15.split('\n').length}; only the first one in a file is read`);
  });

  it('an unknown line inside the dump is listed, with the section it was in', () => {
    const odd = parseOk(KVM_5_15.replace('[  901.123476] Interruptibility', '[  901.123476] FutureThing = 0x1\n[  901.123476] Interruptibility'));
    expect(odd.unmapped).toEqual([{ line: lineOf(KVM_5_15, 'Interruptibility'), text: 'FutureThing = 0x1', reason: 'not a line of the KVM dump_vmcs guest state' }]);
  });

  it('a conflicting second value for a field keeps the first and lists the conflict', () => {
    const c = parseOk(KVM_6X.replace('InterruptStatus = 00ec', 'InterruptStatus = 00ed'));
    expect(c.vmcs.read(enc('GUEST_INTR_STATUS'))).toBe(0xedn);
    expect(c.unmapped[0]?.reason).toBe(`GUEST_INTR_STATUS = 0xec conflicts with 0xed from line ${lineOf(KVM_6X, 'InterruptStatus')}; the first value is kept`);
    expect(c.unmapped[0]?.line).toBe(lineOf(KVM_6X, 'SVI|RVI'));
  });

  it('a dump with kvm_intel.dump_invalid_vmcs=0 says there is no dump', () => {
    const e = parseErr('[ 12.5] kvm_intel: set kvm_intel.dump_invalid_vmcs=1 to dump internal KVM state.\n');
    expect(e.expected).toMatch(/a KVM dump_vmcs/);
  });
});
