// Public API of the replay of recorded traces: the driver, its check classes and rule ids, the stats summary and the
// dump importer. The CLI (replay, stats, import) and the benchmarks import from here.
// Must not: add behaviour of its own.
export { replayTrace, classOfRule, checksFor, RECORDED_TRACE_CHECKS, MODEL_TRACE_CHECKS, type ReplayOptions, type TraceReplay } from './replay.js';
export { modelChecks } from './model-replay.js';
export { MODEL_RULES, modelRule, type ModelRuleId } from './model-rules.js';
export type { CheckSummary, ExplainedFailure, Finding, ReplayCheck, ReplayCheckFactory, ReplayEnv } from './check.js';
export { CHECK_CLASSES, TRACE_RULES, RuleFilter, ruleIdsOf, traceRule, type CheckClassId, type TraceRule, type TraceRuleId } from './rules.js';
export { checkExitInfo, emptyExitView, minimumLength, type ExitView, type ExitInfoSink } from './exit-info.js';
export { summarizeTrace, type TraceSummary, type ReasonHistogram, type ExitMultiplication } from './summary.js';
export { importVmcsDump, type DumpFormat, type DumpImport, type DumpImportError } from './dump-trace.js';
