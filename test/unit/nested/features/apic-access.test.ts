// Regression tests for vmcs12's APIC-access page under instructions L0 emulates for L2 (an OUTS vmcs02 exits on for
// L0's I/O interception but vmcs12 lets through): the emulated memory access must cause vmcs12's APIC-access exit
// (reason 44, SDM 29.4) exactly as on a CPU running vmcs12 — here with APIC_ACCESS_ADDR = 0 (oracle seed 7).
import { describe, expect, it } from 'vitest';
import { asm64 } from '../../../../src/asm/index.js';
import { Primary, Secondary } from '../../../../src/cpu/generated/controls.js';
import { Field } from '../../../../src/cpu/generated/vmcs-fields.js';
import { builtinL1 } from '../../../../src/cpu/l1/builtin.js';
import { L1Layout, type L1Config } from '../../../../src/cpu/l1/config.js';
import type { Observation } from '../../../../src/cpu/l1/observation.js';
import { checkProgram } from '../../../../src/checker/run.js';
import { sdmProfile } from '../../../../src/nested/profile.js';
import { KVM_L1, hexJson, runConfigPair } from '../machine/harness.js';

function unexplained(config: L1Config): string[] {
  const r = checkProgram(builtinL1(config), {}, { cpu: KVM_L1, profile: sdmProfile(), mode: 'all' });
  return r.divergences.filter((d) => d.kind !== 'expected-deviation').map((d) => hexJson(d));
}

function exits(log: readonly Observation[]): [number, bigint][] {
  return log.filter((o): o is Extract<Observation, { kind: 'exit-to-l1' }> => o.kind === 'exit-to-l1').map((o) => [o.exit.exitReason, o.exit.qualification]);
}

describe('APIC-access page seen by L0-emulated L2 instructions', () => {
  // The seed-7 counterexample: `addr32 outsb` reads GPA 0 = the APIC-access page (never written, so 0), then VMCALL.
  const seed7: L1Config = {
    l2: { mode: 'long64', code: new Uint8Array([0x67, 0x6e, 0x48, 0x89, 0x03, 0x0f, 0x01, 0xc1]), gprs: [[3, 0x9_0000n]] },
    controls: { pin: 0, primary: 0, secondary: Secondary.VIRTUALIZE_APIC_ACCESSES, exit: 0, entry: 0 },
    exceptionBitmap: 1 << 14, policy: { rules: [{ reason: 18, actions: [{ kind: 'stop' }] }] }, maxExits: 24,
  };

  it('OUTS reading the APIC-access page at GPA 0: APIC-access exit (linear read, offset 0) on both machines', () => {
    const pair = runConfigPair(seed7);
    expect(exits(pair.reference.log)[0]).toEqual([44, 0n]);
    expect(exits(pair.nested.log)).toEqual(exits(pair.reference.log));
    expect(unexplained(seed7)).toEqual([]);
  });

  for (const ept of [false, true]) {
    it(`OUTS from a page offset of a relocated APIC-access page (${ept ? 'EPT12' : 'no EPT12'}): same exit and qualification`, () => {
      const page = 0xa_0000n;
      const config: L1Config = {
        l2: { mode: 'long64', code: asm64`mov esi, ${Number(page) + 0x30}; outsb; hlt`, gprs: [[2, 0x80n]] },
        ...(ept ? { ept: {} } : {}),
        controls: { primary: Primary.HLT_EXITING | Primary.USE_TPR_SHADOW, secondary: Secondary.VIRTUALIZE_APIC_ACCESSES },
        vmcsWrites: [[Field.APIC_ACCESS_ADDR, ept ? L1Layout.L2_BASE + page : page]],
        policy: { rules: [{ reason: 12, actions: [{ kind: 'stop' }] }, { reason: 44, actions: [{ kind: 'stop' }] }] },
      };
      const pair = runConfigPair(config);
      expect(exits(pair.reference.log)).toEqual([[44, 0x30n]]);
      expect(exits(pair.nested.log)).toEqual(exits(pair.reference.log));
      expect(unexplained(config)).toEqual([]);
    });
  }
});
