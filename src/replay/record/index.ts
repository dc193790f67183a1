// Public surface of the recorder (`turtles record`, docs/scenarios.md). Must not: add behaviour (re-exports only).
export {
  RECORDER_VERSION, recordScenario, recordScenarioTo, scenarioHeader, scenarioMachineInputs,
  type RecordOptions, type RecordSummary, type Recording, type ScenarioMachineInputs,
} from './recorder.js';
export { scheduledEventEvent } from './external-events.js';
export { l1RegistersEvent, observationEvents, vmExitEvent, vmxOpEvent, vmxOutcomeEvent, type VmxOutcomeFacts } from './l1-events.js';
