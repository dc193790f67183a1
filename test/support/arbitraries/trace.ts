// Shared fast-check arbitraries for trace events and headers (src/replay/format/events.ts), covering every event
// kind with edge values (0, 2^64-1, unknown exit fields, empty and full snapshots, snapshot kinds interleaved).
// Reused by the trace round-trip, determinism and corruption properties, and by anything that records traces.
// Must not: encode or decode; values are plain event objects in the canonical form the decoder returns.
import fc from 'fast-check';
import {
  EXIT_FIELDS, EXTERNAL_KINDS, L0_PROFILES, LEVELS, REFLECTION_DECISIONS, TRACE_KINDS, VMCS_KINDS, VMX_OPS, VMX_RESULTS,
  type Ept02Entry, type ExitFields, type Provenance, type TraceEvent, type TraceHeader,
} from '../../../src/replay/format/index.js';

export const arbU64: fc.Arbitrary<bigint> = fc.oneof(
  { weight: 3, arbitrary: fc.bigInt({ min: 0n, max: 0xffffn }) },
  { weight: 3, arbitrary: fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }) },
  { weight: 1, arbitrary: fc.constantFrom(0n, 1n, (1n << 63n), (1n << 64n) - 1n, 0xffff_ffffn, 0x1_0000_0000n) },
);
export const arbU32: fc.Arbitrary<number> = fc.oneof(
  fc.integer({ min: 0, max: 0xff }),
  fc.integer({ min: 0, max: 0xffff_ffff }),
  fc.constantFrom(0, 0x8000_0000, 0xffff_ffff),
);
const arbText = fc.string({ maxLength: 24 });
const arbBytes = (max: number) => fc.uint8Array({ maxLength: max });
const arbLevel = fc.constantFrom(...LEVELS);

/** Register id → value, ids ascending (as decoded). */
const arbRegs = fc
  .uniqueArray(fc.tuple(fc.integer({ min: 0, max: 40 }), arbU64), { selector: (t) => t[0], maxLength: 8 })
  .map((pairs) => new Map(pairs.sort((a, b) => a[0] - b[0])));

/** Common fields; `line` is never 0 (0 means "no line" on the wire). */
const arbBase = fc.record({ vcpu: fc.integer({ min: 0, max: 0xffff_ffff }), line: fc.integer({ min: 1, max: 1 << 30 }) }, { requiredKeys: [] });

function withOptional<T extends object>(arb: fc.Arbitrary<T>): fc.Arbitrary<T> {
  return arb.map((o) => Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T);
}

export const arbExitFields: fc.Arbitrary<ExitFields> = withOptional(
  fc.record({
    level: arbLevel,
    reason: fc.option(fc.oneof(fc.integer({ min: 0, max: 85 }), arbU32), { nil: undefined }),
    qualification: fc.option(arbU64, { nil: undefined }),
    rip: fc.option(arbU64, { nil: undefined }),
    guestLinear: fc.option(arbU64, { nil: undefined }),
    guestPhysical: fc.option(arbU64, { nil: undefined }),
    intrInfo: fc.option(arbU32, { nil: undefined }),
    intrError: fc.option(arbU32, { nil: undefined }),
    idtVectoringInfo: fc.option(arbU32, { nil: undefined }),
    idtVectoringError: fc.option(arbU32, { nil: undefined }),
    instructionLength: fc.option(fc.integer({ min: 0, max: 15 }), { nil: undefined }),
    instructionInfo: fc.option(arbU32, { nil: undefined }),
    reasonText: fc.option(fc.string({ minLength: 1, maxLength: 12 }), { nil: undefined }),
  }),
);

const arbEpt02Entry: fc.Arbitrary<Ept02Entry> = fc.record({
  l2Gpa: arbU64, hpa: arbU64, perms: fc.integer({ min: 0, max: 15 }), level: fc.integer({ min: 1, max: 3 }),
  memoryType: fc.integer({ min: 0, max: 7 }), ignorePat: fc.boolean(),
});

/** A few field encodings so consecutive snapshots share fields (exercising deltas and clears). */
const arbSnapshotFields = fc
  .uniqueArray(fc.tuple(fc.oneof(fc.constantFrom(0x681e, 0x4402, 0x6400, 0x2400, 0x4002, 0x0, 0x2401), fc.integer({ min: 0, max: 0xffff })), arbU64), {
    selector: (t) => t[0], maxLength: 10,
  })
  .map((pairs) => new Map(pairs.sort((a, b) => a[0] - b[0])));

const optU64 = fc.option(arbU64, { nil: undefined });
const optU32 = fc.option(arbU32, { nil: undefined });

export const arbEvent: fc.Arbitrary<TraceEvent> = fc.oneof(
  { weight: 2, arbitrary: fc.record({ base: arbBase, f: arbExitFields, kind: fc.constantFrom('vm-exit' as const, 'l0-exit' as const) }).map(({ base, f, kind }) => ({ kind, ...base, ...f })) },
  fc.record({ base: arbBase, op: fc.constantFrom(...VMX_OPS), address: arbU64, field: arbU32, value: arbU64, invType: arbU32, descriptorLow: arbU64, descriptorHigh: arbU64, instruction: arbBytes(15) })
    .map(({ base, ...o }) => ({ kind: 'vmx-op' as const, ...base, ...o })),
  fc.record({ base: arbBase, address: arbU64, data: arbBytes(64) }).map(({ base, ...o }) => ({ kind: 'memory-write' as const, ...base, ...o })),
  fc.record({ base: arbBase, rip: arbU64, instruction: arbBytes(15), regs: arbRegs, emulationFailed: fc.boolean(), mode: arbText, csBase: arbU64 })
    .map(({ base, ...o }) => ({ kind: 'l2-step' as const, ...base, ...o })),
  withOptional(fc.record({ base: arbBase, external: fc.constantFrom(...EXTERNAL_KINDS), vector: fc.integer({ min: 0, max: 255 }), errorCode: optU32, atInstruction: arbU64, reinjected: fc.boolean(), target: arbLevel }))
    .map(({ base, ...o }) => ({ kind: 'external' as const, ...base, ...o })),
  withOptional(fc.record({ base: arbBase, op: fc.constantFrom(...VMX_OPS), result: fc.constantFrom(...VMX_RESULTS), errorNumber: arbU32, faultVector: arbU32, faultErrorCode: optU32, rflags: arbU64, value: optU64 }))
    .map(({ base, ...o }) => ({ kind: 'vmx-outcome' as const, ...base, ...o })),
  { weight: 3, arbitrary: withOptional(fc.record({ base: arbBase, which: fc.constantFrom(...VMCS_KINDS), fields: arbSnapshotFields, address: optU64 }))
    .map(({ base, ...o }) => ({ kind: 'vmcs-snapshot' as const, ...base, ...o })) },
  fc.record({ base: arbBase, entries: fc.array(arbEpt02Entry, { maxLength: 4 }) }).map(({ base, ...o }) => ({ kind: 'ept02' as const, ...base, ...o })),
  withOptional(fc.record({ base: arbBase, decision: fc.constantFrom(...REFLECTION_DECISIONS), exitReason: arbU32, inferred: fc.boolean(), rip: optU64, rule: arbText }))
    .map(({ base, ...o }) => ({ kind: 'reflection' as const, ...base, ...o })),
  withOptional(fc.record({ base: arbBase, level: arbLevel, checkId: arbText, exitReason: optU32, qualification: optU64, detail: arbText, vmInstructionError: optU32 }))
    .map(({ base, ...o }) => ({ kind: 'entry-failure' as const, ...base, ...o })),
  withOptional(fc.record({ base: arbBase, level: arbLevel, rip: optU64, vmcs12: optU64, l1Rip: optU64, entryIntrInfo: optU32, eptp: optU64, guestCr3: optU64, intCtl: optU32, note: arbText }))
    .map(({ base, ...o }) => ({ kind: 'vm-entry' as const, ...base, ...o })),
  fc.record({ base: arbBase, level: arbLevel, regs: arbRegs }).map(({ base, ...o }) => ({ kind: 'registers' as const, ...base, ...o })),
  fc.record({ base: arbBase, sourceKind: arbText, text: fc.string({ maxLength: 80 }), reason: arbText }).map(({ base, ...o }) => ({ kind: 'raw' as const, ...base, ...o })),
  fc.record({ base: arbBase, reason: arbText, text: arbText }).map(({ base, ...o }) => ({ kind: 'unmapped' as const, ...base, ...o })),
);

const arbProvenance: fc.Arbitrary<Provenance> = withOptional(
  fc.record({
    sourceFormat: arbText, sourceName: arbText, description: arbText, assumptions: fc.array(arbText, { maxLength: 3 }),
    counts: fc.option(fc.record({ lines: arbU32, mapped: arbU32, skipped: fc.dictionary(fc.string({ maxLength: 10 }), arbU32, { maxKeys: 3 }) }), { nil: undefined }),
  }),
);

export const arbHeader: fc.Arbitrary<TraceHeader> = withOptional(
  fc.record({
    producer: arbText,
    l0Profile: fc.constantFrom(...L0_PROFILES),
    kind: fc.constantFrom(...TRACE_KINDS),
    seed: optU64,
    cpu: fc.option(
      fc.record({
        id: arbText,
        vmxMsrs: fc.uniqueArray(fc.tuple(fc.integer({ min: 0x480, max: 0x493 }), arbU64), { selector: (t) => t[0], maxLength: 6 })
          .map((p) => new Map(p.sort((a, b) => a[0] - b[0]))),
      }),
      { nil: undefined },
    ),
    provenance: fc.option(arbProvenance, { nil: undefined }),
  }),
);

/** A trace: header and up to `maxEvents` events. */
export function arbTrace(maxEvents = 40): fc.Arbitrary<{ header: TraceHeader; events: TraceEvent[] }> {
  return fc.record({ header: arbHeader, events: fc.array(arbEvent, { maxLength: maxEvents }) });
}

/** Exit-information field names in wire-mask order (re-exported for tests that build exits by hand). */
export { EXIT_FIELDS };
