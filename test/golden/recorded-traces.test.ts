// Golden test: every bundled recorded trace (traces/recorded/manifest.json) is exactly what recording its scenario
// gives today — the recording determinism contract, and a drift guard: when the model changes behaviour, a trace
// differs (then: `npm run build && npm run rerecord`, review, `npm run accept`). Also `turtles stats` on a recorded trace.
import { describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadRecordedTraces, recordCommand, rerecordBytes } from '../../scripts/samples/rerecord.js';
import { decodeTrace } from '../../src/replay/format/index.js';
import { builtinScenarios } from '../../src/replay/io/scenario-files.js';
import { runCli } from '../support/cli.js';

const root = join(import.meta.dirname, '../..');
const tmp = mkdtempSync(join(tmpdir(), 'turtles-rerecord-'));
const fix = 'the model now records differently: run npm run build && npm run rerecord, review, then npm run accept';

describe('bundled recorded traces', () => {
  const traces = loadRecordedTraces(root);

  it('lists every built-in scenario but mixed-1m (too long), plus the short mixed workload', () => {
    const recorded = new Set(traces.map((t) => t.scenario));
    expect(builtinScenarios().filter((s) => s !== 'mixed-1m' && !recorded.has(s)), 'built-in scenarios without a bundled recording').toEqual([]);
    expect(recorded.has('traces/recorded/scenarios/mixed-short.json')).toBe(true);
  });

  for (const t of traces) {
    it(`${t.trace} is the recording of ${t.scenario}${t.l0 ? ` on the ${t.l0} L0` : ''}`, () => {
      const fresh = Buffer.from(rerecordBytes(root, t));
      const bundled = readFileSync(join(root, t.trace));
      expect(fresh.equals(bundled), `${t.trace} differs from a fresh recording (${fresh.length} vs ${bundled.length} bytes); ${fix}`).toBe(true);
    });
  }

  it('the in-memory recording is byte for byte what `turtles record` writes (the command line PROVENANCE gives)', async () => {
    const t = traces[0]!;
    const out = join(tmp, 'cli.trtl');
    const args = recordCommand(t).map((a) => (a === t.trace ? out : a));
    const cwd = process.cwd();
    process.chdir(root);
    try {
      const r = await runCli(args);
      expect(r.code, r.stderr).toBe(0);
    } finally {
      process.chdir(cwd);
    }
    expect(readFileSync(out).equals(readFileSync(join(root, t.trace)))).toBe(true);
  });

  it('stats of the mixed trace: exits to L1 split into reflected and raised by L0, L1 VMX instructions per exit', async () => {
    const file = join(root, 'traces/recorded/mixed-short.trtl');
    const { events } = decodeTrace(new Uint8Array(readFileSync(file)));
    const n = (p: (e: (typeof events)[number]) => boolean) => events.filter(p).length;
    const exitsToL1 = n((e) => e.kind === 'vm-exit');
    const reflected = n((e) => e.kind === 'reflection' && e.decision === 'reflected');
    const handled = n((e) => e.kind === 'reflection' && e.decision === 'handled-by-l0');
    const l2 = n((e) => e.kind === 'l0-exit' && e.level === 'L2');
    const ops = n((e) => e.kind === 'vmx-op');
    expect(reflected).toBeGreaterThan(0);
    expect(handled).toBeGreaterThan(0);
    expect(exitsToL1).toBeGreaterThan(reflected);
    const r = await runCli(['stats', file, '--json']);
    expect(r).toMatchObject({ code: 0, stderr: '' });
    const j = JSON.parse(r.stdout) as { reflections: { reflected: number; handledByL0: number }; perExitToL1: Record<string, number> };
    expect(j.reflections).toMatchObject({ reflected, handledByL0: handled });
    expect(j.perExitToL1).toEqual({
      exitsToL1, reflected, raisedByL0: exitsToL1 - reflected, l2HardwareExits: l2, l1VmxInstructions: ops,
      l2HardwareExitsPerExit: l2 / exitsToL1, l1VmxInstructionsPerExit: ops / exitsToL1,
    });
    const text = await runCli(['stats', file]);
    expect(text.stdout).toContain(`(${l2} L2 exits: ${reflected} reflected, ${handled} handled by L0)`);
    expect(text.stdout).toContain(`(${exitsToL1} exits to L1: ${reflected} reflected, ${exitsToL1 - reflected} raised by L0 after handling the hardware exit; ${ops} vmx-op events`);
  });

  it('stats of an imported trace (L1 exits not from vmx-op events) has no per-exit-to-L1 figures', async () => {
    const r = await runCli(['stats', join(root, 'traces/imported/iris-boot_seed0.trtl'), '--json']);
    expect(r.code).toBe(0);
    expect((JSON.parse(r.stdout) as { perExitToL1: unknown }).perExitToL1).toBeNull();
  });
});
