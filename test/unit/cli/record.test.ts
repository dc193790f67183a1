// `turtles record`: records a built-in or file-defined scenario to a trace (text summary or --json with
// schemaVersion), the same command twice gives the same bytes, --l0/--seed override the scenario, and a bad scenario,
// name or option is one line on stderr with exit code 2 and no file left behind.
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { decodeTrace } from '../../../src/replay/format/index.js';
import { runCli } from '../../support/cli.js';

const tmp = mkdtempSync(join(tmpdir(), 'turtles-record-'));

describe('turtles record', () => {
  it('records a built-in scenario and prints a one-line summary', async () => {
    const out = join(tmp, 'cpuid.trtl');
    const r = await runCli(['record', 'cpuid-msr-io', '-o', out]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const t = decodeTrace(readFileSync(out));
    const exits = t.events.filter((e) => e.kind === 'vm-exit').length;
    const size = readFileSync(out).length;
    expect(r.stdout).toMatch(new RegExp(`^record cpuid-msr-io \\(L0 sdm\\) -> .*cpuid\\.trtl: ${t.events.length} events, ${exits} exits to L1, 15 L2 exits \\(10 reflected, 5 handled by L0\\), ${size} bytes, [0-9.]+ bytes/L2 exit\\n$`));
    expect(t.header.scenario?.name).toBe('cpuid-msr-io');
    expect(existsSync(`${out}.partial`)).toBe(false);
  });

  it('--json prints schemaVersion, scenario, file, events, exits and bytes; the same command gives the same bytes', async () => {
    const a = join(tmp, 'a.trtl');
    const b = join(tmp, 'b.trtl');
    const r = await runCli(['record', 'vmcs-shadowing', '-o', a, '--json']);
    expect(r.code).toBe(0);
    const j = JSON.parse(r.stdout) as Record<string, unknown>;
    expect(Object.keys(j).slice(0, 6)).toEqual(['schemaVersion', 'scenario', 'file', 'events', 'exits', 'bytes']);
    expect(j).toMatchObject({ schemaVersion: 1, scenario: 'vmcs-shadowing', file: a, exits: 4, bytes: readFileSync(a).length });
    expect(j['events']).toBe(decodeTrace(readFileSync(a)).events.length);
    expect((await runCli(['record', 'vmcs-shadowing', '-o', b, '--json'])).code).toBe(0);
    expect(readFileSync(b).equals(readFileSync(a))).toBe(true);
  });

  it('records a scenario file; --l0 and --seed override the scenario and are recorded', async () => {
    const file = join(tmp, 'mine.json');
    writeFileSync(file, JSON.stringify({
      format: 'turtles.scenario.v1', name: 'mine',
      l1: { l2: { mode: 'long64', code: { asm: ['cpuid', 'hlt'] } }, controls: { primary: '0x80' }, policy: { rules: [{ reason: 'HLT', actions: [{ kind: 'stop' }] }] } },
    }));
    const out = join(tmp, 'mine.trtl');
    const r = await runCli(['record', file, '-o', out, '--l0', 'kvm', '--seed', '0x2a']);
    expect(r.code).toBe(0);
    const h = decodeTrace(readFileSync(out)).header;
    expect(h.l0Profile).toBe('kvm');
    expect(h.seed).toBe(42n);
    expect(JSON.parse(h.scenario!.json)).toMatchObject({ name: 'mine', seed: 42, l0: { profile: 'kvm' } });
  });

  const bad: [string, string[], RegExp][] = [
    ['an unknown name', ['record', 'no-such-scenario'], /^turtles: no-such-scenario: io: a built-in scenario name \(cpuid-msr-io, .*\) or a scenario file\n$/],
    ['a missing file', ['record', 'missing/x.json'], /^turtles: missing\/x\.json: io: a readable scenario file \(ENOENT\)\n$/],
    ['--l0 other', ['record', 'cpuid-msr-io', '--l0', 'xen'], /^turtles: --l0 takes "sdm" or "kvm", not "xen"\n$/],
    ['--seed negative', ['record', 'cpuid-msr-io', '--seed', '-3'], /^turtles: --seed takes a non-negative integer/],
  ];

  it.each(bad)('%s: exit 2, one line', async (_what, args, message) => {
    const out = join(tmp, 'bad.trtl');
    const r = await runCli([...args, '-o', out]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(message);
    expect(r.stdout).toBe('');
    expect(existsSync(out)).toBe(false);
  });

  it('a malformed scenario file: exit 2 naming the file and the JSON path', async () => {
    const file = join(tmp, 'broken.json');
    writeFileSync(file, JSON.stringify({ format: 'turtles.scenario.v1', name: 'broken', l1: { l2: { mode: 'long64', code: { asm: ['hlt'] } }, cr0Mask: 8 } }));
    const out = join(tmp, 'broken.trtl');
    const r = await runCli(['record', file, '-o', out]);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(`turtles: ${file}: $.l1.cr0Mask: expected a 64-bit value as a "0x…" hex string of 1-16 digits, got 8\n`);
    expect(existsSync(out)).toBe(false);
    expect(existsSync(`${out}.partial`)).toBe(false);
  });

  it('without -o: usage error, exit 2', async () => {
    const r = await runCli(['record', 'cpuid-msr-io']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("required option '-o, --out <file>' not specified");
  });
});
