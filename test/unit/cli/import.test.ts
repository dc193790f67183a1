// `turtles import`: every input format (detected or named), what it mapped and by reason what it did not (text and
// --json with schemaVersion), the trace it writes, and bad input (missing file, unknown format, a file that is no
// log, a dump named as the wrong dialect, an IRIS log without exits) as one-line errors with exit 2.
import { describe, expect, it } from 'vitest';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli } from '../../support/cli.js';
import { decodeTrace } from '../../../src/replay/format/index.js';

const root = join(import.meta.dirname, '../../..');
const real = (f: string) => join(root, 'test/fixtures/logs/real', f);
const dump = (f: string) => join(root, 'traces/vmcs', f);
const tmp = mkdtempSync(join(tmpdir(), 'turtles-import-'));
const out = (name: string) => join(tmp, name);

interface ImportJson {
  schemaVersion: number;
  events: number;
  mapped: number;
  skipped: Record<string, number>;
  lines: number;
  format: string;
  kind: string;
  exits: number;
}

async function importJson(args: string[]): Promise<ImportJson> {
  const r = await runCli(['import', ...args, '--json']);
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
  return JSON.parse(r.stdout) as ImportJson;
}

describe('turtles import: formats', () => {
  it.each([
    ['ftrace-ctf-kvm-challenge-trace-pipe-4.x.txt', 'ftrace', 'single-level', 5],
    ['ftrace-jailhouse-nested-pio-loop-5.2.txt', 'trace-cmd', 'nested', 3],
    ['ftrace-qemu-pckbd-freedos-realmode-5.10plus.txt', 'trace-cmd', 'single-level', 10],
    ['ftrace-utexas-nested-failed-vmentry-5.10.txt', 'ftrace', 'nested', 2],
  ])('%s is detected as %s (%s) and every line is accounted for', async (file, format, kind, exits) => {
    const j = await importJson([real(file), '-o', out(`${file}.trtl`)]);
    expect(j).toMatchObject({ schemaVersion: 1, format, kind, exits });
    expect(j.mapped + Object.values(j.skipped).reduce((a, b) => a + b, 0)).toBe(j.lines);
    const t = decodeTrace(new Uint8Array(readFileSync(out(`${file}.trtl`))));
    expect(t.events.length).toBe(j.events);
    expect(t.header.provenance).toMatchObject({ sourceFormat: format, sourceName: file, counts: { lines: j.lines, mapped: j.mapped } });
  });

  it('perf script, named with --format, and the kernel era option', async () => {
    const log = out('perf.txt');
    writeFileSync(log, 'qemu-system-x86  5046 [014]  1234.567890:      kvm:kvm_exit: reason EXTERNAL_INTERRUPT rip 0x1 info 0 800000f6\n');
    const j = await importJson(['--format', 'perf-script', '--kernel', '<=5.9', log, '-o', out('perf.trtl')]);
    expect(j).toMatchObject({ format: 'perf-script', events: 1, mapped: 1, skipped: {} });
    expect(decodeTrace(new Uint8Array(readFileSync(out('perf.trtl')))).events[0]).toMatchObject({ kind: 'vm-exit', intrInfo: 0x800000f6 });
  });

  it('IRIS: one vm-exit, GPRs and VMCS snapshots per exit', async () => {
    const log = out('iris.txt');
    writeFileSync(log, ['ffffffff', 'ffffffff', '0', '1fffffff', '5', '2', '681e', '100', '1', '4402', 'c', '1', '681e', '101', '0'].join('\n') + '\n');
    const j = await importJson([log, '-o', out('iris.trtl')]);
    expect(j).toMatchObject({ format: 'iris', kind: 'single-level', exits: 1, lines: 15, mapped: 15, skipped: {} });
  });

  it.each([
    ['dumpvmcs-dosemu2-core2duo-ds-accessed-bit.txt', 'dump-vmcs'],
    ['dumpvmcs-xen-4.11-debugkey-v-solo5-hlt-known-good.txt', 'xen-dump'],
  ])('a VMCS dump (%s) becomes the stated exit and one snapshot (%s)', async (file, format) => {
    const j = await importJson([dump(file), '-o', out(`${file}.trtl`)]);
    expect(j).toMatchObject({ format, kind: 'single-level', events: 2, exits: 1 });
    expect(Object.keys(j.skipped).every((k) => k === 'blank' || k.startsWith('unmapped:'))).toBe(true);
    const named = await importJson(['--format', format, dump(file), '-o', out(`${file}.named.trtl`)]);
    expect(named.events).toBe(2);
  });

  it('text report: mapped lines, the reasons for the rest, the trace written and the assumptions', async () => {
    const r = await runCli(['import', real('ftrace-jailhouse-nested-pio-loop-5.2.txt'), '-o', out('j.trtl')]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('  format:  trace-cmd (trace-cmd report layout');
    expect(r.stdout).toContain('  lines:   29 read, 7 mapped, 22 not mapped');
    expect(r.stdout).toMatch(/^ {4}12 {2}comment$/m);
    expect(r.stdout).toMatch(/^ {5}2 {2}raw:kvm_pio$/m);
    expect(r.stdout).toMatch(/trace: {3}17 events \(3 exits\), nested, \d+ bytes in 1 chunk/);
    expect(r.stdout).toContain('    - reflection decisions are inferred from event order');
  });
});

describe('turtles import: bad input, exit 2, one line', () => {
  it('a missing file', async () => {
    const r = await runCli(['import', out('nope.txt'), '-o', out('nope.trtl')]);
    expect(r).toMatchObject({ code: 2, stdout: '' });
    expect(r.stderr).toBe(`turtles: ${out('nope.txt')}: io: a readable file (ENOENT)\n`);
  });

  it('text that matches no format, and a format that does not exist', async () => {
    const f = out('prose.txt');
    writeFileSync(f, 'Dear list,\nthe VM hangs.\n');
    const r = await runCli(['import', f, '-o', out('prose.trtl')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(`turtles: ${f}:1: one of ftrace, trace-cmd, perf-script, iris, dump-vmcs, xen-dump: no line matches their layouts (name one with --format)\n`);
    expect(existsSync(out('prose.trtl'))).toBe(false);
    const u = await runCli(['import', '--format', 'pcap', f, '-o', out('x.trtl')]);
    expect(u.code).toBe(2);
    expect(u.stderr).toMatch(/^turtles: unknown format "pcap" for --format; formats: ftrace, .*xen-dump\n$/);
  });

  it('a dump named as the other dialect, an IRIS log without exits, an ftrace log with no records', async () => {
    const x = await runCli(['import', '--format', 'dump-vmcs', dump('dumpvmcs-xen-4.11-debugkey-v-solo5-hlt-known-good.txt'), '-o', out('x.trtl')]);
    expect(x.code).toBe(2);
    expect(x.stderr).toMatch(/^turtles: .*dumpvmcs-xen-4\.11-debugkey-v-solo5-hlt-known-good\.txt:1: a KVM dump_vmcs dump; this is a Xen vmcs_dump_vcpu dump\n$/);
    const iris = out('iris-empty.txt');
    writeFileSync(iris, '681e\n100\n1\n');
    const i = await runCli(['import', '--format', 'iris', iris, '-o', out('i.trtl')]);
    expect(i.code).toBe(2);
    expect(i.stderr).toBe('turtles: iris-empty.txt: no-records: IRIS exits (an "ffffffff ffffffff 0" marker triple); found none\n');
    const f = await runCli(['import', '--format', 'ftrace', iris, '-o', out('f.trtl')]);
    expect(f.code).toBe(2);
    expect(f.stderr.split('\n')).toHaveLength(2);
  });

  it('-o naming the input is refused', async () => {
    const f = out('same.txt');
    writeFileSync(f, 'x');
    const r = await runCli(['import', f, '-o', f]);
    expect(r.code).toBe(2);
    expect(readFileSync(f, 'utf8')).toBe('x');
  });
});
