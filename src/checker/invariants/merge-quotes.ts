// Step 2 of the merge invariant without per-input string lookups and bigint reads: for a provenance record nobody can
// change (deeply frozen), which VMCS word pair each recorded vmcs01/vmcs12/vmcs02/host/l2Live input quotes, compiled
// once; every check still compares every input with the value its source holds now. Other inputs go to `slowQuote`.
// Must not: trust anything the record says beyond where it claims its inputs came from. Reference: DESIGN.md §3 (merge).
import { Field } from '../../cpu/generated/vmcs-fields.js';
import { slotOf, type Vmcs } from '../../cpu/vmcs.js';
import type { FieldProvenance, L0MergeInputs, ProvenanceInput } from '../../nested/merge/types.js';

const ENCODING_BY_NAME: ReadonlyMap<string, number> = new Map(Object.entries(Field as Record<string, number>));

/** Where a quoted input lives. */
const V01 = 0;
const V12 = 1;
const V02 = 2;
const HOST = 3;
const L2LIVE = 4;
/** Not compiled: checked by the caller's general lookup. */
const OTHER = 5;
/** A top-level L0MergeInputs item ("realEntry", "exceptionBitmap"), or an item of its `l1` ("l1.efer"). */
const L0TOP = 6;
const L1ITEM = 7;

/** One compiled input: source, word index of bits 31:0 (-1: a high-half encoding, only bits 63:32), expected words. */
interface QuotePlan {
  readonly source: Uint8Array;
  readonly word: Int32Array;
  /** Expected low / high words; a value no VMCS word pair can hold never matches (lo = -1). */
  readonly lo: Float64Array;
  readonly hi: Float64Array;
  /** L0 items: the property name, and the recorded value as a number when it is in [0, 2^32) (else -1). */
  readonly key: (string | undefined)[];
  readonly num: Float64Array;
  /** The words of the record's own value (for its full encoding), split the same way. */
  readonly valueLo: number;
  readonly valueHi: number;
}

function splitWords(v: bigint, high: boolean): [number, number] {
  if (high) return v >= 0n && v <= 0xffff_ffffn ? [0, Number(v)] : [-1, -1];
  return v >= 0n && v <= 0xffff_ffff_ffff_ffffn ? [Number(v & 0xffff_ffffn), Number(v >> 32n)] : [-1, -1];
}

function compile(p: FieldProvenance): QuotePlan {
  const n = p.inputs.length;
  const [valueLo, valueHi] = splitWords(p.value, false);
  const plan: QuotePlan = {
    source: new Uint8Array(n), word: new Int32Array(n), lo: new Float64Array(n), hi: new Float64Array(n), key: new Array<string | undefined>(n).fill(undefined),
    num: new Float64Array(n), valueLo, valueHi,
  };
  for (let k = 0; k < n; k++) {
    const x = p.inputs[k]!;
    let source = OTHER;
    let name = x.field;
    if (name !== undefined && x.from !== 'L0') source = x.from === 'vmcs01' ? V01 : x.from === 'vmcs12' ? V12 : OTHER;
    else if (name !== undefined) {
      const dot = name.indexOf('.');
      const head = dot < 0 ? '' : name.slice(0, dot);
      source = head === 'merged' ? V02 : head === 'host' ? HOST : head === 'l2Live' ? L2LIVE : OTHER;
      if (source !== OTHER) name = name.slice(dot + 1);
      else if (dot < 0 || head === 'l1') {
        // A scalar item: compared the way the general lookup compares it (numbers as unsigned 32-bit, booleans 0/1).
        plan.source[k] = dot < 0 ? L0TOP : L1ITEM;
        plan.key[k] = dot < 0 ? name : name.slice(dot + 1);
        plan.num[k] = x.value >= 0n && x.value <= 0xffff_ffffn ? Number(x.value) : -1;
        continue;
      }
    }
    const enc = name === undefined ? undefined : ENCODING_BY_NAME.get(name);
    const slot = enc === undefined ? -1 : slotOf(enc);
    if (source === OTHER || enc === undefined || slot < 0) {
      // Not a VMCS field of the table: the general lookup decides (it skips names it cannot resolve, as before).
      plan.source[k] = OTHER;
      continue;
    }
    const high = (enc & 1) !== 0;
    const [lo, hi] = splitWords(x.value, high);
    plan.source[k] = source;
    plan.word[k] = high ? -1 - slot : 2 * slot;
    plan.lo[k] = lo;
    plan.hi[k] = hi;
  }
  return plan;
}

function quotes(words: Uint32Array, word: number, lo: number, hi: number): boolean {
  if (lo < 0) return false;
  if (word < 0) return words[2 * (-1 - word) + 1] === hi;
  return words[word] === lo && words[word + 1] === hi;
}

function deeplyFrozen(p: FieldProvenance): boolean {
  if (!Object.isFrozen(p) || !Object.isFrozen(p.inputs)) return false;
  for (const x of p.inputs) if (!Object.isFrozen(x)) return false;
  return true;
}

/** What the checker knows about one provenance record: its compiled quotes, and whether nothing can change it. */
export interface RecordFacts {
  readonly record: FieldProvenance;
  readonly plan: QuotePlan;
  readonly frozen: boolean;
  /** Its rule already reproduced its value (step 3); only ever set for frozen records, whose verdict cannot change. */
  replayed: boolean;
}

/**
 * Facts per vmcs02 slot for the last two records seen there (the merge hands out the same frozen records again, and
 * alternates between two for L0's own re-entries and the emulated entries). Identity lookups, no hashing.
 */
export class RecordFactsCache {
  private readonly ways: (RecordFacts | undefined)[] = [];

  facts(slot: number, p: FieldProvenance): RecordFacts {
    const a = this.ways[2 * slot];
    if (a !== undefined && a.record === p) return a;
    const b = this.ways[2 * slot + 1];
    if (b !== undefined && b.record === p) {
      this.ways[2 * slot + 1] = a;
      this.ways[2 * slot] = b;
      return b;
    }
    const frozen = deeplyFrozen(p);
    const facts: RecordFacts = { record: p, plan: compile(p), frozen, replayed: false };
    // A record that can still change is compiled afresh at every check.
    if (frozen) {
      this.ways[2 * slot + 1] = a;
      this.ways[2 * slot] = facts;
    }
    return facts;
  }
}

/** Whether `vmcs` holds the record's value in the full field at `slot` (what `vmcs.get(encoding) === p.value` says). */
export function holdsValue(vmcs: Vmcs, slot: number, facts: RecordFacts): boolean {
  return quotes(vmcs.words, 2 * slot, facts.plan.valueLo, facts.plan.valueHi);
}

export interface QuoteSources {
  readonly vmcs01: Vmcs;
  readonly vmcs12: Vmcs;
  readonly vmcs02: Vmcs;
  readonly l0: L0MergeInputs;
}

/**
 * The recorded input of the record that is not the value its source holds now, if any. `slowQuote` checks one input the
 * compiled form does not cover.
 */
export function misquoted<T extends QuoteSources>(i: T, facts: RecordFacts, slowQuote: (i: T, x: ProvenanceInput) => boolean): ProvenanceInput | undefined {
  const plan = facts.plan;
  const p = facts.record;
  const inputs = p.inputs;
  for (let k = 0; k < inputs.length; k++) {
    const source = plan.source[k]!;
    if (source === OTHER) {
      if (slowQuote(i, inputs[k]!)) return inputs[k]!;
      continue;
    }
    if (source === L0TOP || source === L1ITEM) {
      const item = (source === L0TOP ? i.l0 : i.l0.l1) as unknown as Record<string, unknown>;
      const x = item[plan.key[k]!];
      const value = inputs[k]!.value;
      if (typeof x === 'bigint' ? x !== value : source === L1ITEM ? false
        : typeof x === 'number' ? (x >>> 0) !== plan.num[k] : typeof x === 'boolean' ? (x ? 1 : 0) !== plan.num[k] : false) return inputs[k]!;
      continue;
    }
    let v: Vmcs | null;
    switch (source) {
      case V01: v = i.vmcs01; break;
      case V12: v = i.vmcs12; break;
      case V02: v = i.vmcs02; break;
      case HOST: v = i.l0.host; break;
      default: v = i.l0.l2Live; break;
    }
    // No live L2 state to quote from: not checkable here (as the general lookup).
    if (v === null) continue;
    if (!quotes(v.words, plan.word[k]!, plan.lo[k]!, plan.hi[k]!)) return inputs[k]!;
  }
  return undefined;
}
