// `turtles check-entry`: exit codes (0 pass, 1 a check fails, 2 bad input), the text and --json reports, CPU
// choice (--cpu, the file's "cpu", the default widened by what a dump proves), and one-line bad-input errors.
import { describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli } from '../../support/cli.js';
import { cpuModelIds } from '../../../src/cpu/cpu-model.js';

const fixtures = join(import.meta.dirname, '../../../traces/vmcs');
const DOSEMU2 = join(fixtures, 'dumpvmcs-dosemu2-core2duo-ds-accessed-bit.txt');
const XEN = join(fixtures, 'dumpvmcs-xen-4.11-debugkey-v-solo5-hlt-known-good.txt');
const tmp = mkdtempSync(join(tmpdir(), 'turtles-check-entry-'));
function write(name: string, text: string): string {
  const p = join(tmp, name);
  writeFileSync(p, text);
  return p;
}

/** A complete, valid 64-bit guest state for the default preset (SDM 26.2-26.3), as turtles JSON. */
const VALID: Record<string, string> = {
  PIN_BASED_VM_EXEC_CONTROL: '0x16',
  CPU_BASED_VM_EXEC_CONTROL: '0x84006172',
  SECONDARY_VM_EXEC_CONTROL: '0x0',
  VM_EXIT_CONTROLS: '0x36ffb',
  VM_ENTRY_CONTROLS: '0x13fb',
  CR3_TARGET_COUNT: '0x0',
  VM_EXIT_MSR_STORE_COUNT: '0x0',
  VM_EXIT_MSR_LOAD_COUNT: '0x0',
  VM_ENTRY_MSR_LOAD_COUNT: '0x0',
  VM_ENTRY_INTR_INFO_FIELD: '0x0',
  HOST_CR0: '0x80050033',
  HOST_CR3: '0x1000',
  HOST_CR4: '0x2020',
  HOST_ES_SELECTOR: '0x0', HOST_CS_SELECTOR: '0x10', HOST_SS_SELECTOR: '0x18', HOST_DS_SELECTOR: '0x0',
  HOST_FS_SELECTOR: '0x0', HOST_GS_SELECTOR: '0x0', HOST_TR_SELECTOR: '0x40',
  HOST_FS_BASE: '0x0', HOST_GS_BASE: '0x0', HOST_TR_BASE: '0x0', HOST_GDTR_BASE: '0x0', HOST_IDTR_BASE: '0x0',
  HOST_IA32_SYSENTER_ESP: '0x0', HOST_IA32_SYSENTER_EIP: '0x0', HOST_RIP: '0xffffffff81000000',
  GUEST_CR0: '0x80000031', GUEST_CR3: '0x2000', GUEST_CR4: '0x2020', GUEST_DR7: '0x400',
  GUEST_IA32_DEBUGCTL: '0x0', GUEST_SYSENTER_ESP: '0x0', GUEST_SYSENTER_EIP: '0x0',
  GUEST_CS_SELECTOR: '0x8', GUEST_CS_AR_BYTES: '0xa09b', GUEST_CS_LIMIT: '0xffffffff', GUEST_CS_BASE: '0x0',
  GUEST_SS_SELECTOR: '0x10', GUEST_SS_AR_BYTES: '0xc093', GUEST_SS_LIMIT: '0xffffffff', GUEST_SS_BASE: '0x0',
  GUEST_DS_SELECTOR: '0x10', GUEST_DS_AR_BYTES: '0xc093', GUEST_DS_LIMIT: '0xffffffff', GUEST_DS_BASE: '0x0',
  GUEST_ES_SELECTOR: '0x10', GUEST_ES_AR_BYTES: '0xc093', GUEST_ES_LIMIT: '0xffffffff', GUEST_ES_BASE: '0x0',
  GUEST_FS_SELECTOR: '0x0', GUEST_FS_AR_BYTES: '0x10000', GUEST_FS_LIMIT: '0x0', GUEST_FS_BASE: '0x0',
  GUEST_GS_SELECTOR: '0x0', GUEST_GS_AR_BYTES: '0x10000', GUEST_GS_LIMIT: '0x0', GUEST_GS_BASE: '0x0',
  GUEST_LDTR_SELECTOR: '0x0', GUEST_LDTR_AR_BYTES: '0x10000', GUEST_LDTR_LIMIT: '0x0', GUEST_LDTR_BASE: '0x0',
  GUEST_TR_SELECTOR: '0x18', GUEST_TR_AR_BYTES: '0x8b', GUEST_TR_LIMIT: '0x67', GUEST_TR_BASE: '0x0',
  GUEST_GDTR_LIMIT: '0x27', GUEST_GDTR_BASE: '0x0', GUEST_IDTR_LIMIT: '0xfff', GUEST_IDTR_BASE: '0x0',
  GUEST_RIP: '0xffffffff81000000', GUEST_RSP: '0x0', GUEST_RFLAGS: '0x2',
  GUEST_ACTIVITY_STATE: '0x0', GUEST_INTERRUPTIBILITY_INFO: '0x0', GUEST_PENDING_DBG_EXCEPTIONS: '0x0',
  VMCS_LINK_POINTER: '0xffffffffffffffff',
};
const json = (fields: Record<string, string | number>, extra: Record<string, unknown> = { hostIa32e: true }) =>
  JSON.stringify({ format: 'turtles.vmcs.v1', ...extra, fields }, null, 2) + '\n';

interface Report {
  schemaVersion: number;
  outcome: string;
  failures: { id: string; sdm: string; stage: string; class: string; fields: { name: string; encoding: string; value: string }[] }[];
  notEvaluated: string[];
  input: { cpu: string; cpuChoice: string };
}

describe('turtles check-entry: reports', () => {
  it('text: names each failing check with SDM section, fields, values and their dump lines; exit 1', async () => {
    const r = await runCli(['check-entry', DOSEMU2]);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe('');
    expect(r.stdout).toContain('FAIL guest.seg.ds.type-accessed  SDM 26.3.1.2  guest-state  exit-33');
    expect(r.stdout).toContain('     GUEST_DS_AR_BYTES (0x0000481a) = 0xc0f2  [line 30]');
    expect(r.stdout).toMatch(/usable segment not marked accessed/);
    expect(r.stdout).toMatch(/^2 checks failed, \d+ passed, \d+ not evaluated/m);
    expect(r.stdout).toContain('the processor stops at the first: guest.seg.ds.type-accessed -> VM-entry failure, exit reason 33');
    expect(r.stdout).toContain('cpu:     intel-core-i7-6700k (default;');
  });

  it('--json: { schemaVersion, outcome, failures: [{ id, sdm, stage, class, fields }], notEvaluated }', async () => {
    const r = await runCli(['check-entry', DOSEMU2, '--json']);
    expect(r.code).toBe(1);
    const j = JSON.parse(r.stdout) as Report;
    expect(j.schemaVersion).toBe(1);
    expect(j.outcome).toBe('fail');
    expect(j.failures.map((f) => [f.id, f.sdm, f.stage, f.class])).toEqual([
      ['guest.seg.ds.type-accessed', '26.3.1.2', 'guest-state', 'exit-33'],
      ['guest.seg.es.type-accessed', '26.3.1.2', 'guest-state', 'exit-33'],
    ]);
    for (const f of j.failures) for (const x of f.fields) expect(x).toEqual({ name: expect.any(String), encoding: expect.stringMatching(/^0x[0-9a-f]{8}$/), value: expect.stringMatching(/^0x[0-9a-f]+$/) });
    expect(j.notEvaluated.length).toBeGreaterThan(0);
    expect(new Set(j.notEvaluated).size).toBe(j.notEvaluated.length);
  });

  it('a passing dump exits 0 and says so', async () => {
    const r = await runCli(['check-entry', XEN]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^all \d+ evaluated checks passed; \d+ not evaluated/m);
    expect(r.stdout).not.toContain('FAIL');
  });

  it('a valid JSON state passes; breaking one field fails exactly that check', async () => {
    const ok = await runCli(['check-entry', write('valid.json', json(VALID)), '--json']);
    expect(JSON.parse(ok.stdout).failures).toEqual([]);
    expect(ok.code).toBe(0);
    const bad = await runCli(['check-entry', write('cs-l-db.json', json({ ...VALID, GUEST_CS_AR_BYTES: '0xe09b' })), '--json']);
    expect(bad.code).toBe(1);
    expect((JSON.parse(bad.stdout) as Report).failures.map((f) => f.id)).toEqual(['guest.seg.cs.db-long']);
  });

  it('the JSON "cpu" member selects the preset, and --cpu overrides it', async () => {
    const f = write('cpu.json', json(VALID, { hostIa32e: true, cpu: 'intel-core2-x6800' }));
    const a = JSON.parse((await runCli(['check-entry', f, '--json'])).stdout) as Report;
    expect(a.input.cpu).toBe('intel-core2-x6800');
    const b = JSON.parse((await runCli(['check-entry', f, '--json', '--cpu', 'kvm-l1'])).stdout) as Report;
    expect(b.input.cpu).toBe('kvm-l1');
    expect(b.input.cpuChoice).toBe('--cpu');
  });

  it('without hostIa32e the host address-space checks are not evaluated', async () => {
    const r = JSON.parse((await runCli(['check-entry', write('nohost.json', json(VALID, {})), '--json'])).stdout) as Report;
    expect(r.notEvaluated.some((id) => id.startsWith('host.addr-size.'))).toBe(true);
  });
});

describe('turtles check-entry: bad input is one line with file:line, exit 2, no stack trace', () => {
  const oneLine = (stderr: string) => {
    expect(stderr.trimEnd().split('\n')).toHaveLength(1);
    expect(stderr).not.toMatch(/\bat .*\.(ts|js):\d+/);
  };

  it('a truncated dump', async () => {
    const cut = readFileSync(DOSEMU2, 'utf8').split('\n').slice(0, 61).join('\n') + '\n';
    const f = write('truncated.txt', cut);
    const r = await runCli(['check-entry', f]);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toBe(`turtles: ${f}:61: truncated dump: expected "*** Control State ***" after line 61\n`);
    oneLine(r.stderr);
  });

  it('garbage', async () => {
    const f = write('garbage.bin', '\u0000\u0001ELF\u0002 not a dump\n');
    const r = await runCli(['check-entry', f]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(new RegExp(`^turtles: ${f.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:1: a KVM dump_vmcs`));
    oneLine(r.stderr);
  });

  it('an unknown JSON field names the field and its line', async () => {
    const f = write('unknown.json', json({ GUEST_CR0: '0x31', GUEST_CR9: '0x1' }));
    const r = await runCli(['check-entry', f, '--json']);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toBe(`turtles: ${f}:6: a VMCS field name (see \`turtles fields\`); unknown field "GUEST_CR9"\n`);
  });

  it('a malformed line inside a dump names the line and the expected form', async () => {
    const f = write('badline.txt', readFileSync(DOSEMU2, 'utf8').replace('Interruptibility = 00000000  ActivityState = 00000000', 'Interruptibility = 00000000  ActivityState = zz'));
    const r = await runCli(['check-entry', f]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/:51: expected Interruptibility=… ActivityState=… \(KVM dump_vmcs guest state\)/);
    oneLine(r.stderr);
  });

  it('a missing file', async () => {
    const r = await runCli(['check-entry', join(tmp, 'nope.txt')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(`turtles: ${join(tmp, 'nope.txt')}: a readable file (no such file)\n`);
  });

  it('an unknown --cpu preset lists the presets', async () => {
    const r = await runCli(['check-entry', XEN, '--cpu', 'intel-pentium-4']);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(`turtles: unknown CPU preset "intel-pentium-4" for --cpu; presets: ${cpuModelIds().join(', ')}\n`);
  });

  it('an unknown "cpu" in a JSON state names its line', async () => {
    const f = write('badcpu.json', json(VALID, { cpu: 'nope' }));
    const r = await runCli(['check-entry', f]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(new RegExp(`:3: a CPU preset id in "cpu" \\(${cpuModelIds().join(', ')}\\); found "nope"`));
  });

  it('--debug adds the stack trace', async () => {
    const r = await runCli(['--debug', 'check-entry', join(tmp, 'nope.txt')]);
    expect(r.code).toBe(2);
    expect(r.stderr.split('\n').length).toBeGreaterThan(3);
  });

  it('no file argument is a usage error', async () => {
    const r = await runCli(['check-entry']);
    expect(r.code).toBe(2);
  });
});
