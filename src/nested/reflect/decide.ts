// decideReflection: for a hardware exit from vmcs02, L0 keeps it when l0Wants says so, otherwise it is reflected to
// L1 exactly when l1Wants (= a CPU running vmcs12 would have exited) holds; if not, L0 handles it invisibly.
// Must not: perform the exit or change state (sync/ does the vmcs12 side). Reference: nested-vmx.md §6.1–6.2.
import type { Vmcs } from '../../cpu/vmcs.js';
import { evalL0, evalL1 } from './predicates.js';
import { reflectionRow } from './table.js';
import type { HardwareExit, ReflectionContext, ReflectionDecision } from './types.js';

export function decideReflection(exit: HardwareExit, vmcs12: Vmcs, ctx: ReflectionContext): ReflectionDecision {
  const row = reflectionRow(exit.reason & 0xffff);
  if (evalL0(row.l0.predicate, exit, ctx)) return { reflect: false, rule: row.l0.rule, handledBy: 'L0' };
  const reflect = evalL1(row.l1.predicate, row.l1.controls, exit, vmcs12, ctx);
  return { reflect, rule: row.l1.rule, handledBy: reflect ? 'L1' : 'L0' };
}
