// The kvm profile applies the deviations it names: for kvm.debugctl-bits-dropped (N12) and
// kvm.field-existence-ignores-features (N24), a small L1 program checked with the kvm profile diverges from the reference
// CPU only through divergences attributed to that deviation, and with the deviation switched off (or sdm) not at all.
// Also: every observable row of kvm-deviations.json is asked for (`deviations.has` / `deviates` / `inDeviation` with its
// Deviation constant) in a file its `appliedIn` names, except an exact, tracked list of rows no code applies yet.
// Must not: assert on divergences of other deviations (each case switches the others off with `only`).
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { asm64 } from '../../../src/asm/index.js';
import { EntryCtl, ExitCtl, Primary } from '../../../src/cpu/generated/controls.js';
import { Field } from '../../../src/cpu/generated/vmcs-fields.js';
import { VmError } from '../../../src/cpu/generated/vm-instruction-errors.js';
import { builtinL1 } from '../../../src/cpu/l1/builtin.js';
import type { L1Config } from '../../../src/cpu/l1/config.js';
import type { L1LaunchResult, L1Machine, L1Program } from '../../../src/cpu/l1/machine.js';
import { Msr } from '../../../src/cpu/state.js';
import { checkProgram } from '../../../src/checker/run.js';
import type { Divergence } from '../../../src/checker/divergence.js';
import { Deviation, KVM_OBSERVABLE_DEVIATIONS, kvmProfile, sdmProfile, type KvmDeviationId, type L0Profile } from '../../../src/nested/profile.js';
import { L1_MODEL } from '../../support/arbitraries/vmcs12.js';

/** `program` with `hook` run once on L1's machine just before its first VMLAUNCH (vmcs12 current, fully written). */
function beforeLaunch(program: L1Program, hook: (m: L1Machine) => void): L1Program {
  return (m) => {
    let done = false;
    const launch = (): L1LaunchResult => {
      if (!done) {
        done = true;
        hook(m);
      }
      return m.vmlaunch();
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

const baseConfig = (entry: number, exit: number): L1Config => ({
  l2: { mode: 'long64', code: asm64`cpuid; vmcall` },
  controls: { primary: Primary.HLT_EXITING, entry, exit },
  policy: { rules: [{ reason: 18, actions: [{ kind: 'stop' }] }] },
});

function check(program: L1Program, profile: L0Profile): readonly Divergence[] {
  return checkProgram(program, {}, { cpu: L1_MODEL, profile, mode: 'all' }).divergences;
}

/** Every run: sdm silent; kvm with only `id` gives ≥ 1 divergence, all expected and attributed to `id`; kvm without it silent. */
function expectOnlyThisDeviation(program: L1Program, id: KvmDeviationId): readonly Divergence[] {
  expect(check(program, sdmProfile())).toEqual([]);
  const on = check(program, kvmProfile({ only: [id] }));
  expect(on.length).toBeGreaterThan(0);
  for (const d of on) expect(d).toMatchObject({ kind: 'expected-deviation', deviation: id });
  expect(check(program, kvmProfile({ only: [id], without: [id] }))).toEqual([]);
  // The full kvm profile also attributes these to `id` (no other deviation claims them).
  const all = check(program, kvmProfile());
  for (const d of all.filter((x) => x.field === 'GUEST_IA32_DEBUGCTL' || x.rule.startsWith('oracle.o1.'))) expect(d.kind).toBe('expected-deviation');
  return on;
}

const DEBUGCTL_LBR_BTF = 0b11n;

describe('kvm.debugctl-bits-dropped (N12)', () => {
  const id = 'kvm.debugctl-bits-dropped' as const;

  it('vmcs12 GUEST_IA32_DEBUGCTL with LBR/BTF: a CPU loads and saves them, KVM drops them', () => {
    const program = beforeLaunch(builtinL1(baseConfig(EntryCtl.LOAD_DEBUG_CONTROLS, ExitCtl.SAVE_DEBUG_CONTROLS)), (m) => {
      m.vmwrite(BigInt(Field.GUEST_IA32_DEBUGCTL), DEBUGCTL_LBR_BTF);
    });
    const on = expectOnlyThisDeviation(program, id);
    const saved = on.find((d) => d.field === 'GUEST_IA32_DEBUGCTL');
    expect(saved, JSON.stringify(on)).toBeDefined();
  });

  it('L1 WRMSR IA32_DEBUGCTL with LBR/BTF, inherited by L2 (no load-debug-controls): KVM dropped them', () => {
    const program = beforeLaunch(builtinL1(baseConfig(0, ExitCtl.SAVE_DEBUG_CONTROLS)), (m) => {
      m.wrmsr(Msr.IA32_DEBUGCTL, DEBUGCTL_LBR_BTF | (1n << 14n));
    });
    const on = expectOnlyThisDeviation(program, id);
    expect(on.some((d) => d.field === 'GUEST_IA32_DEBUGCTL'), JSON.stringify(on)).toBe(true);
  });

  it('L2 WRMSR IA32_DEBUGCTL that L1 does not intercept (L0 emulates it): KVM drops LBR/BTF', () => {
    const config: L1Config = {
      l2: { mode: 'long64', code: asm64`mov ecx, 0x1d9; mov eax, 3; xor edx, edx; wrmsr; cpuid; vmcall` },
      controls: { primary: Primary.HLT_EXITING, exit: ExitCtl.SAVE_DEBUG_CONTROLS },
      msrBitmap: { write: [Msr.IA32_EFER] },
      policy: { rules: [{ reason: 18, actions: [{ kind: 'stop' }] }] },
    };
    const on = expectOnlyThisDeviation(builtinL1(config), id);
    expect(on.some((d) => d.field === 'GUEST_IA32_DEBUGCTL'), JSON.stringify(on)).toBe(true);
  });

  it('FREEZE_IN_SMM alone in GUEST_IA32_DEBUGCTL is accepted and kept on both (no divergence)', () => {
    const program = beforeLaunch(builtinL1(baseConfig(EntryCtl.LOAD_DEBUG_CONTROLS, ExitCtl.SAVE_DEBUG_CONTROLS)), (m) => {
      m.vmwrite(BigInt(Field.GUEST_IA32_DEBUGCTL), 1n << 14n);
    });
    expect(check(program, kvmProfile({ only: [id] }))).toEqual([]);
  });
});

describe('kvm.field-existence-ignores-features (N24)', () => {
  const id = 'kvm.field-existence-ignores-features' as const;
  // kvm-l1 does not offer "use TSC scaling" (PROCBASED_CTLS2 bit 25), so a CPU with its capabilities has no TSC_MULTIPLIER.
  it('the advertised model lacks the feature, yet vmcs12 lists the field', () => {
    expect(L1_MODEL.controlOffered('secondary.use-tsc-scaling')).toBe(false);
    expect(L1_MODEL.fieldSupported(Field.TSC_MULTIPLIER)).toBe(false);
    expect(L1_MODEL.fieldListed(Field.TSC_MULTIPLIER)).toBe(true);
  });

  it('VMWRITE/VMREAD of TSC_MULTIPLIER: VMfailValid(12) on a CPU, success under kvm', () => {
    const outcomes: string[] = [];
    const program = beforeLaunch(builtinL1(baseConfig(0, 0)), (m) => {
      const w = m.vmwrite(BigInt(Field.TSC_MULTIPLIER), 0x1_0000_0000_0000n);
      const r = m.vmread(BigInt(Field.TSC_MULTIPLIER));
      outcomes.push(`${w.kind}:${'error' in w ? w.error : ''}`, `${r.kind}:${'value' in r ? r.value : 'error' in r ? r.error : ''}`);
    });
    const on = expectOnlyThisDeviation(program, id);
    expect(on.some((d) => d.rule.startsWith('oracle.o1.')), JSON.stringify(on)).toBe(true);
    // Each check runs both machines (reference first); the sdm run's reference shows the CPU's error 12.
    outcomes.length = 0;
    check(program, sdmProfile());
    expect(outcomes.slice(0, 2)).toEqual([`vmfail-valid:${VmError.UNSUPPORTED_VMCS_COMPONENT}`, `vmfail-valid:${VmError.UNSUPPORTED_VMCS_COMPONENT}`]);
    outcomes.length = 0;
    check(program, kvmProfile({ only: [id] }));
    expect(outcomes.slice(2, 4)).toEqual(['vmsucceed:', `vmsucceed:${0x1_0000_0000_0000n}`]);
  });
});

describe('every observable kvm deviation is applied where kvm-deviations.json says', () => {
  const root = join(import.meta.dirname, '../../..');
  const rows = (JSON.parse(readFileSync(join(root, 'schemas/nested/kvm-deviations.json'), 'utf8')) as {
    deviations: { id: string; observable: boolean; appliedIn: string }[];
  }).deviations.filter((d) => d.observable);
  /** Named by the profile but applied by no code yet (KNOWN_GAPS.md kvm-deviations-unapplied): must shrink, never grow. */
  const NOT_APPLIED_YET: readonly KvmDeviationId[] = [
    'kvm.guest-state-needs-unrestricted-guest',
  ];
  const constantOf = new Map(Object.entries(Deviation).map(([k, v]) => [v as string, k]));
  const tsFiles = (rel: string): string[] => {
    const abs = join(root, rel);
    if (!existsSync(abs)) return [];
    if (!statSync(abs).isDirectory()) return [abs];
    return readdirSync(abs, { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.ts')).map((f) => join(abs, f));
  };
  /** Whether some appliedIn file asks the profile for `id` through its constant (a comment or a table does not count). */
  const applied = (row: { id: string; appliedIn: string }): boolean => {
    const key = constantOf.get(row.id);
    if (key === undefined) return false;
    const asks = new RegExp(`(deviations\\.has|deviates|inDeviation)\\([^()]*Deviation\\.${key}\\b`);
    return row.appliedIn.split(',').map((p) => p.trim()).flatMap(tsFiles).some((f) => asks.test(readFileSync(f, 'utf8')));
  };

  it('each appliedIn path exists', () => {
    for (const r of rows) for (const p of r.appliedIn.split(',').map((x) => x.trim())) expect(existsSync(join(root, p)), `${r.id}: ${p}`).toBe(true);
  });

  it('each row is applied in its appliedIn files, except exactly the tracked not-yet-applied ones', () => {
    expect(rows.map((r) => r.id).sort()).toEqual([...KVM_OBSERVABLE_DEVIATIONS].sort());
    const unapplied = rows.filter((r) => !applied(r)).map((r) => r.id);
    expect(unapplied.sort()).toEqual([...NOT_APPLIED_YET].sort());
    expect(readFileSync(join(root, 'KNOWN_GAPS.md'), 'utf8')).toContain('| kvm-deviations-unapplied |');
  });

  it('the check recognises an application and rejects a mere mention', () => {
    expect(applied({ id: 'kvm.debugctl-bits-dropped', appliedIn: 'src/nested/merge/rules-guest.ts' })).toBe(true);
    expect(applied({ id: 'kvm.debugctl-bits-dropped', appliedIn: 'src/nested/profile.ts' })).toBe(false);
    expect(applied({ id: 'kvm.debugctl-bits-dropped', appliedIn: 'src/checker/deviations.ts' })).toBe(false);
  });
});
