// `turtles replay` of traces `turtles record` made: --json prints each divergence as the checker's Divergence record
// (kind, rule, sdm, event, level, field, expected, actual, explanation) with exit 1 for a trace from a wrong L0, exit 0
// and no divergence for a correct one, and exit 2 with one line for a trace whose header scenario is corrupt.
// The traces are recorded into a temporary directory by the recorder itself.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { encodeTrace, type TraceEvent } from '../../../src/replay/format/index.js';
import { loadBuiltinScenario } from '../../../src/replay/io/scenario-files.js';
import { recordScenario } from '../../../src/replay/record/recorder.js';
import { WRONG_L0S } from '../../mutants/variants.js';
import { runCli } from '../../support/cli.js';

const tmp = mkdtempSync(join(tmpdir(), 'turtles-replay-model-'));
const scenario = loadBuiltinScenario('cpuid-msr-io');
const variant = WRONG_L0S.find((v) => v.id === 'io-bitmap-ignored')!;
const good = recordScenario(scenario);
const bad = recordScenario(scenario, { l0Parts: variant.parts, variantName: variant.id });
const goodFile = join(tmp, 'good.trtl');
const badFile = join(tmp, 'bad.trtl');
const corruptFile = join(tmp, 'corrupt.trtl');
writeFileSync(goodFile, encodeTrace(good.header, good.events));
writeFileSync(badFile, encodeTrace(bad.header, bad.events));
writeFileSync(corruptFile, encodeTrace({ ...good.header, scenario: { ...good.header.scenario!, json: '{"format": "turtles.scenario.v1", "name": 7' } }, good.events));

interface ReplayJson {
  schemaVersion: number;
  divergences: number;
  traces: { file: string; events: number; exits: number; divergences: Record<string, unknown>[]; checks: { id: string; applies: boolean }[] }[];
}

const text = (e: TraceEvent | undefined) => JSON.stringify(e ?? null, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString(16) : v instanceof Map ? [...v] : v instanceof Uint8Array ? [...v] : v));

describe('turtles replay of recorded (model) traces', () => {
  it('a correct recording: exit 0, no divergence, the model class applied', async () => {
    const r = await runCli(['replay', goodFile, '--json']);
    expect(r).toMatchObject({ code: 0, stderr: '' });
    const j = JSON.parse(r.stdout) as ReplayJson;
    expect(j.divergences).toBe(0);
    expect(j.traces[0]).toMatchObject({ file: goodFile, events: good.events.length, divergences: [] });
    expect(j.traces[0]!.checks).toEqual([expect.objectContaining({ id: 'model', applies: true })]);
  });

  it('a recording from a wrong L0: exit 1, divergences as Divergence records, the first at the first differing event', async () => {
    const r = await runCli(['replay', badFile, '--json']);
    expect(r.code).toBe(1);
    const j = JSON.parse(r.stdout) as ReplayJson;
    expect(Object.keys(j)[0]).toBe('schemaVersion');
    const ds = j.traces[0]!.divergences;
    expect(ds.length).toBeGreaterThan(0);
    expect(j.divergences).toBe(ds.length);
    let at = 0;
    while (text(good.events[at]) === text(bad.events[at])) at++;
    const correct = good.events[at] as Extract<TraceEvent, { kind: 'reflection' }>;
    expect(correct.kind).toBe('reflection');
    expect(ds[0]).toMatchObject({
      kind: 'recorded', rule: correct.rule, event: at, level: 'L0', field: 'decision', reproduce: `turtles replay ${badFile} --event ${at}`,
    });
    for (const d of ds) {
      for (const k of ['kind', 'rule', 'sdm', 'event', 'level', 'expected', 'actual', 'explanation']) expect(d).toHaveProperty(k);
      expect(typeof d['event']).toBe('number');
    }
  });

  it('the text report names rule, SDM section and event; --event reproduces it', async () => {
    const r = await runCli(['replay', badFile, '--first']);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/^ {2}model {8}1 divergence/m);
    const m = /DIVERGENCE (\S+) \(SDM [^)]+\) at event (\d+), L0/.exec(r.stdout);
    expect(m).not.toBeNull();
    const again = await runCli(['replay', badFile, '--event', m![2]!, '--json']);
    expect(again.code).toBe(1);
    const j = JSON.parse(again.stdout) as ReplayJson;
    expect(j.traces[0]!.divergences.map((d) => d['rule'])).toContain(m![1]);
  });

  it('a trace whose header scenario JSON is corrupt: exit 2 with one line naming the file', async () => {
    const r = await runCli(['replay', corruptFile]);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    const lines = r.stderr.trimEnd().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain(corruptFile);
    expect(lines[0]).toMatch(/scenario/);
  });

  it('--checks accepts model rule prefixes (merge., l1., replay.model.)', async () => {
    const r = await runCli(['replay', badFile, '--json', '--checks', 'l1.']);
    expect(r.code).toBe(1);
    const j = JSON.parse(r.stdout) as ReplayJson;
    expect(j.traces[0]!.divergences.every((d) => String(d['rule']).startsWith('l1.'))).toBe(true);
    const none = await runCli(['replay', badFile, '--json', '--checks', 'merge.']);
    expect(none.code).toBe(0);
  });
});
