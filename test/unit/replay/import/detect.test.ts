// Format detection picks the importer from the first lines, and refuses to guess when nothing matches.
// Covers each layout the importers accept (IRIS, perf script, trace-cmd, raw ftrace, author-stripped lines).
import { describe, expect, it } from 'vitest';
import { detectFormat, ImportError, importText } from '../../../../src/replay/import/index.js';

describe('detectFormat', () => {
  it.each([
    ['iris', 'ffffffff\nffffffff\n0\n1fffffff\n0\n2\n'],
    ['perf-script', 'qemu-system-x86  5046 [014]  1234.567890:      kvm:kvm_exit: reason HLT rip 0x1 info 0 0\n'],
    ['perf-script', '  Overhead  Trace output\n    12.34%  reason HLT rip 0x1 info 0 0\n'],
    ['trace-cmd', ' qemu-6660  [007]   398.691402: kvm_fpu:              unload\n'],
    ['trace-cmd', 'version = 6\nCPU 0 is empty\nqemu-1 [000] 1.0: kvm_fpu: load\n'],
    ['trace-cmd', 'qemu-5665  [000] ....   280.971121:\n kvm_exit: reason HLT rip 0x1 info 0 0\n'],
    ['ftrace', '# tracer: nop\n       challenge-24797 [003] .... 83184.290314: kvm_fpu: load\n'],
    ['ftrace', 'kvm_exit: vcpu 0 reason HLT rip 0x1\n'],
  ])('%s', (format, text) => {
    expect(detectFormat(text)).toBe(format);
  });

  it('nothing recognisable', () => {
    expect(detectFormat('hello\nworld\n')).toBeUndefined();
    expect(detectFormat('12\n34\n')).toBeUndefined();
    expect(() => importText('auto', 'hello\n', { sourceName: 'h.txt' })).toThrow(ImportError);
    expect(() => importText('auto', 'hello\n', { sourceName: 'h.txt' })).toThrow('h.txt: unknown-format: one of ftrace, trace-cmd, perf-script, iris');
  });
});
