// Writes vmcs02 fields and records, for each, the merge rule id and the inputs it used (provenance).
// Must not: decide values; it only stores what merge rules compute, truncated by the field width as the VMCS does.
// Reference: DESIGN.md §3 (merge invariant: every field has a rule id and names its inputs).
import { fieldDef, slotOf, VMCS_SLOT_COUNT, type Vmcs } from '../../cpu/vmcs.js';
import type { FieldProvenance, ProvenanceInput } from './types.js';

export class ProvenanceWriter {
  readonly provenance: FieldProvenance[] = [];
  /** 1 for each slot already written. */
  private readonly written = new Uint8Array(VMCS_SLOT_COUNT);

  constructor(readonly vmcs02: Vmcs) {}

  write(encoding: number, rule: string, inputs: readonly ProvenanceInput[], value: bigint): void {
    const def = this.claim(encoding);
    this.vmcs02.set(encoding, value);
    this.provenance.push({ field: def.name, encoding, rule, inputs, value: this.vmcs02.get(encoding) });
  }

  /**
   * Store a record made by an earlier merge whose rule saw exactly the same inputs (so it computes the same value):
   * the same vmcs02 value and the same (immutable) provenance object as `write` would produce anew.
   */
  reuse(p: FieldProvenance, slot: number, low: number, high: number): void {
    if (slotOf(p.encoding) !== slot || (p.encoding & 1) !== 0) throw new Error(`turtles bug: merge reuses ${p.field} for another slot`);
    if (this.written[slot]) throw new Error(`turtles bug: merge writes ${p.field} twice`);
    this.written[slot] = 1;
    // `low`/`high` are p.value's words: p.value is what the VMCS held after the original store, so set() would write them.
    this.vmcs02.words[2 * slot] = low;
    this.vmcs02.words[2 * slot + 1] = high;
    this.provenance.push(p);
  }

  private claim(encoding: number): { readonly name: string } {
    const def = fieldDef(encoding);
    if (!def || def.access !== 'full') throw new Error(`turtles bug: merge writes unknown field 0x${encoding.toString(16)}`);
    const slot = slotOf(encoding);
    if (this.written[slot]) throw new Error(`turtles bug: merge writes ${def.name} twice`);
    this.written[slot] = 1;
    return def;
  }
}
