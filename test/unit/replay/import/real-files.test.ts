// Every real log in test/fixtures/logs (copies of shared/data, see PROVENANCE) imports with its format detected,
// every line accounted for (counts asserted exactly), and the observations each file is known for present.
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { detectFormat, importText, type ImportResult } from '../../../../src/replay/import/index.js';
import { decodeTrace, encodeTrace, traceStats, type TraceEvent } from '../../../../src/replay/format/index.js';

const dir = join(import.meta.dirname, '../../../fixtures/logs');
const load = (f: string) => readFileSync(join(dir, f), 'utf8');
const imported = new Map<string, ImportResult>();
function get(f: string): ImportResult {
  if (!imported.has(f)) imported.set(f, importText('auto', load(f), { sourceName: f }));
  return imported.get(f)!;
}
const kinds = (events: readonly TraceEvent[]) => {
  const c: Record<string, number> = {};
  for (const e of events) c[e.kind] = (c[e.kind] ?? 0) + 1;
  return c;
};

const expected: Record<string, { format: string; stats: ImportResult['stats']; kinds: Record<string, number>; kind: string }> = {
  'real/ftrace-ctf-kvm-challenge-trace-pipe-4.x.txt': {
    format: 'ftrace', kind: 'single-level',
    stats: { lines: 43, mapped: 11, skipped: { blank: 1, comment: 14, 'raw:kvm_fpu': 9, 'raw:kvm_pio': 3, 'raw:kvm_userspace_exit': 4, 'unmapped:truncated record': 1 } },
    kinds: { raw: 16, 'vm-entry': 6, 'vm-exit': 5, unmapped: 1 },
  },
  'real/ftrace-jailhouse-nested-pio-loop-5.2.txt': {
    format: 'trace-cmd', kind: 'nested',
    stats: { lines: 29, mapped: 7, skipped: { comment: 12, 'raw:kvm_fpu': 4, 'raw:kvm_mmu_get_page': 2, 'raw:kvm_pio': 2, 'raw:kvm_userspace_exit': 2 } },
    kinds: { 'l0-exit': 3, raw: 10, reflection: 2, 'vm-entry': 2 },
  },
  'real/ftrace-qemu-pckbd-freedos-realmode-5.10plus.txt': {
    format: 'trace-cmd', kind: 'single-level',
    stats: { lines: 89, mapped: 19, skipped: { blank: 7, comment: 20, continuation: 31, 'raw:kvm_ack_irq': 2, 'raw:tracing_mark_write': 10 } },
    kinds: { raw: 12, 'vm-exit': 10, 'vm-entry': 9 },
  },
  'real/ftrace-utexas-nested-failed-vmentry-5.10.txt': {
    format: 'ftrace', kind: 'nested',
    stats: { lines: 38, mapped: 2, skipped: { blank: 5, comment: 13, continuation: 5, prose: 13 } },
    kinds: { 'l0-exit': 2, 'entry-failure': 1 },
  },
  'iris/boot_seed0': {
    format: 'iris', kind: 'single-level',
    stats: { lines: 666009, mapped: 666009, skipped: {} },
    kinds: { 'vm-exit': 7000, registers: 7000, 'vmcs-snapshot': 13994 },
  },
  'iris/guest_workload_recording_seeds': {
    format: 'iris', kind: 'single-level',
    stats: { lines: 457674, mapped: 457674, skipped: {} },
    kinds: { 'vm-exit': 5000, registers: 5000, 'vmcs-snapshot': 9999 },
  },
};

describe('real logs', () => {
  for (const [file, want] of Object.entries(expected)) {
    it(`${file}: detected, every line accounted for, events as expected`, () => {
      expect(detectFormat(load(file))).toBe(want.format);
      const r = get(file);
      expect(r.format).toBe(want.format);
      expect(r.kind).toBe(want.kind);
      expect(r.stats).toEqual(want.stats);
      expect(kinds(r.events)).toEqual(want.kinds);
      expect(r.header.provenance?.counts).toEqual(want.stats);
      expect(r.header.provenance?.assumptions).toEqual(r.assumptions);
    });
  }

  it('ctf (raw trace_pipe, 4.x): E1 info2 is interruption info; the cut-off last line is reported', () => {
    const r = get('real/ftrace-ctf-kvm-challenge-trace-pipe-4.x.txt');
    expect(r.events.find((e) => e.kind === 'vm-exit')).toEqual({ kind: 'vm-exit', line: 17, level: 'L2', reason: 1, rip: 0x100n, qualification: 0n, intrInfo: 0x800000f6 });
    expect(r.events.find((e) => e.kind === 'unmapped')).toMatchObject({ line: 31, reason: 'kvm_exit record with no payload (cut off)' });
    expect(r.assumptions).toContain('kvm_exit "info A B" text: info2 read as VM-exit interruption information (kernel ≤5.9)');
  });

  it('jailhouse (nested, 5.2): L2 port I/O handled by L0 instead of reflected, every time', () => {
    const r = get('real/ftrace-jailhouse-nested-pio-loop-5.2.txt');
    const reflections = r.events.filter((e) => e.kind === 'reflection');
    expect(reflections.map((e) => e.kind === 'reflection' && [e.decision, e.exitReason])).toEqual([['handled-by-l0', 30], ['handled-by-l0', 30]]);
    const exits = r.events.filter((e) => e.kind === 'l0-exit');
    expect(exits.every((e) => e.kind === 'l0-exit' && e.level === 'L2' && e.qualification === 0x5658000bn && e.rip === 0x7fa9ee5224e4n)).toBe(true);
    expect(exits.map((e) => e.line)).toEqual([13, 20, 28]); // lines 21 and 29 merged into the kvm_exit before them
  });

  it('qemu pckbd (trace-cmd two-line style, kvm_entry with rip): info2 is VM-exit interruption information (valid on external-interrupt exits)', () => {
    const r = get('real/ftrace-qemu-pckbd-freedos-realmode-5.10plus.txt');
    expect(r.events.find((e) => e.kind === 'vm-exit')).toEqual({ kind: 'vm-exit', line: 16, level: 'L2', reason: 1, rip: 0x22dan, qualification: 0n, intrInfo: 0x800000fd });
    expect(r.assumptions).toContain('31 records written over two lines (header, then "event: payload") were joined');
    expect(traceStats(r.events).vmExits.byLevel.L2).toEqual({ IO_INSTRUCTION: 6, EXTERNAL_INTERRUPT: 3, INTERRUPT_WINDOW: 1 });
  });

  it('utexas (mail-wrapped ≥5.10 kvm_nested_vmexit): EPT violation during #GP delivery, then a failed L2 entry', () => {
    const r = get('real/ftrace-utexas-nested-failed-vmentry-5.10.txt');
    expect(r.events).toEqual([
      { kind: 'l0-exit', line: 15, vcpu: 12, level: 'L2', reason: 0x80000021, rip: 0x103c00n, qualification: 0n, idtVectoringInfo: 0, intrInfo: 0, intrError: 0 },
      { kind: 'entry-failure', line: 15, level: 'L2', checkId: '', exitReason: 0x80000021, qualification: 0n, detail: 'VM entry failed: kvm_nested_vmexit reports exit reason 0x80000021' },
      { kind: 'l0-exit', line: 20, vcpu: 3, level: 'L2', reason: 48, rip: 0x103c00n, qualification: 0x781n, idtVectoringInfo: 0x8000030d, intrInfo: 0, intrError: 0 },
    ]);
  });

  it('IRIS boot: exit fields from VMREADs, GPRs, and the VMWRITE that advances RIP', () => {
    const r = get('iris/boot_seed0');
    const [exit, regs, atExit, afterHandler] = r.events;
    expect(exit).toEqual({ kind: 'vm-exit', line: 1, level: 'L2', rip: 0x7104n, reason: 30, idtVectoringInfo: 0, qualification: 0x700040n, instructionLength: 2 });
    expect(regs).toMatchObject({ kind: 'registers', level: 'L2' });
    expect(regs?.kind === 'registers' && regs.regs.get(7)).toBe(0x6f5en); // RDI is IRIS field fffffff
    expect(atExit?.kind === 'vmcs-snapshot' && atExit.fields.get(0x681e)).toBe(0x7104n);
    expect(afterHandler?.kind === 'vmcs-snapshot' && afterHandler.fields.get(0x681e)).toBe(0x7106n);
    expect(traceStats(r.events).vmExits.byLevel.L2).toMatchObject({ IO_INSTRUCTION: 6419, CR_ACCESS: 344 });
  });

  it('every real log round-trips through the trace format', () => {
    for (const file of Object.keys(expected).filter((f) => f.startsWith('real/'))) {
      const r = get(file);
      const back = decodeTrace(encodeTrace(r.header, r.events));
      expect(back.events).toEqual(r.events);
      expect(back.header).toEqual(r.header);
    }
  });
});
