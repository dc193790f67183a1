// `turtles stats`: exit-reason histograms per level, reflection decisions, exit multiplication and entry failures,
// as text and as --json with schemaVersion; damaged traces are one-line errors naming the offset, with exit 2.
import { describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli } from '../../support/cli.js';
import { encodeTrace, reflection } from '../../../src/replay/format/index.js';

const root = join(import.meta.dirname, '../../..');
const bundled = (f: string) => join(root, 'traces/imported', f);
const tmp = mkdtempSync(join(tmpdir(), 'turtles-stats-'));

describe('turtles stats', () => {
  it('--json: histograms per level with names from the exit-reason table (IRIS boot)', async () => {
    const r = await runCli(['stats', bundled('iris-boot_seed0.trtl'), '--json']);
    expect(r).toMatchObject({ code: 0, stderr: '' });
    const j = JSON.parse(r.stdout) as Record<string, unknown> & { vmExits: { total: number; byLevel: Record<string, Record<string, number>> } };
    expect(Object.keys(j)[0]).toBe('schemaVersion');
    expect(j).toMatchObject({ schemaVersion: 1, events: 27994, exitMultiplication: null, entryFailures: { total: 0, byCheck: {} } });
    expect(j.vmExits.total).toBe(7000);
    expect(Object.entries(j.vmExits.byLevel['L2']!).slice(0, 3)).toEqual([['IO_INSTRUCTION', 6419], ['CR_ACCESS', 344], ['INTERRUPT_WINDOW', 80]]);
    expect(j['trace']).toEqual({ kind: 'single-level', l0Profile: 'recorded', producer: 'turtles import iris', source: { format: 'iris', name: 'boot_seed0' } });
  });

  it('text: a nested trace\'s exit multiplication and entry failures by check id', async () => {
    const f = join(tmp, 'nested.trtl');
    writeFileSync(f, encodeTrace({ producer: 't', l0Profile: 'recorded', kind: 'nested' }, [
      { kind: 'l0-exit', level: 'L2', reason: 10 }, reflection('reflected', 10), { kind: 'vm-exit', level: 'L2', reason: 10 },
      { kind: 'l0-exit', level: 'L1', reason: 23 }, { kind: 'l0-exit', level: 'L1', reason: 24 },
      { kind: 'entry-failure', level: 'L2', checkId: 'guest.cr4.fixed-bits', detail: '' },
    ]));
    const r = await runCli(['stats', f]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('exit multiplication: 3.00 L0 exits and 2.00 L1 exits per reflected L2 exit (3 L0 exits, 2 of L1, 1 reflected)');
    expect(r.stdout).toContain('reflection decisions: 1 reflected to L1, 0 handled by L0');
    expect(r.stdout).toMatch(/^ {4}1 {2}100\.0% {2}CPUID$/m);
    expect(r.stdout).toContain('entry failures: 1\n  1  guest.cr4.fixed-bits');
  });

  it('a truncated trace is a one-line error naming the offset (exit 2)', async () => {
    const bytes = readFileSync(bundled('iris-boot_seed0.trtl'));
    const f = join(tmp, 'cut.trtl');
    writeFileSync(f, bytes.subarray(0, 5000));
    const r = await runCli(['stats', f]);
    expect(r).toMatchObject({ code: 2, stdout: '' });
    expect(r.stderr).toBe(`turtles: ${f}@4996: truncated: footer magic "LTRT" at the end (file truncated or never finished)\n`);
  });
});
