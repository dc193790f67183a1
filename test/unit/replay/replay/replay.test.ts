// The replay driver on hand-made traces: each check class finds what it should (VM-entry checks on recorded states
// against the recorded outcome, RIP advancement, reflection decisions, exit information), --checks / --first /
// --event select and stop as documented, and the columnar path reports exactly what the event path reports.
import { describe, expect, it } from 'vitest';
import { Field } from '../../../../src/cpu/generated/vmcs-fields.js';
import { findCpuModel } from '../../../../src/cpu/cpu-model.js';
import { TraceReader, encodeTrace, memorySource, reflection, vmEntry, type TraceEvent, type TraceHeader } from '../../../../src/replay/format/index.js';
import { replayTrace, type TraceReplay } from '../../../../src/replay/replay/index.js';

const single: TraceHeader = { producer: 'test', l0Profile: 'recorded', kind: 'single-level' };
const nested: TraceHeader = { producer: 'test', l0Profile: 'recorded', kind: 'nested' };

function reader(header: TraceHeader, events: TraceEvent[], chunkEvents?: number): TraceReader {
  return TraceReader.open(memorySource(encodeTrace(header, events, chunkEvents ? { chunkEvents } : {})), 't.trtl');
}

const rules = (r: TraceReplay) => r.findings.map((f) => `${f.divergence.event}:${f.divergence.rule}`);
const snap = (fields: [number, bigint][], line?: number): TraceEvent => ({ kind: 'vmcs-snapshot', which: 'single', fields: new Map(fields.sort((a, b) => a[0] - b[0])), ...(line ? { line } : {}) });

/** IRIS-shaped: an OUT exit whose handler injects an interrupt while RFLAGS.IF = 0, then a HLT exit it skips wrongly. */
const IRIS_LIKE: TraceEvent[] = [
  { kind: 'vm-exit', level: 'L2', line: 1, reason: 30, rip: 0x1000n, qualification: 0x700040n, instructionLength: 2 },
  snap([[Field.GUEST_RIP, 0x1002n], [Field.GUEST_RFLAGS, 0x2n], [Field.VM_ENTRY_INTR_INFO_FIELD, 0x8000_0020n]], 1),
  { kind: 'vm-exit', level: 'L2', line: 40, reason: 12, rip: 0x1002n, qualification: 0n, instructionLength: 1 },
  snap([[Field.GUEST_RIP, 0x1010n], [Field.GUEST_RFLAGS, 0x202n]], 40),
];

describe('replay: check classes', () => {
  it('VM-entry checks on a state the next exit shows was entered, and RIP advancement after the handler', () => {
    const r = replayTrace(reader(single, IRIS_LIKE));
    expect(rules(r)).toEqual(['1:guest.rflags.if', '2:trace.rip-advance']);
    const entry = r.findings[0]!;
    expect(entry.line).toBe(1);
    expect(entry.divergence).toMatchObject({ kind: 'recorded', sdm: expect.stringMatching(/^26\.3/), level: 'L2', field: 'GUEST_RFLAGS' });
    expect(entry.divergence.expected).toContain('the entry succeeded (exit at event 2)');
    expect(r.findings[1]!.divergence).toMatchObject({ field: 'GUEST_RIP', expected: '0x1002 (not skipped) or 0x1003 (RIP + 1)', actual: '0x1010' });
    expect(r.checks.find((c) => c.id === 'rip-advance')).toMatchObject({ evaluated: 2, divergences: 1 });
    expect(r.checks.find((c) => c.id === 'reflection')).toMatchObject({ applies: false });
    expect(r.exits).toBe(2);
  });

  it('a recorded VM-entry failure explained by a check is agreement, not a divergence; an unexplained class is', () => {
    const failed: TraceEvent[] = [
      { kind: 'vm-exit', level: 'L2', reason: 0x8000_0021, qualification: 0n },
      snap([[Field.GUEST_RFLAGS, 0x2n], [Field.VM_ENTRY_INTR_INFO_FIELD, 0x8000_0020n]]),
    ];
    const r = replayTrace(reader(single, failed));
    expect(r.findings).toEqual([]);
    expect(r.checks.find((c) => c.id === 'vm-entry')!.explained).toEqual([
      { state: 1, exit: 0, reason: '0x80000021', checks: [expect.objectContaining({ id: 'guest.rflags.if', class: 'exit-33' })] },
    ]);
    // Pin-based controls that violate the model's allowed settings fail with VMfailValid, not exit 33.
    const vmfail: TraceEvent[] = [{ kind: 'vm-exit', level: 'L2', reason: 0x8000_0021, qualification: 0n }, snap([[Field.PIN_BASED_VM_EXEC_CONTROL, 0n]])];
    const r2 = replayTrace(reader(single, vmfail), { cpu: findCpuModel('intel-core-i7-6700k')! });
    expect(rules(r2)).toEqual(['1:trace.entry.outcome']);
    expect(r2.findings[0]!.divergence.actual).toBe('ctrl.pin.allowed-settings: vmfail-valid-7');
  });

  it('reflection: unconditional exits must be reflected, reflected exits keep their information, synthesized ones pass', () => {
    const events: TraceEvent[] = [
      { kind: 'l0-exit', level: 'L2', reason: 10, rip: 0x10n, qualification: 0n },
      reflection('handled-by-l0', 10, { inferred: true, rip: 0x10n }),
      { kind: 'l0-exit', level: 'L2', reason: 30, rip: 0x20n, qualification: 0x5658000bn },
      reflection('handled-by-l0', 30, { inferred: true, rip: 0x20n }),
      { kind: 'l0-exit', level: 'L2', reason: 28, rip: 0x30n, qualification: 0x3n },
      reflection('reflected', 28, { inferred: true, rip: 0x30n }),
      { kind: 'vm-exit', level: 'L2', reason: 28, qualification: 0x4n },
      { kind: 'l0-exit', level: 'L2', reason: 48, rip: 0x40n, qualification: 0x181n },
      reflection('reflected', 48, { inferred: true, rip: 0x40n }),
      { kind: 'vm-exit', level: 'L2', reason: 48, qualification: 0x182n },
      { kind: 'l0-exit', level: 'L2', reason: 10, rip: 0x50n, qualification: 0n },
      reflection('reflected', 10, { inferred: true, rip: 0x50n }),
      { kind: 'vm-exit', level: 'L2', reason: 10, qualification: 0n },
      { kind: 'l0-exit', level: 'L2', reason: 18, rip: 0x60n, qualification: 0n },
      reflection('handled-by-l0', 18, { inferred: true, rip: 0x60n }),
    ];
    const r = replayTrace(reader(nested, events));
    expect(rules(r)).toEqual(['0:trace.reflection.must-reflect', '4:trace.reflection.fields']);
    expect(r.findings[0]!.divergence).toMatchObject({ level: 'L0', expected: 'reflected to L1', actual: 'handled by L0' });
    expect(r.findings[1]!.divergence).toMatchObject({ field: 'EXIT_QUALIFICATION', expected: 'qualification 0x3', actual: '0x4' });
    // VMCALL stays undecided until an entry shows L1 does not use an enlightened VMCS; then it must be reflected.
    const proven = replayTrace(reader(nested, [vmEntry('L2', { vmcs12: 0x1000n }), ...events]));
    expect(rules(proven)).toEqual(['1:trace.reflection.must-reflect', '5:trace.reflection.fields', '14:trace.reflection.must-reflect']);
    const c = r.checks.find((x) => x.id === 'reflection')!;
    expect(c).toMatchObject({ applies: true, evaluated: 3, undecided: 3, divergences: 2 }); // CPUID twice, EPT; I/O, CR, VMCALL depend
  });

  it('exit information: the columnar path reports exactly what the event path reports, across chunks', () => {
    const events: TraceEvent[] = [];
    for (let i = 0; i < 300; i++) {
      events.push({ kind: i % 3 === 0 ? 'l0-exit' : 'vm-exit', level: i % 2 ? 'L1' : 'L2', reason: i % 7 === 0 ? 1 : 30, rip: BigInt(0x1000 + i * 3), qualification: i % 11 === 0 ? 0x80n : 0x700040n, idtVectoringInfo: i % 13 === 0 ? 0x800000fd : 0, instructionLength: 2, line: i + 1 });
      if (i % 5 === 0) events.push(reflection('reflected', 30, { rip: 1n, rule: 'x' }));
      if (i % 17 === 0) events.push({ kind: 'vm-exit', level: 'L2', reasonText: 'npf', qualification: 1n });
    }
    const t = reader(single, events, 64);
    const cols = replayTrace(t, { checks: ['trace.exit-info'] });
    const objs = replayTrace(t, { checks: ['trace.exit-info'], decode: 'events' });
    expect(cols.decode).toBe('columns');
    expect(objs.decode).toBe('events');
    expect(cols.findings.length).toBeGreaterThan(20);
    expect(cols.findings).toEqual(objs.findings);
    expect(cols.exits).toBe(objs.exits);
    expect(cols.checks).toEqual(objs.checks);
  });
});

describe('replay: every check class on columns', () => {
  it('exit and reflection rows plus snapshot and entry objects report exactly what the event path reports, across chunks', () => {
    const events: TraceEvent[] = [];
    for (let i = 0; i < 120; i++) {
      // IRIS-shaped states that repeat (the entry-check cache) and differ (a bad RFLAGS every seventh), a failed entry.
      events.push({ kind: 'vm-exit', level: i % 9 === 0 ? 'L1' : 'L2', line: i + 1, reason: i % 11 === 0 ? 0x8000_0021 : 30, rip: BigInt(0x1000 + (i % 4)), qualification: 0x700040n, instructionLength: 2 });
      events.push(snap([[Field.GUEST_RIP, BigInt(0x1002 + (i % 4) + (i % 5 === 0 ? 7 : 0))], [Field.GUEST_RFLAGS, i % 7 === 0 ? 0x2n : 0x202n], [Field.VM_ENTRY_INTR_INFO_FIELD, 0x8000_0020n]], i + 1));
      // Snapshots of a kind no columnar check reads (skipped there) between those it reads.
      if (i % 2 === 0) events.push({ kind: 'vmcs-snapshot', which: 'vmcs12', fields: new Map([[Field.GUEST_RIP, BigInt(0x2000 + i)], [Field.GUEST_RFLAGS, 0x2n]]) });
      // Nested: decisions (CPUID must be reflected), a reflected exit delivered with another qualification, entries.
      if (i % 3 === 0) events.push(vmEntry('L2', { vmcs12: i % 2 ? 0x1000n : (1n << 64n) - 1n }));
      events.push({ kind: 'l0-exit', level: 'L2', reason: i % 4 === 0 ? 10 : 28, rip: BigInt(0x30 + i), qualification: 0x3n });
      events.push(reflection(i % 5 === 0 ? 'handled-by-l0' : 'reflected', i % 4 === 0 ? 10 : 28, { inferred: true, rip: BigInt(0x30 + i) }));
      if (i % 5 !== 0) events.push({ kind: 'vm-exit', level: 'L2', reason: i % 4 === 0 ? 10 : 28, qualification: i % 6 === 0 ? 0x4n : 0x3n });
    }
    for (const header of [single, nested]) {
      const t = reader(header, events, 50);
      for (const options of [{}, { first: true }, { checks: ['guest.', 'trace.reflection'] }]) {
        const cols = replayTrace(t, options);
        const objs = replayTrace(t, { ...options, decode: 'events' });
        expect(cols.decode).toBe('columns');
        expect(objs.decode).toBe('events');
        expect(cols.findings).toEqual(objs.findings);
        expect(cols.checks).toEqual(objs.checks);
        expect([cols.exits, cols.replayed, cols.stopped]).toEqual([objs.exits, objs.replayed, objs.stopped]);
      }
      expect(replayTrace(t).findings.length).toBeGreaterThan(header === nested ? 60 : 30);
    }
  });
});

describe('replay: options', () => {
  it('--checks selects rules by id prefix (trace rules and VM-entry check ids)', () => {
    expect(rules(replayTrace(reader(single, IRIS_LIKE), { checks: ['trace.rip'] }))).toEqual(['2:trace.rip-advance']);
    expect(rules(replayTrace(reader(single, IRIS_LIKE), { checks: ['guest.'] }))).toEqual(['1:guest.rflags.if']);
    const r = replayTrace(reader(single, IRIS_LIKE), { checks: ['trace.exit-info'] });
    expect(r.findings).toEqual([]);
    expect(r.checks.map((c) => c.id)).toEqual(['exit-info']);
  });

  it('--first stops at the first divergence', () => {
    const r = replayTrace(reader(single, IRIS_LIKE), { first: true });
    expect(rules(r)).toEqual(['1:guest.rflags.if']);
    expect(r.stopped).toBe(true);
    expect(r.replayed).toBeLessThan(IRIS_LIKE.length);
  });

  it('--event N reports only what is anchored at event N, and stops once it is decided', () => {
    const padded = [...IRIS_LIKE, ...Array.from({ length: 50 }, (_, i): TraceEvent => ({ kind: 'vm-exit', level: 'L2', reason: 10, rip: BigInt(i), qualification: 0n, instructionLength: 2 }))];
    const r = replayTrace(reader(single, padded), { event: 1 });
    expect(rules(r)).toEqual(['1:guest.rflags.if']);
    expect(r.replayed).toBeLessThan(padded.length);
    expect(rules(replayTrace(reader(single, padded), { event: 2 }))).toEqual(['2:trace.rip-advance']);
    expect(replayTrace(reader(single, padded), { event: 0 }).findings).toEqual([]);
  });
});
