// Public surface of the scenario format (`turtles.scenario.v1`, docs/scenarios.md): types, parser, canonical JSON and
// the conversion to the built-in L1's configuration. Must not: add behaviour of its own (re-exports only).
export * from './types.js';
export { parseScenario, scenarioCodeBytes, codeOrigin, MAX_SCENARIO_BYTES } from './parse.js';
export { canonicalScenarioJson, formatScenario, scenarioJsonValue, scenarioProfile, scenarioSchedule, scenarioToL1Config } from './canonical.js';
