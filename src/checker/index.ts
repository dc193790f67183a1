// Public surface of the checker: the divergence record, the observation comparator, the rule catalogue, the deviation
// map, the nested-run invariants and the differential runner. Must not: add behaviour; re-exports only.
// Reference: DESIGN.md §3 (oracle and invariants), nested-vmx.md §9.
export * from './divergence.js';
export { compareObservationStreams, describeObservation, exitReasonName, ObservationComparator, type CompareOptions } from './compare.js';
export { exitFieldDefined, type ExitInfoField } from './exit-definedness.js';
export { CHECKER_RULES, checkerRule, rulesOfClass, type CheckerRule, type RuleClass } from './rules.js';
export { asExpectedDeviation, DEVIATION_EFFECTS, deviationCandidates, deviationMayCause, sameDivergence, type DeviationEffect } from './deviations.js';
export { checkMerge, type MergeCheckInput } from './invariants/merge.js';
export { checkEpt02, Ept12History, ept02Leaves, type Ept02CheckInput, type Ept02Leaf02, type PageReader } from './invariants/ept02.js';
export { checkReflection, singleLevelExpectation, type L1Expectation, type ReflectionCheckInput } from './invariants/reflection.js';
export { l2UsesVpid, VpidMonitor, vpidTag } from './invariants/vpid.js';
export { ALL_INVARIANTS, NestedMonitor, toExitInformation, type InvariantFamily, type InvariantStats } from './nested-monitor.js';
export { attribute, checkProgram, unexplainedDivergences, type CheckInputs, type CheckOptions, type CheckResult, type CheckStats } from './run.js';
