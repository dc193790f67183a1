// Public surface of the nested machine: the L1Machine that runs L1 as L0's guest on the model hardware, with L0 made
// of replaceable parts, and the nested records it emits. Must not: add behaviour; re-exports only.
// Reference: DESIGN.md §3–§4; nested-vmx.md §9.1 (N vs R).
export { DEFAULT_HOST_MODEL, NestedMachine, runNested, type NestedMachineOptions } from './nested-machine.js';
export { defaultL0Parts, defaultReinjection, partsReflect, type L0Parts } from '../l0/parts.js';
export { NestedRecordLog, type NestedRecord, type NestedRecordSink } from '../l0/records.js';
export type { LaunchReport } from '../l0/nested-run.js';
