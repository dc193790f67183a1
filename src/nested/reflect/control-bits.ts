// Reads VM-execution/exit/entry control bits of a VMCS by control id ("primary.hlt-exiting"), honouring that secondary
// controls apply only with "activate secondary controls" (SDM 24.6.2). Shared by reflection and tests of nesting.
// Must not: decide policy. Reference: SDM 24.6–24.8; ids from schemas/vmx/controls.json.
import { CONTROL_GROUPS } from '../../cpu/generated/controls.js';
import { Field } from '../../cpu/generated/vmcs-fields.js';
import { Primary } from '../../cpu/generated/controls.js';
import type { Vmcs } from '../../cpu/vmcs.js';

const BY_ID = new Map<string, { group: string; bit: number }>();
for (const g of CONTROL_GROUPS) for (const b of g.bits) BY_ID.set(b.id, { group: g.group, bit: b.bit });

/** Whether `id` names a known control bit. */
export function isControlId(id: string): boolean {
  return BY_ID.has(id);
}

/** The control word of a 32-bit group as in effect (secondary reads as 0 without activate-secondary). */
export function controlWord(vmcs: Vmcs, group: 'pin' | 'primary' | 'secondary' | 'exit' | 'entry'): number {
  switch (group) {
    case 'pin':
      return vmcs.lo(Field.PIN_BASED_VM_EXEC_CONTROL);
    case 'primary':
      return vmcs.lo(Field.CPU_BASED_VM_EXEC_CONTROL);
    case 'secondary':
      return vmcs.lo(Field.CPU_BASED_VM_EXEC_CONTROL) & Primary.ACTIVATE_SECONDARY_CONTROLS ? vmcs.lo(Field.SECONDARY_VM_EXEC_CONTROL) : 0;
    case 'exit':
      return vmcs.lo(Field.VM_EXIT_CONTROLS);
    case 'entry':
      return vmcs.lo(Field.VM_ENTRY_CONTROLS);
  }
}

/** Control `id` is 1 (and in effect) in `vmcs`. */
export function controlSet(vmcs: Vmcs, id: string): boolean {
  const c = BY_ID.get(id);
  if (!c) throw new Error(`turtles bug: unknown control id ${id}`);
  if (c.group !== 'pin' && c.group !== 'primary' && c.group !== 'secondary' && c.group !== 'exit' && c.group !== 'entry') {
    throw new Error(`turtles bug: control ${id} is not in a 32-bit control word`);
  }
  return ((controlWord(vmcs, c.group) >>> c.bit) & 1) === 1;
}
