// IRIS per-exit VMCS logs (trace-formats.md §9): exit fields from VMREADs, GPRs, VMCS snapshots before and after
// the handler's VMWRITEs, and every kind of damage (non-hex line, incomplete triple, stray triples) reported and
// counted with resynchronisation at the next exit marker.
import { describe, expect, it } from 'vitest';
import { importIris } from '../../../../src/replay/import/index.js';

const marker = ['ffffffff', 'ffffffff', '0'];
const t = (field: string, value: string, type: number) => [field, value, String(type)];
const exitA = [
  ...marker,
  ...t('1fffffff', '3c0', 2), ...t('fffffff', '1', 2),
  ...t('681e', '25e7', 1), ...t('4402', '1e', 1), ...t('6400', '3cc0008', 1), ...t('440c', '1', 1), ...t('802', 'c000', 1),
  ...t('401c', '0', 0), ...t('681e', '25e8', 0),
];
const exitB = [...marker, ...t('4402', 'c', 1), ...t('681e', '100', 1)];
const text = (rows: string[]) => rows.join('\n') + '\n';

describe('IRIS import', () => {
  it('maps one exit to vm-exit, registers and two snapshots', () => {
    const r = importIris(text(exitA), { sourceName: 'a' });
    expect(r.events).toEqual([
      { kind: 'vm-exit', line: 1, level: 'L2', rip: 0x25e7n, reason: 30, qualification: 0x3cc0008n, instructionLength: 1 },
      { kind: 'registers', line: 1, level: 'L2', regs: new Map([[0, 0x3c0n], [7, 1n]]) },
      { kind: 'vmcs-snapshot', line: 1, which: 'single', fields: new Map([[0x681e, 0x25e7n], [0x4402, 0x1en], [0x6400, 0x3cc0008n], [0x440c, 1n], [0x802, 0xc000n]]) },
      { kind: 'vmcs-snapshot', line: 1, which: 'single', fields: new Map([[0x681e, 0x25e8n], [0x4402, 0x1en], [0x6400, 0x3cc0008n], [0x440c, 1n], [0x802, 0xc000n], [0x401c, 0n]]) },
    ]);
    expect(r.stats).toEqual({ lines: exitA.length, mapped: exitA.length, skipped: {} });
  });

  it('forgets exit-information and guest-state fields at the next exit, keeps controls', () => {
    const r = importIris(text([...exitA, ...exitB]));
    const snaps = r.events.filter((e) => e.kind === 'vmcs-snapshot');
    expect(snaps[2]).toEqual({ kind: 'vmcs-snapshot', line: 31, which: 'single', fields: new Map([[0x401c, 0n], [0x4402, 0xcn], [0x681e, 0x100n]]) });
    expect(r.events[4]).toEqual({ kind: 'vm-exit', line: 31, level: 'L2', reason: 12, rip: 0x100n });
  });

  it('a non-hex line is reported and the importer resumes at the next exit marker', () => {
    const rows = [...exitA.slice(0, 10), 'zz', ...exitA.slice(10), ...exitB];
    const r = importIris(text(rows));
    expect(r.events.filter((e) => e.kind === 'vm-exit')).toHaveLength(2);
    expect(r.events.find((e) => e.kind === 'unmapped')).toEqual({ kind: 'unmapped', line: 11, reason: 'not a hex number; skipping to the next exit marker', text: 'zz' });
    expect(r.stats.lines).toBe(rows.length);
    expect(r.stats.skipped).toEqual({ 'unmapped:not a hex number': 1, 'unmapped:skipped to the next exit marker': exitA.length - 10 + 1 });
    expect(r.stats.mapped + 1 + exitA.length - 10 + 1).toBe(rows.length);
  });

  it('an incomplete last triple, stray triples and unknown types are counted', () => {
    const rows = [...t('681e', '1', 1), ...exitB, ...t('681e', '2', 7), ...t('abcdef', '1', 2), 'ffffffff'];
    const r = importIris(text(rows));
    expect(r.stats).toEqual({
      lines: rows.length, mapped: exitB.length,
      skipped: {
        'unmapped:incomplete triple at the end': 1, 'unmapped:triple before the first exit marker': 3,
        'unmapped:unknown register pseudo-field': 3, 'unmapped:unknown triple type': 3,
      },
    });
  });

  it('a file with no exit marker is an import error', () => {
    expect(() => importIris(text(t('681e', '1', 1)), { sourceName: 'none' })).toThrow('none: no-records');
  });
});
