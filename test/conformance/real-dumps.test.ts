// Every real VMCS dump in shared/data/real gives the outcome its header states, through `turtles check-entry`
// (in-process): the failing check ids, the CPU model used, and the agreement with the exit reason the dump shows.
// Reads the fixture copies (traces/vmcs, the bundled samples) so a clean clone passes; checks they equal ../shared.
import { describe, expect, it } from 'vitest';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { runCli } from '../support/cli.js';

const fixtures = join(import.meta.dirname, '../../traces/vmcs');
const shared = join(import.meta.dirname, '../../../shared/data/real');
const file = (name: string) => join(fixtures, name);

interface Report {
  schemaVersion: number;
  outcome: 'pass' | 'fail';
  failures: { id: string; sdm: string; stage: string; class: string; fields: { name: string; encoding: string; value: string }[] }[];
  notEvaluated: string[];
  evaluatedCount: number;
  input: { cpu: string; hostIa32e: boolean | null; statedExitReason: string | null; cpuWidened: string[] };
}

async function check(name: string, ...extra: string[]): Promise<{ code: number; report: Report }> {
  const r = await runCli(['check-entry', file(name), '--json', ...extra]);
  expect(r.stderr).toBe('');
  return { code: r.code, report: JSON.parse(r.stdout) as Report };
}

const DOSEMU2 = 'dumpvmcs-dosemu2-core2duo-ds-accessed-bit.txt';
const SYZBOT = 'dumpvmcs-syzbot-gce-4.13-next-cr4smxe.txt';
const LINUX_NEXT = 'dumpvmcs-linux-next-2020-entry-failed-0x0-reset-vector.txt';
const XEN = 'dumpvmcs-xen-4.11-debugkey-v-solo5-hlt-known-good.txt';

describe('real VMCS dumps give their stated outcome', () => {
  it('the fixture copies are byte-identical to shared/data/real when that directory is present', () => {
    if (!existsSync(shared)) return;
    for (const n of [DOSEMU2, SYZBOT, LINUX_NEXT, XEN]) expect(readFileSync(file(n), 'utf8')).toBe(readFileSync(join(shared, n), 'utf8'));
  });

  it('dosemu2 (exit 33): exactly the DS and ES accessed-bit checks fail (SDM 26.3.1.2)', async () => {
    const { code, report } = await check(DOSEMU2);
    expect(code).toBe(1);
    expect(report.outcome).toBe('fail');
    expect(report.failures.map((f) => f.id)).toEqual(['guest.seg.ds.type-accessed', 'guest.seg.es.type-accessed']);
    expect(report.failures[0]).toMatchObject({ sdm: '26.3.1.2', stage: 'guest-state', class: 'exit-33' });
    expect(report.failures[0]!.fields).toContainEqual({ name: 'GUEST_DS_AR_BYTES', encoding: '0x0000481a', value: '0xc0f2' });
    // The dump says exit 33 and so does the first failing check.
    expect(report.input.statedExitReason).toBe('0x80000021');
  });

  it('dosemu2 on a CPU without unrestricted guest (Core 2) still names the DS/ES accessed-bit checks', async () => {
    // The thread is titled "core2duo", but the dump's own controls (secondary controls with EPT, VPID, PLE,
    // INVPCID; preemption timer; load/save EFER and PAT) do not exist on a Core 2, so that CPU rejects the
    // controls first (VMfailValid 7). The header's other reading, a later CPU run with
    // kvm_intel.unrestricted_guest=0, is what the dump shows: SecondaryExec bit 7 (unrestricted guest) is 0, and
    // that VMCS control, not the CPU's capability, decides the guest checks (SDM 26.3.1.1-2).
    const { code, report } = await check(DOSEMU2, '--cpu', 'intel-core2-x6800');
    expect(code).toBe(1);
    const ids = report.failures.map((f) => f.id);
    expect(ids).toContain('guest.seg.ds.type-accessed');
    expect(ids).toContain('guest.seg.es.type-accessed');
    expect(ids.filter((i) => i.startsWith('guest.'))).toEqual(['guest.seg.ds.type-accessed', 'guest.seg.es.type-accessed']);
    expect(ids.slice(0, 3)).toEqual(['ctrl.pin.allowed-settings', 'ctrl.primary.allowed-settings', 'ctrl.secondary.allowed-settings']);
  });

  it('syzbot on GCE (exit 33, cause not stated): fails guest.cr4.fixed-bits because of CR4.SMXE', async () => {
    // Our determination from the values: GUEST_CR4 = 0x6154 = TSD|PSE|MCE|PCE|VMXE|SMXE. Bit 14 (SMXE) may be 1
    // only if IA32_VMX_CR4_FIXED1[14] is 1, i.e. the processor has SMX; neither the default preset (i7-6700K,
    // no SMX) nor kvm-l1 (KVM never exposes SMX, and this KVM ran nested on GCE) allows it. Everything else the
    // dump shows is valid: CR0 = PE|ET|NE|PG with 32-bit non-PAE paging, EFER = SCE with "load IA32_EFER" and
    // not IA-32e (LMA 0 = control 0), CS 0x409b / SS 0x4093 with RPL 0 and DPL 0, LDTR usable type 2, TR busy
    // 32-bit TSS, RFLAGS 0x2, activity 0, no event injection, and controls/host state the processor accepted.
    for (const cpu of [[], ['--cpu', 'kvm-l1'], ['--cpu', 'intel-core-i7-6700k']]) {
      const { code, report } = await check(SYZBOT, ...cpu);
      expect(code).toBe(1);
      expect(report.failures.map((f) => f.id)).toEqual(['guest.cr4.fixed-bits']);
      expect(report.failures[0]!.fields).toEqual([{ name: 'GUEST_CR4', encoding: '0x00006804', value: '0x6154' }]);
    }
  });

  it('linux-next reset vector (entry succeeded with unrestricted guest): every evaluated check passes', async () => {
    const { code, report } = await check(LINUX_NEXT);
    expect(code).toBe(0);
    expect(report.outcome).toBe('pass');
    expect(report.failures).toEqual([]);
    expect(report.evaluatedCount).toBeGreaterThan(250);
    // The Haswell-EP host had posted interrupts and APICv, which the default (client) preset lacks: the dump
    // proves the processor accepted them (exit reason 0x30 after the entry), so the model is widened for them.
    expect(report.input.cpu).toBe('intel-core-i7-6700k+proven');
    expect(report.input.cpuWidened.join('\n')).toMatch(/IA32_VMX_TRUE_PINBASED_CTLS .* -> 0x000000ff00000016/);
    expect(report.input.hostIa32e).toBe(true);
  });

  it('linux-next on the unwidened client preset fails only on the features that preset lacks', async () => {
    const { code, report } = await check(LINUX_NEXT, '--cpu', 'intel-core-i7-6700k');
    expect(code).toBe(1);
    expect(report.failures.map((f) => f.id)).toEqual(['ctrl.pin.allowed-settings', 'ctrl.secondary.allowed-settings']);
  });

  it('Xen known good (HLT exit): every evaluated check passes, the ignored raw EFER field is not flagged', async () => {
    const { code, report } = await check(XEN);
    expect(code).toBe(0);
    expect(report.failures).toEqual([]);
    expect(report.input.cpu).toBe('intel-core-i7-6700k');
    expect(report.notEvaluated).not.toContain('guest.efer.lma');
  });
});
