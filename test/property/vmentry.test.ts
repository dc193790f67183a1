// Properties of the VM-entry checks over perturbed valid states:
//  - perturbing one field either passes or fails only checks whose catalogue fields name that field;
//  - 'first' mode's failure is the first of 'all' mode's failures, and runs are deterministic;
//  - a dump that hides fields never produces a failure the full state does not have (nothing is guessed), and every
//    failure of the full state is either still found or listed as not evaluated.
// Every failure prints the seed and path that replay it.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { CpuModel } from '../../src/cpu/cpu-model.js';
import { ENTRY_CHECKS } from '../../src/cpu/generated/entry-checks.js';
import { PartialVmcs, slotFields, type Vmcs } from '../../src/cpu/vmcs.js';
import {
  CheckContext, checkGuestSegmentRegisters, runEntryChecks, validVmcs, type EntryCheckReport, type EntryEnvironment,
} from '../../src/cpu/vmentry/index.js';
import { CONTROL_CASES } from '../unit/cpu/vmentry/cases-controls.js';
import { GUEST_CASES } from '../unit/cpu/vmentry/cases-guest.js';
import { HOST_CASES } from '../unit/cpu/vmentry/cases-host.js';
import { MSR_LOAD_CASES, NON_REGISTER_CASES } from '../unit/cpu/vmentry/cases-non-register.js';
import { SEGMENT_CASES } from '../unit/cpu/vmentry/cases-segments.js';
import { PhysMemory, presets, runCase } from '../unit/cpu/vmentry/support.js';

/** Fixed seeds (no environment input): CI runs are reproducible. */
const SEED = 0x7e57_e17e;

/** Run a property; on failure throw with the seed and path that replay it (fc.assert(..., { seed, path })). */
function holds<T>(arb: fc.Arbitrary<T>, predicate: (t: T) => void, seed: number, numRuns: number): void {
  const d = fc.check(fc.property(arb, predicate), { seed, numRuns });
  if (d.failed) {
    throw new Error(`property failed; replay with { seed: ${d.seed}, path: ${JSON.stringify(d.counterexamplePath)} }\n`
      + `counterexample: ${fc.stringify(d.counterexample)}\n${String(d.errorInstance)}`);
  }
}

const MODELS = presets();
const FIELDS = slotFields().filter((f) => f.access === 'full');
const CHECK_FIELDS = new Map(ENTRY_CHECKS.map((c) => [c.id, new Set(c.fields)]));
const mem = new PhysMemory();
const envFor = (cpu: CpuModel): EntryEnvironment => ({
  cpu, hostIa32e: true, inSmm: false, currentVmptr: 0x7000n, wrmsrFaults: () => false, readPhys: (a, s) => mem.read(a, s),
});

/** A new value for a field: anything, a one-bit flip, a small number, or an address-like value. */
const arbValue = (current: bigint): fc.Arbitrary<bigint> => fc.oneof(
  fc.bigInt(0n, (1n << 64n) - 1n),
  fc.integer({ min: 0, max: 63 }).map((b) => current ^ (1n << BigInt(b))),
  fc.bigInt(0n, 0xffffn),
  fc.tuple(fc.integer({ min: 12, max: 63 }), fc.boolean()).map(([b, low]) => (1n << BigInt(b)) | (low ? 0x1n : 0n)),
);
/**
 * Passing base states: validVmcs on every preset, and every passing case of the unit tables (virtual-8086, ring 3,
 * unrestricted guest, PAE, HLT, SMM, MSR lists, synthetic models ...), so perturbations reach checks that a 64-bit
 * flat state never exercises.
 */
const BASES = [
  ...MODELS.map((cpu) => ({ name: `validVmcs(${cpu.id})`, cpu, vmcs: validVmcs(cpu), env: envFor(cpu) })),
  ...[...CONTROL_CASES, ...HOST_CASES, ...GUEST_CASES, ...SEGMENT_CASES, ...NON_REGISTER_CASES, ...MSR_LOAD_CASES]
    .filter((c) => c.expect === 'pass').map((c) => { const r = runCase(c); return { name: c.name, cpu: r.model, vmcs: r.vmcs, env: r.env }; }),
];
const USED = new Set(ENTRY_CHECKS.flatMap((c) => c.fields));
const USED_FIELDS = FIELDS.filter((f) => USED.has(f.name));
/** Mostly fields some check reads, sometimes any field (which then must not make anything fail). */
const arbField = fc.oneof({ weight: 4, arbitrary: fc.constantFrom(...USED_FIELDS) }, { weight: 1, arbitrary: fc.constantFrom(...FIELDS) });
const arbBasePerturbation = fc.tuple(fc.integer({ min: 0, max: BASES.length - 1 }), arbField)
  .chain(([b, field]) => arbValue(BASES[b]!.vmcs.get(field.encoding)).map((value) => ({ base: BASES[b]!, field, value })));

const arbPerturbation = fc.tuple(fc.integer({ min: 0, max: MODELS.length - 1 }), fc.integer({ min: 0, max: FIELDS.length - 1 }))
  .chain(([m, f]) => {
    const cpu = MODELS[m]!;
    const field = FIELDS[f]!;
    return arbValue(validVmcs(cpu).get(field.encoding)).map((value) => ({ cpu, field, value }));
  });

function perturbed(cpu: CpuModel, edits: readonly { encoding: number; value: bigint }[]): Vmcs {
  const v = validVmcs(cpu);
  for (const e of edits) v.set(e.encoding, e.value);
  return v;
}

const ids = (r: EntryCheckReport): string[] => r.failures.map((f) => `${f.id}@${f.qualification ?? ''}`);

describe('VM-entry check properties', () => {
  it('the base states pass', () => {
    expect(BASES.length).toBeGreaterThan(40);
    for (const b of BASES) expect(runEntryChecks(b.vmcs, b.env, 'all').failures, b.name).toEqual([]);
  });

  it('one perturbed field: pass, or only failures of checks that read that field; first = first of all', () => {
    holds(arbBasePerturbation, ({ base, field, value }) => {
      const v = base.vmcs.clone();
      v.set(field.encoding, value);
      const all = runEntryChecks(v, base.env, 'all');
      const first = runEntryChecks(v, base.env, 'first');
      for (const f of all.failures) {
        expect(CHECK_FIELDS.get(f.id)!.has(field.name), `${f.id} failed after changing ${field.name} (${f.detail})`).toBe(true);
        expect(f.fields.some((x) => x.name === field.name)).toBe(true);
      }
      expect(first.failures).toEqual(all.failures.slice(0, 1));
    }, SEED, 4000);
  });

  it('several perturbed fields: first = first of all, deterministic, every failure in catalogue order within its stage', () => {
    holds(fc.array(arbPerturbation, { minLength: 2, maxLength: 6 }), (edits) => {
      const cpu = edits[0]!.cpu;
      const v = perturbed(cpu, edits.map((e) => ({ encoding: e.field.encoding, value: e.value })));
      const all = runEntryChecks(v, envFor(cpu), 'all');
      expect(runEntryChecks(v, envFor(cpu), 'first').failures).toEqual(all.failures.slice(0, 1));
      expect(runEntryChecks(v, envFor(cpu), 'all')).toEqual(all);
      const order = all.failures.filter((f) => f.stage !== 'msr-load').map((f) => ENTRY_CHECKS.findIndex((c) => c.id === f.id));
      expect(order).toEqual([...order].sort((a, b) => a - b));
    }, SEED + 1, 1500);
  });

  it('hiding fields never invents a failure, and every real failure is found or marked not evaluated', () => {
    const arb = fc.tuple(fc.array(arbPerturbation, { minLength: 1, maxLength: 4 }), fc.array(fc.integer({ min: 0, max: FIELDS.length - 1 }), { maxLength: 40 }));
    holds(arb, ([edits, hidden]) => {
      const cpu = edits[0]!.cpu;
      const v = perturbed(cpu, edits.map((e) => ({ encoding: e.field.encoding, value: e.value })));
      const hide = new Set(hidden.map((i) => FIELDS[i]!.encoding));
      const dump = new PartialVmcs();
      for (const f of FIELDS) if (!hide.has(f.encoding)) dump.set(f.encoding, v.get(f.encoding));
      const full = runEntryChecks(v, envFor(cpu), 'all');
      const partial = runEntryChecks(dump, envFor(cpu), 'all');
      const fullIds = new Set(ids(full));
      for (const id of ids(partial)) expect(fullIds.has(id), `${id} fails only when fields are hidden`).toBe(true);
      const partialIds = new Set(partial.failures.map((f) => f.id));
      for (const f of full.failures) expect(partialIds.has(f.id) || partial.notEvaluated.includes(f.id), f.id).toBe(true);
      expect(partial.evaluatedCount).toBe(ENTRY_CHECKS.length - partial.notEvaluated.length);
    }, SEED + 2, 1000);
  });

  it('the segment-stage all-clear pre-tests never hide a failure or an undecidable check', () => {
    const SEGMENT_FIELDS = FIELDS.filter((f) => /^GUEST_(CS|SS|DS|ES|FS|GS|LDTR|TR)_|^GUEST_RFLAGS$|^GUEST_CR0$|^SECONDARY_VM_EXEC_CONTROL$|^CPU_BASED_VM_EXEC_CONTROL$|^VM_ENTRY_CONTROLS$/.test(f.name));
    const arbEdit = (b: (typeof BASES)[number]) => fc.constantFrom(...SEGMENT_FIELDS).chain((field) => arbValue(b.vmcs.get(field.encoding)).map((value) => ({ field, value })));
    const arb = fc.integer({ min: 0, max: BASES.length - 1 }).chain((i) => fc.tuple(
      fc.constant(BASES[i]!), fc.array(arbEdit(BASES[i]!), { minLength: 1, maxLength: 4 }),
      fc.array(fc.constantFrom(...SEGMENT_FIELDS), { maxLength: 3 }),
    ));
    holds(arb, ([base, edits, hidden]) => {
      const v = base.vmcs.clone();
      for (const e of edits) v.set(e.field.encoding, e.value);
      const present = new Uint8Array(FIELDS.length).fill(1);
      for (const h of hidden) present[FIELDS.indexOf(h)] = 0;
      const run = (shortcuts: boolean) => {
        const c = new CheckContext();
        c.reset(v.words, hidden.length === 0 ? null : present, base.env, true);
        checkGuestSegmentRegisters(c, shortcuts);
        return { failures: c.failures, notEvaluated: c.notEvaluated };
      };
      expect(run(true)).toEqual(run(false));
    }, SEED + 4, 3000);
  });

  it('arbitrary VMCS contents never throw and always give a verdict-shaped report', () => {
    holds(fc.tuple(fc.integer({ min: 0, max: MODELS.length - 1 }), fc.array(fc.integer({ min: 0, max: 0xffff_ffff }), { minLength: 2 * FIELDS.length, maxLength: 2 * FIELDS.length })), ([m, words]) => {
      const cpu = MODELS[m]!;
      const v = validVmcs(cpu);
      v.words.set(Uint32Array.from(words).subarray(0, v.words.length));
      const all = runEntryChecks(v, envFor(cpu), 'all');
      const first = runEntryChecks(v, envFor(cpu), 'first');
      expect(first.failures).toEqual(all.failures.slice(0, 1));
      for (const f of all.failures) expect(f.detail).not.toMatch(/\n/);
    }, SEED + 3, 300);
  });
});
