// The kvm profile applies kvm.late-hardware-entry-checks (N8), kvm.msr-store-x2apic-only-when-enabled and
// kvm.msr-access-filter (N13): a small
// L1 program checked with the kvm profile diverges from the reference CPU only through divergences attributed to that
// deviation, and with the deviation switched off (or sdm) not at all.
// Must not: assert on divergences of other deviations (each case switches the others off with `only`).
import { describe, expect, it } from 'vitest';
import { asm64 } from '../../../src/asm/index.js';
import { Primary } from '../../../src/cpu/generated/controls.js';
import { Field } from '../../../src/cpu/generated/vmcs-fields.js';
import { builtinL1 } from '../../../src/cpu/l1/builtin.js';
import type { L1Config } from '../../../src/cpu/l1/config.js';
import type { L1LaunchResult, L1Machine, L1Program } from '../../../src/cpu/l1/machine.js';
import { Msr } from '../../../src/cpu/state.js';
import { checkProgram, type CheckInputs, type CheckOptions } from '../../../src/checker/run.js';
import type { Divergence } from '../../../src/checker/divergence.js';
import { kvmProfile, sdmProfile, type KvmDeviationId, type L0Profile } from '../../../src/nested/profile.js';
import { L1_MODEL } from '../../support/arbitraries/vmcs12.js';

/**
 * `program` with `hook` run once on L1's machine just before its first VMLAUNCH (vmcs12 current, fully written), and
 * `after` run with that VMLAUNCH's result.
 */
function beforeLaunch(program: L1Program, hook: (m: L1Machine) => void, after: (m: L1Machine, r: L1LaunchResult) => void = () => {}): L1Program {
  return (m) => {
    let done = false;
    const launch = (): L1LaunchResult => {
      if (done) return m.vmlaunch();
      done = true;
      hook(m);
      const r = m.vmlaunch();
      after(m, r);
      return r;
    };
    return program(new Proxy(m, {
      get: (t, p) => {
        if (p === 'vmlaunch') return launch;
        const v: unknown = Reflect.get(t, p);
        return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(t) : v;
      },
    }));
  };
}

const STOP_AT_CPUID: L1Config['policy'] = { rules: [{ reason: 10, actions: [{ kind: 'stop' }] }, { reason: 18, actions: [{ kind: 'stop' }] }] };

type Nested = CheckOptions['nested'];

function check(program: L1Program, profile: L0Profile, inputs: CheckInputs = {}, nested: Nested = {}): readonly Divergence[] {
  return checkProgram(program, inputs, { cpu: L1_MODEL, profile, mode: 'all', nested }).divergences;
}

/** sdm silent; kvm with only `id` gives ≥ 1 divergence, all expected and attributed to `id`; kvm without it silent. */
function expectOnlyThisDeviation(program: L1Program, id: KvmDeviationId, inputs: CheckInputs = {}, nested: Nested = {}): readonly Divergence[] {
  expect(check(program, sdmProfile(), inputs, nested)).toEqual([]);
  const on = check(program, kvmProfile({ only: [id] }), inputs, nested);
  expect(on.length).toBeGreaterThan(0);
  for (const d of on) expect(d).toMatchObject({ kind: 'expected-deviation', deviation: id });
  expect(check(program, kvmProfile({ only: [id], without: [id] }), inputs, nested)).toEqual([]);
  return on;
}

const STAR = 0x0023_0010_0000_0000n;
const NON_CANONICAL = 0x0000_8000_0000_0000n;

describe('kvm.late-hardware-entry-checks (N8)', () => {
  const id = 'kvm.late-hardware-entry-checks' as const;
  const config: L1Config = {
    l2: { mode: 'long64', code: asm64`cpuid; vmcall` },
    controls: { primary: Primary.HLT_EXITING },
    msrLists: { entryLoad: [[Msr.IA32_STAR, STAR]] },
    policy: STOP_AT_CPUID,
  };

  it('a hardware-only guest check (non-canonical GUEST_SYSENTER_ESP): exit 33 on both, but KVM loaded the MSR list first', () => {
    const program = beforeLaunch(builtinL1(config), (m) => {
      m.vmwrite(BigInt(Field.GUEST_SYSENTER_ESP), NON_CANONICAL);
    });
    const on = expectOnlyThisDeviation(program, id);
    expect(on.some((d) => d.rule === 'oracle.o3.l1-state' && d.field === 'msr.star'), JSON.stringify(on)).toBe(true);
    expect(on.some((d) => d.rule.startsWith('oracle.o2.')), JSON.stringify(on)).toBe(false);
  });

  it('a hardware-only control check (TPR threshold bits 31:4): VMfailValid(7) on both, KVM keeps entry-list MSRs the exit list does not name', () => {
    const LSTAR = 0x2000n;
    const seen: { kind: string; star: bigint; lstar: bigint }[] = [];
    // A VMfail observes no L1 state, so L1 shows its MSRs through VMREADs of fields it writes them to.
    const program = beforeLaunch(builtinL1({
      ...config,
      controls: { primary: Primary.HLT_EXITING | Primary.USE_TPR_SHADOW },
      tprThreshold: 0x10,
      msrLists: { entryLoad: [[Msr.IA32_STAR, STAR], [Msr.IA32_LSTAR, LSTAR]], exitLoad: [[Msr.IA32_STAR, 0n]] },
    }), () => {}, (m, r) => {
      const star = m.rdmsr(Msr.IA32_STAR);
      const lstar = m.rdmsr(Msr.IA32_LSTAR);
      seen.push({ kind: r.kind, star, lstar });
      m.vmwrite(BigInt(Field.GUEST_RIP), lstar);
      m.vmread(BigInt(Field.GUEST_RIP));
      m.vmwrite(BigInt(Field.GUEST_RSP), star);
      m.vmread(BigInt(Field.GUEST_RSP));
    });
    const on = expectOnlyThisDeviation(program, id);
    expect(on.find((d) => d.rule === 'oracle.o1.instruction'), JSON.stringify(on)).toMatchObject({ actual: `vmwrite(0x${Field.GUEST_RIP.toString(16)}, 0x${LSTAR.toString(16)})` });
    expect(on.some((d) => d.rule === 'oracle.o1.vm-instruction-error' || d.rule === 'oracle.o1.vmx-outcome'), JSON.stringify(on)).toBe(false);
    // Each check runs the reference first: the CPU leaves both MSRs; KVM keeps LSTAR and (in both lists) re-loads STAR.
    seen.length = 0;
    check(program, kvmProfile({ only: [id] }));
    expect(seen[0]!.kind).toBe('vmfail-valid');
    expect(seen[1]).toEqual({ kind: 'vmfail-valid', star: 0n, lstar: LSTAR });
    expect(seen[0]!.lstar).not.toBe(LSTAR);
  });

  it('a check KVM does in software (unsupported activity state) fails before the MSR list on both', () => {
    const program = beforeLaunch(builtinL1(config), (m) => {
      m.vmwrite(BigInt(Field.GUEST_ACTIVITY_STATE), 7n);
    });
    expect(check(program, sdmProfile())).toEqual([]);
    expect(check(program, kvmProfile({ only: [id] }))).toEqual([]);
  });
});

describe('kvm.msr-store-x2apic-only-when-enabled (N13)', () => {
  const id = 'kvm.msr-store-x2apic-only-when-enabled' as const;
  const X2APIC_TPR = 0x808;
  // The platform lets RDMSR read 808H, so only the list rule decides (the reference's [verify] case).
  const inputs: CheckInputs = { platform: { extraMsrs: [X2APIC_TPR] } };
  const config: L1Config = {
    l2: { mode: 'long64', code: asm64`cpuid; vmcall` },
    controls: { primary: Primary.HLT_EXITING },
    msrLists: { exitStore: [Msr.IA32_STAR, X2APIC_TPR] },
    policy: STOP_AT_CPUID,
  };

  it('x2APIC off: a CPU aborts (VMX abort 1) on 808H in the exit-store list; KVM stores it', () => {
    const on = expectOnlyThisDeviation(builtinL1(config), id, inputs);
    expect(on.find((d) => d.rule === 'oracle.o1.vmx-outcome'), JSON.stringify(on)).toMatchObject({ expected: 'shutdown', actual: 'vm-exit' });
  });

  it('x2APIC on: both refuse it', () => {
    const program = beforeLaunch(builtinL1(config), (m) => {
      m.wrmsr(Msr.IA32_APIC_BASE, 0xfee0_0000n | (3n << 10n));
    });
    expect(check(program, sdmProfile(), inputs)).toEqual([]);
    expect(check(program, kvmProfile({ only: [id] }), inputs)).toEqual([]);
  });
});

describe('kvm.msr-access-filter (N13)', () => {
  const id = 'kvm.msr-access-filter' as const;
  const l2 = { mode: 'long64', code: asm64`cpuid; vmcall` } as const;

  it('the filter denies writes of IA32_STAR: the entry MSR-load list fails (exit 34, entry 2) under KVM only', () => {
    const config: L1Config = {
      l2, controls: { primary: Primary.HLT_EXITING },
      msrLists: { entryLoad: [[Msr.IA32_LSTAR, 0x1000n], [Msr.IA32_STAR, STAR]] },
      policy: STOP_AT_CPUID,
    };
    const on = expectOnlyThisDeviation(builtinL1(config), id, {}, { msrFilter: { deniedWrites: [Msr.IA32_STAR] } });
    expect(on.some((d) => d.rule.startsWith('oracle.o2.') || d.rule.startsWith('oracle.sequence.')), JSON.stringify(on)).toBe(true);
  });

  it('the filter denies reads of IA32_STAR: the exit MSR-store list fails (VMX abort 1) under KVM only', () => {
    const config: L1Config = { l2, controls: { primary: Primary.HLT_EXITING }, msrLists: { exitStore: [Msr.IA32_STAR] }, policy: STOP_AT_CPUID };
    const on = expectOnlyThisDeviation(builtinL1(config), id, {}, { msrFilter: { deniedReads: [Msr.IA32_STAR] } });
    expect(on.find((d) => d.rule === 'oracle.o1.vmx-outcome'), JSON.stringify(on)).toMatchObject({ expected: 'vm-exit', actual: 'shutdown' });
  });

  it('a filter on other MSRs (or on the other direction) changes nothing', () => {
    const config: L1Config = {
      l2, controls: { primary: Primary.HLT_EXITING }, msrLists: { entryLoad: [[Msr.IA32_STAR, STAR]], exitStore: [Msr.IA32_STAR] }, policy: STOP_AT_CPUID,
    };
    expect(check(builtinL1(config), kvmProfile({ only: [id] }), {}, { msrFilter: { deniedReads: [Msr.IA32_LSTAR], deniedWrites: [Msr.IA32_LSTAR] } })).toEqual([]);
  });
});
