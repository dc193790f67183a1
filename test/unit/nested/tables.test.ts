// The nested rule tables in schemas/nested/*.json and the code that implements them must agree: every rule id the
// code emits is a JSON row and every JSON row is implemented (merge rules, reflection rows, priority rules, deviations).
import { describe, expect, it } from 'vitest';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { slotFields } from '../../../src/cpu/vmcs.js';
import { EXIT_REASONS } from '../../../src/cpu/generated/exit-reasons.js';
import { EXIT_INFO_RULE, FIELD_RULES, MERGE_RULES } from '../../../src/nested/merge/merge.js';
import { REFLECTION_ROWS } from '../../../src/nested/reflect/table.js';
import { PRIORITY_RULES } from '../../../src/nested/reflect/priority.js';
import { isControlId } from '../../../src/nested/reflect/control-bits.js';
import { Deviation, KVM_OBSERVABLE_DEVIATIONS, kvmProfile, sdmProfile } from '../../../src/nested/profile.js';

const root = join(import.meta.dirname, '../../..');
const load = <T>(rel: string): T => JSON.parse(readFileSync(join(root, rel), 'utf8')) as T;

interface MergeJson {
  fields: { field: string; encoding: string; rule: string; source: string; formula: string; reference: string; sdm: string }[];
  groups: { group: string; rule: string; source: string; fields: string[] }[];
}
interface ReflectJson {
  reasons: { reason: number; name: string; l0Wants: { rule: string; predicate: string; description: string }; l1Wants: { rule: string; predicate: string; controls?: string[]; description: string }; reference: string }[];
  priority: { id: string }[];
}
interface DeviationJson {
  deviations: { id: string; ref: string; observable: boolean; description: string }[];
}

describe('merge-rules.json', () => {
  const j = load<MergeJson>('schemas/nested/merge-rules.json');
  const jsonRule = new Map<string, string>();
  for (const r of j.fields) jsonRule.set(r.field, r.rule);
  for (const g of j.groups) for (const f of g.fields) jsonRule.set(f, g.rule);

  it('covers every VMCS field exactly once', () => {
    const all = [...j.fields.map((r) => r.field), ...j.groups.flatMap((g) => g.fields)];
    expect(new Set(all).size).toBe(all.length);
    expect([...all].sort()).toEqual(slotFields().map((f) => f.name).sort());
  });

  it('gives every field the rule the code uses', () => {
    for (const [field, rule] of FIELD_RULES) expect(jsonRule.get(field), field).toBe(rule);
  });

  it('implements every rule id of the JSON (except the not-written exit-info group) and nothing else', () => {
    const ids = new Set([...jsonRule.values()].filter((r) => r !== EXIT_INFO_RULE));
    expect([...MERGE_RULES.keys()].sort()).toEqual([...ids].sort());
  });

  it('rows carry source, formula, reference and SDM section', () => {
    for (const r of j.fields) {
      expect(['vmcs12', 'vmcs01', 'L0', 'combine']).toContain(r.source);
      expect(r.formula.length && r.reference.startsWith('§') && r.sdm.startsWith('SDM'), r.field).toBeTruthy();
    }
    expect(j.groups.map((g) => g.group)).toEqual(expect.arrayContaining(["host: L0's", 'unused']));
  });
});

describe('reflection.json', () => {
  const j = load<ReflectJson>('schemas/nested/reflection.json');

  it('has one row per basic exit reason of the exit-reason table', () => {
    expect(j.reasons.map((r) => r.reason)).toEqual(EXIT_REASONS.map((r) => r.reason));
    for (const r of j.reasons) expect(r.name).toBe(EXIT_REASONS.find((x) => x.reason === r.reason)!.name);
  });

  it('equals the code table row by row (rule ids, predicates, controls)', () => {
    expect(REFLECTION_ROWS.length).toBe(j.reasons.length);
    for (const row of REFLECTION_ROWS) {
      const jr = j.reasons.find((r) => r.reason === row.reason)!;
      expect({ l0: row.l0, l1: row.l1 }, `reason ${row.reason}`).toEqual({
        l0: { rule: jr.l0Wants.rule, predicate: jr.l0Wants.predicate },
        l1: { rule: jr.l1Wants.rule, predicate: jr.l1Wants.predicate, controls: jr.l1Wants.controls ?? [] },
      });
      for (const c of row.l1.controls) expect(isControlId(c), c).toBe(true);
    }
  });

  it('lists exactly the priority rules of the §6.5 function', () => {
    expect(j.priority.map((p) => p.id).sort()).toEqual([...PRIORITY_RULES].sort());
  });
});

describe('kvm-deviations.json and the profiles', () => {
  const j = load<DeviationJson>('schemas/nested/kvm-deviations.json');

  it('the observable rows are exactly the kvm profile switches, every N1–N24 appears', () => {
    expect(j.deviations.filter((d) => d.observable).map((d) => d.id).sort()).toEqual([...KVM_OBSERVABLE_DEVIATIONS].sort());
    const refs = new Set(j.deviations.map((d) => d.ref));
    for (let n = 1; n <= 24; n++) expect(refs.has(`N${n}`), `N${n}`).toBe(true);
    expect(new Set(j.deviations.map((d) => d.id)).size).toBe(j.deviations.length);
  });

  it('named constants are ids of the JSON', () => {
    for (const id of Object.values(Deviation)) expect(KVM_OBSERVABLE_DEVIATIONS).toContain(id);
  });

  it('sdm has no deviations; kvm has all, each switchable by name; unknown names are rejected', () => {
    expect(sdmProfile().deviations.size).toBe(0);
    expect([...kvmProfile().deviations].sort()).toEqual([...KVM_OBSERVABLE_DEVIATIONS].sort());
    const without = kvmProfile({ without: [Deviation.HOST_CR0_FULL_LOAD] });
    expect(without.deviations.has(Deviation.HOST_CR0_FULL_LOAD)).toBe(false);
    expect(without.deviations.size).toBe(KVM_OBSERVABLE_DEVIATIONS.length - 1);
    expect([...kvmProfile({ only: [Deviation.ABORT_AS_TRIPLE_FAULT] }).deviations]).toEqual([Deviation.ABORT_AS_TRIPLE_FAULT]);
    expect(() => kvmProfile({ without: ['kvm.nope' as never] })).toThrow();
  });

  it('every deviation id written in src/nested is an observable row of the JSON', () => {
    const ids = new Set(j.deviations.filter((d) => d.observable).map((d) => d.id));
    const files = readdirSync(join(root, 'src/nested'), { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.ts'));
    for (const f of files) {
      for (const m of readFileSync(join(root, 'src/nested', f), 'utf8').matchAll(/'(kvm\.[a-z0-9-]+)'/g)) expect(ids.has(m[1]!), `${f}: ${m[1]}`).toBe(true);
    }
  });
});
