// Damage the real dumps the way logs and mail do (trace-formats.md §1) and require the same PartialVmcs and the
// same check outcome: each dump is rebuilt from its payload lines, then given dmesg timestamps, journal or
// `(XEN) [date]` prefixes, `kvm_intel:`, nested mail quoting, and format=flowed soft wraps at several widths.
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { logicalLines } from '../../src/replay/import/line-prefix.js';
import { dumpWrapGrammar } from '../../src/replay/import/vmcs-dump/text-dump.js';
import { parseVmcsDump, type ParsedVmcsDump } from '../../src/replay/import/vmcs-dump/index.js';
import { isQemuLine } from '../../src/replay/import/vmcs-dump/qemu.js';
import { runEntryChecks } from '../../src/cpu/vmentry/index.js';
import { DEFAULT_CPU_MODEL, findCpuModel } from '../../src/cpu/cpu-model.js';

const dir = join(import.meta.dirname, '../../traces/vmcs');
const DUMPS = [
  ['dumpvmcs-dosemu2-core2duo-ds-accessed-bit.txt', 'kvm'],
  ['dumpvmcs-syzbot-gce-4.13-next-cr4smxe.txt', 'kvm'],
  ['dumpvmcs-linux-next-2020-entry-failed-0x0-reset-vector.txt', 'kvm'],
  ['dumpvmcs-xen-4.11-debugkey-v-solo5-hlt-known-good.txt', 'xen'],
] as const;

function parse(text: string, name: string): ParsedVmcsDump {
  const r = parseVmcsDump(text, name);
  if (!r.ok) throw new Error(`${name}: ${r.error.file}:${r.error.line}: ${r.error.expected}`);
  return r.value;
}

const state = (p: ParsedVmcsDump) => [...p.vmcs.values].sort((a, b) => a[0] - b[0]).map(([e, v]) => `${e.toString(16)}=${v.toString(16)}`);
const failing = (p: ParsedVmcsDump) => runEntryChecks(p.vmcs, { cpu: findCpuModel(DEFAULT_CPU_MODEL)! }, 'all').failures.map((f) => f.id);

/** The payload lines of a dump: header comments dropped, prefixes removed, wraps rejoined. */
function payload(text: string, dialect: 'kvm' | 'xen'): string[] {
  return logicalLines(text, dumpWrapGrammar(dialect))
    .filter((l) => !l.text.startsWith('#'))
    .map((l) => l.text.trim());
}

/** Soft-wrap at `width` like a format=flowed mail client: break after a space, continuation without prefix. */
function wrap(prefix: string, line: string, width: number, contPrefix = ''): string[] {
  const out: string[] = [];
  let rest = line;
  let first = true;
  while ((first ? prefix : contPrefix).length + rest.length > width) {
    const room = width - (first ? prefix : contPrefix).length;
    const cut = rest.lastIndexOf(' ', room - 1);
    if (cut <= 0) break;
    out.push((first ? prefix : contPrefix) + rest.slice(0, cut + 1));
    rest = rest.slice(cut + 1);
    first = false;
  }
  out.push((first ? prefix : contPrefix) + rest);
  return out;
}

// Only VMCS-dump lines are wrapped (QEMU's register lines are not part of the VMCS state).
const wrappable = (l: string) => !isQemuLine(l);

const DAMAGE: Record<string, (lines: string[], dialect: 'kvm' | 'xen') => string> = {
  'dmesg timestamps + soft wraps at 64': (ls) => ls.flatMap((l, i) => (wrappable(l) ? wrap(`[${(5000 + i / 1000).toFixed(6)}] `, l, 64) : [l])).join('\n'),
  'printk caller ids + kvm_intel: + wraps at 50': (ls, d) => ls.flatMap((l, i) => (wrappable(l) ? wrap(`[ ${(77 + i / 100).toFixed(6)}][T4242] ${d === 'kvm' ? 'kvm_intel: ' : '(XEN) '}`, l, 50) : [l])).join('\n'),
  'journal prefixes': (ls, d) => ls.map((l) => (d === 'kvm' ? `Jun 18 10:11:12 buildhost kernel: ${l}` : `(XEN) [2020-06-10 12:00:00] ${l}`)).join('\n'),
  'journal + wraps + nested mail quoting': (ls, d) =>
    ls.flatMap((l) => (wrappable(l) ? wrap(d === 'kvm' ? 'Jun 18 10:11:12 h kernel: ' : '(XEN) ', l, 58) : [l])).map((l) => `> > ${l}`).join('\n'),
  'quoted and wrapped inside the quote (no record prefix at all)': (ls) => ls.flatMap((l) => (wrappable(l) ? wrap('> ', l, 44, '> ') : [`> ${l}`])).join('\n'),
  'trace_printk via ftrace': (ls) => ls.map((l, i) => (l ? `  qemu-kvm-31337 [002] d..1. ${(1000 + i).toFixed(6)}: bprint: dump_vmcs: ${l}` : l)).join('\n'),
  'elided timestamps and mojibake': (ls) => ls.map((l) => `[…] ${l.replace(/ {2}/, 'ï¿½ ')}`).join('\n'),
};

describe('damaged copies of the real dumps parse to the same VMCS state and outcome', () => {
  for (const [name, dialect] of DUMPS) {
    const original = parse(readFileSync(join(dir, name), 'utf8'), name);
    const lines = payload(readFileSync(join(dir, name), 'utf8'), dialect);
    for (const [damage, apply] of Object.entries(DAMAGE)) {
      it(`${name}: ${damage}`, () => {
        const text = apply(lines, dialect) + '\n';
        const p = parse(text, `${name} (${damage})`);
        expect(p.format).toBe(original.format);
        expect(state(p)).toEqual(state(original));
        expect(failing(p)).toEqual(failing(original));
        expect(p.derived.exit).toEqual(original.derived.exit === undefined ? undefined : { ...original.derived.exit, line: p.derived.exit!.line });
        if (original.derived.qemu) expect(p.derived.qemu?.control).toEqual(original.derived.qemu.control);
      });
    }
  }

  it('the damage is real: the wrapped variants have more physical lines than payload lines', () => {
    const [name, dialect] = DUMPS[0];
    const lines = payload(readFileSync(join(dir, name), 'utf8'), dialect);
    expect(DAMAGE['dmesg timestamps + soft wraps at 64']!(lines, dialect).split('\n').length).toBeGreaterThan(lines.length + 20);
    expect(DAMAGE['quoted and wrapped inside the quote (no record prefix at all)']!(lines, dialect).split('\n').length).toBeGreaterThan(lines.length + 40);
  });
});
