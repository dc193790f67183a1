// The built-in scenario kvm-deviations: recorded on the kvm L0, its replay reports only expected deviations, and they
// name exactly the deviations whose trigger the scenario contains (the table below, read from the scenario itself);
// recorded on the sdm L0 it replays clean; switching one deviation off removes exactly the findings naming it.
// Must not: copy findings from replay output; every expectation is derived from the scenario and the trigger table.
import { describe, expect, it } from 'vitest';
import { Field } from '../../../../src/cpu/generated/vmcs-fields.js';
import type { L1Config } from '../../../../src/cpu/l1/config.js';
import { KVM_OBSERVABLE_DEVIATIONS, type KvmDeviationId } from '../../../../src/nested/profile.js';
import { TraceReader, encodeTrace, memorySource } from '../../../../src/replay/format/index.js';
import { loadBuiltinScenario } from '../../../../src/replay/io/scenario-files.js';
import { recordScenario } from '../../../../src/replay/record/recorder.js';
import { replayTrace, type Finding } from '../../../../src/replay/replay/index.js';
import { scenarioToL1Config } from '../../../../src/replay/scenario/canonical.js';
import type { Scenario } from '../../../../src/replay/scenario/types.js';

const CR0_CD = 1n << 30n;
const CR0_NW = 1n << 29n;
/** Access-rights bits KVM keeps on VMWRITE (schemas/nested/kvm-deviations.json, N10); the rest are reserved. */
const AR_KEEP = 0x1f0ffn;
const AR_UNUSABLE = 1n << 16n;
const ENTRY_LOAD_IA32_EFER = 0x8000;
const ENTRY_IA32E_MODE_GUEST = 0x200;
const GUEST_AR_FIELDS = new Set<number>(['ES', 'CS', 'SS', 'DS', 'FS', 'GS', 'LDTR', 'TR'].map((s) => Field[`GUEST_${s}_AR_BYTES` as keyof typeof Field]));
const HOST_DATA_SELECTORS = new Set<number>([Field.HOST_SS_SELECTOR, Field.HOST_DS_SELECTOR, Field.HOST_ES_SELECTOR, Field.HOST_FS_SELECTOR, Field.HOST_GS_SELECTOR]);

/** Every VMWRITE the built-in L1 makes from the configuration: the initial raw writes and the policy's vmwrite actions. */
function configuredWrites(c: L1Config): [number, bigint][] {
  const writes: [number, bigint][] = (c.vmcsWrites ?? []).map(([e, v]) => [e, v]);
  for (const rule of c.policy?.rules ?? []) for (const a of rule.actions) if (a.kind === 'vmwrite') writes.push([a.encoding, a.value]);
  return writes;
}

/**
 * What in an L1 configuration makes a deviation visible to L1 (SDM vs KVM, schemas/nested/kvm-deviations.json). A row
 * whose trigger the scenario lacks must not show up in its replay.
 */
const TRIGGERS: readonly { readonly id: KvmDeviationId; readonly triggered: (c: L1Config) => boolean }[] = [
  // VM entry does not load CR0.CD/NW from GUEST_CR0 on a CPU; KVM does (and L2 reads them).
  { id: 'kvm.guest-cr0-unloaded-bits-from-vmcs12', triggered: (c) => configuredWrites(c).some(([e, v]) => e === Field.GUEST_CR0 && (v & (CR0_CD | CR0_NW)) !== 0n) },
  // The host-state load leaves CR0.CD/NW unmodified on a CPU; KVM loads the whole HOST_CR0.
  { id: 'kvm.host-cr0-full-load', triggered: (c) => configuredWrites(c).some(([e, v]) => e === Field.HOST_CR0 && (v & (CR0_CD | CR0_NW)) !== 0n) },
  // An entry with paging off and neither load-EFER nor IA-32e mode guest: a CPU keeps L1's EFER.LME, KVM clears it.
  {
    id: 'kvm.guest-efer-lme-from-ia32e-mode',
    triggered: (c) => (c.l2.mode === 'protected32' || c.l2.mode === 'real') && ((c.controls?.entry ?? 0) & (ENTRY_LOAD_IA32_EFER | ENTRY_IA32E_MODE_GUEST)) === 0,
  },
  // Reserved AR bits of a usable guest segment: a CPU fails the entry, KVM's VMWRITE drops them.
  {
    id: 'kvm.vmwrite-ar-bytes-masked',
    triggered: (c) => configuredWrites(c).some(([e, v]) => GUEST_AR_FIELDS.has(e) && (v & AR_UNUSABLE) === 0n && (v & 0xffff_ffffn & ~AR_KEEP) !== 0n),
  },
  // Null host data selectors: usable flat segments in KVM, unusable on a CPU (L1's segment state, not in the stream).
  { id: 'kvm.host-null-selector-usable', triggered: (c) => configuredWrites(c).some(([e, v]) => HOST_DATA_SELECTORS.has(e) && (v & 0xfff8n) === 0n) },
];

const SCENARIO = loadBuiltinScenario('kvm-deviations');
const DESIGNED = TRIGGERS.filter((t) => t.triggered(scenarioToL1Config(SCENARIO))).map((t) => t.id);

function replayOf(s: Scenario): readonly Finding[] {
  const rec = recordScenario(s);
  return replayTrace(TraceReader.open(memorySource(encodeTrace(rec.header, rec.events)), `${s.name}.trtl`)).findings;
}

/** A finding without its event index (switching a deviation off can shift later events). */
const key = (f: Finding): string => {
  const d = f.divergence;
  return [d.kind, d.deviation ?? '', d.rule, d.field ?? '', d.expected, d.actual].join(' | ');
};

describe('built-in scenario kvm-deviations', () => {
  const all = replayOf(SCENARIO);

  it('is a kvm-profile scenario whose configuration triggers several deviations', () => {
    expect(SCENARIO.l0.profile).toBe('kvm');
    expect(SCENARIO.l0.deviations).toBeUndefined();
    expect(DESIGNED.length).toBeGreaterThanOrEqual(4);
    for (const id of DESIGNED) expect(KVM_OBSERVABLE_DEVIATIONS).toContain(id);
  });

  it('replays with only expected deviations, naming exactly the triggered ones, one id each', () => {
    expect(all.length).toBeGreaterThan(0);
    expect(all.filter((f) => f.divergence.kind !== 'expected-deviation').map(key)).toEqual([]);
    const named = new Set(all.map((f) => f.divergence.deviation));
    expect([...named].sort()).toEqual([...DESIGNED].sort());
  });

  it('recorded on the sdm L0 replays with no finding at all', () => {
    expect(replayOf({ ...SCENARIO, l0: { profile: 'sdm' } }).map(key)).toEqual([]);
  });

  it.each(DESIGNED.map((id) => [id]))('switching %s off removes exactly the findings naming it', (id) => {
    const without = replayOf({ ...SCENARIO, l0: { profile: 'kvm', deviations: KVM_OBSERVABLE_DEVIATIONS.filter((d) => d !== id) } });
    expect(without.some((f) => f.divergence.deviation === id)).toBe(false);
    expect(without.map(key).sort()).toEqual(all.filter((f) => f.divergence.deviation !== id).map(key).sort());
  });
});
