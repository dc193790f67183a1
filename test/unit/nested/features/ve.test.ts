// Regression tests for EPT-violation #VE of L2 on the nested machine (Skylake as L1's CPU and host; kvm-l1 offers no
// #VE): vmcs02 runs without the control, and an EPT12 violation L0's walk finds becomes, as on a CPU running vmcs12,
// the VE area in L1 memory plus #VE in L2 — or the exit when the busy word is set, or exit 0 with exception bitmap bit
// 20 (SDM 25.5.6). Reference vs nested through checkProgram (sdm profile) and runConfigPair.
import { describe, expect, it } from 'vitest';
import { asm64 } from '../../../../src/asm/index.js';
import { Primary, Secondary } from '../../../../src/cpu/generated/controls.js';
import { Field } from '../../../../src/cpu/generated/vmcs-fields.js';
import { handlerAddress, L2Layout } from '../../../../src/cpu/interp/l2-env.js';
import { builtinL1 } from '../../../../src/cpu/l1/builtin.js';
import type { L1Config } from '../../../../src/cpu/l1/config.js';
import type { Observation } from '../../../../src/cpu/l1/observation.js';
import { checkProgram } from '../../../../src/checker/run.js';
import { sdmProfile } from '../../../../src/nested/profile.js';
import { HOST, hexJson, runConfigPair } from '../machine/harness.js';

const DATA = L2Layout.DATA;
const DATA_L1 = 0x500_0000n;
const VE_AREA = 0x0106_0000n;
const STOP = { kind: 'stop' as const };
const CODE = asm64`mov rbx, ${DATA}; mov rax, [rbx]; mov qword ptr [rbx], rax; hlt`;

function config(extra: Partial<L1Config> = {}, write = false, read = true): L1Config {
  return {
    l2: { mode: 'long64', code: CODE },
    controls: { primary: Primary.HLT_EXITING },
    ept: { mappings: [{ l2: DATA, l1: DATA_L1, read, write, execute: false }] },
    vmcsWrites: [
      [Field.SECONDARY_VM_EXEC_CONTROL, BigInt(Secondary.ENABLE_EPT | Secondary.EPT_VIOLATION_VE)],
      [Field.VE_INFORMATION_ADDRESS, VE_AREA],
      [Field.EPTP_INDEX, 3n],
    ],
    policy: { rules: [{ reason: 48, actions: [STOP] }, { reason: 0, actions: [STOP] }, { reason: 12, actions: [STOP] }] },
    ...extra,
  };
}

function unexplained(c: L1Config): string[] {
  const r = checkProgram(builtinL1(c), {}, { cpu: HOST, host: HOST, profile: sdmProfile(), mode: 'all' });
  return r.divergences.filter((d) => d.kind !== 'expected-deviation').map((d) => hexJson(d));
}

const exitsOf = (log: readonly Observation[]) =>
  log.filter((o): o is Extract<Observation, { kind: 'exit-to-l1' }> => o.kind === 'exit-to-l1')
    .map((o) => [o.exit.exitReason, o.exit.interruptionInfo >>> 0, o.exit.qualification, o.guestState.get(Field.GUEST_RIP)]);

describe('nested EPT-violation #VE (SDM 25.5.6)', () => {
  it('vmcs02 never carries "EPT-violation #VE" (L0 emulates it; the VE area is L1\'s)', () => {
    const pair = runConfigPair(config(), { cpu: HOST });
    const entries = pair.nested.records.ofKind('l2-entry');
    expect(entries.length).toBeGreaterThan(0);
    for (const e of entries) expect(e.vmcs02.lo(Field.SECONDARY_VM_EXEC_CONTROL) & Secondary.EPT_VIOLATION_VE).toBe(0);
  });

  it('a store to a read-only page: #VE through L2\'s IDT, VE area filled in L1 memory, on both machines', () => {
    const c = config();
    const pair = runConfigPair(c, { cpu: HOST });
    expect(exitsOf(pair.reference.log).map((e) => [e[0], e[3]])).toEqual([[12, handlerAddress(20)]]);
    expect(exitsOf(pair.nested.log)).toEqual(exitsOf(pair.reference.log));
    expect(pair.nested.records.ofKind('l0-internal')).toEqual([]);
    expect(unexplained(c)).toEqual([]); // O5 compares the VE area's bytes
  });

  it('a not-present leaf (bit 63 clear) converts the load', () => {
    expect(unexplained(config({}, false, false))).toEqual([]);
  });

  it('an instruction L0 emulates (OUTS, which only vmcs02 intercepts) reading a not-present page: #VE too', () => {
    const c = config({ l2: { mode: 'long64', code: asm64`mov esi, ${Number(DATA)}; mov edx, 0x80; outsb; hlt` } }, false, false);
    const pair = runConfigPair(c, { cpu: HOST });
    expect(exitsOf(pair.reference.log).map((e) => [e[0], e[3]])).toEqual([[12, handlerAddress(20)]]);
    expect(exitsOf(pair.nested.log)).toEqual(exitsOf(pair.reference.log));
    expect(pair.nested.records.ofKind('l2-exit').some((e) => e.handler.endsWith('-ve12'))).toBe(true);
    expect(unexplained(c)).toEqual([]);
  });

  it('a nonzero busy word keeps the EPT-violation exit', () => {
    const c = config({ l1Data: [{ gpa: VE_AREA + 4n, bytes: new Uint8Array([1, 0, 0, 0]) }] });
    const pair = runConfigPair(c, { cpu: HOST });
    expect(exitsOf(pair.reference.log).map((e) => e[0])).toEqual([48]);
    expect(exitsOf(pair.nested.log)).toEqual(exitsOf(pair.reference.log));
    expect(unexplained(c)).toEqual([]);
  });

  it('exception bitmap bit 20: exit 0 with interruption information 80000314H after the area is written', () => {
    const c = config({ exceptionBitmap: 1 << 20 });
    const pair = runConfigPair(c, { cpu: HOST });
    expect(exitsOf(pair.reference.log).map((e) => [e[0], e[1], e[2]])).toEqual([[0, 0x8000_0314, 0n]]);
    expect(exitsOf(pair.nested.log)).toEqual(exitsOf(pair.reference.log));
    expect(unexplained(c)).toEqual([]);
  });
});
