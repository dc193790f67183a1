// The kvm profile applies kvm.mtf-lost-across-smm (N16) and kvm.posted-interrupt-deferred (N18): a small L1 program
// checked with the kvm profile diverges from the reference CPU only through divergences attributed to that deviation,
// and with it switched off (or sdm) not at all. Must not: assert on divergences of other deviations (each case
// switches the others off with `only`).
import { describe, expect, it } from 'vitest';
import { asm64 } from '../../../src/asm/index.js';
import { findCpuModel, type CpuModel } from '../../../src/cpu/cpu-model.js';
import { ExitCtl, Pin, Primary, Secondary } from '../../../src/cpu/generated/controls.js';
import { ExitReason } from '../../../src/cpu/generated/exit-reasons.js';
import { Field } from '../../../src/cpu/generated/vmcs-fields.js';
import { builtinL1 } from '../../../src/cpu/l1/builtin.js';
import { L1Layout, type L1Config } from '../../../src/cpu/l1/config.js';
import type { ScheduledEvent } from '../../../src/cpu/machine/run-guest.js';
import { checkProgram, type CheckInputs } from '../../../src/checker/run.js';
import type { Divergence } from '../../../src/checker/divergence.js';
import { kvmProfile, sdmProfile, type KvmDeviationId, type L0Profile } from '../../../src/nested/profile.js';
import { L1_MODEL } from '../../support/arbitraries/vmcs12.js';

function check(config: L1Config, inputs: CheckInputs, profile: L0Profile, cpu: CpuModel = L1_MODEL): readonly Divergence[] {
  return checkProgram(builtinL1(config), inputs, { cpu, host: cpu, profile, mode: 'all' }).divergences;
}

/** sdm silent; kvm with only `id` gives ≥ 1 divergence, all expected and attributed to `id`; kvm without it silent. */
function expectOnlyThisDeviation(config: L1Config, inputs: CheckInputs, id: KvmDeviationId, cpu: CpuModel = L1_MODEL): readonly Divergence[] {
  expect(check(config, inputs, sdmProfile(), cpu)).toEqual([]);
  const on = check(config, inputs, kvmProfile({ only: [id] }), cpu);
  expect(on.length).toBeGreaterThan(0);
  for (const d of on) expect(d).toMatchObject({ kind: 'expected-deviation', deviation: id });
  expect(check(config, inputs, kvmProfile({ only: [id], without: [id] }), cpu)).toEqual([]);
  return on;
}

const hex = (v: unknown): string => JSON.stringify(v, (_k, x: unknown) => (typeof x === 'bigint' ? x.toString(16) : x));

describe('kvm.mtf-lost-across-smm (N16)', () => {
  const id = 'kvm.mtf-lost-across-smm' as const;
  // MTF on: after L2's first NOP an MTF VM exit is pending; the SMI due at that boundary outranks it (SDM 6.9).
  const config: L1Config = {
    l2: { mode: 'long64', code: asm64`nop; nop; nop; cpuid; vmcall` },
    controls: { primary: Primary.HLT_EXITING | Primary.MONITOR_TRAP_FLAG },
    policy: { rules: [{ reason: ExitReason.MONITOR_TRAP_FLAG, actions: [{ kind: 'stop' }] }, { reason: 18, actions: [{ kind: 'stop' }] }] },
  };
  const smiAt = (at: number): CheckInputs => ({ schedule: [{ at, kind: 'smi' } satisfies ScheduledEvent] });

  it('an SMI while an MTF exit is pending: a CPU takes the MTF exit after RSM, KVM runs one more L2 instruction', () => {
    const on = expectOnlyThisDeviation(config, smiAt(1), id);
    // L1 sees the MTF exit one NOP later than a CPU reports it (GUEST_RIP 0x10002 instead of 0x10001).
    expect(on.some((d) => d.rule === 'oracle.o2.guest-state' && d.field === 'GUEST_RIP'), hex(on)).toBe(true);
  });

  it('an SMI with no MTF exit pending is invisible on both (no divergence)', () => {
    const noMtf: L1Config = { ...config, controls: { primary: Primary.HLT_EXITING } };
    expect(check(noMtf, smiAt(1), kvmProfile({ only: [id] }))).toEqual([]);
  });

  it('no SMI: MTF exits agree under kvm with the deviation on', () => {
    expect(check(config, {}, kvmProfile({ only: [id] }))).toEqual([]);
  });
});

describe('kvm.posted-interrupt-deferred (N18)', () => {
  const id = 'kvm.posted-interrupt-deferred' as const;
  // L1's CPU must offer posted interrupts (kvm-l1 does not): the Xeon of the posted-interrupt regression tests.
  const XEON = findCpuModel('intel-xeon-platinum-8160')!;
  const APIC = 0xa_0000n;
  const PI_DESC = 0x0100_e000n;
  const NV = 0xf2;
  /** A descriptor with PIR bit `vector` and the outstanding-notification bit (ON, bit 256) as given. */
  const descriptor = (vector: number, on: boolean): Uint8Array => {
    const b = new Uint8Array(64);
    const dv = new DataView(b.buffer);
    dv.setUint32((vector >> 5) * 4, (1 << (vector & 31)) >>> 0, true);
    if (on) dv.setUint32(32, 1, true);
    return b;
  };
  const config = (on: boolean): L1Config => ({
    l2: { mode: 'long64', code: asm64`nop; nop; nop; hlt`, gprs: [[3, APIC]], rflags: 0x200n },
    controls: {
      primary: Primary.HLT_EXITING | Primary.USE_TPR_SHADOW, secondary: Secondary.VIRTUALIZE_APIC_ACCESSES | Secondary.VIRTUAL_INTERRUPT_DELIVERY,
      pin: Pin.EXTERNAL_INTERRUPT_EXITING | Pin.PROCESS_POSTED_INTERRUPTS, exit: ExitCtl.ACKNOWLEDGE_INTERRUPT_ON_EXIT,
    },
    l1Data: [{ gpa: L1Layout.VIRTUAL_APIC, bytes: new Uint8Array(4096) }, { gpa: PI_DESC, bytes: descriptor(0x61, on) }],
    vmcsWrites: [[Field.APIC_ACCESS_ADDR, APIC], [Field.POSTED_INTR_NV, BigInt(NV)], [Field.POSTED_INTR_DESC_ADDR, PI_DESC]],
    policy: { rules: [{ reason: ExitReason.HLT, actions: [{ kind: 'stop' }] }, { reason: 1, actions: [{ kind: 'stop' }] }] },
    maxExits: 2,
  });
  const notify: CheckInputs = { schedule: [{ at: 1, kind: 'interrupt', vector: NV } satisfies ScheduledEvent] };

  it('a notification finding ON clear: a CPU still moves PIR into VIRR and L2 takes 61H; KVM leaves PIR posted', () => {
    const on = expectOnlyThisDeviation(config(false), notify, id, XEON);
    // On a CPU L2 ran its handler for 61H before the HLT exit; under KVM it did not (RIP and RVI differ).
    expect(on.some((d) => d.rule === 'oracle.o2.guest-state' && d.field === 'GUEST_RIP'), hex(on)).toBe(true);
  });

  it('a notification finding ON set is processed alike (no divergence)', () => {
    expect(check(config(true), notify, kvmProfile({ only: [id] }), XEON)).toEqual([]);
  });
});
