// Nested VM-entry failures in a recording: a vmcs12 guest-state error (exit 33 to L1) and a control error
// (VMfailValid 7) each give an entry_failure event with the catalogue check id, in the launch's bracket.
import { describe, expect, it } from 'vitest';
import { recordScenario } from '../../../../src/replay/record/recorder.js';
import { parseScenario } from '../../../../src/replay/scenario/parse.js';

function scenario(l1: Record<string, unknown>) {
  return parseScenario(JSON.stringify({
    format: 'turtles.scenario.v1', name: 'entry-failure',
    l1: { l2: { mode: 'long64', code: { asm: ['cpuid', 'hlt'] } }, controls: { primary: '0x80' }, ...l1 },
  }), 'test');
}

describe('entry failures', () => {
  it('a bad vmcs12 guest state: entry_failure with exit reason 0x80000021, then the exit to L1', () => {
    // CR0.PG without CR0.PE is a guest-state error (SDM 26.3.1.1).
    const { events } = recordScenario(scenario({ vmcsWrites: [{ field: 'GUEST_CR0', value: '0x80000000' }] }));
    const i = events.findIndex((e) => e.kind === 'entry-failure');
    expect(i).toBeGreaterThan(0);
    const f = events[i]!;
    if (f.kind !== 'entry-failure') throw new Error('unreachable');
    expect(f.level).toBe('L2');
    expect(f.exitReason).toBe(0x8000_0021);
    expect(f.checkId).toMatch(/^guest\./);
    const after = events.slice(i + 1, i + 3).map((e) => e.kind);
    expect(after).toEqual(['vmx-outcome', 'vm-exit']);
    const exit = events[i + 2]!;
    expect(exit.kind === 'vm-exit' && exit.reason).toBe(0x8000_0021);
    expect(events.some((e) => e.kind === 'vm-entry')).toBe(false);
  });

  it('a control outside the allowed settings: entry_failure with VM-instruction error 7 and VMfailValid', () => {
    const { events } = recordScenario(scenario({ controlsMode: 'exact', controls: { pin: '0x0', primary: '0x80' } }));
    const i = events.findIndex((e) => e.kind === 'entry-failure');
    const f = events[i]!;
    if (f.kind !== 'entry-failure') throw new Error('no entry failure recorded');
    expect(f.vmInstructionError).toBe(7);
    expect(f.checkId.length).toBeGreaterThan(0);
    const outcome = events[i + 1]!;
    expect(outcome.kind === 'vmx-outcome' && [outcome.op, outcome.result, outcome.errorNumber]).toEqual(['vmlaunch', 'fail-valid', 7]);
  });
});
