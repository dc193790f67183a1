// Replay of recorded traces: a trace from a deliberately wrong L0 (test/mutants/variants.ts) is reported at the first event
// where it differs from a correct recording of the same scenario, under the rule naming the broken part; correct sdm
// recordings replay clean, kvm ones give only expected deviations, a corrupt header scenario is bad input. Indices come
// from comparing the two recordings here, never from replay output.
import { describe, expect, it } from 'vitest';
import { Field } from '../../../src/cpu/generated/vmcs-fields.js';
import { fieldDef } from '../../../src/cpu/vmcs.js';
import { FIELD_RULES } from '../../../src/nested/merge/merge.js';
import {
  TraceFormatError, TraceReader, encodeTrace, memorySource, registerName, RegId, type TraceEvent, type TraceHeader,
} from '../../../src/replay/format/index.js';
import { recordScenario, type Recording } from '../../../src/replay/record/recorder.js';
import { replayTrace, type ReplayOptions, type TraceReplay } from '../../../src/replay/replay/index.js';
import { loadBuiltinScenario } from '../../../src/replay/io/scenario-files.js';
import { parseScenario } from '../../../src/replay/scenario/parse.js';
import type { Scenario } from '../../../src/replay/scenario/types.js';
import { WRONG_L0S } from '../../mutants/variants.js';
import { firstEventDifference } from '../../support/trace-events.js';

const scenario = (name: string, l1: object, l0: object = { profile: 'sdm' }): Scenario =>
  parseScenario(JSON.stringify({ format: 'turtles.scenario.v1', name, description: `model-replay test: ${name}`, l0, l1 }), name);

const HLT_STOP = { reason: 'HLT', actions: [{ kind: 'stop' }] };

/** #DE in L2 with vector 0 in vmcs12's exception bitmap: the exit is L1's only if vmcs02 intercepts #DE too. */
const DE_INTERCEPTED = scenario('de-intercepted', {
  l2: { mode: 'long64', code: { asm: ['xor ecx, ecx', 'div ecx', 'hlt'] } }, controls: { primary: '0x80' }, exceptionBitmap: 1,
  policy: { rules: [HLT_STOP, { reason: 'EXCEPTION_NMI', actions: [{ kind: 'stop' }] }] },
});

/** #DE delivery in L2 reads an IDT page EPT12 does not map: an EPT violation during event delivery, reflected to L1. */
const IDT_UNMAPPED = scenario('idt-unmapped', {
  l2: { mode: 'long64', code: { asm: ['xor ecx, ecx', 'div ecx', 'hlt'] } }, controls: { primary: '0x80' },
  ept: { mappings: [{ l2: '0x2000', l1: '0x4002000', read: false, write: false, execute: false }] },
  policy: { rules: [HLT_STOP] },
});

/** L2 reads a page; at its CPUID L1 takes the page away in EPT12 and INVEPTs; L2's second read must exit to L1. */
const INVEPT = scenario('invept-after-protect', {
  l2: { mode: 'long64', code: { asm: ['mov eax, [0x90000]', 'xor eax, eax', 'cpuid', 'mov eax, [0x90000]', 'hlt'] } }, controls: { primary: '0x80' },
  ept: {},
  policy: {
    rules: [
      HLT_STOP,
      { reason: 'CPUID', actions: [{ kind: 'ept-protect', l2: '0x90000', read: false, write: false, execute: false }, { kind: 'invept', type: 1 }, { kind: 'skip' }] },
      { reason: 'EPT_VIOLATION', actions: [{ kind: 'stop' }] },
    ],
  },
});

/** Reserved AR-byte bits in vmcs12's ES: the CPU fails the entry (exit 33); KVM's VMWRITE drops the bits and enters. */
const AR_RESERVED = scenario('es-ar-reserved', {
  l2: { mode: 'long64', code: { asm: ['xor eax, eax', 'cpuid', 'hlt'] } }, controls: { primary: '0x80' },
  vmcsWrites: [{ field: 'GUEST_ES_AR_BYTES', value: '0xc193' }], policy: { rules: [HLT_STOP] },
}, { profile: 'kvm' });

const IO = loadBuiltinScenario('cpuid-msr-io');

function open(header: TraceHeader, events: readonly TraceEvent[], file = 'model.trtl'): TraceReader {
  return TraceReader.open(memorySource(encodeTrace(header, events)), file);
}

function replay(r: Recording, options: ReplayOptions = {}): TraceReplay {
  return replayTrace(open(r.header, r.events), options);
}


/** The fields (encodings) in which two VMCS snapshots differ, ascending. */
function snapshotDifferences(a: TraceEvent, b: TraceEvent): number[] {
  if (a.kind !== 'vmcs-snapshot' || b.kind !== 'vmcs-snapshot') return [];
  const keys = new Set([...a.fields.keys(), ...b.fields.keys()]);
  return [...keys].filter((k) => a.fields.get(k) !== b.fields.get(k)).sort((x, y) => x - y);
}

interface Case {
  readonly variant: string;
  readonly scenario: Scenario;
  /** What the first divergence must be, from the two recordings' events at the first differing index. */
  readonly expect: (good: TraceEvent, bad: TraceEvent) => { rule: string; field?: string };
}

const CASES: readonly Case[] = [
  {
    variant: 'exception-bitmap-not-merged', scenario: DE_INTERCEPTED,
    expect: (good, bad) => {
      // The first output that differs is vmcs02's exception bitmap at the first L2 entry.
      expect(good).toMatchObject({ kind: 'vmcs-snapshot', which: 'vmcs02' });
      expect(snapshotDifferences(good, bad)).toEqual([Field.EXCEPTION_BITMAP]);
      return { rule: FIELD_RULES.get('EXCEPTION_BITMAP')!, field: 'EXCEPTION_BITMAP' };
    },
  },
  {
    variant: 'io-bitmap-ignored', scenario: IO,
    expect: (good, bad) => {
      // L0 handles an I/O exit the correct L0 reflects: the reflection decision, under the correct run's rule.
      expect(good).toMatchObject({ kind: 'reflection', decision: 'reflected' });
      expect(bad).toMatchObject({ kind: 'reflection', decision: 'handled-by-l0' });
      return { rule: (good as Extract<TraceEvent, { kind: 'reflection' }>).rule, field: 'decision' };
    },
  },
  {
    variant: 'idt-vectoring-dropped', scenario: IDT_UNMAPPED,
    expect: (good, bad) => {
      expect(good).toMatchObject({ kind: 'vm-exit' });
      const g = good as Extract<TraceEvent, { kind: 'vm-exit' }>;
      expect((g.idtVectoringInfo ?? 0) >>> 31).toBe(1);
      expect(bad).toMatchObject({ kind: 'vm-exit', idtVectoringInfo: 0 });
      return { rule: 'oracle.o2.idt-vectoring-info', field: 'IDT_VECTORING_INFO_FIELD' };
    },
  },
  {
    variant: 'invept-ignored', scenario: INVEPT,
    expect: (good, bad) => {
      // After L1's INVEPT the correct L0 drops the EPT02 root and builds a new one at the next entry; the wrong L0 keeps
      // the stale one: vmcs02's EPT pointer is the first output that differs.
      const diff = snapshotDifferences(good, bad);
      expect(diff.length).toBeGreaterThan(0);
      const name = fieldDef(diff[0]!)!.name;
      return { rule: FIELD_RULES.get(name)!, field: name };
    },
  },
  {
    variant: 'host-cr3-not-loaded', scenario: DE_INTERCEPTED,
    expect: (good, bad) => {
      // L1's registers after the exit to L1: CR3 is L2's instead of vmcs12's HOST_CR3.
      expect(good).toMatchObject({ kind: 'registers', level: 'L1' });
      const g = good as Extract<TraceEvent, { kind: 'registers' }>;
      const b = bad as Extract<TraceEvent, { kind: 'registers' }>;
      expect(g.regs.get(RegId.CR3)).not.toBe(b.regs.get(RegId.CR3));
      return { rule: 'oracle.o3.l1-state', field: registerName(RegId.CR3) };
    },
  },
];

describe('replay of model-recorded traces', () => {
  const good = new Map<Scenario, Recording>();
  const correct = (s: Scenario) => {
    let r = good.get(s);
    if (!r) good.set(s, (r = recordScenario(s)));
    return r;
  };

  for (const c of CASES) {
    it(`a trace from the wrong L0 "${c.variant}" is reported at the first event its output differs, under the rule that names it`, () => {
      const variant = WRONG_L0S.find((v) => v.id === c.variant)!;
      const ok = correct(c.scenario);
      const bad = recordScenario(c.scenario, { l0Parts: variant.parts, variantName: variant.id });
      expect(bad.header.producer).toContain(`l0-variant ${variant.id}`);
      const at = firstEventDifference(ok.events, bad.events);
      expect(at, 'the wrong L0 changes the recording').toBeLessThan(Math.max(ok.events.length, bad.events.length));
      const want = c.expect(ok.events[at]!, bad.events[at]!);

      const r = replay(bad);
      expect(r.findings.length).toBeGreaterThan(0);
      const first = r.findings[0]!.divergence;
      expect(first).toMatchObject({ event: at, rule: want.rule, kind: 'recorded', ...(want.field ? { field: want.field } : {}) });
      expect(first.sdm).not.toBe('');
      expect(first.explanation).not.toMatch(/\n/);
      expect(first.expected).not.toBe(first.actual);
      // A vmcs02 field carries the re-run's provenance: the inputs its merge rule used.
      if (want.rule.startsWith('merge.')) expect(first.provenance?.length).toBeGreaterThan(0);
      if (c.variant === 'exception-bitmap-not-merged') expect(first.provenance).toContainEqual({ from: 'vmcs12', field: 'EXCEPTION_BITMAP', value: '0x1' });

      // --first stops at exactly that divergence.
      const f = replay(bad, { first: true });
      expect(f.stopped).toBe(true);
      expect(f.findings.map((x) => x.divergence)).toEqual([first]);
    });
  }

  it('a correct sdm recording replays with no divergence, every event compared', () => {
    for (const s of [IO, DE_INTERCEPTED, IDT_UNMAPPED, INVEPT]) {
      const rec = correct(s);
      const r = replay(rec);
      expect(r.findings.map((f) => f.divergence)).toEqual([]);
      const model = r.checks.find((c) => c.id === 'model')!;
      expect(model).toMatchObject({ applies: true, evaluated: rec.events.length, divergences: 0 });
      expect(r.exits).toBe(rec.events.filter((e) => e.kind === 'vm-exit' || e.kind === 'l0-exit').length);
    }
  });

  it('a recording cut at an event limit replays clean: the re-run stops at the same event, the reference is not missed', () => {
    const full = correct(IO);
    const cut = Math.floor(full.events.length / 2);
    const rec = recordScenario(IO, { maxEvents: cut });
    expect(rec.events.length).toBe(cut);
    expect(rec.header.producer).toMatch(new RegExp(`max-events ${cut}$`));
    const r = replay(rec);
    expect(r.findings.map((f) => f.divergence)).toEqual([]);
    expect(r.checks[0]).toMatchObject({ id: 'model', evaluated: cut });
  });

  it('a kvm recording differs from the reference only by declared deviations: every finding is an expected-deviation', () => {
    const rec = recordScenario(AR_RESERVED);
    expect(rec.header.l0Profile).toBe('kvm');
    // The sdm L0 fails this entry as the CPU does; the kvm L0 enters: the recordings differ, so there is something to explain.
    const sdm = recordScenario({ ...AR_RESERVED, l0: { profile: 'sdm' } });
    expect(sdm.events.some((e) => e.kind === 'entry-failure')).toBe(true);
    expect(rec.events.some((e) => e.kind === 'entry-failure')).toBe(false);
    const r = replay(rec);
    expect(r.findings.length).toBeGreaterThan(0);
    for (const f of r.findings) expect(f.divergence).toMatchObject({ kind: 'expected-deviation', deviation: 'kvm.vmwrite-ar-bytes-masked' });
    expect(r.findings[0]!.divergence.rule).toBe('oracle.o2.exit-reason');
  });

  it('a kvm recording with an L0 bug still reports it as a failure, not as a deviation', () => {
    const variant = WRONG_L0S.find((v) => v.id === 'io-bitmap-ignored')!;
    const kvmIo: Scenario = { ...IO, l0: { profile: 'kvm' } };
    const ok = recordScenario(kvmIo);
    const bad = recordScenario(kvmIo, { l0Parts: { ...variant.parts }, variantName: variant.id });
    expect(replay(ok).findings.filter((f) => f.divergence.kind !== 'expected-deviation')).toEqual([]);
    const r = replay(bad);
    const at = firstEventDifference(ok.events, bad.events);
    const failures = r.findings.filter((f) => f.divergence.kind !== 'expected-deviation');
    expect(failures[0]!.divergence).toMatchObject({ event: at, rule: (ok.events[at] as Extract<TraceEvent, { kind: 'reflection' }>).rule });
  });

  it('--checks selects model findings by rule-id prefix', () => {
    const variant = WRONG_L0S.find((v) => v.id === 'idt-vectoring-dropped')!;
    const bad = recordScenario(IDT_UNMAPPED, { l0Parts: variant.parts, variantName: variant.id });
    const all = replay(bad).findings.map((f) => f.divergence.rule);
    expect(new Set(all).size).toBeGreaterThan(1);
    const only = replay(bad, { checks: ['oracle.o2.'] }).findings.map((f) => f.divergence.rule);
    expect(only.length).toBeGreaterThan(0);
    expect(only.every((r) => r.startsWith('oracle.o2.'))).toBe(true);
    expect(only).toEqual(all.filter((r) => r.startsWith('oracle.o2.')));
    // A prefix of another class only: the model class does not run at all.
    expect(replay(bad, { checks: ['trace.exit-info.'] }).checks.map((c) => c.id)).toEqual([]);
  });

  it('a stream desync is reported once and ends the comparison', () => {
    const rec = correct(IO);
    // Drop one event in the middle: every later event is out of step.
    const cut = Math.floor(rec.events.length / 2);
    const events = [...rec.events.slice(0, cut), ...rec.events.slice(cut + 1)];
    const r = replayTrace(open(rec.header, events));
    expect(r.findings.map((f) => f.divergence.rule)).toContain('replay.model.stream');
    const stream = r.findings.filter((f) => f.divergence.rule === 'replay.model.stream');
    expect(stream).toHaveLength(1);
    expect(Math.max(...r.findings.map((f) => f.divergence.event))).toBeLessThanOrEqual(stream[0]!.divergence.event);
    expect(stream[0]!.divergence.event).toBeGreaterThanOrEqual(cut);
  });

  it('a corrupt scenario in the header is bad input: a one-line TraceFormatError naming the file', () => {
    const rec = correct(DE_INTERCEPTED);
    const header: TraceHeader = { ...rec.header, scenario: { ...rec.header.scenario!, json: rec.header.scenario!.json.slice(0, 40) } };
    let error: unknown;
    try {
      replayTrace(open(header, rec.events, 'corrupt.trtl'));
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(TraceFormatError);
    const message = (error as Error).message;
    expect(message).toMatch(/^corrupt\.trtl: corrupt: /);
    expect(message).not.toMatch(/\n/);
  });
});
