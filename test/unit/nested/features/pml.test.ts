// Regression tests for page-modification logging of L2 on the nested machine (kvm-l1 offers PML): vmcs02 runs without
// PML, and L0's software walk of EPT12 logs each L2 page whose EPT12 dirty flag it sets into vmcs12's PML page, counts
// vmcs12's index down and gives L1 the PML-full exit (62) when a flag must be set with the index outside 0–511 (SDM
// 29.3.6, 27.2.1). Reference vs nested through checkProgram (sdm profile) and runConfigPair.
import { describe, expect, it } from 'vitest';
import { asm64 } from '../../../../src/asm/index.js';
import { L1_GPA } from '../../../../src/cpu/address.js';
import { Primary, Secondary } from '../../../../src/cpu/generated/controls.js';
import { Field } from '../../../../src/cpu/generated/vmcs-fields.js';
import { L2Layout } from '../../../../src/cpu/interp/l2-env.js';
import { builtinL1 } from '../../../../src/cpu/l1/builtin.js';
import type { L1Config } from '../../../../src/cpu/l1/config.js';
import { PML_LOG } from '../../../../src/cpu/l1/setup.js';
import type { Observation } from '../../../../src/cpu/l1/observation.js';
import { checkProgram } from '../../../../src/checker/run.js';
import { sdmProfile } from '../../../../src/nested/profile.js';
import { KVM_L1, hexJson, runConfigPair } from '../machine/harness.js';
import { pmlConfig, STOP_AT_HLT } from '../../../support/pml-config.js';

const DATA = L2Layout.DATA;


function unexplained(c: L1Config): string[] {
  const r = checkProgram(builtinL1(c), {}, { cpu: KVM_L1, profile: sdmProfile(), mode: 'all' });
  return r.divergences.filter((d) => d.kind !== 'expected-deviation').map((d) => hexJson(d));
}

const exitsOf = (log: readonly Observation[]) =>
  log.filter((o): o is Extract<Observation, { kind: 'exit-to-l1' }> => o.kind === 'exit-to-l1')
    .map((o) => [o.exit.exitReason, o.exit.qualification, o.guestState.get(Field.GUEST_RIP), o.guestState.get(Field.GUEST_PML_INDEX)]);

describe('nested page-modification logging (SDM 29.3.6)', () => {
  it('kvm-l1 offers "enable PML" (the scenarios below really run with it)', () => {
    expect(KVM_L1.controlOffered('secondary.enable-pml')).toBe(true);
  });

  it('logs the paging-structure pages and each newly dirtied data page, from index 511 down, like the CPU', () => {
    const c = pmlConfig(asm64`mov rbx, ${DATA}; mov qword ptr [rbx+0x10], rax; mov qword ptr [rbx+0x1008], rax; mov qword ptr [rbx+0x18], rax; hlt`, 511n);
    const pair = runConfigPair(c);
    expect(exitsOf(pair.reference.log).map((e) => [e[0], e[3]])).toEqual([[12, 506n]]);
    expect(exitsOf(pair.nested.log)).toEqual(exitsOf(pair.reference.log));
    expect(unexplained(c)).toEqual([]);
  });

  it('an accessed flag with the index at FFFFh: PML-full exit 62 at the first fetch, then L1 resets the index', () => {
    const c = pmlConfig(asm64`mov rbx, ${DATA}; mov qword ptr [rbx], rax; hlt`, 2n, {
      policy: { rules: [{ reason: 62, actions: [{ kind: 'vmwrite', encoding: Field.GUEST_PML_INDEX, value: 511n }] }, STOP_AT_HLT] },
    });
    const pair = runConfigPair(c);
    expect(exitsOf(pair.reference.log)).toEqual([[62, 0n, L2Layout.CODE, 0xffffn], [12, 0n, L2Layout.CODE + 10n, 510n]]);
    expect(exitsOf(pair.nested.log)).toEqual(exitsOf(pair.reference.log));
    expect(unexplained(c)).toEqual([]);
  });

  it('a store to a page not yet dirty with the index at FFFFh exits 62 before writing memory or the dirty flag', () => {
    const c = pmlConfig(asm64`mov rbx, ${DATA}; mov rax, [rbx]; vmcall; mov eax, 0x55; mov qword ptr [rbx], rax; hlt`, 511n, {
      policy: {
        rules: [
          { reason: 18, actions: [{ kind: 'vmwrite', encoding: Field.GUEST_PML_INDEX, value: 0xffffn }, { kind: 'skip' }] },
          { reason: 62, actions: [{ kind: 'vmwrite', encoding: Field.GUEST_PML_INDEX, value: 511n }] },
          STOP_AT_HLT,
        ],
      },
    });
    const pair = runConfigPair(c);
    expect(exitsOf(pair.reference.log).map((e) => e[0])).toEqual([18, 62, 12]);
    expect(exitsOf(pair.nested.log)).toEqual(exitsOf(pair.reference.log));
    expect(unexplained(c)).toEqual([]);
  });

  it('the built-in L1 with "enable PML" in its controls sets up its own log (PML_LOG, index 511) and both machines agree', () => {
    const c: L1Config = {
      l2: { mode: 'long64', code: asm64`mov rbx, ${DATA}; mov qword ptr [rbx], rax; mov qword ptr [rbx+0x2000], rax; hlt` },
      controls: { primary: Primary.HLT_EXITING, secondary: Secondary.ENABLE_PML }, ept: { accessedDirty: true },
      policy: { rules: [STOP_AT_HLT] },
    };
    const pair = runConfigPair(c);
    const exits = exitsOf(pair.reference.log);
    expect(exits.map((e) => e[0])).toEqual([12]);
    expect(exits[0]![3]).toBeLessThan(511n); // something was logged
    const logged = pair.reference.machine.memory.readU64(L1_GPA.of(PML_LOG + 511n * 8n));
    expect(logged).not.toBe(0n);
    expect(exitsOf(pair.nested.log)).toEqual(exits);
    expect(unexplained(c)).toEqual([]); // O5 compares the log page's bytes too
  });

  it('an instruction L0 emulates (INS, which only vmcs02 intercepts) logs its store\'s page, and fills the log at FFFFh', () => {
    for (const full of [false, true]) {
      // With `full`, L1 sets the index to FFFFh at the VMCALL: the INS store then needs DATA's flags and exits 62.
      const c = pmlConfig(asm64`mov edi, ${Number(DATA)}; mov edx, 0x80; vmcall; insb; hlt`, 511n, {
        policy: {
          rules: [
            { reason: 18, actions: [...(full ? [{ kind: 'vmwrite' as const, encoding: Field.GUEST_PML_INDEX, value: 0xffffn }] : []), { kind: 'skip' as const }] },
            { reason: 62, actions: [{ kind: 'vmwrite', encoding: Field.GUEST_PML_INDEX, value: 511n }] },
            STOP_AT_HLT,
          ],
        },
      });
      const pair = runConfigPair(c);
      expect(exitsOf(pair.reference.log).map((e) => e[0])).toEqual(full ? [18, 62, 12] : [18, 12]);
      expect(pair.nested.records.ofKind('l2-exit').some((e) => e.handler === (full ? 'emulate-30-pml12-full' : 'emulate-30'))).toBe(true);
      expect(exitsOf(pair.nested.log)).toEqual(exitsOf(pair.reference.log));
      expect(unexplained(c)).toEqual([]);
    }
  });

  it('a PML-full exit during delivery of an injected INT n records its length (SDM 27.2.5: exit during software-interrupt delivery)', () => {
    // Index FFFFh: the delivery's first accessed/dirty-flag update (IDT, stack) is a log-full event, so exit 62 comes
    // with IDT-vectoring information for INT 80h and VM_EXIT_INSTRUCTION_LEN = 2 (the injected length).
    const c = pmlConfig(asm64`hlt`, 0xffffn, {
      injection: { vector: 0x80, type: 4, instructionLength: 2 },
      policy: { rules: [{ reason: 62, actions: [{ kind: 'stop' }] }, STOP_AT_HLT] },
    });
    const pair = runConfigPair(c);
    const fullExits = (log: readonly Observation[]) =>
      log.filter((o): o is Extract<Observation, { kind: 'exit-to-l1' }> => o.kind === 'exit-to-l1')
        .map((o) => [o.exit.exitReason, o.exit.idtVectoringInfo, o.exit.instructionLength]);
    expect(fullExits(pair.reference.log)).toEqual([[62, 0x8000_0480, 2]]);
    expect(fullExits(pair.nested.log)).toEqual(fullExits(pair.reference.log));
    expect(unexplained(c)).toEqual([]);
  });

  it('without EPT A/D nothing is logged and the log never fills', () => {
    const c = pmlConfig(asm64`mov rbx, ${DATA}; mov qword ptr [rbx], rax; hlt`, 0xffffn, { ept: {} });
    const pair = runConfigPair(c);
    expect(exitsOf(pair.reference.log).map((e) => [e[0], e[3]])).toEqual([[12, 0xffffn]]);
    expect(exitsOf(pair.nested.log)).toEqual(exitsOf(pair.reference.log));
    expect(unexplained(c)).toEqual([]);
  });
});
