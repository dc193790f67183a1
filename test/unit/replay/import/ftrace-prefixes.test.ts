// Line prefixes and damage of shared/reference/trace-formats.md §1: raw ftrace (4- and 5-character flags, comms with
// spaces and slashes), trace-cmd (no flags column, padded event names, two-line records), perf script (including a
// wrapped payload), author-stripped lines, mail quoting, soft wraps, mojibake, a break after "event:", cut-off lines.
import { describe, expect, it } from 'vitest';
import { importFtrace, importPerfScript, importTraceCmd } from '../../../../src/replay/import/index.js';
import { splitRecords } from '../../../../src/replay/import/ftrace/records.js';
import { payloadComplete, payloadExtendable } from '../../../../src/replay/import/ftrace/payloads.js';
import { LineAccount, splitLines } from '../../../../src/replay/import/ftrace/stats.js';

const E1 = 'reason HLT rip 0x201 info 0 0';
const HLT = { kind: 'vm-exit', level: 'L2', reason: 12, rip: 0x201n, qualification: 0n, intrInfo: 0 };

function records(text: string) {
  const account = new LineAccount();
  const recs = splitRecords(splitLines(text), { complete: payloadComplete, extendable: payloadExtendable }, account);
  return { recs, account: account.stats() };
}

describe('prefix styles', () => {
  it('raw ftrace with 4-character flags', () => {
    const { recs } = records(`       challenge-24797 [003] d..1 83184.290326: kvm_entry: vcpu 0\n`);
    expect(recs[0]).toMatchObject({ style: 'ftrace', comm: 'challenge', pid: 24797, cpu: 3, flags: 'd..1', timestamp: '83184.290326', event: 'kvm_entry', payload: 'vcpu 0' });
  });

  it('raw ftrace with 5-character flags and a comm with a space and a slash', () => {
    const { recs } = records(`CPU 23/KVM-5046    [014] d.... 17072.747744: kvm_exit: ${E1}\n`);
    expect(recs[0]).toMatchObject({ comm: 'CPU 23/KVM', pid: 5046, cpu: 14, flags: 'd....', event: 'kvm_exit', payload: E1, padded: false });
  });

  it('trace-cmd report without a flags column, event padded to a column', () => {
    const { recs } = records(` qemu-system-x86-6660  [007]   398.691402: kvm_fpu:              unload\n`);
    expect(recs[0]).toMatchObject({ comm: 'qemu-system-x86', pid: 6660, event: 'kvm_fpu', payload: 'unload', padded: true });
    expect(recs[0]!.flags).toBeUndefined();
  });

  it('perf script, with a payload wrapped onto the next line', () => {
    const text = `qemu-system-x86  5046 [014]  1234.567890:      kvm:kvm_exit: reason EPT_VIOLATION rip 0xffffffffc0771aa2\n info 683 800000ec\n`;
    const r = importPerfScript(text);
    expect(r.events).toHaveLength(1); // a valid info2 on an EPT violation can only be IDT-vectoring information
    expect(r.events[0]).toMatchObject({ kind: 'vm-exit', line: 1, reason: 48, qualification: 0x683n, idtVectoringInfo: 0x800000ec });
    expect(r.stats).toEqual({ lines: 2, mapped: 1, skipped: { continuation: 1 } });
  });

  it('author-stripped lines, padded or not', () => {
    expect(importFtrace(`kvm_exit: ${E1}\n   kvm_exit:   ${E1}\n`).events).toEqual([{ ...HLT, line: 1 }, { ...HLT, line: 2 }]);
  });

  it('prose that happens to contain a colon is not an event', () => {
    const r = importFtrace(`Note: this is prose\nkvm_exit: ${E1}\n`);
    expect(r.stats.skipped).toEqual({ prose: 1 });
  });
});

describe('damage', () => {
  it('mail quoting at any depth', () => {
    const r = importFtrace(`> kvm_exit: ${E1}\n>> > kvm_exit: ${E1}\n`);
    expect(r.events).toEqual([{ ...HLT, line: 1 }, { ...HLT, line: 2 }]);
    expect(r.assumptions).toContain('2 records came from mail-quoted lines');
  });

  it('soft-wrapped lines are rejoined only when that makes the payload parse', () => {
    const text = [
      'CPU 3/KVM-9310    [013] ....  6076.453278: kvm_nested_vmexit: vcpu 3 reason',
      'EPT_VIOLATION rip 0x103c00 info1 0x0000000000000781 info2 0x000000008000030d',
      'intr_info 0x00000000 error_code 0x00000000',
      'and this prose line stays prose',
    ].join('\n');
    const r = importFtrace(text);
    expect(r.events[0]).toMatchObject({ kind: 'l0-exit', qualification: 0x781n, idtVectoringInfo: 0x8000030d });
    expect(r.stats).toEqual({ lines: 4, mapped: 1, skipped: { continuation: 2, prose: 1 } });
  });

  it('a wrap inside a quoted block keeps to its quote depth', () => {
    const text = ['>> kvm_exit: vcpu 0 reason HLT rip 0x201', '>> info1 0x0 info2 0x0 intr_info 0x0 error_code 0x0', '> a reply'].join('\n');
    expect(importFtrace(text).stats).toEqual({ lines: 3, mapped: 1, skipped: { continuation: 1, prose: 1 } });
  });

  it('mojibake runs become spaces', () => {
    expect(importFtrace(`kvm_exit: reasonï¿½HLT rip 0x201 info 0 0\n`).events[0]).toEqual({ ...HLT, line: 1 });
  });

  it('a line break after "event:" (Bugzilla mail)', () => {
    const r = importFtrace(`qemu-kvm-1234 [001] .... 100.000001: kvm_exit:\n${E1}\n`);
    expect(r.events).toEqual([{ ...HLT, line: 1 }]);
    expect(r.stats.skipped).toEqual({ continuation: 1 });
  });

  it('the two-line trace-cmd style with comment lines in between records', () => {
    const text = 'qemu-system-x86-5665  [000] ....   280.971121:\n kvm_exit: reason EXTERNAL_INTERRUPT rip 0x22da info 0 800000fd\n # a comment\n\n';
    const r = importTraceCmd(text, { kernel: '>=5.10' });
    expect(r.events).toEqual([{ kind: 'vm-exit', line: 1, level: 'L2', reason: 1, rip: 0x22dan, qualification: 0n, idtVectoringInfo: 0x800000fd }]);
    expect(r.stats).toEqual({ lines: 4, mapped: 1, skipped: { blank: 1, comment: 1, continuation: 1 } });
  });

  it('a line cut off after the event name is an unmapped, counted record', () => {
    const r = importFtrace('       challenge-24797 [003] .... 83184.290416: kvm_exit\n');
    expect(r.events).toEqual([{ kind: 'unmapped', line: 1, reason: 'kvm_exit record with no payload (cut off)', text: '' }]);
    expect(r.stats.skipped).toEqual({ 'unmapped:truncated record': 1 });
  });

  it('a header with no event on it and none on the next line', () => {
    const r = importFtrace('qemu-1 [000] .... 1.0:\nplain words\n');
    expect(r.stats.skipped).toEqual({ 'unmapped:record without event name': 1, prose: 1 });
  });

  it('a trace_printk record keeps its text as a raw bprint record', () => {
    const r = importFtrace(' qemu-1 [000] .... 1.0: bprint: dump_vmcs: CR0: actual=0x0000000080050033\n');
    expect(r.events).toEqual([{ kind: 'raw', line: 1, sourceKind: 'bprint', text: 'CR0: actual=0x0000000080050033', reason: expect.stringContaining('trace_printk') }]);
  });

  it('a file with no trace records is an import error', () => {
    expect(() => importFtrace('just some text\n', { sourceName: 'x.txt' })).toThrow('x.txt: no-records: ftrace records');
  });
});

describe('perf top and preambles', () => {
  it('perf top lines are kept as raw aggregate records; their column header is not prose', () => {
    const r = importPerfScript('  Overhead  Trace output\n    12.34%  reason EPT_VIOLATION rip 0xffffffffc0771aa2 info 683 800000ec\n');
    expect(r.events).toEqual([{ kind: 'raw', line: 2, sourceKind: 'perf_top', text: '12.34% reason EPT_VIOLATION rip 0xffffffffc0771aa2 info 683 800000ec', reason: expect.stringContaining('aggregate') }]);
    expect(r.stats).toEqual({ lines: 2, mapped: 0, skipped: { comment: 1, 'raw:perf_top': 1 } });
  });

  it("trace-cmd's preamble lines are not prose", () => {
    const r = importTraceCmd('version = 6\ncpus=2\nCPU 1 is empty\n qemu-1  [000]   1.0: kvm_fpu:              load\n');
    expect(r.stats.skipped).toEqual({ comment: 3, 'raw:kvm_fpu': 1 });
  });
});
