// Replay and stats over what the importers produce: IRIS logs (the VM exit clears the injected event's valid bit, so an
// injection is never carried into the next exit's state), dumps as traces (events, line accounting, format errors),
// and the stats summary of a nested trace (histograms, reflections, exit multiplication, entry failures by check).
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Field } from '../../../../src/cpu/generated/vmcs-fields.js';
import { importIris } from '../../../../src/replay/import/index.js';
import { TraceReader, encodeTrace, entryFailure, memorySource, reflection, type TraceEvent, type TraceHeader } from '../../../../src/replay/format/index.js';
import { importVmcsDump, replayTrace, summarizeTrace } from '../../../../src/replay/replay/index.js';

const traceOf = (header: TraceHeader, events: TraceEvent[]) => TraceReader.open(memorySource(encodeTrace(header, events)), 't.trtl');
const rows = (...triples: [string, string, number][]) => triples.flatMap(([f, v, t]) => [f, v, String(t)]);
const MARKER: [string, string, number] = ['ffffffff', 'ffffffff', 0];

describe('IRIS logs', () => {
  // Exit 1: an external interrupt; the handler injects vector 0xf3 (RFLAGS.IF = 1). Exit 2: RDTSC with IF = 0, no
  // injection; its handler does not VMREAD 0x4016. Keeping the valid bit across exit 2 would make guest.rflags.if fail
  // on a state the CPU entered.
  const text = rows(
    MARKER, ['681e', '1000', 1], ['6820', '206', 1], ['4402', '1', 1], ['4404', '800000fa', 1],
    ['4016', '800000f3', 0], ['401c', '0', 0],
    MARKER, ['681e', '2000', 1], ['6820', '46', 1], ['4402', '10', 1], ['440c', '2', 1],
    ['681e', '2002', 0],
  ).join('\n') + '\n';

  it('the exit clears the valid bit of VM-entry interruption information (SDM 24.8.3): every state passes', () => {
    const r = importIris(text, { sourceName: 'iris' });
    const states = r.events.filter((e) => e.kind === 'vmcs-snapshot');
    expect(states.at(-1)!.kind === 'vmcs-snapshot' && states.at(-1)!.fields.get(Field.VM_ENTRY_INTR_INFO_FIELD)).toBe(0xf3n);
    const replay = replayTrace(traceOf(r.header, r.events));
    expect(replay.findings).toEqual([]);
    expect(replay.checks.find((c) => c.id === 'vm-entry')).toMatchObject({ evaluated: 2, divergences: 0 });
    expect(replay.checks.find((c) => c.id === 'rip-advance')).toMatchObject({ evaluated: 1, divergences: 0 }); // RDTSC skipped by 2
  });
});

describe('dumps as traces', () => {
  const dump = (name: string) => readFileSync(join(import.meta.dirname, '../../../../traces/vmcs', name), 'utf8');

  it('a KVM dump_vmcs: the stated exit, then every field; every line accounted for', () => {
    const text = dump('dumpvmcs-dosemu2-core2duo-ds-accessed-bit.txt');
    const r = importVmcsDump(text, 'auto', 'd.txt');
    if (!r.ok) throw new Error(r.error.expected);
    const [exit, snap] = r.value.events;
    expect(exit).toMatchObject({ kind: 'vm-exit', level: 'L2', reason: 0x8000_0021, line: 69 });
    expect(snap!.kind === 'vmcs-snapshot' && snap!.fields.get(Field.GUEST_DS_AR_BYTES)).toBe(0xc0f2n);
    const c = r.value.counts;
    expect(c.lines).toBe(text.split('\n').length - 1);
    expect(c.mapped + Object.values(c.skipped).reduce((a, b) => a + b, 0)).toBe(c.lines);
    expect(r.value.header).toMatchObject({ kind: 'single-level', l0Profile: 'recorded', provenance: { sourceFormat: 'dump-vmcs', sourceName: 'd.txt' } });
  });

  it('a Xen dump named as a KVM one, and text that is no dump, are bad input with a line', () => {
    const xen = importVmcsDump(dump('dumpvmcs-xen-4.11-debugkey-v-solo5-hlt-known-good.txt'), 'dump-vmcs', 'x.txt');
    expect(xen).toMatchObject({ ok: false, error: { file: 'x.txt', line: 1, expected: expect.stringContaining('this is a Xen vmcs_dump_vcpu dump') } });
    expect(importVmcsDump('hello\n', 'auto', 'h.txt')).toMatchObject({ ok: false, error: { file: 'h.txt', line: 1 } });
  });
});

describe('stats summary', () => {
  it('histograms per exit kind and level, reflections, exit multiplication and entry failures by check', () => {
    const events: TraceEvent[] = [];
    for (let i = 0; i < 4; i++) {
      events.push({ kind: 'l0-exit', level: 'L2', reason: 30 }, reflection('reflected', 30, { inferred: true }), { kind: 'vm-exit', level: 'L2', reason: 30 });
      events.push({ kind: 'l0-exit', level: 'L1', reason: 23 }, { kind: 'l0-exit', level: 'L1', reason: 25 }, { kind: 'l0-exit', level: 'L1', reason: 24 });
    }
    events.push({ kind: 'l0-exit', level: 'L2', reason: 48 }, reflection('handled-by-l0', 48));
    events.push({ kind: 'l0-exit', level: 'L2', reason: 0x8000_0021 }, entryFailure('L2', { exitReason: 0x8000_0021 }), entryFailure('L2', { checkId: 'guest.cr4.fixed-bits' }));
    const s = summarizeTrace(traceOf({ producer: 't', l0Profile: 'recorded', kind: 'nested' }, events));
    expect(s.l0Exits.byLevel.L1).toEqual({ VMREAD: 4, VMRESUME: 4, VMWRITE: 4 });
    expect(s.l0Exits.byLevel.L2).toEqual({ IO_INSTRUCTION: 4, EPT_VIOLATION: 1, 'INVALID_STATE|FAILED_VMENTRY': 1 });
    expect(s.vmExits.byLevel.L2).toEqual({ IO_INSTRUCTION: 4 });
    expect(s.reflections).toEqual({ reflected: 4, handledByL0: 1, inferred: 4 });
    expect(s.exitMultiplication).toEqual({ reflectedL2Exits: 4, l0Exits: 18, l1Exits: 12, l0ExitsPerReflected: 4.5, l1ExitsPerReflected: 3 });
    expect(s.entryFailures).toEqual({ total: 2, byCheck: { 'guest.cr4.fixed-bits': 1, 'unknown check (exit 0x80000021)': 1 } });
    expect(s.byKind['l0-exit']).toBe(18);
  });
});
