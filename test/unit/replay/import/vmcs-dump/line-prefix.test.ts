// Prefix and damage stripping shared by the text importers (trace-formats.md §1): each prefix kind alone and
// combined, nested quoting, mojibake, and soft-wrap rejoining by prefix evidence and by grammar.
import { describe, expect, it } from 'vitest';
import { joinSoftWraps, logicalLines, physicalLines, stripLinePrefixes } from '../../../../../src/replay/import/line-prefix.js';

describe('stripLinePrefixes', () => {
  const cases: [string, string, string[]][] = [
    ['[  123.456789] CR3 = 0x0', 'CR3 = 0x0', ['dmesg-time']],
    ['[12345.678][T78789] CR3 = 0x0', 'CR3 = 0x0', ['dmesg-time', 'dmesg-caller']],
    ['[28040.962363][T78789] *** Guest State ***', '*** Guest State ***', ['dmesg-time', 'dmesg-caller']],
    ['Jun 24 17:25:51 host kernel: CR3 = 0x0', 'CR3 = 0x0', ['journal']],
    ['2024-06-24T17:25:51+0200 host kernel: kvm_intel: CR3 = 0x0', 'CR3 = 0x0', ['journal', 'pr-fmt']],
    ['Jun  4 07:05:01 h kernel: [ 12.5] kvm_intel: CR3 = 0x0', 'CR3 = 0x0', ['journal', 'dmesg-time', 'pr-fmt']],
    ['kvm_intel: CR3 = 0x0', 'CR3 = 0x0', ['pr-fmt']],
    ['(XEN) CR3 = 0x0', 'CR3 = 0x0', ['xen']],
    ['(XEN) [2019-11-02 14:09:46] CR3 = 0x0', 'CR3 = 0x0', ['xen', 'xen-time']],
    ['(XEN)', '', ['xen']],
    ['[…] CR3 = 0x0', 'CR3 = 0x0', ['elided-time']],
    ['[...] CR3 = 0x0', 'CR3 = 0x0', ['elided-time']],
    ['  qemu-system-x86-4711  [003] d..1.  1000.000001: bprint: dump_vmcs: CR3 = 0x0', 'CR3 = 0x0', ['trace-printk']],
    ['<...>-4711 [003] .... 1000.000001: bprint: vmx_dump_sel: CS:   sel=0x0010', 'CS:   sel=0x0010', ['trace-printk']],
    // A function name is removed only when it looks like one: "CR0:" is payload.
    ['bputs: CR0: actual=0x1', 'CR0: actual=0x1', ['trace-printk']],
    ['> CR3 = 0x0', 'CR3 = 0x0', ['quote']],
    ['> > >> CR3 = 0x0', 'CR3 = 0x0', ['quote']],
    ['> [ 1.0] (XEN) x', 'x', ['quote', 'dmesg-time', 'xen']],
    ['CR3 =ï¿½0x0', 'CR3 = 0x0', []],
    ['CR3 =\uFFFD\uFFFD0x0', 'CR3 = 0x0', []],
  ];
  for (const [raw, text, kinds] of cases) {
    it(`${JSON.stringify(raw)} -> ${JSON.stringify(text)}`, () => {
      const s = stripLinePrefixes(raw, 7);
      expect(s.text.trim()).toBe(text);
      expect(s.prefixes).toEqual(kinds);
      expect(s.line).toBe(7);
    });
  }

  it('counts quote depth and keeps Xen\'s ">>> Domain N <<<" banner intact', () => {
    expect(stripLinePrefixes('> > x').quoteDepth).toBe(2);
    expect(stripLinePrefixes('>>> Domain 3 <<<').text).toBe('>>> Domain 3 <<<');
    expect(stripLinePrefixes('(XEN) >>> Domain 3 <<<').text).toBe('>>> Domain 3 <<<');
  });

  it('marks per-record prefixes (timestamps, journal, (XEN), trace_printk) but not quotes or kvm_intel:', () => {
    expect(stripLinePrefixes('[ 1.0] x').recordPrefix).toBe(true);
    expect(stripLinePrefixes('(XEN) x').recordPrefix).toBe(true);
    expect(stripLinePrefixes('> x').recordPrefix).toBe(false);
    expect(stripLinePrefixes('kvm_intel: x').recordPrefix).toBe(false);
  });

  it('handles CRLF line ends', () => {
    expect(physicalLines('[ 1.0] a\r\n[ 2.0] b\r\n').map((l) => l.text)).toEqual(['a', 'b']);
  });
});

describe('joinSoftWraps', () => {
  it('joins a continuation without the record prefix the previous line had (format=flowed)', () => {
    const l = logicalLines('[ 1.0] CR0: actual=0x1, \nshadow=0x2\n[ 1.1] next\n');
    expect(l.map((x) => [x.line, x.lines, x.text])).toEqual([
      [1, [1, 2], 'CR0: actual=0x1, shadow=0x2'],
      [3, [3], 'next'],
    ]);
  });

  it('does not join across a blank line, or lines that never had a record prefix', () => {
    expect(logicalLines('[ 1.0] a\n\nb\n').map((x) => x.text)).toEqual(['a', '', 'b']);
    expect(logicalLines('a\nb\n').map((x) => x.text)).toEqual(['a', 'b']);
  });

  it('asks the grammar whether a line starts a record (pr_cont lines have no prefix of their own)', () => {
    const grammar = { startsRecord: (t: string) => t.startsWith('virt-APIC') };
    expect(logicalLines('[ 1.0] TPR Threshold = 0x00\nvirt-APIC addr = 0x1\n', grammar).map((x) => x.text)).toEqual(['TPR Threshold = 0x00', 'virt-APIC addr = 0x1']);
  });

  it('joins quoted continuations when the grammar says the previous line is incomplete', () => {
    const grammar = { incomplete: (t: string) => /,$/.test(t.trim()) };
    const l = joinSoftWraps(physicalLines('> CR0: actual=0x1,\n> gh_mask=2\n> CR3 = 0\n'), grammar);
    expect(l.map((x) => x.text)).toEqual(['CR0: actual=0x1,gh_mask=2', 'CR3 = 0']);
  });

  it('joins a certainly-cut line even when the continuation looks like a record of its own', () => {
    const grammar = { startsRecord: (t: string) => t.startsWith('RIP'), mustContinue: (t: string) => !/RIP/.test(t) };
    const l = logicalLines('[ 1.0] RSP = 0x1  \nRIP = 0x2\n', grammar);
    expect(l.map((x) => x.text)).toEqual(['RSP = 0x1  RIP = 0x2']);
  });
});
