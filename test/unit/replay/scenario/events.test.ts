// The scenario format's external-event schedule (`events`, docs/scenarios.md): each kind parses into exactly the
// machines' ScheduledEvent, the list is stably sorted by step (the canonical order), scenarios without it keep their
// canonical JSON, the JSON Schema allows and requires `vector` exactly where the parser does, and malformed events
// are refused with one line naming the file and the JSON path.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import type { ScheduledEvent } from '../../../../src/cpu/machine/run-guest.js';
import { builtinScenarios, loadBuiltinScenario } from '../../../../src/replay/io/scenario-files.js';
import { canonicalScenarioJson, formatScenario, scenarioSchedule } from '../../../../src/replay/scenario/canonical.js';
import { parseScenario } from '../../../../src/replay/scenario/parse.js';
import { SCENARIO_EVENT_KINDS, ScenarioError } from '../../../../src/replay/scenario/types.js';

const L1 = { l2: { mode: 'long64', code: { asm: ['hlt'] } } };
const text = (events: unknown): string => JSON.stringify({ format: 'turtles.scenario.v1', name: 't', events, l1: L1 });

function error(t: string): ScenarioError {
  try {
    parseScenario(t, 'file.json');
  } catch (e) {
    if (e instanceof ScenarioError) return e;
    throw e;
  }
  throw new Error('parsed without an error');
}

describe('events: the external-event schedule', () => {
  it('every kind parses into the ScheduledEvent the machines take, stably sorted by step', () => {
    const s = parseScenario(text([
      { at: 9, kind: 'smi' }, { at: 3, kind: 'interrupt', vector: '0x30' }, { at: 3, kind: 'nmi' }, { at: 0, kind: 'timer' },
      { at: 7, kind: 'timer', vector: 0x21 }, { at: 3, kind: 'init' }, { at: 4, kind: 'sipi', vector: 8 },
    ]), 'f');
    const want: ScheduledEvent[] = [
      { at: 0, kind: 'timer' }, { at: 3, kind: 'interrupt', vector: 0x30 }, { at: 3, kind: 'nmi' }, { at: 3, kind: 'init' },
      { at: 4, kind: 'sipi', vector: 8 }, { at: 7, kind: 'timer', vector: 0x21 }, { at: 9, kind: 'smi' },
    ];
    expect(scenarioSchedule(s)).toEqual(want);
    // Canonical JSON keeps that order and round-trips.
    const canon = canonicalScenarioJson(s);
    expect(canon).toContain('"events":[{"at":0,"kind":"timer"},{"at":3,"kind":"interrupt","vector":48},{"at":3,"kind":"nmi"}');
    expect(canonicalScenarioJson(parseScenario(canon, 'c'))).toBe(canon);
    expect(canonicalScenarioJson(parseScenario(formatScenario(s), 'f'))).toBe(canon);
  });

  it('is optional: a scenario without it has no schedule and no "events" in its canonical JSON', () => {
    for (const name of builtinScenarios()) {
      const s = loadBuiltinScenario(name);
      if (name === 'external-events') continue;
      expect(s.events).toBeUndefined();
      expect(scenarioSchedule(s)).toEqual([]);
      expect(canonicalScenarioJson(s)).not.toContain('"events"');
    }
    // An empty list is kept (it is what the file says) but schedules nothing.
    const empty = parseScenario(text([]), 'f');
    expect(scenarioSchedule(empty)).toEqual([]);
    expect(canonicalScenarioJson(empty)).toContain('"events":[]');
  });

  it('the built-in external-events scenario schedules interrupts, NMIs and timer ticks', () => {
    const kinds = new Set(scenarioSchedule(loadBuiltinScenario('external-events')).map((e) => e.kind));
    expect([...kinds].sort()).toEqual(['interrupt', 'nmi', 'timer']);
  });

  it('the JSON Schema allows and requires "vector" for exactly the kinds the parser does', () => {
    const schema = JSON.parse(readFileSync('schemas/scenario.schema.json', 'utf8')) as {
      properties: Record<string, { items?: { $ref: string } }>;
      $defs: Record<string, { oneOf?: { required: string[]; properties: { kind: { enum?: string[]; const?: string }; vector?: unknown } }[] }>;
    };
    expect(schema.properties['events']?.items?.$ref).toBe('#/$defs/event');
    const variants = schema.$defs['event']!.oneOf!;
    const kindsOf = (v: (typeof variants)[number]) => v.properties.kind.enum ?? [v.properties.kind.const!];
    expect(variants.flatMap(kindsOf).sort()).toEqual([...SCENARIO_EVENT_KINDS].sort());
    for (const v of variants) {
      for (const kind of kindsOf(v)) {
        const allowed = v.properties.vector !== undefined;
        const required = v.required.includes('vector');
        // What the parser says about the same kind with and without a vector.
        const withVector = (() => { try { parseScenario(text([{ at: 1, kind, vector: 2 }]), 'f'); return true; } catch { return false; } })();
        const withoutVector = (() => { try { parseScenario(text([{ at: 1, kind }]), 'f'); return true; } catch { return false; } })();
        expect({ kind, allowed, required }).toEqual({ kind, allowed: withVector, required: !withoutVector });
      }
    }
  });

  it.each([
    [{}, '$.events', 'an array'],
    [[5], '$.events[0]', 'an event object'],
    [[{ at: 1 }], '$.events[0].kind', 'one of "interrupt", "nmi", "timer", "init", "sipi", "smi"'],
    [[{ at: 1, kind: 'irq', vector: 1 }], '$.events[0].kind', 'one of'],
    [[{ kind: 'nmi' }], '$.events[0].at', 'a required member "at"'],
    [[{ at: -1, kind: 'nmi' }], '$.events[0].at', 'an integer in [0, 0x1fffffffffffff]'],
    [[{ at: '0x10', kind: 'nmi' }], '$.events[0].at', 'an integer'],
    [[{ at: 1.5, kind: 'nmi' }], '$.events[0].at', 'an integer'],
    [[{ at: 1, kind: 'nmi' }, { at: 2, kind: 'interrupt' }], '$.events[1].vector', 'a required member "vector"'],
    [[{ at: 1, kind: 'sipi' }], '$.events[0].vector', 'a required member "vector"'],
    [[{ at: 1, kind: 'interrupt', vector: 256 }], '$.events[0].vector', 'an integer in [0, 255]'],
    [[{ at: 1, kind: 'nmi', vector: 2 }], '$.events[0].vector', 'no such member'],
    [[{ at: 1, kind: 'timer', when: 2 }], '$.events[0].when', 'no such member'],
  ])('%j is refused at %s', (events, path, expected) => {
    const e = error(text(events));
    expect(e.message.startsWith(`file.json: ${path}: `)).toBe(true);
    expect(e.path).toBe(path);
    expect(e.message).toContain(expected);
    expect(e.message).not.toMatch(/\n/);
  });
});
