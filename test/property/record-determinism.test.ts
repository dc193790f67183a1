// Recording is deterministic (DESIGN.md §7): the same scenario and seed give a byte-identical trace, whatever else
// ran before in the process, and decode(encode(events)) = events for any chunking. The seed reaches L2 (RDRAND picks
// the I/O port L2 reads, so the exit qualifications depend on it) and the header.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodeTrace, encodeTrace } from '../../src/replay/format/index.js';
import { builtinScenarios, loadBuiltinScenario } from '../../src/replay/io/scenario-files.js';
import { recordScenario } from '../../src/replay/record/recorder.js';
import { parseScenario } from '../../src/replay/scenario/parse.js';
import type { Scenario } from '../../src/replay/scenario/types.js';
import { propertyParams } from '../support/property.js';

/** L2 reads three I/O ports chosen by RDRAND (unconditional I/O exiting), so the trace depends on the seed. */
const RANDOM_PORTS = parseScenario(JSON.stringify({
  format: 'turtles.scenario.v1', name: 'random-ports',
  l1: {
    l2: { mode: 'long64', code: { asm: ['mov ecx, 3', 'next:', 'rdrand edx', 'and edx, 0x3ff', 'in al, dx', 'dec ecx', 'jnz next', 'hlt'] } },
    controls: { primary: '0x1000080' },
    policy: { rules: [{ reason: 'HLT', actions: [{ kind: 'stop' }] }, { reason: 'any', actions: [{ kind: 'emulate' }] }] },
  },
}), 'random-ports');

function shortMixed(iterations: number): Scenario {
  const s = loadBuiltinScenario('mixed-1m');
  return { ...s, l1: { ...s.l1, l2: { ...s.l1.l2, gprs: [['r15', BigInt(iterations)]] } } };
}

const scenario = fc.oneof(
  // Every built-in but the long mixed workload, which comes in short versions below.
  fc.constantFrom(...builtinScenarios().filter((n) => n !== 'mixed-1m')).map(loadBuiltinScenario),
  fc.integer({ min: 1, max: 3 }).map(shortMixed),
  fc.constant(RANDOM_PORTS),
);

describe('recording determinism', () => {
  it('same scenario and seed give byte-identical traces; decode(encode) = events for any chunking', () => {
    fc.assert(
      fc.property(scenario, fc.option(fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), { nil: undefined }), fc.integer({ min: 1, max: 400 }), (s, seed, chunkEvents) => {
        const opts = seed !== undefined ? { seed } : {};
        const a = recordScenario(s, opts);
        const b = recordScenario(s, opts);
        const bytesA = encodeTrace(a.header, a.events);
        expect(Buffer.from(encodeTrace(b.header, b.events)).equals(Buffer.from(bytesA))).toBe(true);
        const back = decodeTrace(bytesA);
        expect(back.events).toEqual(a.events);
        expect(back.header.seed).toBe(seed ?? s.seed);
        const chunked = decodeTrace(encodeTrace(a.header, a.events, { chunkEvents }));
        expect(chunked.events).toEqual(a.events);
      }),
      propertyParams({ numRuns: 8 }),
    );
  });

  it('the seed reaches L2: different seeds choose different ports', () => {
    const ports = (seed: bigint) => recordScenario(RANDOM_PORTS, { seed }).events
      .filter((e) => e.kind === 'vm-exit' && e.reason === 30).map((e) => Number(((e as { qualification: bigint }).qualification >> 16n) & 0xffffn));
    const seen = new Set<string>();
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: 1n << 40n }), (seed) => {
        const p = ports(seed);
        expect(p.length).toBe(3);
        expect(ports(seed)).toEqual(p);
        seen.add(p.join(','));
      }),
      propertyParams({ numRuns: 6 }),
    );
    expect(seen.size).toBeGreaterThan(1);
  });
});
