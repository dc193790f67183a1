// Regression tests for a PAE-paging L2 that vmcs12 runs without EPT (closed gap nested-pae-pdptes): L0 loads the four
// PDPTEs from L1 memory at vmcs12 GUEST_CR3 into vmcs02's GUEST_PDPTRn (vmcs02 runs with EPT01), fails the entry with
// the CPU's check id when one has reserved bits, and leaves vmcs12's GUEST_PDPTRn alone at the exit (SDM 26.3.1.6,
// 26.3.2.4, 28.3.4 — saved only with EPT). Reference vs nested through checkProgram (sdm profile) and runConfigPair.
import { describe, expect, it } from 'vitest';
import { asm32 } from '../../../../src/asm/index.js';
import { Primary } from '../../../../src/cpu/generated/controls.js';
import { Field } from '../../../../src/cpu/generated/vmcs-fields.js';
import { L2Layout } from '../../../../src/cpu/interp/l2-env.js';
import { builtinL1 } from '../../../../src/cpu/l1/builtin.js';
import type { L1Config } from '../../../../src/cpu/l1/config.js';
import type { Observation } from '../../../../src/cpu/l1/observation.js';
import { checkProgram } from '../../../../src/checker/run.js';
import { sdmProfile } from '../../../../src/nested/profile.js';
import { KVM_L1, hexJson, runConfigPair } from '../machine/harness.js';

const STOP_AT_HLT = { reason: 12, actions: [{ kind: 'stop' as const }] };
const PDPTE0 = (L2Layout.PAGE_TABLES + 0x1000n) | 1n;

function unexplained(config: L1Config): string[] {
  const r = checkProgram(builtinL1(config), {}, { cpu: KVM_L1, profile: sdmProfile(), mode: 'all' });
  return r.divergences.filter((d) => d.kind !== 'expected-deviation').map((d) => hexJson(d));
}

function exitsOf(log: readonly Observation[]): Extract<Observation, { kind: 'exit-to-l1' }>[] {
  return log.filter((o): o is Extract<Observation, { kind: 'exit-to-l1' }> => o.kind === 'exit-to-l1');
}

function pdpteData(i: number, v: bigint): { gpa: bigint; bytes: Uint8Array } {
  const bytes = new Uint8Array(8);
  new DataView(bytes.buffer).setBigUint64(0, v, true);
  return { gpa: L2Layout.PAGE_TABLES + BigInt(8 * i), bytes };
}

describe('nested PAE L2 without EPT12: PDPTEs from L1 memory into vmcs02 (SDM 26.3.2.4)', () => {
  // Touches memory through PDPTE 0, reloads CR3 (the CPU reloads the PDPTEs, SDM 4.4.1), exits on CPUID and HLT.
  const base: L1Config = {
    l2: { mode: 'pae32', code: asm32`mov eax, [0x1f010]; mov dword ptr [0x1f014], 5; mov ebx, cr3; mov cr3, ebx; mov eax, 1; cpuid; mov ecx, [0x1f014]; hlt` },
    controls: { primary: Primary.HLT_EXITING }, policy: { rules: [STOP_AT_HLT] },
  };

  it('the first real entry of vmcs02 carries the PDPTEs read from L1 memory at GUEST_CR3, and the run agrees', () => {
    const pair = runConfigPair(base);
    const entry = pair.nested.records.items.find((r) => r.kind === 'l2-entry' && r.realEntry);
    expect(entry && entry.kind === 'l2-entry' ? entry.vmcs02.get(Field.GUEST_PDPTR0) : undefined).toBe(PDPTE0);
    expect(exitsOf(pair.nested.log).map((e) => e.exit.exitReason)).toEqual([10, 12]);
    expect(exitsOf(pair.reference.log).map((e) => e.exit.exitReason)).toEqual([10, 12]);
    expect(unexplained(base)).toEqual([]);
  });

  it('a reserved bit in the PDPTE 2 in memory fails the nested entry with the CPU\'s check id (guest.pdpte.2.reserved)', () => {
    const bad = (L2Layout.PAGE_TABLES + 0x5000n) | 1n | (1n << 6n); // present with reserved bit 6
    const config: L1Config = { ...base, l2: { ...base.l2, data: [pdpteData(2, bad)] } };
    const pair = runConfigPair(config);
    const shape = (log: readonly Observation[]) => exitsOf(log).map((e) => [e.exit.exitReason >>> 0, e.exit.qualification, e.failedCheck]);
    expect(shape(pair.reference.log)).toEqual([[0x8000_0021, 2n, 'guest.pdpte.2.reserved']]);
    expect(shape(pair.nested.log)).toEqual(shape(pair.reference.log));
    expect(unexplained(config)).toEqual([]);
  });

  it('the exit does not leak L0\'s PDPTEs into vmcs12: GUEST_PDPTRn keep what L1 wrote (no EPT12, SDM 28.3.4)', () => {
    const config: L1Config = { ...base, vmcsWrites: [[Field.GUEST_PDPTR0, 0x1234_5000n], [Field.GUEST_PDPTR3, 0n]] };
    const pair = runConfigPair(config);
    const pdptr0 = (log: readonly Observation[]) => exitsOf(log).map((e) => e.guestState.get(Field.GUEST_PDPTR0));
    expect(pdptr0(pair.reference.log)).toEqual([0x1234_5000n, 0x1234_5000n]);
    expect(pdptr0(pair.nested.log)).toEqual([0x1234_5000n, 0x1234_5000n]);
    expect(unexplained(config)).toEqual([]);
  });

  it('a not-present PDPTE 1 gives L2 a #PF at 0x40000000 on both machines (L0 passes PDPTE 1 = 0 through)', () => {
    const config: L1Config = { ...base, l2: { ...base.l2, code: asm32`mov eax, [0x40000000]; hlt` }, exceptionBitmap: 1 << 14, policy: { rules: [STOP_AT_HLT, { reason: 0, actions: [{ kind: 'stop' as const }] }] } };
    const pair = runConfigPair(config);
    const shape = (log: readonly Observation[]) => exitsOf(log).map((e) => [e.exit.exitReason, e.exit.interruptionErrorCode, e.exit.qualification]);
    expect(shape(pair.reference.log)).toEqual([[0, 0, 0x4000_0000n]]);
    expect(shape(pair.nested.log)).toEqual(shape(pair.reference.log));
    expect(unexplained(config)).toEqual([]);
  });
});
