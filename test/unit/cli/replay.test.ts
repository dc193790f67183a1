// `turtles replay`: exit codes (0 none, 1 divergences, 2 bad input), the text report with the reproduction command,
// --json (schemaVersion, traces, divergences), --junit, --checks, --first, --event, --cpu, several traces at once, and
// damaged, truncated, wrong-version and non-trace files as one-line errors naming the offset or event.
import { describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli } from '../../support/cli.js';
import { Field } from '../../../src/cpu/generated/vmcs-fields.js';
import { encodeTrace, type TraceEvent } from '../../../src/replay/format/index.js';

const root = join(import.meta.dirname, '../../..');
const bundled = (f: string) => join(root, 'traces/imported', f);
const tmp = mkdtempSync(join(tmpdir(), 'turtles-replay-'));
const path = (n: string) => join(tmp, n);

/** A single-level trace with an exit-info problem (event 0), a VM-entry check failure (event 1) and a bad RIP (event 2). */
const BAD: TraceEvent[] = [
  { kind: 'vm-exit', level: 'L2', line: 7, reason: 30, rip: 0x1000n, qualification: 0x700080n, instructionLength: 2 },
  { kind: 'vmcs-snapshot', which: 'single', fields: new Map([[Field.VM_ENTRY_INTR_INFO_FIELD, 0x8000_0020n], [Field.GUEST_RIP, 0x1002n], [Field.GUEST_RFLAGS, 0x2n]]) },
  { kind: 'vm-exit', level: 'L2', reason: 12, rip: 0x1002n, qualification: 0n, instructionLength: 1 },
  { kind: 'vmcs-snapshot', which: 'single', fields: new Map([[Field.GUEST_RIP, 0x2000n], [Field.GUEST_RFLAGS, 0x202n]]) },
];
const badFile = path('bad.trtl');
writeFileSync(badFile, encodeTrace({ producer: 'test', l0Profile: 'recorded', kind: 'single-level' }, BAD));

interface ReplayJson {
  schemaVersion: number;
  divergences: number;
  traces: { file: string; events: number; exits: number; divergences: { rule: string; event: number; sdm: string; kind: string; reproduce: string; line?: number }[]; checks: { id: string; applies: boolean }[] }[];
}

describe('turtles replay: reports and exit codes', () => {
  it('a clean bundled trace: exit 0, every class reported', async () => {
    const r = await runCli(['replay', bundled('ftrace-ctf-kvm-challenge-trace-pipe-4.x.trtl')]);
    expect(r).toMatchObject({ code: 0, stderr: '' });
    expect(r.stdout).toMatch(/^ {2}exit-info {4}ok {15}5 of 5 exits checked/m);
    expect(r.stdout).toMatch(/^ {2}reflection {3}not applicable {3}not a nested trace/m);
    expect(r.stdout.trimEnd().split('\n').at(-1)).toBe('0 divergences in 1 trace');
  });

  it('divergences: exit 1, each with rule, SDM section, event, source line and the command that reproduces it', async () => {
    const r = await runCli(['replay', badFile]);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain('  DIVERGENCE trace.exit-info.qualification (SDM 27.2.1) at event 0, source line 7, L2');
    expect(r.stdout).toContain(`    reproduce: turtles replay ${badFile} --event 0`);
    expect(r.stdout).toContain('  DIVERGENCE guest.rflags.if');
    expect(r.stdout).toContain('  DIVERGENCE trace.rip-advance (SDM 27.2.5) at event 2');
    expect(r.stdout).toContain('3 divergences in 1 trace');
  });

  it('--json: schemaVersion, traces with their divergences (kind "recorded") and check summaries', async () => {
    const r = await runCli(['replay', badFile, bundled('ftrace-jailhouse-nested-pio-loop-5.2.trtl'), '--json']);
    expect(r.code).toBe(1);
    const j = JSON.parse(r.stdout) as ReplayJson;
    expect(Object.keys(j)[0]).toBe('schemaVersion');
    expect(j.divergences).toBe(3);
    expect(j.traces.map((t) => [t.events, t.exits])).toEqual([[4, 2], [17, 3]]);
    expect(j.traces[0]!.divergences.map((d) => `${d.event}:${d.rule}`)).toEqual(['0:trace.exit-info.qualification', '1:guest.rflags.if', '2:trace.rip-advance']);
    expect(j.traces[0]!.divergences[0]).toMatchObject({ kind: 'recorded', sdm: '27.2.1', line: 7, reproduce: `turtles replay ${badFile} --event 0` });
    expect(j.traces[1]!.checks.find((c) => c.id === 'reflection')).toMatchObject({ applies: true });
  });

  it('--junit: one testcase per trace and check class, failures listing divergences, skipped classes', async () => {
    const xmlFile = path('report.xml');
    const r = await runCli(['replay', badFile, bundled('ftrace-ctf-kvm-challenge-trace-pipe-4.x.trtl'), '--junit', xmlFile]);
    expect(r.code).toBe(1);
    const xml = readFileSync(xmlFile, 'utf8');
    expect(xml.startsWith('<?xml version="1.0" encoding="UTF-8"?>\n<testsuites name="turtles replay" tests="8" failures="3" errors="0" skipped="4">')).toBe(true);
    expect(xml).toContain(`<testsuite name="${badFile}" tests="4" failures="3" errors="0" skipped="1">`);
    expect(xml).toContain('<failure message="1 divergence" type="trace.exit-info.qualification">event 0 (source line 7): trace.exit-info.qualification (SDM 27.2.1)');
    expect(xml).toContain(`reproduce: turtles replay ${badFile} --event 2`);
    expect(xml).toMatch(/<testcase classname="[^"]*ctf[^"]*" name="exit-info">\n {6}<system-out>5 checked/);
    expect(xml).toContain('<skipped message="not a nested trace: no L0 decisions to check"/>');
  });

  it('--checks, --first, --event', async () => {
    const c = await runCli(['replay', badFile, '--checks', 'trace.rip,guest.', '--json']);
    expect((JSON.parse(c.stdout) as ReplayJson).traces[0]!.divergences.map((d) => d.rule)).toEqual(['guest.rflags.if', 'trace.rip-advance']);
    const f = await runCli(['replay', badFile, bundled('ftrace-ctf-kvm-challenge-trace-pipe-4.x.trtl'), '--first']);
    expect(f.code).toBe(1);
    expect(f.stdout.trimEnd().split('\n').at(-1)).toBe('1 divergence in 1 trace (stopped at the first, --first)');
    const e = await runCli(['replay', badFile, '--event', '2']);
    expect(e.code).toBe(1);
    expect(e.stdout).toContain('  event 2: { "kind": "vm-exit", "level": "L2", "reason": 12,');
    expect(e.stdout).toContain('1 divergence in 1 trace');
    const clean = await runCli(['replay', badFile, '--event', '3']);
    expect(clean.code).toBe(0);
  });

  it('--cpu names the model of the VM-entry checks', async () => {
    const r = await runCli(['replay', bundled('iris-boot_seed0.trtl'), '--cpu', 'intel-core2-x6800', '--checks', 'ctrl.', '--json']);
    expect([0, 1]).toContain(r.code);
    expect((JSON.parse(r.stdout) as ReplayJson).traces[0]!.checks.find((c) => c.id === 'vm-entry')).toMatchObject({ note: expect.stringContaining('CPU intel-core2-x6800 (--cpu)') });
  });
});

describe('turtles replay: bad input, exit 2, one line naming the place', () => {
  const original = readFileSync(bundled('ftrace-jailhouse-nested-pio-loop-5.2.trtl'));
  const variant = (name: string, edit: (b: Buffer) => Buffer): string => {
    const f = path(name);
    writeFileSync(f, edit(Buffer.from(original)));
    return f;
  };

  it.each([
    ['truncated', (b: Buffer) => b.subarray(0, b.length - 40), /@\d+: truncated: footer magic "LTRT" at the end/],
    ['corrupt chunk', (b: Buffer) => { b[b.length - 200] = b[b.length - 200]! ^ 0xff; return b; }, /#0@\d+: checksum: chunk CRC-32 to match/],
    ['wrong version', (b: Buffer) => { b[4] = 2; return b; }, /@4: unsupported-version: format version 1, found 2/],
    ['not a trace', () => Buffer.from('kvm_exit: reason HLT\n'), /@0: bad-magic: magic "TRTL" \(not a turtles trace\)/],
    ['empty', () => Buffer.alloc(0), /@0: truncated: a 16-byte file header \(file has 0 bytes/],
  ])('%s', async (name, edit, message) => {
    const f = variant(`${name}.trtl`, edit);
    const r = await runCli(['replay', f]);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr.split('\n')).toHaveLength(2);
    expect(r.stderr.startsWith(`turtles: ${f}`)).toBe(true);
    expect(r.stderr).toMatch(message);
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });

  it('--debug adds the stack trace', async () => {
    const f = variant('debug.trtl', (b) => b.subarray(0, 100));
    const r = await runCli(['--debug', 'replay', f]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/\n\s+at /);
  });

  it('an event index past the end, a bad --event, an unknown --checks prefix or --cpu preset, a missing file', async () => {
    const e = await runCli(['replay', badFile, '--event', '4']);
    expect(e).toMatchObject({ code: 2, stderr: `turtles: ${badFile}#4: an event index below 4 (the trace has 4 events)\n` });
    expect((await runCli(['replay', badFile, '--event', '-1'])).code).toBe(2);
    const c = await runCli(['replay', badFile, '--checks', 'trace.exitinfo']);
    expect(c.code).toBe(2);
    expect(c.stderr).toMatch(/^turtles: --checks trace\.exitinfo selects no rule/);
    expect((await runCli(['replay', badFile, '--cpu', 'z80'])).code).toBe(2);
    const m = await runCli(['replay', path('missing.trtl')]);
    expect(m).toMatchObject({ code: 2, stderr: `turtles: ${path('missing.trtl')}: io: a readable file (ENOENT)\n` });
  });
});
