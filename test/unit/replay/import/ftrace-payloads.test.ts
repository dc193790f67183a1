// One test per payload variant of shared/reference/trace-formats.md §2–§5: kvm_exit E1–E4 and the CAN'T FIND FIELD
// fallback, kvm_entry, every nested event form, and the other KVM events, through the importers end to end.
import { describe, expect, it } from 'vitest';
import { importFtrace, importTraceCmd, type ImportResult } from '../../../../src/replay/import/index.js';
import type { TraceEvent } from '../../../../src/replay/format/index.js';

/** Import author-stripped lines ("event: payload") as raw ftrace. */
function lines(...l: string[]): ImportResult {
  return importFtrace(l.join('\n') + '\n', { sourceName: 'variants.txt' });
}

function only(r: ImportResult, kind: TraceEvent['kind']): TraceEvent[] {
  return r.events.filter((e) => e.kind === kind);
}

describe('kvm_exit', () => {
  it('E1 (kernel ≤5.9 raw ftrace): info2 is the VM-exit interruption information', () => {
    const r = lines('kvm_exit: reason EXTERNAL_INTERRUPT rip 0x100 info 0 800000f6');
    expect(r.events).toEqual([{ kind: 'vm-exit', line: 1, level: 'L2', reason: 1, rip: 0x100n, qualification: 0n, intrInfo: 0x800000f6 }]);
    expect(r.assumptions.join('\n')).toContain('kernel ≤5.9 inferred from line 1');
    expect(r.stats).toEqual({ lines: 1, mapped: 1, skipped: {} });
  });

  it('E2 (kernel ≥5.10): every field, info2 as IDT-vectoring information', () => {
    const r = lines('kvm_exit: vcpu 0 reason EPT_VIOLATION rip 0x1 info1 0x0000000000000181 info2 0x0000000080000301 intr_info 0x00000000 error_code 0x00000000');
    expect(r.events).toEqual([{
      kind: 'vm-exit', line: 1, vcpu: 0, level: 'L2', reason: 48, rip: 1n, qualification: 0x181n, idtVectoringInfo: 0x80000301, intrInfo: 0, intrError: 0,
    }]);
  });

  it('E2 with a failure flag after the name', () => {
    const [e] = lines('kvm_exit: vcpu 1 reason INVALID_STATE FAILED_VMENTRY rip 0xfff0 info1 0x0000000000000000 info2 0x0000000000000000 intr_info 0x00000000 error_code 0x00000000').events;
    expect(e).toMatchObject({ kind: 'vm-exit', reason: 0x80000021 });
  });

  it('E3 (the kvm plugin on a ≥5.10 kernel): info2 follows the version the log shows (a valid info2 on an EPT violation dates it)', () => {
    const r = importTraceCmd(
      'CPU 0/KVM-100   [001]  1.000001: kvm_entry:            vcpu 0, rip 0xffffffffc0771aa2\n' +
        'CPU 0/KVM-100   [001]  1.000002: kvm_exit:             reason EPT_VIOLATION rip 0xffffffffc0771aa2 info 683 800000ec\n',
    );
    expect(only(r, 'vm-exit')).toEqual([{ kind: 'vm-exit', line: 2, level: 'L2', reason: 48, rip: 0xffffffffc0771aa2n, qualification: 0x683n, idtVectoringInfo: 0x800000ec }]);
    expect(r.assumptions.join('\n')).toContain('kernel ≥5.10 inferred from line 2: kvm_exit info2 0x800000ec is valid on the EPT_VIOLATION exit');
  });

  it('E3: kvm_entry\'s rip is weak evidence that never decides; a valid info2 on an external-interrupt exit does (SDM 27.2.4)', () => {
    const r = importTraceCmd(
      'CPU 0/KVM-100   [001]  1.000001: kvm_entry:            vcpu 0, rip 0x22da\n' +
        'CPU 0/KVM-100   [001]  1.000002: kvm_exit:             reason EXTERNAL_INTERRUPT rip 0x22da info 0 800000fd\n',
    );
    expect(only(r, 'vm-exit')).toEqual([{ kind: 'vm-exit', line: 2, level: 'L2', reason: 1, rip: 0x22dan, qualification: 0n, intrInfo: 0x800000fd }]);
    expect(r.assumptions.join('\n')).toContain('does not outweigh it');
    const weakOnly = importTraceCmd(
      'CPU 0/KVM-100   [001]  1.000001: kvm_entry:            vcpu 0, rip 0x22da\n' +
        'CPU 0/KVM-100   [001]  1.000002: kvm_exit:             reason HLT rip 0x22da info 0 0\n',
    );
    expect(only(weakOnly, 'vm-exit')).toEqual([{ kind: 'vm-exit', line: 2, level: 'L2', reason: 12, rip: 0x22dan, qualification: 0n }]);
    expect(weakOnly.assumptions.join('\n')).toContain('kernel version unknown: only line 1 hints at it');
  });

  it('E3 with nothing to date the kernel: info2 is reported, not guessed', () => {
    const r = importTraceCmd('qemu-1  [000]  5.5: kvm_exit:             reason HLT rip 0x201 info 0 0\n');
    expect(r.events[0]).toEqual({ kind: 'vm-exit', line: 1, level: 'L2', reason: 12, rip: 0x201n, qualification: 0n });
    expect(r.events[1]).toMatchObject({ kind: 'unmapped', line: 1, reason: expect.stringContaining('info2 0x0 not mapped') });
    expect(r.assumptions.join('\n')).toContain('kernel version unknown');
  });

  it('E3 with the kernel era given by the caller', () => {
    const r = importTraceCmd('qemu-1  [000]  5.5: kvm_exit:             reason EXTERNAL_INTERRUPT rip 0x201 info 0 800000f6\n', { kernel: '<=5.9' });
    expect(r.events).toEqual([{ kind: 'vm-exit', line: 1, level: 'L2', reason: 1, rip: 0x201n, qualification: 0n, intrInfo: 0x800000f6 }]);
  });

  it('E4 (author-trimmed E2): just the fields given', () => {
    const r = lines('kvm_exit: vcpu 23 reason DR_ACCESS info1 0x0000000000000216');
    expect(r.events).toEqual([{ kind: 'vm-exit', line: 1, vcpu: 23, level: 'L2', reason: 29, qualification: 0x216n }]);
  });

  it("the plugin's CAN'T FIND FIELD fallback followed by kernel text", () => {
    const r = lines(`kvm_exit: CAN'T FIND FIELD "rip"<CANT FIND FIELD exit_code>vcpu 0 reason HLT rip 0x10 info1 0x0000000000000000 info2 0x0000000000000000 intr_info 0x00000000 error_code 0x00000000`);
    expect(r.events[0]).toMatchObject({ kind: 'vm-exit', reason: 12, rip: 0x10n });
  });

  it('an alias (PENDING_INTERRUPT = interrupt window) and a hex reason', () => {
    expect(lines('kvm_exit: reason PENDING_INTERRUPT rip 0x22da info 0 0').events[0]).toMatchObject({ reason: 7 });
    expect(lines('kvm_exit: vcpu 0 reason 0x4f rip 0x1').events[0]).toMatchObject({ reason: 0x4f });
  });

  it('an unknown name is kept as text, with the count in the assumptions', () => {
    const r = lines('kvm_exit: vcpu 0 reason npf rip 0x1');
    expect(r.events[0]).toEqual({ kind: 'vm-exit', line: 1, vcpu: 0, level: 'L2', reasonText: 'npf', rip: 1n });
    expect(r.assumptions).toContain('unknown exit reason "npf" kept as text (1 exits)');
  });

  it('a malformed payload is an unmapped record, counted', () => {
    const r = lines('kvm_exit: reason HLT rip nowhere');
    expect(r.events).toEqual([{ kind: 'unmapped', line: 1, reason: 'kvm_exit payload matches none of E1–E4', text: 'reason HLT rip nowhere' }]);
    expect(r.stats.skipped).toEqual({ 'unmapped:malformed kvm_exit': 1 });
  });
});

describe('kvm_entry', () => {
  it.each([
    ['vcpu 3', { vcpu: 3 }],
    ['vcpu 0, rip 0x22da', { vcpu: 0, rip: 0x22dan }],
    ['vcpu 1 rip 0xffffffff81000000', { vcpu: 1, rip: 0xffffffff81000000n }],
    ['vcpu 2, rip 0x10 [immediate exit]', { vcpu: 2, rip: 0x10n, note: '[immediate exit]' }],
  ])('%s', (payload, want) => {
    expect(lines(`kvm_entry: ${payload}`).events[0]).toEqual({ kind: 'vm-entry', line: 1, level: 'L2', note: '', ...want });
  });
});

describe('nested events', () => {
  it('kvm_nested_vmexit, kernel ≤5.9 form', () => {
    const r = lines('kvm_nested_vmexit: rip: 0x00007fa9ee5224e4 reason: IO_INSTRUCTION ext_inf1: 0x000000005658000b ext_inf2: 0x0000000000000000 ext_int: 0x00000000 ext_int_err: 0x00000000');
    expect(r.kind).toBe('nested');
    expect(r.events[0]).toEqual({ kind: 'l0-exit', line: 1, level: 'L2', reason: 30, rip: 0x7fa9ee5224e4n, qualification: 0x5658000bn, idtVectoringInfo: 0, intrInfo: 0, intrError: 0 });
  });

  it('kvm_nested_vmexit, kernel ≥5.10 form (IDT-vectoring info in info2)', () => {
    const [e] = lines('kvm_nested_vmexit: vcpu 3 reason EPT_VIOLATION rip 0x103c00 info1 0x0000000000000781 info2 0x000000008000030d intr_info 0x00000000 error_code 0x00000000').events;
    expect(e).toEqual({ kind: 'l0-exit', line: 1, vcpu: 3, level: 'L2', reason: 48, rip: 0x103c00n, qualification: 0x781n, idtVectoringInfo: 0x8000030d, intrInfo: 0, intrError: 0 });
  });

  it('kvm_nested_vmexit, plugin form', () => {
    const [e] = lines('kvm_nested_vmexit: rip fffff802987d6169 reason EPT_VIOLATION info1 181 info2 0 int_info 0 int_info_err 0').events;
    expect(e).toEqual({ kind: 'l0-exit', line: 1, level: 'L2', reason: 48, rip: 0xfffff802987d6169n, qualification: 0x181n, idtVectoringInfo: 0, intrInfo: 0, intrError: 0 });
  });

  it('kvm_nested_vmexit with a failed entry also records the entry failure', () => {
    const r = lines('kvm_nested_vmexit: vcpu 12 reason INVALID_STATE FAILED_VMENTRY rip 0x103c00 info1 0x0000000000000000 info2 0x0000000000000000 intr_info 0x00000000 error_code 0x00000000');
    expect(r.events[1]).toMatchObject({ kind: 'entry-failure', level: 'L2', exitReason: 0x80000021, qualification: 0n, checkId: '' });
  });

  it('kvm_nested_vmexit_inject, kernel and plugin forms; a preceding L2 exit is reflected', () => {
    const r = lines(
      'kvm_nested_vmexit: rip ffff reason EXTERNAL_INTERRUPT info1 0 info2 0 int_info 80000081 int_info_err 0',
      'kvm_nested_vmexit_inject: reason: EXTERNAL_INTERRUPT ext_inf1: 0x0000000000000000 ext_inf2: 0x0000000000000000 ext_int: 0x80000081 ext_int_err: 0x00000000',
      'kvm_nested_vmexit_inject: reason EXTERNAL_INTERRUPT info1 0 info2 0 int_info 80000081 int_info_err 0',
    );
    expect(r.events.map((e) => e.kind)).toEqual(['l0-exit', 'reflection', 'vm-exit', 'vm-exit']);
    expect(r.events[1]).toMatchObject({ decision: 'reflected', exitReason: 1, inferred: true, rip: 0xffffn });
    expect(r.events[2]).toEqual({ kind: 'vm-exit', line: 2, level: 'L2', reason: 1, qualification: 0n, idtVectoringInfo: 0, intrInfo: 0x80000081, intrError: 0 });
    expect(r.events[3]).toEqual({ ...r.events[2], line: 3 });
  });

  it('an L2 exit followed by the next entry without inject was handled by L0', () => {
    const r = importTraceCmd(
      ' qemu-6660  [007]   398.691475: kvm_exit:             reason IO_INSTRUCTION rip 0x7fa9ee5224e4 info 5658000b 0\n' +
        ' qemu-6660  [007]   398.691476: kvm_nested_vmexit:    rip 7fa9ee5224e4 reason IO_INSTRUCTION info1 5658000b info2 0 int_info 0 int_info_err 0\n' +
        ' qemu-6660  [007]   398.691530: kvm_entry:            vcpu 3\n',
    );
    expect(r.events).toEqual([
      { kind: 'l0-exit', line: 1, level: 'L2', reason: 30, rip: 0x7fa9ee5224e4n, qualification: 0x5658000bn, intrInfo: 0, idtVectoringInfo: 0, intrError: 0 },
      { kind: 'reflection', line: 3, decision: 'handled-by-l0', exitReason: 30, inferred: true, rip: 0x7fa9ee5224e4n, rule: 'no kvm_nested_vmexit_inject before line 3 (kvm_entry)' },
      { kind: 'vm-entry', line: 3, vcpu: 3, level: 'L2', note: '' },
    ]);
    expect(r.stats).toEqual({ lines: 3, mapped: 3, skipped: {} });
  });

  it('a kvm_exit with no kvm_nested_vmexit before the next entry was an L1 exit', () => {
    const r = importTraceCmd(
      ' q-1  [000]  1.1: kvm_nested_vmenter:   rip: 0x0000000000001000 vmcs: 0x0000000000010000 nested_rip: 0x0000000000002000 int_ctl: 0x00000000 event_inj: 0x00000000 nested_ept=n guest cr3: 0x0000000000003000\n' +
        ' q-1  [000]  1.2: kvm_exit:             reason VMREAD rip 0x1010 info 0 0\n' +
        ' q-1  [000]  1.3: kvm_entry:            vcpu 0\n',
    );
    expect(r.events[1]).toMatchObject({ kind: 'l0-exit', level: 'L1', reason: 23 });
  });

  it('kvm_nested_vmenter, both tails, and the SVM form', () => {
    const r = lines(
      'kvm_nested_vmenter: rip: 0xffffffffc0a0e2a0 vmcs: 0x0000000112345000 nested_rip: 0x000000000000fff0 int_ctl: 0x00000000 event_inj: 0x80000b0e nested_ept=y nested_eptp: 0x000000010000405e',
      'kvm_nested_vmenter: rip: 0x0000000000000001 vmcs: 0xffffffffffffffff nested_rip: 0x0000000000000002 int_ctl: 0x00000000 event_inj: 0x00000000 nested_ept=n guest cr3: 0x0000000000001000',
      'kvm_nested_vmenter: rip: 0x0000000000000001 vmcb: 0x0000000000001000 nested_rip: 0x0000000000000002 int_ctl: 0x00000000 event_inj: 0x00000000 npt: on nested_eptp: 0x0000000000001000',
    );
    expect(r.events[0]).toEqual({
      kind: 'vm-entry', line: 1, level: 'L2', note: '', rip: 0xfff0n, l1Rip: 0xffffffffc0a0e2a0n, vmcs12: 0x112345000n, entryIntrInfo: 0x80000b0e, intCtl: 0, eptp: 0x10000405en,
    });
    expect(r.events[1]).toMatchObject({ vmcs12: 0xffffffffffffffffn, guestCr3: 0x1000n });
    expect(r.events[2]).toMatchObject({ kind: 'unmapped', reason: expect.stringContaining('SVM') });
    expect(r.stats.skipped).toEqual({ 'unmapped:SVM form': 1 });
  });

  it('kvm_nested_intr_vmexit and kvm_nested_vmenter_failed', () => {
    const r = lines('kvm_nested_intr_vmexit: rip: 0x000000000040108a', 'kvm_nested_vmenter_failed: nested_vmx_check_guest_state: CR0.PG without CR0.PE');
    expect(r.events).toEqual([
      { kind: 'reflection', line: 1, decision: 'reflected', exitReason: 1, inferred: false, rip: 0x40108an, rule: 'kvm_nested_intr_vmexit: L0 exits to L1 for an interrupt pending for L1' },
      { kind: 'entry-failure', line: 2, level: 'L2', checkId: '', detail: 'nested_vmx_check_guest_state: CR0.PG without CR0.PE' },
    ]);
  });
});

describe('other KVM events', () => {
  it('kvm_cr and kvm_cpuid are register observations', () => {
    const r = lines('kvm_cr: cr_write 0 = 0x80050033', 'kvm_cpuid: func 1 idx 0 rax 306a9 rbx 10800 rcx 7fbae3ff rdx bfebfbff, cpuid entry found');
    expect(r.events[0]).toEqual({ kind: 'registers', line: 1, level: 'L2', regs: new Map([[18, 0x80050033n]]) });
    expect(r.events[1]).toEqual({ kind: 'registers', line: 2, level: 'L2', regs: new Map([[0, 0x306a9n], [1, 0x7fbae3ffn], [2, 0xbfebfbffn], [3, 0x10800n]]) });
  });

  it('kvm_inj_virq and kvm_inj_exception are external events', () => {
    const r = lines('kvm_inj_virq: IRQ 0xec [reinjected]', 'kvm_inj_exception: #PF (0x3)', 'kvm_inj_exception: #DB [reinjected]', 'kvm_inj_exception: #UD (0x0)');
    expect(r.events).toEqual([
      { kind: 'external', line: 1, external: 'interrupt', vector: 0xec, atInstruction: 0n, reinjected: true, target: 'L2' },
      { kind: 'external', line: 2, external: 'exception', vector: 14, errorCode: 3, atInstruction: 0n, reinjected: false, target: 'L2' },
      { kind: 'external', line: 3, external: 'exception', vector: 1, atInstruction: 0n, reinjected: true, target: 'L2' },
      { kind: 'external', line: 4, external: 'exception', vector: 6, atInstruction: 0n, reinjected: false, target: 'L2' },
    ]);
    expect(r.assumptions.join('\n')).toContain('1 kvm_inj_exception "(0x0)" placeholders');
  });

  it('kvm_emulate_insn, kernel and plugin forms, are L2 steps', () => {
    const r = lines('kvm_emulate_insn: 0:1:f4 (prot32) failed', 'kvm_emulate_insn: 0:fffff802987d6169: f3 a5 FAIL');
    expect(r.events).toEqual([
      { kind: 'l2-step', line: 1, rip: 1n, instruction: Uint8Array.of(0xf4), regs: new Map(), emulationFailed: true, mode: 'prot32', csBase: 0n },
      { kind: 'l2-step', line: 2, rip: 0xfffff802987d6169n, instruction: Uint8Array.of(0xf3, 0xa5), regs: new Map(), emulationFailed: true, mode: '', csBase: 0n },
    ]);
  });

  it('events without a place in the model are raw records with a reason', () => {
    const r = lines(
      'kvm_page_fault: address febd0000 error_code 181',
      'kvm_page_fault: vcpu 0 rip 0xffffffff81000000 address 0x00000000febd0000 error_code 0x200000006',
      'kvm_pio: pio_read at 0x5658 size 4 count 1 val 0x4 ',
      'kvm_pio: pio_write at 0x70 size 1 count 2 val 0x8f (...)',
      'kvm_mmio: mmio unsatisfied-read len 4 gpa 0xfee00300 val 0x0',
      'kvm_msr: msr_write 1d9 = 0x1 (#GP)',
      'kvm_userspace_exit: reason KVM_EXIT_IO (2)',
      'kvm_smm_transition: vcpu 0: entering SMM, smbase 0x30000',
      'kvm_fpu: load',
    );
    expect(r.events.every((e) => e.kind === 'raw')).toBe(true);
    expect(r.events[2]).toEqual({ kind: 'raw', line: 3, sourceKind: 'kvm_pio', text: 'pio_read at 0x5658 size 4 count 1 val 0x4', reason: 'device emulation (port I/O) is outside the model' });
    expect(r.stats).toEqual({
      lines: 9, mapped: 0,
      skipped: { 'raw:kvm_fpu': 1, 'raw:kvm_mmio': 1, 'raw:kvm_msr': 1, 'raw:kvm_page_fault': 2, 'raw:kvm_pio': 2, 'raw:kvm_smm_transition': 1, 'raw:kvm_userspace_exit': 1 },
    });
  });

  it('a known event with a broken payload is unmapped, not raw', () => {
    expect(lines('kvm_pio: pio_sideways at 0x70').stats.skipped).toEqual({ 'unmapped:malformed kvm_pio': 1 });
  });
});
