// Writes vmcs02 fields and records, for each, the merge rule id and the inputs it used (provenance).
// Must not: decide values; it only stores what merge rules compute, truncated by the field width as the VMCS does.
// Reference: DESIGN.md §3 (merge invariant: every field has a rule id and names its inputs).
import { fieldDef, type Vmcs } from '../../cpu/vmcs.js';
import type { FieldProvenance, ProvenanceInput } from './types.js';

export class ProvenanceWriter {
  readonly provenance: FieldProvenance[] = [];
  private readonly written = new Set<number>();

  constructor(readonly vmcs02: Vmcs) {}

  write(encoding: number, rule: string, inputs: readonly ProvenanceInput[], value: bigint): void {
    const def = fieldDef(encoding);
    if (!def || def.access !== 'full') throw new Error(`turtles bug: merge writes unknown field 0x${encoding.toString(16)}`);
    if (this.written.has(encoding)) throw new Error(`turtles bug: merge writes ${def.name} twice`);
    this.written.add(encoding);
    this.vmcs02.set(encoding, value);
    this.provenance.push({ field: def.name, encoding, rule, inputs, value: this.vmcs02.get(encoding) });
  }
}
